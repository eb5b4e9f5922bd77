/**
 * What the CI webhooks do with a finished job's log: hand it to the exposure scanner function
 * (functions/handlers/exposure-scanner.ts), which reads, scans and contains.
 */
import type { LambdaInvoke } from '../adapters/aws/lambda-invoke.ts';
// Only the name enters a bundle: with `sideEffects: false`, esbuild leaves the forge clients out.
import { type FinishedJob, finishedJobName } from '../adapters/scan/finished-job-log.ts';
import type { FinishedJobEvent } from '../adapters/scan/scanner-event.ts';

/**
 * Hands a finished job to the exposure scanner function: an asynchronous invocation (`Event`),
 * accepted by Lambda in milliseconds, so the webhook is answered quickly; the scanner reads the
 * job's log, scans and contains (Lambda retries a failed scan twice, then keeps the event in the
 * scanner's dead-letter queue). This bundle holds no detector: it only names the job. A
 * hand-off Lambda refuses is logged, not thrown: the job's credentials are ended all the same.
 */
export function jobLogHandOff(
  invoke: LambdaInvoke,
  scannerFunction: string,
  log: (line: string) => void,
): (job: FinishedJob) => Promise<void> {
  return async (job) => {
    // The scanner checks it against FinishedJobEventSchema; here only its type: no schema in this bundle.
    const event: FinishedJobEvent = { finishedJob: job };
    try {
      await invoke(scannerFunction, JSON.stringify(event), 'Event');
    } catch (error) {
      log(
        `the log of ${finishedJobName(job)} was not handed to the exposure scanner (${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}); its credentials were ended, its log is not scanned: invoke ${scannerFunction} with ${JSON.stringify(event)} (--invocation-type Event) to scan it`,
      );
    }
  };
}
