import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlockListRanges } from '../../functions/adapters/address-ranges.ts';
import { managedUseOf } from '../../functions/adapters/aws/cloudtrail-event.ts';
import type { CiCredentialRecord } from '../../functions/core/ci-records.ts';
import type { CredentialVersion } from '../../functions/core/credential-version.ts';
import { IdentitySchema } from '../../functions/core/identity.ts';
import type { ExposureContainment } from '../../functions/core/ports.ts';
import {
  afterJobEndFindings,
  containUnexpectedUse,
  credentialsToContain,
  findUnexpectedUse,
  type HandleUse,
  type ObservedUse,
  type UseTrail,
  unexpectedRunnerFindings,
} from '../../functions/core/unexpected-use.ts';
import { credentialVersion, FixedClock, identity } from '../support/fixtures.ts';
import { MemoryAuditLog } from '../support/memory-stores.ts';

const ranges = new BlockListRanges();
/** A handle shaped like an accessor, made at run time. */
const handle = () => randomBytes(12).toString('hex');
const use = (over: Partial<ObservedUse> & Pick<ObservedUse, 'identityId' | 'handle'>): ObservedUse => ({
  at: '2026-12-05T08:00:00.000Z',
  action: 'read secret/data/app',
  source: 'openbao-audit',
  ...over,
});

describe('allowedRunners in the inventory', () => {
  it('accepts IPv4 and IPv6 CIDR ranges and labels; policy.onUnexpectedUse defaults to report', () => {
    const parsed = identity({
      id: 'deploy',
      kind: 'vault-token',
      allowedRunners: { cidrs: ['10.20.0.0/16', 'fd00:c1::/48'], labels: ['prod-runner'] },
    });
    expect(parsed.allowedRunners).toEqual({
      cidrs: ['10.20.0.0/16', 'fd00:c1::/48'],
      labels: ['prod-runner'],
    });
    expect(parsed.policy.onUnexpectedUse).toBe('report');
  });

  it('refuses a range that is not CIDR, and an empty allowedRunners, saying what was expected', () => {
    const bad = IdentitySchema.safeParse({
      id: 'deploy',
      kind: 'vault-token',
      purpose: 'p',
      pipeline: { repo: 'acme/app', stage: 'build', environment: 'prod' },
      scope: { policies: ['ci'] },
      allowedRunners: { cidrs: ['10.20.0.0/33'] },
    });
    expect(bad.error?.issues[0]?.message).toMatch(/expected a CIDR range .* got "10.20.0.0\/33"/);
    const empty = IdentitySchema.safeParse({
      id: 'deploy',
      kind: 'vault-token',
      purpose: 'p',
      pipeline: { repo: 'acme/app', stage: 'build', environment: 'prod' },
      scope: { policies: ['ci'] },
      allowedRunners: {},
    });
    expect(empty.error?.issues[0]?.message).toMatch(/expected cidrs or labels/);
  });
});

describe('used-from-unexpected-runner', () => {
  const v4 = identity({ id: 'v4', kind: 'vault-token', allowedRunners: { cidrs: ['10.20.0.0/16'] } });
  const v6 = identity({ id: 'v6', kind: 'vault-token', allowedRunners: { cidrs: ['fd00:c1::/48'] } });
  const labelled = identity({ id: 'lab', kind: 'vault-token', allowedRunners: { labels: ['prod-runner'] } });
  const open = identity({ id: 'open', kind: 'vault-token' });
  const identities = [v4, v6, labelled, open];

  it('reports an IPv4 use outside the range, saying from where, when and what; none inside it', () => {
    const [inside, outside] = [handle(), handle()];
    const findings = unexpectedRunnerFindings(
      identities,
      [
        use({ identityId: 'v4', handle: inside, from: '10.20.3.4' }),
        use({ identityId: 'v4', handle: outside, from: '203.0.113.9' }),
      ],
      ranges,
    );
    expect(findings).toEqual([
      expect.objectContaining({
        id: `used-from-unexpected-runner:v4:${outside}`,
        type: 'used-from-unexpected-runner',
        severity: 'high',
        identityIds: ['v4'],
        handles: [outside],
      }),
    ]);
    expect(findings[0]?.message).toBe(
      `v4: ${outside} was used from 203.0.113.9 at 2026-12-05T08:00:00.000Z (openbao-audit: read secret/data/app), outside its allowedRunners (cidrs 10.20.0.0/16)`,
    );
  });

  it('matches IPv6 ranges, and an IPv4-mapped IPv6 address as the IPv4 address it carries', () => {
    const [a, b, c] = [handle(), handle(), handle()];
    const findings = unexpectedRunnerFindings(
      identities,
      [
        use({ identityId: 'v6', handle: a, from: 'fd00:c1:0:7::12' }),
        use({ identityId: 'v6', handle: b, from: 'fd00:c2::1' }),
        use({ identityId: 'v4', handle: c, from: '::ffff:10.20.0.7' }),
      ],
      ranges,
    );
    expect(findings.map((f) => f.handles[0])).toEqual([b]);
  });

  it('groups one handle’s outside uses into one finding: count, addresses, first and last', () => {
    const h = handle();
    const findings = unexpectedRunnerFindings(
      identities,
      [
        use({ identityId: 'v4', handle: h, from: '198.51.100.2', at: '2026-12-05T08:02:00.000Z' }),
        use({ identityId: 'v4', handle: h, from: '203.0.113.9', at: '2026-12-05T08:01:00.000Z' }),
      ],
      ranges,
    );
    expect(findings).toHaveLength(1);
    expect(findings[0]?.message).toContain(
      'from 203.0.113.9, 198.51.100.2 2 times from 2026-12-05T08:01:00.000Z to 2026-12-05T08:02:00.000Z',
    );
  });

  it('judges labels where the trail names the runner, and leaves unjudged a use it cannot place', () => {
    const [good, bad, unknown] = [handle(), handle(), handle()];
    const findings = unexpectedRunnerFindings(
      identities,
      [
        use({ identityId: 'lab', handle: good, runner: 'prod-runner', from: '203.0.113.9' }),
        use({ identityId: 'lab', handle: bad, runner: 'shared-runner' }),
        // The audit device knows addresses, not labels: a labels-only identity cannot be judged by it.
        use({ identityId: 'lab', handle: unknown, from: '203.0.113.9' }),
        // A service name where CloudTrail has no address is not an address.
        use({ identityId: 'v4', handle: unknown, from: 'cloudformation.amazonaws.com' }),
      ],
      ranges,
    );
    expect(findings.map((f) => f.handles[0])).toEqual([bad]);
    expect(findings[0]?.message).toContain('from runner shared-runner');
  });

  it('checks nothing for an identity without allowedRunners', () => {
    expect(
      unexpectedRunnerFindings(
        identities,
        [use({ identityId: 'open', handle: handle(), from: '203.0.113.9' })],
        ranges,
      ),
    ).toEqual([]);
  });
});

describe('used-after-job-end', () => {
  const record = (over: Partial<CiCredentialRecord>): CiCredentialRecord => ({
    id: 'ci-1',
    grant: 'deploy-prod',
    issuer: 'github',
    jobKey: 'github:acme/app:run-7:deploy',
    correlationId: 'ci-abc',
    jobIds: { run_id: '7' },
    issuedAt: '2026-12-05T07:50:00.000Z',
    expiresAt: '2026-12-05T08:05:00.000Z',
    state: 'ended',
    ended: { at: '2026-12-05T08:00:00.000Z', by: 'job' },
    usedRecorded: true,
    ...over,
  });

  it('reports a job token or session used after its job ended, and not before', () => {
    const accessor = handle();
    const uses: HandleUse[] = [
      { handle: accessor, at: '2026-12-05T07:59:59.000Z', from: '10.0.0.5', source: 'openbao-audit' },
      { handle: accessor, at: '2026-12-05T08:00:30.000Z', from: '203.0.113.9', source: 'openbao-audit' },
      {
        handle: 'ci-abc',
        at: '2026-12-05T08:01:00Z',
        from: '203.0.113.9',
        source: 'cloudtrail',
        action: 'GetObject',
      },
    ];
    const findings = afterJobEndFindings(
      [
        record({
          vault: { accessor, expiresAt: '2026-12-05T08:05:00.000Z' },
          aws: {
            roleArn: 'arn:aws:iam::123456789012:role/deploy',
            sourceIdentity: 'ci-abc',
            sessionName: 's',
            expiresAt: '2026-12-05T08:05:00.000Z',
            denied: true,
            released: false,
          },
        }),
      ],
      uses,
    );
    expect(findings.map((f) => [f.type, f.severity, f.subject, f.handles])).toEqual([
      ['used-after-job-end', 'high', 'ci:ci-1', [accessor]],
      ['used-after-job-end', 'high', 'ci:ci-1', ['ci-abc']],
    ]);
    expect(findings[0]?.message).toBe(
      `CI job github:acme/app:run-7:deploy (grant deploy-prod, exchange ci-1): ${accessor} was used once after its credentials ended at 2026-12-05T08:00:00.000Z (by job), first at 2026-12-05T08:00:30.000Z from 203.0.113.9 (openbao-audit)`,
    );
  });

  it('says nothing of a job still running', () => {
    const accessor = handle();
    const findings = afterJobEndFindings(
      [
        record({
          state: 'active',
          ended: undefined,
          vault: { accessor, expiresAt: '2026-12-05T08:05:00.000Z' },
        }),
      ],
      [{ handle: accessor, at: '2026-12-05T08:01:00.000Z', source: 'openbao-audit' }],
    );
    expect(findings).toEqual([]);
  });
});

describe('findUnexpectedUse: trails asked for the watched handles only', () => {
  it('asks a trail for the live handles of identities with allowedRunners, and attributes the uses', async () => {
    const watchedId = identity({
      id: 'watched',
      kind: 'vault-token',
      allowedRunners: { cidrs: ['10.0.0.0/8'] },
      policy: { onUnexpectedUse: 'contain' },
    });
    const unwatched = identity({ id: 'unwatched', kind: 'vault-token' });
    const [live, revoked, other] = [handle(), handle(), handle()];
    const versions = new Map<string, CredentialVersion[]>([
      [
        'watched',
        [
          credentialVersion(watchedId, { handle: live, fingerprint: 'hmac-sha256:f1' }),
          credentialVersion(watchedId, { handle: revoked, stage: 'revoked' }),
        ],
      ],
      ['unwatched', [credentialVersion(unwatched, { handle: other })]],
    ]);
    const asked: string[][] = [];
    const trail: UseTrail = {
      name: 'audit',
      reads: ['vault-accessor'],
      usesOf: async (handles) => {
        asked.push(handles.map((h) => `${h.kind} ${h.handle}`));
        return [{ handle: live, at: '2026-12-05T08:00:00.000Z', from: '127.0.0.1', source: 'openbao-audit' }];
      },
    };
    const identities = [watchedId, unwatched];
    const findings = await findUnexpectedUse(
      { trails: [trail], ranges },
      { identities, versions, discovered: [] },
    );
    expect(asked).toEqual([[`vault-accessor ${live}`]]);
    expect(findings.map((f) => f.id)).toEqual([`used-from-unexpected-runner:watched:${live}`]);
    // Discovery's findings carry no uses: the finding's message says where.
    expect(credentialsToContain(findings, identities, versions)).toEqual([
      {
        findingId: findings[0]?.id,
        identityId: 'watched',
        handle: live,
        fingerprint: 'hmac-sha256:f1',
        owner: watchedId.owner,
        where: findings[0]?.message,
      },
    ]);
  });

  it('says where and when a key to contain was first used from, given the uses, and names its owner', () => {
    // prepare
    const contained = identity({
      id: 'deploy',
      kind: 'vault-token',
      owner: 'team-release',
      allowedRunners: { cidrs: ['10.0.0.0/8'] },
      policy: { onUnexpectedUse: 'contain' },
    });
    const key = handle();
    const uses = [
      use({ identityId: 'deploy', handle: key, from: '203.0.113.9', at: '2026-12-05T08:05:00.000Z' }),
      use({ identityId: 'deploy', handle: key, from: '198.51.100.7', at: '2026-12-05T08:01:00.000Z' }),
    ];
    const findings = unexpectedRunnerFindings([contained], uses, ranges);
    // act
    const requests = credentialsToContain(findings, [contained], new Map(), uses);
    // assess
    expect(requests).toEqual([
      expect.objectContaining({ owner: 'team-release', where: '198.51.100.7 at 2026-12-05T08:01:00.000Z' }),
    ]);
  });

  it('watches an AppRole identity by its role (mount/name): the device names the role, not the secret-id', async () => {
    const approle = identity({
      id: 'ar',
      kind: 'vault-approle-secret-id',
      scope: { mount: '/ci-approle/', roleName: 'deploy' },
      allowedRunners: { cidrs: ['10.0.0.0/8'] },
    });
    const asked: string[] = [];
    const trail: UseTrail = {
      name: 'audit',
      reads: ['vault-accessor', 'vault-approle-role'],
      usesOf: async (handles) => {
        asked.push(...handles.map((h) => `${h.kind} ${h.handle}`));
        return [
          {
            handle: 'ci-approle/deploy',
            at: '2026-12-05T08:00:00.000Z',
            from: '203.0.113.9',
            source: 'openbao-audit',
          },
        ];
      },
    };
    const versions = new Map([['ar', [credentialVersion(approle, { handle: handle() })]]]);
    const findings = await findUnexpectedUse(
      { trails: [trail], ranges },
      { identities: [approle], versions, discovered: [] },
    );
    expect(asked).toEqual(['vault-approle-role ci-approle/deploy']);
    expect(findings.map((f) => f.id)).toEqual(['used-from-unexpected-runner:ar:ci-approle/deploy']);
  });

  it('takes a use up to a few seconds after verifiedAt for keywarden’s own test of the version, not a runner’s', async () => {
    const watchedId = identity({ id: 'w', kind: 'vault-token', allowedRunners: { cidrs: ['10.0.0.0/8'] } });
    const live = handle();
    const versions = new Map([
      ['w', [credentialVersion(watchedId, { handle: live, verifiedAt: '2026-12-05T08:00:00.000Z' })]],
    ]);
    const trail: UseTrail = {
      name: 'audit',
      reads: ['vault-accessor'],
      usesOf: async () =>
        ['2026-12-05T07:59:59.900Z', '2026-12-05T08:00:01.500Z', '2026-12-05T08:00:06.000Z'].map((at) => ({
          handle: live,
          at,
          from: '127.0.0.1',
          source: 'openbao-audit',
        })),
    };
    const findings = await findUnexpectedUse(
      { trails: [trail], ranges },
      { identities: [watchedId], versions, discovered: [] },
    );
    expect(findings.map((f) => f.message)).toEqual([
      expect.stringContaining('127.0.0.1 at 2026-12-05T08:00:06.000Z'),
    ]);
  });

  it('asks a trail nothing it cannot read', async () => {
    const key = identity({
      id: 'key',
      kind: 'aws-iam-access-key',
      allowedRunners: { cidrs: ['10.0.0.0/8'] },
    });
    let called = false;
    const trail: UseTrail = {
      name: 'audit',
      reads: ['vault-accessor'],
      usesOf: async () => {
        called = true;
        return [];
      },
    };
    const versions = new Map([['key', [credentialVersion(key, { handle: handle() })]]]);
    await findUnexpectedUse({ trails: [trail], ranges }, { identities: [key], versions, discovered: [] });
    expect(called).toBe(false);
  });

  it('hands nothing to containment when the policy is report (the default)', () => {
    const reported = identity({ id: 'rep', kind: 'vault-token', allowedRunners: { cidrs: ['10.0.0.0/8'] } });
    const findings = unexpectedRunnerFindings(
      [reported],
      [use({ identityId: 'rep', handle: handle(), from: '203.0.113.9' })],
      ranges,
    );
    expect(findings).toHaveLength(1);
    expect(credentialsToContain(findings, [reported], new Map())).toEqual([]);
  });
});

describe('CloudTrail: the handle a call was made with (EventBridge "AWS API Call via CloudTrail")', () => {
  /** An access key id made at run time (AKIA and 16 of [A-Z2-7]). */
  const accessKeyId = () =>
    `AKIA${Array.from(randomBytes(16), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[b % 32]).join('')}`;
  const event = (userIdentity: Record<string, unknown>, sourceIPAddress = '203.0.113.24') => ({
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.s3',
    detail: {
      userIdentity,
      eventTime: '2026-12-05T07:31:12Z',
      eventSource: 's3.amazonaws.com',
      eventName: 'GetObject',
      sourceIPAddress,
    },
  });

  it('reads an IAM user’s call by its access key id, with the source address and the user', () => {
    const key = accessKeyId();
    expect(managedUseOf(event({ type: 'IAMUser', userName: 'ci-deploy', accessKeyId: key }))).toEqual({
      handle: key,
      kind: 'aws-access-key-id',
      userName: 'ci-deploy',
      at: '2026-12-05T07:31:12Z',
      from: '203.0.113.24',
      action: 's3:GetObject',
      source: 'cloudtrail',
    });
    // A session's temporary key (ASIA…) is not a managed long-term key.
    const temporary = `ASIA${key.slice(4)}`;
    expect(
      managedUseOf(event({ type: 'IAMUser', userName: 'ci-deploy', accessKeyId: temporary })),
    ).toBeUndefined();
  });

  it('reads a job session’s call by its SourceIdentity; ignores other sessions and other shapes', () => {
    const session = (sourceIdentity?: string) =>
      event({
        type: 'AssumedRole',
        accessKeyId: '',
        sessionContext: { ...(sourceIdentity ? { sourceIdentity } : {}) },
      });
    expect(managedUseOf(session('ci-github-1.2.3'))).toMatchObject({
      handle: 'ci-github-1.2.3',
      kind: 'aws-source-identity',
    });
    expect(managedUseOf(session())).toBeUndefined();
    expect(managedUseOf({ 'detail-type': 'Something else' })).toBeUndefined();
  });
});

describe('containUnexpectedUse: through the exposure containment, on exactly the fingerprint', () => {
  it('contains a credential with a fingerprint (incident UNEXPECTED-USE-<12 hex>), skips one without, reports a failure', async () => {
    // prepare
    const asked: { incident: string; fingerprint: string; identityId: string }[] = [];
    const containment: ExposureContainment = {
      contain: async (request) => {
        asked.push(request);
        if (request.identityId === 'broken') throw new Error('campaign planned nothing');
        return { campaignId: `${request.incident}-c1`, outcome: 'contained', revoked: 1, failures: [] };
      },
    };
    const [a, b, c] = [handle(), handle(), handle()];
    // act
    const where = '203.0.113.9 at 2026-12-05T08:00:00.000Z';
    const results = await containUnexpectedUse(
      { containment, audit: new MemoryAuditLog(new FixedClock(new Date())), actor: 'cli:alice' },
      [
        {
          findingId: 'f1',
          identityId: 'deploy',
          handle: a,
          fingerprint: 'hmac-sha256:0123456789abcdef',
          where,
        },
        { findingId: 'f2', identityId: 'declared', handle: b, where },
        {
          findingId: 'f3',
          identityId: 'broken',
          handle: c,
          fingerprint: 'hmac-sha256:fedcba9876543210',
          where,
        },
      ],
    );
    // assess
    expect(asked.map((r) => [r.incident, r.identityId])).toEqual([
      ['UNEXPECTED-USE-0123456789ab', 'deploy'],
      ['UNEXPECTED-USE-fedcba987654', 'broken'],
    ]);
    expect(results.map((r) => [r.identityId, r.status])).toEqual([
      ['deploy', 'contained'],
      ['declared', 'skipped'],
      ['broken', 'failed'],
    ]);
    expect(results[0]?.campaignId).toBe('UNEXPECTED-USE-0123456789ab-c1');
    expect(results[1]?.reason).toContain(`--selector "identity=declared,handle=${b}" --reissue`);
    expect(results[2]?.reason).toBe('campaign planned nothing');
  });

  it('audits exposure.reissued for a re-issue the containment made itself (the local runtime), none for the state machine’s', async () => {
    // prepare: the local runner re-issues at once; the state machine only starts (its report step audits).
    const clock = new FixedClock(new Date('2026-12-05T08:00:00Z'));
    const audit = new MemoryAuditLog(clock);
    const local: ExposureContainment = {
      contain: async () => ({
        campaignId: 'c-local',
        outcome: 'contained',
        revoked: 1,
        failures: [],
        reissuedVersionId: 'v-2',
      }),
    };
    const stateMachine: ExposureContainment = {
      contain: async () => ({ campaignId: 'c-aws', outcome: 'contained', revoked: 1, failures: [] }),
    };
    const request = {
      findingId: 'f1',
      identityId: 'deploy',
      handle: handle(),
      fingerprint: 'hmac-sha256:0123456789abcdef',
      where: '203.0.113.9 at 2026-12-05T08:00:00.000Z',
    };
    // act
    await containUnexpectedUse({ containment: local, audit, actor: 'cli:alice' }, [request]);
    await containUnexpectedUse({ containment: stateMachine, audit, actor: 'cli:alice' }, [request]);
    // assess
    const { records } = await audit.readAll();
    expect(records).toEqual([
      expect.objectContaining({
        type: 'exposure.reissued',
        actor: 'cli:alice',
        subject: 'deploy',
        details: {
          campaignId: 'c-local',
          incident: 'UNEXPECTED-USE-0123456789ab',
          versionId: 'v-2',
          fingerprint: 'hmac-sha256:0123456789abcdef',
        },
      }),
    ]);
  });
});
