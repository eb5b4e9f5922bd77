import { resolve } from 'node:path';
import type { CampaignRun } from '../core/campaign-engine.ts';
import type { AuditLog, CampaignStore, Clock, IdentityStore } from '../core/ports.ts';
import { buildRevocationReport } from '../core/revocation-report.ts';
import { renderReport } from '../core/revocation-report-render.ts';
import type { PutObject } from './aws/s3-put-object.ts';
import { type ReportLocations, writeReport } from './report-writer.ts';

/** What publishing a campaign's report reads and writes. */
export interface CampaignReportDeps {
  store: Pick<IdentityStore, 'listIdentities'> &
    Pick<AuditLog, 'recordsAbout'> &
    Pick<CampaignStore, 'putCampaign'>;
  clock: Clock;
  /** The report bucket, when the deployment has one. */
  config: { reportBucket?: string | undefined };
  /** Writes to the report bucket (S3 PutObject). */
  putObject: PutObject;
}

/**
 * Writes the post-incident revocation report of a finished campaign run: to the report
 * bucket when one is configured, otherwise to a local folder (`KEYWARDEN_REPORTS_DIR`,
 * default `./reports`), and records where on the campaign.
 */
export async function publishCampaignReport(
  services: CampaignReportDeps,
  run: CampaignRun,
): Promise<ReportLocations> {
  const affected = new Set(run.targets.map((target) => target.identityId));
  const [identities, history] = await Promise.all([
    services.store.listIdentities(),
    services.store.recordsAbout(affected),
  ]);
  const report = buildRevocationReport({
    campaign: run.campaign,
    targets: run.targets,
    identities: identities.map((record) => record.identity).filter((identity) => affected.has(identity.id)),
    history,
    reissued: run.reissues.filter((r) => r.status === 'reissued').map((r) => r.identityId),
    generatedAt: services.clock.now().toISOString(),
  });
  const bucket = services.config.reportBucket;
  const locations = await writeReport(
    report,
    renderReport(report),
    bucket
      ? { kind: 's3', putObject: services.putObject, bucket }
      : { kind: 'local', dir: resolve(process.env.KEYWARDEN_REPORTS_DIR ?? 'reports') },
  );
  const { rev, ...campaign } = run.campaign;
  await services.store.putCampaign({ ...campaign, reportLocation: locations.html }, rev);
  return locations;
}
