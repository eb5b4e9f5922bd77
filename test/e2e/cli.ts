/** Runs the real `keywarden` command as a user would, in its own state folder. */
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { keywardenEntry } from '../support/cli-entry.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function keywarden(args: string[], env: Record<string, string> = {}): CliResult {
  const result = spawnSync(process.execPath, [keywardenEntry(), ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, KEYWARDEN_TABLE: '', ...env },
    timeout: 170_000,
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Whether a process with this pid still runs (signal 0 probes without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
