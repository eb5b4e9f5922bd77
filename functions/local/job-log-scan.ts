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
import { Composition, exposure, type Services } from '../adapters/wiring.ts';
import {
  containHits,
  loadMatcher,
  saveUnmanagedFindings,
  scanText,
  unmanagedFindings,
} from '../core/exposure.ts';
import { localContainment } from './exposure-containment.ts';

/** Who contains in the audit trail when a job's log held a managed credential. */
export const JOB_LOG_ACTOR = 'keywarden:job-log-scan';

/** What scanning one finished job's log came to (counts and places, never a value). */
export interface JobLogScan {
  location: string;
  hits: number;
  managed: number;
  contained: number;
}

/** Scans a finished job's log and contains what keywarden manages in it. */
export function jobLogScanner(
  services: Services,
  settings: ForgeSettings,
  log: (line: string) => void = () => {},
): (job: FinishedJob) => Promise<JobLogScan> {
  const detector = new CombinedSecretDetector();
  return async (job) => {
    const fetched = await finishedJobLog(job, settings);
    const deps = new Composition(services.config, services.clock).get(exposure);
    const matcher = await loadMatcher(deps);
    const hits = await scanText(matcher, detector, deps.fingerprint, fetched.text, fetched.source);
    const containments = await containHits(
      {
        exposures: deps.exposures,
        containment: localContainment(services, JOB_LOG_ACTOR, log),
        audit: deps.audit,
        clock: deps.clock,
        actor: JOB_LOG_ACTOR,
      },
      hits,
    );
    await saveUnmanagedFindings(deps, unmanagedFindings(hits));
    return {
      location: fetched.source.location,
      hits: hits.length,
      managed: hits.filter((hit) => hit.status === 'managed').length,
      contained: containments.filter((c) => c.status === 'contained').length,
    };
  };
}
