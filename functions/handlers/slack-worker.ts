/**
 * The Slack worker: runs the deferred jobs Slack ingress hands it by asynchronous invocation
 * (a button click's approve or deny, a `/revoke` and its progress), after Slack got its
 * 3-second answer. Each job's MAC is checked first (functions/api/deferred-jobs.ts). Lambda
 * does not retry these invocations (a job acts once: a retry could start a second campaign);
 * one that fails goes to the deferred-jobs dead-letter queue with its alarm, and
 * runbooks/break-glass.md says how to read and re-drive it.
 *
 * `/revoke` progress is a thread under the first message when the bot token secret holds a
 * bot token (`xoxb-…`), else it goes to the command's response_url.
 */
import { stepFunctionsLauncher } from '../adapters/campaign-launcher.ts';
import {
  approvals,
  breakglass,
  Composition,
  campaignPlanning,
  deliveryLedger,
  secrets,
} from '../adapters/composition.ts';
import { SlackResponder } from '../adapters/slack/responder.ts';
import { isBotToken, WebApiThreadPoster } from '../adapters/slack/web-api-poster.ts';
import { campaignApi } from '../api/campaigns.ts';
import { verifyDeferredJob } from '../api/deferred-jobs.ts';
import { type DeferredDeps, runDeferred } from '../api/slack.ts';
import { KeywardenError } from '../core/errors.ts';
import { SecretValue } from '../core/secret-value.ts';
import { inLambda } from './api.ts';
import { KEYWARDEN_ENV, lambdaEnv, requireEnv } from './env.ts';
import { loadLambdaConfig, readSecret, readSlackSigningSecret } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

/** How long before the function's timeout a job stops following its campaign. */
const STOP_BEFORE_TIMEOUT_MS = 10_000;

/** Runs one deferred job, its MAC checked first; a failure is thrown (to the dead-letter queue). */
export function makeHandler(deps: DeferredDeps) {
  return wrap({}, async (event, context): Promise<undefined> => {
    if (!deps.slack) throw new KeywardenError('a deferred Slack job arrived but Slack is not configured');
    const job = verifyDeferredJob(deps.slack.signingSecret, event);
    const remaining = context?.getRemainingTimeInMillis?.();
    const left = remaining === undefined ? 60_000 : remaining - STOP_BEFORE_TIMEOUT_MS;
    await runDeferred({ ...deps, progress: { everyMs: 20_000, deadlineMs: Math.max(0, left) } }, job);
    return undefined;
  });
}

/** The Lambda entry point. */
export const handler = entryPoint(async () => {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  const signingSecret = await readSlackSigningSecret(composition.get(secrets));
  const botToken = env.slackBotTokenSecretArn
    ? await readSecret(composition.get(secrets), env.slackBotTokenSecretArn)
    : undefined;
  const responder = new SlackResponder();
  const launcher = stepFunctionsLauncher(config.aws, requireEnv(KEYWARDEN_ENV.revocationStateMachineArn));
  return makeHandler({
    breakglass: composition.get(breakglass),
    // Artifact approvals: the ingress checks `/approve`'s approvers, the worker records the click.
    approvals: composition.get(approvals),
    ...inLambda(config),
    campaigns: campaignApi(composition.get(campaignPlanning), launcher),
    slack: {
      signingSecret,
      ledger: composition.get(deliveryLedger),
      respond: (url, message) => responder.respond(url, message),
      defer: async () => {
        throw new KeywardenError('the Slack worker runs jobs, it does not defer them');
      },
    },
    thread:
      botToken !== undefined && isBotToken(botToken)
        ? new WebApiThreadPoster({ botToken: new SecretValue(botToken) })
        : undefined,
  });
});
