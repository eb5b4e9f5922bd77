/**
 * The composition, in parts. A part is a function of a {@link Composition} (the configuration,
 * the clock, and every part already built): the AWS clients one by one, the state store, Vault,
 * the rotation registries, campaigns, break-glass, grant reports and discovery. A Lambda handler
 * asks its composition for the parts its work uses and nothing else, so its bundle holds only
 * those adapters and SDK clients (esbuild drops every part no one asks for: the package is
 * `"sideEffects": false`); {@link wire} asks for them all, for the CLI's local mode, the local
 * runtime, the benches and the tests.
 *
 * The handlers import this module; wiring.ts adds the containment alerts part (for the exposure
 * scanner, the CLI and the local runtime). Dropping a part is not enough to keep its module out of
 * a bundle's build: esbuild reads every module statically reachable from the entry, and a dynamic
 * `import()` of an ES module package found there, even in a module it then drops (the SNS alerts
 * load `@aws-sdk/client-sns` on the first alert), makes it wrap every SDK module that package
 * shares with the clients in use in a lazy initializer: ~8 kB more of every bundle, and their
 * import slower. So a module that only the alerts need stays out of this one's imports.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SchedulerClient } from '@aws-sdk/client-scheduler';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { STSClient } from '@aws-sdk/client-sts';
import pLimit from 'p-limit';
import type { BreakglassDeps } from '../core/breakglass.ts';
import type { CampaignDeps } from '../core/campaign-engine.ts';
import { type ApprovalDeps, approvalGate } from '../core/ci-approval.ts';
import type { CiExchangeDeps } from '../core/ci-exchange.ts';
import type { DiscoveryDeps } from '../core/discovery-run.ts';
import { KeywardenError } from '../core/errors.ts';
import type { ExposureDeps } from '../core/exposure.ts';
import type { BreakglassTarget } from '../core/grant.ts';
import { type GrantReportDeps, grantReportOf } from '../core/grant-report-of.ts';
import type { Identity } from '../core/identity.ts';
import type {
  ApprovalSigner,
  AuditLog,
  BreakglassConfigStore,
  CiAwsIssuer,
  CiConfigStore,
  CiCredentialStore,
  Clock,
  DeliveryLedger,
  DiscoverySource,
  FindingStore,
  GrantExpiryScheduler,
  GrantIssuer,
  GrantStore,
  IdentityStore,
  SessionRevoker,
} from '../core/ports.ts';
import type { RotationDeps } from '../core/rotation.ts';
import { credentialPart } from '../core/secret-shape.ts';
import type { SecretValue } from '../core/secret-value.ts';
import { BlockListRanges } from './address-ranges.ts';
import { AwsDiscovery } from './aws/aws-discovery.ts';
import { AwsSecretProvider } from './aws/aws-secret-provider.ts';
import { IamCiSessionDeny } from './aws/ci-role-deny.ts';
import { RoleDenyCiSessions } from './aws/ci-session-deny.ts';
import { StsCiSessionIssuer } from './aws/ci-session-issuer.ts';
import {
  type AwsClients,
  dynamoDbClient,
  iamClient,
  s3Client,
  schedulerClient,
  secretsClient,
  stsClient,
} from './aws/clients.ts';
import { dynamoApprovalLedger } from './aws/dynamodb-approval-ledger.ts';
import { dynamoAuditLog } from './aws/dynamodb-audit-log.ts';
import { dynamoBreakglassConfigStore } from './aws/dynamodb-breakglass-config-store.ts';
import type { DynamoBreakglassStore } from './aws/dynamodb-breakglass-store.ts';
import { dynamoCampaignStore } from './aws/dynamodb-campaign-store.ts';
import { dynamoCiConfigStore } from './aws/dynamodb-ci-config-store.ts';
import { dynamoCiStore } from './aws/dynamodb-ci-store.ts';
import { dynamoDeliveryLedger } from './aws/dynamodb-delivery-ledger.ts';
import { dynamoExposureStore } from './aws/dynamodb-exposure-store.ts';
import { dynamoFindingStore } from './aws/dynamodb-finding-store.ts';
import { dynamoGrantStore } from './aws/dynamodb-grant-store.ts';
import { dynamoIdentityStore } from './aws/dynamodb-identity-store.ts';
import { dynamoRotationStore } from './aws/dynamodb-rotation-store.ts';
import type { DynamoStore } from './aws/dynamodb-store.ts';
import { DynamoTable } from './aws/dynamodb-table.ts';
import { EventBridgeGrantExpiryScheduler } from './aws/grant-expiry-scheduler.ts';
import { IamAccessKeyProvider } from './aws/iam-access-key-provider.ts';
import { KmsApprovalSigner, kmsClient } from './aws/kms-approval-signer.ts';
import { signedLambdaInvoke } from './aws/lambda-invoke.ts';
import {
  IamRoleDeny,
  LambdaRoleDeny,
  ROLE_DENY_FUNCTION_ENV,
  type RoleDenyClient,
  RoleDenyGrantIssuer,
  RoleDenySessionRevoker,
} from './aws/role-deny-client.ts';
import { IamRoleSessionRevoker } from './aws/role-session-revoker.ts';
import { type PutObject, signedPutObject } from './aws/s3-put-object.ts';
import { SecretsManagerDelivery } from './aws/secrets-manager-delivery.ts';
import { StsGrantIssuer } from './aws/sts-grant-issuer.ts';
import type { LiveListing } from './campaign-launcher.ts';
import { Fingerprinter, sha256Hex } from './crypto.ts';
import { JoseCiTokenVerifier } from './oidc/jose-verifier.ts';
import {
  type DeliveryRegistry,
  deliveryFor,
  notConfigured,
  type ProviderRegistry,
  providerFor,
} from './provider-registry.ts';
import type { RuntimeConfig } from './runtime-config.ts';
import { approleRoleId, VaultApproleProvider } from './vault/approle-provider.ts';
import { VaultAuditRemoteUse } from './vault/audit-remote-use.ts';
import { VaultAuditUsage } from './vault/audit-usage.ts';
import { VaultCiTokenIssuer } from './vault/ci-token-issuer.ts';
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
 * The configuration, the clock and the options every part reads, and each part built at most
 * once: two parts that use IAM share one client, the campaigns re-issue through the same
 * rotation registries the API lists with.
 */
export class Composition {
  readonly #built = new Map<Part<unknown>, unknown>();
  constructor(
    readonly config: RuntimeConfig,
    readonly clock: Clock = systemClock,
    readonly options: WireOptions = wireOptionsFromEnv(),
  ) {}

  /** What `part` builds from this composition, built on first use and shared after. */
  get<T>(part: Part<T>): T {
    if (!this.#built.has(part)) this.#built.set(part, part(this));
    return this.#built.get(part) as T;
  }
}

/** One piece of the composition, built from the others it asks for. */
export type Part<T> = (composition: Composition) => T;

export const iam: Part<IAMClient> = (c) => iamClient(c.config.aws);
export const sts: Part<STSClient> = (c) => stsClient(c.config.aws);
export const secrets: Part<SecretsManagerClient> = (c) => secretsClient(c.config.aws);
export const dynamodb: Part<DynamoDBClient> = (c) => dynamoDbClient(c.config.aws);
/** The SDK's S3 client: the local runtime's (creating the bucket, reading the plan); no Lambda function asks for it. */
export const s3: Part<S3Client> = (c) => s3Client(c.config.aws);
/** Writes one object to S3 (the plan's targets, campaign and discovery reports) without the S3 client. */
export const putObject: Part<PutObject> = (c) => signedPutObject(c.config.aws);
export const scheduler: Part<SchedulerClient> = (c) => schedulerClient(c.config.aws);
export const kms: Part<KMSClient> = (c) => kmsClient(c.config.aws);

/** The state table's layer, which every store port below is built over. */
const table: Part<DynamoTable> = (c) =>
  new DynamoTable({ client: c.get(dynamodb), tableName: c.config.tableName });

/** The hash-chained audit trail: one per process, so a burst of appends goes in one write. */
export const auditLog: Part<AuditLog> = (c) =>
  dynamoAuditLog(c.get(table), { clock: c.clock, digest: sha256Hex });

/** Grants, on the state table. */
const grantStore: Part<GrantStore> = (c) => dynamoGrantStore(c.get(table));

/** The break-glass roles and people, as last synced from the inventory. */
export const breakglassConfigStore: Part<BreakglassConfigStore> = (c) =>
  dynamoBreakglassConfigStore(c.get(table), c.clock);

/** The inventory's `ci` section (trust policies, gates), on the state table. */
const ciConfigStore: Part<CiConfigStore> = (c) => dynamoCiConfigStore(c.get(table), c.clock);

/** The Slack deliveries already handled (retries are duplicates), on the state table. */
export const deliveryLedger: Part<DeliveryLedger> = (c) => dynamoDeliveryLedger(c.get(table), c.clock);

/** The inventory's identities, on the state table. */
export const identities: Part<IdentityStore> = (c) => dynamoIdentityStore(c.get(table));

/** Campaigns, their targets and re-issue records, on the state table. */
export const campaignStore: Part<ReturnType<typeof dynamoCampaignStore>> = (c) =>
  dynamoCampaignStore(c.get(table));

/** Discovery's findings and their claims, on the state table. */
const findingStore: Part<FindingStore> = (c) => dynamoFindingStore(c.get(table));

/** Credential versions and rotation state, on the state table. */
const versions: Part<ReturnType<typeof dynamoRotationStore>> = (c) => dynamoRotationStore(c.get(table));

/**
 * The state table: the store of every port but the inventory's sections and the Slack delivery
 * ledger (`store`, as dynamodb-store.ts composes it), and those (`breakglassStore`, as
 * dynamodb-breakglass-store.ts does). Built here from the parts above, so that a part asking for
 * a few ports (break-glass: grants, the audit trail and its configuration; rotation: versions
 * and the audit trail) shares their one audit trail, and a function that asks for no more
 * carries no other port, nor builds the others' schemas when its module is imported.
 */
export const stores = (c: Composition): { store: DynamoStore; breakglassStore: DynamoBreakglassStore } => ({
  store: {
    ...c.get(identities),
    ...c.get(auditLog),
    ...c.get(findingStore),
    ...c.get(versions),
    ...c.get(grantStore),
    ...c.get(campaignStore),
  },
  breakglassStore: {
    ...c.get(breakglassConfigStore),
    ...c.get(ciConfigStore),
    ...c.get(deliveryLedger),
  },
});

/** CI exchanges and spent token ids, on the state table. */
export const ciCredentials: Part<CiCredentialStore> = (c) => dynamoCiStore(c.get(table));

/** Artifact approvals, append-only, on the state table. */
const approvalLedger: Part<ReturnType<typeof dynamoApprovalLedger>> = (c) =>
  dynamoApprovalLedger(c.get(table));

/** CI exchanges, spent token ids and artifact approvals, on the same table. */
export const ciStores = (c: Composition) => ({
  credentials: c.get(ciCredentials),
  ledger: c.get(approvalLedger),
});

/**
 * The store ports the use monitor reads and writes: the watched identities and their versions,
 * the findings, the audit trail, and the campaigns a containment stores; no grants, inventory
 * sections or Slack deliveries.
 */
export const monitorStore = (c: Composition) => ({
  ...c.get(identities),
  ...c.get(versions),
  ...c.get(findingStore),
  ...c.get(auditLog),
  ...c.get(campaignStore),
});

/** The Vault client, when the configuration names a Vault. */
export const vault: Part<VaultClient | undefined> = ({ config }) =>
  config.vault ? new VaultClient({ addr: config.vault.addr, token: config.vault.token }) : undefined;

/** The fingerprint of credential values: an HMAC under the deployment's key, never the value. */
export const fingerprinter: Part<Fingerprinter> = (c) => new Fingerprinter(c.config.fingerprintKey);

/**
 * Everything the rotation engine needs, over the provider of each kind and the delivery target
 * of each type configured (Vault's only with a Vault); `actor` names who runs it in the audit trail.
 */
export const rotation = (c: Composition) => {
  const client = c.get(vault);
  const providers: ProviderRegistry = {
    'aws-iam-access-key': new IamAccessKeyProvider({ iam: c.get(iam), endpoint: c.config.aws }),
    'aws-secret': new AwsSecretProvider({ secrets: c.get(secrets), random: randomBytes }),
    ...(client
      ? {
          'vault-token': new VaultTokenProvider({ client }),
          'vault-approle-secret-id': new VaultApproleProvider({ client }),
          'vault-kv': new VaultKvProvider({ client, random: randomBytes }),
        }
      : {}),
  };
  const deliveries: DeliveryRegistry = {
    'aws-secret': new SecretsManagerDelivery({ secrets: c.get(secrets) }),
    ...(client ? { 'vault-kv': new VaultKvDelivery({ client }) } : {}),
  };
  const store = c.get(versions);
  const audit = c.get(auditLog);
  const fingerprint = c.get(fingerprinter);
  return (actor: string, overrides: Partial<RotationDeps> = {}): RotationDeps => ({
    store,
    audit,
    clock: c.clock,
    newId: randomUUID,
    providerFor: providerFor(providers),
    deliveryFor: deliveryFor(deliveries),
    fingerprint: (secret: SecretValue, identity?: Identity) =>
      fingerprint.of(credentialPart(identity, secret.reveal())),
    actor,
    ...overrides,
  });
};

/** The role-deny function's client when deny policies go through it (AWS); unset: IAM directly. */
export const roleDeny: Part<LambdaRoleDeny | undefined> = ({ config, options }) =>
  options.roleDenyFunction
    ? new LambdaRoleDeny({
        invoke: signedLambdaInvoke(config.aws),
        functionName: options.roleDenyFunction,
      })
    : undefined;

/** Deny policies by IAM directly (break-glass grants, campaigns, CI jobs): what the role-deny function runs. */
export const iamRoleDeny: Part<IamRoleDeny> = (c) =>
  new IamRoleDeny({
    grants: c.get(stsIssuer),
    sessions: c.get(iamSessions),
    ci: new IamCiSessionDeny({ iam: c.get(iam) }),
  });

/** The door to deny policies: the role-deny function in AWS, IAM directly locally. */
const denyDoor: Part<RoleDenyClient> = (c) => c.get(roleDeny) ?? c.get(iamRoleDeny);

/** Role sessions ended on IAM directly: what the role-deny function runs, and the local stack. */
export const iamSessions: Part<IamRoleSessionRevoker> = (c) =>
  new IamRoleSessionRevoker({ iam: c.get(iam), now: () => c.clock.now() });

/** Everything the revocation engine needs; re-issue rotates through the same {@link rotation}. */
export const campaigns = (c: Composition) => {
  const deny = c.get(roleDeny);
  const sessions: SessionRevoker = deny ? new RoleDenySessionRevoker({ deny }) : c.get(iamSessions);
  const client = c.get(vault);
  const leases = client ? new VaultLeaseRevoker({ client }) : undefined;
  const campaignPorts = c.get(campaignStore);
  const identityPorts = c.get(identities);
  const rotationDeps = c.get(rotation);
  return (actor: string, overrides: Partial<RotationDeps> = {}): CampaignDeps => ({
    campaigns: campaignPorts,
    identities: identityPorts,
    rotation: rotationDeps(actor, overrides),
    sessions,
    ...(leases ? { leases } : {}),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    random: Math.random,
  });
};

/** The STS issuer of role grants (IAM for its deny policies when there is no role-deny function). */
export const stsIssuer: Part<StsGrantIssuer> = (c) =>
  new StsGrantIssuer({ sts: c.get(sts), iam: c.get(iam) });

/** The `aws-role` issuer: STS AssumeRole, with deny policies through the role-deny function in AWS, locally on IAM directly. */
const awsRoleIssuer: Part<GrantIssuer> = (c) => {
  const deny = c.get(roleDeny);
  return deny ? new RoleDenyGrantIssuer({ issuer: c.get(stsIssuer), deny }) : c.get(stsIssuer);
};

/**
 * The `aws-role` issuer of a function that only ends grants (grant expiry, the sweeper): revokes
 * and releases through the role-deny function, never issues, so its bundle carries no STS or IAM
 * client (its role may call neither).
 */
const awsRoleEnder: Part<GrantIssuer> = (c) => {
  const deny = c.get(roleDeny) ?? throwError(notConfigured('role-deny function for ending aws-role grants'));
  return new RoleDenyGrantIssuer({ issuer: notIssuing, deny });
};

/** What RoleDenyGrantIssuer issues with in a function that ends grants: nothing (it revokes through the door). */
const notIssuing: GrantIssuer = {
  issue: () => Promise.reject(new KeywardenError('this function ends grants and issues none')),
  revoke: () =>
    Promise.reject(new KeywardenError('this function ends grants through the role-deny function')),
};

/** The grants' one-time expiry schedules, on EventBridge Scheduler. */
const expirySchedules: Part<GrantExpiryScheduler> = (c) =>
  new EventBridgeGrantExpiryScheduler({
    scheduler: c.get(scheduler),
    groupName: c.config.breakglass.scheduleGroup,
    targetArn: c.config.breakglass.expiryFunctionArn,
    roleArn: c.config.breakglass.scheduleRoleArn,
  });

/**
 * The schedules of a function that touches none, so its bundle carries no Scheduler client: the
 * grant-expiry function only ends grants on time (core `expire`), which never creates a schedule
 * (approval does) nor deletes one (an early revocation does; the schedule that fired deletes
 * itself); the Slack ingress only records requests.
 */
const notScheduling: Part<GrantExpiryScheduler> = () => ({
  scheduleExpiry: () => Promise.reject(new KeywardenError('this function creates no grant schedules')),
  cancelExpiry: () => Promise.reject(new KeywardenError('this function deletes no grant schedules')),
});

/** Break-glass over `awsRole` and `schedules`: the grant issuer of each target type configured, the store. */
const breakglassOver =
  (awsRole: Part<GrantIssuer>, schedules: Part<GrantExpiryScheduler>): Part<BreakglassDeps> =>
  (c) => {
    const { config } = c;
    const client = c.get(vault);
    const issuers: Partial<Record<BreakglassTarget['type'], GrantIssuer>> = {
      'aws-role': c.get(awsRole),
      ...(client
        ? {
            'vault-policies': new VaultGrantIssuer({
              client,
              wrapTtlSeconds: config.breakglass.wrapTtlSeconds,
            }),
          }
        : {}),
    };
    return breakglassWith(
      c,
      (type) => issuers[type] ?? throwError(notConfigured(`issuer for break-glass targets of type ${type}`)),
      c.get(schedules),
    );
  };

/** Break-glass over the state table's grants, audit trail and configuration, with `issuer` and `scheduler`. */
const breakglassWith = (
  c: Composition,
  issuer: BreakglassDeps['issuer'],
  scheduler: GrantExpiryScheduler,
): BreakglassDeps => {
  const configStore = c.get(breakglassConfigStore);
  return {
    grants: c.get(grantStore),
    audit: c.get(auditLog),
    clock: c.clock,
    config: () => configStore.getBreakglassConfig(),
    issuer,
    scheduler,
    newGrantId: () => newGrantId(c.clock.now()),
  };
};

// `__PURE__`: a bundle that asks for none keeps none of the calls, nor the clients behind them.
/** Break-glass: requests, approvals, credentials (STS for roles) and their ending. */
export const breakglass: Part<BreakglassDeps> = /* @__PURE__ */ breakglassOver(
  awsRoleIssuer,
  expirySchedules,
);
/** Break-glass for the sweeper, which only ends grants: no STS, no IAM. */
export const breakglassEnding: Part<BreakglassDeps> = /* @__PURE__ */ breakglassOver(
  awsRoleEnder,
  expirySchedules,
);
/** Break-glass for the grant-expiry function, which only ends grants on time: no STS, no IAM, no Scheduler. */
export const breakglassExpiring: Part<BreakglassDeps> = /* @__PURE__ */ breakglassOver(
  awsRoleEnder,
  notScheduling,
);

/**
 * Break-glass for the Slack ingress, which records a `/breakglass` request and answers at once
 * (core `request`: the configuration, the grants, the audit trail). Approving, and so issuing
 * credentials and scheduling their end, is the Slack worker's (a button click is deferred), so
 * its bundle carries no issuer, STS, IAM, Vault or Scheduler client.
 */
export const breakglassRequesting: Part<BreakglassDeps> = (c) =>
  breakglassWith(
    c,
    (type) =>
      throwError(new KeywardenError(`this function issues no ${type} grants (the Slack worker does)`)),
    c.get(notScheduling),
  );

/**
 * What a Lambda planner (the campaigns function, the Slack worker, the use monitor, the exposure
 * scanner) takes of rotation to plan a campaign: the providers that list what is live, the audit
 * log adoptions go to, and the deliveries whose value it may read to fingerprint an adoption:
 * Vault KV (with the Vault token, where the function holds it), not Secrets Manager. Its role
 * lists keys and secret versions but may not read a secret's value (infra `grantCampaignListing`),
 * so reading one would only be refused, an AccessDenied in CloudTrail for every adopted secret of
 * every campaign; it records an adopted secret without a fingerprint instead (the CLI, whose
 * credentials read values, records it with one).
 */
export const liveListing: Part<(actor: string) => LiveListing> = (c) => {
  const deps = c.get(rotation);
  const client = c.get(vault);
  const readable = deliveryFor(client ? { 'vault-kv': new VaultKvDelivery({ client }) } : {});
  return (actor) => {
    const { providerFor, fingerprint, audit } = deps(actor);
    return { providerFor, fingerprint, audit, deliveryFor: readable };
  };
};

/**
 * What the Slack ingress's `/revoke` takes of campaigns: who may start one (break-glass's incident
 * responders, refusals audited). Planning is the Slack worker's (the command is deferred), so
 * the ingress's bundle carries no rotation registries (IAM, Secrets Manager, Vault providers).
 */
export const campaignAuthorizing = (c: Composition) => ({
  store: { ...c.get(campaignStore), ...c.get(identities), ...c.get(versions) },
  clock: c.clock,
  rotationDeps: (): never =>
    throwError(new KeywardenError('this function plans no campaigns (the Slack worker does)')),
  breakglassDeps: c.get(breakglassRequesting),
});

/**
 * What planning, storing and reading campaigns takes (functions/api/campaigns.ts): the store,
 * the rotation registries that list what is live, and break-glass's incident responders (the
 * inventory's section and the audit trail refusals go to: no grant issuer or schedules, so no
 * STS or Scheduler client in the campaigns function's bundle).
 */
export const campaignPlanning = (c: Composition) => {
  const configStore = c.get(breakglassConfigStore);
  return {
    store: c.get(stores).store,
    clock: c.clock,
    rotationDeps: c.get(liveListing),
    breakglassDeps: { config: () => configStore.getBreakglassConfig(), audit: c.get(auditLog) },
  };
};

/**
 * The per-grant report: the grant, its audit records, and its use where a trail is readable.
 * Over the grants, the inventory's section and the audit trail only (no other store port in
 * the grants function's bundle).
 */
export const grantReports = (c: Composition) => {
  const client = c.get(vault);
  const vaultAuditLog = c.config.vault?.auditLog;
  const deps: GrantReportDeps = {
    grants: c.get(grantStore),
    config: c.get(breakglassConfigStore),
    audit: c.get(auditLog),
    vaultUsage: client && vaultAuditLog ? new VaultAuditUsage({ client, logFile: vaultAuditLog }) : undefined,
    clock: c.clock,
  };
  return (grantId: string) => grantReportOf(deps, grantId);
};

const approvalSigner: Part<ApprovalSigner> = (c) =>
  new KmsApprovalSigner({ kms: c.get(kms), keyId: c.config.ci.approvalKeyId });

/** The signer of a function that records no approval (the Slack ingress reads only who may approve). */
const notSigning: Part<ApprovalSigner> = () => ({
  sign: () =>
    Promise.reject(new KeywardenError('this function records no approvals (the Slack worker does)')),
  verify: () => Promise.reject(new KeywardenError('this function verifies no approvals')),
});

/** Artifact approvals over a signer: kept append-only, approvers from the inventory. */
const approvalsWith =
  (signer: Part<ApprovalSigner>): Part<ApprovalDeps> =>
  (c) => {
    const ciConfig = c.get(ciConfigStore);
    const configStore = c.get(breakglassConfigStore);
    return {
      // The ledger alone: recording or reading approvals touches no CI exchange.
      ledger: c.get(approvalLedger),
      signer: c.get(signer),
      audit: c.get(auditLog),
      clock: c.clock,
      gates: async () => (await ciConfig.getCiConfig())?.gates ?? [],
      directory: () => configStore.getBreakglassConfig(),
      newApprovalId: () => `ap-${randomUUID()}`,
    };
  };

/** Artifact approvals, signed with the deployment's KMS key. */
export const approvals: Part<ApprovalDeps> = /* @__PURE__ */ approvalsWith(approvalSigner);
/** Who may approve, for a function that records nothing (no KMS client in its bundle). */
export const approvalReading: Part<ApprovalDeps> = /* @__PURE__ */ approvalsWith(notSigning);

/** A CI job's AWS sessions: issued by STS, ended through the deny door. */
const ciSessions: Part<StsCiSessionIssuer> = (c) =>
  new StsCiSessionIssuer({
    sts: c.get(sts),
    iam: c.get(iam),
    deny: c.get(denyDoor),
    rolePaths: c.config.ci.rolePaths,
  });

/**
 * CI job credentials: the job's OIDC token verified (jose), exchanged once, issued by Vault and
 * STS, gated on approvals, ended through the deny door.
 */
export const ciExchange: Part<CiExchangeDeps> = (c) => {
  // The inventory's sections and the audit trail: no other store port in the CI function's bundle.
  const ciConfig = c.get(ciConfigStore);
  const people = c.get(breakglassConfigStore);
  const client = c.get(vault);
  const ledger = c.get(approvalLedger);
  return {
    config: () => ciConfig.getCiConfig(),
    verifier: new JoseCiTokenVerifier({ clock: c.clock }),
    store: c.get(ciCredentials),
    vault: client ? new VaultCiTokenIssuer({ client }) : undefined,
    aws: c.get(ciSessions),
    gate: approvalGate({
      ledger,
      signer: c.get(approvalSigner),
      directory: () => people.getBreakglassConfig(),
      clock: c.clock,
    }),
    audit: c.get(auditLog),
    clock: c.clock,
    newId: () => `ci-${randomUUID()}`,
  };
};

/**
 * A CI job's AWS sessions in a function that only ends them (the CI sweeper): ended and released
 * through the role-deny function, never issued, so its bundle carries no STS or IAM client (its
 * role may call neither).
 */
const ciSessionsEnder: Part<CiAwsIssuer> = (c) => {
  const deny = c.get(roleDeny) ?? throwError(notConfigured('role-deny function for ending CI sessions'));
  const sessions = new RoleDenyCiSessions({ deny });
  return {
    issue: () => Promise.reject(new KeywardenError('this function ends CI sessions and issues none')),
    end: (request) => sessions.end(request),
    release: (request) => sessions.release(request),
  };
};

/**
 * What ending CI exchanges takes (the CI sweeper): the exchanges, their AWS sessions, the audit
 * trail; no token verifier, approvals, Vault issuer or STS, so no jose, KMS, STS or IAM in the
 * sweeper's bundle.
 */
export const ciEnding: Part<Pick<CiExchangeDeps, 'aws' | 'clock' | 'store' | 'audit'>> = (c) => ({
  aws: c.get(ciSessionsEnder),
  clock: c.clock,
  store: c.get(ciCredentials),
  audit: c.get(auditLog),
});

/**
 * Use from outside allowedRunners, and CI job tokens used after their job ended (within the watch
 * window), read from Vault's file audit device where its log is readable (the local stack).
 */
const auditTrailUsage: Part<DiscoveryDeps['usage']> = (c) => {
  const client = c.get(vault);
  const logFile = c.config.vault?.auditLog;
  return client && logFile
    ? {
        trails: [new VaultAuditRemoteUse({ client, logFile })],
        ranges: new BlockListRanges(),
        ciRecords: () =>
          c
            .get(ciCredentials)
            .listEnded(new Date(c.clock.now().getTime() - CI_ENDED_WATCH_DAYS * 86_400_000)),
      }
    : undefined;
};

/**
 * No use read: in AWS the file audit device is on Vault's own host, and no Lambda function is
 * given its log (functions/handlers/lambda-config.ts names none), so the discovery function's
 * bundle carries no trail reader, address ranges or CI exchange records.
 */
const noUsage: Part<DiscoveryDeps['usage']> = () => undefined;

/** Discovery over `usage`: the sources that list what exists (AWS, and Vault when configured) and where it is recorded. */
const discoveryOver =
  (usage: Part<DiscoveryDeps['usage']>) =>
  (c: Composition): { sources: DiscoverySource[]; discoveryDeps: DiscoveryDeps } => {
    const { config } = c;
    const client = c.get(vault);
    const sources: DiscoverySource[] = [
      new AwsDiscovery({
        iam: c.get(iam),
        secrets: c.get(secrets),
        iamPathPrefix: config.discovery.iamPathPrefix,
        secretNamePrefix: config.discovery.secretNamePrefix,
        fingerprinter: c.get(fingerprinter),
      }),
    ];
    if (client && config.vault) {
      sources.push(
        new VaultDiscovery({
          client,
          approleMounts: config.vault.approleMounts,
          kvPrefixes: config.vault.kvPrefixes,
          fingerprinter: c.get(fingerprinter),
        }),
      );
    }
    const used = c.get(usage);
    return {
      sources,
      discoveryDeps: {
        sources,
        // The inventory, the versions and the findings: no campaign, CI configuration or delivery ports.
        store: { ...c.get(identities), ...c.get(versions), ...c.get(findingStore) },
        audit: c.get(auditLog),
        clock: c.clock,
        newId: randomUUID,
        grants: c.get(grantStore),
        breakglass: c.get(breakglassConfigStore),
        ...(used ? { usage: used } : {}),
      },
    };
  };

/** Discovery, with use read from the audit device's log where it is readable. */
export const discovery = /* @__PURE__ */ discoveryOver(auditTrailUsage);
/** Discovery as the Lambda function runs it: no audit device log is readable there. */
export const discoveryInAws = /* @__PURE__ */ discoveryOver(noUsage);

/** How far back discovery looks for ended CI exchanges whose credentials are still presented. */
export const CI_ENDED_WATCH_DAYS = 7;

/** Exposure scanning: the managed credentials to match (fingerprints, AppRole role-ids), where exposures and findings are kept. */
export const exposure: Part<ExposureDeps> = (c) => {
  const { store } = c.get(stores);
  const client = c.get(vault);
  const fingerprint = c.get(fingerprinter);
  return {
    identities: store,
    versions: store,
    fingerprint: (text) => fingerprint.of(text),
    roleIdOf: client ? (identity) => approleRoleId(client, identity) : undefined,
    exposures: dynamoExposureStore(
      new DynamoTable({ client: c.get(dynamodb), tableName: c.config.tableName }),
    ),
    audit: store,
    findings: store,
    clock: c.clock,
  };
};

/** Every part composed: what the CLI's local mode, the local runtime, the benches and the tests run on. */
export function wire(
  config: RuntimeConfig,
  clock: Clock = systemClock,
  options: WireOptions = wireOptionsFromEnv(),
) {
  const c = new Composition(config, clock, options);
  const aws: AwsClients = {
    iam: c.get(iam),
    sts: c.get(sts),
    secrets: c.get(secrets),
    dynamodb: c.get(dynamodb),
    s3: c.get(s3),
    scheduler: c.get(scheduler),
  };
  const { store, breakglassStore } = c.get(stores);
  const { sources, discoveryDeps } = c.get(discovery);
  return {
    config,
    breakglassStore,
    breakglassDeps: c.get(breakglass),
    /** The per-grant report: the grant, its audit records, and its use where a trail is readable. */
    grantReportOf: c.get(grantReports),
    rotationDeps: c.get(rotation),
    campaignDeps: c.get(campaigns),
    limit: pLimit(config.rotationConcurrency),
    clock,
    aws,
    /** S3 PutObject as the Lambda functions write (the plan, reports). */
    putObject: c.get(putObject),
    vault: c.get(vault),
    store,
    /** Deny policies on roles by IAM directly: what the role-deny function runs. */
    iamRoleDeny: c.get(iamRoleDeny),
    ciExchangeDeps: c.get(ciExchange),
    approvalDeps: c.get(approvals),
    fingerprinter: c.get(fingerprinter),
    digest: sha256Hex,
    sources,
    syncDeps: { store, audit: store, clock, digest: sha256Hex },
    discoveryDeps,
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
