import { randomBytes, randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import type { CampaignDeps } from '../core/campaign-engine.ts';
import type { DiscoverySource } from '../core/discovery.ts';
import { KeywardenError } from '../core/errors.ts';
import type { IdentityKind } from '../core/identity.ts';
import type { Clock } from '../core/ports.ts';
import type { CredentialProvider, DeliveryTarget } from '../core/provider.ts';
import type { RotationDeps } from '../core/rotation.ts';
import type { SecretValue } from '../core/secret-value.ts';
import { AwsDiscovery } from './aws/aws-discovery.ts';
import { AwsSecretProvider } from './aws/aws-secret-provider.ts';
import { type AwsClients, awsClients } from './aws/clients.ts';
import { DynamoStore } from './aws/dynamodb-store.ts';
import { IamAccessKeyProvider } from './aws/iam-access-key-provider.ts';
import { IamRoleSessionRevoker } from './aws/role-session-revoker.ts';
import { SecretsManagerDelivery } from './aws/secrets-manager-delivery.ts';
import { Fingerprinter, sha256Hex } from './crypto.ts';
import type { RuntimeConfig } from './runtime-config.ts';
import { VaultApproleProvider } from './vault/approle-provider.ts';
import { VaultClient } from './vault/client.ts';
import { VaultKvDelivery } from './vault/kv-delivery.ts';
import { VaultKvProvider } from './vault/kv-provider.ts';
import { VaultLeaseRevoker } from './vault/lease-revoker.ts';
import { VaultTokenProvider } from './vault/token-provider.ts';
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
  const providers = new Map<IdentityKind, CredentialProvider>([
    [
      'aws-iam-access-key',
      new IamAccessKeyProvider({ iam: aws.iam, endpoint: config.aws }) as CredentialProvider,
    ],
    [
      'aws-secret',
      new AwsSecretProvider({ secrets: aws.secrets, random: randomBytes }) as CredentialProvider,
    ],
  ]);
  const deliveries = new Map<string, DeliveryTarget>([
    ['aws-secret', new SecretsManagerDelivery({ secrets: aws.secrets }) as DeliveryTarget],
  ]);
  if (vault) {
    providers.set('vault-token', new VaultTokenProvider({ client: vault }) as CredentialProvider);
    providers.set(
      'vault-approle-secret-id',
      new VaultApproleProvider({ client: vault }) as CredentialProvider,
    );
    providers.set(
      'vault-kv',
      new VaultKvProvider({ client: vault, random: randomBytes }) as CredentialProvider,
    );
    deliveries.set('vault-kv', new VaultKvDelivery({ client: vault }) as DeliveryTarget);
  }
  const missing = (what: string) =>
    new KeywardenError(
      `no ${what} is configured: Vault kinds need a Vault address and token (KEYWARDEN_VAULT_ADDR)`,
    );
  /** Everything the rotation engine needs; `actor` names who runs it in the audit trail. */
  const rotationDeps = (actor: string, overrides: Partial<RotationDeps> = {}): RotationDeps => ({
    store,
    audit: store,
    clock,
    newId: randomUUID,
    provider: (kind) => providers.get(kind) ?? throwError(missing(`provider for ${kind}`)),
    delivery: (type) => deliveries.get(type) ?? throwError(missing(`delivery target of type ${type}`)),
    fingerprint: (secret: SecretValue) => fingerprinter.of(secret.reveal()),
    actor,
    ...overrides,
  });
  const sessions = new IamRoleSessionRevoker({ iam: aws.iam, now: () => clock.now() });
  const leases = vault ? new VaultLeaseRevoker({ client: vault }) : undefined;
  /** Everything the revocation engine needs; re-issue rotates through `rotationDeps(actor)`. */
  const campaignDeps = (actor: string, overrides: Partial<RotationDeps> = {}): CampaignDeps => ({
    campaigns: store,
    identities: store,
    rotation: rotationDeps(actor, overrides),
    sessions,
    ...(leases ? { leases } : {}),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    random: Math.random,
  });
  return {
    config,
    rotationDeps,
    campaignDeps,
    limit: pLimit(config.rotationConcurrency),
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

function throwError(error: Error): never {
  throw error;
}
