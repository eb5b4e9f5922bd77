/**
 * What the break-glass end-to-end scenarios share: the CLI run without blocking the test's
 * event loop (a capture server lives in it), the local stack's files, a Slack signer and a
 * loopback capture of what keywarden posts to a response_url, and the search for secret
 * values in everything a scenario produced.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { signSlackRequest } from '../../functions/adapters/slack/verify.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { REPO_ROOT, type StackEndpoints, StackEndpointsSchema } from '../../scripts/local-stack.ts';
import { keywardenEntry } from '../support/cli-entry.ts';
import type { CliResult } from './cli.ts';

/** Every CLI run of a scenario, kept so its stderr can be searched for secrets afterwards. */
export interface CliRun extends CliResult {
  args: string[];
  actor: string;
}

/** Runs the real `keywarden` command, asynchronously, in `cwd` (default: the repository). */
export function keywardenAsync(
  args: string[],
  env: Record<string, string>,
  cwd: string = REPO_ROOT,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [keywardenEntry(), ...args], {
      cwd,
      env: { ...process.env, KEYWARDEN_TABLE: '', KEYWARDEN_API_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), 170_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** The endpoints (and dev root token) of the stack a `dev up` started in `home`. */
export const stackOf = (home: string): StackEndpoints =>
  StackEndpointsSchema.parse(JSON.parse(readFileSync(join(home, 'stack.json'), 'utf8')));

/** The local runtime's URL, from `<home>/runtime.json`. */
export const runtimeUrlOf = (home: string): string =>
  (JSON.parse(readFileSync(join(home, 'runtime.json'), 'utf8')) as { url: string }).url;

/** The development tokens `dev up` handed out, by user. */
export const devTokensOf = (home: string): Record<string, string> =>
  (JSON.parse(readFileSync(join(home, 'dev-users.json'), 'utf8')) as { users: Record<string, string> }).users;

/** The local Slack signing secret. */
export const slackSecretOf = (home: string): SecretValue =>
  new SecretValue(readFileSync(join(home, 'slack-signing-secret'), 'utf8').trim());

/**
 * Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`.
 * Every 200 ms after a cheap check (one local read), since each wait ends up to a pause later
 * than its event; after a costly one (a `keywarden` command, ~0.5 s of CPU) as long as it took,
 * so polling never takes more than half of the two cores' time from the servers it waits on.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const started = Date.now();
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(everyMs, Date.now() - started)));
  }
}

/** The HTTP status OpenBao answers a read of `path` with, using `token`. */
export async function vaultReadStatus(addr: string, token: string, path: string): Promise<number> {
  const response = await fetch(`${addr}/v1/${path}`, { headers: { 'x-vault-token': token } });
  await response.arrayBuffer();
  return response.status;
}

/**
 * OpenBao's answer about `token`, looked up with the dev root token: 200 while it lives, 403
 * once it is gone (a CI job's token holds exactly its grant's policies, so it may not look
 * itself up).
 */
export async function vaultTokenStatus(stack: StackEndpoints, token: string): Promise<number> {
  const response = await fetch(`${stack.vault.addr}/v1/auth/token/lookup`, {
    method: 'POST',
    headers: { 'x-vault-token': stack.vault.token, 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  await response.arrayBuffer();
  return response.ok ? 200 : 403;
}

/** Writes a KV v2 secret with the dev root token. */
export async function vaultWriteKv(
  addr: string,
  rootToken: string,
  path: string,
  data: Record<string, string>,
): Promise<void> {
  const response = await fetch(`${addr}/v1/secret/data/${path}`, {
    method: 'POST',
    headers: { 'x-vault-token': rootToken, 'content-type': 'application/json' },
    body: JSON.stringify({ data }),
  });
  if (!response.ok) throw new Error(`writing secret/data/${path}: HTTP ${response.status}`);
}

/** Parses `export NAME=value` lines, as `credentials` prints them. */
export function parseExports(stdout: string): Record<string, string> {
  const exports: Record<string, string> = {};
  for (const match of stdout.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) exports[match[1] ?? ''] = match[2] ?? '';
  return exports;
}

// ---- Slack ------------------------------------------------------------------------------

/** One post keywarden made to a response_url. */
export interface CapturedPost {
  path: string;
  body: string;
  json: { text?: string; response_type?: string; replace_original?: boolean; blocks?: unknown[] };
}

/** A loopback server standing in for Slack's response_url: it records what keywarden posts. */
export interface ResponseCapture {
  url: (name: string) => string;
  posts: CapturedPost[];
  /** The posts to one response_url name. */
  to: (name: string) => CapturedPost[];
  close: () => Promise<void>;
}

export async function startResponseCapture(): Promise<ResponseCapture> {
  const posts: CapturedPost[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: CapturedPost['json'] = {};
      try {
        json = JSON.parse(body) as CapturedPost['json'];
      } catch {
        // kept as text; the assertions say what was expected
      }
      posts.push({ path: request.url ?? '/', body, json });
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: (name) => `${base}/hooks/${name}`,
    posts,
    to: (name) => posts.filter((p) => p.path === `/hooks/${name}`),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An answer of the runtime to a Slack delivery. */
export interface SlackAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Posts a form body to a Slack route of the runtime, as Slack does: signed with the
 * signing secret at `timestamp` unless `sign` is false; `headers` adds or overrides.
 */
export async function postSlack(
  runtimeUrl: string,
  route: 'commands' | 'interactions',
  body: string,
  options: {
    secret?: SecretValue;
    timestamp?: number;
    headers?: Record<string, string>;
  } = {},
): Promise<SlackAnswer> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1_000);
  const signed = options.secret
    ? {
        'x-slack-request-timestamp': String(timestamp),
        'x-slack-signature': signSlackRequest(options.secret, timestamp, body),
      }
    : {};
  const response = await fetch(`${runtimeUrl}/slack/${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...signed, ...options.headers },
    body,
  });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** A slash-command body as Slack sends it; each gets its own trigger_id, as each delivery does. */
export function slashCommandBody(input: {
  command: string;
  text: string;
  userId: string;
  responseUrl: string;
}): string {
  return new URLSearchParams({
    token: 'deprecated-verification-token',
    team_id: 'T0KEYWARDEN',
    team_domain: 'acme',
    channel_id: 'C0INCIDENT',
    channel_name: 'incident-42',
    user_id: input.userId,
    user_name: input.userId.toLowerCase(),
    command: input.command,
    text: input.text,
    api_app_id: 'A0KEYWARDEN',
    response_url: input.responseUrl,
    trigger_id: `${Date.now()}.${Math.random().toString(16).slice(2)}`,
  }).toString();
}

/** A button click (block_actions) on a break-glass request, as Slack sends it. */
export function buttonClickBody(input: {
  action: 'approve' | 'deny';
  grantId: string;
  userId: string;
  responseUrl: string;
}): string {
  const payload = {
    type: 'block_actions',
    user: { id: input.userId, username: input.userId.toLowerCase(), team_id: 'T0KEYWARDEN' },
    api_app_id: 'A0KEYWARDEN',
    trigger_id: `${Date.now()}.${Math.random().toString(16).slice(2)}`,
    channel: { id: 'C0INCIDENT' },
    response_url: input.responseUrl,
    actions: [
      {
        action_id: `breakglass.${input.action}`,
        value: input.grantId,
        type: 'button',
        action_ts: String(Date.now() / 1_000),
      },
    ],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

// ---- the search for secrets ----------------------------------------------------------------

/** A place a scenario wrote to, and its text. */
export interface Source {
  name: string;
  text: string;
}

/** Every file under `dir` (recursively) as a source; none when it does not exist. */
export function filesUnder(dir: string, label: string): Source[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory()
      ? filesUnder(path, `${label}/${name}`)
      : [{ name: `${label}/${name}`, text: readFileSync(path, 'utf8') }];
  });
}

/**
 * Where any of `secrets` appears in `sources`: `source ← secret (first chars)` per hit.
 * A secret is shown by its first 4 characters only, so a failing test does not print it.
 */
export function secretHits(secrets: Iterable<string>, sources: readonly Source[]): string[] {
  const hits: string[] = [];
  for (const secret of secrets) {
    for (const source of sources) {
      if (source.text.includes(secret))
        hits.push(`${source.name} ← ${secret.slice(0, 4)}… (${secret.length} chars)`);
    }
  }
  return hits;
}
