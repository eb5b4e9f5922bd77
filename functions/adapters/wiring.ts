import { randomUUID } from 'node:crypto';
import type { DiscoverySource } from '../core/discovery.ts';
import type { Clock } from '../core/ports.ts';
import { AwsDiscovery } from './aws/aws-discovery.ts';
import { type AwsClients, awsClients } from './aws/clients.ts';
import { DynamoStore } from './aws/dynamodb-store.ts';
import { Fingerprinter, sha256Hex } from './crypto.ts';
import type { RuntimeConfig } from './runtime-config.ts';
import { VaultClient } from './vault/client.ts';
import { VaultDiscovery } from './vault/vault-discovery.ts';

/** The system clock: the one place outside tests that reads the time. */
export const systemClock: Clock = { now: () => new Date() };

/**
 * The composition root: adapters built once from a configuration, shared by the
 * CLI's local mode, the local runtime and the Lambda handlers.
 */
export function wire(config: RuntimeConfig, clock: Clock = systemClock) {
  const aws: AwsClients = awsClients(config.aws);
  const fingerprinter = new Fingerprinter(config.fingerprintKey);
  const store = new DynamoStore({
    client: aws.dynamodb,
    tableName: config.tableName,
    clock,
    digest: sha256Hex,
  });
  const vaultConfig = config.vault;
  const vault = vaultConfig
    ? new VaultClient({ addr: vaultConfig.addr, token: vaultConfig.token })
    : undefined;
  const sources: DiscoverySource[] = [
    new AwsDiscovery({
      iam: aws.iam,
      secrets: aws.secrets,
      iamPathPrefix: config.discovery.iamPathPrefix,
      secretNamePrefix: config.discovery.secretNamePrefix,
      fingerprinter,
    }),
  ];
  if (vault && vaultConfig) {
    sources.push(
      new VaultDiscovery({
        client: vault,
        approleMounts: vaultConfig.approleMounts,
        kvPrefixes: vaultConfig.kvPrefixes,
        fingerprinter,
      }),
    );
  }
  return {
    config,
    clock,
    aws,
    vault,
    store,
    fingerprinter,
    digest: sha256Hex,
    sources,
    syncDeps: { store, audit: store, clock, digest: sha256Hex },
    discoveryDeps: { sources, store, audit: store, clock, newId: randomUUID },
  };
}
export type Services = ReturnType<typeof wire>;
