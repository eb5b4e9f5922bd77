/**
 * Whether a campaign target leaves a credential alive: the one rule behind the report's
 * residual exposure and `keywarden revoke`'s exit code.
 *
 * - `revoked`, `already-revoked`: ended.
 * - `pending`, `failed`: still live (not tried yet, or the provider refused or was unreachable).
 * - `skipped`: still live, unless its reason starts with {@link NOTHING_LIVE_PREFIX} (campaign.ts
 *   `NOTHING_LIVE` does): the provider was listed and had nothing live, so there was nothing to end. Any other skip (such as
 *   "no live credential recorded": keywarden never learned the handle, so it could not look)
 *   means a credential may still be out there, and counts as exposure.
 *
 * No imports: planning (campaign.ts) writes the reason, this file reads it; either may import
 * the other's facts without a cycle.
 */

/** The start of a skip reason that means the provider was listed and nothing live was found. */
export const NOTHING_LIVE_PREFIX = 'nothing live';

/** What of a target decides its exposure. */
export interface ExposureFacts {
  outcome: 'pending' | 'revoked' | 'already-revoked' | 'skipped' | 'failed';
  reason?: string | undefined;
}

/** Whether the target's credential may still be alive after the campaign. */
export function leavesExposure(target: ExposureFacts): boolean {
  switch (target.outcome) {
    case 'revoked':
    case 'already-revoked':
      return false;
    case 'skipped':
      return !(target.reason ?? '').startsWith(NOTHING_LIVE_PREFIX);
    default:
      return true;
  }
}
