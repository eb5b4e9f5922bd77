/**
 * `keywarden dev`: the local runtime's lifecycle. Starts the real local stack,
 * writes the configuration the CLI and handlers read, creates the state table,
 * and (with the demo) seeds credentials and syncs the demo inventory.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { readStack, type StackEndpoints, startStack, stopStack } from '../../scripts/local-stack.ts';
import { ensureStateTable } from '../adapters/aws/dynamodb-table.ts';
import { type RuntimeConfig, RuntimeConfigSchema } from '../adapters/runtime-config.ts';
import { wire } from '../adapters/wiring.ts';
import { localAwsEndpoint } from './aws-endpoint.ts';
import { seedDemo } from './demo-seed.ts';
import { ensureDevUsers, ensureSlackSecret, type RuntimeInfo } from './runtime.ts';
import { startRuntimeProcess, stopRuntimeProcess } from './runtime-process.ts';

export const LOCAL_TABLE = 'keywarden-state';

/** The runtime configuration for a running local stack. */
export function localConfig(stack: StackEndpoints, fingerprintKey: string): RuntimeConfig {
  return RuntimeConfigSchema.parse({
    aws: localAwsEndpoint(stack),
    tableName: LOCAL_TABLE,
    fingerprintKey,
    discovery: { iamPathPrefix: '/', secretNamePrefix: 'ci/' },
    vault: {
      addr: stack.vault.addr,
      token: stack.vault.token,
      approleMounts: ['approle'],
      kvPrefixes: ['secret/ci/'],
      auditLog: stack.vault.auditLog,
    },
  });
}

/**
 * Brings the local stack up (or finds it running) and returns its configuration.
 * With `demo`, seeds the demo credentials once per stack.
 */
export async function devUp(
  stateDir: string,
  options: {
    demo: boolean;
    log: (line: string) => void;
    /** Development users to hand tokens to, besides whoever runs this. */
    users?: readonly string[];
    /** Start the local runtime (HTTP API, schedules, sweeper) in the background. Default true. */
    runtime?: boolean;
  },
): Promise<{ config: RuntimeConfig; seeded: boolean; runtime?: RuntimeInfo }> {
  const stack = await startStack(stateDir, options.log);
  const configFile = join(stateDir, 'config.json');
  const previous = existsSync(configFile)
    ? RuntimeConfigSchema.safeParse(JSON.parse(readFileSync(configFile, 'utf8')))
    : undefined;
  // A new stack gets a new fingerprint key; a running one keeps its own.
  const fingerprintKey =
    previous?.success && previous.data.vault?.addr === stack.vault.addr
      ? previous.data.fingerprintKey
      : randomBytes(32).toString('hex');
  const config = localConfig(stack, fingerprintKey);
  writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
  const services = wire(config);
  await ensureStateTable(services.aws.dynamodb, config.tableName);

  let seeded = false;
  const marker = join(stateDir, `demo-seeded-${stack.startedAt.replace(/[^0-9]/g, '')}`);
  if (options.demo && !existsSync(marker)) {
    if (!services.vault) throw new Error('the demo needs Vault, and the local configuration has none');
    options.log('seeding the demo credentials into moto and OpenBao…');
    await seedDemo({
      iam: services.aws.iam,
      secrets: services.aws.secrets,
      vault: services.vault,
      aws: config.aws,
    });
    writeFileSync(marker, stack.startedAt);
    seeded = true;
  }
  ensureDevUsers(stateDir, [localUser(), ...(options.users ?? [])]);
  ensureSlackSecret(stateDir);
  if (options.runtime === false) return { config, seeded };
  return { config, seeded, runtime: await startRuntimeProcess(stateDir) };
}

/** Who runs the CLI locally: `KEYWARDEN_ACTOR`, else the OS user. */
export const localUser = (): string => process.env.KEYWARDEN_ACTOR ?? userInfo().username;

/** Stops the local stack; its data is gone with it (both servers keep state in memory). */
export async function devDown(stateDir: string): Promise<boolean> {
  await stopRuntimeProcess(stateDir);
  const stopped = await stopStack(stateDir);
  rmSync(join(stateDir, 'config.json'), { force: true });
  return stopped;
}

export { readStack };
