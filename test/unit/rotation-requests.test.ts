/**
 * What one rotation costs, in calls on the ports: the store (lock, progress, versions), the
 * audit trail, the provider and the delivery target. Each call of a port is at least one
 * request to DynamoDB, Vault or AWS, so these counts bound the requests per identity that
 * `npm run bench` measures against the real servers (issue #12: at most 15 per identity).
 * Every kind the engine rotates on a schedule, over the in-memory ports of test/support.
 */
import { describe, expect, it } from 'vitest';
import type { Identity, IdentityKind } from '../../functions/core/identity.ts';
import { deliveryOf, KINDS } from '../../functions/core/kinds.ts';
import type { AuditLog, ListOptions, RotationStore } from '../../functions/core/ports.ts';
import { rotateIdentity } from '../../functions/core/rotation.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { MemoryWorld } from '../support/memory-providers.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };

/** Every kind rotated on a schedule, each with its delivery (a value store is its own). */
const ROTATED = (Object.keys(KINDS) as IdentityKind[]).filter((kind) => KINDS[kind].rotates);

function identityOf(kind: IdentityKind): Identity {
  const declared = makeIdentity({ id: `${kind}-app`, kind, policy });
  return deliveryOf(declared)
    ? declared
    : makeIdentity({ id: `${kind}-app`, kind, policy, delivery: { type: 'vault-kv', path: `ci/${kind}` } });
}

/** Counts every call made through `port`, by method name. */
function counted<T extends object>(port: T, calls: Map<string, number>, prefix: string): T {
  return new Proxy(port, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const key = `${prefix}.${String(name)}`;
        calls.set(key, (calls.get(key) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
}

/** One rotation of `identity` in `world`, and the calls it made on each port, by `<port>.<method>`. */
async function rotationCalls(world: MemoryWorld, identity: Identity, owner: string) {
  const calls = new Map<string, number>();
  const deps = world.rotationDeps('scheduler:rotation');
  const outcome = await rotateIdentity(
    {
      ...deps,
      store: counted<RotationStore>(world.store, calls, 'store'),
      audit: counted<Pick<AuditLog, 'append' | 'appendMany' | 'recordsSince'>>(world.audit, calls, 'audit'),
      providerFor: (of) => counted(deps.providerFor(of), calls, 'provider'),
      deliveryFor: (delivery) => counted(deps.deliveryFor(delivery), calls, 'delivery'),
    },
    identity,
    { owner },
  );
  return { outcome, calls: Object.fromEntries([...calls].sort(([a], [b]) => a.localeCompare(b))) };
}

const total = (calls: Record<string, number>, prefix: string) =>
  Object.entries(calls)
    .filter(([name]) => name.startsWith(prefix))
    .reduce((sum, [, n]) => sum + n, 0);

describe.each(ROTATED)('rotation engine: what one rotation of a %s costs', (kind) => {
  it('a first rotation: 6 store calls (one read, the progress written as it starts taking the lock and as it finishes giving it back, 3 version writes: verified — pending and tested in one write —, current, the adopted one previous), 2 audit appends (issued and verified together, then delivered and activated together), no trail read, one listing to adopt, the delivered value read once (rendered over and staged over), nothing read back', async () => {
    // prepare: a pipeline with a working credential keywarden never saw
    const world = new MemoryWorld();
    const identity = identityOf(kind);
    await world.seed(identity, { createdAt: new Date(world.clock.now().getTime() - DAY).toISOString() });

    // act
    const { outcome, calls } = await rotationCalls(world, identity, 'run-1');

    // assess
    expect(outcome.status, outcome.reason).toBe('rotated');
    expect(calls).toMatchObject({
      'store.loadRotation': 1,
      'store.putRotation': 2,
      'store.putVersion': 3,
      'audit.appendMany': 2,
      'provider.issue': 1,
      'provider.verify': 1,
      'provider.list': 1,
      'delivery.readCurrent': 1,
      'delivery.stagePending': 1,
      'delivery.promote': 1,
    });
    expect(total(calls, 'store.')).toBe(6);
    expect(calls['audit.append']).toBeUndefined();
    expect(calls['audit.recordsSince']).toBeUndefined();
    expect(calls['delivery.readPending']).toBeUndefined();
  });

  it('a later rotation: the same 6 store calls and no listing; retiring the previous credential after its grace adds one write, one revoke and one event', async () => {
    // prepare: rotated once; the next rotation falls due after the grace period
    const world = new MemoryWorld();
    const identity = identityOf(kind);
    await world.seed(identity, { createdAt: new Date(world.clock.now().getTime() - DAY).toISOString() });
    await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });
    world.clock.advance(8 * DAY);

    // act
    const { outcome, calls } = await rotationCalls(world, identity, 'run-2');

    // assess: the retirement (mark, revoke, event, revoked), then the rotation (old current becomes previous)
    expect(outcome.status, outcome.reason).toBe('rotated');
    expect(outcome.retired).toHaveLength(1);
    expect(total(calls, 'store.')).toBe(6 + 2);
    expect(calls['store.putVersion']).toBe(3 + 2);
    expect(calls['audit.append']).toBe(1);
    expect(calls['audit.appendMany']).toBe(2);
    expect(calls['provider.list']).toBeUndefined();
    expect(calls['provider.revoke']).toBe(1);
    expect(calls['audit.recordsSince']).toBeUndefined();
    expect(calls['delivery.readPending']).toBeUndefined();
  });
});

describe('rotation engine: what a first rotation tells the listing that adopts the credential it replaced', () => {
  /** One rotation of `identity`, and the options each listing of its provider was given. */
  async function listingsOf(world: MemoryWorld, identity: Identity, owner: string) {
    const told: (ListOptions | undefined)[] = [];
    const deps = world.rotationDeps('scheduler:rotation');
    const outcome = await rotateIdentity(
      {
        ...deps,
        providerFor: (of) => {
          const bound = deps.providerFor(of);
          return {
            ...bound,
            list: (options) => {
              told.push(options);
              return bound.list(options);
            },
          };
        },
      },
      identity,
      { owner },
    );
    return { outcome, told };
  }

  it('the handles already recorded (the new one among them), so a provider that looks each credential up skips them', async () => {
    // prepare: a pipeline with a working credential keywarden never saw
    const world = new MemoryWorld();
    const identity = identityOf('vault-approle-secret-id');
    await world.seed(identity, { createdAt: new Date(world.clock.now().getTime() - DAY).toISOString() });

    // act
    const { outcome, told } = await listingsOf(world, identity, 'run-1');

    // assess
    expect(outcome.status, outcome.reason).toBe('rotated');
    const current = (await world.store.listVersions(identity.id)).find((v) => v.stage === 'current');
    expect(told).toHaveLength(1);
    expect([...(told[0]?.skip ?? [])]).toEqual([current?.handle]);
  });

  it('the value the pipeline read before the promotion (read once, before issuing), so a provider that names a credential by its value adopts it without listing them all', async () => {
    // prepare: a pipeline with a working token keywarden never saw
    const world = new MemoryWorld();
    const identity = identityOf('vault-token');
    const held = await world.seed(identity, {
      createdAt: new Date(world.clock.now().getTime() - DAY).toISOString(),
    });

    // act
    const { outcome, told } = await listingsOf(world, identity, 'run-1');

    // assess
    expect(outcome.status, outcome.reason).toBe('rotated');
    expect(told).toHaveLength(1);
    expect(told[0]?.replaced?.reveal()).toBe(held.secret.reveal());
  });
});

describe('rotation engine: what a run that has nothing to do costs', () => {
  it('an identity not due, with nothing to retire: one read, no write (no lock taken)', async () => {
    // prepare: rotated once, within its rotation period and the grace of nothing
    const world = new MemoryWorld();
    const identity = identityOf('vault-token');
    await world.seed(identity, { createdAt: new Date(world.clock.now().getTime() - DAY).toISOString() });
    await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });
    world.clock.advance(2 * HOUR);
    await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-2' });

    // act
    const { outcome, calls } = await rotationCalls(world, identity, 'run-3');

    // assess
    expect(outcome).toMatchObject({ status: 'skipped' });
    expect(calls).toEqual({ 'store.loadRotation': 1 });
  });
});
