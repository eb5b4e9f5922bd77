/**
 * The identities the benchmark rotates, created on the local stack the way a pipeline
 * has them before keywarden: each with its one working credential, already delivered
 * where the pipeline reads it (as test/integration/rotation.test.ts sets them up).
 * None has ever been rotated by keywarden, so every one is due.
 */
import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import { type Identity, IdentitySchema } from '../../functions/core/identity.ts';
import type { Limit } from '../../functions/core/ports.ts';

/** The kinds the benchmark mixes in equal parts: every kind that is rotated on a schedule. */
export const BENCH_KINDS = [
  'aws-iam-access-key',
  'aws-secret',
  'vault-token',
  'vault-approle-secret-id',
  'vault-kv',
] as const satisfies readonly Identity['kind'][];
export type BenchKind = (typeof BENCH_KINDS)[number];

const SHORT: Record<BenchKind, string> = {
  'aws-iam-access-key': 'iam',
  'aws-secret': 'secret',
  'vault-token': 'token',
  'vault-approle-secret-id': 'approle',
  'vault-kv': 'kv',
};

const policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };

/** The Vault policy every benchmark token and AppRole gets; it grants nothing that matters. */
export const readPolicyOf = (prefix: string) => `${prefix}-read`;

/** Creates the Vault policy the identities of a run share. */
export async function createVaultPolicy(vault: VaultClient, prefix: string): Promise<void> {
  await vault.write(`sys/policies/acl/${readPolicyOf(prefix)}`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });
}

const base = (id: string) => ({
  id,
  owner: 'team-platform',
  purpose: 'benchmark identity',
  pipeline: { repo: 'acme/bench', stage: 'build', environment: 'bench' },
  policy,
});

const value = () => randomBytes(30).toString('base64url');

/** Creates one identity's credential and delivery target as they exist before keywarden. */
async function seedOne(services: Services, vault: VaultClient, prefix: string, kind: BenchKind, id: string) {
  const { iam, secrets } = services.aws;
  switch (kind) {
    case 'aws-iam-access-key': {
      await iam.send(new CreateUserCommand({ UserName: id, Path: `/${prefix}/` }));
      const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: id }));
      const secretId = `${prefix}/${id}/aws-key`;
      await secrets.send(
        new CreateSecretCommand({
          Name: secretId,
          SecretString: JSON.stringify({
            accessKeyId: AccessKey?.AccessKeyId,
            secretAccessKey: AccessKey?.SecretAccessKey,
          }),
        }),
      );
      return IdentitySchema.parse({
        ...base(id),
        kind,
        scope: { userName: id },
        delivery: { type: 'aws-secret', secretId },
      });
    }
    case 'aws-secret': {
      const secretId = `${prefix}/${id}/password`;
      await secrets.send(new CreateSecretCommand({ Name: secretId, SecretString: value() }));
      return IdentitySchema.parse({ ...base(id), kind, scope: { secretId } });
    }
    case 'vault-token': {
      const path = `${prefix}/${id}/token`;
      const token = await vault.createToken(
        { policies: [readPolicyOf(prefix)], meta: { 'keywarden-identity': id }, ttl: '720h' },
        { orphan: true },
      );
      await vault.write(`secret/data/${path}`, { data: { token: token.client_token } });
      return IdentitySchema.parse({
        ...base(id),
        kind,
        scope: { policies: [readPolicyOf(prefix)], ttl: '24h' },
        // The pipeline reads the field `token` (a plain credential goes to `value` unless named).
        delivery: { type: 'vault-kv', path, field: 'token' },
      });
    }
    case 'vault-approle-secret-id': {
      await vault.write(`auth/approle/role/${id}`, {
        token_policies: [readPolicyOf(prefix)],
        token_ttl: '5m',
      });
      const roleId = String((await vault.read(`auth/approle/role/${id}/role-id`))?.data?.role_id);
      const secretId = String((await vault.write(`auth/approle/role/${id}/secret-id`, {})).data?.secret_id);
      const path = `${prefix}/${id}/approle`;
      await vault.write(`secret/data/${path}`, { data: { role_id: roleId, secret_id: secretId } });
      return IdentitySchema.parse({
        ...base(id),
        kind,
        scope: { roleName: id, secretIdTtl: '24h' },
        delivery: { type: 'vault-kv', path },
      });
    }
    case 'vault-kv': {
      const path = `${prefix}/${id}/api-key`;
      await vault.write(`secret/data/${path}`, { data: { value: value() } });
      return IdentitySchema.parse({ ...base(id), kind, scope: { path } });
    }
  }
}

/**
 * `count` identities, the kinds in turn (so equal parts when `count` is a multiple of
 * five), named `<prefix>-<set>-<kind>-<n>`; each set is independent of every other.
 */
export async function seedIdentitySet(
  services: Services,
  vault: VaultClient,
  options: { prefix: string; set: string; count: number; limit: Limit },
): Promise<Identity[]> {
  const { prefix, set, count, limit } = options;
  return Promise.all(
    Array.from({ length: count }, (_, n) => {
      const kind = BENCH_KINDS[n % BENCH_KINDS.length] as BenchKind;
      const id = `${prefix}-${set}-${SHORT[kind]}-${String(n).padStart(4, '0')}`;
      return limit(() => seedOne(services, vault, prefix, kind, id));
    }),
  );
}
