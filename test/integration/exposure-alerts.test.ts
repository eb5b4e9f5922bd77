/**
 * Containment alerts to owners (issue #14): the SNS adapter against moto's real SNS (SQS queues
 * subscribed to the topic receive what it delivered, filter policies included), the Slack adapter
 * against a small local HTTP server playing Slack's `chat.postMessage`, and the fan-out to both.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AlertDeliveryError,
  configuredAlerts,
  FanOutExposureAlerts,
  SlackExposureAlerts,
  SnsExposureAlerts,
} from '../../functions/adapters/alerts/index.ts';
import { WebApiThreadPoster } from '../../functions/adapters/slack/web-api-poster.ts';
import type { Person } from '../../functions/core/grant.ts';
import type { ExposureAlert } from '../../functions/core/ports.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { alertSubscriber, newAlertTopic } from '../support/lambda-world.ts';
import { testAws } from '../support/stack.ts';

/** A bot token of Slack's shape, made for this run (the poster refuses any other shape). */
const BOT_TOKEN = `xoxb-${randomInt(1e9, 9e9)}-${randomInt(1e9, 9e9)}-${randomBytes(12).toString('hex')}`;

const alert = (over: Partial<ExposureAlert> = {}): ExposureAlert => ({
  cause: 'exposure',
  identityId: 'app-build-aws',
  owner: 'team-app',
  incident: `EXPOSURE-${randomBytes(6).toString('hex')}`,
  status: 'contained',
  where: 'file build.log:4',
  fingerprint: `hmac-sha256:${randomBytes(8).toString('hex')}`,
  campaignId: 'EXPOSURE-0123-c1',
  reissuedVersionId: 'v-2',
  report: 'reports/EXPOSURE-0123.html',
  failures: [],
  ...over,
});

describe('SnsExposureAlerts: one message per alert on the alert topic (moto)', () => {
  let topicArn: string;

  /** A queue subscribed to the topic, with a filter policy when given, and a reader of what it received. */
  const subscriber = (filterPolicy?: Record<string, unknown>) =>
    alertSubscriber(testAws(), topicArn, filterPolicy ? { filterPolicy } : {});

  beforeAll(async () => {
    topicArn = await newAlertTopic(testAws());
  });

  it('publishes a subject, a plain-text body and the attributes a subscriber filters on, per owner', async () => {
    // prepare: everyone, team-app only, team-web only
    const [all, app, web] = await Promise.all([
      subscriber(),
      subscriber({ owner: ['team-app'] }),
      subscriber({ owner: ['team-web'] }),
    ]);
    const alerts = new SnsExposureAlerts({ topicArn, aws: testAws() });
    const sent = alert({ identityId: `${'very-long-identity-name-'.repeat(5)}x` });
    // act
    await alerts.alert(sent);
    // assess
    const [received] = await all();
    expect(received?.TopicArn).toBe(topicArn);
    expect(received?.Subject?.length).toBeLessThan(100);
    expect(received?.Subject).toMatch(/^keywarden contained very-long-identity-name-/);
    expect(received?.Message).toContain(
      `${sent.identityId}'s credential was exposed (file build.log:4); ended by ${sent.incident}.`,
    );
    expect(received?.Message).toContain('Owner: team-app');
    expect(received?.Message).toContain(`Fingerprint: ${sent.fingerprint}…`);
    expect(received?.Message).toContain('Replacement: fresh credential v-2 delivered to its target');
    expect(received?.MessageAttributes).toEqual({
      owner: { Type: 'String', Value: 'team-app' },
      identity: { Type: 'String', Value: sent.identityId },
      incident: { Type: 'String', Value: sent.incident },
      cause: { Type: 'String', Value: 'exposure' },
      status: { Type: 'String', Value: 'contained' },
    });
    expect((await app()).map((m) => m.MessageAttributes?.incident?.Value)).toEqual([sent.incident]);
    expect(await web()).toEqual([]);
    expect(alerts.channel).toBe(`SNS topic ${topicArn.split(':').pop()}`);
  });

  it('leaves owner out for an identity without one, and says a topic that does not exist', async () => {
    const everyone = await subscriber();
    await new SnsExposureAlerts({ topicArn, aws: testAws() }).alert(
      alert({ owner: undefined, status: 'failed', failures: ['iam: AccessDenied'] }),
    );
    const [received] = await everyone();
    expect(Object.keys(received?.MessageAttributes ?? {}).sort()).toEqual([
      'cause',
      'identity',
      'incident',
      'status',
    ]);
    expect(received?.Subject).toMatch(/^keywarden could not fully contain /);
    expect(received?.Message).toContain('Failed: iam: AccessDenied');
    const missing = new SnsExposureAlerts({ topicArn: `${topicArn}-missing`, aws: testAws() });
    await expect(missing.alert(alert())).rejects.toThrow(
      /AWS failed while publishing app-build-aws's alert to SNS topic/,
    );
  });

  it('refuses a topic that is not an ARN, saying what it expected', () => {
    expect(() => new SnsExposureAlerts({ topicArn: 'keywarden-alerts', aws: testAws() })).toThrow(
      /expected an SNS topic ARN such as arn:aws:sns:/,
    );
  });
});

interface Posted {
  channel: string;
  text: string;
  blocks: unknown[];
}

/** Slack's chat.postMessage on loopback; `channel_not_found` for channel C0NOBOT. */
function fakeSlack() {
  const posted: Posted[] = [];
  const read = (request: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let text = '';
      request.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      request.on('end', () => resolve(text));
    });
  const server: Server = createServer((request, response) => {
    void read(request).then((text) => {
      const type = request.headers['content-type'] ?? '';
      const body = type.includes('json')
        ? (JSON.parse(text) as Record<string, unknown>)
        : Object.fromEntries(new URLSearchParams(text));
      response.setHeader('content-type', 'application/json');
      if (
        request.url !== '/api/chat.postMessage' ||
        request.headers.authorization !== `Bearer ${BOT_TOKEN}`
      ) {
        response.end(JSON.stringify({ ok: false, error: 'invalid_auth' }));
        return;
      }
      if (body.channel === 'C0NOBOT') {
        response.end(JSON.stringify({ ok: false, error: 'channel_not_found' }));
        return;
      }
      const blocks = typeof body.blocks === 'string' ? (JSON.parse(body.blocks) as unknown[]) : body.blocks;
      posted.push({ channel: String(body.channel), text: String(body.text), blocks: blocks as unknown[] });
      response.end(
        JSON.stringify({ ok: true, channel: body.channel, ts: `1700000000.00000${posted.length}` }),
      );
    });
  });
  return { server, posted };
}

describe('SlackExposureAlerts: the alert in the channel, the owner mentioned when they are a person', () => {
  const slack = fakeSlack();
  let slackApiUrl: string;
  const people: Person[] = [
    { name: 'alice', awsPrincipals: [], slackUsers: ['U0ALICE', 'W0ALICE2'], localUsers: [] },
    { name: 'bob', awsPrincipals: [], slackUsers: ['U0BOB'], localUsers: [] },
  ];
  const poster = () => new WebApiThreadPoster({ botToken: new SecretValue(BOT_TOKEN), slackApiUrl });

  beforeAll(async () => {
    await new Promise<void>((resolve) => slack.server.listen(0, '127.0.0.1', resolve));
    slackApiUrl = `http://127.0.0.1:${(slack.server.address() as AddressInfo).port}/api/`;
  });
  afterAll(() => new Promise<void>((resolve) => slack.server.close(() => resolve())));

  it('mentions every Slack user of an owner who is a person of the directory, and escapes what it shows', async () => {
    // prepare
    const alerts = new SlackExposureAlerts({
      poster: poster(),
      channel: 'C0ALERTS',
      people: async () => people,
    });
    // act
    await alerts.alert(alert({ owner: 'alice', where: 'file <!channel>.log:3' }));
    // assess
    const [message] = slack.posted.splice(0);
    expect(message?.channel).toBe('C0ALERTS');
    expect(message?.text).toMatch(
      /^<@U0ALICE> <@W0ALICE2> keywarden: app-build-aws's credential was exposed/,
    );
    const shown = JSON.stringify(message?.blocks);
    expect(shown).toContain('<@U0ALICE> <@W0ALICE2>');
    expect(shown).not.toContain('<@U0BOB>');
    expect(shown).not.toContain('<!channel>');
    expect(shown).toContain('&lt;!channel&gt;');
    expect(shown).not.toContain(BOT_TOKEN);
  });

  it('names a team owner without mentioning anyone, and still posts when the directory cannot be read', async () => {
    const team = new SlackExposureAlerts({
      poster: poster(),
      channel: 'C0ALERTS',
      people: async () => people,
    });
    const unread = new SlackExposureAlerts({
      poster: poster(),
      channel: 'C0ALERTS',
      people: () => Promise.reject(new Error('dynamodb unreachable')),
    });
    await team.alert(alert({ owner: 'team-app' }));
    await unread.alert(alert({ owner: 'alice' }));
    const [teamMessage, unreadMessage] = slack.posted.splice(0);
    expect(teamMessage?.text).not.toContain('<@');
    expect(JSON.stringify(teamMessage?.blocks)).toContain('team-app');
    expect(unreadMessage?.text).not.toContain('<@');
  });

  it('fans out to the topic and Slack, and rejects naming the channel that did not take the alert', async () => {
    // prepare: a topic that exists, and a channel the bot is not in
    const topicArn = await newAlertTopic(testAws(), 'kw-fan');
    const both = configuredAlerts(
      { topicArn, slack: { botToken: new SecretValue(BOT_TOKEN), channel: 'C0ALERTS', apiUrl: slackApiUrl } },
      { aws: testAws(), people: async () => people },
    );
    const broken = new FanOutExposureAlerts([
      new SnsExposureAlerts({ topicArn, aws: testAws() }),
      new SlackExposureAlerts({ poster: poster(), channel: 'C0NOBOT' }),
    ]);
    // act
    await both?.alert(alert());
    const failure = await broken.alert(alert()).then(
      () => undefined,
      (error: unknown) => error,
    );
    // assess
    expect(both?.description).toBe(`SNS topic ${topicArn.split(':').pop()} and Slack channel C0ALERTS`);
    expect(slack.posted.splice(0).map((p) => p.channel)).toEqual(['C0ALERTS']);
    expect(failure).toBeInstanceOf(AlertDeliveryError);
    expect((failure as AlertDeliveryError).failed).toEqual(['Slack channel C0NOBOT']);
    expect((failure as Error).message).toMatch(
      /did not reach Slack channel C0NOBOT: Slack refused chat\.postMessage in C0NOBOT: channel_not_found.*; it reached SNS topic kw-fan-/,
    );
    expect((failure as Error).message).not.toContain(BOT_TOKEN);
    expect(configuredAlerts({}, { aws: testAws() })).toBeUndefined();
  });
});
