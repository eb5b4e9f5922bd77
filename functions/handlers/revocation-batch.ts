/**
 * The Lambda entry point of the revocation state machine's Distributed Map worker
 * (functions/handlers/revocation.ts): the campaign engine over the providers and the role-deny
 * door; no S3 in its bundle.
 */

import { Composition, campaigns } from '../adapters/composition.ts';
import { providerLimiters, rateLimitsFromEnv } from '../adapters/rate-limits.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { ACTOR, makeRevokeBatchHandler } from './revocation.ts';
import { entryPoint } from './wrap.ts';

export const handler = entryPoint(async () =>
  makeRevokeBatchHandler({
    campaign: new Composition(await loadLambdaConfig()).get(campaigns)(ACTOR),
    limitFor: providerLimiters(rateLimitsFromEnv()).limitFor,
  }),
);
