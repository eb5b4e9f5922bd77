/**
 * The per-grant report as a use case: gathers the grant, its role, the audit records and
 * the grant's use (where a provider's trail is readable), then builds the report with
 * `grantReport` (grant-report.ts).
 */
import { NotFoundError } from './errors.ts';
import { type GrantReport, grantReport, grantReportMarkdown } from './grant-report.ts';
import type { AuditLog, BreakglassConfigStore, Clock, GrantStore, GrantUsageTrail } from './ports.ts';

/** What the report reads. */
export interface GrantReportDeps {
  grants: Pick<GrantStore, 'getGrant'>;
  config: Pick<BreakglassConfigStore, 'getBreakglassConfig'>;
  /** Read from the grant's request on (its records are all later), never the whole trail. */
  audit: Pick<AuditLog, 'recordsSince'>;
  /** Absent where no Vault audit trail is readable: the report then says where to look. */
  vaultUsage?: GrantUsageTrail | undefined;
  clock: Clock;
}

/**
 * The report of one grant, and its Markdown.
 *
 * @throws NotFoundError for an unknown grant, or a grant whose role the inventory no longer has.
 */
export async function grantReportOf(
  deps: GrantReportDeps,
  grantId: string,
): Promise<{ report: GrantReport; markdown: string }> {
  const grant = await deps.grants.getGrant(grantId);
  if (!grant) throw new NotFoundError(`no grant ${JSON.stringify(grantId)}`);
  const breakglassConfig = await deps.config.getBreakglassConfig();
  const role = breakglassConfig.roles.find((r) => r.id === grant.roleId);
  if (!role)
    throw new NotFoundError(`grant ${grantId} names role ${grant.roleId}, which the inventory no longer has`);
  const records = await deps.audit.recordsSince(grant.requestedAt);
  const vaultHandles = grant.credentials.filter((c) => c.type === 'vault-wrapped-token').map((c) => c.handle);
  const usage =
    role.target.type === 'vault-policies'
      ? deps.vaultUsage
        ? {
            available: true,
            note: "Requests made with the grant's Vault token, from the OpenBao audit device.",
            events: await deps.vaultUsage.usage(vaultHandles),
          }
        : {
            available: false,
            note: `Read the Vault audit device for the accessors ${vaultHandles.join(', ') || '(none issued)'}.`,
            events: [],
          }
      : {
          available: false,
          note: `Look up CloudTrail events whose userIdentity.sessionContext.sourceIdentity is ${grantId} (every call the grant's sessions made carries it).`,
          events: [],
        };
  const report = grantReport({ grant, role, records, usage, now: deps.clock.now() });
  return { report, markdown: grantReportMarkdown(report) };
}
