/**
 * Deferred Slack jobs: work Slack must not wait for (a button click's decision, an artifact
 * approval, `/revoke`), done after the 3-second answer by an asynchronous invocation of the API
 * function itself,
 * with the outcome posted to the job's `response_url` (or, for `/revoke` with a bot token,
 * as a thread in the command's channel). In AWS the Slack ingress function hands jobs to the
 * worker; an invocation that fails lands in the deferred-jobs dead-letter queue, whence the
 * runbook re-drives it (runbooks/break-glass.md): the MAC has no expiry, so the payload of
 * the dead-letter message can be invoked again as it is. A job acts as a Slack user, and
 * whoever may invoke the function (not only API Gateway) could otherwise forge one: each
 * carries a MAC keyed with the Slack signing secret, which only keywarden and Slack hold.
 * What a job does is in slack.ts (`runDeferred`).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as z from 'zod';
import { canonicalJson } from '../core/canonical-json.ts';
import { ValidationError } from '../core/errors.ts';
import { RefusalError } from '../core/grant.ts';
import type { SecretValue } from '../core/secret-value.ts';

/** Work Slack must not wait for: done after the 3-second answer, its outcome posted to `responseUrl`. */
export const DeferredJobSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('decide'),
    action: z.enum(['approve', 'deny']),
    grantId: z.string().min(1),
    userId: z.string().min(1),
    responseUrl: z.string().min(1),
  }),
  z.strictObject({
    kind: z.literal('revoke'),
    incident: z.string().min(1),
    selectors: z.array(z.string().min(1)).min(1),
    reissue: z.boolean(),
    userId: z.string().min(1),
    responseUrl: z.string().min(1),
    /** Where the progress thread goes when a bot token is set (the command's channel). */
    channelId: z.string().min(1).max(32).optional(),
  }),
  /** A click on Approve under an artifact approval request (`/approve`): recorded through ci-approval.ts. */
  z.strictObject({
    kind: z.literal('approve-artifact'),
    digest: z.string().min(1),
    gate: z.string().min(1),
    environment: z.string().min(1),
    userId: z.string().min(1),
    responseUrl: z.string().min(1),
  }),
]);
export type DeferredJob = z.infer<typeof DeferredJobSchema>;

/** The invocation payload of a deferred job: the job and its MAC. */
const SignedDeferredJobSchema = z.object({ keywardenDeferred: DeferredJobSchema, mac: z.string() });
export type SignedDeferredJob = z.infer<typeof SignedDeferredJobSchema>;

/** The MAC that makes a deferred job trustworthy (see the module comment). */
export function deferredJobMac(signingSecret: SecretValue, job: DeferredJob): string {
  return createHmac('sha256', signingSecret.reveal())
    .update(`keywarden-deferred:${canonicalJson(job)}`)
    .digest('hex');
}

/** The payload of the asynchronous invocation that runs `job`. */
export const signDeferredJob = (signingSecret: SecretValue, job: DeferredJob): SignedDeferredJob => ({
  keywardenDeferred: job,
  mac: deferredJobMac(signingSecret, job),
});

/** A deferred job with a valid MAC, or a refusal. */
export function verifyDeferredJob(signingSecret: SecretValue, event: unknown): DeferredJob {
  const parsed = SignedDeferredJobSchema.safeParse(event);
  if (!parsed.success)
    throw new ValidationError('expected a deferred Slack job with its MAC; refusing the invocation');
  const expected = Buffer.from(deferredJobMac(signingSecret, parsed.data.keywardenDeferred));
  const given = Buffer.from(parsed.data.mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    throw new RefusalError('a deferred Slack job arrived with a MAC that does not match; refusing it');
  }
  return parsed.data.keywardenDeferred;
}
