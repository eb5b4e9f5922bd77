/**
 * The HTTP API's Lambda behind API Gateway (HTTP API, payload format 2.0), for everything
 * but Slack, which has its own ingress and worker functions. Routing is the HTTP
 * application layer (functions/api/);
 * this file wires them at cold start. The local runtime (functions/local/runtime.ts)
 * calls `makeHandler` with its own dependencies.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { type LambdaInvoke, signedLambdaInvoke } from '../adapters/aws/lambda-invoke.ts';
import { StepFunctionsCampaignLauncher } from '../adapters/campaign-launcher.ts';
import {
  approvals,
  breakglass,
  Composition,
  campaignPlanning,
  ciExchange,
  grantReports,
} from '../adapters/composition.ts';
import type { RuntimeConfig } from '../adapters/runtime-config.ts';
// Only the name enters this bundle: with `sideEffects: false`, esbuild leaves the forge clients out.
import { type FinishedJob, finishedJobName } from '../adapters/scan/finished-job-log.ts';
import { campaignApi } from '../api/campaigns.ts';
import type { ApiDeps } from '../api/deps.ts';
import type { FinishedJobEvent } from '../api/finished-job-event.ts';
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
    ci: {
      exchange: composition.get(ciExchange),
      webhookSecrets: webhookSecretsOf(config),
      // Set by the stack when the exposure scanner is deployed beside CI job credentials.
      scanJobLog: env.exposureScannerFunctionArn
        ? jobLogHandOff(signedLambdaInvoke(config.aws), env.exposureScannerFunctionArn, console.error)
        : undefined,
    },
    approvals: composition.get(approvals),
  });
}

/**
 * Hands a finished job to the exposure scanner function: an asynchronous invocation (`Event`),
 * accepted by Lambda in milliseconds, so the webhook is answered quickly; the scanner reads the
 * job's log, scans and contains (Lambda retries a failed scan twice, then keeps the event in the
 * scanner's dead-letter queue). The API's bundle holds no detector: it only names the job. A
 * hand-off Lambda refuses is logged, not thrown: the job's credentials are ended all the same.
 */
export function jobLogHandOff(
  invoke: LambdaInvoke,
  scannerFunction: string,
  log: (line: string) => void,
): (job: FinishedJob) => Promise<void> {
  return async (job) => {
    // The scanner checks it against FinishedJobEventSchema; here only its type: no schema in this bundle.
    const event: FinishedJobEvent = { finishedJob: job };
    try {
      await invoke(scannerFunction, JSON.stringify(event), 'Event');
    } catch (error) {
      log(
        `the log of ${finishedJobName(job)} was not handed to the exposure scanner (${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}); its credentials were ended, its log is not scanned: invoke ${scannerFunction} with ${JSON.stringify(event)} (--invocation-type Event) to scan it`,
      );
    }
  };
}

/** The platforms' webhook secrets, as the configuration holds them. */
export const webhookSecretsOf = (config: RuntimeConfig) => ({
  github: config.ci.githubWebhookSecret ? new SecretValue(config.ci.githubWebhookSecret) : undefined,
  gitlab: config.ci.gitlabWebhookSecret ? new SecretValue(config.ci.gitlabWebhookSecret) : undefined,
});

/** The Lambda entry point: API Gateway requests (Slack's routes go to the slack-ingress function). */
export const handler = entryPoint(init);
