/**
 * Vitest global setup: the `keywarden` command compiled once for the whole run, so the spec
 * files that run it hundreds of times do not each pay tsx's start.
 *
 * `bin/keywarden.mjs` registers tsx, which loads and compiles `cli/main.ts` and everything it
 * imports at every start: ~1.7 s of CPU per command on this machine, against ~0.3 s for the
 * same entry bundled by esbuild. The end-to-end files run the command several hundred times,
 * on two cores shared with the servers they test, so that start was the largest single cost
 * of the suite. The bundle is `bin/keywarden.mjs` itself (the same entry, warning filter and
 * sources) with tsx's `register` made a no-op, since its sources are already compiled; the
 * local runtime that `dev up` starts still runs through tsx, so that path stays tested.
 *
 * It lives in `.keywarden/` (one folder below the repository, as `scripts/` is, so the
 * sources' `REPO_ROOT` resolves the same) under a name of this run's own, and goes at the end.
 * `KEYWARDEN_TEST_CLI=source` runs the command from its sources instead.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { TestProject } from 'vitest/node';
import { REPO_ROOT } from '../../scripts/local-stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The `keywarden` entry the specs run: the bundle, or `bin/keywarden.mjs` from sources. */
    keywardenCli: string;
  }
}

/** The command as the user runs it, from its TypeScript sources through tsx. */
export const SOURCE_CLI = join(REPO_ROOT, 'bin', 'keywarden.mjs');

/** One bundle per vitest process, shared by its projects. */
let built: Promise<string> | undefined;

/** Bundles `bin/keywarden.mjs` into `outfile`, tsx's loader replaced by a no-op. */
export async function buildCliBundle(outfile: string): Promise<void> {
  await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: [SOURCE_CLI],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // No source map: an inline one triples the file Node parses at every start (+40 % CPU).
    // KEYWARDEN_TEST_CLI=source runs the sources when a failure needs their stack trace.
    // CommonJS dependencies (the AWS SDK's, yaml's) require node built-ins: give the ESM bundle a require.
    banner: {
      js: "import { createRequire as __keywardenCreateRequire } from 'node:module'; const require = __keywardenCreateRequire(import.meta.url);",
    },
    plugins: [
      {
        name: 'compiled-sources',
        setup(plugin) {
          plugin.onResolve({ filter: /^tsx\/esm\/api$/ }, () => ({ path: 'tsx', namespace: 'compiled' }));
          plugin.onLoad({ filter: /.*/, namespace: 'compiled' }, () => ({
            contents: 'export function register() {}',
            loader: 'js',
          }));
        },
      },
    ],
    logLevel: 'warning',
  });
}

export default async function setup(project: TestProject) {
  if (process.env.KEYWARDEN_TEST_CLI === 'source') {
    project.provide('keywardenCli', SOURCE_CLI);
    return;
  }
  const dir = join(REPO_ROOT, '.keywarden');
  const outfile = join(dir, `cli-test-${process.pid}.mjs`);
  built ??= (async () => {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await buildCliBundle(outfile);
    return outfile;
  })();
  project.provide('keywardenCli', await built);
  return () => {
    rmSync(outfile, { force: true });
  };
}
