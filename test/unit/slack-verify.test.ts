import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  isSlackRetry,
  type SlackHeaders,
  signSlackRequest,
  slackDeliveryKey,
  verifySlackRequest,
} from '../../functions/adapters/slack/verify.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';

// The worked example of Slack's "Verifying requests from Slack" page (a published test vector, not a live secret).
const DOC_SECRET = new SecretValue('8f742231b10e8888abcd99yyyzzz85a5');
const DOC_TIMESTAMP = '1531420618';
const DOC_BODY =
  'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
const DOC_SIGNATURE = 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503';

const secretText = randomBytes(16).toString('hex');
const secret = new SecretValue(secretText);
const now = new Date('2026-11-21T10:00:00Z');
const nowSeconds = Math.floor(now.getTime() / 1_000);
const body = 'command=%2Fbreakglass&text=prod-deploy+30m+INC-42+hotfix&user_id=U0ALICE';

const signed = (timestamp: number | string, rawBody = body, key = secret): SlackHeaders => ({
  'x-slack-request-timestamp': String(timestamp),
  'x-slack-signature': signSlackRequest(key, timestamp, rawBody),
});

/** The message of a refusal must never carry the secret or the signature keywarden expected. */
function assertNothingSecretIn(message: string, rawBody = body, timestamp: number | string = nowSeconds) {
  expect(message).not.toContain(secretText);
  const expected = signSlackRequest(secret, timestamp, rawBody);
  expect(message).not.toContain(expected.slice(3));
}

describe('slack verify: the v0 signature scheme', () => {
  it("signs Slack's own worked example exactly as Slack does", () => {
    // act
    const signature = signSlackRequest(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY);

    // assess
    expect(signature).toBe(DOC_SIGNATURE);
  });

  it('is HMAC-SHA256 over v0:timestamp:body, hex, prefixed v0= (checked with an independent HMAC)', () => {
    // prepare
    const independent = `v0=${createHmac('sha256', secretText).update(`v0:${nowSeconds}:${body}`).digest('hex')}`;

    // act / assess
    expect(signSlackRequest(secret, nowSeconds, body)).toBe(independent);
  });

  it("accepts Slack's worked example at its own time", () => {
    // act
    const result = verifySlackRequest({
      signingSecret: DOC_SECRET,
      headers: { 'x-slack-request-timestamp': DOC_TIMESTAMP, 'x-slack-signature': DOC_SIGNATURE },
      rawBody: DOC_BODY,
      now: new Date((Number(DOC_TIMESTAMP) + 60) * 1_000),
    });

    // assess
    expect(result).toEqual({ ok: true });
  });
});

describe('slack verify: verifySlackRequest', () => {
  it('accepts a request signed with the signing secret within the window', () => {
    expect(
      verifySlackRequest({ signingSecret: secret, headers: signed(nowSeconds), rawBody: body, now }),
    ).toEqual({
      ok: true,
    });
  });

  it('accepts a timestamp just inside five minutes either way', () => {
    for (const timestamp of [nowSeconds - 300, nowSeconds + 300]) {
      expect(
        verifySlackRequest({ signingSecret: secret, headers: signed(timestamp), rawBody: body, now }).ok,
      ).toBe(true);
    }
  });

  it('refuses a request without the signature headers, naming what is missing', () => {
    // prepare
    const cases: [SlackHeaders, string][] = [
      [{}, 'X-Slack-Signature and X-Slack-Request-Timestamp are missing'],
      [{ 'x-slack-request-timestamp': String(nowSeconds) }, 'X-Slack-Signature is missing'],
      [
        { 'x-slack-signature': 'v0=00', 'x-slack-request-timestamp': '  ' },
        'X-Slack-Request-Timestamp is missing',
      ],
    ];
    for (const [headers, missing] of cases) {
      // act
      const result = verifySlackRequest({ signingSecret: secret, headers, rawBody: body, now });

      // assess
      expect(result).toMatchObject({ ok: false, reason: 'missing-signature' });
      expect(result.ok === false && result.message).toContain(missing);
    }
  });

  it('refuses a replay older than five minutes, saying how old it is', () => {
    // prepare
    const timestamp = nowSeconds - 412;

    // act
    const result = verifySlackRequest({
      signingSecret: secret,
      headers: signed(timestamp),
      rawBody: body,
      now,
    });

    // assess
    expect(result).toEqual({
      ok: false,
      reason: 'stale',
      message:
        "the request's timestamp is 412 s old; Slack requests older than 300 s are refused as possible replays",
    });
  });

  it('refuses a timestamp more than five minutes in the future', () => {
    // act
    const result = verifySlackRequest({
      signingSecret: secret,
      headers: signed(nowSeconds + 301),
      rawBody: body,
      now,
    });

    // assess
    expect(result).toMatchObject({ ok: false, reason: 'stale' });
    expect(result.ok === false && result.message).toContain('301 s in the future');
  });

  it('refuses a timestamp that is not Unix seconds, even when signed', () => {
    for (const timestamp of ['abc', '1.7e9', '-1', `${nowSeconds}.5`, '0x10']) {
      // act
      const result = verifySlackRequest({
        signingSecret: secret,
        headers: signed(timestamp),
        rawBody: body,
        now,
      });

      // assess
      expect(result).toMatchObject({ ok: false, reason: 'stale' });
      expect(result.ok === false && result.message).toContain(
        'expected X-Slack-Request-Timestamp to be Unix seconds',
      );
    }
  });

  it('refuses a body changed after signing', () => {
    // prepare
    const headers = signed(nowSeconds);

    // act
    const result = verifySlackRequest({
      signingSecret: secret,
      headers,
      rawBody: body.replace('30m', '12h'),
      now,
    });

    // assess
    expect(result).toMatchObject({ ok: false, reason: 'bad-signature' });
    if (!result.ok) assertNothingSecretIn(result.message, body.replace('30m', '12h'));
  });

  it('refuses a signature made with another secret, and says where to look', () => {
    // prepare
    const other = new SecretValue(randomBytes(16).toString('hex'));

    // act
    const result = verifySlackRequest({
      signingSecret: secret,
      headers: signed(nowSeconds, body, other),
      rawBody: body,
      now,
    });

    // assess
    expect(result).toMatchObject({ ok: false, reason: 'bad-signature' });
    expect(result.ok === false && result.message).toContain('Signing Secret');
    if (!result.ok) assertNothingSecretIn(result.message);
  });

  it('refuses a signature of the wrong length without throwing', () => {
    for (const signature of ['v0=', 'v0=abc', `${signSlackRequest(secret, nowSeconds, body)}00`, 'v0=é']) {
      // act
      const result = verifySlackRequest({
        signingSecret: secret,
        headers: { 'x-slack-request-timestamp': String(nowSeconds), 'x-slack-signature': signature },
        rawBody: body,
        now,
      });

      // assess
      expect(result).toMatchObject({ ok: false, reason: 'bad-signature' });
    }
  });

  it('refuses another signature version', () => {
    // prepare
    const v0 = signSlackRequest(secret, nowSeconds, body);

    // act
    const result = verifySlackRequest({
      signingSecret: secret,
      headers: { 'x-slack-request-timestamp': String(nowSeconds), 'x-slack-signature': `v1=${v0.slice(3)}` },
      rawBody: body,
      now,
    });

    // assess
    expect(result).toMatchObject({ ok: false, reason: 'bad-signature' });
    expect(result.ok === false && result.message).toContain('v0=<hex>');
    if (!result.ok) assertNothingSecretIn(result.message);
  });

  it('checks the clock before the signature, so a replayed valid request is refused as stale', () => {
    // prepare: a genuine request captured ten minutes ago
    const captured = signed(nowSeconds - 600);

    // act
    const result = verifySlackRequest({ signingSecret: secret, headers: captured, rawBody: body, now });

    // assess
    expect(result).toMatchObject({ ok: false, reason: 'stale' });
  });
});

describe('slack verify: deliveries and retries', () => {
  it("gives Slack's retries of one delivery the same key, whatever their timestamp and retry headers", () => {
    // prepare
    const first = signed(nowSeconds);
    const retry = {
      ...signed(nowSeconds + 60),
      'x-slack-retry-num': '1',
      'x-slack-retry-reason': 'http_timeout',
    };

    // act / assess
    expect(slackDeliveryKey(retry, body)).toBe(slackDeliveryKey(first, body));
    expect(slackDeliveryKey(first, body)).toMatch(/^slack-delivery:[0-9a-f]{64}$/);
  });

  it('gives different deliveries different keys', () => {
    expect(slackDeliveryKey({}, `${body}&trigger_id=1`)).not.toBe(
      slackDeliveryKey({}, `${body}&trigger_id=2`),
    );
  });

  it('recognises a retry by X-Slack-Retry-Num', () => {
    expect(isSlackRetry({ 'x-slack-retry-num': '1' })).toBe(true);
    expect(isSlackRetry({ 'x-slack-retry-num': '3' })).toBe(true);
    expect(isSlackRetry({ 'x-slack-retry-num': '0' })).toBe(false);
    expect(isSlackRetry({ 'x-slack-retry-num': '' })).toBe(false);
    expect(isSlackRetry({})).toBe(false);
  });
});
