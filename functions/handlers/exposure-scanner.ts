/**
 * The deployed exposure scanner (issue #14): a CloudWatch Logs subscription filter on each
 * configured log group (CodeBuild's, Lambda's, the CI runners') hands it batches of log lines;
 * each line is scanned for credentials, and a managed one is contained (an incident revocation
 * campaign on its fingerprint, with re-issue, started in the revocation state machine).
 *
 * Every line of a batch is one text, located `<log group>/<log stream>` and numbered by its
 * index in the batch, so a finding points at the event that held it. A control message (sent
 * when a filter is created, to check the destination) is ignored. Nothing of a log line is
 * logged or returned: only counts.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { type DecodedLogs, decodeLogsEvent } from '../adapters/aws/cloudwatch-logs-payload.ts';
import { KeywardenError } from '../core/errors.ts';
import type { ExposureSource } from '../core/exposure-types.ts';
import { entryPoint, wrap } from './wrap.ts';

/** One text to scan and where it came from. */
export interface ScanInput {
  source: ExposureSource;
  text: string;
  /** The 1-based line the text starts at in its source: here, the event's index in the batch + 1. */
  line: number;
}

/** What scanning a batch came to: hits, how many of them keywarden manages, how many it contained. */
export interface ScanSummary {
  hits: number;
  managed: number;
  contained: number;
}

/** The scanning and containment use case (functions/core/exposure.ts), as this handler calls it. */
export type ScanTexts = (inputs: readonly ScanInput[], options: { contain: boolean }) => Promise<ScanSummary>;

export interface ExposureScannerDeps {
  scan: ScanTexts;
  logger: Logger;
}

/** What one invocation did: the batch's place and counts, never a line of it. */
export type ScannerResult =
  | { ignored: 'control-message' }
  | ({ logGroup: string; logStream: string; events: number } & ScanSummary);

/** The texts of a batch: one per log event, located at its group/stream and numbered by its index. */
export function scanInputsOf(logs: Extract<DecodedLogs, { messageType: 'DATA_MESSAGE' }>): ScanInput[] {
  const source: ExposureSource = { kind: 'cloudwatch-logs', location: `${logs.logGroup}/${logs.logStream}` };
  return logs.events.map((event, index) => ({ source, text: event.message, line: index + 1 }));
}

export function makeHandler(deps: ExposureScannerDeps) {
  return wrap({ logger: deps.logger }, async (event: unknown): Promise<ScannerResult> => {
    const logs = decodeLogsEvent(event);
    if (logs.messageType === 'CONTROL_MESSAGE') return { ignored: 'control-message' };
    // Always contained in AWS: a leak found in a build log is ended, not just reported.
    const summary = await deps.scan(scanInputsOf(logs), { contain: true });
    const result = {
      logGroup: logs.logGroup,
      logStream: logs.logStream,
      events: logs.events.length,
      ...summary,
    };
    if (summary.hits > 0) deps.logger.warn('credentials found in a log batch', result);
    return result;
  });
}

/**
 * The Lambda entry point (a CloudWatch Logs subscription filter's destination).
 *
 * Until the scanning use case is wired (functions/core/exposure.ts, through wiring.ts's
 * `exposure` part), the cold start fails with a clear error rather than dropping batches
 * unscanned: CloudWatch Logs' asynchronous invocation is retried, then kept in the dead-letter queue.
 */
export const handler = entryPoint(async () => {
  throw new KeywardenError(
    'the exposure scanner is deployed before its scanning use case is wired (functions/core/exposure.ts): log batches wait in the dead-letter queue',
  );
});
