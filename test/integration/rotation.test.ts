/**
 * The rotation protocol end to end, for every rotatable kind, against the real moto
 * and OpenBao of the local stack, through the same wiring the handlers use.
 *
 * Each kind has a probe that plays the pipeline: it reads the credential from the
 * delivery target and uses it against the server. The specs check that the probe
 * passes before, during (at every checkpoint, including injected crashes) and after a
 * rotation, and that retired credentials are really unusable where the server can tell.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  ListAccessKeysCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import pLimit from 'p-limit';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig } from '../../functions/adapters/aws/clients.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import { assessFindings } from '../../functions/core/findings.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { deliveryOf } from '../../functions/core/provider.ts';
import {
  type RotationDeps,
  rotateIdentity,
  rotateMany,
  SimulatedCrash,
} from '../../functions/core/rotation.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { OffsetClock } from '../support/offset-clock.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const clock = new OffsetClock();
let services: Services;
let vault: VaultClient;
const prefix = uniqueName('kw-rot');

beforeAll(async () => {
  const stack = testStack();
  const config = RuntimeConfigSchema.parse({
    aws: testAws(),
    tableName: uniqueName('kw-rotation'),
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: {},
    vault: { addr: stack.vault.addr, token: stack.vault.token },
  });
  services = wire(config, clock);
  vault = new VaultClient({ addr: stack.vault.addr, token: stack.vault.token });
  await ensureStateTable(services.aws.dynamodb, config.tableName);
  await vault.write(`sys/policies/acl/${prefix}-read`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });
});

const deps = (overrides: Partial<RotationDeps> = {}) => services.rotationDeps('test', overrides);
const value = () => randomBytes(18).toString('base64url');

/** One rotatable kind: how to create its credential as a pipeline has it today, and how the pipeline uses it. */
interface KindHarness {
  kind: Identity['kind'];
  /** Creates the identity's credential and delivery target as they exist before keywarden. */
  setup(name: string): Promise<Identity>;
  /** Reads the delivered credential and uses it; resolves true when it works. */
  works(identity: Identity): Promise<boolean>;
  /** Whether the server still accepts a credential keywarden retired. */
  stillUsable(identity: Identity, handle: string): Promise<boolean>;
}

const policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };

async function readDelivered(identity: Identity): Promise<string> {
  const delivery = deliveryOf(identity);
  if (delivery?.type === 'aws-secret') {
    const { SecretString } = await services.aws.secrets.send(
      new GetSecretValueCommand({ SecretId: delivery.secretId, VersionStage: 'AWSCURRENT' }),
    );
    return SecretString ?? '';
  }
  if (delivery?.type === 'vault-kv') {
    const read = await vault.read(`${delivery.mount}/data/${delivery.path}`);
    return JSON.stringify((read?.data as { data?: unknown } | undefined)?.data ?? {});
  }
  throw new Error('no delivery');
}

const iamKeys: KindHarness = {
  kind: 'aws-iam-access-key',
  async setup(name) {
    await services.aws.iam.send(new CreateUserCommand({ UserName: name, Path: `/${prefix}/` }));
    const { AccessKey } = await services.aws.iam.send(new CreateAccessKeyCommand({ UserName: name }));
    const secretId = `${prefix}/${name}/aws-key`;
    await services.aws.secrets.send(
      new CreateSecretCommand({
        Name: secretId,
        SecretString: JSON.stringify({
          accessKeyId: AccessKey?.AccessKeyId,
          secretAccessKey: AccessKey?.SecretAccessKey,
        }),
      }),
    );
    return makeIdentity({
      id: name,
      kind: 'aws-iam-access-key',
      scope: { userName: name },
      policy,
      delivery: { type: 'aws-secret', secretId },
    });
  },
  async works(identity) {
    const key = JSON.parse(await readDelivered(identity)) as { accessKeyId: string; secretAccessKey: string };
    const userName = identity.kind === 'aws-iam-access-key' ? identity.scope.userName : '';
    const keys = await services.aws.iam.send(new ListAccessKeysCommand({ UserName: userName }));
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
    const keys = await services.aws.iam.send(new ListAccessKeysCommand({ UserName: userName }));
    return Boolean(keys.AccessKeyMetadata?.some((k) => k.AccessKeyId === handle && k.Status === 'Active'));
  },
};

const awsSecrets: KindHarness = {
  kind: 'aws-secret',
  async setup(name) {
    const secretId = `${prefix}/${name}/password`;
    await services.aws.secrets.send(new CreateSecretCommand({ Name: secretId, SecretString: value() }));
    return makeIdentity({ id: name, kind: 'aws-secret', scope: { secretId }, policy });
  },
  async works(identity) {
    // A generic secret "works" when the pipeline reads the value keywarden recorded as current.
    const delivered = await readDelivered(identity);
    const current = (await services.store.listVersions(identity.id)).find((v) => v.stage === 'current');
    return (
      delivered.length > 0 &&
      (!current?.fingerprint || current.fingerprint === services.fingerprinter.of(delivered))
    );
  },
  async stillUsable(identity, handle) {
    const secretId = identity.kind === 'aws-secret' ? identity.scope.secretId : '';
    const described = await services.aws.secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
    return (described.VersionIdsToStages?.[handle] ?? []).length > 0;
  },
};

/** A client that authenticates as the delivered token, as the pipeline would. */
const asToken = (token: string) => new VaultClient({ addr: testStack().vault.addr, token });

const vaultTokens: KindHarness = {
  kind: 'vault-token',
  async setup(name) {
    const path = `${prefix}/${name}/token`;
    const token = await vault.createToken(
      { policies: [`${prefix}-read`], meta: { 'keywarden-identity': name }, ttl: '720h' },
      { orphan: true },
    );
    await vault.write(`secret/data/${path}`, { data: { token: token.client_token } });
    return makeIdentity({
      id: name,
      kind: 'vault-token',
      scope: { policies: [`${prefix}-read`], ttl: '24h' },
      policy,
      delivery: { type: 'vault-kv', path },
    });
  },
  async works(identity) {
    const delivered = JSON.parse(await readDelivered(identity)) as { token?: string; value?: string };
    const token = delivered.token ?? delivered.value ?? '';
    const self = await asToken(token)
      .lookupSelf()
      .catch(() => undefined);
    return Boolean(self?.policies?.includes(`${prefix}-read`));
  },
  async stillUsable(_identity, handle) {
    return (await vault.lookupAccessor(handle)) !== undefined;
  },
};

const approleSecretIds: KindHarness = {
  kind: 'vault-approle-secret-id',
  async setup(name) {
    await vault.write(`auth/approle/role/${name}`, { token_policies: [`${prefix}-read`], token_ttl: '5m' });
    const roleId = String((await vault.read(`auth/approle/role/${name}/role-id`))?.data?.role_id);
    const secretId = String((await vault.write(`auth/approle/role/${name}/secret-id`, {})).data?.secret_id);
    const path = `${prefix}/${name}/approle`;
    await vault.write(`secret/data/${path}`, { data: { role_id: roleId, secret_id: secretId } });
    return makeIdentity({
      id: name,
      kind: 'vault-approle-secret-id',
      scope: { roleName: name, secretIdTtl: '24h' },
      policy,
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
    const login = await vault
      .write('auth/approle/login', { role_id: creds.role_id, secret_id: creds.secret_id })
      .catch(() => undefined);
    const accessor = login?.auth?.accessor;
    if (typeof accessor === 'string') await vault.revokeAccessor(accessor);
    return typeof login?.auth?.client_token === 'string';
  },
  async stillUsable(identity, handle) {
    const role = identity.kind === 'vault-approle-secret-id' ? identity.scope.roleName : '';
    const found = await vault
      .write(`auth/approle/role/${role}/secret-id-accessor/lookup`, { secret_id_accessor: handle })
      .catch(() => undefined);
    return Boolean(found?.data);
  },
};

const kvSecrets: KindHarness = {
  kind: 'vault-kv',
  async setup(name) {
    const path = `${prefix}/${name}/api-key`;
    await vault.write(`secret/data/${path}`, { data: { value: value() } });
    return makeIdentity({ id: name, kind: 'vault-kv', scope: { path }, policy });
  },
  async works(identity) {
    const delivered = await readDelivered(identity);
    const current = (await services.store.listVersions(identity.id)).find((v) => v.stage === 'current');
    return (
      delivered !== '{}' && (!current?.fingerprint || current.origin === 'adopted' || delivered.length > 2)
    );
  },
  async stillUsable(identity, handle) {
    const path = identity.kind === 'vault-kv' ? identity.scope.path : '';
    const metadata = await vault.read(`secret/metadata/${path}`);
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
  return values.filter((v): v is string => typeof v === 'string' && v.length >= 16 && !v.startsWith('AKIA'));
}

/** Every active credential the provider holds for the identity is one the store knows as current or previous. */
async function orphans(identity: Identity): Promise<string[]> {
  const known = new Set(
    (await services.store.listVersions(identity.id))
      .filter((v) => v.stage === 'current' || v.stage === 'previous')
      .map((v) => v.handle),
  );
  const listed = await services
    .rotationDeps('test')
    .provider(identity.kind)
    .list(identity as never);
  return listed.filter((l) => l.status === 'active' && !known.has(l.handle)).map((l) => l.handle);
}

async function stages(identity: Identity) {
  return (await services.store.listVersions(identity.id)).map((v) => v.stage).sort();
}

describe.each(harnesses)('rotation: $kind', (harness) => {
  it('rotates, keeps the credential working throughout, and retires the old one after the grace period', async () => {
    const identity = await harness.setup(uniqueName('kw'));
    expect(await harness.works(identity)).toBe(true);
    const checks: boolean[] = [];

    const first = await rotateIdentity(
      deps({ afterStep: async () => void checks.push(await harness.works(identity)) }),
      identity,
      { owner: 'test' },
    );
    const versions = await services.store.listVersions(identity.id);
    const previous = versions.find((v) => v.stage === 'previous');
    clock.advance(2 * 3_600_000);
    const second = await rotateIdentity(deps(), identity, { owner: 'test', force: true });

    expect(first).toMatchObject({ status: 'rotated', resumed: false });
    expect(checks.every(Boolean)).toBe(true);
    expect(checks.length).toBeGreaterThanOrEqual(6);
    expect(await harness.works(identity)).toBe(true);
    expect(previous?.origin).toBe('adopted');
    expect(second.status).toBe('rotated');
    expect(second.retired).toContain(previous?.handle);
    expect(await harness.stillUsable(identity, previous?.handle ?? '')).toBe(false);
    expect(await stages(identity)).toEqual(['current', 'previous', 'revoked']);
    expect(await orphans(identity)).toEqual([]);
    // The values themselves never reach the audit trail, the outcomes or the stored versions.
    const delivered = await readDelivered(identity);
    const written = JSON.stringify([
      (await services.store.readAll()).records.filter((r) => r.subject === identity.id),
      first,
      second,
      await services.store.listVersions(identity.id),
    ]);
    for (const secret of secretsIn(delivered)) expect(written).not.toContain(secret);
  });

  it('skips an identity that is not due, and says when it is', async () => {
    const identity = await harness.setup(uniqueName('kw'));
    await rotateIdentity(deps(), identity, { owner: 'test' });

    const again = await rotateIdentity(deps(), identity, { owner: 'test' });

    expect(again.status).toBe('skipped');
    expect(again.reason).toMatch(/^not due \(next at \d{4}-/);
  });

  describe.each(['issued', 'staged', 'createSecret', 'setSecret', 'testSecret', 'promoted', 'finishSecret'])(
    'crash after %s',
    (checkpoint) => {
      it('converges on the next run: one current credential, no orphan, never without a working one', async () => {
        const identity = await harness.setup(uniqueName('kw'));
        // IAM stamps key creation to the second, and an untagged key created in an attempt's
        // second is taken for its orphan: keep the setup key out of that second.
        if (harness.kind === 'aws-iam-access-key') await new Promise((resolve) => setTimeout(resolve, 1_100));
        // A clock of its own: orphans are told by creation time, which the provider stamps in real time.
        const clock = new OffsetClock();
        const crashing = deps({
          clock,
          afterStep: (_id, at) => {
            if (at === checkpoint) throw new SimulatedCrash(`crash after ${checkpoint}`);
          },
        });

        await expect(rotateIdentity(crashing, identity, { owner: 'crashed-run' })).rejects.toThrow(
          SimulatedCrash,
        );
        const workingAfterCrash = await harness.works(identity);
        const resumed = await rotateIdentity(deps({ clock }), identity, { owner: 'next-run' });

        expect(workingAfterCrash).toBe(true);
        // A crash after finishSecret came after the rotation was recorded finished: nothing is left to do.
        expect(resumed, resumed.reason).toMatchObject(
          checkpoint === 'finishSecret' ? { status: 'skipped' } : { status: 'rotated', resumed: true },
        );
        expect(await harness.works(identity)).toBe(true);
        const after = await services.store.listVersions(identity.id);
        expect(after.filter((v) => v.stage === 'current')).toHaveLength(1);
        expect(after.filter((v) => v.stage === 'pending')).toHaveLength(0);
        expect(await orphans(identity)).toEqual([]);
      });
    },
  );
});

describe('rotation: concurrency', () => {
  it('rotates each identity once when two runs start at the same time', async () => {
    const identities = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) => harnesses[i % harnesses.length]?.setup(uniqueName('kw')) as Promise<Identity>,
      ),
    );

    const [a, b] = await Promise.all([
      rotateMany(services.rotationDeps('run-a'), identities, { owner: 'run-a', limit: pLimit(4) }),
      rotateMany(services.rotationDeps('run-b'), identities, { owner: 'run-b', limit: pLimit(4) }),
    ]);

    for (const identity of identities) {
      const outcomes = [...a, ...b].filter((o) => o.identityId === identity.id);
      const trail = (await services.store.readAll()).records
        .filter((r) => r.subject === identity.id)
        .map((r) => `${r.actor}:${r.type}`);
      expect(outcomes.map((o) => o.status).sort(), JSON.stringify([outcomes, trail])).toEqual([
        'rotated',
        'skipped',
      ]);
      expect(outcomes.filter((o) => o.status === 'rotated')).toHaveLength(1);
      expect(outcomes.filter((o) => o.status === 'skipped')).toHaveLength(1);
      const issued = (await services.store.listVersions(identity.id)).filter((v) => v.origin === 'issued');
      expect(issued).toHaveLength(1);
    }
  });
});

describe('rotation: a failing test step', () => {
  it('keeps the old credential current and reports why', async () => {
    const identity = await iamKeys.setup(uniqueName('kw'));
    const userName = identity.kind === 'aws-iam-access-key' ? identity.scope.userName : '';
    // Something disables the new key between setSecret and testSecret.
    const sabotage = deps({
      afterStep: async (_id, at) => {
        if (at !== 'setSecret') return;
        const pending = (await services.store.listVersions(identity.id)).find((v) => v.stage === 'pending');
        await services.aws.iam.send(
          new UpdateAccessKeyCommand({
            UserName: userName,
            AccessKeyId: pending?.handle,
            Status: 'Inactive',
          }),
        );
      },
    });

    const outcome = await rotateIdentity(sabotage, identity, { owner: 'test' });

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toMatch(
      /^testSecret failed: .*Inactive.*; the current credential stays in force$/,
    );
    expect(await iamKeys.works(identity)).toBe(true);
    expect(await stages(identity)).toEqual(['revoked']);
    const { records } = await services.store.readAll();
    expect(records.some((r) => r.type === 'rotation.failed' && r.subject === identity.id)).toBe(true);
  });
});

describe('rotation: an old IAM key still in use', () => {
  it('is kept inactive instead of deleted after the grace period, and raised as a finding', async () => {
    const clock = new OffsetClock();
    const identity = await iamKeys.setup(uniqueName('kw'));
    const oldKey = JSON.parse(await readDelivered(identity)) as {
      accessKeyId: string;
      secretAccessKey: string;
    };
    await rotateIdentity(deps({ clock }), identity, { owner: 'test' });
    // A forgotten job still signs with the old key after the new one was delivered.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await new STSClient(awsClientConfig({ ...testAws(), credentials: oldKey })).send(
      new GetCallerIdentityCommand({}),
    );

    clock.advance(2 * 3_600_000);
    const next = await rotateIdentity(deps({ clock }), identity, { owner: 'test', force: true });

    // Its slot is still taken, so this rotation cannot issue a new key: a person must look first.
    expect(next.status).toBe('failed');
    expect(next.reason).toMatch(/IAM allows 2 access keys per user/);
    const kept = (await services.store.listVersions(identity.id)).find(
      (v) => v.handle === oldKey.accessKeyId,
    );
    expect(kept?.stage).toBe('disabled');
    expect(kept?.note).toMatch(/after its successor was delivered/);
    expect(next.warnings.join(' ')).toContain(oldKey.accessKeyId);
    const userName = identity.kind === 'aws-iam-access-key' ? identity.scope.userName : '';
    const keys = await services.aws.iam.send(new ListAccessKeysCommand({ UserName: userName }));
    expect(keys.AccessKeyMetadata?.find((k) => k.AccessKeyId === oldKey.accessKeyId)?.Status).toBe(
      'Inactive',
    );
    const findings = assessFindings([identity], [], {
      now: clock.now(),
      staleAfter: '90d',
      versions: new Map([[identity.id, await services.store.listVersions(identity.id)]]),
    });
    expect(findings.map((f) => `${f.type} ${f.handles.join(',')}`)).toContain(
      `used-after-rotation ${oldKey.accessKeyId}`,
    );
  });
});
