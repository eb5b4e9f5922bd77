/**
 * The local runtime as a background process of the local stack: `keywarden dev up` starts
 * `keywarden dev serve` detached (its own process group, its log in the state folder), and
 * `keywarden dev down` ends it with moto and OpenBao.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { endGroup, isAlive, LocalStackError, launch, REPO_ROOT } from '../../scripts/local-stack.ts';
import { type RuntimeInfo, RuntimeInfoSchema, runtimeFile } from './runtime.ts';

/** The running local runtime, if its process is alive. */
export function readRuntime(stateDir: string): RuntimeInfo | undefined {
  const file = runtimeFile(stateDir);
  if (!existsSync(file)) return undefined;
  let written: unknown;
  try {
    written = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // The runtime is writing it right now (a loaded machine shows the half-written file): not yet.
    return undefined;
  }
  const info = RuntimeInfoSchema.safeParse(written);
  return info.success && isAlive(info.data.pid) ? info.data : undefined;
}

/** Starts the runtime unless it runs already; resolves once it listens. */
export async function startRuntimeProcess(stateDir: string): Promise<RuntimeInfo> {
  const running = readRuntime(stateDir);
  if (running) return running;
  rmSync(runtimeFile(stateDir), { force: true });
  const log = join(stateDir, 'runtime.log');
  const child = launch(process.execPath, [join(REPO_ROOT, 'bin', 'keywarden.mjs'), 'dev', 'serve'], log, {
    KEYWARDEN_HOME: stateDir,
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const info = readRuntime(stateDir);
    if (info) return info;
    if (child.pid === undefined || !isAlive(child.pid)) {
      const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
      throw new LocalStackError(`the local runtime exited while starting: ${tail} (full log: ${log})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new LocalStackError(`the local runtime did not start within 30 s; see ${log}`);
}

export async function stopRuntimeProcess(stateDir: string): Promise<boolean> {
  const info = readRuntime(stateDir);
  rmSync(runtimeFile(stateDir), { force: true });
  if (!info) return false;
  await endGroup(info.pid);
  return true;
}
