/**
 * An in-memory credential provider and delivery target implementing keywarden's own ports
 * (functions/core/ports.ts), for unit specs of the rotation and campaign engines. They
 * model what those ports promise, not AWS or Vault: a provider holds credentials per
 * identity (active, inactive, gone), tags them with their rotation version where the kind
 * can (the kind registry's `tagsVersions`), and answers `already-revoked` for one already
 * gone; a delivery target holds what the pipeline reads and the staged pending values.
 *
 * Fault injection: `failOn(method, …)` makes a chosen call throw, before doing its work
 * (the call never reached the service) or after it (the work was done and the answer
 * lost, or the process died right after), to put a crash between two checkpoints.
 *
 * `MemoryWorld` puts them together with the in-memory stores (memory-stores.ts) and builds
 * the engines' dependencies (`RotationDeps`, `CampaignDeps`) from them.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { CampaignDeps } from '../../functions/core/campaign-engine.ts';
import { VerificationError } from '../../functions/core/errors.ts';
import {
  type Delivery,
  type Identity,
  type IdentityKind,
  IdentityKindSchema,
} from '../../functions/core/identity.ts';
import { deliveryOf, KINDS } from '../../functions/core/kinds.ts';
import type {
  BoundDelivery,
  BoundProvider,
  Clock,
  CredentialProvider,
  DeliveryTarget,
} from '../../functions/core/ports.ts';
import type { RotationDeps } from '../../functions/core/rotation.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { FixedClock } from './fixtures.ts';
import {
  MemoryAuditLog,
  MemoryCampaignStore,
  MemoryIdentityStore,
  MemoryRotationStore,
} from './memory-stores.ts';

/** One call of a method, as fault injection and the call log see it. */
export interface Call<M extends string> {
  method: M;
  /** The identity (provider) or delivery key (delivery target) it was for. */
  subject: string;
  /** The credential handle or version id it named, if any. */
  ref?: string;
}

/** When an injected fault strikes: before the call does anything, or after it did its work. */
export type FaultPhase = 'before' | 'after';

export interface FaultOptions {
  /** Only calls for this identity id (provider) or delivery key (delivery target). */
  subject?: string;
  /** Only calls naming this handle or version id. */
  ref?: string;
  /** The nth matching call is the first to fail (default 1: the first). */
  nth?: number;
  /** How many matching calls in a row fail from the nth on (default 1). */
  times?: number;
  /** Default `before`. */
  phase?: FaultPhase;
  /** What is thrown (default an Error naming the call). */
  error?: Error;
}

/** The faults planned for one fake, each spent once it has failed its calls, and the log of every call made. */
class Faults<M extends string> {
  readonly calls: Call<M>[] = [];
  readonly #planned: (FaultOptions & { method: M; seen: number })[] = [];

  plan(method: M, options: FaultOptions): void {
    this.#planned.push({ ...options, method, seen: 0 });
  }

  /** Runs `work` for `call`, throwing where a planned fault says so. */
  async run<T>(call: Call<M>, work: () => T | Promise<T>): Promise<T> {
    this.calls.push(call);
    const matching = this.#planned.filter(
      (f) =>
        f.method === call.method &&
        (f.subject === undefined || f.subject === call.subject) &&
        (f.ref === undefined || f.ref === call.ref),
    );
    for (const f of matching) f.seen += 1;
    const fault = matching.find((f) => f.seen >= (f.nth ?? 1));
    // Spent once it failed its last call.
    if (fault && fault.seen >= (fault.nth ?? 1) + (fault.times ?? 1) - 1) {
      this.#planned.splice(this.#planned.indexOf(fault), 1);
    }
    const fail = () => {
      throw fault?.error ?? new Error(`injected fault: ${call.method} ${call.subject} ${call.ref ?? ''}`);
    };
    if (fault && (fault.phase ?? 'before') === 'before') fail();
    // A real service answers later: let other work in flight interleave with this call.
    await new Promise((resolve) => setImmediate(resolve));
    const result = await work();
    if (fault) fail();
    return result;
  }

  count(method: M, subject?: string): number {
    return this.calls.filter((c) => c.method === method && (subject === undefined || c.subject === subject))
      .length;
  }
}

/** A credential as the in-memory provider holds it. */
export interface HeldCredential {
  handle: string;
  secret: SecretValue;
  status: 'active' | 'inactive';
  createdAt: string;
  /** The rotation version that made it, for kinds that can carry that tag. */
  versionId?: string;
  lastUsed?: string;
}

export type ProviderMethod =
  | 'issue'
  | 'set'
  | 'verify'
  | 'supersede'
  | 'disable'
  | 'revoke'
  | 'list'
  | 'lastUsed';

const newSecret = () => new SecretValue(randomBytes(18).toString('base64url'));

/**
 * The credentials of one kind, per identity, with the provider port's methods. A revoked
 * credential is gone: it is no longer listed and no longer authenticates.
 */
export class MemoryCredentialProvider<K extends IdentityKind = IdentityKind>
  implements CredentialProvider<K>
{
  readonly #held = new Map<string, Map<string, HeldCredential>>();
  readonly #faults = new Faults<ProviderMethod>();
  #issued = 0;
  #revoking = 0;
  /** The most revokes this provider ever had in flight at once. */
  peakRevokes = 0;

  constructor(
    readonly kind: K,
    readonly clock: Clock,
  ) {}

  /** Every call made, in order. */
  get calls(): readonly Call<ProviderMethod>[] {
    return this.#faults.calls;
  }

  /** Makes a chosen call throw (see FaultOptions); `subject` is an identity id, `ref` a handle or version id. */
  failOn(method: ProviderMethod, options: FaultOptions = {}): this {
    this.#faults.plan(method, options);
    return this;
  }

  /** How many calls of `method` were made, for one identity or all. */
  count(method: ProviderMethod, identityId?: string): number {
    return this.#faults.count(method, identityId);
  }

  /** A credential made outside keywarden, as the pipeline holds it before keywarden's first rotation. */
  seed(identityId: string, options: { createdAt?: string } = {}): HeldCredential {
    return this.#add(identityId, { createdAt: options.createdAt ?? this.clock.now().toISOString() });
  }

  /** The credentials held for an identity now (revoked ones are gone). */
  held(identityId: string): HeldCredential[] {
    return [...(this.#held.get(identityId)?.values() ?? [])].map((c) => ({ ...c }));
  }

  /** Whether `handle` still exists and is active. */
  live(identityId: string, handle: string): boolean {
    return this.#held.get(identityId)?.get(handle)?.status === 'active';
  }

  /** Whether a value authenticates: some active credential of the identity has it. */
  authenticates(identityId: string, secret: SecretValue): boolean {
    return this.held(identityId).some((c) => c.status === 'active' && c.secret.reveal() === secret.reveal());
  }

  /** Records a use of the credential at `at` (what `lastUsed` reports). */
  use(identityId: string, handle: string, at: string): void {
    const credential = this.#held.get(identityId)?.get(handle);
    if (credential) credential.lastUsed = at;
  }

  #add(identityId: string, fields: { createdAt: string; versionId?: string }): HeldCredential {
    this.#issued += 1;
    const credential: HeldCredential = {
      handle: `${this.kind}-${this.#issued}`,
      secret: newSecret(),
      status: 'active',
      ...fields,
    };
    const held = this.#held.get(identityId) ?? new Map<string, HeldCredential>();
    held.set(credential.handle, credential);
    this.#held.set(identityId, held);
    return { ...credential };
  }

  #find(identityId: string, handle: string): HeldCredential | undefined {
    return this.#held.get(identityId)?.get(handle);
  }

  // ---- the port's methods ------------------------------------------------------------------

  issue(identity: Identity, context: { versionId: string }) {
    return this.#faults.run({ method: 'issue', subject: identity.id, ref: context.versionId }, () => {
      const tagged = KINDS[this.kind].tagsVersions ? { versionId: context.versionId } : {};
      const made = this.#add(identity.id, { createdAt: this.clock.now().toISOString(), ...tagged });
      return { handle: made.handle, secret: made.secret };
    });
  }

  set(identity: Identity, credential: { handle: string; secret: SecretValue }) {
    return this.#faults.run({ method: 'set', subject: identity.id, ref: credential.handle }, () => undefined);
  }

  verify(identity: Identity, credential: { handle: string; secret: SecretValue }) {
    return this.#faults.run({ method: 'verify', subject: identity.id, ref: credential.handle }, () => {
      const held = this.#find(identity.id, credential.handle);
      if (!held) throw new VerificationError(`${credential.handle} does not exist`);
      if (held.status !== 'active') throw new VerificationError(`${credential.handle} is Inactive`);
      if (held.secret.reveal() !== credential.secret.reveal())
        throw new VerificationError(`the staged value is not the one issued as ${credential.handle}`);
    });
  }

  supersede(identity: Identity, handle: string) {
    // Recorded only: the old credential lives on through its grace period.
    return this.#faults.run({ method: 'supersede', subject: identity.id, ref: handle }, () => undefined);
  }

  disable(identity: Identity, handle: string) {
    return this.#faults.run({ method: 'disable', subject: identity.id, ref: handle }, () => {
      const held = this.#find(identity.id, handle);
      if (held) held.status = 'inactive';
    });
  }

  async revoke(identity: Identity, handle: string): Promise<'revoked' | 'already-revoked'> {
    this.#revoking += 1;
    this.peakRevokes = Math.max(this.peakRevokes, this.#revoking);
    try {
      return await this.#faults.run({ method: 'revoke', subject: identity.id, ref: handle }, () =>
        this.#held.get(identity.id)?.delete(handle) ? 'revoked' : 'already-revoked',
      );
    } finally {
      this.#revoking -= 1;
    }
  }

  list(identity: Identity) {
    return this.#faults.run({ method: 'list', subject: identity.id }, () =>
      this.held(identity.id).map((c) => ({
        handle: c.handle,
        status: c.status,
        createdAt: c.createdAt,
        ...(c.versionId ? { versionId: c.versionId } : {}),
      })),
    );
  }

  lastUsed(identity: Identity, handle: string) {
    return this.#faults.run(
      { method: 'lastUsed', subject: identity.id, ref: handle },
      () => this.#find(identity.id, handle)?.lastUsed,
    );
  }

  /** The provider bound to one identity, as the engines call it (`providerFor`). */
  bind(identity: Identity): BoundProvider {
    return {
      kind: this.kind,
      issue: (context) => this.issue(identity, context),
      set: (credential) => this.set(identity, credential),
      verify: (credential) => this.verify(identity, credential),
      supersede: (handle) => this.supersede(identity, handle),
      disable: (handle) => this.disable(identity, handle),
      revoke: (handle) => this.revoke(identity, handle),
      list: () => this.list(identity),
      lastUsed: (handle) => this.lastUsed(identity, handle),
    };
  }
}

export type DeliveryMethod = 'stagePending' | 'readPending' | 'promote' | 'readCurrent' | 'discardPending';

/** The key of a delivery target: the secret id, or mount/path. */
export const deliveryKey = (delivery: Delivery): string =>
  delivery.type === 'aws-secret' ? delivery.secretId : `${delivery.mount}/${delivery.path}`;

interface Slot {
  current?: { versionId?: string; secret: SecretValue };
  pending: Map<string, SecretValue>;
}

/** Where the pipeline reads its credential, with values staged beside it until promoted. */
export class MemoryDeliveryTarget implements DeliveryTarget {
  readonly #slots = new Map<string, Slot>();
  readonly #faults = new Faults<DeliveryMethod>();

  constructor(readonly type: Delivery['type']) {}

  get calls(): readonly Call<DeliveryMethod>[] {
    return this.#faults.calls;
  }

  /** Makes a chosen call throw (see FaultOptions); `subject` is a delivery key, `ref` a version id. */
  failOn(method: DeliveryMethod, options: FaultOptions = {}): this {
    this.#faults.plan(method, options);
    return this;
  }

  /** What the pipeline holds before keywarden's first rotation. */
  seed(delivery: Delivery, secret: SecretValue): void {
    this.#slot(delivery).current = { secret };
  }

  /** The version ids staged and not promoted. */
  pendingOf(delivery: Delivery): string[] {
    return [...this.#slot(delivery).pending.keys()];
  }

  #slot(delivery: Delivery): Slot {
    const key = deliveryKey(delivery);
    let slot = this.#slots.get(key);
    if (!slot) {
      slot = { pending: new Map() };
      this.#slots.set(key, slot);
    }
    return slot;
  }

  // ---- the port's methods ------------------------------------------------------------------

  stagePending(delivery: Delivery, versionId: string, secret: SecretValue) {
    return this.#faults.run(
      { method: 'stagePending', subject: deliveryKey(delivery), ref: versionId },
      () => {
        this.#slot(delivery).pending.set(versionId, secret);
        return { secret };
      },
    );
  }

  readPending(delivery: Delivery, versionId: string) {
    return this.#faults.run({ method: 'readPending', subject: deliveryKey(delivery), ref: versionId }, () =>
      this.#slot(delivery).pending.get(versionId),
    );
  }

  promote(delivery: Delivery, versionId: string) {
    return this.#faults.run({ method: 'promote', subject: deliveryKey(delivery), ref: versionId }, () => {
      const slot = this.#slot(delivery);
      if (slot.current?.versionId === versionId) return;
      const secret = slot.pending.get(versionId);
      if (!secret) throw new Error(`no staged value of version ${versionId} in ${deliveryKey(delivery)}`);
      slot.current = { versionId, secret };
      slot.pending.delete(versionId);
    });
  }

  readCurrent(delivery: Delivery) {
    return this.#faults.run({ method: 'readCurrent', subject: deliveryKey(delivery) }, () => {
      const current = this.#slot(delivery).current;
      return current ? { ...current } : undefined;
    });
  }

  discardPending(delivery: Delivery, versionId: string) {
    return this.#faults.run(
      { method: 'discardPending', subject: deliveryKey(delivery), ref: versionId },
      () => void this.#slot(delivery).pending.delete(versionId),
    );
  }

  /** The target bound to one delivery, as the engines call it (`deliveryFor`). */
  bind(delivery: Delivery): BoundDelivery {
    return {
      type: delivery.type,
      stagePending: (versionId, secret) => this.stagePending(delivery, versionId, secret),
      readPending: (versionId) => this.readPending(delivery, versionId),
      promote: (versionId) => this.promote(delivery, versionId),
      readCurrent: () => this.readCurrent(delivery),
      discardPending: (versionId) => this.discardPending(delivery, versionId),
    };
  }

  /** What the pipeline reads now, without going through the call log or faults. */
  current(delivery: Delivery): { versionId?: string; secret: SecretValue } | undefined {
    const current = this.#slot(delivery).current;
    return current ? { ...current } : undefined;
  }
}

/**
 * A pipeline credential as it stands before keywarden: one credential in the provider,
 * and its value in the identity's delivery target.
 */
export function seedPipeline(
  provider: MemoryCredentialProvider,
  target: MemoryDeliveryTarget,
  identity: Identity,
  options: { createdAt?: string } = {},
): HeldCredential {
  const delivery = deliveryOf(identity);
  if (!delivery) throw new Error(`${identity.id} has no delivery target to seed`);
  const credential = provider.seed(identity.id, options);
  target.seed(delivery, credential.secret);
  return credential;
}

/** Whether the pipeline's credential works: what it reads from its delivery target authenticates. */
export function pipelineWorks(
  provider: MemoryCredentialProvider,
  target: MemoryDeliveryTarget,
  identity: Identity,
): boolean {
  const delivery = deliveryOf(identity);
  const current = delivery && target.current(delivery);
  return current !== undefined && provider.authenticates(identity.id, current.secret);
}

/**
 * Everything the rotation and campaign engines talk to, in memory: the stores, one
 * provider per kind, one delivery target per type, a clock that moves only when a spec
 * moves it, and the dependency objects the engines take, built from them.
 */
export class MemoryWorld {
  readonly clock = new FixedClock(new Date('2026-06-01T09:00:00.000Z'));
  readonly store = new MemoryRotationStore();
  readonly audit = new MemoryAuditLog(this.clock);
  readonly identities = new MemoryIdentityStore();
  readonly campaigns = new MemoryCampaignStore();
  readonly providers = Object.fromEntries(
    IdentityKindSchema.options.map((kind) => [kind, new MemoryCredentialProvider(kind, this.clock)]),
  ) as { readonly [K in IdentityKind]: MemoryCredentialProvider<K> };
  readonly deliveries = {
    'aws-secret': new MemoryDeliveryTarget('aws-secret'),
    'vault-kv': new MemoryDeliveryTarget('vault-kv'),
  } as const;
  #ids = 0;

  /** Ids in the order they were made: `id-1`, `id-2`, … */
  readonly newId = (): string => {
    this.#ids += 1;
    return `id-${this.#ids}`;
  };

  /** A keyed digest of a value, as the adapters' HMAC fingerprint: never the value itself. */
  readonly fingerprint = (secret: SecretValue): string =>
    createHmac('sha256', 'memory-world').update(secret.reveal()).digest('hex');

  providerOf(identity: Identity): MemoryCredentialProvider {
    return this.providers[identity.kind];
  }

  deliveryTargetOf(identity: Identity): MemoryDeliveryTarget {
    const delivery = deliveryOf(identity);
    if (!delivery) throw new Error(`${identity.id} has no delivery target`);
    return this.deliveries[delivery.type];
  }

  /** The identity as its pipeline has it before keywarden: declared, with one working credential. */
  async seed(identity: Identity, options: { createdAt?: string } = {}): Promise<HeldCredential> {
    await this.identities.putIdentity(
      { identity, status: 'active', declarationHash: 'spec', syncedAt: this.clock.now().toISOString() },
      undefined,
    );
    return seedPipeline(this.providerOf(identity), this.deliveryTargetOf(identity), identity, options);
  }

  /** Whether the identity's pipeline can authenticate with what it reads from its delivery target. */
  works(identity: Identity): boolean {
    return pipelineWorks(this.providerOf(identity), this.deliveryTargetOf(identity), identity);
  }

  rotationDeps(actor: string, overrides: Partial<RotationDeps> = {}): RotationDeps {
    return {
      store: this.store,
      audit: this.audit,
      clock: this.clock,
      newId: this.newId,
      providerFor: (identity) => this.providerOf(identity).bind(identity),
      deliveryFor: (delivery) => this.deliveries[delivery.type].bind(delivery),
      fingerprint: this.fingerprint,
      actor,
      ...overrides,
    };
  }

  campaignDeps(actor: string, overrides: Partial<CampaignDeps> = {}): CampaignDeps {
    return {
      campaigns: this.campaigns,
      identities: this.identities,
      rotation: this.rotationDeps(actor),
      // Backoff waits take no time here; specs that assess them pass their own.
      sleep: async () => undefined,
      random: () => 0.5,
      ...overrides,
    };
  }
}
