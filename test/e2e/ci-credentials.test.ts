import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateRoleCommand, GetRolePolicyCommand } from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iamClient } from '../../functions/adapters/aws/clients.ts';
import { signGithubPayload } from '../../functions/api/ci-webhooks.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { localAwsEndpoint } from '../../functions/local/aws-endpoint.ts';
import type { StackEndpoints } from '../../scripts/local-stack.ts';
import { type ForgeServer, startForgeServer } from '../support/forge-server.ts';
import { LocalOidcIssuer, type TokenClaims } from '../support/oidc-issuer.ts';
import {
  type CliRun,
  eventually,
  keywardenAsync,
  runtimeUrlOf,
  stackOf,
  vaultWriteKv,
} from './breakglass-support.ts';

interface AuditRecord {
  type: string;
  actor: string;
  subject: string;
  details: Record<string, unknown>;
}

/** An answer of the CI routes, as far as these scenarios read it. */
interface Answer {
  id: string;
  correlationId: string;
  ended?: boolean;
  by?: string;
  vault: { token: string };
  aws: Record<string, string>;
  error: { code: string; message: string; reason?: string; claim?: string };
}

const REPO_ID = '700100200';
const ROLE = 'arn:aws:iam::123456789012:role/ci/deploy-web';
const DIGEST = `sha256:${'5e'.repeat(32)}`;

/**
 * CI job credentials end to end, as a pipeline and its people use them: a local OIDC issuer
 * playing GitHub Actions' token service, the local runtime's `/ci/credentials`, the real OpenBao
 * and moto behind it, `keywarden approve` for the gates, GitHub's signed webhook, and the audit
 * trail read with the CLI. Every value a job received is searched for afterwards in everything
 * keywarden wrote.
 */
describe('CI job credentials: exchange, replay, refusals, early end, webhook end, gates, audit', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-ci-'));
  const issuer = new LocalOidcIssuer({ platform: 'github' });
  let forge: ForgeServer;
  const runs: CliRun[] = [];
  const received = new Set<string>();
  let stack: StackEndpoints;
  let url: string;

  const cli = async (actor: string, args: string[]): Promise<CliRun> => {
    const result = {
      ...(await keywardenAsync(args, { KEYWARDEN_HOME: home, KEYWARDEN_ACTOR: actor }, home)),
      args,
      actor,
    };
    runs.push(result);
    return result;
  };

  /** A job of the pinned repository on main (ids fresh per call unless given). */
  const job = (overrides: Record<string, unknown> = {}): TokenClaims =>
    issuer.githubClaims({ repository_id: REPO_ID, aud: 'keywarden', ...overrides });
  /** A fresh token of a job (a new jti each time). */
  const tokenOf = (claims: TokenClaims) =>
    issuer.mint({
      ...claims,
      jti: crypto.randomUUID(),
      iat: Math.floor(Date.now() / 1000),
      exp: Math.floor(Date.now() / 1000) + 300,
    });

  const exchangeWith = async (token: string, body: unknown) => {
    const response = await fetch(`${url}/ci/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as Answer;
    for (const value of [answer.vault?.token, answer.aws?.secretAccessKey, answer.aws?.sessionToken]) {
      if (typeof value === 'string') received.add(value);
    }
    return { status: response.status, answer };
  };

  const end = async (token: string, id: string) => {
    const response = await fetch(`${url}/ci/credentials/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: response.status, answer: (await response.json()) as Answer };
  };

  /** The token as OpenBao knows it, looked up with the root token (a job token holds exactly its grant's policies). */
  const vaultSelf = async (token: string) => {
    const response = await fetch(`${stack.vault.addr}/v1/auth/token/lookup`, {
      method: 'POST',
      headers: { 'x-vault-token': stack.vault.token, 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    return {
      status: response.status,
      data: response.ok
        ? ((await response.json()) as { data: Record<string, unknown> & { meta?: Record<string, string> } })
            .data
        : undefined,
    };
  };

  const auditRecords = async (): Promise<AuditRecord[]> => {
    const listed = await cli('alice', ['audit', 'list', '--limit', '1000', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout) as AuditRecord[];
  };

  beforeAll(async () => {
    await issuer.start();
    forge = await startForgeServer();
    const up = await keywardenAsync(['dev', 'up', '--users', 'bob,carol'], {
      KEYWARDEN_HOME: home,
      KEYWARDEN_ACTOR: 'alice',
      // The runtime's sweepers every 2 s: the CI sweeper reads OpenBao's audit log for the uses.
      KEYWARDEN_SWEEP_EVERY: '2',
      // The runtime reads finished jobs' logs from this GitHub (the local endpoint player).
      GITHUB_TOKEN: forge.githubToken,
      GITHUB_API_URL: forge.url,
    });
    expect(up.code, up.stderr).toBe(0);
    stack = stackOf(home);
    url = runtimeUrlOf(home);
    const iam = iamClient(localAwsEndpoint(stack));
    await iam.send(
      new CreateRoleCommand({
        RoleName: 'deploy-web',
        Path: '/ci/',
        AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }),
      }),
    );
    // What the build grant's policy lets a job read.
    await fetch(`${stack.vault.addr}/v1/sys/policies/acl/ci-build`, {
      method: 'PUT',
      headers: { 'x-vault-token': stack.vault.token },
      body: JSON.stringify({ policy: 'path "secret/data/ci-build/*" { capabilities = ["read"] }' }),
    });
    await vaultWriteKv(stack.vault.addr, stack.vault.token, 'ci-build/config', {
      registry: 'registry.example.com',
    });
    const inventory = join(home, 'identities.yaml');
    writeFileSync(
      inventory,
      `version: 1
identities: []
ci:
  issuers:
    - name: github
      preset: github
      issuer: ${issuer.issuer}
      jwksUrl: ${issuer.jwksUrl}
      audience: keywarden
  grants:
    - name: build
      issuer: github
      stage: build
      claims:
        repository_id: "${REPO_ID}"
        ref: refs/heads/main
        ref_protected: true
        runner_environment: github-hosted
      vault: { policies: [ci-build], ttl: 10m, numUses: 0 }
    - name: deploy-web
      issuer: github
      stage: deploy
      claims: { repository_id: "${REPO_ID}", ref: refs/heads/main }
      vault: { policies: [ci-deploy], ttl: 5m }
      aws: { roleArn: ${ROLE} }
      gate: { gate: promote, environment: prod }
  gates:
    - { gate: sign, environment: prod, localUsers: [alice, bob, carol] }
    - { gate: publish, environment: prod, localUsers: [alice, bob, carol] }
    - { gate: promote, environment: prod, localUsers: [alice, bob, carol] }
`,
    );
    const synced = await cli('alice', ['inventory', 'sync', inventory]);
    expect(synced.code, synced.stderr).toBe(0);
    expect(synced.stderr).toContain('2 CI job grant(s)');
  });

  afterAll(async () => {
    await issuer.stop();
    await forge?.close();
    const down = await keywardenAsync(['dev', 'down'], { KEYWARDEN_HOME: home });
    expect(down.code, down.stderr).toBe(0);
  });

  let buildJob: TokenClaims;
  let buildId = '';
  let buildToken = '';
  let buildAccessor = '';

  it("exchanges a job's OIDC token for a Vault token with the grant's policies, TTL and the job in its meta", async () => {
    // prepare
    buildJob = job();

    // act
    const { status, answer } = await exchangeWith(await tokenOf(buildJob), { grant: 'build' });

    // assess
    expect(status, JSON.stringify(answer)).toBe(201);
    buildId = answer.id;
    buildToken = answer.vault.token;
    const self = await vaultSelf(buildToken);
    expect(self.status).toBe(200);
    buildAccessor = String(self.data?.accessor);
    expect(self.data?.policies).toEqual(['ci-build']);
    // the job uses it: a read its policy allows
    const read = await fetch(`${stack.vault.addr}/v1/secret/data/ci-build/config`, {
      headers: { 'x-vault-token': buildToken },
    });
    expect(read.status).toBe(200);
    expect(self.data?.ttl).toBeLessThanOrEqual(600);
    expect(self.data?.renewable).toBe(false);
    expect(self.data?.meta?.keywarden_ci_job).toBe(answer.correlationId);
    expect(answer.correlationId).toContain(String(buildJob.run_id));
  });

  it("records the job token's first use, read from OpenBao's audit device, under the job's correlation id", async () => {
    // act
    const used = await eventually('the ci.credentials.used event of the build exchange', async () =>
      (await auditRecords()).find(
        (r) => r.type === 'ci.credentials.used' && r.details.exchangeId === buildId,
      ),
    );

    // assess
    expect(used.details).toMatchObject({
      grant: 'build',
      firstUse: expect.stringContaining('secret/data/ci-build/config'),
    });
    expect(used.details.from).toBe('127.0.0.1');
  });

  it('refuses the same token twice (replay), and a token whose ref does not match, naming the claim', async () => {
    // prepare
    const token = await tokenOf(job());
    const first = await exchangeWith(token, { grant: 'build' });

    // act
    const replay = await exchangeWith(token, { grant: 'build' });
    const branch = await tokenOf(job({ ref: 'refs/heads/evil' }));
    const mismatch = await exchangeWith(branch, { grant: 'build' });

    // assess
    expect(first.status).toBe(201);
    expect(replay).toMatchObject({
      status: 403,
      answer: { error: { code: 'refused', reason: 'replayed', claim: 'jti' } },
    });
    expect(mismatch).toMatchObject({
      status: 403,
      answer: { error: { reason: 'claim-mismatch', claim: 'ref' } },
    });
    expect(mismatch.answer.error.message).toContain('refs/heads/main');
    expect(JSON.stringify(mismatch.answer)).not.toContain(branch);
  });

  it('refuses a job whose repository id, ref protection or runner does not match, naming the claim', async () => {
    // act
    const repository = await exchangeWith(await tokenOf(job({ repository_id: '700100201' })), {
      grant: 'build',
    });
    const unprotected = await exchangeWith(await tokenOf(job({ ref_protected: 'false' })), {
      grant: 'build',
    });
    const selfHosted = await exchangeWith(await tokenOf(job({ runner_environment: 'self-hosted' })), {
      grant: 'build',
    });

    // assess
    expect(repository).toMatchObject({
      status: 403,
      answer: { error: { reason: 'claim-mismatch', claim: 'repository_id' } },
    });
    expect(unprotected).toMatchObject({ status: 403, answer: { error: { claim: 'ref_protected' } } });
    expect(selfHosted).toMatchObject({ status: 403, answer: { error: { claim: 'runner_environment' } } });
  });

  it('refuses tokens that do not verify with 401, naming the claim: expired, not yet valid, audience, untrusted issuer, alg none, HMAC', async () => {
    // prepare
    const stranger = await new LocalOidcIssuer({ platform: 'github' }).start();
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = [b64({ alg: 'none', typ: 'JWT' }), b64({ ...job(), jti: crypto.randomUUID() }), ''].join(
      '.',
    );

    // act
    const expired = await exchangeWith(
      await issuer.mint({ ...job(), jti: crypto.randomUUID() }, { expired: true }),
      { grant: 'build' },
    );
    const early = await exchangeWith(
      await issuer.mint({ ...job(), jti: crypto.randomUUID() }, { notYetValid: true }),
      { grant: 'build' },
    );
    const audience = await exchangeWith(await tokenOf(job({ aud: 'someone-else' })), { grant: 'build' });
    const untrusted = await exchangeWith(
      await stranger.mint({
        ...stranger.githubClaims({ repository_id: REPO_ID, aud: 'keywarden' }),
        jti: crypto.randomUUID(),
      }),
      { grant: 'build' },
    );
    const algNone = await exchangeWith(unsigned, { grant: 'build' });
    const hmac = await exchangeWith(
      await issuer.mint({ ...job(), jti: crypto.randomUUID() }, { alg: 'HS256' }),
      {
        grant: 'build',
      },
    );
    const unknown = await exchangeWith(
      await issuer.mint({ ...job(), jti: crypto.randomUUID() }, { signer: 'unknown' }),
      { grant: 'build' },
    );
    const garbage = await exchangeWith('not-a-jwt', { grant: 'build' });
    const none = await fetch(`${url}/ci/credentials`, { method: 'POST', body: '{"grant":"build"}' });
    await stranger.stop();

    // assess
    expect(expired).toMatchObject({ status: 401, answer: { error: { reason: 'expired', claim: 'exp' } } });
    expect(early).toMatchObject({
      status: 401,
      answer: { error: { reason: 'not-yet-valid', claim: 'nbf' } },
    });
    expect(audience).toMatchObject({ status: 401, answer: { error: { reason: 'audience', claim: 'aud' } } });
    expect(untrusted).toMatchObject({
      status: 401,
      answer: { error: { reason: 'issuer-untrusted', claim: 'iss' } },
    });
    expect(algNone).toMatchObject({ status: 401, answer: { error: { reason: 'algorithm', claim: 'alg' } } });
    expect(hmac).toMatchObject({ status: 401, answer: { error: { reason: 'algorithm', claim: 'alg' } } });
    expect(unknown.status).toBe(401);
    expect(garbage.status).toBe(401);
    expect(none.status).toBe(401);
  });

  it('ends the exchange early with a fresh token of the same job; a token of another job may not', async () => {
    // act
    const stranger = await end(await tokenOf(job()), buildId);
    const ended = await end(await tokenOf(buildJob), buildId);

    // assess
    expect(stranger).toMatchObject({ status: 403, answer: { error: { reason: 'not-same-job' } } });
    expect(ended).toMatchObject({ status: 200, answer: { id: buildId, ended: true, by: 'job' } });
    expect((await vaultSelf(buildToken)).status).not.toBe(200);
  });

  it('reports the ended job’s token, presented again by someone who kept it, as used-after-job-end in keywarden findings', async () => {
    // prepare: OpenBao refuses the dead token, and its audit device logs the attempt.
    const late = await fetch(`${stack.vault.addr}/v1/secret/data/ci-build/config`, {
      headers: { 'x-vault-token': buildToken },
    });
    expect(late.status).toBe(403);

    // act
    const found = await eventually('the used-after-job-end finding of the build exchange', async () => {
      const listed = await cli('alice', ['findings', '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      const findings = JSON.parse(listed.stdout) as {
        type: string;
        subject: string;
        message: string;
        handles: string[];
      }[];
      return findings.find((f) => f.type === 'used-after-job-end' && f.subject === `ci:${buildId}`);
    });

    // assess
    expect(found.handles).toEqual([buildAccessor]);
    expect(found.message).toContain(`exchange ${buildId}`);
    expect(found.message).toContain(
      'from 127.0.0.1 (openbao-audit: read secret/data/ci-build/config (refused: permission denied))',
    );
  });

  it("ends every credential of a job when GitHub's signed workflow_job completed webhook arrives", async () => {
    // prepare
    const claims = job();
    const issued = await exchangeWith(await tokenOf(claims), { grant: 'build' });
    const leaked = `s.${randomBytes(18).toString('base64url').replace(/[-_]/g, 'x').slice(0, 24)}`;
    received.add(leaked);
    forge.addGithubRun({
      owner: 'octo-org',
      repo: 'octo-repo',
      runId: Number(claims.run_id),
      jobs: [
        { id: Number(claims.check_run_id), name: 'build', log: `step 1\nexport VAULT_TOKEN=${leaked}\n` },
      ],
    });
    const config = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')) as {
      ci: { githubWebhookSecret: string };
    };
    const body = JSON.stringify({
      action: 'completed',
      workflow_job: {
        id: Number(claims.check_run_id),
        run_id: Number(claims.run_id),
        run_attempt: Number(claims.run_attempt),
        status: 'completed',
        conclusion: 'success',
        check_run_url: `https://api.github.com/repos/octo-org/octo-repo/check-runs/${claims.check_run_id}`,
      },
      repository: { id: Number(REPO_ID), full_name: 'octo-org/octo-repo' },
    });
    const post = (signature: string) =>
      fetch(`${url}/ci/webhooks/github`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'workflow_job',
          'x-hub-signature-256': signature,
        },
        body,
      });

    // act
    const forged = await post(`sha256=${'0'.repeat(64)}`);
    const delivered = await post(signGithubPayload(body, new SecretValue(config.ci.githubWebhookSecret)));

    // assess
    expect(issued.status).toBe(201);
    expect(forged.status).toBe(401);
    expect(await delivered.json()).toEqual({ ended: 1 });
    // the finished job's log, read through GitHub's API after the answer, is scanned
    const finding = await eventually('the job log exposure as a finding', async () => {
      const stored = await cli('alice', ['findings', '--stored', '--json']);
      const findings = JSON.parse(stored.stdout || '[]') as { type: string; message: string }[];
      return findings.find((f) => f.type === 'exposed-unmanaged' && f.message.includes('octo-org/octo-repo'));
    });
    expect(finding.message).toContain(String(claims.check_run_id));
    expect((await vaultSelf(issued.answer.vault.token)).status).not.toBe(200);
  });

  it('issues a gated deploy only for an approved digest, approved by people other than the job actor, in order', async () => {
    // prepare
    const deployJob = job({ actor: 'carol' });
    const noDigest = await exchangeWith(await tokenOf(deployJob), { grant: 'deploy-web' });
    const sign = await cli('alice', [
      'approve',
      '--digest',
      DIGEST,
      '--gate',
      'sign',
      '--environment',
      'prod',
    ]);
    const publish = await cli('bob', [
      'approve',
      '--digest',
      DIGEST,
      '--gate',
      'publish',
      '--environment',
      'prod',
    ]);
    const early = await exchangeWith(await tokenOf(deployJob), {
      grant: 'deploy-web',
      artifactDigest: DIGEST,
    });
    const promoteBySame = await cli('bob', [
      'approve',
      '--digest',
      DIGEST,
      '--gate',
      'promote',
      '--environment',
      'prod',
    ]);
    const promote = await cli('carol', [
      'approve',
      '--digest',
      DIGEST,
      '--gate',
      'promote',
      '--environment',
      'prod',
    ]);

    // act
    const byActor = await exchangeWith(await tokenOf(deployJob), {
      grant: 'deploy-web',
      artifactDigest: DIGEST,
    });
    const otherJob = job({ actor: 'octocat' });
    const issued = await exchangeWith(await tokenOf(otherJob), {
      grant: 'deploy-web',
      artifactDigest: DIGEST,
    });
    const verified = await cli('alice', ['approvals', 'verify', '--digest', DIGEST]);

    // assess
    expect(noDigest).toMatchObject({ status: 403, answer: { error: { reason: 'gate' } } });
    expect(sign.code, sign.stderr).toBe(0);
    expect(publish.code, publish.stderr).toBe(0);
    expect(early).toMatchObject({ status: 403, answer: { error: { reason: 'gate' } } });
    expect(promoteBySame.code).not.toBe(0);
    expect(promote.code, promote.stderr).toBe(0);
    expect(byActor).toMatchObject({ status: 403, answer: { error: { reason: 'gate' } } });
    expect(issued.status, JSON.stringify(issued.answer)).toBe(201);
    expect(issued.answer.aws).toMatchObject({ accessKeyId: expect.any(String), region: expect.any(String) });
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);

    // the job's post step ends both: the Vault token and, by a deny on its SourceIdentity, the session
    const ended = await end(await tokenOf(otherJob), issued.answer.id);
    expect(ended.status).toBe(200);
    const iam = iamClient(localAwsEndpoint(stack));
    const policy = await iam.send(
      new GetRolePolicyCommand({
        RoleName: 'deploy-web',
        PolicyName: `keywarden-ci-${issued.answer.correlationId}`,
      }),
    );
    expect(decodeURIComponent(policy.PolicyDocument ?? '')).toContain(issued.answer.correlationId);
  });

  it("audits issued, refused and ended as separate events under the job's correlation id, with no credential value anywhere", async () => {
    // act
    const records = await auditRecords();

    // assess
    const ofBuild = records.filter((r) => r.details.exchangeId === buildId);
    // issued, used and ended under the build job's id; the stranger's refused attempt under its own job's
    expect(ofBuild.map((r) => r.type)).toEqual([
      'ci.credentials.issued',
      'ci.credentials.used',
      'ci.credentials.refused',
      'ci.credentials.ended',
    ]);
    const [issuedEvent, usedEvent, refusedEvent, endedEvent] = ofBuild;
    expect(usedEvent?.subject).toBe(issuedEvent?.subject);
    expect(endedEvent?.subject).toBe(issuedEvent?.subject);
    expect(refusedEvent?.subject).not.toBe(issuedEvent?.subject);
    const refusals = records.filter((r) => r.type === 'ci.credentials.refused').map((r) => r.details.reason);
    expect(refusals).toEqual(
      expect.arrayContaining([
        'replayed',
        'claim-mismatch',
        'expired',
        'not-yet-valid',
        'audience',
        'issuer-untrusted',
        'algorithm',
        'not-same-job',
        'gate',
      ]),
    );
    const named = records
      .filter((r) => r.type === 'ci.credentials.refused')
      .map((r) => r.details.claim)
      .filter(Boolean);
    expect(named).toEqual(
      expect.arrayContaining([
        'jti',
        'ref',
        'repository_id',
        'ref_protected',
        'runner_environment',
        'exp',
        'nbf',
        'aud',
        'iss',
        'alg',
      ]),
    );
    expect(records.some((r) => r.type === 'ci.approval.recorded')).toBe(true);
    const everything = JSON.stringify(records) + runs.map((r) => r.stdout + r.stderr).join('\n');
    for (const value of received) expect(everything).not.toContain(value);
  });
});
