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
import { ListAccessKeysCommand, UpdateAccessKeyCommand } from '@aws-sdk/client-iam';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
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
import {
  type RotationDeps,
  rotateIdentity,
  rotateMany,
  SimulatedCrash,
} from '../../functions/core/rotation.ts';
import { credentialHarnesses } from '../support/credential-harness.ts';
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

const { harnesses, iamKeys, readDelivered, orphans, secretsIn } = credentialHarnesses(() => ({
  services,
  vault,
  prefix,
}));

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

  describe.each([
    'issued',
    'staged',
    'createSecret',
    'setSecret',
    'verifiedSaved',
    'verifiedAudited',
    'testSecret',
    'promoted',
    'deliveredAudited',
    'finishSecret',
  ])('crash after %s', (checkpoint) => {
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
      // The trail in DynamoDB has each step's event once, in order, whatever step the run died in.
      const current = after.find((v) => v.stage === 'current');
      const steps = (await services.store.readAll()).records
        .filter((r) => r.subject === identity.id && r.details.versionId === current?.versionId)
        .map((r) => r.type);
      expect(steps).toEqual([
        'credential.issued',
        'credential.verified',
        'credential.delivered',
        'credential.activated',
      ]);
    });
  });
});

describe('rotation: an aws-secret identity rotated the first time', () => {
  it('adopts the version its promotion replaced, named from the rotation’s own read of the secret, without listing the versions', async () => {
    const harness = harnesses.find((each) => each.kind === 'aws-secret');
    const identity = await harness?.setup(uniqueName('kw'));
    if (identity?.kind !== 'aws-secret') throw new Error('expected the aws-secret harness');
    const { secretId } = identity.scope;
    const before = await services.aws.secrets.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
    );
    const sent: string[] = [];
    const secrets = services.aws.secrets;
    secrets.middlewareStack.add(
      (next, context) => (args) => {
        sent.push(context.commandName ?? '');
        return next(args);
      },
      { step: 'initialize', name: 'countSecretsCommands' },
    );

    const outcome = await rotateIdentity(deps(), identity, { owner: 'test' }).finally(() =>
      secrets.middlewareStack.remove('countSecretsCommands'),
    );

    const adopted = (await services.store.listVersions(identity.id)).find((v) => v.origin === 'adopted');
    expect(outcome.status).toBe('rotated');
    expect(sent).not.toContain('ListSecretVersionIdsCommand');
    expect(adopted).toMatchObject({
      handle: before.VersionId,
      stage: 'previous',
      issuedAt: before.CreatedDate?.toISOString(),
    });
  });
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
    const keysOf = async () =>
      (
        (await services.aws.iam.send(new ListAccessKeysCommand({ UserName: userName }))).AccessKeyMetadata ??
        []
      ).map((key) => key.AccessKeyId);
    const before = await keysOf();
    // Something disables the new key (not recorded until tested) between setSecret and testSecret.
    const sabotage = deps({
      afterStep: async (_id, at) => {
        if (at !== 'setSecret') return;
        const fresh = (await keysOf()).find((key) => !before.includes(key));
        await services.aws.iam.send(
          new UpdateAccessKeyCommand({ UserName: userName, AccessKeyId: fresh, Status: 'Inactive' }),
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
