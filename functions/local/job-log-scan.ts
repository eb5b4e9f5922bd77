/**
 * A finished CI job's log, scanned when its completion webhook arrives (issue #14, "where leaks
 * happen"): the log is read through the platform's API (GitHub's job logs, GitLab's trace; the
 * tokens from GITHUB_TOKEN / GITLAB_TOKEN), every managed credential in it is contained (an
 * incident campaign with re-issue, once per fingerprint) and the others are saved as
 * `exposed-unmanaged` findings. Runs after the webhook has been answered: a platform waits
 * seconds for its answer, a scan and a containment may take longer.
 */
import { CombinedSecretDetector } from '../adapters/scan/detector.ts';
import { type FinishedJob, type ForgeSettings, finishedJobLog } from '../adapters/scan/finished-job-log.ts';
import { alerts, Composition, exposure, type Services } from '../adapters/wiring.ts';
import { scanAndContain } from '../core/exposure-batch.ts';
import { localContainment } from './exposure-containment.ts';

/** Who contains in the audit trail when a job's log held a managed credential. */
export const JOB_LOG_ACTOR = 'keywarden:job-log-scan';

/** What scanning one finished job's log came to (counts and places, never a value). */
export interface JobLogScan {
  location: string;
  hits: number;
  managed: number;
  contained: number;
  /** Owners told of a containment (through the configured alerts). */
  alerted: number;
}

/**
 * Scans a finished job's log and contains what keywarden manages in it, alerting each owner
 * where alerts are configured (an alert that cannot be sent is logged, the containment stands).
 */
export function jobLogScanner(
  services: Services,
  settings: ForgeSettings,
  log: (line: string) => void = () => {},
): (job: FinishedJob) => Promise<JobLogScan> {
  const detector = new CombinedSecretDetector();
  return async (job) => {
    const fetched = await finishedJobLog(job, settings);
    const composition = new Composition(services.config, services.clock);
    const { hits, containments } = await scanAndContain(
      {
        exposure: composition.get(exposure),
        detector,
        containment: localContainment(services, JOB_LOG_ACTOR, log),
        actor: JOB_LOG_ACTOR,
        alerts: composition.get(alerts),
      },
      // A job's log is one text with its own lines.
      [{ source: fetched.source, text: fetched.text }],
      { contain: true },
    );
    for (const c of containments) {
      if (c.alerted === false)
        log(`alerting the owner of ${c.identityId} (${c.incident}) failed: ${c.alertError}`);
    }
    return {
      location: fetched.source.location,
      hits: hits.length,
      managed: hits.filter((hit) => hit.status === 'managed').length,
      contained: containments.filter((c) => c.status === 'contained').length,
      alerted: containments.filter((c) => c.alerted).length,
    };
  };
}
