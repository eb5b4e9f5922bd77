/**
 * The adapter side of the kind registry: one typed table of credential providers (one per
 * kind keywarden rotates or revokes one by one) and one of delivery targets, each handing
 * out an adapter already bound to its identity or delivery. Built by `wiring.ts`.
 */
import { KeywardenError } from '../core/errors.ts';
import type { Delivery, Identity, IdentityKind, IdentityOfKind } from '../core/identity.ts';
import type {
  BoundDelivery,
  BoundProvider,
  CredentialProvider,
  DeliveryFor,
  DeliveryTarget,
  ProviderFor,
} from '../core/ports.ts';

/** The provider of each kind that has one; the entry's kind is checked against its key. */
export type ProviderRegistry = { readonly [K in IdentityKind]?: CredentialProvider<K> };

/** The delivery target of each delivery type that is configured. */
export type DeliveryRegistry = {
  readonly [T in Delivery['type']]?: DeliveryTarget<Extract<Delivery, { type: T }>>;
};

/** The error for a kind or delivery type that needs a service this deployment has not configured. */
export const notConfigured = (what: string): KeywardenError =>
  new KeywardenError(
    `no ${what} is configured: Vault kinds need a Vault address and token (KEYWARDEN_VAULT_ADDR)`,
  );

/** A provider's methods with `identity` bound; optional methods stay absent when the provider has none. */
export function bindProvider<K extends IdentityKind>(
  provider: CredentialProvider<K>,
  identity: IdentityOfKind<K>,
): BoundProvider {
  const { set, supersede, disable, lastUsed } = provider;
  return {
    kind: provider.kind,
    issue: (context) => provider.issue(identity, context),
    verify: (credential) => provider.verify(identity, credential),
    revoke: (handle) => provider.revoke(identity, handle),
    list: (options) => provider.list(identity, options),
    ...(set ? { set: (credential) => set.call(provider, identity, credential) } : {}),
    ...(supersede ? { supersede: (handle) => supersede.call(provider, identity, handle) } : {}),
    ...(disable ? { disable: (handle) => disable.call(provider, identity, handle) } : {}),
    ...(lastUsed ? { lastUsed: (handle) => lastUsed.call(provider, identity, handle) } : {}),
  };
}

/** A delivery target's methods with `delivery` bound. */
export function bindDelivery<D extends Delivery>(target: DeliveryTarget<D>, delivery: D): BoundDelivery {
  return {
    type: delivery.type,
    stagePending: (versionId, secret, known) => target.stagePending(delivery, versionId, secret, known),
    readPending: (versionId) => target.readPending(delivery, versionId),
    promote: (versionId, staged) => target.promote(delivery, versionId, staged),
    readCurrent: () => target.readCurrent(delivery),
    discardPending: (versionId) => target.discardPending(delivery, versionId),
  };
}

/**
 * The registry entry of an identity's kind, typed for that identity. The one cast of the
 * registry: TypeScript cannot correlate `registry[identity.kind]` with `identity` by itself,
 * though the mapped type guarantees each entry serves the kind it is filed under.
 */
function providerOf<K extends IdentityKind>(
  registry: ProviderRegistry,
  identity: IdentityOfKind<K>,
): CredentialProvider<K> | undefined {
  return registry[identity.kind as K];
}

/** As `providerOf`, for a delivery and the target filed under its type. */
function targetOf<T extends Delivery['type']>(
  registry: DeliveryRegistry,
  delivery: Extract<Delivery, { type: T }>,
): DeliveryTarget<Extract<Delivery, { type: T }>> | undefined {
  return registry[delivery.type as T];
}

/** Hands out the provider of an identity's kind, bound to it; throws for a kind with none configured. */
export const providerFor =
  (registry: ProviderRegistry): ProviderFor =>
  (identity: Identity) => {
    const provider = providerOf(registry, identity);
    if (!provider) throw notConfigured(`provider for ${identity.kind}`);
    return bindProvider(provider, identity);
  };

/** Hands out the delivery target of a delivery's type, bound to it; throws for a type with none configured. */
export const deliveryFor =
  (registry: DeliveryRegistry): DeliveryFor =>
  (delivery: Delivery) => {
    const target = targetOf(registry, delivery);
    if (!target) throw notConfigured(`delivery target of type ${delivery.type}`);
    return bindDelivery(target, delivery);
  };
