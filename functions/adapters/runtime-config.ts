import * as z from 'zod';
import { DurationSchema } from '../core/duration.ts';

/**
 * Everything the adapters need to reach the outside world. Built from a file by the
 * local runtime and from environment variables by the Lambda handlers.
 */
export const RuntimeConfigSchema = z.object({
  aws: z.object({
    region: z.string().min(1),
    endpoint: z.url().optional(),
    /** DynamoDB's own endpoint, when it is not `endpoint` (the local stack's dynalite). */
    dynamodbEndpoint: z.url().optional(),
    credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string() }).optional(),
  }),
  tableName: z.string().min(3),
  reportBucket: z.string().optional(),
  /** Key of the HMAC that fingerprints credential values. */
  fingerprintKey: z.string().min(32),
  staleAfter: DurationSchema.default('90d'),
  /** Vault / OpenBao; without it, Vault kinds are neither discovered nor rotated. */
  vault: z
    .object({
      addr: z.url(),
      token: z.string().min(1),
      approleMounts: z.array(z.string()).default(['approle']),
      kvPrefixes: z.array(z.string()).default(['secret/ci/']),
      /** The server's file audit log, where keywarden can read it (the local stack): grant usage. */
      auditLog: z.string().optional(),
    })
    .optional(),
  /** Where break-glass grants' one-time expiry schedules go and what they call. */
  breakglass: z
    .object({
      scheduleGroup: z.string().min(1).default('keywarden-grants'),
      /** The role EventBridge Scheduler assumes; locally moto only stores it. */
      scheduleRoleArn: z.string().default('arn:aws:iam::123456789012:role/keywarden-local-scheduler'),
      /** The grant-expiry function; locally the runtime fires due schedules itself. */
      expiryFunctionArn: z
        .string()
        .default('arn:aws:lambda:us-east-1:123456789012:function:keywarden-local-grant-expiry'),
      /** Seconds a wrapped Vault token waits to be unwrapped. */
      wrapTtlSeconds: z.coerce.number().int().min(10).max(3600).default(120),
    })
    .prefault({}),
  discovery: z.object({
    iamPathPrefix: z.string().startsWith('/').default('/'),
    secretNamePrefix: z.string().default('ci/'),
  }),
  /** CI job credentials: the approval key, the webhooks' secrets, where CI roles sit. */
  ci: z
    .object({
      /** The KMS key approvals are signed with (alias, id or ARN). */
      approvalKeyId: z.string().min(1).default('alias/keywarden-approvals'),
      /** GitHub's webhook secret (`X-Hub-Signature-256`) and GitLab's secret token (`X-Gitlab-Token`). */
      githubWebhookSecret: z.string().min(16).optional(),
      gitlabWebhookSecret: z.string().min(16).optional(),
      /** IAM paths a job grant's role must sit under (the role-deny door refuses others). */
      rolePaths: z.array(z.string().startsWith('/')).min(1).default(['/ci/']),
    })
    .prefault({}),
  /**
   * Where containment alerts go (issue #14): the alert topic, and a Slack channel posted to as
   * the app's bot; neither, and nobody is told (the CLI still prints its alert line).
   */
  alerts: z
    .object({
      topicArn: z.string().startsWith('arn:').optional(),
      slack: z
        .object({
          /** The bot token (`xoxb-…`, `chat:write`): a secret, like vault.token in this file. */
          botToken: z.string().min(1),
          channel: z
            .string()
            .regex(/^[A-Z0-9]{2,32}$/, { error: 'expected a Slack channel id such as C0123456789' }),
          /** Slack's Web API base; a local stand-in in tests. */
          apiUrl: z.url().optional(),
        })
        .optional(),
    })
    .prefault({}),
  /** Identities rotated at once by one run. */
  rotationConcurrency: z.coerce.number().int().min(1).max(64).default(8),
});
export type RuntimeConfig = z.infer<typeof RuntimeConfigSchema>;
export type RuntimeConfigInput = z.input<typeof RuntimeConfigSchema>;
