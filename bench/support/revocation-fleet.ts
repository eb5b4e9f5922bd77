/**
 * A fleet of real credentials on the local stack for mass-revocation runs at scale: the
 * 2,000-target spec (test/integration/campaign-scale.test.ts) and the revocation
 * benchmark (bench/revocation.ts) build it the same way.
 *
 * Built in bulk and concurrently: credentials are created straight on OpenBao and moto,
 * and the inventory and the credential versions keywarden would have recorded are
 * written to the state table directly, 25 items a call (no first rotation per identity, which would
 * cost more than the campaign itself). The shape, for `total` targets (2,000 by default):
 *
 * | kind                     | targets        | how                                             |
 * |--------------------------|----------------|-------------------------------------------------|
 * | vault-token              | the rest (~55%)| one orphan token per identity, by accessor       |
 * | vault-approle-secret-id  | 20%            | one AppRole role per identity, one secret-id each |
 * | vault-kv                 | 15%            | three KV v2 versions per path, all destroyed     |
 * | aws-iam-access-key       | 5%             | two keys per IAM user (deactivated, deleted)     |
 * | aws-secret               | 5%             | the AWSPREVIOUS version of a secret (label removed) |
 * | vault-lease              | 1              | a whole lease prefix: 20 AppRole logins           |
 * | aws-role-session         | 1              | a role whose sessions a deny policy ends          |
 *
 * Secrets Manager targets are previous versions only: revoking a current one first
 * rotates the secret (campaign.test.ts covers that), which would measure rotation. A plan
 * made from what is live (planAndStoreCampaign) also finds each secret's current version and
 * replaces it: one target more per secret. An AppRole identity owns every secret-id of its
 * role, so each has a role of its own, as a pipeline's AppRole does.
 *
 * With `preexisting`, that many more credentials are made the way a team's pipelines made
 * them before keywarden (bench/support/preexisting-fleet.ts): straight through the SDK
 * and the Vault API, declared in the same inventory under the same selector, with no
 * credential version recorded. A campaign finds them only by asking the providers.
 *
 * No secret value is kept or printed; the servers are asked about handles only.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  CreateAccessKeyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  type IAMClient,
  ListAccessKeysCommand,
  ListRolePoliciesCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  PutSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import pLimit from 'p-limit';
import { Keys } from '../../functions/adapters/aws/dynamodb-store.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import type { PlanInput } from '../../functions/core/campaign.ts';
import type { CredentialVersion } from '../../functions/core/credential-version.ts';
import { type Identity, IdentitySchema } from '../../functions/core/identity.ts';
import { makePreexisting, type PreexistingCredentials } from './preexisting-fleet.ts';

/** How many targets of each kind a fleet of `total` targets has. */
export function fleetShape(total: number) {
  const approle = Math.round(total * 0.2);
  const kv = Math.round((total * 0.15) / 3) * 3;
  const iam = Math.round((total * 0.05) / 2) * 2;
  const secrets = Math.round(total * 0.05) - 2;
  const token = total - approle - kv - iam - secrets - 2;
  if (token < 1 || secrets < 0) throw new RangeError(`fleet: expected at least 60 targets, got ${total}`);
  return {
    'vault-token': token,
    'vault-approle-secret-id': approle,
    'vault-kv': kv,
    'aws-iam-access-key': iam,
    'aws-secret': secrets,
    'vault-lease': 1,
    'aws-role-session': 1,
  } as const;
}

/** A fleet on the servers and in the state store, and what a campaign must end. */
export interface RevocationFleet {
  prefix: string;
  environment: string;
  /** Selects exactly this fleet: `env=<environment>`. */
  selector: string;
  identities: Identity[];
  versions: CredentialVersion[];
  /** Planning input for `planCampaign`: every identity with its recorded versions. */
  subjects: PlanInput['subjects'];
  /** AppRole roles, for checking that their secret-ids are gone (the pre-existing ones' too). */
  roles: string[];
  /** Credentials made outside keywarden, declared but never recorded; none unless asked for. */
  preexisting: PreexistingCredentials;
  lease: { mount: string; prefix: string };
  role: { name: string; arn: string };
  total: number;
}

interface FleetContext {
  /** Adapters that reach the servers directly (never through a fault proxy). */
  services: Services;
  /** A Vault client with the dev root token, straight to OpenBao. */
  vault: VaultClient;
}

const policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };

/** Creates the IAM role `/<prefix>/<roleName>` that any principal may assume: a role whose live sessions a campaign ends. */
export function createAssumableRole(iam: IAMClient, prefix: string, roleName: string): Promise<unknown> {
  return iam.send(
    new CreateRoleCommand({
      RoleName: roleName,
      Path: `/${prefix}/`,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'sts:AssumeRole' }],
      }),
    }),
  );
}

/** What else a fleet holds. */
export interface FleetOptions {
  /** Credentials made outside keywarden and declared, beside the `total` recorded targets. @default 0 */
  preexisting?: number;
}

/**
 * Builds a fleet of `total` recorded targets (and `options.preexisting` declared but
 * unrecorded credentials) under a fresh prefix and environment.
 */
export async function buildFleet(
  ctx: FleetContext,
  total = 2_000,
  options: FleetOptions = {},
): Promise<RevocationFleet> {
  const { services, vault } = ctx;
  const { iam, secrets } = services.aws;
  const shape = fleetShape(total);
  const tag = randomBytes(3).toString('hex');
  const prefix = `kwf-${tag}`;
  const environment = `incident-${tag}`;
  const readPolicy = `${prefix}-read`;
  const now = new Date().toISOString();
  const vaultLimit = pLimit(32);
  const awsLimit = pLimit(12);
  const identities: Identity[] = [];
  const versions: CredentialVersion[] = [];
  const base = (id: string) => ({
    id,
    owner: `team-${['payments', 'platform', 'data'][identities.length % 3]}`,
    purpose: 'mass revocation at scale',
    pipeline: { repo: `acme/app-${identities.length % 7}`, stage: 'deploy', environment },
    policy,
  });
  const add = (
    identity: unknown,
    handles: { handle: string; stage: CredentialVersion['stage'] }[],
    origin: CredentialVersion['origin'] = 'adopted',
  ) => {
    const parsed = IdentitySchema.parse(identity);
    identities.push(parsed);
    for (const [i, { handle, stage }] of handles.entries()) {
      versions.push({
        identityId: parsed.id,
        versionId: `${parsed.id}-v${i + 1}`,
        kind: parsed.kind,
        stage,
        handle,
        origin,
        issuedAt: now,
      });
    }
  };

  await vault.write(`sys/policies/acl/${readPolicy}`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });

  // Vault tokens: one orphan token per identity.
  const tokens = Array.from({ length: shape['vault-token'] }, (_, i) =>
    vaultLimit(async () => {
      const id = `${prefix}-tok-${i}`;
      const token = await vault.createToken(
        // As a rotation issues it: keywarden's meta names the identity and the version it records.
        {
          policies: [readPolicy],
          meta: { 'keywarden-identity': id, 'keywarden-version': `${id}-v1` },
          ttl: '720h',
        },
        { orphan: true },
      );
      return { id, accessor: token.accessor };
    }),
  );

  // AppRole: one role per identity, one secret-id each (an identity owns every secret-id of its role).
  const roles = Array.from({ length: shape['vault-approle-secret-id'] }, (_, r) => `${prefix}-role-${r}`);
  const secretIds = Promise.all(
    roles.map((role, i) =>
      vaultLimit(async () => {
        await vault.write(`auth/approle/role/${role}`, { token_policies: [readPolicy], token_ttl: '5m' });
        const created = await vault.write(`auth/approle/role/${role}/secret-id`, {});
        return { id: `${prefix}-approle-${i}`, role, accessor: String(created.data?.secret_id_accessor) };
      }),
    ),
  );

  // KV: three versions per path.
  const kvPaths = Array.from({ length: shape['vault-kv'] / 3 }, (_, i) =>
    vaultLimit(async () => {
      const path = `${prefix}/kv-${i}`;
      for (let v = 0; v < 3; v += 1) {
        await vault.write(`secret/data/${path}`, { data: { value: randomBytes(18).toString('base64url') } });
      }
      return { id: `${prefix}-kv-${i}`, path };
    }),
  );

  // IAM: two keys per user.
  const users = Array.from({ length: shape['aws-iam-access-key'] / 2 }, (_, i) =>
    awsLimit(async () => {
      const userName = `${prefix}-user-${i}`;
      await iam.send(new CreateUserCommand({ UserName: userName, Path: `/${prefix}/` }));
      const keys: string[] = [];
      for (let k = 0; k < 2; k += 1) {
        const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
        keys.push(AccessKey?.AccessKeyId ?? '');
      }
      return { id: userName, userName, keys };
    }),
  );

  // Secrets Manager: a secret with a second value, its first version now AWSPREVIOUS.
  const secretList = Array.from({ length: shape['aws-secret'] }, (_, i) =>
    awsLimit(async () => {
      const secretId = `${prefix}/secret-${i}`;
      const created = await secrets.send(
        new CreateSecretCommand({ Name: secretId, SecretString: randomBytes(18).toString('base64url') }),
      );
      await secrets.send(
        new PutSecretValueCommand({
          SecretId: secretId,
          SecretString: randomBytes(18).toString('base64url'),
        }),
      );
      return { id: `${prefix}-secret-${i}`, secretId, previous: created.VersionId ?? '' };
    }),
  );

  // A whole lease prefix: AppRole logins on a mount of the fleet's own.
  const mount = `${prefix}-leases`;
  const leases = (async () => {
    await vault.write(`sys/auth/${mount}`, { type: 'approle' });
    await vault.write(`auth/${mount}/role/ci`, { token_policies: [readPolicy], token_ttl: '1h' });
    const roleId = String((await vault.read(`auth/${mount}/role/ci/role-id`))?.data?.role_id);
    const secretId = String((await vault.write(`auth/${mount}/role/ci/secret-id`, {})).data?.secret_id);
    await Promise.all(
      Array.from({ length: 20 }, () =>
        vaultLimit(() => vault.write(`auth/${mount}/login`, { role_id: roleId, secret_id: secretId })),
      ),
    );
  })();

  // A role whose live sessions the campaign ends with a deny policy.
  const roleName = `${prefix}-deployer`;
  const role = createAssumableRole(iam, prefix, roleName);

  // What the team's own scripts made before keywarden: declared below, never recorded.
  const preexisting = makePreexisting(
    { services, vault, prefix, policy: readPolicy },
    options.preexisting ?? 0,
  );

  for (const { id, accessor } of await Promise.all(tokens)) {
    add(
      { ...base(id), kind: 'vault-token', scope: { policies: [readPolicy], ttl: '24h' } },
      [{ handle: accessor, stage: 'current' }],
      'issued',
    );
  }
  for (const { id, role: roleName, accessor } of await secretIds) {
    add({ ...base(id), kind: 'vault-approle-secret-id', scope: { roleName, secretIdTtl: '24h' } }, [
      { handle: accessor, stage: 'current' },
    ]);
  }
  for (const { id, path } of await Promise.all(kvPaths)) {
    add({ ...base(id), kind: 'vault-kv', scope: { path } }, [
      { handle: 'kv-v1', stage: 'previous' },
      { handle: 'kv-v2', stage: 'previous' },
      { handle: 'kv-v3', stage: 'current' },
    ]);
  }
  for (const { id, userName, keys } of await Promise.all(users)) {
    add(
      { ...base(id), kind: 'aws-iam-access-key', scope: { userName } },
      keys.map((handle, k) => ({ handle, stage: k === 0 ? 'previous' : 'current' })),
    );
  }
  for (const { id, secretId, previous } of await Promise.all(secretList)) {
    add({ ...base(id), kind: 'aws-secret', scope: { secretId } }, [{ handle: previous, stage: 'previous' }]);
  }
  await leases;
  add({ ...base(`${prefix}-lease`), kind: 'vault-lease', scope: { prefix: `auth/${mount}/login` } }, []);
  await role;
  const roleArn = `arn:aws:iam::123456789012:role/${prefix}/${roleName}`;
  add({ ...base(roleName), kind: 'aws-role-session', scope: { roleArn } }, []);
  const made = await preexisting;
  for (const declaration of made.declarations) add({ ...base(declaration.id), ...declaration }, []);

  // The inventory and the recorded versions, as a sync and a first rotation would leave
  // them, written 25 to a call: items as DynamoStore writes them (first revision).
  const doc = DynamoDBDocumentClient.from(services.aws.dynamodb, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const items = [
    ...identities.map((identity) => ({
      ...Keys.identity(identity.id),
      identity,
      status: 'active',
      declarationHash: 'fleet',
      syncedAt: now,
      rev: 1,
      writeId: randomUUID(),
    })),
    ...versions.map((version) => ({
      ...Keys.version(version.identityId, version.versionId),
      ...version,
      rev: 1,
      writeId: randomUUID(),
    })),
  ];
  const batchLimit = pLimit(4);
  await Promise.all(
    Array.from({ length: Math.ceil(items.length / 25) }, (_, b) =>
      batchLimit(async () => {
        let pending = items.slice(b * 25, b * 25 + 25).map((Item) => ({ PutRequest: { Item } }));
        while (pending.length > 0) {
          const result = await doc.send(
            new BatchWriteCommand({ RequestItems: { [services.config.tableName]: pending } }),
          );
          pending = (result.UnprocessedItems?.[services.config.tableName] ?? []) as typeof pending;
        }
      }),
    ),
  );

  const byIdentity = new Map<string, CredentialVersion[]>();
  for (const version of versions) {
    const list = byIdentity.get(version.identityId) ?? [];
    list.push(version);
    byIdentity.set(version.identityId, list);
  }
  return {
    prefix,
    environment,
    selector: `env=${environment}`,
    identities,
    versions,
    subjects: identities.map((identity) => ({ identity, versions: byIdentity.get(identity.id) ?? [] })),
    roles: [...roles, ...made.roles],
    preexisting: made,
    lease: { mount, prefix: `auth/${mount}/login` },
    role: { name: roleName, arn: roleArn },
    total,
  };
}

/**
 * What the servers themselves still honour of the fleet: one line per credential still
 * live, empty when every one is ended. Asks OpenBao and moto directly, never the store:
 * tokens by accessor, AppRole secret-ids by role, KV versions by metadata, IAM keys by
 * user, Secrets Manager labels by version, leases by prefix, the deny policy by role.
 */
export async function stillLive(
  ctx: FleetContext,
  fleet: RevocationFleet,
  incident: string,
): Promise<string[]> {
  const { services, vault } = ctx;
  const limit = pLimit(24);
  const live: string[] = [];
  const check = (what: string, isLive: () => Promise<boolean>) =>
    limit(async () => {
      if (await isLive()) live.push(what);
    });
  const checks: Promise<void>[] = [];
  // Handles by identity, recorded or made outside keywarden alike.
  const handles = new Map<string, string[]>();
  for (const credential of [...fleet.versions, ...fleet.preexisting.credentials]) {
    if (credential.kind === 'vault-token') {
      checks.push(
        check(
          `vault-token ${credential.handle}`,
          async () => (await vault.lookupAccessor(credential.handle)) !== undefined,
        ),
      );
    } else {
      handles.set(credential.identityId, [...(handles.get(credential.identityId) ?? []), credential.handle]);
    }
  }
  for (const role of fleet.roles) {
    checks.push(
      check(`secret-ids of AppRole ${role}`, async () => {
        const accessors = await vault.list(`auth/approle/role/${role}/secret-id`).catch(() => []);
        return accessors.length > 0;
      }),
    );
  }
  for (const identity of fleet.identities) {
    if (identity.kind === 'vault-kv') {
      const path = identity.scope.path;
      checks.push(
        check(`KV versions of ${path}`, async () => {
          const metadata = await vault.read(`secret/metadata/${path}`);
          const all = (metadata?.data?.versions ?? {}) as Record<string, { destroyed: boolean }>;
          return (handles.get(identity.id) ?? []).some((h) => all[h.slice(4)]?.destroyed !== true);
        }),
      );
    } else if (identity.kind === 'aws-iam-access-key') {
      const userName = identity.scope.userName;
      checks.push(
        check(`access keys of ${userName}`, async () => {
          const { AccessKeyMetadata = [] } = await services.aws.iam.send(
            new ListAccessKeysCommand({ UserName: userName }),
          );
          return AccessKeyMetadata.length > 0;
        }),
      );
    } else if (identity.kind === 'aws-secret') {
      const secretId = identity.scope.secretId;
      const ended = handles.get(identity.id) ?? [];
      checks.push(
        check(`versions ${ended.join(', ')} of ${secretId}`, async () => {
          const described = await services.aws.secrets.send(
            new DescribeSecretCommand({ SecretId: secretId }),
          );
          return ended.some((handle) => (described.VersionIdsToStages?.[handle] ?? []).length > 0);
        }),
      );
    }
  }
  checks.push(
    check(`leases under ${fleet.lease.prefix}`, async () => {
      const under = await vault.list(`sys/leases/lookup/${fleet.lease.prefix}/`).catch(() => []);
      return under.length > 0;
    }),
    check(`sessions of ${fleet.role.name} (no deny policy)`, async () => {
      const { PolicyNames = [] } = await services.aws.iam.send(
        new ListRolePoliciesCommand({ RoleName: fleet.role.name }),
      );
      return !PolicyNames.includes(`keywarden-revoke-${incident}`);
    }),
  );
  await Promise.all(checks);
  return live.sort();
}
