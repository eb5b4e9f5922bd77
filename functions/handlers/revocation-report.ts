/**
 * The Lambda entry point of the revocation report step (functions/handlers/revocation.ts): the
 * campaign's store and the report bucket, nothing else in its bundle.
 */
import { auditLog, Composition, campaignStore, identities, putObject } from '../adapters/composition.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { ACTOR, makeReportHandler } from './revocation.ts';
import { entryPoint } from './wrap.ts';

export const handler = entryPoint(async () => {
  const wired = new Composition(await loadLambdaConfig());
  return makeReportHandler({
    services: {
      // The campaigns, the inventory for the report and the audit trail; no other port of the table.
      store: { ...wired.get(campaignStore), ...wired.get(identities), ...wired.get(auditLog) },
      clock: wired.clock,
      config: wired.config,
      putObject: wired.get(putObject),
    },
    actor: ACTOR,
    // The scanner that started a containment campaign has returned: the re-issue is audited here.
    auditExposureReissues: true,
  });
});
