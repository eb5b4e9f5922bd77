import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { dynamoBreakglassStore } from '../../functions/adapters/aws/dynamodb-breakglass-store.ts';
import { dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { systemClock } from '../../functions/adapters/wiring.ts';
import { verifyChain } from '../../functions/core/audit.ts';
import { BreakglassConfigSchema } from '../../functions/core/grant.ts';
import { syncInventory } from '../../functions/core/inventory-sync.ts';
import { createBreakglassRole } from '../support/breakglass-role.ts';
import { identity } from '../support/fixtures.ts';
import { newVaultClient, testAws, testStack, uniqueName } from '../support/stack.ts';

describe('handler: discovery (the Lambda entry point, on the local stack)', () => {
  const aws = awsClients(testAws());
  const table = uniqueName('kw-discovery');
  const bucket = uniqueName('kw-reports');
  const path = `/${uniqueName('kw')}/`;
  const secretPrefix = `${uniqueName('kw')}/`;
  const secretValue = randomBytes(24).toString('hex');
  /** Made outside the discovery prefixes, or outside keywarden altogether, and declared. */
  const outside = {
    secret: `${uniqueName('kw-legacy')}/db`,
    breakglassRole: uniqueName('prod-admin'),
    tokenAccessor: '',
  };
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
    await aws.secrets.send(
      new CreateSecretCommand({ Name: outside.secret, SecretString: randomBytes(24).toString('hex') }),
    );
    await createBreakglassRole(aws.iam, outside.breakglassRole);
    outside.tokenAccessor = (
      await newVaultClient().createToken({ policies: ['default'], ttl: '10m' }, { orphan: true })
    ).accessor;
    await dynamoBreakglassStore({
      client: aws.dynamodb,
      tableName: table,
      clock: systemClock,
    }).putBreakglassConfig(
      BreakglassConfigSchema.parse({
        roles: [
          {
            id: 'prod-admin',
            description: 'incident access',
            target: {
              type: 'aws-role',
              roleArn: `arn:aws:iam::123456789012:role/breakglass/${outside.breakglassRole}`,
            },
            maxDuration: '1h',
            approvers: { localUsers: ['bob'] },
          },
        ],
      }),
    );
    await syncInventory(
      { store, audit: store, clock: systemClock, digest: sha256Hex },
      [
        identity({ id: 'legacy-db', kind: 'aws-secret', scope: { secretId: outside.secret } }),
        identity({ id: 'legacy-token', kind: 'vault-token', scope: { accessor: outside.tokenAccessor } }),
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
      // The SDK's service-specific endpoint variable: DynamoDB is dynalite, not moto.
      AWS_ENDPOINT_URL_DYNAMODB: stack.dynamodb.endpoint,
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
    // Declared outside the prefixes, by break-glass role, or by accessor: neither missing nor undeclared.
    const subjects = stored?.findings.map((f) => f.subject) ?? [];
    for (const subject of [
      'legacy-db',
      'legacy-token',
      'breakglass:prod-admin',
      `aws-role:${outside.breakglassRole}`,
    ])
      expect(subjects).not.toContain(subject);
    expect(stored?.findings.flatMap((f) => f.handles)).not.toContain(outside.tokenAccessor);
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
