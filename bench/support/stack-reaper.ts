/**
 * A watchdog for the benchmark's own local stack: a small detached process that waits
 * for the benchmark's process to end and then ends the stack's process groups and
 * removes its state directory.
 *
 * The benchmark stops its stack itself on success, on error and on Ctrl-C. The watchdog
 * covers the exits that run no handler: SIGKILL, and tsx's signal relay, which kills its
 * child when the child does not acknowledge a signal within 30 ms (a busy event loop on
 * a loaded machine is enough; seen while measuring).
 */
import { spawn } from 'node:child_process';
import type { StackEndpoints } from '../../scripts/local-stack.ts';

/** Plain CommonJS for `node -e`: argv is [node, watched pid, state dir, ...process groups]. */
const REAPER = `
const [watched, dir, ...groups] = process.argv.slice(1);
const alive = (pid) => { try { process.kill(Number(pid), 0); return true; } catch { return false; } };
const signal = (sig) => { for (const group of groups) { try { process.kill(-Number(group), sig); } catch {} } };
const timer = setInterval(() => {
  if (alive(watched)) return;
  clearInterval(timer);
  signal('SIGTERM');
  setTimeout(() => {
    signal('SIGKILL');
    require('node:fs').rmSync(dir, { recursive: true, force: true });
  }, 3000);
}, 250);
`;

/** Starts the watchdog for `stack`; `stop` ends it once the benchmark has stopped the stack itself. */
export function startReaper(stack: StackEndpoints, stateDir: string): { stop: () => void } {
  const reaper = spawn(
    process.execPath,
    [
      '-e',
      REAPER,
      String(process.pid),
      stateDir,
      String(stack.moto.pid),
      String(stack.dynamodb.pid),
      String(stack.vault.pid),
    ],
    { detached: true, stdio: 'ignore' },
  );
  reaper.unref();
  return {
    stop: () => {
      if (reaper.pid === undefined || reaper.exitCode !== null) return;
      try {
        process.kill(reaper.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    },
  };
}
