import type { Delivery, Identity, IdentityKind, IdentityOfKind } from './identity.ts';
import type { SecretValue } from './secret-value.ts';

/** What a provider issued: the handle to find it again, and the value to deliver. */
export interface IssuedCredential {
  handle: string;
  secret: SecretValue;
  expiresAt?: string;
}

/** A credential as the provider lists it for one identity. */
export interface ListedCredential {
  handle: string;
  status: 'active' | 'inactive';
  createdAt?: string;
  /** The rotation version that created it, where the provider can carry that tag (Vault metadata). */
  versionId?: string;
}

/**
 * One kind of credential (a port; one adapter per kind). Every method is idempotent
 * where the protocol may call it twice after a crash.
 */
export interface CredentialProvider<K extends IdentityKind = IdentityKind> {
  readonly kind: K;
  /** Creates a new credential beside the current one, which it must leave working. */
  issue(identity: IdentityOfKind<K>, context: { versionId: string }): Promise<IssuedCredential>;
  /** Applies a pending credential where the provider needs it (setSecret); most need nothing. */
  set?(identity: IdentityOfKind<K>, credential: { handle: string; secret: SecretValue }): Promise<void>;
  /** Proves the credential works, against the provider itself; throws VerificationError otherwise. */
  verify(identity: IdentityOfKind<K>, credential: { handle: string; secret: SecretValue }): Promise<void>;
  /** Called at finishSecret for the version being replaced (IAM: deactivate the old key). */
  supersede?(identity: IdentityOfKind<K>, handle: string): Promise<void>;
  /** Makes a credential unusable without destroying it, where the provider can. */
  disable?(identity: IdentityOfKind<K>, handle: string): Promise<void>;
  /** Ends a credential for good; a credential already gone is `already-revoked`. */
  revoke(identity: IdentityOfKind<K>, handle: string): Promise<'revoked' | 'already-revoked'>;
  /** What exists in the provider for this identity now (to adopt on first rotation, and to find orphans). */
  list(identity: IdentityOfKind<K>): Promise<ListedCredential[]>;
  /** When the credential was last used, where the provider records it. */
  lastUsed?(identity: IdentityOfKind<K>, handle: string): Promise<string | undefined>;
}

/**
 * Where the live credential is placed for the pipeline: a Secrets Manager secret or
 * a Vault KV path. A pending value is staged where the pipeline does not read it,
 * and promoted only after it passed its test.
 */
export interface DeliveryTarget<D extends Delivery = Delivery> {
  readonly type: D['type'];
  /** Stages `secret` as the pending value of version `versionId`; running it twice is harmless. */
  stagePending(delivery: D, versionId: string, secret: SecretValue): Promise<void>;
  /** The pending value of `versionId`, or undefined when none is staged. */
  readPending(delivery: D, versionId: string): Promise<SecretValue | undefined>;
  /** Makes version `versionId` the one the pipeline reads; a no-op when it already is. */
  promote(delivery: D, versionId: string): Promise<void>;
  /** What the pipeline reads now. */
  readCurrent(delivery: D): Promise<{ versionId?: string; secret: SecretValue } | undefined>;
  /** Drops a staged value that failed its test or was orphaned. */
  discardPending(delivery: D, versionId: string): Promise<void>;
}

/** The delivery target of an identity: its own, or for the value-store kinds the store itself. */
export function deliveryOf(identity: Identity): Delivery | undefined {
  if (identity.delivery) return identity.delivery;
  if (identity.kind === 'aws-secret') return { type: 'aws-secret', secretId: identity.scope.secretId };
  if (identity.kind === 'vault-kv')
    return { type: 'vault-kv', mount: identity.scope.mount, path: identity.scope.path };
  return undefined;
}
