/**
 * The rotation protocol, shared by every credential kind: createSecret → setSecret →
 * testSecret → finishSecret, as in Secrets Manager rotation. Progress is stored where a
 * crash would otherwise lose it: the rotation when it starts and ends, and the version it
 * issues as it goes (pending, verified, current), from which a resumed run tells where
 * to go on; so a run that dies anywhere is resumed by the next one, and each step can
 * run twice without harm. Secrets Manager's native rotation stores every step, as it asks
 * for each step on its own. The working credential is never lost: the new one is staged
 * where the pipeline does not read it, promoted only after it passed its test, and the
 * old one is retired only after its grace period.
 */
import { adoptedVersion } from './adoption.ts';
import type { AuditEventType, AuditRecord } from './audit.ts';
import {
  type CredentialVersion,
  type RotationLock,
  type RotationState,
  type RotationStep,
  recordedKey,
} from './credential-version.ts';
import { formatAge, toMillis } from './duration.ts';
import { ConflictError, KeywardenError, ValidationError, VerificationError } from './errors.ts';
import type { Delivery, Identity, IdentityKind } from './identity.ts';
import { deliveryOf, KINDS, rotationBlocker } from './kinds.ts';
import type {
  AuditLog,
  BoundDelivery,
  BoundProvider,
  Clock,
  DeliveredValue,
  DeliveryFor,
  IssuedCredential,
  Limit,
  ListedCredential,
  ProviderFor,
  RotationStore,
  StagedValue,
  StoredRotation,
  StoredVersion,
} from './ports.ts';
import { SecretValue } from './secret-value.ts';

/** How long one run may hold an identity's lock before another run may take over. */
export const LOCK_TTL_MS = 5 * 60_000;
/** Providers stamp creation to the second; an unknown credential this close to an attempt's start is its orphan. */
const ORPHAN_CLOCK_SKEW_MS = 1_000;

/** Kinds whose credentials are issued per grant or lease and end by TTL: never rotated on a schedule. */
const notRotated = (kind: IdentityKind): boolean => !KINDS[kind].rotates;

/**
 * Where a test may stop a run (`afterStep`), in protocol order: after each completed step;
 * inside createSecret after the provider `issued` and the value was `staged`; inside
 * finishSecret after it was `promoted`; and around every audit event, between the store
 * write it follows and the append (`…Saved`), and between the append and the progress
 * write that marks it recorded (`…Audited`). Retirement has `retiring` (version marked and
 * revoked, event not yet appended) and `retiredAudited` (appended, version not yet revoked).
 */
export type Checkpoint =
  | RotationStep
  | 'issued'
  | 'staged'
  | 'pendingSaved'
  | 'issuedAudited'
  | 'verifiedSaved'
  | 'verifiedAudited'
  | 'promoted'
  | 'currentSaved'
  | 'deliveredAudited'
  | 'activatedAudited'
  | 'retiring'
  | 'retiredAudited';

export interface RotationDeps {
  store: RotationStore;
  /** Appends the protocol's events (a step's together); reads the trail's recent tail only when resuming a step that may have written them. */
  audit: Pick<AuditLog, 'append' | 'appendMany' | 'recordsSince'>;
  clock: Clock;
  newId: () => string;
  /** The provider of an identity's kind, bound to it; throws when the kind has none configured. */
  providerFor: ProviderFor;
  /** The delivery target of a delivery, bound to it; throws when its type has none configured. */
  deliveryFor: DeliveryFor;
  /** The keyed fingerprint of a value; with its identity, of the part that is the credential (core/secret-shape.ts). */
  fingerprint: (secret: SecretValue, identity?: Identity) => string;
  /** Who acts, for the audit trail: `scheduler:rotation`, `cli:alice`. */
  actor: string;
  /** Called at each {@link Checkpoint}. Tests inject crashes here. */
  afterStep?: (identityId: string, checkpoint: Checkpoint) => void | Promise<void>;
}

export type RotationStatus = 'rotated' | 'skipped' | 'failed';

export interface RotationOutcome {
  identityId: string;
  kind: IdentityKind;
  status: RotationStatus;
  /** Why it was skipped or failed, or what else happened (retired versions, kept keys). */
  reason?: string;
  versionId?: string;
  /** Whether this run continued a rotation an earlier run left unfinished. */
  resumed: boolean;
  retired: string[];
  warnings: string[];
  durationMs: number;
}

/** Why an identity is due for rotation now, or undefined when it is not. */
export function dueReason(
  identity: Identity,
  versions: readonly CredentialVersion[],
  now: Date,
): string | undefined {
  if (rotationBlocker(identity)) return undefined;
  const current = versions.find((version) => version.stage === 'current');
  if (!current) return 'never rotated by keywarden';
  const age = now.getTime() - Date.parse(current.issuedAt);
  if (age >= toMillis(identity.policy.maxAge))
    return `current credential is ${formatAge(age)} old, over maxAge ${identity.policy.maxAge}`;
  if (age >= toMillis(identity.policy.rotateEvery))
    return `current credential is ${formatAge(age)} old, rotateEvery ${identity.policy.rotateEvery}`;
  return undefined;
}

/** When the current credential of an identity is next due, for dry runs and status. */
export function nextDueAt(identity: Identity, versions: readonly CredentialVersion[]): string | undefined {
  const current = versions.find((version) => version.stage === 'current');
  if (!current) return undefined;
  return new Date(Date.parse(current.issuedAt) + toMillis(identity.policy.rotateEvery)).toISOString();
}

class Run {
  /** When the run's own work began (a wait for its turn is left out). */
  started: number;
  readonly retired: string[] = [];
  readonly warnings: string[] = [];
  resumed = false;
  /** Set when Secrets Manager drives the rotation: its token is the version id, in every attempt. */
  fixedVersionId: string | undefined;
  versions: StoredVersion[] = [];
  state: StoredRotation | undefined;
  /**
   * The value this run staged, as staged: setSecret and testSecret take it instead of reading
   * it back, and finishSecret hands it to the promotion with what staging learned of the target.
   */
  staged: ({ versionId: string } & StagedValue) | undefined;
  /** What the delivery held when this run read it before issuing: the credential a first rotation replaces. */
  replaced: DeliveredValue | undefined;
  /**
   * The events this rotation appended (or found in the trail), as `recordedKey`s: loaded
   * with the state and saved with every progress write, so a step that completed never
   * looks its events up again.
   */
  recorded = new Set<string>();
  /**
   * When the progress this run continues was saved. An event of the step in progress that
   * is not in `recorded` but may have been written (its store write came before this pass)
   * is looked up in the trail from here on: it was appended after that save, if at all.
   */
  trailSince: string | undefined;
  /** Tail reads of the trail this run made, by their start. */
  readonly #trails = new Map<string, Promise<AuditRecord[]>>();
  /** The lock this run holds (written with the progress), until it gives it back. */
  lock: RotationLock | undefined;
  /** The progress as last stored (`state` may be further on in memory between a scheduled run's writes). */
  #stored: StoredRotation | undefined;

  constructor(
    readonly deps: RotationDeps,
    readonly identity: Identity,
    readonly owner: string,
  ) {
    this.started = deps.clock.now().getTime();
  }

  /** The provider bound to this run's identity, asked for once (each step calls it several times). */
  #provider: BoundProvider | undefined;

  get provider(): BoundProvider {
    this.#provider ??= this.deps.providerFor(this.identity);
    return this.#provider;
  }

  get now(): string {
    return this.deps.clock.now().toISOString();
  }

  outcome(status: RotationStatus, reason?: string): RotationOutcome {
    return {
      identityId: this.identity.id,
      kind: this.identity.kind,
      status,
      ...(reason ? { reason } : {}),
      ...(this.state ? { versionId: this.state.versionId } : {}),
      resumed: this.resumed,
      retired: this.retired,
      warnings: this.warnings,
      durationMs: this.deps.clock.now().getTime() - this.started,
    };
  }

  /**
   * Appends one event after the step events still on their way, so the trail keeps its order:
   * if they failed, so does this (a `rotation.failed` is appended whatever became of them).
   */
  async audit(type: AuditEventType, details: Record<string, unknown>) {
    if (type === 'rotation.failed') await this.#appending?.catch(() => undefined);
    else await this.settleAudit();
    return this.deps.audit.append({ type, actor: this.deps.actor, subject: this.identity.id, details });
  }

  /**
   * A test stops the run here: the step events still on their way land first, as they would
   * before a crash at this point, so the resumed run finds the trail this checkpoint names.
   */
  async checkpoint(at: Checkpoint): Promise<void> {
    if (!this.deps.afterStep) return;
    await this.#appending;
    await this.deps.afterStep(this.identity.id, at);
  }

  /**
   * The step events on their way to the trail ({@link recordAllOnce}), if any: each step's
   * append starts after the previous one landed, and stops the chain if it failed, so the trail
   * keeps its order. Waited for before every progress write (whose `recorded` names them).
   */
  #appending: Promise<void> | undefined;

  /** Waits until the step events on their way are in the trail; throws if their append failed. */
  async settleAudit(): Promise<void> {
    await this.#appending;
  }

  /**
   * Appends an event of a version unless it is already in the trail written since
   * `lookSince`; without `lookSince` it appends without looking (nothing could have written
   * it yet). The trail is read once per start, backwards from its end.
   */
  async appendOnce(
    type: AuditEventType,
    details: { versionId: string } & Record<string, unknown>,
    lookSince: string | undefined,
  ): Promise<void> {
    if (await this.inTrail(type, details.versionId, lookSince)) return;
    await this.audit(type, details);
  }

  /** Whether the event is in the trail written since `lookSince` (undefined: nothing could have written it). */
  async inTrail(type: AuditEventType, versionId: string, lookSince: string | undefined): Promise<boolean> {
    if (lookSince === undefined) return false;
    let trail = this.#trails.get(lookSince);
    if (!trail) {
      trail = this.deps.audit.recordsSince(lookSince);
      this.#trails.set(lookSince, trail);
    }
    return (await trail).some(
      (record) =>
        record.type === type && record.subject === this.identity.id && record.details.versionId === versionId,
    );
  }

  /**
   * {@link recordOnce} for the events of one step, appended together (one move of the trail's
   * head), in order: those recorded or found in the trail are left out.
   */
  async recordAllOnce(
    events: readonly { type: AuditEventType; details: { versionId: string } & Record<string, unknown> }[],
    savedEarlier: boolean,
  ): Promise<void> {
    const missing: (typeof events)[number][] = [];
    for (const event of events) {
      if (this.recorded.has(recordedKey(event.type, event.details.versionId))) continue;
      if (await this.inTrail(event.type, event.details.versionId, savedEarlier ? this.trailSince : undefined))
        continue;
      missing.push(event);
    }
    const keys = events.map((event) => recordedKey(event.type, event.details.versionId));
    if (missing.length === 0) {
      for (const key of keys) this.recorded.add(key);
      return;
    }
    // Not waited for here: the append overlaps the steps that follow (a promotion, an adoption),
    // and the next progress write waits for it. A run that dies meanwhile has not recorded the
    // events, so the resumed one looks them up in the trail as after any crash before that write.
    const previous = this.#appending;
    const appending = (async () => {
      await previous;
      await this.deps.audit.appendMany(
        missing.map(({ type, details }) => ({
          type,
          actor: this.deps.actor,
          subject: this.identity.id,
          details,
        })),
      );
      for (const key of keys) this.recorded.add(key);
    })();
    // Its failure surfaces where it is waited for (the next progress write), never unhandled.
    appending.catch(() => undefined);
    this.#appending = appending;
  }

  /**
   * Writes one event of this rotation exactly once. Every pass of a step calls it for the
   * step's events, whatever the credential's stage. `savedEarlier` says the store write
   * the event follows was made before this pass (by a run that died, or an earlier
   * invocation): only then can the event already be in the trail, and only then is the
   * trail read. The event is marked recorded in memory, and saved with the next progress write.
   */
  async recordOnce(
    type: AuditEventType,
    details: { versionId: string } & Record<string, unknown>,
    savedEarlier: boolean,
  ): Promise<void> {
    const key = recordedKey(type, details.versionId);
    if (this.recorded.has(key)) return;
    await this.appendOnce(type, details, savedEarlier ? this.trailSince : undefined);
    this.recorded.add(key);
  }

  /** Loads the stored progress this run continues, with the events it already recorded, and the versions: one read. */
  async load(): Promise<void> {
    const { state, versions } = await this.deps.store.loadRotation(this.identity.id);
    this.state = state;
    this.#stored = state;
    this.versions = versions;
    this.recorded = new Set(this.state?.recorded ?? []);
    this.trailSince = this.state?.updatedAt;
  }

  /** The pending value of `versionId`: as this run staged it, else read from the target. */
  pendingValue(target: BoundDelivery, versionId: string): Promise<SecretValue | undefined> {
    if (this.staged?.versionId === versionId) return Promise.resolve(this.staged.secret);
    return target.readPending(versionId);
  }

  /** Whether another run holds the identity's lock and its time has not run out. */
  lockedByOther(): boolean {
    const lock = this.state?.lock;
    return lock !== undefined && lock.owner !== this.owner && lock.until >= this.deps.clock.now().getTime();
  }

  /**
   * Takes the lock with the write of `state` (a new rotation) or of the loaded progress (one
   * to go on with), conditional on the revision read: of two runs that read the same progress,
   * one wins and the other gets a ConflictError. A run holds the lock from here to the write
   * that finishes the rotation, or to {@link release}.
   */
  async claim(state?: Omit<RotationState, 'recorded' | 'lock'>): Promise<void> {
    const now = this.deps.clock.now().getTime();
    this.lock = { owner: this.owner, until: now + LOCK_TTL_MS };
    try {
      if (state) {
        // A new rotation: nothing of it is recorded yet.
        this.recorded = new Set();
        this.trailSince = state.startedAt;
        await this.saveState(state);
      } else {
        // The progress as it is (`updatedAt` kept: the trail is looked up from the last progress save).
        await this.saveState(stripRev(this.state as StoredRotation));
      }
    } catch (error) {
      this.lock = undefined;
      throw error;
    }
  }

  /**
   * Gives the lock back, if this run still holds it, rewriting the progress as last stored
   * without it: what a run only kept in memory is not stored by the way (a resumed run
   * finds the progress as a run that died there would have left it).
   */
  async release(): Promise<void> {
    const stored = this.#stored;
    if (!this.lock || !stored) return;
    const { rev, lock: _lock, ...progress } = stored;
    this.#stored = await this.deps.store.putRotation(progress, rev);
    this.state = this.state?.rev === rev ? { ...this.state, rev: this.#stored.rev } : this.#stored;
    this.lock = undefined;
  }

  /**
   * The version a scheduled run issued and staged but has not stored yet: stored once, after
   * its test, pending and verified in one write (before the promotion, so a resumed run never
   * takes a promoted value for an orphan). A run that dies before that write leaves an orphan
   * the resumed attempt revokes (its tag names the attempt).
   */
  issued: CredentialVersion | undefined;
  /**
   * The delivered value, read while a new rotation's first write takes the lock (a read: harmless
   * if the write loses); createSecret takes it instead of reading it then.
   */
  currentRead: Promise<DeliveredValue | undefined> | undefined;

  version(versionId: string): StoredVersion | undefined {
    return this.versions.find((version) => version.versionId === versionId);
  }

  /** The version `versionId` as stored, else as this run issued it (not stored yet). */
  pendingVersion(versionId: string): CredentialVersion | undefined {
    return this.version(versionId) ?? (this.issued?.versionId === versionId ? this.issued : undefined);
  }

  async saveVersion(next: CredentialVersion): Promise<void> {
    const before = this.version(next.versionId);
    const saved = await this.deps.store.putVersion(next, before?.rev);
    this.versions = [...this.versions.filter((v) => v.versionId !== next.versionId), saved];
    if (this.issued?.versionId === next.versionId) this.issued = undefined;
  }

  /**
   * Saves progress, with the events recorded so far (the step's marker) and the lock while this
   * run holds it; a finished or failed rotation, or `release`, gives the lock back with it.
   */
  async saveState(next: RotationState, options: { release?: boolean } = {}): Promise<void> {
    await this.settleAudit();
    const { lock: _lock, ...progress } = next;
    const release = options.release || next.step === 'finished' || next.step === 'failed';
    const lock = release ? undefined : this.lock;
    this.state = await this.deps.store.putRotation(
      { ...progress, recorded: [...this.recorded], ...(lock ? { lock } : {}) },
      this.state?.rev,
    );
    this.#stored = this.state;
    this.lock = lock;
  }

  /**
   * Moves on to `step`. Stored when the rotation finishes, and after every step of a native
   * rotation (Secrets Manager invokes each step on its own, and asks again for one not stored
   * as done). A scheduled run keeps the step in memory in between: the version it issues
   * records what the step did, and a resumed run goes on from there ({@link resumeAt}).
   */
  async advance(step: RotationStep, completed: RotationStep): Promise<void> {
    const state = this.state as StoredRotation;
    if (step === 'finished' || this.fixedVersionId !== undefined) {
      // A native step is one invocation: its write gives the lock back too.
      await this.saveState(
        { ...stripRev(state), step, updatedAt: this.now },
        { release: this.fixedVersionId !== undefined },
      );
    } else {
      this.state = { ...state, step };
    }
    await this.checkpoint(completed);
  }
}

const stripRev = <T extends { rev: number }>(item: T): Omit<T, 'rev'> => {
  const { rev: _rev, ...rest } = item;
  return rest;
};

/** A version without its revision, whether stored or not. */
const withoutRev = (version: CredentialVersion | StoredVersion): CredentialVersion => {
  const { rev: _rev, ...rest } = version as StoredVersion;
  return rest;
};

/**
 * What a rotation about to start will ask of its provider and its delivery target: what
 * {@link RotationPace} reckons its turn from. Only work that calls them is paced: an
 * identity found not due, busy or unrotatable is decided from the store alone and never waits.
 */
export interface RotationStart {
  identity: Identity;
  delivery: Delivery;
  /** Whether a credential is issued (a rotation started or resumed), not only old ones retired. */
  rotating: boolean;
  /** Versions past their grace this run revokes first, as a campaign revokes (a disabled one, only looked up, is not counted). */
  retiring: number;
}

/**
 * Paces the rotations of each provider service (adapters/rate-limits.ts `rotationPace`):
 * `undefined` when this one may start now, else a promise settled at its turn. Asked while the
 * rotation holds a slot of the run's `limit`; a rotation that must wait gives its slot back while
 * it waits and takes one again at its turn, so a rotation waiting on a slow service's rate never
 * keeps another service's rotation from starting.
 */
export type RotationPace = (start: RotationStart) => Promise<void> | undefined;

export interface RotateOptions {
  owner: string;
  force?: boolean;
  /** The slots the work runs in (the run's concurrency); the whole rotation in one slot when not given. */
  slot?: Limit;
  /** Pacing per provider service, between deciding what to do (read from the store) and doing it. */
  pace?: RotationPace;
}

const inline: Limit = (work) => work();

/**
 * Rotates one identity if it is due (or `force`), resuming an unfinished rotation
 * first. Holds the identity's lock throughout, so two runs never rotate it at once.
 * With `pace`, the rotation reads its progress, then waits for its turn (out of its `slot`),
 * then takes its lock and goes on: a rotation that another run took meanwhile is skipped as busy.
 */
export async function rotateIdentity(
  deps: RotationDeps,
  identity: Identity,
  options: RotateOptions,
): Promise<RotationOutcome> {
  const slot = options.slot ?? inline;
  const first = await slot(async () => {
    const decided = await decide(deps, identity, options);
    if (!('run' in decided)) return decided;
    const turn = options.pace?.({
      identity,
      delivery: decided.delivery,
      rotating: decided.rotating,
      retiring: revocationsDue(decided.run),
    });
    if (!turn) return proceed(decided);
    return { ...decided, turn };
  });
  if (!('turn' in first)) return first;
  const left = deps.clock.now().getTime();
  await first.turn;
  return slot(() => {
    // The wait for the turn and the slot is not the rotation's: its duration counts its own work.
    first.run.started += deps.clock.now().getTime() - left;
    return proceed(first);
  });
}

/** A rotation decided on: its run with the progress and versions read, and what it will do. */
interface Decided {
  run: Run;
  delivery: Delivery;
  inProgress: boolean;
  rotating: boolean;
  reason: string | undefined;
}

/** Reads the identity's progress and versions and decides: an outcome at once, or the work to do. */
async function decide(
  deps: RotationDeps,
  identity: Identity,
  options: RotateOptions,
): Promise<RotationOutcome | Decided> {
  const run = new Run(deps, identity, options.owner);
  const blocker = rotationBlocker(identity);
  if (blocker) return run.outcome('skipped', blocker);
  const delivery = deliveryOf(identity);
  if (!delivery) {
    // Tracked but not rotatable: a scheduled run skips it (discovery still watches its age);
    // asking for it by name is an error that says how to make it rotatable.
    const reason = `${identity.id} has no delivery target: add delivery: { type: aws-secret, secretId: … } or { type: vault-kv, path: … } so the new credential has somewhere to go`;
    if (!options.force) return run.outcome('skipped', reason);
    await deps.audit
      .append({ type: 'rotation.failed', actor: deps.actor, subject: identity.id, details: { reason } })
      .catch(() => undefined);
    return run.outcome('failed', reason);
  }
  // One read: the progress (with the lock) and the versions. Nothing is written unless there is work.
  await run.load();
  const busy = 'another run is rotating this identity';
  if (run.lockedByOther()) return run.outcome('skipped', busy);
  const inProgress = run.state && run.state.step !== 'finished' && run.state.step !== 'failed';
  const reason = inProgress ? undefined : dueReason(identity, run.versions, deps.clock.now());
  const rotating = inProgress || reason !== undefined || options.force === true;
  const notDue = () =>
    run.outcome('skipped', `not due (next at ${nextDueAt(identity, run.versions) ?? 'unknown'})`);
  // A rotation never started has nothing to retire either (its versions came from rotations).
  if (!rotating && (!retirementDue(run) || !run.state)) return notDue();
  return { run, delivery, inProgress: Boolean(inProgress), rotating, reason };
}

/** Takes the lock, retires what is due and drives the rotation decided on. */
async function proceed({ run, delivery, inProgress, rotating, reason }: Decided): Promise<RotationOutcome> {
  const { deps, identity } = run;
  const busy = 'another run is rotating this identity';
  const notDue = () =>
    run.outcome('skipped', `not due (next at ${nextDueAt(identity, run.versions) ?? 'unknown'})`);
  try {
    // The lock is taken with the write that starts the rotation, or that continues it.
    if (inProgress || !rotating) await run.claim();
    else {
      const at = run.now;
      run.currentRead = deps.deliveryFor(delivery).readCurrent();
      run.currentRead.catch(() => undefined);
      await run.claim({
        identityId: identity.id,
        rotationId: deps.newId(),
        versionId: deps.newId(),
        step: 'createSecret',
        startedAt: at,
        attemptStartedAt: at,
        attempts: 1,
        updatedAt: at,
        reason: reason ?? 'forced',
      });
    }
  } catch (error) {
    if (error instanceof ConflictError) return run.outcome('skipped', busy);
    throw error;
  }
  try {
    await retireDue(run);
    if (!rotating) return notDue();
    if (inProgress) {
      run.resumed = true;
      await resumeAt(run);
    }
    return await drive(run, delivery);
  } catch (error) {
    if (error instanceof SimulatedCrash) throw error;
    // Progress is stored after every step: the next run resumes from where this one stopped.
    const reason = `${error instanceof Error ? error.message : String(error)} (progress is kept; the next run resumes)`;
    await run.audit('rotation.failed', { step: run.state?.step, reason }).catch(() => undefined);
    return run.outcome('failed', reason);
  } finally {
    await run.release().catch(() => undefined);
  }
}

/** Whether a `previous` or `disabled` version waits for retireDue: past its grace, marked retiring, or disabled. */
const retirementDue = (run: Run): boolean =>
  run.versions.some((v) => v.stage === 'disabled' || previousDue(run, v));

/** How many versions retireDue revokes (a `disabled` one it only looks up, writing nothing): its pace's turns. */
const revocationsDue = (run: Run): number => run.versions.filter((v) => previousDue(run, v)).length;

/** A `previous` version past its grace, or marked retiring. */
function previousDue(run: Run, v: CredentialVersion): boolean {
  const grace = toMillis(run.identity.policy.grace);
  return (
    v.stage === 'previous' &&
    (v.retiringAt !== undefined ||
      run.deps.clock.now().getTime() - Date.parse(v.supersededAt ?? v.issuedAt) >= grace)
  );
}

/** Thrown by tests from `afterStep` to stand for a process that died at that point. */
export class SimulatedCrash extends Error {
  override readonly name = 'SimulatedCrash';
}

const STEP_ORDER: readonly RotationStep[] = [
  'createSecret',
  'setSecret',
  'testSecret',
  'finishSecret',
  'finished',
];

/**
 * Where an unfinished scheduled rotation goes on: its stored step, or further where the
 * version it issues shows the dead run got further (recorded pending: created; verified:
 * tested; current: promoted). The events of what the version shows done are written now if
 * the dead run had not written them, each once (looked up in the trail since the progress
 * it continues was saved), so the trail keeps its order.
 */
async function resumeAt(run: Run): Promise<void> {
  const state = run.state as StoredRotation;
  const version = run.version(state.versionId);
  if (!version || version.stage === 'revoked' || !STEP_ORDER.includes(state.step)) return;
  const tested = version.verifiedAt !== undefined || version.stage === 'current';
  const shown: RotationStep = tested ? 'finishSecret' : 'setSecret';
  if (STEP_ORDER.indexOf(shown) > STEP_ORDER.indexOf(state.step)) run.state = { ...state, step: shown };
  await run.recordAllOnce(
    [
      { type: 'credential.issued', details: issuedDetails(version) },
      ...(tested ? [{ type: 'credential.verified' as const, details: verifiedDetails(version) }] : []),
    ],
    true,
  );
}

/** What `credential.verified` says of a version. */
const verifiedDetails = (version: CredentialVersion) => ({
  versionId: version.versionId,
  handle: version.handle,
});

async function drive(run: Run, delivery: Delivery): Promise<RotationOutcome> {
  const target = run.deps.deliveryFor(delivery);
  for (;;) {
    const state = run.state as StoredRotation;
    switch (state.step) {
      case 'createSecret':
        await createSecret(run, target);
        break;
      case 'setSecret':
        if (!(await setSecret(run, target))) break;
        await run.advance('testSecret', 'setSecret');
        break;
      case 'testSecret': {
        const failure = await testSecret(run, target);
        if (failure) return run.outcome('failed', failure);
        await run.advance('finishSecret', 'testSecret');
        break;
      }
      case 'finishSecret':
        await finishSecret(run, target);
        await run.advance('finished', 'finishSecret');
        break;
      case 'finished':
        return run.outcome('rotated', run.retired.length ? `retired ${run.retired.join(', ')}` : undefined);
      case 'failed':
        return run.outcome('failed', state.reason);
    }
  }
}

/** createSecret: issue a new credential beside the current one and stage it in the delivery target. */
async function createSecret(run: Run, target: BoundDelivery) {
  let state = run.state as StoredRotation;
  const recorded = run.version(state.versionId);
  if (recorded && recorded.stage !== 'revoked') {
    // An earlier run created and recorded it, then died before moving on (perhaps
    // before its audit event).
    await run.recordOnce('credential.issued', issuedDetails(recorded), true);
    await run.advance('setSecret', 'createSecret');
    return;
  }
  if (run.resumed) {
    // An earlier attempt may have issued a credential and died before recording it.
    await cleanOrphans(run, target);
    const at = run.now;
    await run.saveState({
      ...stripRev(state),
      versionId: run.fixedVersionId ?? run.deps.newId(),
      attemptStartedAt: at,
      attempts: state.attempts + 1,
      updatedAt: at,
    });
    state = run.state as StoredRotation;
  }
  let issued: IssuedCredential | undefined;
  try {
    // Read once: the provider renders over it (a value that is its own delivery), staging
    // lays the new value over it and checks its fields.
    const current = await (run.currentRead ?? target.readCurrent());
    run.currentRead = undefined;
    run.replaced = current;
    issued = await run.provider.issue({ versionId: state.versionId, ...(current ? { current } : {}) });
    await run.checkpoint('issued');
    run.staged = {
      versionId: state.versionId,
      // A scheduled run made this version id itself (createSecret gives each attempt a new one):
      // nothing was staged under it before. Secrets Manager's token may have been.
      ...(await target.stagePending(state.versionId, issued.secret, {
        current,
        fresh: run.fixedVersionId === undefined,
      })),
    };
  } catch (error) {
    // The value does not fit what the target holds (a field would be renamed): nothing
    // will change that on the next run, so the attempt ends here, the new credential with it.
    if (!(error instanceof ValidationError)) throw error;
    await refuseDelivery(run, issued, error);
    return;
  }
  await run.checkpoint('staged');
  const fingerprint = run.deps.fingerprint(issued.secret, run.identity);
  const version: CredentialVersion = {
    identityId: run.identity.id,
    versionId: state.versionId,
    kind: run.identity.kind,
    stage: 'pending',
    handle: issued.handle,
    fingerprint,
    origin: 'issued',
    issuedAt: run.now,
    ...(issued.expiresAt ? { expiresAt: issued.expiresAt } : {}),
  };
  if (run.fixedVersionId === undefined) {
    // A scheduled run stores it once tested, with its issued event beside the verified one.
    run.issued = version;
    await run.advance('setSecret', 'createSecret');
    return;
  }
  // Secrets Manager asks for each step on its own: what this one did is stored now.
  await run.saveVersion(version);
  await run.checkpoint('pendingSaved');
  await run.recordOnce(
    'credential.issued',
    issuedDetails(run.version(state.versionId) as StoredVersion),
    false,
  );
  await run.checkpoint('issuedAudited');
  await run.advance('setSecret', 'createSecret');
}

/**
 * Ends an attempt whose value the provider could not render or the target refused: the
 * credential issued for it (if any) was never delivered, so it is revoked at once; the
 * rotation fails with the reason, and the current credential stays in force.
 */
async function refuseDelivery(run: Run, issued: IssuedCredential | undefined, error: ValidationError) {
  const state = run.state as StoredRotation;
  if (issued) {
    const result = await run.provider.revoke(issued.handle);
    await run.audit('credential.revoked', {
      handle: issued.handle,
      result,
      reason: 'issued but not delivered: the delivery target refused its value',
    });
  }
  const reason = `createSecret failed: ${error.message}; the current credential stays in force`;
  await run.saveState({ ...stripRev(state), step: 'failed', reason, updatedAt: run.now });
  await run.audit('rotation.failed', {
    versionId: state.versionId,
    step: 'createSecret',
    reason: error.message,
  });
}

/** What `credential.issued` says of a version: never its value. */
const issuedDetails = (version: CredentialVersion) => ({
  versionId: version.versionId,
  handle: version.handle,
  ...(version.fingerprint ? { fingerprint: version.fingerprint } : {}),
  stage: 'pending',
});

/** Revokes what an interrupted attempt created but never recorded, and drops its staged value. */
async function cleanOrphans(run: Run, target: BoundDelivery) {
  const state = run.state as StoredRotation;
  const known = new Set(run.versions.filter((v) => v.stage !== 'revoked').map((v) => v.handle));
  const since = Date.parse(state.attemptStartedAt) - ORPHAN_CLOCK_SKEW_MS;
  for (const listed of await run.provider.list()) {
    if (known.has(listed.handle)) continue;
    // A tagged credential names its attempt. Only a kind that cannot carry a tag (IAM access
    // keys) is judged by time: a key that appeared after the attempt began is taken for its
    // orphan (a pipeline user's keys are keywarden's alone). Untagged credentials of kinds
    // keywarden always tags were made by someone else and are left alone.
    const ours = listed.versionId
      ? listed.versionId === state.versionId
      : !KINDS[run.identity.kind].tagsVersions &&
        listed.createdAt !== undefined &&
        Date.parse(listed.createdAt) >= since;
    if (!ours) continue;
    const result = await run.provider.revoke(listed.handle);
    await run.audit('credential.revoked', {
      handle: listed.handle,
      result,
      reason: 'orphan of an interrupted rotation attempt',
    });
  }
  await target.discardPending(state.versionId);
}

/**
 * setSecret: apply the pending credential where the provider needs it. Returns false
 * when the staged value was lost (its attempt is discarded and creation starts over).
 */
async function setSecret(run: Run, target: BoundDelivery): Promise<boolean> {
  const state = run.state as StoredRotation;
  const pending = run.pendingVersion(state.versionId);
  const secret = await run.pendingValue(target, state.versionId);
  if (!pending || !secret) {
    if (pending) await revokeVersion(run, pending, 'its staged value was lost before setSecret');
    await run.saveState({ ...stripRev(state), step: 'createSecret', updatedAt: run.now });
    run.resumed = true;
    return false;
  }
  await run.provider.set?.({ handle: pending.handle, secret });
  return true;
}

/** testSecret: prove the pending credential works. A failure leaves the old one current. */
async function testSecret(run: Run, target: BoundDelivery): Promise<string | undefined> {
  const state = run.state as StoredRotation;
  const pending = run.pendingVersion(state.versionId) as CredentialVersion;
  // Issued by this run and not stored yet: stored now, and its issued event goes with the verified one.
  const unsaved = run.version(state.versionId) === undefined;
  const secret = await run.pendingValue(target, state.versionId);
  try {
    if (!secret) throw new VerificationError('the staged value is gone from the delivery target');
    await run.provider.verify({ handle: pending.handle, secret });
  } catch (error) {
    if (!(error instanceof VerificationError)) throw error;
    const reason = `testSecret failed: ${error.message}; the current credential stays in force`;
    // Never stored: its issued event is written before the one that revokes it.
    if (unsaved)
      await run.recordAllOnce([{ type: 'credential.issued', details: issuedDetails(pending) }], false);
    await revokeVersion(run, pending, reason);
    await target.discardPending(state.versionId);
    await run.saveState({ ...stripRev(state), step: 'failed', reason, updatedAt: run.now });
    await run.audit('rotation.failed', {
      versionId: state.versionId,
      step: 'testSecret',
      reason: error.message,
    });
    return reason;
  }
  // Verified before (a run died after saving it): test again, but record the event once.
  const verifiedEarlier = pending.verifiedAt !== undefined;
  if (!verifiedEarlier) {
    await run.saveVersion({ ...withoutRev(pending), verifiedAt: run.now });
    await run.checkpoint('verifiedSaved');
  }
  await run.recordAllOnce(
    [
      ...(unsaved ? [{ type: 'credential.issued' as const, details: issuedDetails(pending) }] : []),
      { type: 'credential.verified', details: verifiedDetails(pending) },
    ],
    verifiedEarlier,
  );
  await run.checkpoint('verifiedAudited');
  return undefined;
}

/**
 * finishSecret: promote the new credential in the delivery target; the old one becomes
 * previous. Each old version is recorded previous before the provider supersedes it, so a
 * run that dies between the two leaves a mark: the resumed step supersedes again the
 * versions this promotion superseded (idempotent: an IAM key deactivated twice).
 */
async function finishSecret(run: Run, target: BoundDelivery) {
  const state = run.state as StoredRotation;
  let pending = run.version(state.versionId) as StoredVersion;
  const firstRotation = !run.versions.some(
    (v) => v.versionId !== pending.versionId && (v.stage === 'current' || v.origin === 'adopted'),
  );
  const staged = run.staged?.versionId === state.versionId ? run.staged : undefined;
  await target.promote(state.versionId, staged);
  await run.checkpoint('promoted');
  // A first rotation lists what it replaced while the version is saved current and its events
  // appended: a read after the promotion, which nothing below waits for until the adoption.
  // The value this run read before issuing names what the pipeline used until now: a provider
  // may adopt by it instead of listing everything. A run resumed past createSecret never read
  // it (what it would read now is the new value), so it lists.
  const replaced = firstRotation ? plainCredential(run.identity, run.replaced) : undefined;
  const listing = firstRotation
    ? run.provider.list({
        skip: new Set([...run.versions.map((v) => v.handle), pending.handle]),
        ...(replaced ? { replaced } : {}),
        ...(run.replaced ? { delivered: run.replaced } : {}),
      })
    : undefined;
  listing?.catch(() => undefined);
  // Current before (a run died after saving it): its events may be in the trail already.
  const currentEarlier = pending.stage === 'current';
  if (!currentEarlier) {
    const at = run.now;
    await run.saveVersion({ ...stripRev(pending), stage: 'current', deliveredAt: at, activatedAt: at });
    await run.checkpoint('currentSaved');
    pending = run.version(state.versionId) as StoredVersion;
  }
  // Delivered and activated are one step's events: appended together.
  await run.recordAllOnce(
    [
      { type: 'credential.delivered', details: { versionId: pending.versionId, delivery: target.type } },
      { type: 'credential.activated', details: { versionId: pending.versionId, handle: pending.handle } },
    ],
    currentEarlier,
  );
  await run.checkpoint('deliveredAudited');
  await run.checkpoint('activatedAudited');
  const supersededAt = pending.activatedAt ?? run.now;
  if (listing) await adopt(run, await listing, supersededAt);
  for (const old of run.versions.filter((v) => v.stage === 'current' && v.versionId !== pending.versionId)) {
    await run.saveVersion({ ...stripRev(old), stage: 'previous', supersededAt });
  }
  for (const old of run.versions.filter((v) => v.stage === 'previous' && v.supersededAt === supersededAt)) {
    await run.provider.supersede?.(old.handle);
  }
}

/**
 * First rotation: what exists in the provider besides the new credential was what the
 * pipeline used until the promotion just made; it is recorded as adopted and `previous`,
 * superseded like any other current version. Adopted only after the promotion, so nothing
 * is marked for retirement before the new one is in force; a run that dies before recording
 * it leaves it live in the provider, where the resumed step finds it again.
 */
async function adopt(run: Run, listing: readonly ListedCredential[], supersededAt: string) {
  const known = new Set(run.versions.map((v) => v.handle));
  for (const listed of listing) {
    if (known.has(listed.handle) || listed.status !== 'active') continue;
    await run.saveVersion({
      ...adoptedVersion(run.identity, listed, { stage: 'previous', at: supersededAt }),
      supersededAt,
    });
  }
}

/**
 * The plain credential (a token) a delivered value holds: the value itself, or the string in the
 * delivery's field (`value` unless named) when the target holds a JSON object.
 */
function plainCredential(identity: Identity, delivered: DeliveredValue | undefined): SecretValue | undefined {
  if (!delivered) return undefined;
  const text = delivered.secret.reveal();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return delivered.secret;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return delivered.secret;
  const delivery = deliveryOf(identity);
  const field = (delivery?.type === 'vault-kv' ? delivery.field : undefined) ?? 'value';
  const plain = (parsed as Record<string, unknown>)[field];
  return typeof plain === 'string' ? new SecretValue(plain) : undefined;
}

async function revokeVersion(run: Run, version: CredentialVersion, note: string) {
  const result = await run.provider.revoke(version.handle);
  await run.saveVersion({ ...withoutRev(version), stage: 'revoked', retiredAt: run.now, note });
  await run.audit('credential.revoked', {
    versionId: version.versionId,
    handle: version.handle,
    result,
    reason: note,
  });
}

/**
 * Retires `previous` versions whose grace period is over. An IAM key used after its
 * successor was delivered is kept inactive rather than deleted, and reported.
 */
async function retireDue(run: Run) {
  await closeDeleted(run);
  const now = run.deps.clock.now().getTime();
  const grace = toMillis(run.identity.policy.grace);
  const successor = run.versions.find((v) => v.stage === 'current');
  for (const version of run.versions.filter((v) => v.stage === 'previous')) {
    if (version.retiringAt !== undefined) {
      // An earlier run decided to retire it and died on the way: finish what it began.
      await retire(run, version, version.retiringAt);
      continue;
    }
    if (now - Date.parse(version.supersededAt ?? version.issuedAt) < grace) continue;
    const lastUsed = await run.provider.lastUsed?.(version.handle);
    const usedAfterSuccessor =
      KINDS[run.identity.kind].recordsLastUse &&
      lastUsed !== undefined &&
      successor?.deliveredAt !== undefined &&
      Date.parse(lastUsed) > Date.parse(successor.deliveredAt);
    if (usedAfterSuccessor) {
      const note = `used at ${lastUsed} after its successor was delivered at ${successor?.deliveredAt}: kept inactive, not deleted; find who still uses it`;
      await run.provider.disable?.(version.handle);
      await run.saveVersion({
        ...stripRev(version),
        stage: 'disabled',
        lastUsedAt: lastUsed,
        retiredAt: run.now,
        note,
      });
      await run.audit('credential.disabled', {
        versionId: version.versionId,
        handle: version.handle,
        reason: note,
      });
      run.warnings.push(`${version.handle} ${note}`);
      continue;
    }
    // Marked first: a run that dies past this point leaves a mark the next one finishes from.
    await run.saveVersion({
      ...stripRev(version),
      retiringAt: run.now,
      ...(lastUsed ? { lastUsedAt: lastUsed } : {}),
    });
    await retire(run, run.version(version.versionId) as StoredVersion, undefined);
  }
}

/**
 * Revokes a version marked `retiringAt` and records `credential.retired` once: a run that
 * finds the mark (`markedAt`) looks the event up in the trail written since then.
 */
async function retire(run: Run, version: StoredVersion, markedAt: string | undefined) {
  const result = await run.provider.revoke(version.handle);
  await run.checkpoint('retiring');
  await run.appendOnce(
    'credential.retired',
    { versionId: version.versionId, handle: version.handle, result },
    markedAt,
  );
  await run.checkpoint('retiredAudited');
  await run.saveVersion({
    ...stripRev(version),
    stage: 'revoked',
    retiredAt: run.now,
    note: 'retired after its grace period',
  });
  run.retired.push(version.handle);
}

/**
 * A `disabled` version waits for a person (it was kept because something still used it).
 * Once they have deleted it in the provider, it is recorded revoked, which closes its finding.
 */
async function closeDeleted(run: Run) {
  const disabled = run.versions.filter((v) => v.stage === 'disabled');
  if (disabled.length === 0) return;
  const present = new Set((await run.provider.list()).map((listed) => listed.handle));
  for (const version of disabled.filter((v) => present.has(v.handle))) {
    run.warnings.push(
      `${version.handle} is kept disabled (${version.note ?? 'no reason recorded'}); delete it in the provider once reviewed`,
    );
  }
  for (const version of disabled.filter((v) => !present.has(v.handle))) {
    await run.saveVersion({
      ...stripRev(version),
      stage: 'revoked',
      note: `${version.note ?? 'disabled'}; then deleted in the provider`,
    });
    await run.audit('credential.revoked', {
      versionId: version.versionId,
      handle: version.handle,
      result: 'deleted outside keywarden',
    });
  }
}

/**
 * Max-age enforcement for an identity whose rotation failed: a current credential past
 * maxAge is disabled, revoked or only reported, as its policy says.
 */
export async function enforceMaxAge(
  deps: Pick<RotationDeps, 'store' | 'audit' | 'clock' | 'providerFor' | 'actor'>,
  identity: Identity,
): Promise<string | undefined> {
  const versions = await deps.store.listVersions(identity.id);
  const now = deps.clock.now();
  const provider = deps.providerFor(identity);
  const current = versions.find((v) => v.stage === 'current');
  const candidates = current
    ? [{ handle: current.handle, createdAt: current.issuedAt, version: current }]
    : (await provider.list())
        .filter((listed) => listed.status === 'active' && listed.createdAt)
        .map((listed) => ({
          handle: listed.handle,
          createdAt: listed.createdAt as string,
          version: undefined,
        }));
  const over = candidates.filter(
    (c) => now.getTime() - Date.parse(c.createdAt) > toMillis(identity.policy.maxAge),
  );
  if (over.length === 0) return undefined;
  const action = identity.policy.onMaxAge;
  for (const { handle, createdAt, version } of over) {
    const age = formatAge(now.getTime() - Date.parse(createdAt));
    if (action === 'report') continue;
    if (action === 'disable' && provider.disable) await provider.disable(handle);
    else await provider.revoke(handle);
    const stage = action === 'disable' && provider.disable ? 'disabled' : 'revoked';
    const note = `past maxAge (${age}) and could not be rotated`;
    if (version) {
      await deps.store.putVersion(
        { ...stripRev(version), stage, retiredAt: now.toISOString(), note },
        version.rev,
      );
    } else {
      // Never rotated by keywarden: record it, so it is tracked (and closed once deleted).
      await deps.store.putVersion(
        {
          ...adoptedVersion(identity, { handle, status: 'active', createdAt }, { stage, at: createdAt }),
          retiredAt: now.toISOString(),
          note,
        },
        undefined,
      );
    }
    await deps.audit.append({
      type: stage === 'disabled' ? 'credential.disabled' : 'credential.revoked',
      actor: deps.actor,
      subject: identity.id,
      details: { handle, reason: `past maxAge ${identity.policy.maxAge} (${age}) and rotation failed` },
    });
  }
  const handles = over.map((c) => c.handle).join(', ');
  return action === 'report'
    ? `${handles} past maxAge ${identity.policy.maxAge}; policy onMaxAge=report leaves it in force`
    : `${handles} past maxAge ${identity.policy.maxAge}: ${action === 'disable' && provider.disable ? 'disabled' : 'revoked'}`;
}

/** Rejects a rotation request that names an identity that cannot be rotated, with the reason. */
export function assertRotatable(identity: Identity): void {
  const blocker = rotationBlocker(identity);
  if (blocker) throw new KeywardenError(`${identity.id} is not rotated: ${blocker}`);
}

/** What a rotation run would do for each identity, without doing it. */
export async function planRotation(
  deps: Pick<RotationDeps, 'store' | 'clock'>,
  identities: readonly Identity[],
  options: { force?: boolean } = {},
): Promise<
  { identityId: string; kind: IdentityKind; action: 'rotate' | 'resume' | 'skip'; reason: string }[]
> {
  const now = deps.clock.now();
  return Promise.all(
    identities.map(async (identity) => {
      const base = { identityId: identity.id, kind: identity.kind };
      if (notRotated(identity.kind))
        return { ...base, action: 'skip' as const, reason: 'issued per grant or lease, ends by TTL' };
      const blocker = rotationBlocker(identity);
      if (blocker) return { ...base, action: 'skip' as const, reason: blocker };
      if (!deliveryOf(identity)) return { ...base, action: 'skip' as const, reason: 'no delivery target' };
      const state = await deps.store.getRotation(identity.id);
      if (state && state.step !== 'finished' && state.step !== 'failed') {
        return { ...base, action: 'resume' as const, reason: `unfinished rotation at ${state.step}` };
      }
      const versions = await deps.store.listVersions(identity.id);
      const reason = dueReason(identity, versions, now);
      if (reason) return { ...base, action: 'rotate' as const, reason };
      if (options.force) return { ...base, action: 'rotate' as const, reason: 'forced' };
      return {
        ...base,
        action: 'skip' as const,
        reason: `not due (next at ${nextDueAt(identity, versions) ?? 'unknown'})`,
      };
    }),
  );
}

/**
 * Rotates many identities with bounded concurrency (`limit`: rotations in flight at once) and,
 * with `pace`, each provider service's rotations started at its rate, as a campaign paces its
 * revocations (adapters/rate-limits.ts `rotationPace`): a rotation waiting for its service's turn
 * holds no slot of `limit`, so the rotations of other services go on meanwhile, and only starts
 * are paced (a rotation in flight is bounded by `limit` alone). A rotation counts at its service
 * as the revocations its writes would be: an IAM key's makes two mutating IAM calls
 * (CreateAccessKey, then UpdateAccessKey to deactivate the key it replaces), a key revocation's
 * two (deactivate, delete), so one turn of the IAM rate, and one more for each old key it
 * retires first (adapters/rate-limits.ts `ROTATION_TURNS`). Every identity gets an outcome:
 * an error becomes a `failed` outcome with its message, and a failed identity whose credential is
 * past maxAge is disabled, revoked or reported as its policy says.
 */
export async function rotateMany(
  deps: RotationDeps,
  identities: readonly Identity[],
  options: {
    owner: string;
    force?: boolean;
    limit: Limit;
    pace?: RotationPace;
    onOutcome?: (outcome: RotationOutcome) => void;
  },
): Promise<RotationOutcome[]> {
  const { limit, pace, onOutcome, ...rest } = options;
  const rotateOptions: RotateOptions = { ...rest, slot: limit, ...(pace && { pace }) };
  return Promise.all(
    identities.map(async (identity) => {
      let outcome: RotationOutcome;
      const started = deps.clock.now().getTime();
      try {
        outcome = await rotateIdentity(deps, identity, rotateOptions);
      } catch (error) {
        if (error instanceof SimulatedCrash) throw error;
        outcome = await limit(async () => {
          const failed: RotationOutcome = {
            identityId: identity.id,
            kind: identity.kind,
            status: 'failed',
            reason: `${error instanceof Error ? error.message : String(error)} (progress is kept; the next run resumes)`,
            resumed: false,
            retired: [],
            warnings: [],
            durationMs: deps.clock.now().getTime() - started,
          };
          await deps.audit
            .append({
              type: 'rotation.failed',
              actor: deps.actor,
              subject: identity.id,
              details: { reason: failed.reason },
            })
            .catch(() => undefined);
          return failed;
        });
      }
      // A credential that cannot be rotated (failed, or no delivery target) still may not outlive maxAge.
      // policy.rotate false: tracked only, so neither rotated nor disabled for its age (a finding says it).
      const unrotatable = outcome.status === 'failed' || !deliveryOf(identity);
      if (unrotatable && !notRotated(identity.kind) && identity.policy.rotate) {
        const enforced = await limit(() =>
          enforceMaxAge(deps, identity).catch(
            (error: unknown) => `max-age enforcement failed: ${(error as Error).message}`,
          ),
        );
        if (enforced) outcome.warnings.push(enforced);
      }
      onOutcome?.(outcome);
      return outcome;
    }),
  );
}

export type NativeStep = 'createSecret' | 'setSecret' | 'testSecret' | 'finishSecret';

/**
 * One step of a rotation driven by Secrets Manager (native rotation): its token is the
 * version id. Each step is done only if the stored progress is at it; a repeat of a step
 * already done returns without doing anything, as Secrets Manager expects.
 */
export async function runNativeStep(
  deps: RotationDeps,
  identity: Identity,
  step: NativeStep,
  token: string,
  owner: string,
): Promise<'done' | 'already-done'> {
  const delivery = deliveryOf(identity);
  if (delivery?.type !== 'aws-secret') {
    throw new KeywardenError(
      `${identity.id} does not deliver to a Secrets Manager secret; native rotation does not apply`,
    );
  }
  assertRotatable(identity);
  const run = new Run(deps, identity, owner);
  run.fixedVersionId = token;
  const target = deps.deliveryFor(delivery);
  const busy = () =>
    new KeywardenError(`another run is rotating ${identity.id}; Secrets Manager will retry this step`, {
      retryable: true,
    });
  /** Takes the lock with the write of `state`, or of the progress as loaded. */
  const claim = async (state?: Omit<RotationState, 'recorded' | 'lock'>) => {
    try {
      await run.claim(state);
    } catch (error) {
      throw error instanceof ConflictError ? busy() : error;
    }
  };
  try {
    await run.load();
    if (run.lockedByOther()) throw busy();
    const state = run.state;
    const inProgress = state && state.step !== 'finished' && state.step !== 'failed';
    if (step === 'createSecret') {
      // Done once the progress moved past it; an invocation that died after recording the
      // version but before moving on is finished by this one (its event, then the progress).
      if (state?.versionId === token && state.step !== 'createSecret' && run.version(token))
        return 'already-done';
      if (inProgress && state?.versionId !== token) {
        throw new KeywardenError(
          `${identity.id} has an unfinished keywarden rotation at ${state?.step}; it must finish before Secrets Manager starts another`,
          { retryable: true },
        );
      }
      if (state?.versionId === token && inProgress) {
        run.resumed = true;
        await claim();
      } else {
        const at = run.now;
        await claim({
          identityId: identity.id,
          rotationId: token,
          versionId: token,
          step: 'createSecret',
          startedAt: at,
          attemptStartedAt: at,
          attempts: 1,
          updatedAt: at,
          reason: 'Secrets Manager rotation',
        });
      }
      await createSecret(run, target);
      return 'done';
    }
    if (!state || state.versionId !== token) {
      throw new KeywardenError(
        `no keywarden rotation with token ${token} for ${identity.id}: createSecret must run first`,
      );
    }
    if (state.step === 'failed') throw new VerificationError(state.reason ?? 'this rotation failed');
    if (STEP_ORDER.indexOf(state.step) > STEP_ORDER.indexOf(step)) return 'already-done';
    if (state.step !== step) {
      throw new KeywardenError(`${step} called for ${identity.id} while the rotation is at ${state.step}`, {
        retryable: true,
      });
    }
    await claim();
    if (step === 'setSecret') {
      if (await setSecret(run, target)) await run.advance('testSecret', 'setSecret');
      else
        throw new KeywardenError('the pending value was lost; Secrets Manager must start the rotation again');
    } else if (step === 'testSecret') {
      const failure = await testSecret(run, target);
      if (failure) throw new VerificationError(failure);
      await run.advance('finishSecret', 'testSecret');
    } else {
      await finishSecret(run, target);
      await run.advance('finished', 'finishSecret');
    }
    return 'done';
  } finally {
    await run.release().catch(() => undefined);
  }
}
