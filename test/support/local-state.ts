/**
 * keywarden's adapters on the local stack with a state table of the test file's own, the
 * set-up most integration specs start with. The table name is `<prefix>-<random>`, so files
 * share the one stack without meeting in a table.
 */
import { randomBytes } from 'node:crypto';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { type RuntimeConfigInput, RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import type { Clock } from '../../functions/core/ports.ts';
import { testAws, testStack, uniqueName } from './stack.ts';

/** A runtime configuration input that names its state table. */
export type LocalConfig = RuntimeConfigInput & { tableName: string };

/**
 * A runtime configuration for the local stack (moto, OpenBao's root token, a fresh
 * fingerprint key, no discovery scope) with a table named `<tablePrefix>-<random>`;
 * `overrides` replace whole fields.
 */
export function localConfig(tablePrefix: string, overrides: Partial<RuntimeConfigInput> = {}): LocalConfig {
  const stack = testStack();
  return {
    aws: testAws(),
    tableName: uniqueName(tablePrefix),
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: {},
    vault: { addr: stack.vault.addr, token: stack.vault.token },
    ...overrides,
  };
}

/** The adapters wired on `config` (with `clock` where given), its state table created. */
export async function wireLocal(config: RuntimeConfigInput, clock?: Clock): Promise<Services> {
  const services = wire(RuntimeConfigSchema.parse(config), clock);
  await ensureStateTable(services.aws.dynamodb, services.config.tableName);
  return services;
}
