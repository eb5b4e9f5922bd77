/**
 * The Lambda entry point of the revocation plan step (functions/handlers/revocation.ts): the
 * campaign's store and the report bucket, nothing else in its bundle.
 */
import { auditLog, Composition, campaignStore, putObject } from '../adapters/composition.ts';
import { KeywardenError } from '../core/errors.ts';
import { KEYWARDEN_ENV } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { ACTOR, makePlanHandler } from './revocation.ts';
import { entryPoint } from './wrap.ts';

export const handler = entryPoint(async () => {
  const wired = new Composition(await loadLambdaConfig());
  const bucket = wired.config.reportBucket;
  if (!bucket) {
    throw new KeywardenError(
      `environment variable ${KEYWARDEN_ENV.reportBucket} is not set; the plan step writes the targets to the report bucket the CDK stack (infra/) gives this function`,
    );
  }
  return makePlanHandler({
    book: {
      campaigns: wired.get(campaignStore),
      audit: wired.get(auditLog),
      clock: wired.clock,
      actor: ACTOR,
    },
    putObject: wired.get(putObject),
    bucket,
  });
});
