/**
 * The order spec files start in: the longest first, over all projects, so the three workers
 * stay busy to the end instead of waiting on one long file started late.
 *
 * vitest's own order runs the projects one after another (e2e, infra, integration, unit by
 * name) and, within each, the longest first by its duration cache, which a fresh clone has
 * not: the 2,000-target campaign spec then started after every end-to-end file and ran alone
 * at the end. Here a file's weight is its cached duration when vitest has one, else its
 * figure in `expectedSeconds` (measured), else a guess by project; the infra and unit files
 * (but a long one) keep together at the end (their workers run file after file without re-importing,
 * `isolate: false`, which holds only while the next file queued is of the same project) and
 * fill the workers' last minutes.
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Seconds of the files known to be long (`project:path`), from a measured run. */
export type ExpectedSeconds = Readonly<Record<string, number>>;

/** A file of a project without a figure: e2e files bring up a stack of their own. */
const GUESS_SECONDS: Readonly<Record<string, number>> = { e2e: 40, integration: 5 };

/** Projects whose files run as one block at the end, in this order. */
const TAIL_PROJECTS = ['infra', 'unit'];
/**
 * A file of those projects this long starts among the long files instead (the infra spec that
 * bundles every handler with esbuild, ~40 s: it shares no synthesis, and at the end it ran alone).
 */
const LONG_SECONDS = 30;

/** A sequencer class ordering by `expected` where vitest has no duration of its own. */
export function longestFirst(expected: ExpectedSeconds) {
  return class LongestFirstSequencer extends BaseSequencer {
    override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
      const key = (spec: TestSpecification) =>
        `${spec.project.name}:${relative(this.ctx.config.root, spec.moduleId)}`;
      const seconds = (spec: TestSpecification) => {
        const cached = this.ctx.cache.getFileTestResults(key(spec));
        if (cached && !cached.failed && cached.duration > 0) return cached.duration / 1000;
        return expected[key(spec)] ?? GUESS_SECONDS[spec.project.name] ?? 0;
      };
      const block = (spec: TestSpecification, weight: number) =>
        weight >= LONG_SECONDS ? -1 : TAIL_PROJECTS.indexOf(spec.project.name);
      const weighed = files.map((spec) => {
        const weight = seconds(spec);
        return { spec, block: block(spec, weight), seconds: weight };
      });
      return weighed.sort((a, b) => a.block - b.block || b.seconds - a.seconds).map(({ spec }) => spec);
    }
  };
}
