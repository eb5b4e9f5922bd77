/**
 * Rotation's pacing (core/rotation.ts `rotateMany` with `pace`, adapters/rate-limits.ts
 * `rotationPace`): each provider service's rotations start at its configured rate, as a
 * campaign's revocations do, while the rotations of another service go on meanwhile; only
 * starts are paced, not how many of a service's rotations are in flight; identities that turn
 * out not due are decided from the store and never wait. In memory (test/support), on fake timers.
 */
import pLimit from 'p-limit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_RATE_LIMITS,
  type RateLimits,
  rotationPace,
  startSchedule,
} from '../../functions/adapters/rate-limits.ts';
import type { Identity } from '../../functions/core/identity.ts';
import type { BoundProvider } from '../../functions/core/ports.ts';
import { type RotationStart, rotateMany } from '../../functions/core/rotation.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { MemoryWorld } from '../support/memory-providers.ts';

const DAY = 86_400_000;
const policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };

const iamKey = (n: number) =>
  makeIdentity({
    id: `iam-${n}`,
    kind: 'aws-iam-access-key',
    policy,
    delivery: { type: 'aws-secret', secretId: `ci/iam-${n}` },
  });
const vaultToken = (n: number) =>
  makeIdentity({
    id: `token-${n}`,
    kind: 'vault-token',
    policy,
    delivery: { type: 'vault-kv', path: `ci/token-${n}` },
  });

const secret = (n: number) =>
  makeIdentity({
    id: `secret-${n}`,
    kind: 'aws-secret',
    policy,
    scope: { secretId: `app/secret-${n}` },
    delivery: { type: 'aws-secret', secretId: `app/secret-${n}` },
  });

const limits = (iam: number): RateLimits => ({
  ...DEFAULT_RATE_LIMITS,
  iam: { concurrency: 4, perSecond: iam },
});

/** Whether the times, in order, keep a schedule of one at once then one every `spacing` ms: never ahead of it. */
const keepsSchedule = (times: readonly number[], spacing: number): boolean =>
  [...times].sort((a, b) => a - b).every((at, n) => at >= n * spacing);

/**
 * A world with the identities seeded (a credential made a day ago, never rotated by keywarden:
 * due), whose providers note when each issue starts and hold each test for `verifyMs`.
 */
async function prepare(identities: readonly Identity[], verifyMs = 0) {
  const world = new MemoryWorld();
  for (const identity of identities) {
    await world.seed(identity, { createdAt: new Date(world.clock.now().getTime() - DAY).toISOString() });
  }
  const issued: Record<string, number[]> = {};
  let inFlight = 0;
  let mostInFlight = 0;
  const deps = world.rotationDeps('spec', {
    // The fake timers' time: a rotation's duration is measured on it (seeded credentials are due on it too).
    clock: { now: () => new Date() },
    providerFor: (identity): BoundProvider => {
      const bound = world.providerOf(identity).bind(identity);
      return {
        ...bound,
        issue: async (context) => {
          issued[identity.kind] = [...(issued[identity.kind] ?? []), Date.now()];
          return bound.issue(context);
        },
        verify: async (credential) => {
          inFlight += 1;
          mostInFlight = Math.max(mostInFlight, inFlight);
          if (verifyMs > 0) await new Promise((resolve) => setTimeout(resolve, verifyMs));
          inFlight -= 1;
          return bound.verify(credential);
        },
      };
    },
  });
  return { world, deps, issued, mostInFlight: () => mostInFlight };
}

describe('rotation: pacing per provider service', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("starts one service's rotations at its rate while another service's go on, none holding a slot while it waits", async () => {
    vi.useFakeTimers();
    const identities = [
      ...Array.from({ length: 10 }, (_, n) => iamKey(n)),
      ...Array.from({ length: 20 }, (_, n) => vaultToken(n)),
    ];
    const { deps, issued } = await prepare(identities);
    const began = Date.now();

    // Two slots: were a waiting IAM rotation to hold one, the tokens would wait behind IAM's rate.
    // Vault at 1,000 turns a second: a token delivered to KV takes five (its create, the KV writes).
    const run = rotateMany(deps, identities, {
      owner: 'spec',
      limit: pLimit(2),
      pace: rotationPace({ ...limits(5), vault: { concurrency: 32, perSecond: 1_000 } }),
    });
    await vi.advanceTimersByTimeAsync(5_000);
    const outcomes = await run;

    expect(outcomes.map((o) => o.status)).toEqual(identities.map(() => 'rotated'));
    const iam = (issued['aws-iam-access-key'] ?? []).map((at) => at - began);
    const tokens = (issued['vault-token'] ?? []).map((at) => at - began);
    // IAM at 5 a second from an empty bucket: one at once, then one every 200 ms, and no later.
    expect(iam).toHaveLength(10);
    expect(keepsSchedule(iam, 200)).toBe(true);
    expect(Math.max(...iam)).toBeLessThan(2_000);
    // Vault's 1,000 turns a second: the twenty tokens were all issued before IAM's third start.
    expect(tokens).toHaveLength(20);
    expect(Math.max(...tokens)).toBeLessThan(400);
    // Durations count a rotation's own work (a few ms of the memory providers' setImmediate), not
    // its wait for a turn: the last IAM key waited 1.8 s.
    expect(Math.max(...outcomes.map((o) => o.durationMs))).toBeLessThan(100);
  });

  it("paces starts only: rotations of a service whose test takes seconds are in flight together, past a campaign's concurrency", async () => {
    vi.useFakeTimers();
    const identities = Array.from({ length: 12 }, (_, n) => iamKey(n));
    const { deps, issued, mostInFlight } = await prepare(identities, 3_000);
    const began = Date.now();

    const run = rotateMany(deps, identities, {
      owner: 'spec',
      limit: pLimit(32),
      pace: rotationPace(limits(5)),
    });
    await vi.advanceTimersByTimeAsync(10_000);
    const outcomes = await run;

    expect(outcomes.every((o) => o.status === 'rotated')).toBe(true);
    expect(keepsSchedule(issued['aws-iam-access-key'] ?? [], 200)).toBe(true);
    // 5 a second for 2.2 s, each test 3 s: all twelve under test at once, not the campaign's 4.
    expect(mostInFlight()).toBe(12);
    expect(Math.max(...(issued['aws-iam-access-key'] ?? [])) - began).toBeLessThan(2_400);
  });

  it('asks the pace only for identities with work for their provider: those not due are decided from the store at once', async () => {
    const identities = [iamKey(1), iamKey(2), vaultToken(1)];
    const { deps } = await prepare(identities);
    await rotateMany(deps, identities, { owner: 'first', limit: pLimit(4) });
    const asked: RotationStart[] = [];

    const outcomes = await rotateMany(deps, identities, {
      owner: 'second',
      limit: pLimit(4),
      pace: (start) => {
        asked.push(start);
        return undefined;
      },
    });

    expect(outcomes.map((o) => o.status)).toEqual(['skipped', 'skipped', 'skipped']);
    expect(asked).toEqual([]);
  });

  it('tells the pace what a rotation will do: rotating, and the versions past their grace it retires first', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const identity = iamKey(1);
    const { deps } = await prepare([identity]);
    await rotateMany(deps, [identity], { owner: 'first', limit: pLimit(1) });
    // A week and a day later: due again, and the key it replaced is past its grace.
    vi.setSystemTime(Date.now() + 8 * DAY);
    const asked: RotationStart[] = [];

    const [outcome] = await rotateMany(deps, [identity], {
      owner: 'second',
      limit: pLimit(1),
      pace: (start) => {
        asked.push(start);
        return undefined;
      },
    });

    expect(outcome?.status).toBe('rotated');
    expect(asked.map(({ identity: { id }, rotating, retiring }) => ({ id, rotating, retiring }))).toEqual([
      { id: 'iam-1', rotating: true, retiring: 1 },
    ]);
  });
});

describe('rate limits: rotation turns', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** When each of `count` paced starts goes, in ms from now, for a pace and what it is told. */
  async function startsOf(
    pace: ReturnType<typeof rotationPace>,
    starts: readonly { identity: Identity; retiring?: number }[],
  ): Promise<number[]> {
    const began = Date.now();
    const at: number[] = [];
    const all = Promise.all(
      starts.map(async ({ identity, retiring = 0 }, n) => {
        const delivery = identity.delivery;
        if (!delivery) throw new Error('spec identities have a delivery');
        await pace({ identity, delivery, rotating: true, retiring });
        at[n] = Date.now() - began;
      }),
    );
    await vi.advanceTimersByTimeAsync(20_000);
    await all;
    return at;
  }

  it('takes several turns at once: two starts of three turns each at 2 a second go at 1 and 2.5 s', async () => {
    vi.useFakeTimers();
    const schedule = startSchedule(2);
    const began = Date.now();
    const at: number[] = [];

    const all = Promise.all(
      [3, 3].map(async (turns, n) => {
        await schedule.take(turns);
        at[n] = Date.now() - began;
      }),
    );
    await vi.advanceTimersByTimeAsync(5_000);
    await all;

    // From an empty bucket, one turn at once and one every 500 ms: the first three are 0, 0.5 and 1 s's,
    // the next three 1.5, 2 and 2.5 s's; each start goes at its last turn.
    expect(at).toEqual([1_000, 2_500]);
  });

  it("counts a Secrets Manager rotation's three writes as three revocations, and an IAM key's IAM calls as one", async () => {
    vi.useFakeTimers();
    const paceAt = (iam: number, secretsManager: number) =>
      rotationPace({
        iam: { concurrency: 4, perSecond: iam },
        'secrets-manager': { concurrency: 16, perSecond: secretsManager },
        vault: { concurrency: 32, perSecond: 100 },
      });

    const secrets = await startsOf(
      paceAt(2, 3),
      [1, 2, 3].map((n) => ({ identity: secret(n) })),
    );
    const keys = await startsOf(paceAt(2, 1_000), [
      { identity: iamKey(1) },
      { identity: iamKey(2) },
      { identity: iamKey(3), retiring: 1 },
    ]);

    // Three writes a second: one rotation a second, the first at its third turn (0.67 s from empty).
    expect(secrets).toEqual([667, 1_667, 2_667]);
    // IAM's two a second from empty, four turns (one more for the key retired): 0, 0.5, 1 and 1.5 s.
    // Each key starts when its turns of both services are due, and takes them then: the first once
    // Secrets Manager's three are (2 ms from its empty bucket), the second at IAM's 0.5 s, the third
    // at its second IAM turn, 1.5 s.
    expect(keys).toEqual([2, 500, 1_500]);
  });

  it("keeps IAM's rate for IAM keys that also wait on Secrets Manager's turns (no bunching when those come)", async () => {
    vi.useFakeTimers();
    const kvKey = (n: number) =>
      makeIdentity({
        id: `kv-key-${n}`,
        kind: 'aws-iam-access-key',
        policy,
        delivery: { type: 'vault-kv', path: `ci/kv-key-${n}` },
      });
    // The defaults' rates (IAM 5, Secrets Manager 40 a second): forty keys delivered to KV, forty
    // to secrets, then two hundred secrets, each due 5 ms after the one before. The keys to secrets
    // wait on Secrets Manager's turns while the secrets take them.
    const fleet = [
      ...Array.from({ length: 40 }, (_, n) => kvKey(n)),
      ...Array.from({ length: 40 }, (_, n) => iamKey(n)),
      ...Array.from({ length: 200 }, (_, n) => secret(n)),
    ];
    const pace = rotationPace(DEFAULT_RATE_LIMITS);
    const began = Date.now();
    const at = new Map<string, number>();
    const all = Promise.all(
      fleet.map(async (identity, n) => {
        await new Promise((due) => setTimeout(due, n * 5));
        const delivery = identity.delivery;
        if (!delivery) throw new Error('spec identities have a delivery');
        await pace({ identity, delivery, rotating: true, retiring: 0 });
        at.set(identity.id, Date.now() - began);
      }),
    );
    await vi.advanceTimersByTimeAsync(60_000);
    await all;

    // A token bucket of 5 (a second's worth): any n IAM starts span at least (n − 5) / 5 s.
    const iam = fleet.filter((i) => i.kind === 'aws-iam-access-key').map((i) => at.get(i.id) ?? NaN);
    const sorted = [...iam].sort((a, b) => a - b);
    const over = sorted.filter((t, j) =>
      sorted.some((u, i) => i < j && j - i + 1 > 5 + ((t - u) * 5) / 1_000),
    );
    expect(iam).toHaveLength(80);
    expect(over).toEqual([]);
  });
});
