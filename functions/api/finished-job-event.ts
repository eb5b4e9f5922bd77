/**
 * The event the API hands the deployed exposure scanner after a CI job-completion webhook (an
 * asynchronous Lambda invocation, `functions/handlers/exposure-scanner.ts`): the finished job
 * whose log to read through its platform's API and scan. Ids and names only; never a token or a
 * log line. Its own module, imported by the scanner only: the API function builds the event from
 * the type alone, so its bundle (and the Slack functions', which route through ci-webhooks.ts)
 * carries none of these schemas.
 */
import * as z from 'zod';

/** A job id as the platforms number them, kept as given (GitHub's `workflow_job.id`, GitLab's `build_id`). */
const JobNumber = z.union([z.int().positive(), z.string().regex(/^\d+$/)]);

/** The finished job handed over: GitHub's repository and job id, or GitLab's project and job id. */
export const FinishedJobEventSchema = z.strictObject({
  finishedJob: z.discriminatedUnion('platform', [
    z.strictObject({
      platform: z.literal('github'),
      /** `owner/repo`. */
      repository: z.string().regex(/^[\w.-]+\/[\w.-]+$/, { error: 'expected OWNER/REPO' }),
      jobId: JobNumber,
    }),
    z.strictObject({
      platform: z.literal('gitlab'),
      /** The project's id, or its path (`group/project`). */
      project: z.union([z.int().positive(), z.string().regex(/^[\w.-]+(?:\/[\w.-]+)*$/)]),
      jobId: JobNumber,
    }),
  ]),
});
export type FinishedJobEvent = z.infer<typeof FinishedJobEventSchema>;
