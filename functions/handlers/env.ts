/**
 * The environment contract between the CDK stack (infra/) and the Lambda handlers: every
 * `KEYWARDEN_*` variable a keywarden function reads, named once here. The constructs build each
 * function's `environment` with {@link functionEnvironment} (a misspelt setting does not compile);
 * the handlers read it once at cold start with {@link lambdaEnv}, which checks it with
 * {@link LambdaEnvSchema}.
 *
 * This is one of the two modules under functions/ that infra may import (.dependency-cruiser.cjs).
 */
import * as z from 'zod';
import { ROLE_DENY_FUNCTION_ENV } from '../adapters/aws/role-deny-client.ts';
import { RateLimitsSchema, rateLimitEnvNames } from '../adapters/rate-limits.ts';
import { KeywardenError } from '../core/errors.ts';
import { PROVIDER_SERVICES, type ProviderService } from '../core/kinds.ts';

/** The variables the CDK stack sets, by the setting each one carries. */
export const KEYWARDEN_ENV = {
  /** The state table. */
  table: 'KEYWARDEN_TABLE',
  /** The report bucket; without it reports stay unwritten (the revocation plan step refuses to run). */
  reportBucket: 'KEYWARDEN_REPORT_BUCKET',
  /** Key prefix of discovery reports in the report bucket. */
  reportPrefix: 'KEYWARDEN_REPORT_PREFIX',
  /** Vault/OpenBao address; empty: Vault is not used. */
  vaultAddr: 'KEYWARDEN_VAULT_ADDR',
  /** The secret holding keywarden's Vault token (read when a Vault address is set). */
  vaultTokenSecretArn: 'KEYWARDEN_VAULT_TOKEN_SECRET_ARN',
  /** The secret holding the fingerprint HMAC key. */
  fingerprintKeySecretArn: 'KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN',
  /** The secret holding Slack's signing secret (the API only). */
  slackSigningSecretArn: 'KEYWARDEN_SLACK_SIGNING_SECRET_ARN',
  iamPathPrefix: 'KEYWARDEN_IAM_PATH_PREFIX',
  secretNamePrefix: 'KEYWARDEN_SECRET_NAME_PREFIX',
  /** Days without use after which discovery reports a credential as stale. */
  staleAfterDays: 'KEYWARDEN_STALE_AFTER_DAYS',
  /** Identities one scheduled rotation run rotates at once. */
  rotationConcurrency: 'KEYWARDEN_ROTATION_CONCURRENCY',
  grantScheduleGroup: 'KEYWARDEN_GRANT_SCHEDULE_GROUP',
  grantScheduleRoleArn: 'KEYWARDEN_GRANT_SCHEDULE_ROLE_ARN',
  grantExpiryFunctionArn: 'KEYWARDEN_GRANT_EXPIRY_FUNCTION_ARN',
  /** The revocation state machine the API starts campaigns in. */
  revocationStateMachineArn: 'KEYWARDEN_REVOCATION_STATE_MACHINE_ARN',
  /** The role-deny function, the only holder of iam:PutRolePolicy (its callers invoke it). */
  roleDenyFunctionArn: ROLE_DENY_FUNCTION_ENV,
  /** The role-deny function's own setting: the IAM paths whose roles it may change, comma-separated. */
  roleDenyPaths: 'KEYWARDEN_ROLE_DENY_PATHS',
  /** The function Slack ingress hands deferred jobs to (asynchronously). */
  slackWorkerFunctionArn: 'KEYWARDEN_SLACK_WORKER_FUNCTION_ARN',
  /** The secret holding the Slack app's bot token (`xoxb-…`); anything else: progress goes to response_url. */
  slackBotTokenSecretArn: 'KEYWARDEN_SLACK_BOT_TOKEN_SECRET_ARN',
  /** CI credentials: the KMS key (ECC_NIST_P256, SIGN_VERIFY) approvals are signed and verified with. */
  approvalKeyId: 'KEYWARDEN_APPROVAL_KEY_ID',
  /** CI credentials: the secret holding the GitHub webhook secret (`X-Hub-Signature-256`). */
  githubWebhookSecretArn: 'KEYWARDEN_GITHUB_WEBHOOK_SECRET_ARN',
  /** CI credentials: the secret holding the GitLab webhook secret token (`X-Gitlab-Token`). */
  gitlabWebhookSecretArn: 'KEYWARDEN_GITLAB_WEBHOOK_SECRET_ARN',
  /** CI credentials: the IAM path of the roles job grants may assume (`/ci/`). */
  ciRolePath: 'KEYWARDEN_CI_ROLE_PATH',
  /** The exposure scanner the API hands finished CI jobs to (asynchronously), when both are deployed. */
  exposureScannerFunctionArn: 'KEYWARDEN_EXPOSURE_SCANNER_FUNCTION_ARN',
  /** The exposure scanner: the secret holding the GitHub and GitLab tokens it reads job logs with (JSON `{"github", "gitlab"}`). */
  forgeTokensSecretArn: 'KEYWARDEN_FORGE_TOKENS_SECRET_ARN',
  /** The exposure scanner: GitHub's REST API root. @default https://api.github.com */
  githubApiUrl: 'KEYWARDEN_GITHUB_API_URL',
  /** The exposure scanner: the GitLab instance's URL. @default https://gitlab.com */
  gitlabUrl: 'KEYWARDEN_GITLAB_URL',
  /** The exposure scanner: the SNS topic containment alerts are published to. */
  exposureAlertTopicArn: 'KEYWARDEN_EXPOSURE_ALERT_TOPIC_ARN',
  /** The exposure scanner: the Slack channel id containment alerts are posted to (with the bot token). */
  exposureAlertChannel: 'KEYWARDEN_EXPOSURE_ALERT_CHANNEL',
} as const;

/** A setting the CDK stack passes to a function. */
export type KeywardenEnvKey = keyof typeof KEYWARDEN_ENV;

/** The variables the Lambda runtime itself sets, which the handlers read too. */
export const LAMBDA_RUNTIME_ENV = {
  region: 'AWS_REGION',
  functionName: 'AWS_LAMBDA_FUNCTION_NAME',
} as const;

const NOT_SET = 'is not set';
const required = z.string({ error: NOT_SET }).min(1, { error: NOT_SET });
const optional = z.string().optional();

/**
 * What a keywarden function reads from its environment: strings as set (empty ones count as
 * unset), checked for presence only. The values are checked for meaning where they are used
 * (`RuntimeConfigSchema`), as for the local runtime's configuration file.
 */
export const LambdaEnvSchema = z
  .object({
    region: required,
    functionName: optional,
    table: required,
    fingerprintKeySecretArn: required,
    reportBucket: optional,
    reportPrefix: optional,
    vaultAddr: optional,
    vaultTokenSecretArn: optional,
    slackSigningSecretArn: optional,
    iamPathPrefix: optional,
    secretNamePrefix: optional,
    staleAfterDays: optional,
    rotationConcurrency: optional,
    grantScheduleGroup: optional,
    grantScheduleRoleArn: optional,
    grantExpiryFunctionArn: optional,
    revocationStateMachineArn: optional,
    roleDenyFunctionArn: optional,
    roleDenyPaths: optional,
    slackWorkerFunctionArn: optional,
    slackBotTokenSecretArn: optional,
    approvalKeyId: optional,
    githubWebhookSecretArn: optional,
    gitlabWebhookSecretArn: optional,
    ciRolePath: optional,
    exposureScannerFunctionArn: optional,
    forgeTokensSecretArn: optional,
    githubApiUrl: optional,
    gitlabUrl: optional,
    exposureAlertTopicArn: optional,
    exposureAlertChannel: optional,
  } satisfies Record<KeywardenEnvKey | keyof typeof LAMBDA_RUNTIME_ENV, z.ZodType>)
  .superRefine((env, ctx) => {
    // The token is read only when there is a Vault to use it with.
    if (env.vaultAddr !== undefined && env.vaultTokenSecretArn === undefined) {
      ctx.addIssue({ code: 'custom', path: ['vaultTokenSecretArn'], message: NOT_SET });
    }
  });
export type LambdaEnv = z.infer<typeof LambdaEnvSchema>;

const ENV_NAMES: Record<keyof LambdaEnv, string> = { ...KEYWARDEN_ENV, ...LAMBDA_RUNTIME_ENV };

/**
 * The function's environment, read and checked once (call it at cold start).
 *
 * @throws KeywardenError naming the first variable missing and what sets it.
 */
export function lambdaEnv(env: NodeJS.ProcessEnv = process.env): LambdaEnv {
  const read = Object.fromEntries(
    Object.entries(ENV_NAMES).map(([key, name]) => [key, env[name] || undefined]),
  );
  const parsed = LambdaEnvSchema.safeParse(read);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const name = ENV_NAMES[issue?.path[0] as keyof LambdaEnv] ?? String(issue?.path[0]);
  throw new KeywardenError(
    `environment variable ${name} ${issue?.message ?? NOT_SET}; expected the value the CDK stack (infra/) gives this function`,
  );
}

/** One provider service's revocation budget for one worker, as the revoke-batch function is given it. */
export interface ServiceLimitSetting {
  readonly concurrency: number;
  readonly perSecond: number;
}

/** What a construct passes to {@link functionEnvironment}: the settings, by their contract name. */
export type FunctionEnvironmentSettings = { readonly [K in KeywardenEnvKey]?: string } & {
  /** The revoke-batch worker's limits (functions/adapters/rate-limits.ts reads them). */
  readonly rateLimits?: Readonly<Record<ProviderService, ServiceLimitSetting>>;
};

/**
 * Checks limits a construct passes as `rateLimits` as the function will read them
 * (adapters/rate-limits.ts), so a bad one fails the synth, not every cold start of the function.
 *
 * @throws KeywardenError naming what is wrong and what is expected.
 */
export function checkRateLimits(limits: Readonly<Record<ProviderService, ServiceLimitSetting>>): void {
  const checked = RateLimitsSchema.safeParse(limits);
  if (checked.success) return;
  throw new KeywardenError(
    `rateLimits: expected for each of ${PROVIDER_SERVICES.join(', ')} a whole concurrency from 1 to 256 and a perSecond from 1 to 10000 with at most one decimal; ${checked.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`,
  );
}

/**
 * A function's `environment` from its settings, under the variable names the handlers read, in
 * the order given. A setting given as `undefined` is left out; an empty string is kept (read as unset).
 */
export function functionEnvironment(settings: FunctionEnvironmentSettings): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings) as [keyof FunctionEnvironmentSettings, unknown][]) {
    if (key === 'rateLimits') {
      if (settings.rateLimits) checkRateLimits(settings.rateLimits);
      for (const service of PROVIDER_SERVICES) {
        const names = rateLimitEnvNames(service);
        const limit = settings.rateLimits?.[service];
        if (limit === undefined) continue;
        environment[names.concurrency] = String(limit.concurrency);
        environment[names.perSecond] = String(limit.perSecond);
      }
    } else if (typeof value === 'string') {
      environment[KEYWARDEN_ENV[key]] = value;
    }
  }
  return environment;
}

/**
 * A required environment variable; a missing one names itself and what sets it.
 * Prefer {@link lambdaEnv}, read once at cold start.
 */
export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (!value) {
    throw new KeywardenError(
      `environment variable ${name} is not set; expected the value the CDK stack (infra/) gives this function`,
    );
  }
  return value;
}

/**
 * An optional environment variable, `undefined` when empty.
 * Prefer {@link lambdaEnv}, read once at cold start.
 */
export const optionalEnv = (name: string, env: NodeJS.ProcessEnv = process.env): string | undefined =>
  env[name] || undefined;
