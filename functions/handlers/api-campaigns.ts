/**
 * The campaigns function: API Gateway sends it the CLI's campaign routes (`/campaigns…`,
 * SigV4) and nothing else. It builds campaign planning (the inventory, the providers that list
 * what is live, the incident responders) and the Step Functions launcher, and routes over
 * {@link CAMPAIGN_ROUTES} only: a grant or CI route is a 404 here.
 */
import { stepFunctionsLauncher } from '../adapters/campaign-launcher.ts';
import { Composition, campaignPlanning } from '../adapters/composition.ts';
import { campaignApi } from '../api/campaigns.ts';
import { CAMPAIGN_ROUTES } from '../api/routes.ts';
import { inLambda, makeApiHandler } from './api.ts';
import { KEYWARDEN_ENV, requireEnv } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint } from './wrap.ts';

/** The Lambda entry point: incident campaigns for the CLI, run by the revocation state machine. */
export const handler = entryPoint(async () => {
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  const launcher = stepFunctionsLauncher(config.aws, requireEnv(KEYWARDEN_ENV.revocationStateMachineArn));
  return makeApiHandler(
    {
      campaigns: campaignApi(composition.get(campaignPlanning), launcher),
      ...inLambda(config),
    },
    CAMPAIGN_ROUTES,
  );
});
