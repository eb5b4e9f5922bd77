import { describe, expect, it } from 'vitest';
import {
  CampaignSchema,
  isFinished,
  NOTHING_LIVE,
  nextTargets,
  type PlanInput,
  planCampaign,
  summarize,
  type Target,
  TargetSchema,
  timeToRevoke,
} from '../../functions/core/campaign.ts';
import { type Listing, needsListing, resolveLive } from '../../functions/core/campaign-live.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import type { ListedCredential } from '../../functions/core/ports.ts';
import { identityTermsOf, parseSelectors } from '../../functions/core/selector.ts';
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

describe('campaign: planning from what is live', () => {
  const created = '2025-03-01T08:00:00.000Z';
  const listed = (handle: string, over: Partial<ListedCredential> = {}): ListedCredential => ({
    handle,
    status: 'active',
    createdAt: created,
    ...over,
  });
  const live = (who: typeof keys, versions: ReturnType<typeof credentialVersion>[], listing: Listing) =>
    resolveLive(who, versions, listing, now);

  it('adopts every key the IAM user has and keywarden never recorded, active and inactive, and revokes each', () => {
    // prepare: one key recorded; IAM lists it, an active key made by a pipeline, an inactive one.
    const recorded = [credentialVersion(keys, { handle: `${AKIA}RECORDED00000001` })];
    const subject = live(keys, recorded, {
      listed: [
        listed(`${AKIA}RECORDED00000001`),
        listed(`${AKIA}PIPELINE00000002`),
        listed(`${AKIA}INACTIVE00000003`, { status: 'inactive' }),
      ],
    });

    // act
    const result = plan({ reissue: true, subjects: [subject] });

    // assess: three pending targets; the two unknown keys adopted at their live stage.
    expect(result.targets.map((t) => [t.handle, t.versionId, t.outcome, t.reissue])).toEqual([
      [`${AKIA}INACTIVE00000003`, `adopted-${AKIA}INACTIVE00000003`, 'pending', false],
      [`${AKIA}PIPELINE00000002`, `adopted-${AKIA}PIPELINE00000002`, 'pending', false],
      [`${AKIA}RECORDED00000001`, `v-${AKIA}RECORDED00000001`, 'pending', false],
    ]);
    expect(result.adopt.map((v) => [v.handle, v.stage, v.origin, v.issuedAt])).toEqual([
      [`${AKIA}PIPELINE00000002`, 'current', 'adopted', created],
      [`${AKIA}INACTIVE00000003`, 'disabled', 'adopted', created],
    ]);
    expect(result.adopt.every((v) => v.fingerprint === undefined && v.identityId === 'app-keys')).toBe(true);
  });

  it("adopts a secret's current and previous versions with the delivered value's fingerprint, not its unlabelled ones", () => {
    const secret = identity({ id: 'db-password', kind: 'aws-secret', pipeline: prod });
    const subject = live(secret, [], {
      listed: [
        listed('v-current', { versionId: 'v-current', stage: 'current' }),
        listed('v-previous', { versionId: 'v-previous', stage: 'previous' }),
        listed('v-deprecated', { versionId: 'v-deprecated', status: 'inactive', stage: 'revoked' }),
      ],
      current: { versionId: 'v-current', fingerprint: 'fp-current' },
    });

    const result = plan({ subjects: [subject] });

    expect(result.targets.map((t) => t.handle)).toEqual(['v-current', 'v-previous']);
    expect(result.adopt.map((v) => [v.handle, v.stage, v.fingerprint])).toEqual([
      ['v-current', 'current', 'fp-current'],
      ['v-previous', 'previous', undefined],
    ]);
  });

  it('gives an untagged current KV value its fingerprint, and selects adopted versions by fingerprint', () => {
    const kv = identity({ id: 'app-kv', pipeline: prod });
    const subject = live(kv, [], {
      listed: [listed('kv-v1', { stage: 'previous' }), listed('kv-v2', { stage: 'current' })],
      current: { fingerprint: 'hmac-sha256:00aa11bb22cc' },
    });

    const result = plan({ selectors: ['fingerprint=hmac-sha256:00aa11bb22cc'], subjects: [subject] });

    expect(result.targets.map((t) => [t.handle, t.versionId])).toEqual([['kv-v2', 'adopted-kv-v2']]);
    expect(result.adopt.map((v) => [v.handle, v.fingerprint])).toEqual([
      ['kv-v2', 'hmac-sha256:00aa11bb22cc'],
    ]);
  });

  it('keeps a recorded version the provider no longer lists: the engine answers it already-revoked', () => {
    const token = identity({ id: 'ci-token', kind: 'vault-token', pipeline: prod });
    const recorded = [credentialVersion(token, { handle: 'acc-gone' })];

    const result = plan({ subjects: [live(token, recorded, { listed: [listed('acc-live')] })] });

    expect(result.targets.map((t) => [t.handle, t.outcome])).toEqual([
      ['acc-gone', 'pending'],
      ['acc-live', 'pending'],
    ]);
    expect(result.adopt.map((v) => v.handle)).toEqual(['acc-live']);
  });

  it('adopts again, under a fresh version id, a handle recorded revoked that the provider lists live', () => {
    const token = identity({ id: 'ci-token', kind: 'vault-token', pipeline: prod });
    const recorded = [
      credentialVersion(token, { handle: 'acc-1', versionId: 'adopted-acc-1', stage: 'revoked' }),
    ];

    const result = plan({ subjects: [live(token, recorded, { listed: [listed('acc-1')] })] });

    expect(result.targets.map((t) => [t.handle, t.versionId])).toEqual([['acc-1', 'adopted-acc-1-2']]);
  });

  it('fails, never skips, an identity whose provider cannot be listed, beside its recorded versions', () => {
    const role = identity({ id: 'ci-approle', kind: 'vault-approle-secret-id', pipeline: prod });
    const recorded = [credentialVersion(role, { handle: 'acc-recorded' })];
    const failure = { error: 'Vault did not answer: ECONNREFUSED', retryable: true };
    const subject = live(role, recorded, { failure });

    const result = plan({ reissue: true, subjects: [subject] });

    expect(result.targets).toEqual([
      expect.objectContaining({ handle: 'acc-recorded', outcome: 'pending' }),
      expect.objectContaining({
        targetId: 'ci-approle:vault-approle:approle/ci-approle',
        outcome: 'failed',
        error: failure.error,
        // The engine revokes handles and cannot list: planning again is the retry.
        retryable: false,
        reissue: false,
        reason: expect.stringMatching(/could not be listed in vault.*transient: plan the campaign again/),
      }),
    ]);
    for (const target of result.targets) expect(TargetSchema.safeParse(target).success).toBe(true);
    expect(result.summary.counts.byOutcome).toMatchObject({ pending: 1, failed: 1, skipped: 0 });
    expect(result.adopt).toEqual([]);
    // A version term cannot be judged on what could not be listed: the identity terms decide.
    const byHandle = plan({ selectors: ['handle=acc-unknown'], subjects: [subject] });
    expect(byHandle.targets.map((t) => t.outcome)).toEqual(['failed']);
    const permission = plan({
      subjects: [live(role, [], { failure: { error: 'permission denied', retryable: false } })],
    });
    expect(permission.targets[0]?.reason).toMatch(/fix the cause/);
  });

  it('skips an identity its provider lists nothing live for, saying it was listed', () => {
    const token = identity({ id: 'ci-token', kind: 'vault-token', pipeline: prod });
    const revoked = [credentialVersion(token, { handle: 'acc-old', stage: 'revoked' })];

    const { targets } = plan({
      subjects: [live(token, revoked, { listed: [listed('acc-x', { stage: 'revoked' })] })],
    });

    expect(targets).toEqual([expect.objectContaining({ outcome: 'skipped', reason: NOTHING_LIVE })]);
  });

  it('adopts only what a version term picked, and once for a subject given twice', () => {
    const subject = live(keys, [], {
      listed: [listed(`${AKIA}ONE0000000000001`), listed(`${AKIA}TWO0000000000002`)],
    });

    const picked = plan({ selectors: [`access-key=${AKIA}TWO*`], subjects: [subject, subject] });

    expect(picked.targets.map((t) => t.handle)).toEqual([`${AKIA}TWO0000000000002`]);
    expect(picked.adopt.map((v) => v.handle)).toEqual([`${AKIA}TWO0000000000002`]);
  });

  it('lists the providers of per-credential kinds some selector may select, on identity terms alone', () => {
    const terms = (texts: string[]) => identityTermsOf(parseSelectors(texts));

    expect(needsListing(terms(['env=prod']), keys)).toBe(true);
    expect(needsListing(terms([`env=prod,access-key=${AKIA}X*`]), keys)).toBe(true);
    expect(needsListing(terms(['handle=acc-1']), keys)).toBe(true);
    expect(needsListing(terms(['env=dev']), keys)).toBe(false);
    expect(needsListing(terms(['env=dev', 'repo=acme/app']), keys)).toBe(true);
    // Lease prefixes and role sessions keep their whole-scope targets: nothing to list.
    expect(needsListing(terms(['env=prod']), leases)).toBe(false);
    expect(needsListing(terms(['env=prod']), role)).toBe(false);
  });
});
