/**
 * The rotation engine (functions/core/rotation.ts) without any server: the protocol's
 * four steps, its crash checkpoints, the failed test, the per-identity lock and the
 * grace period, over the in-memory stores and provider of test/support. The same
 * behaviour against moto and OpenBao is specified in test/integration/rotation*.test.ts.
 *
 * Two kinds stand for all: a Vault token delivered to a KV path (its provider tags each
 * credential with the rotation version that made it) and an IAM access key delivered to
 * a secret (untaggable: an interrupted attempt's orphan is told by its creation time).
 */
import { describe, expect, it } from 'vitest';
import { VerificationError } from '../../functions/core/errors.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { deliveryOf } from '../../functions/core/kinds.ts';
import {
  type Checkpoint,
  LOCK_TTL_MS,
  type NativeStep,
  type RotationDeps,
  rotateIdentity,
  runNativeStep,
  SimulatedCrash,
} from '../../functions/core/rotation.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { MemoryWorld } from '../support/memory-providers.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };

const kinds = {
  'vault-token': (id: string) =>
    makeIdentity({ id, kind: 'vault-token', policy, delivery: { type: 'vault-kv', path: `ci/${id}` } }),
  'aws-iam-access-key': (id: string) =>
    makeIdentity({
      id,
      kind: 'aws-iam-access-key',
      policy,
      delivery: { type: 'aws-secret', secretId: `ci/${id}` },
    }),
} as const;
type Kind = keyof typeof kinds;

/**
 * A world with one identity whose pipeline has a working credential made a day ago (long
 * before any attempt, so never mistaken for an attempt's orphan).
 */
async function prepare(kind: Kind = 'vault-token') {
  const world = new MemoryWorld();
  const identity = kinds[kind](`${kind}-app`);
  const original = await world.seed(identity, {
    createdAt: new Date(world.clock.now().getTime() - DAY).toISOString(),
  });
  return { world, identity, original };
}

/**
 * The checkpoints of a scheduled run, in order: after each step, inside createSecret and
 * finishSecret, and on both sides of every audit append (`…Saved`: the store write it
 * follows is done, the event not yet appended; `…Audited`: appended, the progress that
 * marks it recorded not yet saved). A scheduled run stores the version it issues once, after
 * its test (pending and verified in one write), and appends issued and verified together.
 */
const CHECKPOINTS = [
  'issued',
  'staged',
  'createSecret',
  'setSecret',
  'verifiedSaved',
  'verifiedAudited',
  'testSecret',
  'promoted',
  'currentSaved',
  'deliveredAudited',
  'activatedAudited',
  'finishSecret',
] as const satisfies readonly Checkpoint[];

/**
 * A native rotation's checkpoints: Secrets Manager invokes each step on its own, so createSecret
 * stores the pending version and appends its issued event before it answers.
 */
const NATIVE_CHECKPOINTS = [
  'issued',
  'staged',
  'pendingSaved',
  'issuedAudited',
  ...CHECKPOINTS.slice(2),
] as const satisfies readonly Checkpoint[];

/** The checkpoints of retirement after the grace period: revoked but not audited, audited but not saved. */
const RETIREMENT_CHECKPOINTS = ['retiring', 'retiredAudited'] as const satisfies readonly Checkpoint[];

/**
 * Crash windows where the dead run may have appended events it had not yet marked recorded
 * (a scheduled run marks them when the rotation finishes): from the pending version's write
 * to the finish. The resumed run reads the trail there, once; elsewhere never.
 */
const UNMARKED_WINDOWS: readonly Checkpoint[] = CHECKPOINTS.filter(
  (checkpoint) => !['issued', 'staged', 'createSecret', 'setSecret', 'finishSecret'].includes(checkpoint),
);

/** Crash windows where the credential was issued and not recorded yet: the resumed run revokes it as an orphan. */
const UNRECORDED: readonly Checkpoint[] = ['issued', 'staged', 'createSecret', 'setSecret'];

/** The events of one rotation and its retirement, each once and in this order. */
const PROTOCOL_EVENTS = [
  'credential.issued',
  'credential.verified',
  'credential.delivered',
  'credential.activated',
  'credential.retired',
];

/** The identity's protocol events in trail order, each as `<type> <versionId>` (other events left out). */
const protocolTrail = (world: MemoryWorld, identity: Identity) =>
  world.audit
    .of(identity.id)
    .filter((r) => PROTOCOL_EVENTS.includes(r.type))
    .map((r) => `${r.type} ${String(r.details.versionId)}`);

/** What the trail must hold after `fresh` replaced `old`: the five events, once each, in order. */
const exactlyOnce = (fresh: string, old: string) => [
  `credential.issued ${fresh}`,
  `credential.verified ${fresh}`,
  `credential.delivered ${fresh}`,
  `credential.activated ${fresh}`,
  `credential.retired ${old}`,
];

/** A run's deps whose `afterStep` throws a SimulatedCrash the first time `checkpoint` is reached. */
function crashingOnceAt(world: MemoryWorld, checkpoint: Checkpoint): RotationDeps {
  let crashed = false;
  return world.rotationDeps('scheduler:rotation', {
    afterStep: (_id, at) => {
      if (at !== checkpoint || crashed) return;
      crashed = true;
      throw new SimulatedCrash(`crash after ${checkpoint}`);
    },
  });
}

/** The identity's current and previous versions (after a rotation that adopted the original). */
async function currentAndPrevious(world: MemoryWorld, identity: Identity) {
  const versions = await world.store.listVersions(identity.id);
  const find = (stage: string) => versions.find((v) => v.stage === stage)?.versionId ?? `no ${stage}`;
  return { fresh: find('current'), old: find('previous') };
}

const stagesOf = async (world: MemoryWorld, identity: Identity) =>
  (await world.store.listVersions(identity.id)).map((v) => v.stage).sort();

/** Active credentials in the provider that the store knows neither as current nor previous. */
async function orphans(world: MemoryWorld, identity: Identity): Promise<string[]> {
  const known = new Set(
    (await world.store.listVersions(identity.id))
      .filter((v) => v.stage === 'current' || v.stage === 'previous')
      .map((v) => v.handle),
  );
  return world
    .providerOf(identity)
    .held(identity.id)
    .filter((c) => !known.has(c.handle))
    .map((c) => c.handle);
}

/** Whether what the pipeline reads is the value the store records as current (by fingerprint). */
async function deliveredIsCurrent(world: MemoryWorld, identity: Identity): Promise<boolean> {
  const current = (await world.store.listVersions(identity.id)).find((v) => v.stage === 'current');
  const delivered = world.deliveryTargetOf(identity).current(deliveryOf(identity) ?? never());
  return delivered !== undefined && world.fingerprint(delivered.secret) === current?.fingerprint;
}

const never = (): never => {
  throw new Error('expected a delivery target');
};

describe('rotation engine: the four steps', () => {
  it('issues, stages, sets, tests and promotes a new credential; the one found in the provider becomes previous', async () => {
    // prepare
    const { world, identity, original } = await prepare();
    const checkpoints: string[] = [];
    const working: boolean[] = [];
    const deps = world.rotationDeps('scheduler:rotation', {
      afterStep: (_id, at) => {
        checkpoints.push(at);
        working.push(world.works(identity));
      },
    });

    // act
    const outcome = await rotateIdentity(deps, identity, { owner: 'run-1' });

    // assess: every checkpoint in protocol order, the pipeline working at each
    expect(outcome).toMatchObject({ status: 'rotated', resumed: false, retired: [], warnings: [] });
    expect(checkpoints).toEqual(CHECKPOINTS);
    expect(working.every(Boolean)).toBe(true);
    // assess: the new credential is current and delivered, the original is previous and still works
    const versions = await world.store.listVersions(identity.id);
    const current = versions.find((v) => v.stage === 'current');
    const previous = versions.find((v) => v.stage === 'previous');
    expect(current).toMatchObject({ versionId: outcome.versionId, origin: 'issued' });
    expect(current?.verifiedAt).toBeDefined();
    expect(current?.activatedAt).toBeDefined();
    expect(previous).toMatchObject({ handle: original.handle, origin: 'adopted' });
    expect(world.providerOf(identity).live(identity.id, original.handle)).toBe(true);
    expect(world.works(identity)).toBe(true);
    expect(await deliveredIsCurrent(world, identity)).toBe(true);
    expect(world.deliveryTargetOf(identity).pendingOf(deliveryOf(identity) ?? never())).toEqual([]);
    expect(await world.store.getRotation(identity.id)).toMatchObject({ step: 'finished', attempts: 1 });
    expect(world.store.lockOf(identity.id)).toBeUndefined();
    // assess: the old credential was superseded, the new one set and verified once each
    const provider = world.providerOf(identity);
    expect(provider.calls.filter((c) => c.method === 'supersede').map((c) => c.ref)).toEqual([
      original.handle,
    ]);
    expect([provider.count('set'), provider.count('verify')]).toEqual([1, 1]);
    // assess: each step audited as its own event, on an unbroken chain, with no value in it
    expect(world.audit.of(identity.id).map((r) => r.type)).toEqual([
      'credential.issued',
      'credential.verified',
      'credential.delivered',
      'credential.activated',
    ]);
    expect(world.audit.verify()).toMatchObject({ ok: true });
    const written = JSON.stringify([(await world.audit.readAll()).records, versions, outcome]);
    for (const credential of provider.held(identity.id)) {
      expect(written).not.toContain(credential.secret.reveal());
    }
  });

  it('skips an identity that is not due, and says when it is', async () => {
    // prepare
    const { world, identity } = await prepare();
    await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });
    world.clock.advance(DAY);

    // act
    const again = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-2' });

    // assess
    expect(again.status).toBe('skipped');
    expect(again.reason).toBe('not due (next at 2026-06-08T09:00:00.000Z)');
    expect(world.providerOf(identity).count('issue')).toBe(1);
  });
});

describe.each(Object.keys(kinds) as Kind[])('rotation engine: %s', (kind) => {
  describe.each(CHECKPOINTS)('crash after %s', (checkpoint) => {
    it('the next run converges: one current credential delivered, nothing pending, no orphan, never without a working one', async () => {
      // prepare: a run that dies at the checkpoint, holding nothing back (its lock is released)
      const { world, identity } = await prepare(kind);
      const crashing = world.rotationDeps('scheduler:rotation', {
        afterStep: (_id, at) => {
          if (at === checkpoint) throw new SimulatedCrash(`crash after ${checkpoint}`);
        },
      });
      await expect(rotateIdentity(crashing, identity, { owner: 'crashed-run' })).rejects.toThrow(
        SimulatedCrash,
      );
      const workingAfterCrash = world.works(identity);
      const working: boolean[] = [];
      const resuming = world.rotationDeps('scheduler:rotation', {
        afterStep: () => void working.push(world.works(identity)),
      });

      // act
      const resumed = await rotateIdentity(resuming, identity, { owner: 'next-run' });

      // assess: a crash after finishSecret came after the rotation was recorded finished
      expect(workingAfterCrash).toBe(true);
      expect(resumed, resumed.reason).toMatchObject(
        checkpoint === 'finishSecret' ? { status: 'skipped' } : { status: 'rotated', resumed: true },
      );
      expect(working.every(Boolean)).toBe(true);
      expect(world.works(identity)).toBe(true);
      expect(await deliveredIsCurrent(world, identity)).toBe(true);
      const versions = await world.store.listVersions(identity.id);
      expect(versions.filter((v) => v.stage === 'current')).toHaveLength(1);
      expect(versions.filter((v) => v.stage === 'pending')).toHaveLength(0);
      expect(versions.find((v) => v.stage === 'previous')?.origin).toBe('adopted');
      expect(await orphans(world, identity)).toEqual([]);
      expect(world.deliveryTargetOf(identity).pendingOf(deliveryOf(identity) ?? never())).toEqual([]);
      expect(await world.store.getRotation(identity.id)).toMatchObject({ step: 'finished' });
      // assess: a credential issued and never recorded (a scheduled run records it once tested) was
      // revoked as the attempt's orphan, and only that
      const revokedAsOrphan = world.audit
        .of(identity.id)
        .filter((r) => r.type === 'credential.revoked' && /orphan/.test(String(r.details.reason)));
      expect(revokedAsOrphan).toHaveLength(UNRECORDED.includes(checkpoint) ? 1 : 0);
      expect(world.audit.verify()).toMatchObject({ ok: true });
      // assess: the trail was read back once, only where the dead run may have appended without marking it
      expect(world.audit.tailReads).toBe(UNMARKED_WINDOWS.includes(checkpoint) ? 1 : 0);
    });

    it('the trail has issued, verified, delivered, activated and (after the grace period) retired, each once and in order', async () => {
      // prepare: a run that dies at the checkpoint, and the run that resumes it
      const { world, identity } = await prepare(kind);
      await expect(
        rotateIdentity(crashingOnceAt(world, checkpoint), identity, { owner: 'crashed-run' }),
      ).rejects.toThrow(SimulatedCrash);
      await rotateIdentity(world.rotationDeps('scheduler:rotation'), identity, { owner: 'next-run' });
      const { fresh, old } = await currentAndPrevious(world, identity);

      // act: a run past the grace period retires the old credential
      world.clock.advance(HOUR + 60_000);
      const later = await rotateIdentity(world.rotationDeps('scheduler:rotation'), identity, {
        owner: 'later-run',
      });

      // assess
      expect(later.retired).toHaveLength(1);
      expect(protocolTrail(world, identity)).toEqual(exactlyOnce(fresh, old));
      expect((await world.store.getRotation(identity.id))?.recorded).toEqual(
        PROTOCOL_EVENTS.slice(0, 4).map((type) => `${type}:${fresh}`),
      );
      expect(world.audit.verify()).toMatchObject({ ok: true });
    });
  });

  describe.each(RETIREMENT_CHECKPOINTS)('crash after %s (retiring the old credential)', (checkpoint) => {
    it('the next run finishes the retirement: revoked once in the provider and in the store, credential.retired once', async () => {
      // prepare: a finished rotation, then a run past the grace period that dies while retiring
      const { world, identity, original } = await prepare(kind);
      await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });
      const { fresh, old } = await currentAndPrevious(world, identity);
      world.clock.advance(HOUR + 60_000);
      await expect(
        rotateIdentity(crashingOnceAt(world, checkpoint), identity, { owner: 'crashed-run' }),
      ).rejects.toThrow(SimulatedCrash);
      const marked = (await world.store.listVersions(identity.id)).find((v) => v.versionId === old);

      // act
      const next = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'next-run' });

      // assess: the dead run left its mark; the next one revoked (again, harmlessly) and recorded once
      expect(marked).toMatchObject({ stage: 'previous', retiringAt: expect.any(String) });
      expect(next).toMatchObject({ status: 'skipped', retired: [original.handle] });
      expect(world.providerOf(identity).live(identity.id, original.handle)).toBe(false);
      expect(await stagesOf(world, identity)).toEqual(['current', 'revoked']);
      expect(protocolTrail(world, identity)).toEqual(exactlyOnce(fresh, old));
      expect(world.audit.tailReads).toBe(1);
      expect(world.works(identity)).toBe(true);
    });
  });
});

describe('rotation engine: a rotation nothing interrupted', () => {
  it('writes each event once without ever reading the trail back, whether run whole or step by step by Secrets Manager', async () => {
    // prepare
    const scheduled = await prepare('aws-iam-access-key');
    const native = await prepare('aws-iam-access-key');

    // act: a scheduled rotation, and a native one (one invocation per step); then each retires its old credential
    await rotateIdentity(scheduled.world.rotationDeps('test'), scheduled.identity, { owner: 'run-1' });
    for (const step of NATIVE_STEPS) {
      await runNativeStep(native.world.rotationDeps('test'), native.identity, step, 'token-1', 'sm-1');
    }
    for (const { world, identity } of [scheduled, native]) {
      world.clock.advance(HOUR + 60_000);
      await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-2' });
    }

    // assess
    for (const { world, identity } of [scheduled, native]) {
      const versions = await world.store.listVersions(identity.id);
      const fresh = versions.find((v) => v.stage === 'current')?.versionId ?? 'no current';
      const old = versions.find((v) => v.stage === 'revoked')?.versionId ?? 'no revoked';
      expect(protocolTrail(world, identity)).toEqual(exactlyOnce(fresh, old));
      expect(world.audit.tailReads).toBe(0);
    }
  });
});

const NATIVE_STEPS: readonly NativeStep[] = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'];

describe.each(NATIVE_CHECKPOINTS)('rotation engine: native rotation, crash after %s', (checkpoint) => {
  it('Secrets Manager repeats the step that died and goes on: every event once, in order', async () => {
    // prepare: an access key delivered to a Secrets Manager secret, rotated by Secrets Manager
    const { world, identity } = await prepare('aws-iam-access-key');
    const deps = crashingOnceAt(world, checkpoint);
    const answers: string[] = [];

    // act: each step is invoked until it answers, as Secrets Manager retries a failed invocation
    for (const step of NATIVE_STEPS) {
      for (;;) {
        try {
          answers.push(await runNativeStep(deps, identity, step, 'token-1', 'secretsmanager'));
          break;
        } catch (error) {
          if (!(error instanceof SimulatedCrash)) throw error;
          answers.push(`${step} died`);
        }
      }
    }
    world.clock.advance(HOUR + 60_000);
    await rotateIdentity(world.rotationDeps('scheduler:rotation'), identity, { owner: 'later-run' });

    // assess: the step that died was done again, or answered already-done when its progress was saved
    expect(answers.filter((a) => a.endsWith(' died'))).toHaveLength(1);
    expect(answers.filter((a) => a === 'already-done')).toHaveLength(
      checkpoint === 'createSecret' ||
        checkpoint === 'setSecret' ||
        checkpoint === 'testSecret' ||
        checkpoint === 'finishSecret'
        ? 1
        : 0,
    );
    expect(await world.store.getRotation(identity.id)).toMatchObject({
      step: 'finished',
      versionId: 'token-1',
    });
    const old = (await world.store.listVersions(identity.id)).find((v) => v.stage === 'revoked')?.versionId;
    expect(protocolTrail(world, identity)).toEqual(exactlyOnce('token-1', old ?? 'no revoked'));
    expect(await orphans(world, identity)).toEqual([]);
    expect(world.works(identity)).toBe(true);
    expect(world.audit.verify()).toMatchObject({ ok: true });
  });
});

describe('rotation engine: a failing testSecret', () => {
  it('keeps the old credential current, revokes the new one and reports why; the next run starts afresh', async () => {
    // prepare: the provider refuses the new credential when it is tested
    const { world, identity, original } = await prepare('aws-iam-access-key');
    const provider = world.providerOf(identity);
    provider.failOn('verify', { error: new VerificationError('the new key is Inactive') });

    // act
    const outcome = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });

    // assess
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe(
      'testSecret failed: the new key is Inactive; the current credential stays in force',
    );
    expect(world.works(identity)).toBe(true);
    expect(provider.held(identity.id).map((c) => c.handle)).toEqual([original.handle]);
    expect(await stagesOf(world, identity)).toEqual(['revoked']);
    expect(world.deliveryTargetOf(identity).pendingOf(deliveryOf(identity) ?? never())).toEqual([]);
    expect(await world.store.getRotation(identity.id)).toMatchObject({ step: 'failed' });
    expect(world.audit.of(identity.id).map((r) => r.type)).toEqual([
      'credential.issued',
      'credential.revoked',
      'rotation.failed',
    ]);

    // act: the next run (the provider answers normally again)
    const next = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-2' });

    // assess: a new rotation, not a resume of the failed one
    expect(next).toMatchObject({ status: 'rotated', resumed: false });
    expect(await stagesOf(world, identity)).toEqual(['current', 'previous', 'revoked']);
    expect(world.works(identity)).toBe(true);
  });
});

describe('rotation engine: the per-identity lock', () => {
  it('a run does not rotate an identity while another run holds its lock', async () => {
    // prepare
    const { world, identity } = await prepare();
    const now = world.clock.now().getTime();
    world.store.holdLock(identity.id, 'other-run', now + LOCK_TTL_MS);

    // act
    const outcome = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });

    // assess
    expect(outcome).toMatchObject({ status: 'skipped', reason: 'another run is rotating this identity' });
    expect(world.providerOf(identity).count('issue')).toBe(0);
    expect(world.store.lockOf(identity.id)?.owner).toBe('other-run');
  });

  it('of two runs started at once, one rotates and the other skips', async () => {
    // prepare
    const { world, identity } = await prepare();
    const run = (owner: string) => rotateIdentity(world.rotationDeps(owner), identity, { owner });

    // act
    const outcomes = await Promise.all([run('run-a'), run('run-b')]);

    // assess
    expect(outcomes.map((o) => o.status).sort()).toEqual(['rotated', 'skipped']);
    const issued = (await world.store.listVersions(identity.id)).filter((v) => v.origin === 'issued');
    expect(issued).toHaveLength(1);
  });

  it('a lock whose holder died (its time ran out) is taken over, and released after the run', async () => {
    // prepare: a run took the lock and died, then the lock's time passed
    const { world, identity } = await prepare();
    const now = world.clock.now().getTime();
    world.store.holdLock(identity.id, 'dead-run', now + LOCK_TTL_MS);
    world.clock.advance(LOCK_TTL_MS + 1);

    // act
    const outcome = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });

    // assess
    expect(outcome.status).toBe('rotated');
    expect(world.store.lockOf(identity.id)).toBeUndefined();
  });

  it('resumes the rotation of a run that died holding the lock once the lock has expired', async () => {
    // prepare: a run killed after setSecret, which never got to release its lock
    const { world, identity } = await prepare();
    const dying: RotationDeps = world.rotationDeps('test', {
      afterStep: (_id, at) => {
        if (at === 'setSecret') throw new SimulatedCrash('killed after setSecret');
      },
    });
    await expect(rotateIdentity(dying, identity, { owner: 'dead-run' })).rejects.toThrow(SimulatedCrash);
    // A SimulatedCrash still runs the engine's `finally`; a killed process leaves its lock held.
    const killedAt = world.clock.now().getTime();
    world.store.holdLock(identity.id, 'dead-run', killedAt + LOCK_TTL_MS);
    const whileHeld = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });
    world.clock.advance(LOCK_TTL_MS + 1);

    // act
    const resumed = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-2' });

    // assess
    expect(whileHeld.status).toBe('skipped');
    expect(resumed).toMatchObject({ status: 'rotated', resumed: true });
    expect(await stagesOf(world, identity)).toEqual(['current', 'previous']);
    expect(world.works(identity)).toBe(true);
  });
});

describe('rotation engine: the grace period', () => {
  it('keeps the previous credential working through its grace period and retires it after', async () => {
    // prepare
    const { world, identity, original } = await prepare();
    await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });
    const provider = world.providerOf(identity);

    // act: a run within the grace period, then one after it (neither is due to rotate)
    world.clock.advance(30 * 60_000);
    const within = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-2' });
    const liveWithin = provider.live(identity.id, original.handle);
    world.clock.advance(31 * 60_000);
    const after = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-3' });

    // assess
    expect(within).toMatchObject({ status: 'skipped', retired: [] });
    expect(liveWithin).toBe(true);
    expect(after).toMatchObject({ status: 'skipped', retired: [original.handle] });
    expect(provider.live(identity.id, original.handle)).toBe(false);
    const retired = (await world.store.listVersions(identity.id)).find((v) => v.handle === original.handle);
    expect(retired).toMatchObject({ stage: 'revoked', note: 'retired after its grace period' });
    expect(await stagesOf(world, identity)).toEqual(['current', 'revoked']);
    expect(world.works(identity)).toBe(true);
    expect(world.audit.of(identity.id).filter((r) => r.type === 'credential.retired')).toHaveLength(1);
  });

  it('keeps an IAM key used after its successor was delivered inactive instead of deleting it, and says so', async () => {
    // prepare: a forgotten job still signs with the old key after the new one was delivered
    const { world, identity, original } = await prepare('aws-iam-access-key');
    await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-1' });
    const provider = world.providerOf(identity);
    provider.use(identity.id, original.handle, new Date(world.clock.now().getTime() + 60_000).toISOString());
    world.clock.advance(2 * HOUR);

    // act
    const outcome = await rotateIdentity(world.rotationDeps('test'), identity, { owner: 'run-2' });

    // assess
    expect(outcome.retired).toEqual([]);
    expect(outcome.warnings.join(' ')).toContain(original.handle);
    const kept = (await world.store.listVersions(identity.id)).find((v) => v.handle === original.handle);
    expect(kept?.stage).toBe('disabled');
    expect(kept?.note).toMatch(/after its successor was delivered/);
    expect(provider.held(identity.id).find((c) => c.handle === original.handle)?.status).toBe('inactive');
    expect(world.works(identity)).toBe(true);
  });
});
