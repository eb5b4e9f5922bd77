/**
 * Planning a campaign from what is live, not only from what keywarden recorded: each selected
 * identity of a kind revoked one credential at a time is resolved against its provider's
 * listing. What is live and not recorded becomes a version to adopt (recorded before it is
 * revoked, so the audit trail, the report and `status` show it); an identity whose provider
 * could not be listed is accounted for as failed, never skipped. Lease prefixes and role
 * sessions are revoked as a whole scope and need no listing.
 *
 * Pure: the listing itself is the caller's (functions/adapters/campaign-launcher.ts).
 */
import { adoptedVersion, adoptedVersionId, type ListedCredential, listedStage } from './adoption.ts';
import type { CredentialVersion } from './credential-version.ts';
import type { Identity, IdentityKind } from './identity.ts';
import { KINDS } from './kinds.ts';
import { type Selector, type SelectorSubject, select } from './selector.ts';

/** Why an identity's live credentials could not be listed. Never holds a secret value. */
export interface ListingFailure {
  /** The provider's error, as its adapter words it. */
  error: string;
  /** Whether listing again may work (throttling, an outage, a dropped connection). */
  retryable: boolean;
}

/** How an identity's live state was read when the campaign was planned. */
export type LiveState = { status: 'listed' } | ({ status: 'unlisted' } & ListingFailure);

/** One subject of a plan: the identity, its versions (recorded and adopted), and how its live state was read. */
export interface LiveSubject extends SelectorSubject {
  /** Absent: planned from the recorded versions alone (callers that list nothing). */
  live?: LiveState;
  /** Versions found live and not recorded, included in `versions`: to record before they are revoked. */
  adopted?: readonly CredentialVersion[];
}

/** What a provider showed for one identity: its credentials, and the fingerprint of the value it delivers now. */
export type Listing =
  | {
      listed: readonly ListedCredential[];
      /**
       * The value the identity's own store delivers now (a secret, a KV path), read where
       * keywarden may read it; `versionId` names the version it belongs to, when the store tags it.
       */
      current?: { versionId?: string; fingerprint: string };
    }
  | { failure: ListingFailure };

/** Kinds revoked one credential at a time: their live state is listed when a campaign is planned. */
export const listedAtPlanning = (kind: IdentityKind): boolean => KINDS[kind].revocation === 'per-credential';

/**
 * Whether a campaign of `selectors` lists the provider of `identity`: a kind revoked one
 * credential at a time, which some selector may select once its live versions are known.
 */
export const needsListing = (identityTerms: readonly Selector[], identity: Identity): boolean =>
  listedAtPlanning(identity.kind) && select(identityTerms, { identity, versions: [] }) !== undefined;

/**
 * Resolves one identity against its provider's listing. Every listed credential that still
 * grants something (any stage but `revoked`) and is not recorded live becomes a version to
 * adopt, at its stage as listed, with the fingerprint of the delivered value where it is
 * that value. Recorded versions stay as they are: one no longer listed is revoked by the
 * engine as `already-revoked`. A failed listing keeps the recorded versions and says why.
 *
 * @param at when the campaign is planned (ISO date-time): the issue time of what the provider does not date.
 */
export function resolveLive(
  identity: Identity,
  recorded: readonly CredentialVersion[],
  listing: Listing,
  at: string,
): LiveSubject {
  if ('failure' in listing) {
    return { identity, versions: recorded, live: { status: 'unlisted', ...listing.failure } };
  }
  const knownLive = new Set(recorded.filter((v) => v.stage !== 'revoked').map((v) => v.handle));
  const taken = new Set(recorded.map((v) => v.versionId));
  const adopted: CredentialVersion[] = [];
  for (const listed of listing.listed) {
    const stage = listedStage(listed);
    if (stage === 'revoked' || knownLive.has(listed.handle)) continue;
    knownLive.add(listed.handle);
    const version = adoptedVersion(identity, listed, {
      stage,
      at,
      fingerprint: fingerprintOf(listed, stage, listing.current),
      versionId: adoptedVersionId(listed.handle, taken),
      note: 'found live in the provider when a campaign was planned; keywarden had not recorded it',
    });
    taken.add(version.versionId);
    adopted.push(version);
  }
  return { identity, versions: [...recorded, ...adopted], live: { status: 'listed' }, adopted };
}

/**
 * The fingerprint of the delivered value, for the listed credential it belongs to: the one
 * its version id names, or (a store that does not tag the value) the current one listed untagged.
 */
function fingerprintOf(
  listed: ListedCredential,
  stage: CredentialVersion['stage'],
  current: { versionId?: string; fingerprint: string } | undefined,
): string | undefined {
  if (!current) return undefined;
  const belongs =
    current.versionId === undefined
      ? stage === 'current' && listed.versionId === undefined
      : current.versionId === listed.handle;
  return belongs ? current.fingerprint : undefined;
}
