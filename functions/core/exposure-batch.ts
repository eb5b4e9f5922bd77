/**
 * Scanning a batch of texts (a CloudWatch Logs batch, a job's log lines) as one use case: every
 * text scanned against the managed credentials as they are now, each managed credential
 * contained once, the others saved as `exposed-unmanaged` findings; a hit is placed at its
 * input's line. The deployed scanner (functions/handlers/exposure-scanner.ts) runs it per batch.
 */
import { KeywardenError } from './errors.ts';
import {
  containHits,
  type ExposureDeps,
  type ExposureHit,
  loadMatcher,
  SHORT_FINGERPRINT,
  saveUnmanagedFindings,
  scanText,
  unmanagedFindings,
} from './exposure.ts';
import type { ExposureSource } from './exposure-types.ts';
import type { ExposureContainment, SecretDetector } from './ports.ts';

/** One text to scan and where it came from. */
export interface ScanInput {
  source: ExposureSource;
  text: string;
  /** Where a hit in the text is placed in its source: here, the event's 1-based index in the batch. */
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

/** What scanning a batch runs on: wiring's `exposure` part, a detector when deployed, and how to contain. */
export interface ScanDeps {
  exposure: ExposureDeps;
  /** The detection engine and keywarden's rules; without it the managed-value matcher still finds every managed credential. */
  detector?: SecretDetector | undefined;
  containment: ExposureContainment;
  actor: string;
}

/**
 * The scanning use case over a batch (functions/core/exposure.ts): every text scanned against
 * the managed credentials as they are now (read per batch: a credential issued a minute ago is
 * the one most likely to be printed by the build that received it), each managed credential
 * contained once, the others saved as `exposed-unmanaged` findings. A hit is placed at its
 * input's line.
 */
export function scanWith(deps: ScanDeps): ScanTexts {
  return async (inputs, { contain }) => {
    const matcher = await loadMatcher(deps.exposure);
    const hits: ExposureHit[] = [];
    for (const group of bySource(inputs)) {
      // One text per source, not per event: a detector's cost is per call (secretlint's most).
      const { text, inputAt } = joined(group.inputs);
      for (const hit of await scanText(
        matcher,
        deps.detector,
        deps.exposure.fingerprint,
        text,
        group.source,
      )) {
        // A log event is the unit CloudWatch Logs shows and links to: a hit is placed at its event.
        hits.push({ ...hit, line: inputAt(hit.line).line });
      }
    }
    const managed = hits.filter((hit) => hit.status === 'managed');
    const containments =
      contain && managed.length > 0
        ? await containHits(
            {
              exposures: deps.exposure.exposures,
              containment: deps.containment,
              audit: deps.exposure.audit,
              clock: deps.exposure.clock,
              actor: deps.actor,
            },
            hits,
          )
        : [];
    await saveUnmanagedFindings(deps.exposure, unmanagedFindings(hits));
    const failed = containments.filter((c) => c.status === 'failed');
    if (failed.length > 0) {
      // Thrown after everything else is recorded: Lambda retries the batch, and a containment
      // that did not start is tried again (containHits leaves it unmarked).
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
      managed: managed.length,
      contained: containments.filter((c) => c.status === 'contained').length,
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
  const inputAt = (at: number): ScanInput => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] ?? 0) <= at) lo = mid;
      else hi = mid - 1;
    }
    return inputs[lo] as ScanInput;
  };
  return { text: inputs.map((input) => input.text).join('\n'), inputAt };
}
