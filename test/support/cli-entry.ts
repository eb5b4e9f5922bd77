/**
 * Which file runs `keywarden` in a spec: the bundle test/support/global-cli.ts built for this
 * run, or, where no setup provided one, `bin/keywarden.mjs` from its sources.
 */
import { join } from 'node:path';
import { inject } from 'vitest';
import { REPO_ROOT } from '../../scripts/local-stack.ts';

/**
 * The `keywarden` entry to run with `node`. Outside a vitest run (the benches reuse the e2e
 * support) `inject` has no state to read and throws, so it is asked only under vitest.
 */
export const keywardenEntry = (): string =>
  (process.env.VITEST ? inject('keywardenCli') : undefined) ?? join(REPO_ROOT, 'bin', 'keywarden.mjs');
