/**
 * The GitHub Action as GitHub runs it: `node action/dist/main.mjs`, later `post.mjs`, with the
 * inputs as `INPUT_*`, the file commands (`GITHUB_ENV`, `GITHUB_OUTPUT`, `GITHUB_STATE`) and the
 * runner's token service (`ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN`, here the local OIDC issuer).
 *
 * keywarden's side is a small loopback server answering `/ci/credentials` as the API documents
 * it, verifying each job token against the issuer's keys (so the spec sees which token, and
 * which job, each request carried); the exchange itself is specified against the local runtime
 * in the exchange's own specs and in test/e2e/ci-cli.test.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION_STATE } from '../../action/src/exchange.ts';
import { buildAction } from '../../scripts/build-action.ts';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { printed, readmeActionInputs, runStep, stateEnv } from '../support/github-runner.ts';
import { LocalOidcIssuer } from '../support/oidc-issuer.ts';

interface Seen {
  method: string;
  path: string;
  claims: JWTPayload;
  body: unknown;
}

/** keywarden's `/ci/credentials` as documented, over tokens it verifies; credentials are made up at run time. */
class KeywardenCiDouble {
  readonly seen: Seen[] = [];
  readonly issued: { id: string; secrets: string[] }[] = [];
  /** Answer DELETEs with this status (keywarden failing). */
  deleteStatus: number | undefined;
  #server: Server | undefined;
  url = '';

  constructor(private readonly issuer: LocalOidcIssuer) {}

  async start(): Promise<this> {
    const keys = createRemoteJWKSet(new URL(this.issuer.jwksUrl));
    this.#server = createServer((request, response) => {
      const json = (status: number, body: unknown) =>
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      this.#handle(request, keys)
        .then(([status, body]) => json(status, body))
        .catch(() => json(500, { error: { code: 'internal', message: 'keywarden failed' } }));
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  async #handle(
    request: IncomingMessage,
    keys: ReturnType<typeof createRemoteJWKSet>,
  ): Promise<[number, unknown]> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const body: unknown = text ? JSON.parse(text) : undefined;
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1] ?? '';
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(bearer, keys, {
        issuer: this.issuer.url,
        audience: 'keywarden',
        algorithms: ['RS256'],
      }));
    } catch {
      return [401, { error: { code: 'token-invalid', message: 'the job token does not verify' } }];
    }
    const path = new URL(request.url ?? '/', this.url).pathname;
    this.seen.push({ method: request.method ?? '', path, claims, body });
    if (request.method === 'POST' && path === '/ci/credentials') {
      const grant = (body as { grant?: string }).grant;
      if (grant !== 'release-publish') {
        return [
          403,
          {
            error: {
              code: 'refused',
              message: `grant ${grant}: expected claim ref to be "refs/heads/release", got ${JSON.stringify(claims.ref)}`,
              reason: 'claim-mismatch',
              claim: 'ref',
            },
          },
        ];
      }
      const id = `ci-${randomUUID()}`;
      const secret = (bytes: number) => randomBytes(bytes).toString('base64url');
      const expiresAt = new Date(Date.now() + 600_000).toISOString();
      const answer = {
        id,
        grant,
        correlationId: `ci-github-${String(claims.run_id)}.${String(claims.check_run_id)}`,
        expiresAt,
        vault: { token: `s.${secret(18)}`, accessor: secret(18), expiresAt, addr: 'http://127.0.0.1:8200' },
        aws: {
          accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
          secretAccessKey: secret(30),
          sessionToken: secret(120),
          expiresAt,
          region: 'eu-west-1',
        },
      };
      this.issued.push({
        id,
        secrets: [
          answer.vault.token,
          answer.aws.accessKeyId,
          answer.aws.secretAccessKey,
          answer.aws.sessionToken,
        ],
      });
      return [201, answer];
    }
    const ending = /^\/ci\/credentials\/([^/]+)$/.exec(path)?.[1];
    if (request.method === 'DELETE' && ending) {
      if (this.deleteStatus)
        return [this.deleteStatus, { error: { code: 'internal', message: 'keywarden failed' } }];
      return [200, { id: decodeURIComponent(ending), ended: true }];
    }
    return [404, { error: { code: 'not-found', message: 'no such route' } }];
  }
}

describe('the GitHub Action (action.yml) as the runner runs it', () => {
  let issuer: LocalOidcIssuer;
  let keywarden: KeywardenCiDouble;
  let workspace: string;

  beforeAll(async () => {
    issuer = await new LocalOidcIssuer().start();
    keywarden = await new KeywardenCiDouble(issuer).start();
    workspace = mkdtempSync(join(tmpdir(), 'keywarden-action-'));
  });

  afterAll(async () => {
    await keywarden?.stop();
    await issuer?.stop();
    if (workspace) rmSync(workspace, { recursive: true, force: true });
  });

  it('the committed action/dist is what scripts/build-action.ts builds from action/src', async () => {
    // act
    const built = await buildAction();
    // assess
    expect([...built.keys()].sort()).toEqual(['action/dist/main.mjs', 'action/dist/post.mjs']);
    for (const [path, text] of built) {
      expect(readFileSync(join(REPO_ROOT, path), 'utf8'), `${path} is stale: run npm run build:action`).toBe(
        text,
      );
    }
  });

  it("the README's workflow: main masks, exports and outputs the credentials and saves the id; post ends them with a fresh token", async () => {
    // prepare
    const runner = issuer.runnerEnv(issuer.githubClaims({ ref: 'refs/heads/release' }));
    const digest = `sha256:${randomBytes(32).toString('hex')}`;
    // The README's workflow, as GitHub would run its keywarden step.
    const { inputs, job } = readmeActionInputs({
      'vars.KEYWARDEN_URL': keywarden.url,
      'steps.build.outputs.digest': digest,
    });
    expect(job.permissions).toMatchObject({ 'id-token': 'write' });

    // act
    const main = await runStep('main', workspace, { ...inputs, ...runner });

    // assess: the exchange asked for the grant and digest with the job's token
    expect(main.code, main.stdout).toBe(0);
    const exchange = keywarden.seen.at(-1);
    expect(exchange).toMatchObject({
      method: 'POST',
      path: '/ci/credentials',
      body: { grant: 'release-publish', artifactDigest: digest },
    });
    const issued = keywarden.issued.at(-1);
    if (!issued || !exchange) throw new Error('keywarden saw no exchange');
    // assess: every secret is masked before any other line the step wrote after the exchange
    const lines = main.stdout.split('\n');
    const masked = new Set(lines.filter((l) => l.startsWith('::add-mask::')).map((l) => l.slice(12)));
    for (const secret of issued.secrets) expect(masked.has(secret)).toBe(true);
    const lastMask = lines.map((l) => l.startsWith('::add-mask::')).lastIndexOf(true);
    const firstWord = lines.findIndex(
      (l) => l.length > 0 && !l.startsWith('::add-mask::') && !l.startsWith('::debug::'),
    );
    expect(firstWord).toBeGreaterThan(lastMask);
    expect(lines[firstWord]).toMatch(
      /^keywarden: grant release-publish issued a Vault token .* and an AWS session in eu-west-1/,
    );
    // assess: nothing printed holds a secret, nor the job token
    const [vaultToken, accessKeyId, secretAccessKey, sessionToken] = issued.secrets;
    for (const line of printed(main)) {
      for (const secret of issued.secrets) expect(line).not.toContain(secret);
      expect(line).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\./);
    }
    // assess: exported to the job's later steps, outputs set, the id saved for post
    expect(main.env).toEqual({
      KEYWARDEN_CI_ID: issued.id,
      VAULT_ADDR: 'http://127.0.0.1:8200',
      VAULT_TOKEN: vaultToken,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_SESSION_TOKEN: sessionToken,
      AWS_REGION: 'eu-west-1',
      AWS_DEFAULT_REGION: 'eu-west-1',
    });
    expect(main.outputs).toMatchObject({
      id: issued.id,
      'vault-token': vaultToken,
      'aws-session-token': sessionToken,
      'aws-region': 'eu-west-1',
    });
    expect(main.state).toEqual({
      [ACTION_STATE.id]: issued.id,
      [ACTION_STATE.url]: keywarden.url,
      [ACTION_STATE.audience]: 'keywarden',
    });

    // act: the post step, later in the job
    const post = await runStep('post', workspace, { ...inputs, ...runner, ...stateEnv(main.state) });

    // assess: DELETE of that id, with a new token of the same job
    expect(post.code, post.stdout).toBe(0);
    const ending = keywarden.seen.at(-1);
    expect(ending).toMatchObject({ method: 'DELETE', path: `/ci/credentials/${issued.id}` });
    expect(ending?.claims.jti).not.toBe(exchange.claims.jti);
    for (const claim of ['repository_id', 'run_id', 'run_attempt', 'check_run_id'])
      expect(ending?.claims[claim]).toBe(exchange.claims[claim]);
    expect(post.stdout).toContain(`keywarden: exchange ${issued.id} ended`);
  });

  it("a refusal fails the step with keywarden's message (the claim), never the token, and saves nothing", async () => {
    // prepare
    const runner = issuer.runnerEnv(issuer.githubClaims({ ref: 'refs/heads/feature' }));
    const before = keywarden.issued.length;

    // act
    const main = await runStep('main', workspace, {
      INPUT_URL: keywarden.url,
      INPUT_GRANT: 'release-deploy',
      ...runner,
    });

    // assess
    expect(main.code).toBe(1);
    expect(main.stdout).toContain(
      '::error::keywarden refused the exchange: grant release-deploy: expected claim ref to be "refs/heads/release", got "refs/heads/feature" (the grant does not allow this job)',
    );
    for (const line of printed(main)) expect(line).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\./);
    expect(keywarden.issued.length).toBe(before);
    expect(main.state).toEqual({});
    expect(main.env).toEqual({});

    // act: the post step of that job has nothing to end
    const seen = keywarden.seen.length;
    const post = await runStep('post', workspace, { INPUT_URL: keywarden.url, ...runner });
    // assess
    expect(post.code).toBe(0);
    expect(post.stdout).toContain('nothing to end');
    expect(keywarden.seen.length).toBe(seen);
  });

  it('export: false keeps the credentials out of the environment (outputs only)', async () => {
    // prepare
    const runner = issuer.runnerEnv(issuer.githubClaims({ ref: 'refs/heads/release' }));
    // act
    const main = await runStep('main', workspace, {
      INPUT_URL: keywarden.url,
      INPUT_GRANT: 'release-publish',
      INPUT_EXPORT: 'false',
      ...runner,
    });
    // assess
    expect(main.code, main.stdout).toBe(0);
    expect(main.env).toEqual({});
    expect(main.outputs['vault-token']).toBe(keywarden.issued.at(-1)?.secrets[0]);
  });

  it('a post step that cannot end the credentials warns and passes (webhook and TTL remain), naming no secret', async () => {
    // prepare
    const runner = issuer.runnerEnv(issuer.githubClaims({ ref: 'refs/heads/release' }));
    const inputs = { INPUT_URL: keywarden.url, INPUT_GRANT: 'release-publish' };
    const main = await runStep('main', workspace, { ...inputs, ...runner });
    keywarden.deleteStatus = 500;

    // act
    const post = await runStep('post', workspace, { ...inputs, ...runner, ...stateEnv(main.state) });
    keywarden.deleteStatus = undefined;

    // assess
    expect(post.code).toBe(0);
    expect(post.stdout).toMatch(
      /::warning::keywarden: could not end exchange ci-[\w-]+ \(keywarden failed\); the job-completion webhook or the credentials' TTL ends them/,
    );
    for (const line of printed(post)) {
      for (const secret of keywarden.issued.at(-1)?.secrets ?? []) expect(line).not.toContain(secret);
      expect(line).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\./);
    }
  });

  it('a job without id-token: write fails with what to grant', async () => {
    // act
    const main = await runStep('main', workspace, {
      INPUT_URL: keywarden.url,
      INPUT_GRANT: 'release-publish',
    });
    // assess
    expect(main.code).toBe(1);
    expect(main.stdout).toContain(
      '::error::keywarden: expected an OIDC token from the runner, got none: give the job `permissions: id-token: write`',
    );
  });
});
