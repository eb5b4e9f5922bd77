/**
 * Slack request signatures (Slack's `v0` scheme): every request Slack sends carries
 * `X-Slack-Request-Timestamp` (Unix seconds) and `X-Slack-Signature`, which is
 * `v0=` + hex(HMAC-SHA256(signing secret, `v0:${timestamp}:${raw body}`)).
 *
 * The signature is checked over the raw body exactly as received (before any form or
 * JSON parsing), compared in constant time, and a timestamp more than five minutes
 * from now in either direction is refused, so a captured request cannot be replayed
 * later. Slack re-sends a delivery it thinks failed (`X-Slack-Retry-Num`): those are
 * duplicates, recognised by {@link slackDeliveryKey}.
 *
 * No message here ever holds the signing secret or the expected signature.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { SecretValue } from '../../core/secret-value.ts';

/** How far a request's timestamp may be from now, either way, before it is refused as a possible replay. */
export const SLACK_MAX_SKEW_SECONDS = 300;

/** Header names as they arrive after lower-casing (API Gateway and node:http both lower-case them). */
export const SLACK_SIGNATURE_HEADER = 'x-slack-signature';
export const SLACK_TIMESTAMP_HEADER = 'x-slack-request-timestamp';
export const SLACK_RETRY_NUM_HEADER = 'x-slack-retry-num';
export const SLACK_RETRY_REASON_HEADER = 'x-slack-retry-reason';

/** Lower-case header names to values, as the handler received them. */
export type SlackHeaders = Readonly<Record<string, string | undefined>>;

export type SlackRejection = 'missing-signature' | 'stale' | 'bad-signature';

/** The outcome of a check: the message of a refusal is for the operator's log, never the secret. */
export type SlackVerification = { ok: true } | { ok: false; reason: SlackRejection; message: string };

export interface VerifySlackRequestInput {
  signingSecret: SecretValue;
  /** Lower-case header names. */
  headers: SlackHeaders;
  /** The body exactly as received: not parsed, not re-encoded, base64-decoded if API Gateway encoded it. */
  rawBody: string;
  /** The caller's clock. */
  now: Date;
}

const VERSION = 'v0';
/** Unix seconds: digits only, no sign, no fraction, no exponent. */
const UNIX_SECONDS = /^\d{1,12}$/;

/**
 * The `X-Slack-Signature` value Slack would send for this body at this timestamp.
 * This is how tests and the end-to-end scenarios produce a correctly signed request.
 */
export function signSlackRequest(
  signingSecret: SecretValue,
  timestamp: number | string,
  rawBody: string,
): string {
  const hmac = createHmac('sha256', signingSecret.reveal());
  hmac.update(`${VERSION}:${timestamp}:${rawBody}`);
  return `${VERSION}=${hmac.digest('hex')}`;
}

/** A header value as the operator may see it: attacker-controlled, so shortened and quoted. */
const shown = (value: string): string => JSON.stringify(value.length > 24 ? `${value.slice(0, 24)}…` : value);

const refuse = (reason: SlackRejection, message: string): SlackVerification => ({
  ok: false,
  reason,
  message,
});

/**
 * Checks that a request comes from Slack: both headers present, a timestamp within
 * {@link SLACK_MAX_SKEW_SECONDS} of `now`, and a signature that matches the body.
 * Never throws on malformed input; a timestamp that is not Unix seconds is `stale`
 * (it cannot be shown to be fresh).
 */
export function verifySlackRequest(input: VerifySlackRequestInput): SlackVerification {
  const signature = input.headers[SLACK_SIGNATURE_HEADER]?.trim();
  const timestamp = input.headers[SLACK_TIMESTAMP_HEADER]?.trim();
  const missing = [
    ...(signature ? [] : ['X-Slack-Signature']),
    ...(timestamp ? [] : ['X-Slack-Request-Timestamp']),
  ];
  if (!signature || !timestamp) {
    return refuse(
      'missing-signature',
      `expected the headers X-Slack-Signature and X-Slack-Request-Timestamp on a Slack request, but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing; only Slack (with the app's signing secret) can call this route`,
    );
  }

  if (!UNIX_SECONDS.test(timestamp)) {
    return refuse(
      'stale',
      `expected X-Slack-Request-Timestamp to be Unix seconds, got ${shown(timestamp)}; the request is refused as it cannot be shown to be recent`,
    );
  }
  const ageSeconds = Math.floor(input.now.getTime() / 1_000) - Number(timestamp);
  if (ageSeconds > SLACK_MAX_SKEW_SECONDS) {
    return refuse(
      'stale',
      `the request's timestamp is ${ageSeconds} s old; Slack requests older than ${SLACK_MAX_SKEW_SECONDS} s are refused as possible replays`,
    );
  }
  if (-ageSeconds > SLACK_MAX_SKEW_SECONDS) {
    return refuse(
      'stale',
      `the request's timestamp is ${-ageSeconds} s in the future; Slack requests more than ${SLACK_MAX_SKEW_SECONDS} s ahead are refused (check this host's clock)`,
    );
  }

  if (!signature.startsWith(`${VERSION}=`)) {
    return refuse(
      'bad-signature',
      `expected an X-Slack-Signature of the form v0=<hex>, got one starting ${shown(signature.slice(0, 3))}`,
    );
  }
  const expected = Buffer.from(signSlackRequest(input.signingSecret, timestamp, input.rawBody), 'utf8');
  const received = Buffer.from(signature, 'utf8');
  // timingSafeEqual throws on different lengths; a different length is simply a wrong signature.
  const matches = expected.length === received.length && timingSafeEqual(expected, received);
  if (!matches) {
    return refuse(
      'bad-signature',
      "the X-Slack-Signature does not match the request body; check that the signing secret keywarden uses is the Slack app's (Basic Information → Signing Secret) and that the body reaches keywarden unmodified",
    );
  }
  return { ok: true };
}

/**
 * A stable id of one Slack delivery, the same for each of Slack's retries of it: the
 * SHA-256 of the raw body. Retries carry a new timestamp and signature but the same
 * body, and every first delivery differs (slash commands and interactions carry a
 * fresh `trigger_id`), so the headers are deliberately left out. The caller stores
 * the key with a conditional put and answers a second sighting with an empty 200.
 */
export function slackDeliveryKey(_headers: SlackHeaders, rawBody: string): string {
  return `slack-delivery:${createHash('sha256').update(rawBody, 'utf8').digest('hex')}`;
}

/** Whether Slack marked this delivery as a retry of an earlier one (`X-Slack-Retry-Num` ≥ 1). */
export function isSlackRetry(headers: SlackHeaders): boolean {
  const retry = headers[SLACK_RETRY_NUM_HEADER]?.trim();
  return retry !== undefined && retry !== '' && retry !== '0';
}
