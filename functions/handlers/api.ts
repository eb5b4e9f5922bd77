/**
 * The HTTP API's Lambda behind API Gateway (HTTP API, payload format 2.0), for everything
 * but Slack, which has its own ingress and worker functions. Routing is the HTTP
 * application layer (functions/api/);
 * this file wires them at cold start. The local runtime (functions/local/runtime.ts)
 * calls `makeHandler` with its own dependencies.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { StepFunctionsCampaignLauncher } from '../adapters/campaign-launcher.ts';
import type { RuntimeConfig } from '../adapters/runtime-config.ts';
import {
  approvals,
  breakglass,
  Composition,
  campaignPlanning,
  ciExchange,
  grantReports,
} from '../adapters/wiring.ts';
import { campaignApi } from '../api/campaigns.ts';
import type { ApiDeps } from '../api/deps.ts';
import { ApiEventSchema, type ApiResult, errorResult, requestIdOf } from '../api/responses.ts';
import { routeRequest } from '../api/routes.ts';
import { SecretValue } from '../core/secret-value.ts';
import { lambdaEnv } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, type Wrapped, wrap } from './wrap.ts';

/** The API handler: route, authenticate, run; failures become statuses. */
export function makeHandler(deps: ApiDeps) {
  return wrap(
    {
      event: ApiEventSchema,
      expected: 'an API Gateway HTTP API event (payload format 2.0)',
      answer: (error, event) => errorResult(error, requestIdOf(event), deps.log ?? console.error),
    },
    (event) => routeRequest(deps, event),
  );
}

/** Cold start: the service adapters and the campaigns. Slack has its own functions (slack-ingress, slack-worker). */
async function init(): Promise<Wrapped<ApiResult>> {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  const stateMachineArn = env.revocationStateMachineArn;
  const launcher =
    stateMachineArn &&
    new StepFunctionsCampaignLauncher({
      client: new SFNClient(awsClientConfig(config.aws)),
      stateMachineArn,
    });
  return makeHandler({
    breakglass: composition.get(breakglass),
    acceptLocalPrincipals: false,
    campaigns: launcher ? campaignApi(composition.get(campaignPlanning), launcher) : undefined,
    region: config.aws.region,
    vaultAddr: config.vault?.addr,
    report: composition.get(grantReports),
    ci: { exchange: composition.get(ciExchange), webhookSecrets: webhookSecretsOf(config) },
    approvals: composition.get(approvals),
  });
}

/** The platforms' webhook secrets, as the configuration holds them. */
export const webhookSecretsOf = (config: RuntimeConfig) => ({
  github: config.ci.githubWebhookSecret ? new SecretValue(config.ci.githubWebhookSecret) : undefined,
  gitlab: config.ci.gitlabWebhookSecret ? new SecretValue(config.ci.gitlabWebhookSecret) : undefined,
});

/** The Lambda entry point: API Gateway requests (Slack's routes go to the slack-ingress function). */
export const handler = entryPoint(init);
