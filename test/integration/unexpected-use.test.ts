/**
 * Use from where it should not be, read from the local OpenBao's file audit device: tokens are
 * used from this machine (OpenBao sees 127.0.0.1), so an identity whose allowedRunners leave out
 * loopback gets the finding and one allowing 127.0.0.0/8 does not.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { BlockListRanges } from '../../functions/adapters/address-ranges.ts';
import { VaultAuditRemoteUse } from '../../functions/adapters/vault/audit-remote-use.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { CiCredentialRecord } from '../../functions/core/ci-records.ts';
import { type DiscoveryRun, runDiscovery } from '../../functions/core/discovery-run.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { credentialsToContain, findUnexpectedUse } from '../../functions/core/unexpected-use.ts';
import { FixedClock, identity } from '../support/fixtures.ts';
import { MemoryAuditLog, MemoryIdentityStore } from '../support/memory-stores.ts';
import { newVaultClient, testStack, uniqueName } from '../support/stack.ts';

/** A token of the default policy (it may look itself up), its accessor; the value stays in the client. */
async function newToken(root: VaultClient): Promise<{ accessor: string; client: VaultClient }> {
  const answer = await root.write('auth/token/create-orphan', {
    policies: ['default'],
    ttl: '10m',
    display_name: uniqueName('kw-unexpected'),
  });
  const auth = answer.auth as { client_token: string; accessor: string };
  return { accessor: auth.accessor, client: newVaultClient(auth.client_token) };
}

describe('unexpected use, from the OpenBao audit device (local stack)', () => {
  const root = newVaultClient();
  const clock = new FixedClock(new Date());
  const trail = () => new VaultAuditRemoteUse({ client: root, logFile: testStack().vault.auditLog });
  let outside: { accessor: string; client: VaultClient };
  let inside: { accessor: string; client: VaultClient };
  let identities: Identity[];

  beforeAll(async () => {
    outside = await newToken(root);
    inside = await newToken(root);
    identities = [
      identity({
        id: uniqueName('deploy-prod'),
        kind: 'vault-token',
        scope: { accessor: outside.accessor },
        allowedRunners: { cidrs: ['10.20.0.0/16', 'fd00:c1::/48'] },
        policy: { onUnexpectedUse: 'contain' },
      }),
      identity({
        id: uniqueName('build'),
        kind: 'vault-token',
        scope: { accessor: inside.accessor },
        allowedRunners: { cidrs: ['127.0.0.0/8'] },
      }),
    ];
    // act (for every spec): each token is used once, from this machine.
    await outside.client.read('auth/token/lookup-self');
    await inside.client.read('auth/token/lookup-self');
  });

  /** One discovery run with no discovery sources: the inventory and the audit trail only. */
  async function discover(ciRecords: CiCredentialRecord[] = []): Promise<DiscoveryRun> {
    const store = new MemoryIdentityStore();
    for (const item of identities) {
      await store.putIdentity(
        { identity: item, status: 'active', declarationHash: item.id, syncedAt: clock.now().toISOString() },
        undefined,
      );
    }
    return runDiscovery(
      {
        sources: [],
        store: {
          listIdentities: () => store.listIdentities(),
          listVersions: async () => [],
          saveFindings: async () => {},
        },
        audit: new MemoryAuditLog(clock),
        clock,
        newId: () => uniqueName('run'),
        usage: { trails: [trail()], ranges: new BlockListRanges(), ciRecords: async () => ciRecords },
      },
      { staleAfter: '90d', actor: 'test' },
    );
  }

  /** The device writes a line as the request is answered: allow the file a moment. */
  async function until(run: () => Promise<DiscoveryRun>, done: (r: DiscoveryRun) => boolean) {
    let result = await run();
    for (let tries = 0; tries < 20 && !done(result); tries++) {
      await sleep(100);
      result = await run();
    }
    return result;
  }

  it('finds a token used from 127.0.0.1 outside its allowedRunners, and not one allowing 127.0.0.0/8', async () => {
    // act
    const run = await until(discover, (r) => r.findings.some((f) => f.handles.includes(outside.accessor)));
    // assess
    const [deploy, build] = identities as [Identity, Identity];
    const unexpected = run.findings.filter((f) => f.type === 'used-from-unexpected-runner');
    expect(unexpected).toEqual([
      expect.objectContaining({
        id: `used-from-unexpected-runner:${deploy.id}:${outside.accessor}`,
        severity: 'high',
        identityIds: [deploy.id],
        handles: [outside.accessor],
      }),
    ]);
    expect(unexpected[0]?.message).toMatch(
      new RegExp(
        `^${deploy.id}: ${outside.accessor} was used from 127\\.0\\.0\\.1 at \\S+ \\(openbao-audit: read auth/token/lookup-self\\), outside its allowedRunners \\(cidrs 10\\.20\\.0\\.0/16, fd00:c1::/48\\); policy\\.onUnexpectedUse is contain$`,
      ),
    );
    // The allowed token's use is in the trail (so its absence from the findings means something).
    expect(await trail().usesOf([{ handle: inside.accessor, kind: 'vault-accessor' }])).toContainEqual(
      expect.objectContaining({ handle: inside.accessor, from: '127.0.0.1', source: 'openbao-audit' }),
    );
    expect(run.findings.some((f) => f.identityIds.includes(build.id) && f.type.startsWith('used-'))).toBe(
      false,
    );
    // policy.onUnexpectedUse: contain hands the used token to containment.
    expect(credentialsToContain(run.findings, identities, new Map())).toEqual([
      {
        findingId: unexpected[0]?.id,
        identityId: deploy.id,
        handle: outside.accessor,
        fingerprint: undefined,
        owner: deploy.owner,
        // discovery's findings carry no uses: the finding says where
        where: unexpected[0]?.message,
      },
    ]);
  });

  it('finds an AppRole identity’s login and its token’s requests from outside, by role (the secret-id cannot be told)', async () => {
    // prepare: a role on its own mount, a secret-id, a login and one request with its token.
    const mount = uniqueName('approle');
    await root.write(`sys/auth/${mount}`, { type: 'approle' });
    await root.write(`auth/${mount}/role/deploy`, { token_policies: ['default'], token_ttl: '10m' });
    const roleId = (await root.read(`auth/${mount}/role/deploy/role-id`))?.data?.role_id as string;
    const secretId = (await root.write(`auth/${mount}/role/deploy/secret-id`, {})).data?.secret_id as string;
    const login = await fetch(`${testStack().vault.addr}/v1/auth/${mount}/login`, {
      method: 'POST',
      body: JSON.stringify({ role_id: roleId, secret_id: secretId }),
    });
    const token = ((await login.json()) as { auth: { client_token: string } }).auth.client_token;
    await newVaultClient(token).read('auth/token/lookup-self');
    const approle = identity({
      id: uniqueName('approle-deploy'),
      kind: 'vault-approle-secret-id',
      scope: { mount, roleName: 'deploy' },
      allowedRunners: { cidrs: ['10.20.0.0/16'] },
    });
    // act
    const uses = await trail().usesOf([{ handle: `${mount}/deploy`, kind: 'vault-approle-role' }]);
    const findings = await findUnexpectedUse(
      { trails: [trail()], ranges: new BlockListRanges() },
      { identities: [approle], versions: new Map(), discovered: [] },
    );
    // assess
    expect(uses.map((u) => [u.handle, u.action, u.from])).toEqual([
      [`${mount}/deploy`, `update auth/${mount}/login`, '127.0.0.1'],
      [`${mount}/deploy`, 'read auth/token/lookup-self', '127.0.0.1'],
    ]);
    expect(findings).toEqual([
      expect.objectContaining({
        id: `used-from-unexpected-runner:${approle.id}:${mount}/deploy`,
        handles: [`${mount}/deploy`],
      }),
    ]);
    expect(findings[0]?.message).toContain('was used from 127.0.0.1 2 times');
  });

  it('finds a CI job token used after its job ended, from the same audit log', async () => {
    // prepare: a job whose credentials were recorded as ended before its token made a request.
    const job = await newToken(root);
    const endedAt = new Date(Date.now() - 1000).toISOString();
    await job.client.read('auth/token/lookup-self');
    const record: CiCredentialRecord = {
      id: uniqueName('ci'),
      grant: 'deploy-prod',
      issuer: 'github',
      jobKey: 'github:acme/app:run-1:deploy',
      correlationId: uniqueName('ci'),
      jobIds: { run_id: '1' },
      issuedAt: new Date(Date.now() - 60_000).toISOString(),
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
      vault: { accessor: job.accessor, expiresAt: new Date(Date.now() + 600_000).toISOString() },
      state: 'ended',
      ended: { at: endedAt, by: 'job' },
      usedRecorded: true,
    };
    // act
    const run = await until(
      () => discover([record]),
      (r) => r.findings.some((f) => f.type === 'used-after-job-end'),
    );
    // assess
    expect(run.findings.filter((f) => f.type === 'used-after-job-end')).toEqual([
      expect.objectContaining({ subject: `ci:${record.id}`, severity: 'high', handles: [job.accessor] }),
    ]);
  });

  it('finds a CI job token presented after its job ended and its token was revoked: the refused request, by the token the device paired with the accessor', async () => {
    // prepare: the job's token is revoked at its end, as keywarden ends it (by accessor); then
    // someone who kept a copy presents it. The device logs that refused request without an
    // accessor, only the token's HMAC.
    const job = await newToken(root);
    await root.write('auth/token/revoke-accessor', { accessor: job.accessor });
    const endedAt = new Date().toISOString();
    await sleep(5);
    await expect(job.client.read('auth/token/lookup-self')).rejects.toThrow();
    const record: CiCredentialRecord = {
      id: uniqueName('ci'),
      grant: 'deploy-prod',
      issuer: 'github',
      jobKey: 'github:acme/app:run-2:deploy',
      correlationId: uniqueName('ci'),
      jobIds: { run_id: '2' },
      issuedAt: new Date(Date.now() - 60_000).toISOString(),
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
      vault: { accessor: job.accessor, expiresAt: new Date(Date.now() + 600_000).toISOString() },
      state: 'ended',
      ended: { at: endedAt, by: 'job' },
      usedRecorded: false,
    };
    // act
    const run = await until(
      () => discover([record]),
      (r) => r.findings.some((f) => f.subject === `ci:${record.id}`),
    );
    // assess
    const found = run.findings.filter((f) => f.subject === `ci:${record.id}`);
    expect(found).toEqual([
      expect.objectContaining({ type: 'used-after-job-end', severity: 'high', handles: [job.accessor] }),
    ]);
    expect(found[0]?.message).toContain('once after its credentials ended');
    expect(found[0]?.message).toContain(
      'from 127.0.0.1 (openbao-audit: read auth/token/lookup-self (refused: permission denied))',
    );
  });
});
