/**
 * Which campaign targets leave a credential alive (core/target-exposure.ts): the rule behind
 * the report's residual exposure and `keywarden revoke`'s exit code.
 */
import { describe, expect, it } from 'vitest';
import { NO_LIVE_CREDENTIAL, NOTHING_LIVE } from '../../functions/core/campaign.ts';
import { leavesExposure } from '../../functions/core/target-exposure.ts';

describe('target exposure: what a campaign leaves alive', () => {
  it('ends nothing alive for revoked and already-revoked targets', () => {
    expect(leavesExposure({ outcome: 'revoked' })).toBe(false);
    expect(leavesExposure({ outcome: 'already-revoked' })).toBe(false);
  });

  it('leaves pending and failed targets alive', () => {
    expect(leavesExposure({ outcome: 'pending' })).toBe(true);
    expect(leavesExposure({ outcome: 'failed' })).toBe(true);
  });

  it("counts a skip as alive unless planning found nothing live (campaign.ts's NOTHING_LIVE)", () => {
    expect(leavesExposure({ outcome: 'skipped', reason: NOTHING_LIVE })).toBe(false);
    // keywarden never learned the handle, so it could not look: something may be out there.
    expect(leavesExposure({ outcome: 'skipped', reason: NO_LIVE_CREDENTIAL })).toBe(true);
    expect(leavesExposure({ outcome: 'skipped', reason: 'no permission to list' })).toBe(true);
    expect(leavesExposure({ outcome: 'skipped' })).toBe(true);
  });
});
