/**
 * The Slack client as the handler bundles carry it: `@slack/web-api` with what it never reaches
 * as keywarden builds it (form-data, follow-redirects, https-proxy-agent) replaced by stubs
 * (infra/bundling.ts BUNDLE_ALIASES). The bundled client still posts, and an upload, which would
 * need the real form-data, fails loudly instead of sending something else.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { LogLevel, WebClient } from '@slack/web-api';
import { type BuildOptions, build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebApiThreadPoster } from '../../functions/adapters/slack/web-api-poster.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import {
  BUNDLE_ALIASES,
  UNREACHED_CREDENTIAL_PROVIDERS,
  UNREACHED_SDK_MODULES,
} from '../../infra/bundling.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** As infra/bundling.ts builds a handler: ESM for node22, minified, with its externals and aliases. */
const HANDLER_LIKE: BuildOptions = {
  absWorkingDir: ROOT,
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  mainFields: ['module', 'main'],
  banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
  external: [...UNREACHED_CREDENTIAL_PROVIDERS, ...UNREACHED_SDK_MODULES],
  alias: { ...BUNDLE_ALIASES },
  metafile: true,
  logLevel: 'error',
};

/** The packages the stubs stand for, and those only they brought in. */
const LEFT_OUT = [
  'form-data',
  'combined-stream',
  'asynckit',
  'mime-types',
  'get-intrinsic',
  'follow-redirects',
  'https-proxy-agent',
  'agent-base',
  'debug',
];

const botToken = () =>
  `xoxb-${randomInt(1e9, 9e9)}-${randomInt(1e9, 9e9)}-${randomBytes(12).toString('hex')}`;

describe('bundling: the Slack client without what it never reaches (BUNDLE_ALIASES stubs)', () => {
  const directory = mkdtempSync(join(tmpdir(), 'keywarden-slack-stubs-'));
  const received: { path: string; contentType: string; body: Record<string, string> }[] = [];
  /** Slack's Web API on loopback, as the Slack specs play it (URL-encoded form in, JSON out). */
  const slack = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    request.on('end', () => {
      received.push({
        path: request.url ?? '',
        contentType: request.headers['content-type'] ?? '',
        body: Object.fromEntries(new URLSearchParams(text)),
      });
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ ok: true, channel: 'C0ALERTS', ts: '1700000000.000002' }));
    });
  });
  const slackApiUrl = () => `http://127.0.0.1:${(slack.address() as AddressInfo).port}/api/`;
  let poster: { file: string; inputs: string[] };
  let client: { file: string };

  beforeAll(async () => {
    await new Promise<void>((resolve) => slack.listen(0, '127.0.0.1', resolve));
    const posterFile = join(directory, 'poster.mjs');
    const built = await build({
      ...HANDLER_LIKE,
      entryPoints: ['functions/adapters/slack/web-api-poster.ts'],
      outfile: posterFile,
    });
    poster = { file: posterFile, inputs: Object.keys(built.metafile?.inputs ?? {}) };
    // The Web API client itself, bundled the same way, to try what the poster never does.
    const clientFile = join(directory, 'client.mjs');
    await build({
      ...HANDLER_LIKE,
      stdin: {
        contents: "export { LogLevel, WebClient } from '@slack/web-api';",
        resolveDir: ROOT,
        loader: 'ts',
      },
      outfile: clientFile,
    });
    client = { file: clientFile };
  });

  afterAll(async () => {
    await new Promise((resolve) => slack.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  });

  it('carries the stubs, not the packages they stand for', () => {
    for (const name of ['form-data', 'follow-redirects', 'https-proxy-agent']) {
      expect(poster.inputs).toContain(`functions/adapters/slack/bundle-stubs/${name}.cjs`);
    }
    for (const name of LEFT_OUT) {
      expect(
        poster.inputs.filter((input) => input.includes(`node_modules/${name}/`)),
        name,
      ).toEqual([]);
    }
    // One eventemitter3 (p-queue's own 4.x copy is aliased to the root's 5.x).
    expect(poster.inputs.filter((input) => input.includes('/eventemitter3/'))).toHaveLength(1);
  });

  it('posts a thread reply through the bundled client, URL-encoded as the unbundled one sends it', async () => {
    // Prepare
    const { WebApiThreadPoster: BundledPoster } = (await import(pathToFileURL(poster.file).href)) as {
      WebApiThreadPoster: typeof WebApiThreadPoster;
    };
    const bundled = new BundledPoster({ botToken: new SecretValue(botToken()), slackApiUrl: slackApiUrl() });
    received.length = 0;

    // Act
    const ts = await bundled.post(
      'C0ALERTS',
      { text: 'campaign INC-7: 2 of 2 targets revoked', blocks: [{ type: 'divider' }] },
      '1700000000.000000',
    );

    // Assess
    expect(ts).toBe('1700000000.000002');
    expect(received).toHaveLength(1);
    expect(received[0]?.path).toBe('/api/chat.postMessage');
    expect(received[0]?.contentType).toBe('application/x-www-form-urlencoded');
    expect(received[0]?.body).toMatchObject({
      channel: 'C0ALERTS',
      text: 'campaign INC-7: 2 of 2 targets revoked',
      thread_ts: '1700000000.000000',
      blocks: JSON.stringify([{ type: 'divider' }]),
    });
  });

  it('refuses an upload loudly: nothing reaches Slack without the real form-data', async () => {
    // Prepare: the bundled Web API client, one try per call.
    const { WebClient: BundledClient, LogLevel: BundledLogLevel } = (await import(
      pathToFileURL(client.file).href
    )) as { WebClient: typeof WebClient; LogLevel: typeof LogLevel };
    const web = new BundledClient(botToken(), {
      slackApiUrl: slackApiUrl(),
      retryConfig: { retries: 0 },
      logLevel: BundledLogLevel.ERROR,
    });
    received.length = 0;

    // Act: a call carrying a Buffer, which the client sends as a multipart body.
    const upload = web.apiCall('files.upload', { channels: 'C0ALERTS', file: Buffer.from('report') });

    // Assess
    await expect(upload).rejects.toThrow(/keywarden bundles no multipart form builder \(form-data\)/);
    expect(received).toHaveLength(0);
  });
});
