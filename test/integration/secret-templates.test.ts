/**
 * Rotation keeps what the pipeline reads: a structured secret (a database credential, a
 * DSN, an npm token) keeps its field names and every field it does not generate, byte for
 * byte, in Secrets Manager and in KV v2, against the real moto and OpenBao of the local stack.
 */
import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { CreateSecretCommand, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import { assessFindings } from '../../functions/core/findings.ts';
import { type Identity, IdentitySchema } from '../../functions/core/identity.ts';
import { planRotation, rotateIdentity, rotateMany } from '../../functions/core/rotation.ts';
import { OffsetClock } from '../support/offset-clock.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const clock = new OffsetClock();
let services: Services;
let vault: VaultClient;
const prefix = uniqueName('kw-tpl');

beforeAll(async () => {
  const stack = testStack();
  const config = RuntimeConfigSchema.parse({
    aws: testAws(),
    tableName: uniqueName('kw-templates'),
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: { secretNamePrefix: `${prefix}/` },
    vault: { addr: stack.vault.addr, token: stack.vault.token, kvPrefixes: [`secret/${prefix}/`] },
  });
  services = wire(config, clock);
  vault = new VaultClient({ addr: stack.vault.addr, token: stack.vault.token });
  await ensureStateTable(services.aws.dynamodb, config.tableName);
  await vault.write(`sys/policies/acl/${prefix}-read`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });
});

const deps = () => services.rotationDeps('test');

const database = {
  keep: ['username', 'host', 'port', 'dbname'],
  generate: {
    password: { format: 'random', length: 32 },
    url: { format: 'template', template: 'postgres://{username}:{password:url}@{host}:{port}/{dbname}' },
  },
};
const credential = {
  username: 'app_migrator',
  password: 'initial-password-1',
  host: 'db.staging.internal',
  port: 5432,
  dbname: 'app',
  url: 'postgres://app_migrator:initial-password-1@db.staging.internal:5432/app',
  sslmode: 'verify-full',
};

function declare(
  kind: 'aws-secret' | 'vault-kv',
  name: string,
  scope: Record<string, unknown>,
  policy = {},
): Identity {
  return IdentitySchema.parse({
    id: name,
    kind,
    purpose: 'templates spec',
    pipeline: { repo: 'acme/app', stage: 'deploy', environment: 'staging' },
    policy: { maxAge: '90d', rotateEvery: '30d', grace: '1h', ...policy },
    scope,
  });
}

/** One kind's way to create, read and declare a secret. */
const kinds = {
  'aws-secret': {
    async create(path: string, value: unknown) {
      await services.aws.secrets.send(
        new CreateSecretCommand({
          Name: path,
          SecretString: typeof value === 'string' ? value : JSON.stringify(value),
        }),
      );
    },
    async read(path: string): Promise<string> {
      const read = await services.aws.secrets.send(
        new GetSecretValueCommand({ SecretId: path, VersionStage: 'AWSCURRENT' }),
      );
      return read.SecretString ?? '';
    },
    scope: (path: string, shape: Record<string, unknown>) => ({ secretId: path, ...shape }),
  },
  'vault-kv': {
    async create(path: string, value: unknown) {
      await vault.write(`secret/data/${path}`, { data: value });
    },
    async read(path: string): Promise<string> {
      const read = await vault.read(`secret/data/${path}`);
      return JSON.stringify((read?.data as { data?: unknown } | undefined)?.data ?? {});
    },
    scope: (path: string, shape: Record<string, unknown>) => ({ path, ...shape }),
  },
} as const;

describe.each(['aws-secret', 'vault-kv'] as const)('secret templates: %s', (kind) => {
  const { create, read, scope } = kinds[kind];

  it('a database credential keeps its field names and every untouched field byte for byte; only the password and the URL built from it change', async () => {
    const path = `${prefix}/${uniqueName('db')}`;
    await create(path, credential);
    const identity = declare(kind, uniqueName('db'), scope(path, { template: database }));

    const first = await rotateIdentity(deps(), identity, { owner: 'test', force: true });
    const after = JSON.parse(await read(path));
    clock.advance(2 * 3_600_000);
    const second = await rotateIdentity(deps(), identity, { owner: 'test', force: true });
    const again = JSON.parse(await read(path));

    expect(first.status).toBe('rotated');
    expect(second.status).toBe('rotated');
    expect(Object.keys(after).sort()).toEqual(Object.keys(credential).sort());
    for (const field of ['username', 'host', 'port', 'dbname', 'sslmode'] as const) {
      expect(JSON.stringify(after[field])).toBe(JSON.stringify(credential[field]));
      expect(JSON.stringify(again[field])).toBe(JSON.stringify(credential[field]));
    }
    expect(after.password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(again.password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(again.password).not.toBe(after.password);
    expect(after.url).toBe(`postgres://app_migrator:${after.password}@db.staging.internal:5432/app`);
    expect(again.url).toBe(`postgres://app_migrator:${again.password}@db.staging.internal:5432/app`);
  });

  it('an npm token keeps its field and its declared prefix and length', async () => {
    const path = `${prefix}/${uniqueName('npm')}`;
    await create(path, { token: `npm_${'a'.repeat(36)}`, registry: 'https://registry.npmjs.org/' });
    const identity = declare(
      kind,
      uniqueName('npm'),
      scope(path, { template: { generate: { token: { format: 'random', length: 36, prefix: 'npm_' } } } }),
    );

    expect((await rotateIdentity(deps(), identity, { owner: 'test', force: true })).status).toBe('rotated');

    const after = JSON.parse(await read(path));
    expect(after).toEqual({
      token: expect.stringMatching(/^npm_[A-Za-z0-9]{36}$/),
      registry: 'https://registry.npmjs.org/',
    });
    expect(after.token).not.toBe(`npm_${'a'.repeat(36)}`);
  });

  it('refuses to rotate a secret whose credential sits in an undeclared field, naming the field and never the value, and leaves it as it was', async () => {
    const path = `${prefix}/${uniqueName('key')}`;
    const value = { key: 'cosign-private-key-material' };
    await create(path, value);
    const identity = declare(
      kind,
      uniqueName('key'),
      scope(path, kind === 'vault-kv' ? {} : { field: 'value' }),
    );

    const outcome = await rotateIdentity(deps(), identity, { owner: 'test', force: true });

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toMatch(
      /holds fields "key" but none of "value", which rotation generates; name the field/,
    );
    expect(JSON.stringify(outcome)).not.toContain('cosign-private-key-material');
    expect(JSON.parse(await read(path))).toEqual(value);
  });

  it('a policy.rotate false identity is never rotated, nor disabled past its maxAge, and still listed as skipped with the reason', async () => {
    const path = `${prefix}/${uniqueName('tracked')}`;
    const value = { dsn: 'https://0123456789abcdef@o1.ingest.sentry.io/42' };
    await create(path, value);
    const identity = declare(kind, uniqueName('tracked'), scope(path, { field: 'dsn' }), { rotate: false });

    const [plan] = await planRotation(deps(), [identity], { force: true });
    const [outcome] = await rotateMany(deps(), [identity], {
      owner: 'test',
      force: true,
      limit: services.limit,
    });

    expect(plan).toMatchObject({ action: 'skip', reason: expect.stringMatching(/policy.rotate is false/) });
    expect(outcome).toMatchObject({ status: 'skipped', warnings: [] });
    expect(JSON.parse(await read(path))).toEqual(value);
    expect(await services.store.listVersions(identity.id)).toEqual([]);
  });
});

describe('secret templates: discovery', () => {
  it('sees one password shared by a staging and a prod database credential as reuse across environments, though host and URL differ', async () => {
    const [staging, prod] = [`${prefix}/${uniqueName('stg')}`, `${prefix}/${uniqueName('prd')}`];
    await kinds['aws-secret'].create(staging, credential);
    await kinds['aws-secret'].create(prod, {
      ...credential,
      host: 'db.prod.internal',
      url: 'postgres://prod',
    });
    const identities = [
      declare('aws-secret', uniqueName('stg'), { secretId: staging, template: database }),
      {
        ...declare('aws-secret', uniqueName('prd'), { secretId: prod, template: database }),
        pipeline: { repo: 'acme/app', stage: 'deploy' as const, environment: 'prod' },
      },
    ];

    const found = (
      await Promise.all(
        services.sources.map((source) =>
          source.discover({ identities, leasePrefixes: [], breakglassRoleArns: [] }),
        ),
      )
    ).flat();
    const ours = found.filter(
      (credential) => credential.key === `aws-secret:${staging}` || credential.key === `aws-secret:${prod}`,
    );
    const findings = assessFindings(identities, found, { now: clock.now(), staleAfter: '90d' });

    expect(ours).toHaveLength(2);
    expect(ours[0]?.fingerprint).toBeDefined();
    expect(ours[0]?.fingerprint).toBe(ours[1]?.fingerprint);
    expect(findings.filter((finding) => finding.type === 'reused-across-environments')).toHaveLength(1);
  });
});

/** A vault-token identity keywarden issues (policy `<prefix>-read`), delivered to KV `path`. */
const vaultToken = (path: string): Identity =>
  IdentitySchema.parse({
    id: uniqueName('token'),
    kind: 'vault-token',
    purpose: 'templates spec',
    pipeline: { repo: 'acme/app', stage: 'build', environment: 'staging' },
    scope: { policies: [`${prefix}-read`] },
    delivery: { type: 'vault-kv', path },
  });

describe('deliveries of other kinds keep the fields beside the credential', () => {
  it('an IAM access key delivered to a Secrets Manager JSON keeps the region beside it', async () => {
    const userName = uniqueName('kw-tpl-user');
    await services.aws.iam.send(new CreateUserCommand({ UserName: userName }));
    const { AccessKey } = await services.aws.iam.send(new CreateAccessKeyCommand({ UserName: userName }));
    const secretId = `${prefix}/${uniqueName('key')}`;
    await kinds['aws-secret'].create(secretId, {
      region: 'eu-west-1',
      accessKeyId: AccessKey?.AccessKeyId,
      secretAccessKey: AccessKey?.SecretAccessKey,
    });
    const identity = IdentitySchema.parse({
      id: uniqueName('key'),
      kind: 'aws-iam-access-key',
      purpose: 'templates spec',
      pipeline: { repo: 'acme/app', stage: 'build', environment: 'staging' },
      scope: { userName },
      delivery: { type: 'aws-secret', secretId },
    });

    expect((await rotateIdentity(deps(), identity, { owner: 'test', force: true })).status).toBe('rotated');

    const after = JSON.parse(await kinds['aws-secret'].read(secretId));
    expect(after).toEqual({
      region: 'eu-west-1',
      accessKeyId: expect.any(String),
      secretAccessKey: expect.any(String),
    });
    expect(after.accessKeyId).not.toBe(AccessKey?.AccessKeyId);
  });

  it('refuses to deliver a Vault token as `value` to a KV secret the pipeline reads as `token`: the rotation fails naming the fields, the new token is revoked at once, the secret is untouched', async () => {
    const path = `${prefix}/${uniqueName('token')}`;
    const value = { token: 'hvs.the-working-token' };
    await kinds['vault-kv'].create(path, value);
    const identity = vaultToken(path);

    const outcome = await rotateIdentity(deps(), identity, { owner: 'test', force: true });

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toMatch(/holds fields "token", the new credential has "value".*delivery.field/);
    expect(JSON.parse(await kinds['vault-kv'].read(path))).toEqual(value);
    const live = await services.rotationDeps('check').providerFor(identity).list();
    expect(live.filter((credential) => credential.status === 'active')).toEqual([]);
    const trail = (await services.store.readAll()).records.filter((record) => record.subject === identity.id);
    expect(trail.map((record) => record.type)).toEqual(['credential.revoked', 'rotation.failed']);
  });

  it('an AppRole secret-id delivered to KV keeps the role id and the address beside it', async () => {
    const role = uniqueName('kw-tpl-role');
    await vault.write(`auth/approle/role/${role}`, { token_policies: [`${prefix}-read`], token_ttl: '5m' });
    const roleId = String((await vault.read(`auth/approle/role/${role}/role-id`))?.data?.role_id);
    const secretId = String((await vault.write(`auth/approle/role/${role}/secret-id`, {})).data?.secret_id);
    const path = `${prefix}/${uniqueName('approle')}`;
    await kinds['vault-kv'].create(path, {
      addr: 'https://vault.acme.internal',
      role_id: roleId,
      secret_id: secretId,
    });
    const identity = IdentitySchema.parse({
      id: uniqueName('approle'),
      kind: 'vault-approle-secret-id',
      purpose: 'templates spec',
      pipeline: { repo: 'acme/app', stage: 'deploy', environment: 'staging' },
      scope: { roleName: role },
      delivery: { type: 'vault-kv', path },
    });

    expect((await rotateIdentity(deps(), identity, { owner: 'test', force: true })).status).toBe('rotated');

    const after = JSON.parse(await kinds['vault-kv'].read(path));
    expect(after).toEqual({
      addr: 'https://vault.acme.internal',
      role_id: roleId,
      secret_id: expect.any(String),
    });
    expect(after.secret_id).not.toBe(secretId);
  });

  it('a Vault token delivered to KV keeps the address beside it', async () => {
    const path = `${prefix}/${uniqueName('token')}`;
    await kinds['vault-kv'].create(path, { addr: 'https://vault.acme.internal', value: 'hvs.placeholder' });
    const identity = vaultToken(path);

    expect((await rotateIdentity(deps(), identity, { owner: 'test', force: true })).status).toBe('rotated');

    const after = JSON.parse(await kinds['vault-kv'].read(path));
    expect(after).toEqual({ addr: 'https://vault.acme.internal', value: expect.any(String) });
    expect(after.value).not.toBe('hvs.placeholder');
  });
});
