/**
 * The pipeline's side of each rotatable kind, against the real local stack: how a
 * credential exists before keywarden (setup), how the pipeline reads and uses what
 * is delivered (works), and whether the server still accepts a retired one. Shared by
 * the rotation specs; `context` is read when a spec runs, after its beforeAll.
 */
import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand, ListAccessKeysCommand } from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { awsClientConfig } from '../../functions/adapters/aws/clients.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { deliveryOf } from '../../functions/core/kinds.ts';
import { identity as makeIdentity } from './fixtures.ts';
import { newVaultClient, testAws } from './stack.ts';

export interface HarnessContext {
  /** Adapters that reach the servers directly (not through a fault proxy). */
  services: Services;
  /** keywarden's own Vault client (the dev root token). */
  vault: VaultClient;
  /** Names everything this file creates; the policy `${prefix}-read` must exist in Vault. */
  prefix: string;
}

/** One rotatable kind: how to create its credential as a pipeline has it today, and how the pipeline uses it. */
export interface KindHarness {
  kind: Identity['kind'];
  /**
   * Creates the identity's credential and delivery target as they exist before keywarden;
   * the identity belongs to `pipeline` where given, to the fixtures' default pipeline otherwise.
   */
  setup(name: string, pipeline?: Identity['pipeline']): Promise<Identity>;
  /** Reads the delivered credential and uses it; resolves true when it works. */
  works(identity: Identity): Promise<boolean>;
  /** Whether the server still accepts a credential keywarden retired. */
  stillUsable(identity: Identity, handle: string): Promise<boolean>;
}

/** The rotation policy the harness identities get: rotate weekly, an hour of grace. */
export const harnessPolicy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };

export function credentialHarnesses(ctx: () => HarnessContext) {
  const policy = harnessPolicy;
  const value = () => randomBytes(18).toString('base64url');
  /** The identity `setup` declares: named `name`, rotated by the harness policy, in `pipeline` where given. */
  const harnessIdentity = (
    name: string,
    pipeline: Identity['pipeline'] | undefined,
    fields: { kind: Identity['kind'] } & Record<string, unknown>,
  ): Identity => makeIdentity({ ...(pipeline && { pipeline }), id: name, policy, ...fields });
  async function readDelivered(identity: Identity): Promise<string> {
    const delivery = deliveryOf(identity);
    if (delivery?.type === 'aws-secret') {
      const { SecretString } = await ctx().services.aws.secrets.send(
        new GetSecretValueCommand({ SecretId: delivery.secretId, VersionStage: 'AWSCURRENT' }),
      );
      return SecretString ?? '';
    }
    if (delivery?.type === 'vault-kv') {
      const read = await ctx().vault.read(`${delivery.mount}/data/${delivery.path}`);
      return JSON.stringify((read?.data as { data?: unknown } | undefined)?.data ?? {});
    }
    throw new Error('no delivery');
  }

  const iamKeys: KindHarness = {
    kind: 'aws-iam-access-key',
    async setup(name, pipeline) {
      await ctx().services.aws.iam.send(new CreateUserCommand({ UserName: name, Path: `/${ctx().prefix}/` }));
      const { AccessKey } = await ctx().services.aws.iam.send(new CreateAccessKeyCommand({ UserName: name }));
      const secretId = `${ctx().prefix}/${name}/aws-key`;
      await ctx().services.aws.secrets.send(
        new CreateSecretCommand({
          Name: secretId,
          SecretString: JSON.stringify({
            accessKeyId: AccessKey?.AccessKeyId,
            secretAccessKey: AccessKey?.SecretAccessKey,
          }),
        }),
      );
      return harnessIdentity(name, pipeline, {
        kind: 'aws-iam-access-key',
        scope: { userName: name },
        delivery: { type: 'aws-secret', secretId },
      });
    },
    async works(identity) {
      const key = JSON.parse(await readDelivered(identity)) as {
        accessKeyId: string;
        secretAccessKey: string;
      };
      const userName = identity.kind === 'aws-iam-access-key' ? identity.scope.userName : '';
      const keys = await ctx().services.aws.iam.send(new ListAccessKeysCommand({ UserName: userName }));
      // moto lets inactive keys authenticate: the key's status is the truth.
      const active = keys.AccessKeyMetadata?.some(
        (k) => k.AccessKeyId === key.accessKeyId && k.Status === 'Active',
      );
      const sts = new STSClient(awsClientConfig({ ...testAws(), credentials: key }));
      const caller = await sts.send(new GetCallerIdentityCommand({}));
      return Boolean(active) && Boolean(caller.Arn?.endsWith(`/${userName}`));
    },
    async stillUsable(identity, handle) {
      const userName = identity.kind === 'aws-iam-access-key' ? identity.scope.userName : '';
      const keys = await ctx().services.aws.iam.send(new ListAccessKeysCommand({ UserName: userName }));
      return Boolean(keys.AccessKeyMetadata?.some((k) => k.AccessKeyId === handle && k.Status === 'Active'));
    },
  };

  const awsSecrets: KindHarness = {
    kind: 'aws-secret',
    async setup(name, pipeline) {
      const secretId = `${ctx().prefix}/${name}/password`;
      await ctx().services.aws.secrets.send(
        new CreateSecretCommand({ Name: secretId, SecretString: value() }),
      );
      return harnessIdentity(name, pipeline, {
        kind: 'aws-secret',
        scope: { secretId },
      });
    },
    async works(identity) {
      // A generic secret "works" when the pipeline reads the value keywarden recorded as current.
      const delivered = await readDelivered(identity);
      const current = (await ctx().services.store.listVersions(identity.id)).find(
        (v) => v.stage === 'current',
      );
      return (
        delivered.length > 0 &&
        (!current?.fingerprint || current.fingerprint === ctx().services.fingerprinter.of(delivered))
      );
    },
    async stillUsable(identity, handle) {
      const secretId = identity.kind === 'aws-secret' ? identity.scope.secretId : '';
      const described = await ctx().services.aws.secrets.send(
        new DescribeSecretCommand({ SecretId: secretId }),
      );
      return (described.VersionIdsToStages?.[handle] ?? []).length > 0;
    },
  };

  const vaultTokens: KindHarness = {
    kind: 'vault-token',
    async setup(name, pipeline) {
      const path = `${ctx().prefix}/${name}/token`;
      const token = await ctx().vault.createToken(
        { policies: [`${ctx().prefix}-read`], meta: { 'keywarden-identity': name }, ttl: '720h' },
        { orphan: true },
      );
      await ctx().vault.write(`secret/data/${path}`, { data: { token: token.client_token } });
      return harnessIdentity(name, pipeline, {
        kind: 'vault-token',
        scope: { policies: [`${ctx().prefix}-read`], ttl: '24h' },
        // The pipeline reads the token from `token`: rotation writes it there, not to `value`.
        delivery: { type: 'vault-kv', path, field: 'token' },
      });
    },
    async works(identity) {
      const delivered = JSON.parse(await readDelivered(identity)) as { token?: string; value?: string };
      const token = delivered.token ?? delivered.value ?? '';
      const self = await newVaultClient(token)
        .lookupSelf()
        .catch(() => undefined);
      return Boolean(self?.policies?.includes(`${ctx().prefix}-read`));
    },
    async stillUsable(_identity, handle) {
      return (await ctx().vault.lookupAccessor(handle)) !== undefined;
    },
  };

  const approleSecretIds: KindHarness = {
    kind: 'vault-approle-secret-id',
    async setup(name, pipeline) {
      await ctx().vault.write(`auth/approle/role/${name}`, {
        token_policies: [`${ctx().prefix}-read`],
        token_ttl: '5m',
      });
      const roleId = String((await ctx().vault.read(`auth/approle/role/${name}/role-id`))?.data?.role_id);
      const secretId = String(
        (await ctx().vault.write(`auth/approle/role/${name}/secret-id`, {})).data?.secret_id,
      );
      const path = `${ctx().prefix}/${name}/approle`;
      await ctx().vault.write(`secret/data/${path}`, { data: { role_id: roleId, secret_id: secretId } });
      return harnessIdentity(name, pipeline, {
        kind: 'vault-approle-secret-id',
        scope: { roleName: name, secretIdTtl: '24h' },
        delivery: { type: 'vault-kv', path },
      });
    },
    async works(identity) {
      const delivered = JSON.parse(await readDelivered(identity)) as {
        role_id: string;
        secret_id: string;
        value?: string;
      };
      const creds = delivered.value ? (JSON.parse(delivered.value) as typeof delivered) : delivered;
      const login = await ctx()
        .vault.write('auth/approle/login', { role_id: creds.role_id, secret_id: creds.secret_id })
        .catch(() => undefined);
      const accessor = login?.auth?.accessor;
      if (typeof accessor === 'string') await ctx().vault.revokeAccessor(accessor);
      return typeof login?.auth?.client_token === 'string';
    },
    async stillUsable(identity, handle) {
      const role = identity.kind === 'vault-approle-secret-id' ? identity.scope.roleName : '';
      const found = await ctx()
        .vault.write(`auth/approle/role/${role}/secret-id-accessor/lookup`, { secret_id_accessor: handle })
        .catch(() => undefined);
      return Boolean(found?.data);
    },
  };

  const kvSecrets: KindHarness = {
    kind: 'vault-kv',
    async setup(name, pipeline) {
      const path = `${ctx().prefix}/${name}/api-key`;
      await ctx().vault.write(`secret/data/${path}`, { data: { value: value() } });
      return harnessIdentity(name, pipeline, {
        kind: 'vault-kv',
        scope: { path },
      });
    },
    async works(identity) {
      const delivered = await readDelivered(identity);
      const current = (await ctx().services.store.listVersions(identity.id)).find(
        (v) => v.stage === 'current',
      );
      return (
        delivered !== '{}' && (!current?.fingerprint || current.origin === 'adopted' || delivered.length > 2)
      );
    },
    async stillUsable(identity, handle) {
      const path = identity.kind === 'vault-kv' ? identity.scope.path : '';
      const metadata = await ctx().vault.read(`secret/metadata/${path}`);
      const versions = (metadata?.data?.versions ?? {}) as Record<string, { destroyed: boolean }>;
      const custom = (metadata?.data?.custom_metadata ?? {}) as Record<string, string>;
      const kvVersion = handle.startsWith('kv-v')
        ? handle.slice(4)
        : Object.entries(custom)
            .find(([key, id]) => id === handle && /^kw-\d+$/.test(key))?.[0]
            .slice(3);
      return kvVersion !== undefined && versions[kvVersion]?.destroyed === false;
    },
  };

  const harnesses: KindHarness[] = [iamKeys, awsSecrets, vaultTokens, approleSecretIds, kvSecrets];

  /** The secret strings inside a delivered value (a JSON document or a plain value), long enough to matter. */
  function secretsIn(delivered: string): string[] {
    let parsed: unknown;
    try {
      parsed = JSON.parse(delivered);
    } catch {
      return [delivered];
    }
    const values =
      typeof parsed === 'object' && parsed ? Object.values(parsed as Record<string, unknown>) : [parsed];
    return values.filter(
      (v): v is string => typeof v === 'string' && v.length >= 16 && !v.startsWith('AKIA'),
    );
  }

  /** Every active credential the provider holds for the identity is one the store knows as current or previous. */
  async function orphans(identity: Identity): Promise<string[]> {
    const known = new Set(
      (await ctx().services.store.listVersions(identity.id))
        .filter((v) => v.stage === 'current' || v.stage === 'previous')
        .map((v) => v.handle),
    );
    const listed = await ctx().services.rotationDeps('test').providerFor(identity).list();
    return listed.filter((l) => l.status === 'active' && !known.has(l.handle)).map((l) => l.handle);
  }

  return {
    harnesses,
    iamKeys,
    awsSecrets,
    vaultTokens,
    approleSecretIds,
    kvSecrets,
    readDelivered,
    orphans,
    secretsIn,
  };
}
