/**
 * The revocation campaign engine (functions/core/campaign-engine.ts) without any server:
 * claim → revoke → checkpoint per target, the four outcomes, resume after a crash between
 * a claim and its checkpoint, conditional checkpoints that never overwrite a settled
 * target, the per-kind limiters and re-issue, over the in-memory stores and providers of
 * test/support. The same behaviour against moto and OpenBao is specified in
 * test/integration/campaign*.test.ts.
 */
import pLimit from 'p-limit';
import { describe, expect, it } from 'vitest';
import { NO_LIVE_CREDENTIAL, planCampaign, summarize, type Target } from '../../functions/core/campaign.ts';
import { closeCampaign, runCampaign } from '../../functions/core/campaign-engine.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import type { Identity, IdentityKind } from '../../functions/core/identity.ts';
import { type ProviderService, serviceOf } from '../../functions/core/kinds.ts';
import type { Limit } from '../../functions/core/ports.ts';
import { rotateIdentity, SimulatedCrash } from '../../functions/core/rotation.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { MemoryWorld } from '../support/memory-providers.ts';
import type { StoreWrite } from '../support/memory-stores.ts';

const policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };
const INCIDENT = 'INC-42';

const declare = (id: string, kind: IdentityKind = 'vault-token'): Identity =>
  makeIdentity({
    id,
    kind,
    policy,
    pipeline: { repo: 'acme/app', stage: 'deploy', environment: 'prod' },
    ...(kind === 'aws-secret' ? {} : { delivery: { type: 'vault-kv', path: `ci/${id}` } }),
  });

/**
 * Identities as a compromised pipeline has them: each declared with a working credential,
 * and (unless `unrotated`) rotated once, so it has two live versions, the adopted original
 * (previous) and keywarden's issued one (current).
 */
async function fleet(world: MemoryWorld, identities: Identity[], unrotated: string[] = []) {
  for (const identity of identities) {
    await world.seed(identity);
    if (unrotated.includes(identity.id)) continue;
    const outcome = await rotateIdentity(world.rotationDeps('setup'), identity, { owner: 'setup' });
    expect(outcome.status, outcome.reason).toBe('rotated');
  }
  return identities;
}

/** Plans and stores a campaign over every declared identity of `env=prod`, as the CLI does. */
async function plan(world: MemoryWorld, options: { reissue?: boolean } = {}) {
  const stored = await world.identities.listIdentities();
  const subjects = await Promise.all(
    stored.map(async ({ identity }) => ({ identity, versions: await world.store.listVersions(identity.id) })),
  );
  const planned = planCampaign({
    campaignId: `${INCIDENT}-1`,
    incident: INCIDENT,
    selectors: ['env=prod'],
    requestedBy: 'cli:responder',
    now: world.clock.now().toISOString(),
    reissue: options.reissue ?? false,
    subjects,
  });
  await world.campaigns.createCampaign(planned.campaign, planned.targets);
  return planned;
}

/** One unbounded limiter for every kind. */
const unlimited = { limitFor: (): Limit => (work) => work() };

/** Revoke calls made from now on, per `identityId:handle` (a target's id). */
function countRevokes(world: MemoryWorld): () => Map<string, number> {
  const marks = new Map(Object.values(world.providers).map((p) => [p, p.calls.length]));
  return () => {
    const counts = new Map<string, number>();
    for (const [provider, mark] of marks) {
      for (const call of provider.calls.slice(mark).filter((c) => c.method === 'revoke')) {
        const key = `${call.subject}:${call.ref}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return counts;
  };
}

describe('campaign engine: a run', () => {
  it('claims, revokes and checkpoints every target, ending each revoked, already-revoked, skipped or failed', async () => {
    // prepare: app-b's original was deleted outside keywarden, app-c's provider refuses one revoke,
    // app-d has nothing recorded to revoke
    const world = new MemoryWorld();
    const [, appB, appC] = await fleet(
      world,
      [declare('app-a'), declare('app-b'), declare('app-c', 'aws-iam-access-key'), declare('app-d')],
      ['app-d'],
    );
    const [goneB] = await world.store.listVersions('app-b');
    await world.providers['vault-token'].revoke(appB as Identity, goneB?.handle ?? '');
    const [refusedC] = await world.store.listVersions('app-c');
    world.providers['aws-iam-access-key'].failOn('revoke', {
      subject: 'app-c',
      ref: refusedC?.handle ?? '',
      error: new ValidationError('permission denied (HTTP 403)'),
    });
    const { campaign, targets } = await plan(world);
    const writes: StoreWrite[] = [];
    world.campaigns.hooks = { afterWrite: (write) => void writes.push(write) };
    const revokes = countRevokes(world);

    // act
    const result = await runCampaign(world.campaignDeps('cli:responder'), campaign.campaignId, unlimited);

    // assess: every target has its outcome
    expect(targets).toHaveLength(7);
    expect(result.targets.map((t) => [t.targetId, t.outcome, t.attempts])).toEqual(
      expect.arrayContaining([
        [`app-b:${goneB?.handle}`, 'already-revoked', 1],
        [`app-c:${refusedC?.handle}`, 'failed', 1],
        [expect.stringMatching(/^app-d:/), 'skipped', 0],
      ]),
    );
    expect(result.campaign.counts.byOutcome).toEqual({
      pending: 0,
      revoked: 4,
      'already-revoked': 1,
      skipped: 1,
      failed: 1,
    });
    const failed = result.targets.find((t) => t.outcome === 'failed');
    expect(failed).toMatchObject({ error: 'permission denied (HTTP 403)', retryable: false });
    expect(result.targets.find((t) => t.outcome === 'skipped')?.reason).toBe(NO_LIVE_CREDENTIAL);
    expect(result.campaign).toMatchObject({ status: 'completed', finishedAt: expect.any(String) });
    expect(result).toMatchObject({ settled: 6, stopped: false });
    // assess: the batch (six targets of two services: one batch, each through its kind's limiter)
    // was leased once, a try counted for each of its targets, then its outcomes written once, together
    const batches = new Set(targets.flatMap((t) => (t.batch === undefined ? [] : [t.batch])));
    expect(batches.size).toBe(1);
    expect(writes.filter((w) => w.op === 'leaseBatch')).toHaveLength(1);
    const checkpoints = writes.flatMap((w) => (w.op === 'settleBatch' ? [w.outcomes] : []));
    expect(checkpoints).toHaveLength(1);
    expect(
      checkpoints
        .flat()
        .map((t) => [t.targetId, t.outcome, t.attempts])
        .sort(),
    ).toEqual(
      result.targets
        .filter((t) => t.outcome !== 'skipped')
        .map((t) => [t.targetId, t.outcome, 1])
        .sort(),
    );
    expect(await world.campaigns.listBatchLeases(campaign.campaignId)).toEqual([]);
    // assess: one revoke call per tried target, and the versions ended are marked so, naming the incident
    expect([...revokes().values()]).toEqual([1, 1, 1, 1, 1, 1]);
    for (const target of result.targets.filter((t) => t.outcome.endsWith('revoked'))) {
      const version = (await world.store.listVersions(target.identityId)).find(
        (v) => v.versionId === target.versionId,
      );
      expect(version).toMatchObject({ stage: 'revoked', note: expect.stringContaining(INCIDENT) });
    }
    expect(
      (await world.store.listVersions('app-c')).find((v) => v.versionId === refusedC?.versionId)?.stage,
    ).not.toBe('revoked');
    expect(world.works(appC as Identity)).toBe(false);
    // assess: the campaign's audit events, one per target, on an unbroken chain
    const trail = (await world.audit.readAll()).records.filter((r) => r.type.startsWith('campaign.'));
    expect(trail.filter((r) => r.type === 'campaign.started')).toHaveLength(1);
    expect(trail.filter((r) => r.type === 'campaign.target')).toHaveLength(7);
    expect(trail.filter((r) => r.type === 'campaign.completed')).toHaveLength(1);
    expect(world.audit.verify()).toMatchObject({ ok: true });
  });

  it('run again once finished, changes nothing and revokes nothing', async () => {
    // prepare
    const world = new MemoryWorld();
    await fleet(world, [declare('app-a'), declare('app-b')]);
    const { campaign } = await plan(world);
    const first = await runCampaign(world.campaignDeps('test'), campaign.campaignId, unlimited);
    const revokes = countRevokes(world);

    // act
    const again = await runCampaign(world.campaignDeps('test'), campaign.campaignId, unlimited);

    // assess
    expect(again.settled).toBe(0);
    expect(revokes().size).toBe(0);
    expect(again.targets).toEqual(first.targets);
    expect(again.campaign).toEqual(first.campaign);
  });
});

describe('campaign engine: a settled target is never overwritten', () => {
  it('two runs at once never work on the same target: each credential is revoked once', async () => {
    // prepare
    const world = new MemoryWorld();
    await fleet(
      world,
      ['app-a', 'app-b', 'app-c', 'app-d'].map((id) => declare(id)),
    );
    const { campaign, targets } = await plan(world);
    const revokes = countRevokes(world);

    // act
    const [a, b] = await Promise.all([
      runCampaign(world.campaignDeps('run-a'), campaign.campaignId, unlimited),
      runCampaign(world.campaignDeps('run-b'), campaign.campaignId, unlimited),
    ]);

    // assess
    expect(a.settled + b.settled).toBe(targets.length);
    expect([...revokes().keys()].sort()).toEqual(targets.map((t) => t.targetId).sort());
    expect([...revokes().values()].every((n) => n === 1)).toBe(true);
    const stored = await world.campaigns.listTargets(campaign.campaignId);
    expect(stored.map((t) => [t.outcome, t.attempts])).toEqual(targets.map(() => ['revoked', 1]));
  });

  it('a batch another run settled since this run read the targets keeps that run’s records', async () => {
    // prepare: just before this run leases the batch, another run leases it and settles its first target
    const world = new MemoryWorld();
    await fleet(world, [declare('app-a')]);
    const { campaign, targets } = await plan(world);
    const [first] = targets as [Target];
    world.campaigns.hooks = {
      beforeWrite: (write) => {
        if (write.op !== 'leaseBatch') return;
        // The other run's writes are not hooked again.
        world.campaigns.hooks = {};
        const other = { batch: write.batch, holder: 'run:B' };
        void world.campaigns.leaseBatch(campaign.campaignId, { ...other, now: 0, expiresAt: 1, tryIds: [] });
        const settled: Target = {
          ...first,
          outcome: 'already-revoked',
          reason: 'settled by run B',
          attempts: 1,
        };
        void world.campaigns.settleBatch(campaign.campaignId, {
          ...other,
          outcomes: [settled],
          done: [],
          untried: [],
        });
      },
    };

    // act
    const result = await runCampaign(world.campaignDeps('run-a'), campaign.campaignId, unlimited);

    // assess
    const stored = await world.campaigns.listTargets(campaign.campaignId);
    expect(stored.find((t) => t.targetId === first.targetId)).toMatchObject({
      outcome: 'already-revoked',
      reason: 'settled by run B',
    });
    expect(result.settled).toBe(targets.length - 1);

    // act: a later run finds every target settled
    const revokes = countRevokes(world);
    const later = await runCampaign(world.campaignDeps('run-c'), campaign.campaignId, unlimited);

    // assess: it completes the campaign and revokes nothing more
    expect(later).toMatchObject({ settled: 0, stopped: false });
    expect(later.campaign.status).toBe('completed');
    expect(revokes().size).toBe(0);
  });

  it('a batch whose lease a live run holds is waited for, not worked, and left as it is when the wait runs out', async () => {
    // prepare: another run holds the batch's lease and keeps it (the clock does not move here)
    const world = new MemoryWorld();
    await fleet(world, [declare('app-a'), declare('app-b')]);
    const { campaign, targets } = await plan(world);
    const expiresAt = world.clock.now().getTime() + 60_000;
    await world.campaigns.leaseBatch(campaign.campaignId, {
      batch: '0',
      holder: 'run:B',
      now: world.clock.now().getTime(),
      expiresAt,
      tryIds: [],
    });
    const waits: number[] = [];
    const revokes = countRevokes(world);

    // act
    const result = await runCampaign(
      world.campaignDeps('run-a', { sleep: async (ms) => void waits.push(ms) }),
      campaign.campaignId,
      { ...unlimited, leaseMs: 30_000 },
    );

    // assess: it polled with growing waits for two lease lengths, revoked nothing, and says it stopped short
    expect(revokes().size).toBe(0);
    expect(waits[0]).toBe(250);
    expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(60_000);
    expect(result).toMatchObject({ settled: 0, stopped: true });
    expect(result.targets.map((t) => t.outcome)).toEqual(targets.map(() => 'pending'));
  });
});

describe('campaign engine: bookkeeping per batch', () => {
  it('costs at most 0.5 store requests per target: per batch of up to 25 one lease, one version mark, one audit append and one checkpoint', async () => {
    // prepare: 60 identities of three kinds (two services), two live versions each: 120 targets
    const world = new MemoryWorld();
    const kinds: IdentityKind[] = ['vault-token', 'aws-iam-access-key', 'vault-approle-secret-id'];
    await fleet(
      world,
      Array.from({ length: 60 }, (_, i) => declare(`app-${String(i).padStart(2, '0')}`, kinds[i % 3])),
    );
    const { campaign, targets } = await plan(world);
    const calls = new Map<string, number>();
    const counted = <T extends object>(port: T, name: string): T =>
      new Proxy(port, {
        get(target, key, receiver) {
          const value = Reflect.get(target, key, receiver);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.set(`${name}.${String(key)}`, (calls.get(`${name}.${String(key)}`) ?? 0) + 1);
            return value.apply(target, args);
          };
        },
      });
    const base = world.campaignDeps('test');
    const deps = {
      ...base,
      campaigns: counted(world.campaigns, 'campaigns'),
      identities: counted(world.identities, 'identities'),
      rotation: {
        ...base.rotation,
        store: counted(world.store, 'store'),
        audit: counted(world.audit, 'audit'),
      },
    };

    // act
    const result = await runCampaign(deps, campaign.campaignId, unlimited);

    // assess: every target revoked, in batches of 25 (Vault 80: three, IAM 40: one, what is left
    // of both, 20: one), each leased, marked, audited and checkpointed once
    expect(targets).toHaveLength(120);
    expect(result.campaign.counts.byOutcome.revoked).toBe(120);
    const batches = new Set(targets.map((t) => t.batch)).size;
    expect(batches).toBe(5);
    for (const call of [
      'campaigns.leaseBatch',
      'campaigns.settleBatch',
      'store.markVersionsRevoked',
      'audit.appendMany',
    ]) {
      expect(calls.get(call), call).toBe(batches);
    }
    expect(calls.get('campaigns.renewBatch')).toBeUndefined();
    // What each call costs on DynamoDB (the adapters): a lease is a conditional update and a
    // BatchGetItem, a checkpoint a BatchWriteItem and the release, a mark a BatchGetItem and a
    // BatchWriteItem, an append of ≤ 100 records a block put and the head; the rest one each.
    const dynamoRequests: Record<string, number> = {
      'campaigns.leaseBatch': 2,
      'campaigns.settleBatch': 2,
      'store.markVersionsRevoked': 2,
      'audit.appendMany': 2,
    };
    const requests = [...calls].reduce((sum, [call, n]) => sum + n * (dynamoRequests[call] ?? 1), 0);
    console.log(
      `bookkeeping of ${targets.length} targets: ${JSON.stringify(Object.fromEntries(calls))}, ${requests} DynamoDB requests, ${(requests / targets.length).toFixed(2)} per target`,
    );
    expect(requests / targets.length).toBeLessThanOrEqual(0.5);
    // …one audit event per target outcome, on an unbroken chain
    const trail = (await world.audit.readAll()).records.filter((r) => r.type === 'campaign.target');
    expect(trail).toHaveLength(120);
    expect(new Set(trail.map((r) => (r.details as { targetId: string }).targetId)).size).toBe(120);
    expect(world.audit.verify()).toMatchObject({ ok: true });
  });
});

describe('campaign engine: resume after a crash', () => {
  /**
   * A fleet of three identities with two targets each (one batch), and a first run that dies
   * right after its lease on the batch reached the store, or just before the batch's outcomes
   * are checkpointed. Its lease then runs out (the clock moves past it).
   */
  async function crashed(at: 'after-lease' | 'before-checkpoint') {
    const world = new MemoryWorld();
    await fleet(
      world,
      ['app-a', 'app-b', 'app-c'].map((id) => declare(id)),
    );
    const planned = await plan(world);
    const revokes = countRevokes(world);
    world.campaigns.hooks = {
      afterWrite: (write) => {
        if (at === 'after-lease' && write.op === 'leaseBatch')
          throw new SimulatedCrash('killed after the lease');
      },
      beforeWrite: (write) => {
        if (at === 'before-checkpoint' && write.op === 'settleBatch')
          throw new SimulatedCrash('killed before the checkpoint');
      },
    };
    await expect(
      runCampaign(world.campaignDeps('test'), planned.campaign.campaignId, unlimited),
    ).rejects.toThrow(SimulatedCrash);
    world.campaigns.hooks = {};
    const inFlight = await world.campaigns.listBatchLeases(planned.campaign.campaignId);
    world.clock.advance(31_000);
    return { world, ...planned, revokes, inFlight };
  }

  it('after the revokes, before the checkpoint: the resume calls again exactly the batch in flight, found already revoked', async () => {
    // prepare: the process dies as it is about to checkpoint the batch
    const { world, campaign, targets, revokes, inFlight } = await crashed('before-checkpoint');
    const afterCrash = await world.campaigns.listTargets(campaign.campaignId);

    // act
    const resumed = await runCampaign(world.campaignDeps('test'), campaign.campaignId, unlimited);

    // assess: nothing was checkpointed, the lease held a try of each target
    expect(afterCrash.filter((t) => t.outcome !== 'pending')).toEqual([]);
    expect(inFlight).toEqual([
      {
        batch: '0',
        holder: expect.any(String),
        expiresAt: expect.any(Number),
        tries: Object.fromEntries(targets.map((t) => [t.targetId, 1])),
      },
    ]);
    // assess: every credential revoked twice (in effect once), the second found it gone and counts two tries
    const counts = revokes();
    expect([...counts.keys()].sort()).toEqual(targets.map((t) => t.targetId).sort());
    expect([...counts.values()]).toEqual(targets.map(() => 2));
    expect(resumed.targets.map((t) => [t.outcome, t.attempts])).toEqual(
      targets.map(() => ['already-revoked', 2]),
    );
    expect(resumed.campaign.status).toBe('completed');
    expect(await world.campaigns.listBatchLeases(campaign.campaignId)).toEqual([]);
  });

  it('after the lease, before any revoke: the resume revokes each target once, its dead try counted', async () => {
    // prepare: the lease reaches the store, then the process dies
    const { world, campaign, targets, revokes } = await crashed('after-lease');
    expect(revokes().size).toBe(0);

    // act
    const resumed = await runCampaign(world.campaignDeps('test'), campaign.campaignId, unlimited);

    // assess
    expect(resumed.targets.map((t) => [t.outcome, t.attempts])).toEqual(targets.map(() => ['revoked', 2]));
    expect([...revokes().values()]).toEqual(targets.map(() => 1));
    expect(resumed.campaign.status).toBe('completed');
  });
});

describe('campaign engine: failures and retries', () => {
  it('retries throttling with backoff, fails a refused revoke at once, and a resume gives retryable failures a fresh budget', async () => {
    // prepare: app-a is throttled twice, app-b throughout the first run, app-c refused
    const world = new MemoryWorld();
    const [appA, appB, appC] = await fleet(
      world,
      ['app-a', 'app-b', 'app-c'].map((id) => declare(id)),
    );
    const provider = world.providers['vault-token'];
    const throttled = () => new KeywardenError('Vault answered HTTP 429', { retryable: true });
    provider.failOn('revoke', { subject: 'app-a', times: 2, error: throttled() });
    provider.failOn('revoke', { subject: 'app-b', times: 6, error: throttled() });
    provider.failOn('revoke', {
      subject: 'app-c',
      times: 2,
      error: new ValidationError('permission denied'),
    });
    const { campaign } = await plan(world, { reissue: true });
    const waits: number[] = [];
    const deps = world.campaignDeps('test', { sleep: async (ms) => void waits.push(ms) });
    const options = { ...unlimited, maxAttempts: 3, baseDelayMs: 100 };

    // act
    const first = await runCampaign(deps, campaign.campaignId, options);

    // assess: outcomes and attempts per identity, waits under the doubling cap
    const of = (targets: readonly Target[], identity: Identity | undefined) =>
      targets.filter((t) => t.identityId === identity?.id).map((t) => [t.outcome, t.attempts, t.retryable]);
    expect(of(first.targets, appA)).toEqual([
      ['revoked', 3, undefined],
      ['revoked', 1, undefined],
    ]);
    expect(of(first.targets, appB)).toEqual([
      ['failed', 3, true],
      ['failed', 3, true],
    ]);
    expect(of(first.targets, appC)).toEqual([
      ['failed', 1, false],
      ['failed', 1, false],
    ]);
    // Two retries for app-a's first target and for each of app-b's: full jitter (0.5 here) under 100·2^(n−1) ms.
    expect(waits.sort((a, b) => a - b)).toEqual([50, 50, 50, 100, 100, 100]);
    const reissues = new Map(first.reissues.map((r) => [r.identityId, r.status]));
    expect(Object.fromEntries(reissues)).toEqual({
      'app-a': 'reissued',
      'app-b': 'withheld',
      'app-c': 'withheld',
    });
    expect(world.works(appA as Identity)).toBe(true);
    expect(first.campaign.status).toBe('completed');

    // act: the responder resumes once the throttling is over
    const resumed = await runCampaign(deps, campaign.campaignId, { ...options, retryFailed: true });

    // assess: the retryable failures are revoked now and re-issued; the refused ones stand
    expect(of(resumed.targets, appB).map(([outcome, attempts]) => [outcome, attempts])).toEqual([
      ['revoked', 4],
      ['revoked', 4],
    ]);
    expect(of(resumed.targets, appC)).toEqual(of(first.targets, appC));
    expect(resumed.reissues.find((r) => r.identityId === 'app-b')?.status).toBe('reissued');
    expect(world.works(appB as Identity)).toBe(true);
  });
});

describe('campaign engine: the per-kind limiters', () => {
  it('never has more revokes of a service in flight than its limiter allows', async () => {
    // prepare: vault at 3 at once, IAM at 2
    const world = new MemoryWorld();
    await fleet(world, [
      ...Array.from({ length: 8 }, (_, i) => declare(`token-${i}`)),
      ...Array.from({ length: 4 }, (_, i) => declare(`key-${i}`, 'aws-iam-access-key')),
    ]);
    const { campaign, targets } = await plan(world);
    const limits: Record<ProviderService, Limit> = {
      vault: pLimit(3),
      iam: pLimit(2),
      'secrets-manager': pLimit(1),
    };

    // act
    const result = await runCampaign(world.campaignDeps('test'), campaign.campaignId, {
      limitFor: (kind) => limits[serviceOf(kind)],
    });

    // assess
    expect(result.settled).toBe(targets.length);
    expect(world.providers['vault-token'].peakRevokes).toBe(3);
    expect(world.providers['aws-iam-access-key'].peakRevokes).toBe(2);
  });
});

describe('campaign engine: re-issue', () => {
  it('replaces the current value of a kind that always keeps one (aws-secret) before revoking it, and re-issues once', async () => {
    // prepare
    const world = new MemoryWorld();
    const [secret] = await fleet(world, [declare('app-secret', 'aws-secret')]);
    const { campaign, targets } = await plan(world, { reissue: true });
    const compromised = (await world.store.listVersions('app-secret')).find((v) => v.stage === 'current');

    // act
    const result = await runCampaign(world.campaignDeps('test'), campaign.campaignId, unlimited);

    // assess: both old values revoked, the current one after a fresh one took its place
    expect(result.targets.map((t) => t.outcome)).toEqual(['revoked', 'revoked']);
    const replaced = result.targets.find((t) => t.versionId === compromised?.versionId);
    expect(replaced?.reason).toMatch(
      /always keeps a current value: replaced by a fresh version id-\d+ first/,
    );
    const current = (await world.store.listVersions('app-secret')).find((v) => v.stage === 'current');
    expect(result.reissues).toEqual([
      expect.objectContaining({
        identityId: 'app-secret',
        status: 'reissued',
        versionId: current?.versionId,
      }),
    ]);
    expect(targets.map((t) => t.handle)).not.toContain(current?.handle);
    expect(world.works(secret as Identity)).toBe(true);
    // One issue at setup, one for the replacement: the re-issue after the targets found it done.
    expect(world.providers['aws-secret'].count('issue')).toBe(2);
  });

  it("takes the turns of its writes from its service's rate: four for a current value it replaces, one for any other target", async () => {
    // prepare: a secret (its previous and current values) and a Vault token
    const world = new MemoryWorld();
    await fleet(world, [declare('app-secret', 'aws-secret'), declare('app-token')]);
    const { campaign } = await plan(world);
    const taken: [IdentityKind, number][] = [];
    const counting = {
      limitFor:
        (kind: IdentityKind): Limit =>
        (work, turns = 1) => {
          taken.push([kind, turns]);
          return work();
        },
    };

    // act
    const result = await runCampaign(world.campaignDeps('test'), campaign.campaignId, counting);

    // assess: one try each; the secret's current value four turns, its previous one, the token's one each
    const tokens = result.targets.filter((t) => t.kind === 'vault-token').length;
    expect(tokens).toBeGreaterThan(0);
    expect(taken.sort()).toEqual(
      [
        ['aws-secret', 1] as const,
        ['aws-secret', 4] as const,
        ...Array(tokens).fill(['vault-token', 1]),
      ].sort(),
    );
  });

  it('leaves the current value of a tracked-only aws-secret (policy.rotate false) in force: its target fails for good, saying to replace it where it is issued', async () => {
    // prepare: a secret keywarden rotated once, then declared tracked only
    const world = new MemoryWorld();
    const [secret] = (await fleet(world, [declare('app-secret', 'aws-secret')])) as Identity[];
    const stored = await world.identities.getIdentity('app-secret');
    await world.identities.putIdentity(
      {
        ...(stored as NonNullable<typeof stored>),
        identity: { ...(secret as Identity), policy: { ...(secret as Identity).policy, rotate: false } },
      },
      stored?.rev,
    );
    const { campaign } = await plan(world, { reissue: true });
    const current = (await world.store.listVersions('app-secret')).find((v) => v.stage === 'current');

    // act
    const result = await runCampaign(world.campaignDeps('test'), campaign.campaignId, unlimited);

    // assess: no replacement issued, the current value still works, and the reason says why
    const target = result.targets.find((t) => t.versionId === current?.versionId);
    expect(target).toMatchObject({
      outcome: 'failed',
      retryable: false,
      error: expect.stringMatching(
        /keywarden cannot replace it \(policy.rotate is false.*replace it where it is issued/,
      ),
    });
    expect(result.reissues).toEqual([]);
    expect(world.providers['aws-secret'].count('issue')).toBe(1);
    expect(world.works(secret as Identity)).toBe(true);
  });
});

describe('campaign engine: a campaign whose planner still stores parts', () => {
  it('runs the targets stored so far and is not completed; the run writes no campaign it did not change', async () => {
    // prepare: the first part of a campaign planned in parts (Vault's), its planning open
    const world = new MemoryWorld();
    await fleet(world, [declare('app-a'), declare('app-b')]);
    const subjects = await Promise.all(
      (await world.identities.listIdentities()).map(async ({ identity }) => ({
        identity,
        versions: await world.store.listVersions(identity.id),
      })),
    );
    const planned = planCampaign({
      campaignId: `${INCIDENT}-parts`,
      incident: INCIDENT,
      selectors: ['env=prod'],
      requestedBy: 'cli:responder',
      now: world.clock.now().toISOString(),
      reissue: false,
      subjects,
    });
    await world.campaigns.createCampaign(
      { ...planned.campaign, planning: { stored: ['vault'] } },
      planned.targets,
    );
    const written: string[] = [];
    world.campaigns.hooks = {
      afterWrite: (write) => {
        if (write.op === 'putCampaign') written.push(JSON.stringify(write.campaign));
      },
    };

    // act
    const result = await runCampaign(world.campaignDeps('test'), planned.campaign.campaignId, unlimited);

    // assess: revoked, still open; each campaign write changed what the one before wrote
    expect(result.targets.map((t) => t.outcome)).toEqual(['revoked', 'revoked', 'revoked', 'revoked']);
    expect(result.campaign).toMatchObject({ status: 'running', planning: { stored: ['vault'] } });
    expect(written.length).toBeGreaterThan(0);
    expect(written.filter((campaign, n) => campaign === written[n - 1])).toEqual([]);
  });
});

describe('campaign engine: a campaign with nothing to run (every target settled at planning)', () => {
  /** A stored campaign whose one target the plan already settled: nothing for a batch to do. */
  async function settledAtPlanning(world: MemoryWorld) {
    const skipped: Target = {
      targetId: 'app-d:ci/app-d',
      identityId: 'app-d',
      kind: 'vault-token',
      owner: 'team-app',
      environment: 'prod',
      handle: 'ci/app-d',
      action: 'revoke',
      reissue: false,
      outcome: 'skipped',
      reason: NO_LIVE_CREDENTIAL,
      attempts: 0,
    };
    const campaign = {
      campaignId: `${INCIDENT}-empty`,
      incident: INCIDENT,
      selectors: ['env=prod'],
      requestedBy: 'cli:responder',
      createdAt: world.clock.now().toISOString(),
      status: 'planned' as const,
      reissue: false,
      dryRun: false,
      counts: summarize([skipped]),
    };
    return world.campaigns.createCampaign(campaign, [skipped]);
  }
  const bookOf = (world: MemoryWorld) => ({
    campaigns: world.campaigns,
    audit: world.audit,
    clock: world.clock,
    actor: 'stepfunctions:revocation',
  });

  it('is started and completed by closeCampaign, with its events and timings, once', async () => {
    // prepare
    const world = new MemoryWorld();
    const { campaignId } = await settledAtPlanning(world);

    // act: the report step after a Distributed Map of zero items, then again (a retried step)
    const closed = await closeCampaign(bookOf(world), campaignId);
    const again = await closeCampaign(bookOf(world), campaignId);

    // assess
    expect(closed).toMatchObject({ status: 'completed', startedAt: world.clock.now().toISOString() });
    expect(closed.finishedAt).toBe(closed.startedAt);
    expect(closed.counts.byOutcome).toMatchObject({ skipped: 1, pending: 0 });
    expect(again).toEqual(closed);
    const { records } = await world.audit.readAll();
    expect(records.map((r) => [r.type, r.actor])).toEqual([
      ['campaign.started', 'stepfunctions:revocation'],
      ['campaign.target', 'stepfunctions:revocation'],
      ['campaign.completed', 'stepfunctions:revocation'],
    ]);
    expect(records[1]?.details).toMatchObject({ outcome: 'skipped', reason: NO_LIVE_CREDENTIAL });
  });

  it('is started by a run limited to some targets (a batch worker, here of none) and completed by closeCampaign, the report step', async () => {
    // prepare
    const world = new MemoryWorld();
    const { campaignId } = await settledAtPlanning(world);

    // act: the worker knows only its own targets, so the counts and the completion are not its own
    const run = await runCampaign(world.campaignDeps('cli:responder'), campaignId, {
      ...unlimited,
      targetIds: [],
    });
    const closed = await closeCampaign(bookOf(world), campaignId);

    // assess
    expect(run.campaign.status).toBe('running');
    expect(closed.status).toBe('completed');
    expect((await world.audit.readAll()).records.map((r) => r.type)).toEqual([
      'campaign.started',
      'campaign.target',
      'campaign.completed',
    ]);
  });

  it('leaves a campaign with pending targets as it is', async () => {
    // prepare
    const world = new MemoryWorld();
    await fleet(world, [declare('app-a')]);
    const { campaign } = await plan(world);

    // act
    const closed = await closeCampaign(bookOf(world), campaign.campaignId);

    // assess
    expect(closed.status).toBe('planned');
    expect((await world.audit.readAll()).records.filter((r) => r.type.startsWith('campaign.'))).toEqual([]);
  });
});
