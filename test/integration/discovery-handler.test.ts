import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { systemClock } from '../../functions/adapters/wiring.ts';
import { verifyChain } from '../../functions/core/audit.ts';
import { syncInventory } from '../../functions/core/inventory-sync.ts';
import { identity } from '../support/fixtures.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

describe('handler: discovery (the Lambda entry point, on the local stack)', () => {
  const aws = awsClients(testAws());
  const table = uniqueName('kw-discovery');
  const bucket = uniqueName('kw-reports');
  const path = `/${uniqueName('kw')}/`;
  const secretPrefix = `${uniqueName('kw')}/`;
  const secretValue = randomBytes(24).toString('hex');
  const store = dynamoStore({
    client: aws.dynamodb,
    tableName: table,
    clock: systemClock,
    digest: sha256Hex,
  });

  beforeAll(async () => {
    const stack = testStack();
    await ensureStateTable(aws.dynamodb, table);
    await aws.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const keyArn = (
      await aws.secrets.send(
        new CreateSecretCommand({
          Name: uniqueName('kw-fp-key'),
          SecretString: randomBytes(32).toString('hex'),
        }),
      )
    ).ARN;
    const tokenArn = (
      await aws.secrets.send(
        new CreateSecretCommand({ Name: uniqueName('kw-vault-token'), SecretString: stack.vault.token }),
      )
    ).ARN;
    await aws.secrets.send(new CreateSecretCommand({ Name: `${secretPrefix}db`, SecretString: secretValue }));
    for (const UserName of ['declared-user', 'ghost-user']) {
      await aws.iam.send(new CreateUserCommand({ UserName: `${UserName}-${table}`, Path: path }));
      await aws.iam.send(new CreateAccessKeyCommand({ UserName: `${UserName}-${table}` }));
    }
    await syncInventory(
      { store, audit: store, clock: systemClock, digest: sha256Hex },
      [
        identity({
          id: 'declared',
          kind: 'aws-iam-access-key',
          scope: { userName: `declared-user-${table}` },
        }),
        identity({ id: 'db', kind: 'aws-secret', scope: { secretId: `${secretPrefix}db` } }),
      ],
      'test',
    );
    Object.assign(process.env, {
      AWS_REGION: stack.region,
      AWS_ENDPOINT_URL: stack.moto.endpoint,
      AWS_ACCESS_KEY_ID: 'keywarden-local',
      AWS_SECRET_ACCESS_KEY: 'keywarden-local',
      KEYWARDEN_TABLE: table,
      KEYWARDEN_REPORT_BUCKET: bucket,
      KEYWARDEN_REPORT_PREFIX: 'discovery/',
      KEYWARDEN_IAM_PATH_PREFIX: path,
      KEYWARDEN_SECRET_NAME_PREFIX: secretPrefix,
      KEYWARDEN_VAULT_ADDR: stack.vault.addr,
      KEYWARDEN_VAULT_TOKEN_SECRET_ARN: tokenArn,
      KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: keyArn,
      KEYWARDEN_STALE_AFTER_DAYS: '90',
      POWERTOOLS_METRICS_DISABLED: 'true',
    });
  });

  it('records the findings, audits the run and writes a report without secret values', async () => {
    const { handler } = await import('../../functions/handlers/discovery.ts');

    const result = await handler();

    const stored = await store.latestFindings();
    expect(stored?.runId).toBe(result.runId);
    expect(stored?.findings.map((f) => `${f.type} ${f.subject}`)).toContain(
      `undeclared aws-iam-user:ghost-user-${table}`,
    );
    expect(stored?.findings.map((f) => f.subject)).not.toContain('declared');
    const { records, head } = await store.readAll();
    expect(records.at(-1)).toMatchObject({ type: 'discovery.completed', actor: 'scheduler:discovery' });
    expect(verifyChain(records, head, sha256Hex).ok).toBe(true);
    expect(result.report).toMatch(/^discovery\/\d{4}-\d{2}-\d{2}\//);
    const object = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: result.report }));
    const report = await object.Body?.transformToString();
    expect(JSON.parse(report ?? '{}').runId).toBe(result.runId);
    expect(report).not.toContain(secretValue);
    expect(report).not.toContain(testStack().vault.token);
  });
});
