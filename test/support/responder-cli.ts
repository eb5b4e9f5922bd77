/**
 * Runs the real `keywarden` command as the incident responder would, against a local
 * configuration of a spec's own: a fresh home holding `config`, stdin not a terminal.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { keywardenEntry } from './cli-entry.ts';
import type { LocalConfig } from './local-state.ts';

/** What a finished `keywarden` command left: its exit code (-1 if it had none) and its output. */
export interface ResponderCliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where the command keeps its state, and how long it may run. */
export interface ResponderCliOptions {
  /** The prefix of the fresh home folder under the system's temporary folder. */
  homePrefix: string;
  /** Milliseconds before the command is killed. */
  timeoutMs: number;
}

/**
 * Runs `keywarden <args>` as `responder` with `config` in a fresh home (mode 0600), no state
 * table from the environment, reports under `<home>/reports`, and empty stdin.
 */
export function keywardenAsResponder(
  args: string[],
  config: LocalConfig,
  options: ResponderCliOptions,
): ResponderCliResult {
  const home = mkdtempSync(join(tmpdir(), options.homePrefix));
  writeFileSync(join(home, 'config.json'), JSON.stringify(config), { mode: 0o600 });
  const result = spawnSync(process.execPath, [keywardenEntry(), ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: {
      ...process.env,
      KEYWARDEN_TABLE: '',
      KEYWARDEN_HOME: home,
      KEYWARDEN_ACTOR: 'responder',
      KEYWARDEN_REPORTS_DIR: join(home, 'reports'),
    },
    input: '',
    timeout: options.timeoutMs,
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
