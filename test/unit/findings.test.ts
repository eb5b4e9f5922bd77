import { describe, expect, it } from 'vitest';
import type { DiscoveredCredential, DiscoveryHints } from '../../functions/core/discovery.ts';
import { runDiscovery } from '../../functions/core/discovery-run.ts';
import { assessFindings } from '../../functions/core/findings.ts';
import type { DiscoverySource } from '../../functions/core/ports.ts';
import { breakglassRole, breakglassSectionOf, FixedClock, identity } from '../support/fixtures.ts';
import { MemoryAuditLog, MemoryIdentityStore, MemoryRotationStore } from '../support/memory-stores.ts';

const now = new Date('2026-11-21T00:00:00Z');
const daysAgo = (days: number) => new Date(now.getTime() - days * 86_400_000).toISOString();
const found = (
  over: Partial<DiscoveredCredential> & Pick<DiscoveredCredential, 'key' | 'kind'>,
): DiscoveredCredential => ({
  handle: `${over.key}#1`,
  label: over.key,
  status: 'active',
  createdAt: daysAgo(1),
  details: {},
  ...over,
});
const assess = (...args: Parameters<typeof assessFindings>) => assessFindings(args[0], args[1], args[2]);
const typesOf = (findings: ReturnType<typeof assessFindings>) =>
  findings.map((f) => `${f.type} ${f.subject}`);

describe('findings', () => {
  const options = { now, staleAfter: '90d' };

  it('reports nothing for a declared, owned, young credential in one stage', () => {
    const app = identity({ id: 'app', kind: 'aws-iam-access-key' });
    expect(
      assess(
        [app],
        [found({ key: 'aws-iam-user:app-user', kind: 'aws-iam-access-key', lastUsedAt: daysAgo(1) })],
        options,
      ),
    ).toEqual([]);
  });

  it('reports a credential that exists but is not declared', () => {
    const findings = assess(
      [],
      [found({ key: 'aws-iam-user:legacy-bot', kind: 'aws-iam-access-key', handle: 'AKIDLEGACY' })],
      options,
    );
    expect(findings).toMatchObject([
      { type: 'undeclared', severity: 'high', subject: 'aws-iam-user:legacy-bot', handles: ['AKIDLEGACY'] },
    ]);
  });

  it('reports an identity declared but not found, except lease prefixes', () => {
    const findings = assess(
      [identity({ id: 'gone' }), identity({ id: 'leases', kind: 'vault-lease' })],
      [],
      options,
    );
    expect(typesOf(findings)).toEqual(['missing gone']);
  });

  it('reports an identity without an owner', () => {
    const { owner: _, ...rest } = identity({ id: 'orphan' });
    const findings = assess([rest], [found({ key: 'vault-kv:secret/ci/orphan', kind: 'vault-kv' })], options);
    expect(typesOf(findings)).toEqual(['no-owner orphan']);
  });

  it('reports a credential older than its max age, naming the age', () => {
    const app = identity({
      id: 'app',
      kind: 'aws-iam-access-key',
      policy: { maxAge: '90d', rotateEvery: '30d' },
    });
    const findings = assess(
      [app],
      [
        found({
          key: 'aws-iam-user:app-user',
          kind: 'aws-iam-access-key',
          createdAt: daysAgo(200),
          lastUsedAt: daysAgo(1),
        }),
      ],
      options,
    );
    expect(findings).toMatchObject([{ type: 'over-max-age', severity: 'high', subject: 'app' }]);
    expect(findings[0]?.message).toContain('200d old, over its max age of 90d');
  });

  it('ignores an inactive key when judging age', () => {
    const app = identity({ id: 'app', kind: 'aws-iam-access-key' });
    const findings = assess(
      [app],
      [
        found({
          key: 'aws-iam-user:app-user',
          kind: 'aws-iam-access-key',
          status: 'inactive',
          createdAt: daysAgo(400),
        }),
      ],
      options,
    );
    expect(findings).toEqual([]);
  });

  it('reports a credential unused for longer than the stale window, or never used and that old', () => {
    const docs = identity({
      id: 'docs',
      kind: 'aws-iam-access-key',
      policy: { maxAge: '365d', rotateEvery: '90d' },
    });
    const idle = assess(
      [docs],
      [
        found({
          key: 'aws-iam-user:docs-user',
          kind: 'aws-iam-access-key',
          createdAt: daysAgo(150),
          lastUsedAt: daysAgo(120),
        }),
      ],
      options,
    );
    const never = assess(
      [docs],
      [found({ key: 'aws-iam-user:docs-user', kind: 'aws-iam-access-key', createdAt: daysAgo(100) })],
      options,
    );
    expect(typesOf(idle)).toEqual(['stale docs']);
    expect(idle[0]?.message).toContain('last used 120d ago');
    expect(never[0]?.message).toContain('never used');
  });

  it('reports one value used in two environments, by fingerprint, naming both identities', () => {
    const staging = identity({
      id: 'db-staging',
      kind: 'aws-secret',
      pipeline: { repo: 'acme/app', stage: 'test', environment: 'staging' },
    });
    const prod = identity({
      id: 'db-prod',
      kind: 'aws-secret',
      pipeline: { repo: 'acme/app', stage: 'deploy', environment: 'prod' },
    });
    const findings = assess(
      [staging, prod],
      [
        found({ key: 'aws-secret:ci/db-staging', kind: 'aws-secret', fingerprint: 'hmac-sha256:aaaa' }),
        found({ key: 'aws-secret:ci/db-prod', kind: 'aws-secret', fingerprint: 'hmac-sha256:aaaa' }),
      ],
      options,
    );
    expect(findings).toMatchObject([
      { type: 'reused-across-environments', severity: 'critical', identityIds: ['db-prod', 'db-staging'] },
    ]);
  });

  it('does not call a value shared inside one environment a cross-environment reuse', () => {
    const a = identity({ id: 'a', kind: 'aws-secret' });
    const b = identity({ id: 'b', kind: 'aws-secret' });
    const findings = assess(
      [a, b],
      [
        found({ key: 'aws-secret:ci/a', kind: 'aws-secret', fingerprint: 'hmac-sha256:bbbb' }),
        found({ key: 'aws-secret:ci/b', kind: 'aws-secret', fingerprint: 'hmac-sha256:bbbb' }),
      ],
      options,
    );
    expect(findings).toEqual([]);
  });

  it('attributes a delivery target to the identity that writes it', () => {
    const app = identity({
      id: 'app',
      kind: 'aws-iam-access-key',
      delivery: { type: 'aws-secret', secretId: 'ci/app/key' },
    });
    const findings = assess(
      [app],
      [
        found({ key: 'aws-iam-user:app-user', kind: 'aws-iam-access-key', lastUsedAt: daysAgo(1) }),
        found({ key: 'aws-secret:ci/app/key', kind: 'aws-secret' }),
      ],
      options,
    );
    expect(findings).toEqual([]);
  });

  it('reports one identity serving two of sign, publish and deploy', () => {
    const signer = identity({
      id: 'signer',
      pipeline: { repo: 'acme/rel', stage: ['sign', 'deploy'], environment: 'prod' },
    });
    const findings = assess(
      [signer],
      [found({ key: 'vault-kv:secret/ci/signer', kind: 'vault-kv' })],
      options,
    );
    expect(findings).toMatchObject([{ type: 'separation-of-duties', subject: 'signer' }]);
  });

  it('reports two identities of different privileged stages on one credential', () => {
    const sign = identity({
      id: 'sign',
      scope: { path: 'ci/shared' },
      pipeline: { repo: 'acme/rel', stage: 'sign', environment: 'prod' },
    });
    const deploy = identity({
      id: 'deploy',
      scope: { path: 'ci/shared' },
      pipeline: { repo: 'acme/rel', stage: 'deploy', environment: 'prod' },
    });
    const findings = assess(
      [sign, deploy],
      [found({ key: 'vault-kv:secret/ci/shared', kind: 'vault-kv' })],
      options,
    );
    expect(findings).toMatchObject([
      { type: 'separation-of-duties', subject: 'vault-kv:secret/ci/shared', identityIds: ['sign', 'deploy'] },
    ]);
  });

  it('orders findings most severe first', () => {
    const { owner: _, ...noOwner } = identity({ id: 'x' });
    const findings = assess(
      [noOwner],
      [found({ key: 'aws-iam-user:ghost', kind: 'aws-iam-access-key' })],
      options,
    );
    expect(findings.map((f) => f.severity)).toEqual(['high', 'medium', 'medium']);
  });

  describe('break-glass roles', () => {
    const prodAdmin = breakglassRole('prod-admin', {
      type: 'aws-role',
      roleArn: 'arn:aws:iam::123456789012:role/breakglass/prod-admin',
    });
    const prodDb = breakglassRole('prod-db-read', {
      type: 'vault-policies',
      policies: ['breakglass-prod-db'],
    });
    const adminRole = found({
      key: 'aws-role:prod-admin',
      kind: 'aws-role-session',
      handle: 'arn:aws:iam::123456789012:role/breakglass/prod-admin',
    });

    it('counts the IAM role a break-glass role assumes as declared, whatever its path', () => {
      expect(assess([], [adminRole], { ...options, breakglassRoles: [prodAdmin, prodDb] })).toEqual([]);
    });

    it('reports a break-glass role whose IAM role does not exist as missing, and still knows nothing of others', () => {
      const findings = assess([], [], { ...options, breakglassRoles: [prodAdmin, prodDb] });
      expect(findings).toMatchObject([
        {
          type: 'missing',
          severity: 'medium',
          subject: 'breakglass:prod-admin',
          identityIds: [],
          message: expect.stringContaining('a request for it would fail'),
        },
      ]);
      expect(typesOf(assess([], [adminRole], options))).toEqual(['undeclared aws-role:prod-admin']);
    });
  });

  it('reconciles a vault-token declared by accessor once discovery keys its token to the identity', () => {
    const legacy = identity({
      id: 'legacy-token',
      kind: 'vault-token',
      scope: { accessor: 'AbCdEfGh12345678' },
    });
    const token = found({ key: 'vault-token:legacy-token', kind: 'vault-token', handle: 'AbCdEfGh12345678' });
    expect(assess([legacy], [token], options)).toEqual([]);
    expect(typesOf(assess([legacy], [], options))).toEqual(['missing legacy-token']);
  });
});

describe('discovery run', () => {
  const clock = new FixedClock(now);

  /** A source that answers what it is given and records the hints it was called with. */
  class RecordingSource implements DiscoverySource {
    readonly name = 'recording';
    hints: DiscoveryHints | undefined;
    constructor(readonly answer: DiscoveredCredential[]) {}
    async discover(hints: DiscoveryHints) {
      this.hints = hints;
      return this.answer;
    }
  }

  const setUp = async (answer: DiscoveredCredential[]) => {
    const identities = new MemoryIdentityStore();
    const versions = new MemoryRotationStore();
    const declared = [
      identity({ id: 'outside-prefix', kind: 'aws-secret', scope: { secretId: 'legacy/app/db' } }),
      identity({ id: 'leases', kind: 'vault-lease', scope: { prefix: '/auth/approle/login/' } }),
      identity({ id: 'retired', kind: 'aws-iam-access-key' }),
    ];
    for (const item of declared) {
      await identities.putIdentity(
        {
          identity: item,
          status: item.id === 'retired' ? 'retired' : 'active',
          declarationHash: item.id,
          syncedAt: now.toISOString(),
        },
        undefined,
      );
    }
    const source = new RecordingSource(answer);
    const deps = {
      sources: [source],
      store: {
        listIdentities: () => identities.listIdentities(),
        listVersions: (id: string) => versions.listVersions(id),
        saveFindings: async () => {},
      },
      audit: new MemoryAuditLog(clock),
      clock,
      newId: () => 'run-1',
      breakglass: breakglassSectionOf(
        breakglassRole('prod-admin', {
          type: 'aws-role',
          roleArn: 'arn:aws:iam::123456789012:role/breakglass/prod-admin',
        }),
      ),
    };
    return { source, deps };
  };

  it('gives each source the active identities, the lease prefixes and the break-glass role ARNs as hints', async () => {
    const { source, deps } = await setUp([]);
    await runDiscovery(deps, { staleAfter: '90d', actor: 'test' });
    expect(source.hints?.leasePrefixes).toEqual(['auth/approle/login']);
    expect(source.hints?.identities.map((item) => item.id)).toEqual(['leases', 'outside-prefix']);
    expect(source.hints?.breakglassRoleArns).toEqual([
      'arn:aws:iam::123456789012:role/breakglass/prod-admin',
    ]);
  });

  it('reports neither a declared secret a source looked up directly nor the break-glass role as a problem', async () => {
    const { deps } = await setUp([
      found({ key: 'aws-secret:legacy/app/db', kind: 'aws-secret' }),
      found({ key: 'aws-role:prod-admin', kind: 'aws-role-session' }),
    ]);
    const run = await runDiscovery(deps, { staleAfter: '90d', actor: 'test' });
    expect(run.findings).toEqual([]);
  });
});
