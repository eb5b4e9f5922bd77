import { randomBytes, randomUUID } from 'node:crypto';
import { LambdaClient } from '@aws-sdk/client-lambda';
import pLimit from 'p-limit';
import type { BreakglassDeps } from '../core/breakglass.ts';
import type { CampaignDeps } from '../core/campaign-engine.ts';
import type { BreakglassTarget } from '../core/grant.ts';
import { type GrantReportDeps, grantReportOf } from '../core/grant-report-of.ts';
import type { Identity } from '../core/identity.ts';
import type { Clock, DiscoverySource, GrantIssuer } from '../core/ports.ts';
import type { RotationDeps } from '../core/rotation.ts';
import { credentialPart } from '../core/secret-shape.ts';
import type { SecretValue } from '../core/secret-value.ts';
import { AwsDiscovery } from './aws/aws-discovery.ts';
import { AwsSecretProvider } from './aws/aws-secret-provider.ts';
import { type AwsClients, awsClientConfig, awsClients } from './aws/clients.ts';
import { dynamoBreakglassStore } from './aws/dynamodb-breakglass-store.ts';
import { dynamoStore } from './aws/dynamodb-store.ts';
import { EventBridgeGrantExpiryScheduler } from './aws/grant-expiry-scheduler.ts';
import { IamAccessKeyProvider } from './aws/iam-access-key-provider.ts';
import {
  IamRoleDeny,
  LambdaRoleDeny,
  ROLE_DENY_FUNCTION_ENV,
  RoleDenyGrantIssuer,
  RoleDenySessionRevoker,
} from './aws/role-deny-client.ts';
import { IamRoleSessionRevoker } from './aws/role-session-revoker.ts';
import { SecretsManagerDelivery } from './aws/secrets-manager-delivery.ts';
import { StsGrantIssuer } from './aws/sts-grant-issuer.ts';
import { Fingerprinter, sha256Hex } from './crypto.ts';
import {
  type DeliveryRegistry,
  deliveryFor,
  notConfigured,
  type ProviderRegistry,
  providerFor,
} from './provider-registry.ts';
import type { RuntimeConfig } from './runtime-config.ts';
import { VaultApproleProvider } from './vault/approle-provider.ts';
import { VaultAuditUsage } from './vault/audit-usage.ts';
import { VaultClient } from './vault/client.ts';
import { VaultKvDelivery } from './vault/kv-delivery.ts';
import { VaultKvProvider } from './vault/kv-provider.ts';
import { VaultLeaseRevoker } from './vault/lease-revoker.ts';
import { VaultTokenProvider } from './vault/token-provider.ts';
import { VaultDiscovery } from './vault/vault-discovery.ts';
import { VaultGrantIssuer } from './vault/vault-grant-issuer.ts';

/** The system clock: the one place outside tests that reads the time. */
export const systemClock: Clock = { now: () => new Date() };

/** How deny policies reach IAM: through the role-deny function (named), or directly. */
export interface WireOptions {
  /** The role-deny function (AWS: the only holder of iam:PutRolePolicy); unset: IAM directly. */
  roleDenyFunction?: string | undefined;
}

/** {@link WireOptions} from a Lambda's environment (the CDK stack sets the variable). */
export const wireOptionsFromEnv = (env: NodeJS.ProcessEnv = process.env): WireOptions => ({
  roleDenyFunction: env[ROLE_DENY_FUNCTION_ENV] || undefined,
});

/**
 * The composition root: adapters built once from a configuration, shared by the
 * CLI's local mode, the local runtime and the Lambda handlers.
 */
export function wire(
  config: RuntimeConfig,
  clock: Clock = systemClock,
  options: WireOptions = wireOptionsFromEnv(),
) {
  const aws: AwsClients = awsClients(config.aws);
  const fingerprinter = new Fingerprinter(config.fingerprintKey);
  const store = dynamoStore({
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
  const providers: ProviderRegistry = {
    'aws-iam-access-key': new IamAccessKeyProvider({ iam: aws.iam, endpoint: config.aws }),
    'aws-secret': new AwsSecretProvider({ secrets: aws.secrets, random: randomBytes }),
    ...(vault
      ? {
          'vault-token': new VaultTokenProvider({ client: vault }),
          'vault-approle-secret-id': new VaultApproleProvider({ client: vault }),
          'vault-kv': new VaultKvProvider({ client: vault, random: randomBytes }),
        }
      : {}),
  };
  const deliveries: DeliveryRegistry = {
    'aws-secret': new SecretsManagerDelivery({ secrets: aws.secrets }),
    ...(vault ? { 'vault-kv': new VaultKvDelivery({ client: vault }) } : {}),
  };
  /** Everything the rotation engine needs; `actor` names who runs it in the audit trail. */
  const rotationDeps = (actor: string, overrides: Partial<RotationDeps> = {}): RotationDeps => ({
    store,
    audit: store,
    clock,
    newId: randomUUID,
    providerFor: providerFor(providers),
    deliveryFor: deliveryFor(deliveries),
    fingerprint: (secret: SecretValue, identity?: Identity) =>
      fingerprinter.of(credentialPart(identity, secret.reveal())),
    actor,
    ...overrides,
  });
  const iamSessions = new IamRoleSessionRevoker({ iam: aws.iam, now: () => clock.now() });
  const stsIssuer = new StsGrantIssuer({ sts: aws.sts, iam: aws.iam });
  // Deny policies: in AWS through the one function that may put them, locally on IAM directly.
  const roleDeny = options.roleDenyFunction
    ? new LambdaRoleDeny({
        lambda: new LambdaClient(awsClientConfig(config.aws)),
        functionName: options.roleDenyFunction,
      })
    : undefined;
  const sessions = roleDeny ? new RoleDenySessionRevoker({ deny: roleDeny }) : iamSessions;
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
  const breakglassStore = dynamoBreakglassStore({
    client: aws.dynamodb,
    tableName: config.tableName,
    clock,
  });
  const grantIssuers: Partial<Record<BreakglassTarget['type'], GrantIssuer>> = {
    'aws-role': roleDeny ? new RoleDenyGrantIssuer({ issuer: stsIssuer, deny: roleDeny }) : stsIssuer,
    ...(vault
      ? {
          'vault-policies': new VaultGrantIssuer({
            client: vault,
            wrapTtlSeconds: config.breakglass.wrapTtlSeconds,
          }),
        }
      : {}),
  };
  const breakglassDeps: BreakglassDeps = {
    grants: store,
    audit: store,
    clock,
    config: () => breakglassStore.getBreakglassConfig(),
    issuer: (type) =>
      grantIssuers[type] ?? throwError(notConfigured(`issuer for break-glass targets of type ${type}`)),
    scheduler: new EventBridgeGrantExpiryScheduler({
      scheduler: aws.scheduler,
      groupName: config.breakglass.scheduleGroup,
      targetArn: config.breakglass.expiryFunctionArn,
      roleArn: config.breakglass.scheduleRoleArn,
    }),
    newGrantId: () => newGrantId(clock.now()),
  };
  const vaultUsage =
    vault && vaultConfig?.auditLog
      ? new VaultAuditUsage({ client: vault, logFile: vaultConfig.auditLog })
      : undefined;
  const grantReportDeps: GrantReportDeps = {
    grants: store,
    config: breakglassStore,
    audit: store,
    vaultUsage,
    clock,
  };
  return {
    config,
    breakglassStore,
    breakglassDeps,
    /** The per-grant report: the grant, its audit records, and its use where a trail is readable. */
    grantReportOf: (grantId: string) => grantReportOf(grantReportDeps, grantId),
    rotationDeps,
    campaignDeps,
    limit: pLimit(config.rotationConcurrency),
    clock,
    aws,
    vault,
    store,
    /** Deny policies on roles by IAM directly: what the role-deny function runs. */
    iamRoleDeny: new IamRoleDeny({ grants: stsIssuer, sessions: iamSessions }),
    fingerprinter,
    digest: sha256Hex,
    sources,
    syncDeps: { store, audit: store, clock, digest: sha256Hex },
    discoveryDeps: {
      sources,
      store,
      audit: store,
      clock,
      newId: randomUUID,
      grants: store,
      breakglass: breakglassStore,
    },
  };
}
export type Services = ReturnType<typeof wire>;

/** A grant id: sortable, and valid as an STS SourceIdentity and session name ([\w+=,.@-], ≤ 64). */
export function newGrantId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 13).toLowerCase();
  return `bg-${stamp}-${randomBytes(4).toString('hex')}`;
}

function throwError(error: Error): never {
  throw error;
}
