/**
 * The HTTP API's Lambda: one function behind API Gateway (HTTP API, payload format 2.0),
 * which also runs the deferred Slack jobs it hands to itself by asynchronous invocation.
 * Routing, the Slack gate and the jobs are the HTTP application layer (functions/api/);
 * this file wires them at cold start. The local runtime (functions/local/runtime.ts)
 * calls `makeHandler` with its own dependencies.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { StepFunctionsCampaignLauncher } from '../adapters/campaign-launcher.ts';
import { SlackResponder } from '../adapters/slack/responder.ts';
import { wire } from '../adapters/wiring.ts';
import { campaignApi } from '../api/campaigns.ts';
import { isDeferredEvent, signDeferredJob, verifyDeferredJob } from '../api/deferred-jobs.ts';
import type { ApiDeps, SlackDeps } from '../api/deps.ts';
import { ApiEventSchema, type ApiResult, errorResult, requestIdOf } from '../api/responses.ts';
import { routeRequest } from '../api/routes.ts';
import { runDeferred } from '../api/slack.ts';
import { KeywardenError } from '../core/errors.ts';
import { SecretValue } from '../core/secret-value.ts';
import { LAMBDA_RUNTIME_ENV, lambdaEnv, requireEnv } from './env.ts';
import { loadLambdaConfig, readSecret } from './lambda-config.ts';
import { entryPoint, type Wrapped, wrap } from './wrap.ts';

/** How long before the function's timeout a deferred job stops following its campaign. */
const STOP_BEFORE_TIMEOUT_MS = 10_000;

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

/**
 * The asynchronous self-invocation that runs a deferred Slack job (its MAC checked first).
 * Progress polling stops well before the function's timeout: async invocations are not retried.
 */
export function makeDeferredHandler(deps: ApiDeps) {
  return wrap({}, async (event, context): Promise<undefined> => {
    if (!deps.slack) throw new KeywardenError('a deferred Slack job arrived but Slack is not configured');
    const job = verifyDeferredJob(deps.slack.signingSecret, event);
    const remaining = context?.getRemainingTimeInMillis?.();
    const left = remaining === undefined ? 60_000 : remaining - STOP_BEFORE_TIMEOUT_MS;
    await runDeferred({ ...deps, progress: { everyMs: 20_000, deadlineMs: Math.max(0, left) } }, job);
    return undefined;
  });
}

/** Cold start: the service adapters, Slack (when its signing secret is configured) and the campaigns. */
async function init(): Promise<Wrapped<ApiResult | undefined>> {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const services = wire(config);
  const lambda = new LambdaClient(awsClientConfig(config.aws));
  const functionName = requireEnv(LAMBDA_RUNTIME_ENV.functionName);
  const responder = new SlackResponder();
  const signingSecret = env.slackSigningSecretArn
    ? new SecretValue(await readSecret(services.aws.secrets, env.slackSigningSecretArn))
    : undefined;
  const slack: SlackDeps | undefined = signingSecret && {
    signingSecret,
    ledger: services.breakglassStore,
    respond: (url, message) => responder.respond(url, message),
    // Slack's answer must leave within 3 s: the job runs in a second, asynchronous invocation.
    defer: async (job) => {
      const payload = JSON.stringify(signDeferredJob(signingSecret, job));
      await lambda.send(
        new InvokeCommand({
          FunctionName: functionName,
          InvocationType: 'Event',
          Payload: Buffer.from(payload),
        }),
      );
    },
  };
  const stateMachineArn = env.revocationStateMachineArn;
  const launcher =
    stateMachineArn &&
    new StepFunctionsCampaignLauncher({
      client: new SFNClient(awsClientConfig(config.aws)),
      stateMachineArn,
    });
  const deps: ApiDeps = {
    breakglass: services.breakglassDeps,
    acceptLocalPrincipals: false,
    campaigns: launcher ? campaignApi(services, launcher) : undefined,
    region: config.aws.region,
    vaultAddr: config.vault?.addr,
    report: services.grantReportOf,
    slack,
  };
  const http = makeHandler(deps);
  const deferred = makeDeferredHandler(deps);
  return (event, context) => (isDeferredEvent(event) ? deferred(event, context) : http(event, context));
}

/** The Lambda entry point: API Gateway requests and deferred Slack jobs. */
export const handler = entryPoint(init);
