/**
 * Slack ingress: the function API Gateway sends `/slack/commands` and `/slack/interactions`
 * to. It verifies Slack's signature (the signing secret is all it reads besides the
 * fingerprint key every function loads), records what must be answered at once (a
 * `/breakglass` request, the delivery ledger, refusals in the audit trail) and hands
 * everything slow to the Slack worker by an asynchronous invocation carrying a MAC
 * (functions/api/deferred-jobs.ts). Its role holds no STS and no IAM action: whoever gets
 * past this function can write to the state table and start a worker job, nothing more.
 */
import { type LambdaInvoke, signedLambdaInvoke } from '../adapters/aws/lambda-invoke.ts';
import {
  approvalReading,
  breakglassRequesting,
  Composition,
  campaignAuthorizing,
  deliveryLedger,
  secrets,
} from '../adapters/composition.ts';
import { SlackResponder } from '../adapters/slack/responder.ts';
import { campaignApi } from '../api/campaigns.ts';
import { type DeferredJob, signDeferredJob } from '../api/deferred-jobs.ts';
import type { ApiDeps } from '../api/deps.ts';
import {
  type ApiEvent,
  ApiEventSchema,
  type ApiResult,
  errorAnswer,
  errorResult,
  json,
  refuseOversizedBody,
  requestIdOf,
} from '../api/responses.ts';
import { slackCommand, slackInteraction } from '../api/slack.ts';
import { KeywardenError } from '../core/errors.ts';
import type { CampaignLauncher } from '../core/ports.ts';
import type { SecretValue } from '../core/secret-value.ts';
import { KEYWARDEN_ENV, lambdaEnv, requireEnv } from './env.ts';
import { loadLambdaConfig, readSlackSigningSecret } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

/**
 * Slack's two routes, run as the API's router runs them (functions/api/routes.ts); API Gateway
 * routes nothing else here (`POST /slack/*`), and anything else is 404. The ingress calls them
 * directly rather than through the router, whose table holds every route of the API and the
 * code behind each (CI exchange, approvals, campaign planning: ~35 kB of this bundle).
 */
const SLACK_ROUTES: ReadonlyMap<string, (deps: ApiDeps, event: ApiEvent) => Promise<ApiResult>> = new Map([
  ['/slack/commands', slackCommand],
  ['/slack/interactions', slackInteraction],
]);

/** The paths this function serves. */
export const SLACK_PATHS: readonly string[] = [...SLACK_ROUTES.keys()];

/** Ingress answers Slack; campaigns are planned and launched by the worker, never here. */
export const noLaunchFromIngress: CampaignLauncher = {
  launch: async () => {
    throw new KeywardenError('Slack ingress does not launch campaigns: the Slack worker does');
  },
};

/** The ingress handler: Slack's routes only, through the same gate and routing as the API. */
export function makeHandler(deps: ApiDeps) {
  return wrap(
    {
      event: ApiEventSchema,
      expected: 'an API Gateway HTTP API event (payload format 2.0)',
      answer: (error, event) => errorResult(error, requestIdOf(event), deps.log ?? console.error),
    },
    async (event): Promise<ApiResult> => {
      const route = SLACK_ROUTES.get(event.rawPath ?? '');
      if (!route) {
        return json(404, { error: { code: 'not-found', message: 'this function serves /slack/* only' } });
      }
      // As the router: a body over 1 MB is 413, and a method but POST has no route.
      refuseOversizedBody(event);
      const method = event.requestContext.http.method.toUpperCase();
      if (method !== 'POST') {
        return errorAnswer(404, 'not-found', `no route ${method} ${JSON.stringify(event.rawPath)}`);
      }
      return route(deps, event);
    },
  );
}

/** Hands a job to the worker: an asynchronous invocation (failures land in its dead-letter queue). */
export function handOff(invoke: LambdaInvoke, workerFunction: string, signingSecret: SecretValue) {
  return async (job: DeferredJob): Promise<void> => {
    await invoke(workerFunction, JSON.stringify(signDeferredJob(signingSecret, job)), 'Event');
  };
}

/** The Lambda entry point. */
export const handler = entryPoint(async () => {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  const signingSecret = await readSlackSigningSecret(composition.get(secrets));
  const worker = requireEnv(KEYWARDEN_ENV.slackWorkerFunctionArn);
  const responder = new SlackResponder();
  const deps: ApiDeps = {
    // Requests are answered here; approvals, credentials and campaign plans are the worker's.
    breakglass: composition.get(breakglassRequesting),
    // Artifact approvals: the ingress checks `/approve`'s approvers, the worker records the click.
    approvals: composition.get(approvalReading),
    acceptLocalPrincipals: false,
    campaigns: campaignApi(composition.get(campaignAuthorizing), noLaunchFromIngress),
    region: env.region,
    vaultAddr: undefined,
    report: () => Promise.reject(new KeywardenError('Slack ingress serves no reports')),
    slack: {
      signingSecret,
      ledger: composition.get(deliveryLedger),
      respond: (url, message) => responder.respond(url, message),
      defer: handOff(signedLambdaInvoke(config.aws), worker, signingSecret),
    },
  };
  return makeHandler(deps);
});
