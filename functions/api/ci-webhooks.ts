/**
 * The job-completion webhooks, keywarden's backstop for a job whose post step never ran (a
 * cancelled run, a killed runner): GitHub's `workflow_job` event and GitLab's Job Hook each say
 * a job ended, and every credential of that job is ended then (the lead's routes
 * `POST /ci/webhooks/github|gitlab` call these, then end the job's credentials).
 *
 * Pure parsing and verification, no I/O:
 * - GitHub signs each delivery: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`
 *   with the webhook's secret. The check runs over the body exactly as received, in constant time.
 * - GitLab sends the webhook's secret token as is in `X-Gitlab-Token`; it is compared in
 *   constant time (both sides hashed first, so a length difference tells nothing either).
 *
 * The job ids come back keyed by the preset's job claims (ci-policy.ts `PRESETS`), as text, the
 * way the job's OIDC token carries them: `jobOf(issuer, ids).key` is then the same job key the
 * exchange recorded. No message here holds a secret or the signature keywarden expected.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import * as z from 'zod';
import { ValidationError } from '../core/errors.ts';
import type { SecretValue } from '../core/secret-value.ts';

/** Header names as they arrive after lower-casing (API Gateway and node:http both lower-case them). */
export const GITHUB_SIGNATURE_HEADER = 'x-hub-signature-256';
export const GITHUB_EVENT_HEADER = 'x-github-event';
/** GitHub's id of one delivery (the same on a redelivery): a key to drop duplicates by. */
export const GITHUB_DELIVERY_HEADER = 'x-github-delivery';
export const GITLAB_TOKEN_HEADER = 'x-gitlab-token';
export const GITLAB_EVENT_HEADER = 'x-gitlab-event';
/** GitLab's id of one delivery (`X-Gitlab-Event-UUID`). */
export const GITLAB_DELIVERY_HEADER = 'x-gitlab-event-uuid';

export type WebhookRejection = 'missing-signature' | 'bad-signature';

/** The outcome of a check; a refusal's message is for the operator's log and never holds the secret. */
export type WebhookVerification = { ok: true } | { ok: false; reason: WebhookRejection; message: string };

const refuse = (reason: WebhookRejection, message: string): WebhookVerification => ({
  ok: false,
  reason,
  message,
});

/** A header value as the operator may see it: attacker-controlled, so shortened and quoted. */
const shown = (value: string): string => JSON.stringify(value.length > 16 ? `${value.slice(0, 16)}…` : value);

/**
 * The `X-Hub-Signature-256` value GitHub sends for this body: how tests and end-to-end
 * scenarios sign a delivery.
 */
export function signGithubPayload(rawBody: string, secret: SecretValue): string {
  return `sha256=${createHmac('sha256', secret.reveal()).update(rawBody, 'utf8').digest('hex')}`;
}

/**
 * Checks a GitHub delivery's `X-Hub-Signature-256` against the raw body (exactly as received:
 * not parsed, not re-encoded). Never throws on malformed input.
 */
export function verifyGithubSignature(
  rawBody: string,
  header: string | undefined,
  secret: SecretValue,
): WebhookVerification {
  const signature = header?.trim();
  if (!signature) {
    return refuse(
      'missing-signature',
      "expected an X-Hub-Signature-256 header on a GitHub webhook delivery, got none; set the webhook's secret in GitHub (Settings → Webhooks → Secret) to the one keywarden holds",
    );
  }
  if (!/^sha256=[0-9a-f]{64}$/i.test(signature)) {
    return refuse(
      'bad-signature',
      `expected X-Hub-Signature-256 as sha256=<64 hex digits>, got ${shown(signature)}`,
    );
  }
  const expected = Buffer.from(signGithubPayload(rawBody, secret).slice('sha256='.length), 'hex');
  const received = Buffer.from(signature.slice('sha256='.length), 'hex');
  if (!timingSafeEqual(expected, received)) {
    return refuse(
      'bad-signature',
      "the X-Hub-Signature-256 does not match the delivery's body; check that the webhook's secret in GitHub is the one keywarden holds and that the body reaches keywarden unmodified",
    );
  }
  return { ok: true };
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Checks a GitLab delivery's `X-Gitlab-Token` against the webhook's secret token, in constant time. */
export function verifyGitlabToken(header: string | undefined, secret: SecretValue): WebhookVerification {
  if (!header) {
    return refuse(
      'missing-signature',
      "expected an X-Gitlab-Token header on a GitLab webhook delivery, got none; set the webhook's secret token in GitLab (Settings → Webhooks → Secret token) to the one keywarden holds",
    );
  }
  // Hashing both sides makes the compare constant-time whatever the lengths.
  if (!timingSafeEqual(digest(header), digest(secret.reveal()))) {
    return refuse(
      'bad-signature',
      "the X-Gitlab-Token does not match the webhook's secret token keywarden holds; check the webhook's settings in GitLab",
    );
  }
  return { ok: true };
}

/** An id as GitHub and GitLab send it (a positive integer), as the text a token's claim carries. */
const Id = z.union([z.int().positive(), z.string().regex(/^\d+$/)]).transform(String);

/** The parts of GitHub's `workflow_job` event keywarden reads (the rest is ignored). */
export const GithubWorkflowJobEventSchema = z.looseObject({
  action: z.string(),
  workflow_job: z.looseObject({
    /** The job's id, which is also its check run's id (the token's `check_run_id`). */
    id: Id,
    run_id: Id,
    run_attempt: Id,
    check_run_url: z.string().optional(),
    status: z.string().optional(),
    conclusion: z.string().nullable().optional(),
    name: z.string().optional(),
  }),
  repository: z.looseObject({ id: Id, full_name: z.string().optional() }),
});
export type GithubWorkflowJobEvent = z.infer<typeof GithubWorkflowJobEventSchema>;

/** A GitHub job's ids, keyed by the github preset's job claims. */
export interface GithubJobIds {
  repository_id: string;
  run_id: string;
  run_attempt: string;
  check_run_id: string;
  [claim: string]: string;
}

/** A GitLab job's ids, keyed by the gitlab preset's job claims. */
export interface GitlabJobIds {
  project_id: string;
  job_id: string;
  [claim: string]: string;
}

const problem = (issues: z.core.$ZodIssue[]): string =>
  issues.map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; ');

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The ids of the job a GitHub delivery says has ended: a `workflow_job` event with
 * `action: completed`. Any other event or action (queued, in_progress, waiting, a ping) is
 * undefined: nothing to end.
 * @throws ValidationError for a completed `workflow_job` event without the ids (what is missing is named).
 */
export function githubJobEnded(payload: unknown): GithubJobIds | undefined {
  if (!isObject(payload) || !isObject(payload.workflow_job) || payload.action !== 'completed')
    return undefined;
  const parsed = GithubWorkflowJobEventSchema.safeParse(payload);
  if (!parsed.success) {
    throw new ValidationError(
      `expected a completed workflow_job event with the job's ids (workflow_job.id, run_id, run_attempt, repository.id), got ${problem(parsed.error.issues)}`,
    );
  }
  const job = parsed.data.workflow_job;
  // The check run URL ends with the job's id; a payload where they differ is not GitHub's.
  const fromUrl = job.check_run_url?.match(/\/check-runs\/(\d+)$/)?.[1];
  if (fromUrl !== undefined && fromUrl !== job.id) {
    throw new ValidationError(
      `expected workflow_job.check_run_url to end with the job's id ${job.id}, got one ending with ${fromUrl}`,
    );
  }
  return {
    repository_id: parsed.data.repository.id,
    run_id: job.run_id,
    run_attempt: job.run_attempt,
    check_run_id: job.id,
  };
}

/** The job statuses after which a GitLab job runs no more. */
export const GITLAB_FINAL_STATUSES = ['success', 'failed', 'canceled', 'skipped'] as const;

/** The parts of GitLab's Job Hook keywarden reads (`object_kind: build`; the rest is ignored). */
export const GitlabJobEventSchema = z.looseObject({
  object_kind: z.literal('build'),
  build_id: Id,
  build_status: z.string(),
  build_name: z.string().optional(),
  project_id: Id,
  pipeline_id: Id.optional(),
});
export type GitlabJobEvent = z.infer<typeof GitlabJobEventSchema>;

/**
 * The ids of the job a GitLab Job Hook says has ended: `build_status` success, failed, canceled
 * or skipped. Any other status (created, pending, running, manual, canceling) or event is undefined.
 * @throws ValidationError for a Job Hook without the ids (what is missing is named).
 */
export function gitlabJobEnded(payload: unknown): GitlabJobIds | undefined {
  if (!isObject(payload) || payload.object_kind !== 'build') return undefined;
  const parsed = GitlabJobEventSchema.safeParse(payload);
  if (!parsed.success) {
    throw new ValidationError(
      `expected a Job Hook with the job's ids (build_id, project_id) and build_status, got ${problem(parsed.error.issues)}`,
    );
  }
  const ended = (GITLAB_FINAL_STATUSES as readonly string[]).includes(parsed.data.build_status);
  return ended ? { project_id: parsed.data.project_id, job_id: parsed.data.build_id } : undefined;
}
