/**
 * Which file runs `keywarden` in a spec: the bundle test/support/global-cli.ts built for this
 * run, or, where no setup provided one, `bin/keywarden.mjs` from its sources.
 */
import { join } from 'node:path';
import { inject } from 'vitest';
import { REPO_ROOT } from '../../scripts/local-stack.ts';

/** The `keywarden` entry to run with `node`. */
export const keywardenEntry = (): string => inject('keywardenCli') ?? join(REPO_ROOT, 'bin', 'keywarden.mjs');
