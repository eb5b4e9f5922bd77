/**
 * Adoption: recording a credential keywarden did not issue, found live in its provider, so
 * that everything keywarden does to it afterwards (supersede, retire, revoke) has a version
 * to mark. The rotation engine adopts what exists on a first rotation and when it enforces
 * maxAge; campaign planning adopts what is live before revoking it.
 */
import type { CredentialVersion, VersionStage } from './credential-version.ts';
import type { Identity } from './identity.ts';

/** A credential as the provider lists it for one identity. */
export interface ListedCredential {
  handle: string;
  status: 'active' | 'inactive';
  createdAt?: string;
  /** The rotation version that created it, where the provider can carry that tag (Vault metadata). */
  versionId?: string;
  /**
   * Its stage as the provider shows it, where the provider can tell (Secrets Manager's staging
   * labels, KV's current version; `revoked` for what exists but no longer grants anything, such as
   * an unlabelled secret version or an expired secret-id). Absent: `current` when active,
   * `disabled` when inactive.
   */
  stage?: VersionStage;
}

/**
 * The version id an adopted credential is recorded under: `adopted-<handle>`, or with a
 * `-<n>` suffix when that id is taken already (the handle was recorded once, revoked, and
 * is live again).
 */
export function adoptedVersionId(handle: string, taken: ReadonlySet<string> = new Set()): string {
  const base = `adopted-${handle}`;
  if (!taken.has(base)) return base;
  for (let n = 2; ; n += 1) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

/** The stage a listed credential is in: the provider's own, else current when active, disabled when inactive. */
export const listedStage = (listed: ListedCredential): VersionStage =>
  listed.stage ?? (listed.status === 'active' ? 'current' : 'disabled');

/**
 * The credential version that records `listed` as adopted: issued when the provider says it
 * was created (else `at`), at `stage`, with its fingerprint where keywarden read the value.
 */
export function adoptedVersion(
  identity: Identity,
  listed: ListedCredential,
  options: {
    stage: VersionStage;
    at: string;
    fingerprint?: string | undefined;
    versionId?: string;
    note?: string;
  },
): CredentialVersion {
  return {
    identityId: identity.id,
    versionId: options.versionId ?? adoptedVersionId(listed.handle),
    kind: identity.kind,
    stage: options.stage,
    handle: listed.handle,
    ...(options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint }),
    origin: 'adopted',
    issuedAt: listed.createdAt ?? options.at,
    ...(options.note === undefined ? {} : { note: options.note }),
  };
}
