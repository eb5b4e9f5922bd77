/**
 * Seeds the local stack with the demo company's real credentials (demo/identities.yaml),
 * including the deliberate problems the findings must name. Every value is generated
 * here, at run time, and goes only into moto or OpenBao.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateAccessKeyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { CreateSecretCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import type { AwsEndpoint } from '../adapters/aws/endpoint.ts';
import type { VaultClient } from '../adapters/vault/client.ts';
import { IDENTITY_META_KEY } from '../adapters/vault/vault-discovery.ts';

const IAM_PATH = '/keywarden-demo/';
const DAY = 86_400_000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const randomValue = (bytes = 24) => randomBytes(bytes).toString('base64url');

export interface DemoSeedDeps {
  iam: IAMClient;
  secrets: SecretsManagerClient;
  vault: VaultClient;
  aws: AwsEndpoint;
}

async function backdateKey(
  motoEndpoint: string,
  body: { accessKeyId: string; createDate?: string; lastUsedDate?: string },
) {
  const response = await fetch(`${motoEndpoint}/_keywarden/iam/backdate-access-key`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`moto refused to backdate ${body.accessKeyId}: HTTP ${response.status}`);
}

/** Creates an IAM user with one access key; optionally uses the key once (moto then records its last use). */
async function userWithKey(deps: DemoSeedDeps, userName: string, use: boolean) {
  await deps.iam.send(new CreateUserCommand({ UserName: userName, Path: IAM_PATH }));
  const { AccessKey } = await deps.iam.send(new CreateAccessKeyCommand({ UserName: userName }));
  if (!AccessKey?.AccessKeyId || !AccessKey.SecretAccessKey) throw new Error(`no access key for ${userName}`);
  const key = { accessKeyId: AccessKey.AccessKeyId, secretAccessKey: AccessKey.SecretAccessKey };
  if (use) {
    // A copy: the SDK marks the credentials object it is given (`$source`), which would reach the secret.
    const sts = new STSClient(awsClientConfig({ ...deps.aws, credentials: { ...key } }));
    await sts.send(new GetCallerIdentityCommand({}));
  }
  return key;
}

const putSecret = (deps: DemoSeedDeps, name: string, value: string) =>
  deps.secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));

/** A database credential as the pipelines read it: JSON, the URL built from the other fields. */
const databaseCredential = (host: string, password: string): string =>
  JSON.stringify({
    username: 'app_migrator',
    password,
    host,
    port: 5432,
    dbname: 'app',
    url: `postgres://app_migrator:${encodeURIComponent(password)}@${host}:5432/app`,
  });

const kv = (deps: DemoSeedDeps, path: string, data: Record<string, string>) =>
  deps.vault.write(`secret/data/${path}`, { data });

/** Creates the demo's credentials. Run once per fresh stack. */
export async function seedDemo(deps: DemoSeedDeps): Promise<void> {
  const moto = deps.aws.endpoint;
  if (!moto) throw new Error('the demo seeds the local stack only: expected a moto endpoint');

  // ---- IAM users and keys, delivered to their Secrets Manager secrets ----
  const build = await userWithKey(deps, 'ci-app-build', true);
  await putSecret(deps, 'ci/app/build/aws-access-key', JSON.stringify(build));
  const publish = await userWithKey(deps, 'ci-app-publish', true);
  await putSecret(deps, 'ci/app/publish/aws-access-key', JSON.stringify(publish));
  await backdateKey(moto, {
    accessKeyId: publish.accessKeyId,
    createDate: daysAgo(200),
    lastUsedDate: daysAgo(1),
  }); // over max age
  const docs = await userWithKey(deps, 'ci-docs-build', false);
  await backdateKey(moto, {
    accessKeyId: docs.accessKeyId,
    createDate: daysAgo(150),
    lastUsedDate: daysAgo(120),
  }); // stale
  const infra = await userWithKey(deps, 'ci-infra-deploy', true);
  await putSecret(deps, 'ci/infra/deploy/aws-access-key', JSON.stringify(infra));
  await userWithKey(deps, 'ci-legacy-bot', false); // undeclared

  // ---- Secrets Manager ----
  const sharedPassword = randomValue(); // the same password in staging and prod
  await putSecret(
    deps,
    'ci/app/staging/db-password',
    databaseCredential('db.staging.acme.internal', sharedPassword),
  );
  await putSecret(
    deps,
    'ci/app/prod/db-password',
    databaseCredential('db.prod.acme.internal', sharedPassword),
  );
  await putSecret(
    deps,
    'ci/web/npm-token',
    `npm_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x')}`,
  );
  await putSecret(deps, 'ci/payments/webhook-secret', randomBytes(32).toString('hex'));

  // ---- Roles assumed by pipelines ----
  const trust = JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' },
    ],
  });
  for (const RoleName of ['ci-app-deploy', 'ci-infra-plan']) {
    await deps.iam.send(new CreateRoleCommand({ RoleName, Path: IAM_PATH, AssumeRolePolicyDocument: trust }));
  }
  // The break-glass role of the demo inventory (breakglass.roles: prod-admin).
  await deps.iam.send(
    new CreateRoleCommand({ RoleName: 'prod-admin', Path: '/breakglass/', AssumeRolePolicyDocument: trust }),
  );

  // ---- Vault policies and tokens ----
  const policies = {
    'release-sign': 'path "transit/sign/release" { capabilities = ["update"] }',
    'release-deploy': 'path "secret/data/ci/release/*" { capabilities = ["read"] }',
    'app-ci-read': 'path "secret/data/ci/app/*" { capabilities = ["read"] }',
    'docs-publish': 'path "secret/data/ci/docs/*" { capabilities = ["read"] }',
    'app-deploy': 'path "secret/data/ci/app/deploy/*" { capabilities = ["read"] }',
    'infra-terraform': 'path "secret/data/ci/infra/terraform/*" { capabilities = ["read"] }',
    // The break-glass policy of the demo inventory (breakglass.roles: prod-db-read).
    'breakglass-prod-db': 'path "secret/data/prod/*" { capabilities = ["read"] }',
  };
  for (const [name, policy] of Object.entries(policies))
    await deps.vault.write(`sys/policies/acl/${name}`, { policy });
  const tokens: [string, string[]][] = [
    ['release-signer', ['release-sign', 'release-deploy']],
    ['app-ci-reader', ['app-ci-read']],
    ['docs-publish-token', ['docs-publish']],
  ];
  for (const [identity, tokenPolicies] of tokens) {
    await deps.vault.createToken(
      {
        policies: tokenPolicies,
        meta: { [IDENTITY_META_KEY]: identity },
        display_name: identity,
        ttl: '720h',
      },
      { orphan: true },
    );
  }

  // A token made outside keywarden, as the infra team's pipeline gets it: through its token role.
  // Declared by `tokenRole` (infra-terraform-token), so discovery does not call it undeclared.
  await deps.vault.write('auth/token/roles/ci-terraform', {
    allowed_policies: ['infra-terraform'],
    orphan: true,
    token_ttl: '720h',
  });
  await deps.vault.write('auth/token/create/ci-terraform', { policies: ['infra-terraform'] });

  // ---- AppRole roles and secret-ids; one login leaves a lease ----
  for (const role of ['ci-app-deploy', 'ci-infra', 'ci-metrics']) {
    await deps.vault.write(`auth/approle/role/${role}`, {
      token_policies: ['app-deploy'],
      secret_id_ttl: '24h',
      token_ttl: '1h',
    });
  }
  const deploySecretId = await deps.vault.write('auth/approle/role/ci-app-deploy/secret-id', {});
  await deps.vault.write('auth/approle/role/ci-infra/secret-id', {});
  await deps.vault.write('auth/approle/role/ci-metrics/secret-id', {});
  const roleId = await deps.vault.read('auth/approle/role/ci-app-deploy/role-id');
  const secretId = String(deploySecretId.data?.secret_id);
  await kv(deps, 'ci/app/deploy/approle-secret-id', {
    role_id: String(roleId?.data?.role_id),
    secret_id: secretId,
  });
  await deps.vault.write('auth/approle/login', { role_id: roleId?.data?.role_id, secret_id: secretId });

  // ---- KV v2 ----
  await kv(deps, 'ci/app/signing-key', { key: randomBytes(32).toString('base64') });
  const sentryKey = randomBytes(16).toString('hex');
  const sentry = { host: 'o4507.ingest.sentry.io', project: '4507123' };
  await kv(deps, 'ci/web/sentry', {
    ...sentry,
    key: sentryKey,
    dsn: `https://${sentryKey}@${sentry.host}/${sentry.project}`,
  });
  await kv(deps, 'ci/web/cdn-purge-token', { token: randomBytes(32).toString('hex') });
  await kv(deps, 'ci/old/jenkins-token', { token: randomValue() }); // undeclared
}
