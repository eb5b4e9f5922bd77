/**
 * Vitest global setup: one real local stack (moto, dynalite, OpenBao) for the whole run,
 * its endpoints handed to test files through `inject('stack')`. Test files keep
 * apart by naming everything they create with `uniqueName` (see ./stack.ts).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { REPO_ROOT, type StackEndpoints, startStack, stopStack } from '../../scripts/local-stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackEndpoints;
    stackDir: string;
  }
}

export default async function setup(project: TestProject) {
  const stateDir = join(REPO_ROOT, '.keywarden', `test-${project.name}-${process.pid}`);
  const stack = await startStack(stateDir, (line) => console.log(line));
  project.provide('stack', stack);
  project.provide('stackDir', stateDir);
  return async () => {
    await stopStack(stateDir);
    // The servers' logs are worth keeping only while they run; a clean stop leaves no folder behind.
    rmSync(stateDir, { recursive: true, force: true });
  };
}
