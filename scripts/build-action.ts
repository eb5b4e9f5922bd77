/**
 * Builds the GitHub Action (action.yml): `action/src/{main,post}.ts` bundled with everything
 * they import (`@actions/core`, zod) into `action/dist/{main,post}.mjs`. GitHub runs the
 * committed JavaScript as is (no `npm install` on the runner), so the bundle is committed, and a
 * spec (test/integration/github-action.test.ts) checks it equals a fresh build.
 *
 *   npm run build:action
 */
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { REPO_ROOT } from './local-stack.ts';

export const ACTION_ENTRIES = ['main', 'post'] as const;
export const ACTION_DIST = join(REPO_ROOT, 'action', 'dist');

/** The bundles as esbuild makes them: path (relative to the repository) → contents. */
export async function buildAction(): Promise<Map<string, string>> {
  const result = await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: ACTION_ENTRIES.map((entry) => join(REPO_ROOT, 'action', 'src', `${entry}.ts`)),
    outdir: ACTION_DIST,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    // Runs on the runner's node24; node20 syntax keeps it runnable by the repository's own Node.
    target: 'node20',
    minify: true,
    // One file per entry, nothing shared: the runner loads exactly the file action.yml names.
    splitting: false,
    legalComments: 'eof',
    // @actions/http-client's CommonJS dependencies require node built-ins: give the ESM bundle a require.
    banner: {
      js: "import { createRequire as __keywardenCreateRequire } from 'node:module'; const require = __keywardenCreateRequire(import.meta.url);",
    },
    write: false,
    logLevel: 'warning',
  });
  return new Map(result.outputFiles.map((file) => [relative(REPO_ROOT, file.path), file.text]));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = await buildAction();
  for (const [path, text] of files) {
    writeFileSync(join(REPO_ROOT, path), text);
    process.stderr.write(`${path}: ${(Buffer.byteLength(text) / 1024).toFixed(0)} kB\n`);
  }
}
