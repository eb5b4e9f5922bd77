/**
 * `/revoke` progress as a Slack thread: the Web API poster (the official @slack/web-api
 * client) against a small local HTTP server playing Slack's `chat.postMessage`, and the
 * deferred job posting its campaign's start and progress in one thread, or to the
 * response_url when there is no bot or the bot cannot post in the channel.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SlackResponder } from '../../functions/adapters/slack/responder.ts';
import { WebApiThreadPoster } from '../../functions/adapters/slack/web-api-poster.ts';
import type { CampaignApi } from '../../functions/api/campaigns.ts';
import type { DeferredJob } from '../../functions/api/deferred-jobs.ts';
import { type DeferredDeps, runDeferred } from '../../functions/api/slack.ts';
import { summarize } from '../../functions/core/campaign.ts';
import type { StoredCampaign } from '../../functions/core/ports.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';

/** A bot token of Slack's shape, made for this run (the poster refuses any other shape). */
const BOT_TOKEN = `xoxb-${randomInt(1e9, 9e9)}-${randomInt(1e9, 9e9)}-${randomBytes(12).toString('hex')}`;

interface Received {
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

/** Slack's chat.postMessage and a response_url, on loopback; `channel_not_found` for channel C0NOBOT. */
function fakeSlack() {
  const received: Received[] = [];
  let ts = 0;
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
      received.push({ path: request.url ?? '', authorization: request.headers.authorization, body });
      response.setHeader('content-type', 'application/json');
      if (request.url === '/api/chat.postMessage') {
        if (body.channel === 'C0NOBOT') {
          response.end(JSON.stringify({ ok: false, error: 'channel_not_found' }));
          return;
        }
        ts += 1;
        response.end(JSON.stringify({ ok: true, channel: body.channel, ts: `1700000000.00000${ts}` }));
        return;
      }
      response.end('ok');
    });
  });
  return { server, received };
}

const campaign = (status: StoredCampaign['status']): StoredCampaign => ({
  campaignId: 'INC-42-20261121T100000Z-3fa2',
  incident: 'INC-42',
  selectors: ['stage=deploy'],
  requestedBy: 'slack:U0BOB',
  createdAt: '2026-11-21T10:00:00.000Z',
  status,
  reissue: false,
  dryRun: false,
  counts: summarize([]),
  rev: 1,
});

/** A campaign that runs for one reading, then completes. */
function campaigns(): CampaignApi {
  let reads = 0;
  return {
    authorize: async () => {},
    start: async () =>
      ({ status: 'stored', campaign: campaign('running'), summary: { counts: summarize([]) } }) as never,
    status: async () => ({
      campaign: campaign(reads++ === 0 ? 'running' : 'completed'),
      counts: summarize([]),
    }),
  } as CampaignApi;
}

describe('slack: /revoke progress in a thread (Web API against a local chat.postMessage)', () => {
  const slack = fakeSlack();
  let base: string;

  beforeAll(async () => {
    await new Promise<void>((resolve) => slack.server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(slack.server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => slack.server.close(() => resolve())));
  beforeEach(() => {
    slack.received.length = 0;
  });

  const poster = () =>
    new WebApiThreadPoster({ botToken: new SecretValue(BOT_TOKEN), slackApiUrl: `${base}/api/` });

  const deps = (thread: WebApiThreadPoster | undefined): DeferredDeps => {
    const responder = new SlackResponder({ allowedHosts: ['127.0.0.1'] });
    return {
      breakglass: undefined as never,
      acceptLocalPrincipals: false,
      region: 'us-east-1',
      report: async () => ({ report: {}, markdown: '' }),
      campaigns: campaigns(),
      progress: { everyMs: 1, deadlineMs: 5_000 },
      log: () => {},
      slack: {
        signingSecret: new SecretValue('local-signing-secret'),
        ledger: undefined as never,
        respond: (url, message) => responder.respond(url, message),
        defer: async () => {},
      },
      thread,
    };
  };

  const revokeJob = (channelId: string): DeferredJob => ({
    kind: 'revoke',
    incident: 'INC-42',
    selectors: ['stage=deploy'],
    reissue: false,
    userId: 'U0BOB',
    responseUrl: `${base}/hooks/response`,
    channelId,
  });

  it('posts with the bot token and answers the message ts; replies carry thread_ts', async () => {
    // act
    const first = await poster().post('C0INCIDENT', { text: 'started', blocks: [] });
    const reply = await poster().post('C0INCIDENT', { text: 'progress', blocks: [] }, first);

    // assess
    expect(first).toMatch(/^1700000000\.\d+$/);
    expect(reply).not.toBe(first);
    expect(slack.received.map((r) => [r.path, r.authorization, r.body.channel, r.body.thread_ts])).toEqual([
      ['/api/chat.postMessage', `Bearer ${BOT_TOKEN}`, 'C0INCIDENT', undefined],
      ['/api/chat.postMessage', `Bearer ${BOT_TOKEN}`, 'C0INCIDENT', first],
    ]);
  });

  it('refuses a channel Slack does not know, naming Slack’s code and never the token', async () => {
    const failure = poster().post('C0NOBOT', { text: 'started', blocks: [] });
    await expect(failure).rejects.toMatchObject({ name: 'SlackPostError' });
    await expect(failure).rejects.toThrow(/channel_not_found/);
    await failure.catch((error: Error) => expect(error.message).not.toContain(BOT_TOKEN));
  });

  it('refuses something that is not a bot token before any request', () => {
    expect(() => new WebApiThreadPoster({ botToken: new SecretValue('not-set') })).toThrow(
      /expected a Slack bot token/,
    );
    expect(slack.received).toEqual([]);
  });

  it('a /revoke job posts its start, then every progress reading and its end, in the start’s thread', async () => {
    // act
    await runDeferred(deps(poster()), revokeJob('C0INCIDENT'));

    // assess
    const posts = slack.received.filter((r) => r.path === '/api/chat.postMessage');
    expect(posts.length).toBeGreaterThanOrEqual(2);
    expect(posts[0]?.body.thread_ts).toBeUndefined();
    const startTs = posts[1]?.body.thread_ts;
    expect(startTs).toMatch(/^1700000000\.\d+$/);
    expect(new Set(posts.slice(1).map((p) => p.body.thread_ts))).toEqual(new Set([startTs]));
    expect(slack.received.filter((r) => r.path === '/hooks/response')).toEqual([]);
  });

  it('falls back to the response_url when the bot cannot post in the channel, or there is no bot', async () => {
    await runDeferred(deps(poster()), revokeJob('C0NOBOT'));
    const afterRefusal = slack.received.filter((r) => r.path === '/hooks/response').length;
    expect(afterRefusal).toBeGreaterThanOrEqual(2);
    expect(slack.received.filter((r) => r.path === '/api/chat.postMessage')).toHaveLength(1);

    slack.received.length = 0;
    await runDeferred(deps(undefined), revokeJob('C0INCIDENT'));
    expect(slack.received.filter((r) => r.path === '/api/chat.postMessage')).toEqual([]);
    expect(slack.received.filter((r) => r.path === '/hooks/response').length).toBeGreaterThanOrEqual(2);
  });
});
