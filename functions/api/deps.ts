/** What the HTTP API runs on: given by the Lambda's cold start, or by the local runtime. */
import type { FinishedJob } from '../adapters/scan/finished-job-log.ts';
import type { SlackMessage } from '../adapters/slack/messages.ts';
import type { BreakglassDeps } from '../core/breakglass.ts';
import type { ApprovalDeps } from '../core/ci-approval.ts';
import type { CiExchangeDeps } from '../core/ci-exchange.ts';
import { NotFoundError } from '../core/errors.ts';
import type { DeliveryLedger } from '../core/ports.ts';
import type { SecretValue } from '../core/secret-value.ts';
import type { CampaignApi } from './campaigns.ts';
import type { DeferredJob } from './deferred-jobs.ts';

export interface SlackDeps {
  signingSecret: SecretValue;
  ledger: DeliveryLedger;
  /** Posts a message to a Slack `response_url` (checked against the allowed hosts). */
  respond: (responseUrl: string, message: SlackMessage) => Promise<void>;
  /** Runs a job after the answer: an async self-invocation in Lambda, a queued task locally. */
  defer: (job: DeferredJob) => Promise<void>;
}

/** CI job credentials: the exchange's ports, and the secrets the platforms sign webhooks with. */
export interface CiApiDeps {
  exchange: CiExchangeDeps;
  webhookSecrets: { github?: SecretValue | undefined; gitlab?: SecretValue | undefined };
  /**
   * Has a finished job's log scanned, after its completion webhook is answered: the local
   * runtime queues the scan (when GITHUB_TOKEN / GITLAB_TOKEN can read the logs), the API
   * function hands the job to the exposure scanner function (an asynchronous invocation).
   * Resolves once the job is handed over, not scanned; never rejects (a failed hand-off is
   * logged: the job's credentials are ended all the same). Undefined: logs are not scanned.
   */
  scanJobLog?: ((job: FinishedJob) => Promise<void>) | undefined;
}

/**
 * The routes' dependencies. Each capability's are optional: a function given none of a capability
 * serves none of its routes (a 404 names it), so the API's functions in AWS are each given only
 * their own (functions/handlers/api-*.ts), while the local runtime gives them all.
 */
export interface ApiDeps {
  /** Break-glass grants (`/roles`, `/grants…`) and Slack's `/breakglass`; undefined where this function serves none. */
  breakglass?: BreakglassDeps | undefined;
  /** Only the local runtime sets this: it is the one caller that checked a development token. */
  acceptLocalPrincipals: boolean;
  /** The AWS region sessions are valid in, and the Vault address wrapped tokens unwrap at. */
  region: string;
  vaultAddr?: string | undefined;
  /** The per-grant report (`/grants/{grantId}/report`); undefined where this function serves none. */
  report?: ((grantId: string) => Promise<{ report: unknown; markdown: string }>) | undefined;
  campaigns?: CampaignApi | undefined;
  slack?: SlackDeps | undefined;
  /** CI job credentials (`/ci/credentials`, `/ci/webhooks/*`); undefined where the deployment serves none. */
  ci?: CiApiDeps | undefined;
  /** Artifact approvals (`/ci/approvals…`, Slack `/approve`); undefined where the deployment serves none. */
  approvals?: ApprovalDeps | undefined;
  /** Where unexpected failures are logged (never a secret: keywarden's errors hold none). */
  log?: ((line: string) => void) | undefined;
  /** How `/revoke` posts progress: every `everyMs` until the campaign ends or `deadlineMs` passes. */
  progress?: { everyMs: number; deadlineMs: number } | undefined;
}

/** The capabilities a function may serve or not, as a 404 names them. */
const CAPABILITIES = {
  breakglass: 'break-glass grants',
  report: 'grant reports',
  campaigns: 'campaigns',
  ci: 'CI job credentials',
  approvals: 'artifact approvals',
} as const;

/**
 * A capability's part of `deps`, or a 404 naming it where this function serves none (another
 * capability's function, or a deployment without it: CI job credentials with no issuer).
 */
export function served<K extends keyof typeof CAPABILITIES>(
  deps: ApiDeps,
  capability: K,
): NonNullable<ApiDeps[K]> {
  const part = deps[capability];
  if (!part) throw new NotFoundError(`${CAPABILITIES[capability]} are not served by this deployment`);
  return part as NonNullable<ApiDeps[K]>;
}

export const breakglassOf = (deps: ApiDeps): BreakglassDeps => served(deps, 'breakglass');
export const reportOf = (deps: ApiDeps) => served(deps, 'report');
export const campaignsOf = (deps: ApiDeps): CampaignApi => served(deps, 'campaigns');
