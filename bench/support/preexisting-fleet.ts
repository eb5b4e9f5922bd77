/**
 * Credentials that existed before keywarden: made straight through the AWS SDK and the
 * Vault API, as a team's pipelines and setup scripts made them, then declared in the
 * inventory and never rotated, so keywarden has recorded none of them. A campaign reaches
 * them only by asking the providers what is live (issue #10). The revocation benchmark
 * mixes them into its fleet (`--preexisting N`, bench/support/revocation-fleet.ts).
 *
 * The shape, for `total` credentials (each one campaign target):
 *
 * | kind                     | share          | how                                                 |
 * |--------------------------|----------------|-----------------------------------------------------|
 * | aws-iam-access-key       | 20%            | two keys per IAM user, one identity per user         |
 * | aws-secret               | 20%            | one secret, one value (its current version)          |
 * | vault-approle-secret-id  | 20%            | ten secret-ids per AppRole role, one identity a role |
 * | vault-kv                 | 20%            | two KV v2 versions per path, one identity a path     |
 * | vault-token              | the rest (~20%)| orphan tokens without keywarden's meta, declared by accessor, up to ten an identity |
 *
 * No secret value is kept or printed: the result names handles (key ids, version ids,
 * accessors, paths) only.
 */
import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import pLimit from 'p-limit';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import type { IdentityKind } from '../../functions/core/identity.ts';

/** How many credentials of each kind `total` pre-existing credentials are. */
export function preexistingShape(total: number) {
  const fifth = Math.floor(total / 5);
  const shape = {
    'aws-iam-access-key': Math.floor(fifth / 2) * 2,
    'aws-secret': fifth,
    'vault-approle-secret-id': Math.floor(fifth / 10) * 10,
    'vault-kv': Math.floor(fifth / 2) * 2,
  };
  const token = total - Object.values(shape).reduce((sum, n) => sum + n, 0);
  if (total !== 0 && (total < 50 || token < 1)) {
    throw new RangeError(`pre-existing credentials: expected 0, or at least 50, got ${total}`);
  }
  return { ...shape, 'vault-token': token } as const;
}

/** One credential made outside keywarden: what it is and how the servers name it. */
export interface PreexistingCredential {
  identityId: string;
  kind: IdentityKind;
  /** Access key id, secret version id, secret-id accessor, `kv-v<version>`, token accessor. */
  handle: string;
}

/** What was made: the inventory entries (without owner and pipeline) and the credentials. */
export interface PreexistingCredentials {
  /** Inventory entries to declare: `id`, `kind` and `scope`; the caller adds the rest. */
  declarations: { id: string; kind: IdentityKind; scope: Record<string, unknown> }[];
  credentials: PreexistingCredential[];
  /** AppRole roles whose secret-ids are all pre-existing. */
  roles: string[];
}

interface MakeContext {
  services: Services;
  /** A Vault client with the dev root token, straight to OpenBao. */
  vault: VaultClient;
  /** Names everything made (`<prefix>-pre-…`), and the IAM path `/<prefix>/`. */
  prefix: string;
  /** A Vault policy the tokens and AppRole logins get. */
  policy: string;
}

/** Makes `total` credentials through the SDK and the Vault API, as a pipeline's own scripts would. */
export async function makePreexisting(ctx: MakeContext, total: number): Promise<PreexistingCredentials> {
  const { services, vault, prefix, policy } = ctx;
  const shape = preexistingShape(total);
  const vaultLimit = pLimit(16);
  const awsLimit = pLimit(8);
  const value = () => randomBytes(18).toString('base64url');
  const declarations: PreexistingCredentials['declarations'] = [];
  const credentials: PreexistingCredential[] = [];

  const users = Array.from({ length: shape['aws-iam-access-key'] / 2 }, (_, i) =>
    awsLimit(async () => {
      const id = `${prefix}-pre-aws-${i}`;
      const userName = `${prefix}-pre-user-${i}`;
      await services.aws.iam.send(new CreateUserCommand({ UserName: userName, Path: `/${prefix}/` }));
      for (let k = 0; k < 2; k += 1) {
        const { AccessKey } = await services.aws.iam.send(new CreateAccessKeyCommand({ UserName: userName }));
        credentials.push({
          identityId: id,
          kind: 'aws-iam-access-key',
          handle: AccessKey?.AccessKeyId ?? '',
        });
      }
      declarations.push({ id, kind: 'aws-iam-access-key', scope: { userName } });
    }),
  );

  const secretList = Array.from({ length: shape['aws-secret'] }, (_, i) =>
    awsLimit(async () => {
      const id = `${prefix}-pre-secret-${i}`;
      const secretId = `${prefix}/pre-secret-${i}`;
      const created = await services.aws.secrets.send(
        new CreateSecretCommand({ Name: secretId, SecretString: value() }),
      );
      credentials.push({ identityId: id, kind: 'aws-secret', handle: created.VersionId ?? '' });
      declarations.push({ id, kind: 'aws-secret', scope: { secretId } });
    }),
  );

  // One role's secret-ids one after another (OpenBao refuses concurrent creates on a role now and then).
  const roles = Array.from(
    { length: shape['vault-approle-secret-id'] / 10 },
    (_, r) => `${prefix}-pre-role-${r}`,
  );
  const secretIds = roles.map((roleName, r) =>
    vaultLimit(async () => {
      const id = `${prefix}-pre-approle-${r}`;
      await vault.write(`auth/approle/role/${roleName}`, { token_policies: [policy], token_ttl: '5m' });
      for (let i = 0; i < 10; i += 1) {
        const created = await vault.write(`auth/approle/role/${roleName}/secret-id`, {});
        const accessor = String(created.data?.secret_id_accessor);
        credentials.push({ identityId: id, kind: 'vault-approle-secret-id', handle: accessor });
      }
      declarations.push({ id, kind: 'vault-approle-secret-id', scope: { roleName } });
    }),
  );

  const kvPaths = Array.from({ length: shape['vault-kv'] / 2 }, (_, i) =>
    vaultLimit(async () => {
      const id = `${prefix}-pre-kv-${i}`;
      const path = `${prefix}/pre-kv-${i}`;
      for (let v = 1; v <= 2; v += 1) {
        await vault.write(`secret/data/${path}`, { data: { value: value() } });
        credentials.push({ identityId: id, kind: 'vault-kv', handle: `kv-v${v}` });
      }
      declarations.push({ id, kind: 'vault-kv', scope: { path } });
    }),
  );

  // Tokens as a person or a script makes them: orphan, long-lived, no keywarden meta.
  const tokenIdentities = Math.ceil(shape['vault-token'] / 10);
  const tokens = Array.from({ length: tokenIdentities }, (_, t) =>
    vaultLimit(async () => {
      const id = `${prefix}-pre-token-${t}`;
      const accessors: string[] = [];
      for (let i = t; i < shape['vault-token']; i += tokenIdentities) {
        const token = await vault.createToken(
          { policies: [policy], ttl: '720h', display_name: `${prefix}-deploy` },
          { orphan: true },
        );
        accessors.push(token.accessor);
        credentials.push({ identityId: id, kind: 'vault-token', handle: token.accessor });
      }
      declarations.push({ id, kind: 'vault-token', scope: { accessor: accessors } });
    }),
  );

  await Promise.all([...users, ...secretList, ...secretIds, ...kvPaths, ...tokens]);
  declarations.sort((a, b) => a.id.localeCompare(b.id));
  return { declarations, credentials, roles };
}
