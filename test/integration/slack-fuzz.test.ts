/**
 * Slack's two routes under a seeded fuzzer, through the local runtime on the real local
 * stack: random bodies (form fields, JSON, bytes), random content types, bodies at and over
 * the 1 MB limit, missing and garbled signature headers, stale, future and malformed
 * timestamps, replays, and `Authorization` headers beside a valid signature. Every answer
 * must be the documented one for its case (api/openapi.yaml: 200 a Slack message or an
 * empty acknowledgement, 401 `bad-slack-signature`, 413 `payload-too-large`), in the
 * documented shape, never a 5xx and never a stack trace.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { signSlackRequest } from '../../functions/adapters/slack/verify.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import type { SecretValue } from '../../functions/core/secret-value.ts';
import {
  ensureDevUsers,
  ensureSlackSecret,
  type LocalRuntime,
  startLocalRuntime,
} from '../../functions/local/runtime.ts';
import { seedFuzzWorld } from '../support/api-fuzz.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { newVaultClient, uniqueName } from '../support/stack.ts';

const ROUTES = ['/slack/commands', '/slack/interactions'] as const;
const MB = 1_000_000;

type Json = Record<string, unknown>;
const spec = parse(readFileSync(new URL('../../api/openapi.yaml', import.meta.url), 'utf8')) as unknown;
const at = (value: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>(
    (node, key) => (node && typeof node === 'object' ? (node as Json)[key] : undefined),
    value,
  );
const schema = (name: string) => at(spec, 'components', 'schemas', name);
/** The `Error` codes and Block Kit block types the description allows. */
const ERROR_CODES = at(schema('Error'), 'properties', 'error', 'properties', 'code', 'enum') as string[];
const BLOCK_TYPES = at(
  schema('SlackMessage'),
  'properties',
  'blocks',
  'items',
  'properties',
  'type',
  'enum',
) as string[];

/** mulberry32: a small seeded generator, so a failing case can be replayed by its seed. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (max: number) => Math.floor(next() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  const text = (max: number, alphabet = 'printable') => {
    const length = int(max + 1);
    let out = '';
    for (let i = 0; i < length; i += 1) {
      out +=
        alphabet === 'latin1'
          ? String.fromCharCode(pick([32 + int(95), 160 + int(96)]))
          : pick([
              String.fromCharCode(32 + int(95)),
              pick(['&', '=', '%', '+', '\n', '\t', '"', '\\', '<', '>', ' ', '/']),
              String.fromCodePoint(pick([0xe9, 0x4e2d, 0x1f600, 0x202e, 0xfeff, 0x0])),
            ]);
    }
    return out;
  };
  return { next, int, pick, text };
}
type Random = ReturnType<typeof random>;

const CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'application/json',
  'text/plain',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/x-www-form-urlencoded; charset=utf-16',
  '',
  'garbage/',
];

/** A body Slack might send, almost send, or never send. */
function randomBody(r: Random): string {
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  switch (r.int(7)) {
    case 0:
      return r.text(200);
    case 1:
      return form({
        command: r.pick(['/breakglass', '/revoke', '/other', r.text(12)]),
        text: r.pick(['', 'prod-db 30m fuzzing', 'INC-42 kind=vault-kv', 'help', r.text(300)]),
        user_id: r.pick(['U0FUZZ', 'W123', 'u0lower', r.text(10)]),
        team_id: r.pick(['T0', '', r.text(8)]),
        channel_id: r.pick(['C0', '', r.text(8)]),
        response_url: r.pick([
          'http://127.0.0.1:9/hook',
          'https://hooks.slack.com/x',
          'javascript:1',
          r.text(30),
        ]),
        ...(r.next() < 0.5 ? { trigger_id: r.text(20) } : {}),
      });
    case 2: {
      const payload = {
        type: r.pick(['block_actions', 'view_submission', r.text(8)]),
        user: r.pick([{ id: 'U0FUZZ' }, { id: r.text(6) }, null, 'U0']),
        actions: r.pick([
          [{ action_id: r.pick(['breakglass.approve', 'breakglass.deny', r.text(10)]), value: r.text(40) }],
          [],
          null,
          r.text(5),
        ]),
        response_url: r.pick(['http://127.0.0.1:9/hook', r.text(20)]),
      };
      return form({ payload: r.next() < 0.8 ? JSON.stringify(payload) : `${JSON.stringify(payload)}}` });
    }
    case 3:
      return JSON.stringify({ command: '/breakglass', text: r.text(50), nested: { deep: [r.text(10)] } });
    case 4:
      return form(Object.fromEntries(Array.from({ length: r.int(50) }, () => [r.text(8), r.text(30)])));
    case 5:
      return `payload=${encodeURIComponent(r.text(500))}`;
    default:
      return '';
  }
}

let services: Services;
let runtime: LocalRuntime;
let signingSecret: SecretValue;
const stateDir = mkdtempSync(join(tmpdir(), 'kw-slack-fuzz-'));

beforeAll(async () => {
  services = await wireLocal(
    localConfig('kw-slack-fuzz', { breakglass: { scheduleGroup: uniqueName('kw-slack-fuzz') } }),
  );
  await seedFuzzWorld(services, newVaultClient(), {
    policy: uniqueName('fuzz-db'),
    prefix: uniqueName('fuzz'),
  });
  ensureDevUsers(stateDir, ['alice']);
  signingSecret = ensureSlackSecret(stateDir);
  runtime = await startLocalRuntime({ stateDir, services });
});

afterAll(async () => {
  await runtime?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

interface Sent {
  route: string;
  body: string | Buffer;
  headers: Record<string, string>;
  why: string;
}

/** Sends one request; the answer's status, headers and text. */
async function send({ route, body, headers }: Sent) {
  const response = await fetch(`${runtime.url}${route}`, { method: 'POST', headers, body });
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    text: await response.text(),
  };
}

/** Slack's two headers for `body`, signed now (or at `at` seconds). */
const signed = (body: string, at = Math.floor(Date.now() / 1_000)): Record<string, string> => ({
  'x-slack-request-timestamp': String(at),
  'x-slack-signature': signSlackRequest(signingSecret, at, body),
});

/** What a stack trace or an internal path looks like in a body. */
const TRACE = /\n\s+at |node:internal|\/functions\/|\.ts:\d+|TypeError|ReferenceError|SyntaxError: /;

/** The answer is the documented one for its case, in the documented shape. */
function expectDocumented(
  sent: Sent,
  answer: Awaited<ReturnType<typeof send>>,
  expected: { status: number; code?: string },
) {
  const where = `${sent.why} → ${answer.status} ${answer.text.slice(0, 300)}`;
  expect(answer.status, where).toBe(expected.status);
  expect(answer.text, where).not.toMatch(TRACE);
  if (answer.status === 200 && answer.text === '') {
    expect(answer.type, where).toMatch(/^text\/plain/);
    return;
  }
  expect(answer.type, where).toMatch(/^application\/json/);
  const body = JSON.parse(answer.text) as Json;
  if (answer.status === 200) {
    expect(typeof body.text, where).toBe('string');
    for (const block of (body.blocks as Json[] | undefined) ?? [])
      expect(BLOCK_TYPES, where).toContain(block.type);
    return;
  }
  const error = body.error as { code: string; message: string };
  expect(Object.keys(body), where).toEqual(['error']);
  expect(ERROR_CODES, where).toContain(error.code);
  expect(typeof error.message, where).toBe('string');
  if (expected.code) expect(error.code, where).toBe(expected.code);
}

describe('Slack routes under fuzzing: the documented answer, never a 5xx or a stack trace', () => {
  it('refuses random bodies and content types without a valid signature: 401 bad-slack-signature', async () => {
    const r = random(1101);
    const now = () => Math.floor(Date.now() / 1_000);
    const garbled: (() => Record<string, string>)[] = [
      () => ({}),
      () => ({ 'x-slack-signature': `v0=${'0'.repeat(64)}` }),
      () => ({ 'x-slack-request-timestamp': String(now()) }),
      () => ({ 'x-slack-request-timestamp': String(now()), 'x-slack-signature': r.text(80, 'latin1') }),
      () => ({
        'x-slack-request-timestamp': r.text(15, 'latin1'),
        'x-slack-signature': `v0=${'a'.repeat(64)}`,
      }),
      () => ({
        'x-slack-request-timestamp': r.pick([
          '-1',
          '1e9',
          '0x10',
          '99999999999999',
          '',
          ' ',
          '1.5',
          '\u00b3',
        ]),
        'x-slack-signature': `v0=${'f'.repeat(64)}`,
      }),
      () => ({ 'x-slack-request-timestamp': String(now()), 'x-slack-signature': `v1=${'0'.repeat(64)}` }),
      () => ({ 'x-slack-request-timestamp': String(now()), 'x-slack-signature': 'v0=' }),
      () => ({ 'x-slack-request-timestamp': String(now()), 'x-slack-signature': `v0=${'0'.repeat(4_000)}` }),
    ];
    for (let i = 0; i < 200; i += 1) {
      const route = r.pick(ROUTES);
      const body = randomBody(r);
      const headers: Record<string, string> = { 'content-type': r.pick(CONTENT_TYPES), ...r.pick(garbled)() };
      if (r.next() < 0.2) headers.authorization = r.pick(['', 'Bearer ', `Bearer ${r.text(30, 'latin1')}`]);
      // A signature of another body, or made at a stale or future time: still a refusal.
      if (r.next() < 0.15) Object.assign(headers, signed(`${body}x`));
      if (r.next() < 0.1) Object.assign(headers, signed(body, now() - 301 - r.int(10_000)));
      if (r.next() < 0.1) Object.assign(headers, signed(body, now() + 301 + r.int(10_000)));
      const sent = { route, body, headers, why: `case ${i}: ${JSON.stringify(headers).slice(0, 200)}` };
      expectDocumented(sent, await send(sent), { status: 401, code: 'bad-slack-signature' });
    }
  }, 120_000);

  it('answers signed random bodies with 200: a Slack message or an empty acknowledgement, whatever the content type', async () => {
    const r = random(2202);
    for (let i = 0; i < 150; i += 1) {
      const route = r.pick(ROUTES);
      // A unique suffix keeps each delivery first (the body is the delivery key).
      const body = `${randomBody(r)}&fuzz_case=${i}-${r.int(1e9)}`;
      const headers: Record<string, string> = { 'content-type': r.pick(CONTENT_TYPES), ...signed(body) };
      // An Authorization header never matters on Slack's routes, whatever it holds.
      if (r.next() < 0.4)
        headers.authorization = r.pick(['', 'Bearer kwdev_unknown', `Basic ${r.text(20, 'latin1')}`]);
      const sent = { route, body, headers, why: `case ${i}: ${route} ${body.slice(0, 200)}` };
      expectDocumented(sent, await send(sent), { status: 200 });
    }
  }, 120_000);

  it('answers a replayed delivery with an empty 200 marked duplicate', async () => {
    const body = `command=%2Fbreakglass&text=help&user_id=U0FUZZ&team_id=T0&channel_id=C0&response_url=${encodeURIComponent('http://127.0.0.1:9/hook')}&n=${Date.now()}`;
    const sent = { route: '/slack/commands', body, headers: signed(body), why: 'replay' };
    expectDocumented(sent, await send(sent), { status: 200 });
    const again = await fetch(`${runtime.url}/slack/commands`, {
      method: 'POST',
      headers: signed(body),
      body,
    });
    expect([again.status, again.headers.get('x-keywarden-duplicate'), await again.text()]).toEqual([
      200,
      'true',
      '',
    ]);
  });

  it('reads a body up to 1 MB and refuses a larger one with 413, signed or not', async () => {
    for (const route of ROUTES) {
      const atLimit = `payload=${'a'.repeat(MB - 8)}`;
      const at = { route, body: atLimit, headers: signed(atLimit), why: `${route}: exactly 1 MB, signed` };
      expectDocumented(at, await send(at), { status: 200 });

      const over = `payload=${'a'.repeat(MB)}`;
      for (const headers of [signed(over), {}]) {
        const sent = { route, body: over, headers, why: `${route}: 1 MB and 8 bytes` };
        expectDocumented(sent, await send(sent), { status: 413, code: 'payload-too-large' });
      }
      const huge = Buffer.alloc(5 * MB, 0x61);
      const sent = { route, body: huge, headers: {}, why: `${route}: 5 MB` };
      expectDocumented(sent, await send(sent), { status: 413, code: 'payload-too-large' });
    }
  }, 60_000);
});
