/**
 * `exposure.reissued`: the audit event of an identity re-issued clean after a containment —
 * written by the local containment of a leak (exposure.ts) or of unexpected use
 * (unexpected-use.ts) as it ends, and in AWS by the revocation report step for the campaigns
 * those start (whose run it does not wait for).
 */
import type { AuditEventInput, AuditRecord } from './audit.ts';
import type { Campaign, ReissueRecord } from './campaign.ts';

/** How the incident of a leak's containment starts (exposure.ts `exposureIncident`). */
export const EXPOSURE_INCIDENT_PREFIX = 'EXPOSURE-';
/** How the incident of unexpected use's containment starts (unexpected-use.ts `unexpectedUseIncident`). */
export const UNEXPECTED_USE_INCIDENT_PREFIX = 'UNEXPECTED-USE-';

/** What the event says of the re-issue: the campaign, its incident, the new version, the exposed fingerprint. */
export interface ReissueDetails {
  campaignId: string | undefined;
  incident: string | undefined;
  versionId?: string | undefined;
  fingerprint: string;
}

/** One `exposure.reissued` event, by `actor` (the one who contained), on the re-issued identity. */
export const reissuedEvent = (
  actor: string,
  identityId: string,
  { campaignId, incident, versionId, fingerprint }: ReissueDetails,
): AuditEventInput => ({
  type: 'exposure.reissued',
  actor,
  subject: identityId,
  details: { campaignId, incident, ...(versionId === undefined ? {} : { versionId }), fingerprint },
});

/** Whether a campaign answers a containment: an exposure's incident or unexpected use's. */
export const isContainmentIncident = (incident: string): boolean =>
  incident.startsWith(EXPOSURE_INCIDENT_PREFIX) || incident.startsWith(UNEXPECTED_USE_INCIDENT_PREFIX);

/** The fingerprint a containment campaign's selector names (`identity=<id>,fingerprint=<fp>`). */
const fingerprintOf = (campaign: Campaign): string | undefined =>
  campaign.selectors
    .map((selector) => /(?:^|,)\s*fingerprint\s*=\s*([^,|!*\s]+)\s*(?:,|$)/.exec(selector)?.[1])
    .find((fingerprint) => fingerprint !== undefined);

/**
 * The `exposure.reissued` events a containment campaign (incident `EXPOSURE-…` or
 * `UNEXPECTED-USE-…`, selector on the exposed fingerprint) calls for: one per identity it
 * re-issued, with the campaign, the incident, the new version and the fingerprint, as the one
 * who contained (the campaign's `requestedBy`). Those `audited` already hold (a report step run
 * again, by a retry or a resume) are left out. Any other campaign calls for none.
 */
export function exposureReissuedEvents(
  campaign: Campaign,
  reissues: readonly ReissueRecord[],
  audited: readonly AuditRecord[],
): AuditEventInput[] {
  const fingerprint = fingerprintOf(campaign);
  if (!isContainmentIncident(campaign.incident) || fingerprint === undefined) return [];
  const done = new Set(
    audited
      .filter((r) => r.type === 'exposure.reissued' && r.details.campaignId === campaign.campaignId)
      .map((r) => `${r.subject}\n${String(r.details.versionId)}`),
  );
  return reissues
    .filter((r) => r.status === 'reissued' && !done.has(`${r.identityId}\n${String(r.versionId)}`))
    .map((r) =>
      reissuedEvent(campaign.requestedBy, r.identityId, {
        campaignId: campaign.campaignId,
        incident: campaign.incident,
        versionId: r.versionId,
        fingerprint,
      }),
    );
}
