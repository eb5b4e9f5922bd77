/**
 * The rotation entry points on the local stack: the Secrets Manager rotation function
 * (with the template's guard checks), the scheduled rotation, and the local runtime's
 * scheduler that fires both.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  RotateSecretCommand,
} from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { syncInventory } from '../../functions/core/inventory-sync.ts';
import { makeHandler as scheduledRotation } from '../../functions/handlers/scheduled-rotation.ts';
import { makeHandler as secretRotation } from '../../functions/handlers/secret-rotation.ts';
import { LocalScheduler } from '../../functions/local/scheduler.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { OffsetClock } from '../support/offset-clock.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

process.env.POWERTOOLS_METRICS_DISABLED = 'true';
const logger = new Logger({ logLevel: 'SILENT' });
const metrics = new Metrics({ namespace: 'keywarden-test' });
metrics.setThrowOnEmptyMetrics(false);
let services: Services;
const prefix = `${uniqueName('kw-native')}/`;

beforeAll(async () => {
  const config = RuntimeConfigSchema.parse({
    aws: testAws(),
    tableName: uniqueName('kw-handlers'),
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: { secretNamePrefix: prefix },
    vault: {
      addr: testStack().vault.addr,
      token: testStack().vault.token,
      kvPrefixes: [`secret/${uniqueName('none')}/`],
    },
  });
  services = wire(config);
  await ensureStateTable(services.aws.dynamodb, config.tableName);
});

const current = async (secretId: string) =>
  (
    await services.aws.secrets.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
    )
  ).SecretString;

/** A secret declared in the inventory, with native rotation turned on (moto applies the rule without a function). */
async function declaredSecret(options: {
  rotation: boolean;
  policy?: Record<string, string>;
}): Promise<{ identity: Identity; secretId: string }> {
  const secretId = `${prefix}${uniqueName('db')}`;
  await services.aws.secrets.send(
    new CreateSecretCommand({ Name: secretId, SecretString: randomBytes(16).toString('hex') }),
  );
  if (options.rotation) {
    await services.aws.secrets.send(
      new RotateSecretCommand({
        SecretId: secretId,
        RotationRules: { AutomaticallyAfterDays: 30 },
        RotateImmediately: false,
      }),
    );
  }
  const identity = makeIdentity({
    id: uniqueName('db'),
    kind: 'aws-secret',
    scope: { secretId },
    ...(options.policy ? { policy: options.policy } : {}),
  });
  const declared = (await services.store.listIdentities())
    .filter((r) => r.status === 'active')
    .map((r) => r.identity);
  await syncInventory(services.syncDeps, [...declared, identity], 'test');
  return { identity, secretId };
}

const handler = () =>
  secretRotation({
    secrets: services.aws.secrets,
    identities: services.store,
    rotation: services.rotationDeps('secretsmanager:rotation'),
    logger,
    metrics,
  });

describe('handler: secret-rotation (native Secrets Manager rotation)', () => {
  it('runs the four steps: a new value becomes AWSCURRENT, the old one AWSPREVIOUS', async () => {
    const { identity, secretId } = await declaredSecret({ rotation: true });
    const before = await current(secretId);
    const token = randomUUID();

    for (const Step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) {
      expect(await handler()({ Step, SecretId: secretId, ClientRequestToken: token })).toMatchObject({
        step: Step,
        identityId: identity.id,
        result: 'done',
      });
    }

    const after = await current(secretId);
    const stages = (await services.aws.secrets.send(new DescribeSecretCommand({ SecretId: secretId })))
      .VersionIdsToStages;
    expect(after).not.toBe(before);
    expect(stages?.[token]).toEqual(['AWSCURRENT']);
    expect(Object.values(stages ?? {}).flat()).toContain('AWSPREVIOUS');
    expect(Object.values(stages ?? {}).flat()).not.toContain('AWSPENDING');
    expect(
      (await services.store.listVersions(identity.id)).find((v) => v.stage === 'current')?.versionId,
    ).toBe(token);
  });

  it('answers a repeated step for a version already AWSCURRENT without doing anything', async () => {
    const { secretId } = await declaredSecret({ rotation: true });
    const token = randomUUID();
    for (const Step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) {
      await handler()({ Step, SecretId: secretId, ClientRequestToken: token });
    }
    const value = await current(secretId);

    const repeat = await handler()({ Step: 'finishSecret', SecretId: secretId, ClientRequestToken: token });

    expect(repeat.result).toBe('already-current');
    expect(await current(secretId)).toBe(value);
  });

  it('refuses a secret whose rotation is not enabled', async () => {
    const { secretId } = await declaredSecret({ rotation: false });
    await expect(
      handler()({ Step: 'createSecret', SecretId: secretId, ClientRequestToken: randomUUID() }),
    ).rejects.toThrow(/is not enabled for rotation/);
  });

  it('refuses a later step for a token Secrets Manager never staged', async () => {
    const { secretId } = await declaredSecret({ rotation: true });
    await expect(
      handler()({ Step: 'testSecret', SecretId: secretId, ClientRequestToken: randomUUID() }),
    ).rejects.toThrow(/has no stage for rotation/);
  });

  it('refuses a secret no identity delivers to, saying how to fix it', async () => {
    const secretId = `${prefix}${uniqueName('stray')}`;
    await services.aws.secrets.send(
      new CreateSecretCommand({ Name: secretId, SecretString: randomBytes(8).toString('hex') }),
    );
    await services.aws.secrets.send(
      new RotateSecretCommand({
        SecretId: secretId,
        RotationRules: { AutomaticallyAfterDays: 30 },
        RotateImmediately: false,
      }),
    );
    await expect(
      handler()({ Step: 'createSecret', SecretId: secretId, ClientRequestToken: randomUUID() }),
    ).rejects.toThrow(/is not the delivery target of any active identity; declare it in identities.yaml/);
  });

  it('refuses a malformed event with what was expected', async () => {
    await expect(handler()({ Step: 'rotate', SecretId: 'x' })).rejects.toThrow(
      /expected a Secrets Manager rotation event \{Step, SecretId, ClientRequestToken\}/,
    );
  });
});

describe('handler: scheduled-rotation', () => {
  it('rotates what is due and skips it on the next run', async () => {
    const { identity, secretId } = await declaredSecret({ rotation: false });
    const before = await current(secretId);
    const run = scheduledRotation({
      identities: services.store,
      rotation: services.rotationDeps('scheduler:rotation'),
      limit: services.limit,
      logger,
      metrics,
    });

    const first = await run();
    const second = await run();

    expect(first.outcomes.find((o) => o.identityId === identity.id)?.status).toBe('rotated');
    expect(second.outcomes.find((o) => o.identityId === identity.id)?.status).toBe('skipped');
    expect(await current(secretId)).not.toBe(before);
  });
});

describe('local runtime: scheduler', () => {
  it('fires native rotation for a secret its rule says is due, beside scheduled rotation and discovery', async () => {
    const clock = new OffsetClock();
    const local = wire(services.config, clock);
    const { identity, secretId } = await declaredSecret({
      rotation: true,
      policy: { rotateEvery: '90d', maxAge: '180d' },
    });
    await new LocalScheduler(local).tick(); // the first rotation: never rotated by keywarden, so due
    const rotatedOnce = await current(secretId);

    clock.advance(31 * 86_400_000); // the secret's rule says 30 days; rotateEvery says 90
    const tick = await new LocalScheduler(local).tick();

    expect(tick.rotation.outcomes.find((o) => o.identityId === identity.id)?.status).toBe('skipped');
    expect(
      tick.native.find((n) => n.secretId === secretId),
      JSON.stringify(tick.native),
    ).toEqual({
      secretId,
      identityId: identity.id,
      result: 'rotated',
    });
    expect(await current(secretId)).not.toBe(rotatedOnce);
  });
});
