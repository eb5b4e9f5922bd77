import { describe, expect, it } from 'vitest';
import {
  CampaignSchema,
  isFinished,
  nextTargets,
  type PlanInput,
  planCampaign,
  summarize,
  type Target,
  TargetSchema,
  timeToRevoke,
} from '../../functions/core/campaign.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import { credentialVersion, identity } from '../support/fixtures.ts';

/** IAM's access key id prefix, joined at run time so no credential-shaped literal sits in the source. */
const AKIA = 'AKIA';

const now = '2026-11-21T10:00:00.000Z';
const plan = (over: Partial<PlanInput> & Pick<PlanInput, 'subjects'>) =>
  planCampaign({
    campaignId: 'c-1',
    incident: 'INC-42',
    selectors: ['env=prod'],
    requestedBy: 'cli:alice',
    now,
    reissue: false,
    ...over,
  });
const prod = { repo: 'acme/app', stage: 'deploy', environment: 'prod' };

const keys = identity({ id: 'app-keys', kind: 'aws-iam-access-key', pipeline: prod });
const keyVersions = [
  credentialVersion(keys, { handle: `${AKIA}PENDING000000001`, stage: 'pending' }),
  credentialVersion(keys, { handle: `${AKIA}CURRENT000000002`, stage: 'current' }),
  credentialVersion(keys, { handle: `${AKIA}PREVIOUS00000003`, stage: 'previous' }),
  credentialVersion(keys, { handle: `${AKIA}DISABLED00000004`, stage: 'disabled' }),
  credentialVersion(keys, { handle: `${AKIA}REVOKED000000005`, stage: 'revoked' }),
];
const leases = identity({
  id: 'db-leases',
  kind: 'vault-lease',
  pipeline: prod,
  scope: { prefix: 'database/creds/ci/' },
});
const role = identity({ id: 'deployer', kind: 'aws-role-session', pipeline: prod });

describe('campaign: planCampaign', () => {
  it('makes one revoke target per live version, leaving revoked ones out', () => {
    const { targets } = plan({ subjects: [{ identity: keys, versions: keyVersions }] });

    expect(targets.map((t) => [t.targetId, t.action, t.versionId, t.outcome])).toEqual([
      [`app-keys:${AKIA}CURRENT000000002`, 'revoke', `v-${AKIA}CURRENT000000002`, 'pending'],
      [`app-keys:${AKIA}DISABLED00000004`, 'revoke', `v-${AKIA}DISABLED00000004`, 'pending'],
      [`app-keys:${AKIA}PENDING000000001`, 'revoke', `v-${AKIA}PENDING000000001`, 'pending'],
      [`app-keys:${AKIA}PREVIOUS00000003`, 'revoke', `v-${AKIA}PREVIOUS00000003`, 'pending'],
    ]);
    expect(targets[0]).toMatchObject({
      identityId: 'app-keys',
      kind: 'aws-iam-access-key',
      owner: 'team-platform',
      environment: 'prod',
      attempts: 0,
      reissue: false,
    });
    for (const target of targets) expect(TargetSchema.safeParse(target).success).toBe(true);
  });

  it('revokes a whole vault-lease path with one revoke-prefix target, with or without recorded leases', () => {
    const recorded = [credentialVersion(leases, { handle: 'database/creds/ci/abc123' })];
    for (const versions of [[], recorded]) {
      const { targets } = plan({ subjects: [{ identity: leases, versions }] });
      expect(targets).toMatchObject([
        {
          targetId: 'db-leases:prefix:database/creds/ci',
          action: 'revoke-prefix',
          handle: 'database/creds/ci',
          outcome: 'pending',
        },
      ]);
    }
  });

  it('revokes leases picked one by one (by handle or date) one by one, not the whole path', () => {
    const one = credentialVersion(leases, { handle: 'database/creds/ci/abc123' });
    const other = credentialVersion(leases, { handle: 'database/creds/ci/def456' });
    const { targets } = plan({
      selectors: ['handle=database/creds/ci/abc*'],
      subjects: [{ identity: leases, versions: [one, other] }],
    });
    expect(targets.map((t) => [t.targetId, t.action])).toEqual([
      ['db-leases:database/creds/ci/abc123', 'revoke'],
    ]);
  });

  it('ends role sessions with one deny-sessions target on the role ARN', () => {
    const { targets } = plan({ subjects: [{ identity: role, versions: [] }] });
    expect(targets).toMatchObject([
      {
        targetId: 'deployer:arn:aws:iam::123456789012:role/deployer',
        action: 'deny-sessions',
        handle: 'arn:aws:iam::123456789012:role/deployer',
        outcome: 'pending',
      },
    ]);
  });

  it('accounts for a selected identity with nothing live as skipped, with the reason', () => {
    const token = identity({ id: 'ci-token', kind: 'vault-token', pipeline: prod });
    const revokedOnly = [credentialVersion(token, { handle: 'acc-1', stage: 'revoked' })];
    const { targets } = plan({ reissue: true, subjects: [{ identity: token, versions: revokedOnly }] });
    expect(targets).toEqual([
      expect.objectContaining({
        targetId: 'ci-token:vault-token:ci-token',
        handle: 'vault-token:ci-token',
        outcome: 'skipped',
        reason: 'no live credential recorded',
        reissue: false,
      }),
    ]);
  });

  it('leaves out identities no selector matches, and ORs the selectors', () => {
    const staging = identity({
      id: 'docs',
      pipeline: { repo: 'acme/docs', stage: 'build', environment: 'dev' },
    });
    const other = identity({
      id: 'other',
      pipeline: { repo: 'acme/other', stage: 'test', environment: 'dev' },
    });
    const { targets } = plan({
      selectors: ['env=prod', 'repo=acme/docs'],
      subjects: [
        { identity: role, versions: [] },
        { identity: staging, versions: [credentialVersion(staging, { handle: '3' })] },
        { identity: other, versions: [credentialVersion(other, { handle: '1' })] },
      ],
    });
    expect(targets.map((t) => t.identityId)).toEqual(['deployer', 'docs']);
  });

  it('keeps only the versions a version term picked', () => {
    const { targets } = plan({
      selectors: [`access-key=${AKIA}PREVIOUS00000003`],
      subjects: [{ identity: keys, versions: keyVersions }],
    });
    expect(targets.map((t) => t.handle)).toEqual([`${AKIA}PREVIOUS00000003`]);
  });

  it('dedupes targets by targetId: a subject given twice, or overlapping selectors', () => {
    const { targets, summary } = plan({
      selectors: ['env=prod', 'access-key=AKIACURRENT*', 'kind=aws-*'],
      subjects: [
        { identity: keys, versions: keyVersions },
        { identity: keys, versions: keyVersions },
        { identity: role, versions: [] },
        { identity: role, versions: [] },
      ],
    });
    expect(targets).toHaveLength(5);
    expect(new Set(targets.map((t) => t.targetId)).size).toBe(5);
    expect(summary.counts.total).toBe(5);
  });

  it('marks for re-issue only when asked, and only identities with a delivery target and a rotated kind', () => {
    const kv = identity({ id: 'app-kv', pipeline: prod });
    const delivered = identity({
      id: 'app-token',
      kind: 'vault-token',
      pipeline: prod,
      delivery: { type: 'aws-secret', secretId: 'ci/app-token' },
    });
    const undelivered = identity({ id: 'bare-token', kind: 'vault-token', pipeline: prod });
    const subjects = [
      { identity: kv, versions: [credentialVersion(kv, { handle: '7' })] },
      { identity: delivered, versions: [credentialVersion(delivered, { handle: 'acc-9' })] },
      { identity: undelivered, versions: [credentialVersion(undelivered, { handle: 'acc-8' })] },
      { identity: role, versions: [] },
    ];

    const asked = plan({ reissue: true, subjects });
    expect(Object.fromEntries(asked.targets.map((t) => [t.identityId, t.reissue]))).toEqual({
      'app-kv': true,
      'app-token': true,
      'bare-token': false,
      deployer: false,
    });
    expect(asked.summary.reissue).toEqual(['app-kv', 'app-token']);
    expect(plan({ reissue: false, subjects }).targets.every((t) => !t.reissue)).toBe(true);
  });

  it('returns a planned campaign with counts per kind, and a summary sorted by kind, identity, handle', () => {
    const result = plan({
      selectors: [' env=prod '],
      dryRun: true,
      subjects: [
        { identity: role, versions: [] },
        { identity: leases, versions: [] },
        { identity: keys, versions: keyVersions },
      ],
    });

    expect(CampaignSchema.parse(result.campaign)).toEqual(result.campaign);
    expect(result.campaign).toMatchObject({
      campaignId: 'c-1',
      incident: 'INC-42',
      selectors: ['env=prod'],
      requestedBy: 'cli:alice',
      createdAt: now,
      status: 'planned',
      reissue: false,
      dryRun: true,
    });
    expect(result.campaign.counts.total).toBe(6);
    expect(result.campaign.counts.byKind).toEqual({
      'aws-iam-access-key': { total: 4, pending: 4, revoked: 0, 'already-revoked': 0, skipped: 0, failed: 0 },
      'aws-role-session': { total: 1, pending: 1, revoked: 0, 'already-revoked': 0, skipped: 0, failed: 0 },
      'vault-lease': { total: 1, pending: 1, revoked: 0, 'already-revoked': 0, skipped: 0, failed: 0 },
    });
    expect(result.summary.targets.map((t) => `${t.kind} ${t.identityId}`)).toEqual([
      'aws-iam-access-key app-keys',
      'aws-iam-access-key app-keys',
      'aws-iam-access-key app-keys',
      'aws-iam-access-key app-keys',
      'aws-role-session deployer',
      'vault-lease db-leases',
    ]);
    expect(result.summary.counts).toEqual(result.campaign.counts);
  });

  it('plans an empty campaign when nothing matches, rather than failing', () => {
    const result = plan({ selectors: ['env=nowhere'], subjects: [{ identity: role, versions: [] }] });
    expect(result.targets).toEqual([]);
    expect(result.campaign.counts.total).toBe(0);
  });

  it('rejects a bad incident id, requester or selector with "expected …, got …"', () => {
    expect(() => plan({ incident: 'INC 42', subjects: [] })).toThrow(
      `campaign: incident: expected an incident id such as INC-42 (a letter, then 1 to 63 letters, digits, '-' or '_'), got "INC 42"`,
    );
    expect(() => plan({ requestedBy: ' ', subjects: [] })).toThrow(ValidationError);
    expect(() => plan({ selectors: ['stage=deplyo'], subjects: [] })).toThrow(
      'selector "stage=deplyo": term "stage=deplyo": expected stage build | test | sign | publish | deploy, got "deplyo"',
    );
    expect(() => plan({ selectors: [], subjects: [] })).toThrow(ValidationError);
  });
});

const target = (n: number, over: Partial<Target> = {}): Target => ({
  targetId: `id-${n}:h-${n}`,
  identityId: `id-${n}`,
  kind: 'vault-token',
  environment: 'prod',
  handle: `h-${n}`,
  action: 'revoke',
  reissue: false,
  outcome: 'pending',
  attempts: 0,
  ...over,
});

describe('campaign: summarize, isFinished, nextTargets', () => {
  it('counts per outcome and per kind', () => {
    const counts = summarize([
      target(1, { outcome: 'revoked' }),
      target(2, { outcome: 'already-revoked' }),
      target(3, { outcome: 'failed', error: 'boom', kind: 'aws-secret' }),
      target(4, { outcome: 'skipped', reason: 'no live credential recorded' }),
      target(5),
    ]);
    expect(counts).toEqual({
      total: 5,
      byOutcome: { pending: 1, revoked: 1, 'already-revoked': 1, skipped: 1, failed: 1 },
      byKind: {
        'vault-token': { total: 4, pending: 1, revoked: 1, 'already-revoked': 1, skipped: 1, failed: 0 },
        'aws-secret': { total: 1, pending: 0, revoked: 0, 'already-revoked': 0, skipped: 0, failed: 1 },
      },
    });
  });

  it('is finished when no target is pending, failed ones included', () => {
    expect(
      isFinished([target(1, { outcome: 'revoked' }), target(2, { outcome: 'failed', error: 'x' })]),
    ).toBe(true);
    expect(isFinished([target(1, { outcome: 'revoked' }), target(2)])).toBe(false);
    expect(isFinished([])).toBe(true);
  });

  it('hands out pending targets first, then retryable failures with attempts left, up to the limit', () => {
    const targets = [
      target(1, { outcome: 'failed', error: 'throttled', retryable: true, attempts: 1 }),
      target(2),
      target(3, { outcome: 'failed', error: 'AccessDenied', retryable: false, attempts: 1 }),
      target(4, { outcome: 'revoked' }),
      target(5, { outcome: 'failed', error: 'throttled', retryable: true, attempts: 5 }),
      target(6),
    ];
    expect(nextTargets(targets, 10).map((t) => t.targetId)).toEqual(['id-2:h-2', 'id-6:h-6', 'id-1:h-1']);
    expect(nextTargets(targets, 2).map((t) => t.targetId)).toEqual(['id-2:h-2', 'id-6:h-6']);
    expect(nextTargets(targets, 10, { maxAttempts: 6 }).map((t) => t.targetId)).toContain('id-5:h-5');
    expect(nextTargets(targets, 0)).toEqual([]);
  });

  it('requires a reason on skipped targets and an error on failed ones', () => {
    expect(TargetSchema.safeParse(target(1, { outcome: 'skipped' })).success).toBe(false);
    expect(TargetSchema.safeParse(target(1, { outcome: 'failed' })).success).toBe(false);
    expect(TargetSchema.safeParse(target(1, { outcome: 'failed', error: 'x' })).success).toBe(true);
  });
});

describe('campaign: timeToRevoke', () => {
  const start = '2026-11-21T10:00:00.000Z';
  const doneAfter = (n: number, ms: number, outcome: Target['outcome'] = 'revoked') =>
    target(n, { outcome, finishedAt: new Date(Date.parse(start) + ms).toISOString() });

  it('gives nearest-rank p50 / p95 / max over 1..100 seconds', () => {
    const targets = Array.from({ length: 100 }, (_, i) => doneAfter(i, (100 - i) * 1_000));
    expect(timeToRevoke(targets, start)).toEqual({
      count: 100,
      p50Ms: 50_000,
      p95Ms: 95_000,
      maxMs: 100_000,
    });
  });

  it('picks observed values on a small set, counting already-revoked and ignoring the rest', () => {
    const targets = [
      doneAfter(1, 40),
      doneAfter(2, 10, 'already-revoked'),
      doneAfter(3, 30),
      doneAfter(4, 20),
      target(5, { outcome: 'failed', error: 'x', finishedAt: '2026-11-21T11:00:00.000Z' }),
      target(6, { outcome: 'skipped', reason: 'y', finishedAt: '2026-11-21T11:00:00.000Z' }),
      target(7),
    ];
    expect(timeToRevoke(targets, start)).toEqual({ count: 4, p50Ms: 20, p95Ms: 40, maxMs: 40 });
    expect(timeToRevoke([doneAfter(1, 7)], start)).toEqual({ count: 1, p50Ms: 7, p95Ms: 7, maxMs: 7 });
  });

  it('is undefined when nothing was revoked', () => {
    expect(timeToRevoke([target(1), target(2, { outcome: 'failed', error: 'x' })], start)).toBeUndefined();
  });
});
