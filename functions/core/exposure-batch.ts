/**
 * Scanning texts as one use case, for every caller: files and folders (`keywarden scan`), a
 * finished job's log (the local runtime), a CloudWatch Logs batch (the deployed scanner,
 * functions/handlers/exposure-scanner.ts). Every text is scanned against the managed
 * credentials as they are now, each managed credential contained once and its owner alerted,
 * the others saved as `exposed-unmanaged` findings. A text's hits keep their own lines, or are
 * placed at the line its input gives (a log event's index in its batch).
 */
import { KeywardenError } from './errors.ts';
import {
  type Containment,
  containHits,
  type ExposureDeps,
  type ExposureHit,
  loadMatcher,
  SHORT_FINGERPRINT,
  saveUnmanagedFindings,
  scanText,
  unmanagedFindings,
} from './exposure.ts';
import { lastStartAtOrBefore } from './exposure-rules.ts';
import type { ExposureSource } from './exposure-types.ts';
import type { Finding } from './findings.ts';
import type { ExposureAlerts, ExposureContainment, SecretDetector } from './ports.ts';

/** One text to scan and where it came from. */
export interface ScanInput {
  source: ExposureSource;
  text: string;
  /**
   * Where a hit in the text is placed in its source. A number: every hit at that line (a log
   * event's 1-based index in its batch; the texts of one source are then scanned as one). A
   * function: the text's own line mapped to its source's (the lines a commit added, numbered as
   * in its file). Absent: the text's own lines (a whole file, standard input, a job's log).
   */
  line?: number | ((line: number) => number) | undefined;
}

/** What scanning a batch came to: hits, how many of them keywarden manages, how many it contained (or started containing, in AWS). */
export interface ScanSummary {
  hits: number;
  managed: number;
  contained: number;
}

/** The scanning and containment use case (functions/core/exposure.ts), as this handler calls it. */
export type ScanTexts = (inputs: readonly ScanInput[], options: { contain: boolean }) => Promise<ScanSummary>;

/** What scanning a batch runs on: wiring's `exposure` part, a detector when deployed, and how to contain. */
export interface ScanDeps {
  exposure: ExposureDeps;
  /** The detection engine and keywarden's rules; without it the managed-value matcher still finds every managed credential. */
  detector?: SecretDetector | undefined;
  containment: ExposureContainment;
  actor: string;
  /** Tells the owner of each credential whose containment was attempted; absent, nobody is told. */
  alerts?: ExposureAlerts | undefined;
}

/** Everything one scan came to: its hits, what containing the managed ones did, the findings saved. */
export interface ScanOutcome {
  hits: ExposureHit[];
  /** One per managed fingerprint contained (or found contained before); none without `contain`. */
  containments: Containment[];
  /** The `exposed-unmanaged` findings saved with the latest findings. */
  findings: Finding[];
  /** How long scanning took by the deps' clock, loading the managed credentials and containing apart. */
  scanMs: number;
}

/**
 * The one scan→contain→save flow (`keywarden scan`, the local runtime's job logs, the deployed
 * scanner): every text scanned against the managed credentials as they are now (read once per
 * call: a credential issued a minute ago is the one most likely to be printed by the build that
 * received it), each managed credential contained once with its owner alerted (when `contain`),
 * the others saved as `exposed-unmanaged` findings. Inputs are read one at a time as they come
 * (a folder's files are not all held at once), but for those placed at a line, which are
 * gathered per source and scanned as one text after the others.
 */
export async function scanAndContain(
  deps: ScanDeps,
  inputs: Iterable<ScanInput>,
  options: { contain: boolean },
): Promise<ScanOutcome> {
  const matcher = await loadMatcher(deps.exposure);
  const started = deps.exposure.clock.now().getTime();
  const scan = (text: string, source: ExposureSource) =>
    scanText(matcher, deps.detector, deps.exposure.fingerprint, text, source);
  const hits: ExposureHit[] = [];
  const placed: ScanInput[] = [];
  for (const input of inputs) {
    const { line } = input;
    if (typeof line === 'number') {
      placed.push(input);
      continue;
    }
    for (const hit of await scan(input.text, input.source)) {
      hits.push(line ? { ...hit, line: line(hit.line) } : hit);
    }
  }
  for (const group of bySource(placed)) {
    // One text per source, not per event: a detector's cost is per call (secretlint's most).
    const { text, inputAt } = joined(group.inputs);
    for (const hit of await scan(text, group.source)) {
      // A log event is the unit CloudWatch Logs shows and links to: a hit is placed at its event.
      hits.push({ ...hit, line: inputAt(hit.line).line as number });
    }
  }
  const scanMs = deps.exposure.clock.now().getTime() - started;
  const containments =
    options.contain && hits.some((hit) => hit.status === 'managed')
      ? await containHits(
          {
            exposures: deps.exposure.exposures,
            containment: deps.containment,
            audit: deps.exposure.audit,
            clock: deps.exposure.clock,
            actor: deps.actor,
            alerts: deps.alerts,
          },
          hits,
        )
      : [];
  const findings = unmanagedFindings(hits);
  await saveUnmanagedFindings(deps.exposure, findings);
  return { hits, containments, findings, scanMs };
}

/**
 * {@link scanAndContain} as the deployed scanner runs it per batch: counts only, and a throw
 * when a containment failed (after everything else is recorded), so Lambda retries the batch
 * and a containment that did not start is tried again (containHits leaves it unmarked).
 */
export function scanWith(deps: ScanDeps): ScanTexts {
  return async (inputs, { contain }) => {
    const { hits, containments } = await scanAndContain(deps, inputs, { contain });
    const failed = containments.filter((c) => c.status === 'failed');
    if (failed.length > 0) {
      throw new KeywardenError(
        `containing ${failed.length} exposed managed credential(s) failed: ${failed
          .map(
            (c) =>
              `${c.identityId} (${c.fingerprint.slice(0, SHORT_FINGERPRINT)}…): ${c.failures.join('; ')}`,
          )
          .join(', ')}`,
        { retryable: true },
      );
    }
    return {
      hits: hits.length,
      managed: hits.filter((hit) => hit.status === 'managed').length,
      contained: containments.filter((c) => c.status === 'contained' || c.status === 'started').length,
    };
  };
}

/** Inputs grouped by source, in order (a batch has one: its log group and stream). */
function bySource(inputs: readonly ScanInput[]): { source: ExposureSource; inputs: ScanInput[] }[] {
  const groups = new Map<string, { source: ExposureSource; inputs: ScanInput[] }>();
  for (const input of inputs) {
    const key = JSON.stringify(input.source);
    const group = groups.get(key) ?? { source: input.source, inputs: [] };
    group.inputs.push(input);
    groups.set(key, group);
  }
  return [...groups.values()];
}

/** The texts joined by newlines, and the input a 1-based line of the joined text belongs to. */
function joined(inputs: readonly ScanInput[]): { text: string; inputAt: (line: number) => ScanInput } {
  const starts: number[] = [];
  let line = 1;
  for (const input of inputs) {
    starts.push(line);
    line += (input.text.match(/\n/g)?.length ?? 0) + 1;
  }
  const inputAt = (at: number): ScanInput => inputs[lastStartAtOrBefore(starts, at)] as ScanInput;
  return { text: inputs.map((input) => input.text).join('\n'), inputAt };
}
