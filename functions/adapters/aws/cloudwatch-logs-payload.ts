/**
 * What a CloudWatch Logs subscription filter hands a Lambda function: `{ awslogs: { data } }`,
 * where `data` is the base64 of the gzip of a JSON document naming the log group and stream and
 * carrying a batch of log events (Amazon CloudWatch Logs User Guide, "Using CloudWatch Logs
 * subscription filters", example 2: Lambda). CloudWatch Logs also sends a `CONTROL_MESSAGE`
 * when a filter is created or checked, to see that the destination is reachable: it carries
 * no application log and is ignored here.
 *
 * Only the documented fields are read; anything else (`policyLevel` of account-level filters…)
 * is let through unread, so a field AWS adds later does not break the scanner.
 */
import { gunzipSync } from 'node:zlib';
import * as z from 'zod';
import { ValidationError } from '../../core/errors.ts';

/**
 * The most base64 read: Lambda's largest asynchronous payload (1 MB) and then some. CloudWatch
 * Logs delivers at most 1 MB of log events per batch, which gzip makes much smaller.
 */
export const MAX_ENCODED_CHARS = 2 * 1024 * 1024;

/**
 * The most JSON a payload may unpack to. CloudWatch Logs' batches hold at most 1 MB of events,
 * so this leaves room for the envelope and JSON escaping, and refuses a gzip bomb before it fills
 * the function's memory.
 */
export const MAX_DECODED_BYTES = 8 * 1024 * 1024;

/** The subscription event, as Lambda receives it. */
export const CloudWatchLogsEventSchema = z.looseObject({
  awslogs: z.looseObject({
    /** base64 of the gzip of a {@link LogsDocumentSchema} document. */
    data: z.base64().min(1).max(MAX_ENCODED_CHARS),
  }),
});
export type CloudWatchLogsEvent = z.infer<typeof CloudWatchLogsEventSchema>;

/** One log event of a batch. */
export const LogEventSchema = z.looseObject({
  /** CloudWatch Logs' id of the event (a long decimal string); empty in a control message. */
  id: z.string(),
  /** When the event happened, in milliseconds since the epoch. */
  timestamp: z.number(),
  /** The log line as the application wrote it. */
  message: z.string(),
});
export type LogEvent = z.infer<typeof LogEventSchema>;

/** The decoded document. */
export const LogsDocumentSchema = z.looseObject({
  /** `DATA_MESSAGE` carries log events; `CONTROL_MESSAGE` checks that the destination is reachable. */
  messageType: z.enum(['DATA_MESSAGE', 'CONTROL_MESSAGE']),
  /** The AWS account id of the log group (`CloudwatchLogs` in a control message). */
  owner: z.string(),
  logGroup: z.string(),
  logStream: z.string(),
  /** The names of the subscription filters that matched. */
  subscriptionFilters: z.array(z.string()),
  logEvents: z.array(LogEventSchema),
});
export type LogsDocument = z.infer<typeof LogsDocumentSchema>;

/** A batch of log lines to scan, or nothing (a control message). */
export type DecodedLogs =
  | {
      messageType: 'DATA_MESSAGE';
      owner: string;
      logGroup: string;
      logStream: string;
      events: readonly LogEvent[];
    }
  | { messageType: 'CONTROL_MESSAGE' };

const EXPECTED_EVENT = 'a CloudWatch Logs subscription event {awslogs: {data: base64(gzip(JSON))}}';

/**
 * A subscription event decoded: base64, then gunzip (bounded by {@link MAX_DECODED_BYTES}), then
 * JSON, checked against {@link LogsDocumentSchema}. Nothing of the payload's content is quoted in
 * an error: it is log text, which may hold the very credential being looked for.
 *
 * @throws ValidationError saying which step failed and what was expected.
 */
export function decodeLogsEvent(event: unknown): DecodedLogs {
  const envelope = CloudWatchLogsEventSchema.safeParse(event);
  if (!envelope.success) {
    throw new ValidationError(
      `expected ${EXPECTED_EVENT} of at most ${MAX_ENCODED_CHARS} base64 characters, got ${envelope.error.issues
        .map((issue) => `${issue.path.join('.') || '(event)'}: ${issue.message}`)
        .join('; ')}`,
    );
  }
  const compressed = Buffer.from(envelope.data.awslogs.data, 'base64');
  let json: string;
  try {
    json = gunzipSync(compressed, { maxOutputLength: MAX_DECODED_BYTES }).toString('utf8');
  } catch (cause) {
    const tooLarge = (cause as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE';
    throw new ValidationError(
      tooLarge
        ? `expected awslogs.data to unpack to at most ${MAX_DECODED_BYTES} bytes (CloudWatch Logs batches hold at most 1 MB of events), got more`
        : `expected awslogs.data to be gzip-compressed, got ${compressed.length} bytes that do not gunzip (${(cause as { code?: unknown }).code ?? 'not gzip'})`,
      { cause },
    );
  }
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch (cause) {
    throw new ValidationError(
      `expected awslogs.data to unpack to a JSON document, got ${json.length} characters that do not parse`,
      { cause },
    );
  }
  const parsed = LogsDocumentSchema.safeParse(document);
  if (!parsed.success) {
    throw new ValidationError(
      `expected awslogs.data to unpack to a CloudWatch Logs document {messageType, owner, logGroup, logStream, subscriptionFilters, logEvents: [{id, timestamp, message}]}, got ${parsed.error.issues
        .map((issue) => `${issue.path.join('.') || '(document)'}: ${issue.message}`)
        .join('; ')}`,
    );
  }
  const doc = parsed.data;
  if (doc.messageType === 'CONTROL_MESSAGE') return { messageType: 'CONTROL_MESSAGE' };
  return {
    messageType: 'DATA_MESSAGE',
    owner: doc.owner,
    logGroup: doc.logGroup,
    logStream: doc.logStream,
    events: doc.logEvents,
  };
}
