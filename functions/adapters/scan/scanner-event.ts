/**
 * The two events the deployed exposure scanner (functions/handlers/exposure-scanner.ts) is
 * handed, both asynchronously, told apart and checked here:
 *
 * - a CloudWatch Logs subscription batch, decoded by aws/cloudwatch-logs-payload.ts, whose log
 *   events become the texts to scan ({@link scanInputsOf});
 * - the finished CI job the API hands over after a job-completion webhook
 *   ({@link FinishedJobEventSchema}: ids and names only, never a token or a log line), whose
 *   log is read through its platform's API. The API builds that event from the type alone
 *   (functions/api/job-log-hand-off.ts), so its bundle carries none of these schemas.
 *
 * Nothing of an event's content is quoted in an error: a log batch may hold the very credential
 * looked for.
 */
import * as z from 'zod';
import { ValidationError } from '../../core/errors.ts';
import type { ScanInput } from '../../core/exposure-batch.ts';
import type { ExposureSource } from '../../core/exposure-types.ts';
import { type DecodedLogs, decodeLogsEvent } from '../aws/cloudwatch-logs-payload.ts';
import type { FinishedJob } from './finished-job-log.ts';

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

/** What the scanner is handed: a CloudWatch Logs batch, or a finished job from the API. */
export type ScannerEvent =
  | { source: 'cloudwatch-logs'; logs: DecodedLogs }
  | { source: 'finished-job'; job: FinishedJob };

const EXPECTED_EVENT =
  'a CloudWatch Logs subscription event {awslogs: {data}} or a finished CI job handed over by the API {finishedJob: {platform: "github", repository, jobId} | {platform: "gitlab", project, jobId}}';

const keysOf = (event: unknown): string =>
  typeof event === 'object' && event !== null && !Array.isArray(event)
    ? `an object with ${
        Object.keys(event).length
          ? Object.keys(event)
              .slice(0, 5)
              .map((k) => JSON.stringify(k.slice(0, 32)))
              .join(', ')
          : 'no key'
      }`
    : Array.isArray(event)
      ? 'an array'
      : event === null
        ? 'null'
        : typeof event;

/**
 * Tells the two events apart and checks each against its schema; nothing of the event's content
 * is quoted in an error (a log batch may hold the very credential looked for).
 *
 * @throws ValidationError saying what was expected and what was received.
 */
export function decodeScannerEvent(event: unknown): ScannerEvent {
  const has = (key: string) => typeof event === 'object' && event !== null && key in event;
  if (has('awslogs')) return { source: 'cloudwatch-logs', logs: decodeLogsEvent(event) };
  if (!has('finishedJob')) throw new ValidationError(`expected ${EXPECTED_EVENT}, got ${keysOf(event)}`);
  const parsed = FinishedJobEventSchema.safeParse(event);
  if (!parsed.success) {
    throw new ValidationError(
      `expected ${EXPECTED_EVENT}, got ${parsed.error.issues
        .map((issue) => `${issue.path.join('.') || '(event)'}: ${issue.message}`)
        .join('; ')}`,
    );
  }
  return { source: 'finished-job', job: parsed.data.finishedJob };
}

/** The lines of a text as `split('\n')` counts them, without making them (a job log may be 50 MB). */
export function lineCount(text: string): number {
  let lines = 1;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines += 1;
  return lines;
}

/** The texts of a batch: one per log event, located at its group/stream and numbered by its index. */
export function scanInputsOf(logs: Extract<DecodedLogs, { messageType: 'DATA_MESSAGE' }>): ScanInput[] {
  const source: ExposureSource = { kind: 'cloudwatch-logs', location: `${logs.logGroup}/${logs.logStream}` };
  return logs.events.map((event, index) => ({ source, text: event.message, line: index + 1 }));
}
