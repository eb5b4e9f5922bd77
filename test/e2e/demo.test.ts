import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig, dynamoDbClientConfig } from '../../functions/adapters/aws/clients.ts';
import { Keys } from '../../functions/adapters/aws/dynamodb-store.ts';
import { readInventoryOrThrow } from '../../functions/adapters/inventory-file.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Finding } from '../../functions/core/findings.ts';
import { type Delivery, IdentityKindSchema } from '../../functions/core/identity.ts';
import { deliveryOf } from '../../functions/core/kinds.ts';
import { type StoredValue, shapeProblems, valueShapeOf } from '../../functions/core/secret-shape.ts';
import { type CliResult, keywarden, processAlive } from './cli.ts';

/** The README's run command, end to end: a fresh local stack with the demo company. */
describe('keywarden dev up --demo', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-demo-'));
  const run = (...args: string[]) => keywarden(args, { KEYWARDEN_HOME: home });
  let up: CliResult;

  beforeAll(() => {
    up = run('dev', 'up', '--demo');
  });

  afterAll(() => {
    const stack = JSON.parse(readFileSync(join(home, 'stack.json'), 'utf8')) as {
      moto: { pid: number };
      vault: { pid: number };
    };
    expect(run('dev', 'down').code).toBe(0);
    expect([processAlive(stack.moto.pid), processAlive(stack.vault.pid)]).toEqual([false, false]);
  });

  it('brings up the stack, seeds and syncs at least 20 identities, and prints findings naming each planted problem', () => {
    expect(up.code).toBe(0);
    expect(up.stderr).toMatch(/demo inventory: 2\d identities/);
    const table = up.stdout;
    expect(table).toMatch(/critical\s+│ reused-across-environments/);
    expect(table).toContain('aws-secret:ci/app/prod/db-password');
    expect(table).toContain('aws-secret:ci/app/staging/db-password');
    expect(table).toMatch(/over-max-age\s+│ app-publish-aws/);
    expect(table).toMatch(/stale\s+│ docs-build-aws/);
    expect(table).toMatch(/undeclared\s+│ aws-iam-user:ci-legacy-bot/);
    expect(table).toMatch(/separation-of-duties\s+│ release-signer/);
    expect(table).toMatch(/no-owner\s+│ payments-webhook/);
    expect(table).toMatch(/missing\s+│ legacy-ftp/);
  });

  it("reports exactly the README's planted problems: no false missing, no break-glass role or declared token undeclared", () => {
    const findings = JSON.parse(run('findings', '--json').stdout) as Finding[];
    const named = findings
      .map((f) => `${f.type} ${f.subject.replace(/^fingerprint:.*/, 'fingerprint')}`)
      .sort();
    expect(named).toEqual(
      [
        'reused-across-environments fingerprint',
        'over-max-age app-publish-aws',
        'separation-of-duties release-signer',
        'undeclared aws-iam-user:ci-legacy-bot',
        'undeclared vault-kv:secret/ci/old/jenkins-token',
        'missing legacy-ftp',
        'no-owner payments-webhook',
        'stale docs-build-aws',
      ].sort(),
    );
  });

  it('covers every credential kind in the stored inventory', () => {
    const list = run('inventory', 'list', '--json');
    const identities = JSON.parse(list.stdout) as { kind: string }[];
    expect(new Set(identities.map((i) => i.kind))).toEqual(new Set(IdentityKindSchema.options));
  });

  it('changes nothing when the same inventory is synced again', () => {
    const sync = run('inventory', 'sync', 'demo/identities.yaml', '--json');
    expect(JSON.parse(sync.stdout)).toEqual({ declared: 0, changed: 0, unchanged: 22, retired: 0 });
  });

  it('rotates a token made outside keywarden: the one its token role made is adopted, then superseded', () => {
    const rotate = run('rotate', '--identity', 'infra-terraform-token', '--json');
    expect(rotate.code, rotate.stderr).toBe(0);
    const status = JSON.parse(run('status', 'infra-terraform-token', '--json').stdout) as {
      versions: { origin: string; stage: string }[];
    };
    expect(status.versions.map((v) => `${v.origin} ${v.stage}`).sort()).toEqual([
      'adopted previous',
      'issued current',
    ]);
  });

  it('gates CI: exit 1 when a finding at or above --fail-on exists, and never prints a secret value', () => {
    const gated = run('findings', '--json', '--fail-on', 'critical');
    const findings = JSON.parse(gated.stdout) as Finding[];
    expect(gated.code).toBe(1);
    expect(findings.some((f) => f.severity === 'critical')).toBe(true);
    expect(gated.stdout).not.toMatch(/"(secret_id|SecretAccessKey|secretAccessKey)"/);
    expect(run('findings', '--stored', '--fail-on', 'high').code).toBe(1);
    expect(run('findings', '--fail-on', 'severe').code).toBe(2);
  });

  it('rotate --due keeps what the pipelines read: the same field names, only the generated fields new and in their formats; the rotate:false secret untouched, still in findings and status', async () => {
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    const secrets = new SecretsManagerClient(awsClientConfig(config.aws));
    const vault = new VaultClient({ addr: config.vault?.addr ?? '', token: config.vault?.token ?? '' });
    const { identities } = await readInventoryOrThrow('demo/identities.yaml');
    const read = async (delivery: Delivery): Promise<StoredValue | undefined> => {
      if (delivery.type === 'vault-kv') {
        const answer = await vault.read(`${delivery.mount}/data/${delivery.path}`);
        return (answer?.data as { data?: Record<string, unknown> } | undefined)?.data;
      }
      const value = await secrets
        .send(new GetSecretValueCommand({ SecretId: delivery.secretId, VersionStage: 'AWSCURRENT' }))
        .catch(() => undefined);
      return value?.SecretString;
    };
    const fieldsOf = (value: StoredValue | undefined): Record<string, unknown> | string | undefined => {
      if (typeof value !== 'string') return value;
      try {
        const parsed = JSON.parse(value) as unknown;
        return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : value;
      } catch {
        return value;
      }
    };
    const delivered = async () =>
      new Map(
        await Promise.all(
          identities.map(async (identity) => {
            const delivery = deliveryOf(identity);
            return [identity.id, delivery && (await read(delivery))] as const;
          }),
        ),
      );
    const before = await delivered();

    const rotate = run('rotate', '--due', '--json');
    const after = await delivered();

    expect(rotate.code, rotate.stderr).toBe(0);
    const outcomes = JSON.parse(rotate.stdout) as { identityId: string; status: string; reason?: string }[];
    const rotated = outcomes
      .filter((outcome) => outcome.status === 'rotated')
      .map((outcome) => outcome.identityId);
    expect(rotated).toEqual(
      expect.arrayContaining([
        'app-db-prod',
        'app-db-staging',
        'web-npm-token',
        'app-signing-key',
        'web-sentry-dsn',
        'web-cdn-purge',
      ]),
    );
    for (const identity of identities) {
      const [was, is] = [fieldsOf(before.get(identity.id)), fieldsOf(after.get(identity.id))];
      if (was === undefined) continue; // declared but missing (legacy-ftp), or no delivery target
      const shape = valueShapeOf(identity);
      if (typeof was === 'string') {
        expect(typeof is, identity.id).toBe('string');
      } else {
        expect(Object.keys(is as object).sort(), identity.id).toEqual(Object.keys(was).sort());
        const generated = new Set(shape?.type === 'fields' ? shape.generate.map(([name]) => name) : []);
        for (const [field, value] of Object.entries(was)) {
          if (!generated.has(field)) continue;
          expect((is as Record<string, unknown>)[field], `${identity.id}.${field} is generated`).not.toEqual(
            value,
          );
        }
        if (shape) {
          for (const field of Object.keys(was).filter((name) => !generated.has(name))) {
            expect(
              JSON.stringify((is as Record<string, unknown>)[field]),
              `${identity.id}.${field} is kept`,
            ).toBe(JSON.stringify(was[field]));
          }
        }
      }
      if (shape && rotated.includes(identity.id)) {
        expect(shapeProblems(identity, after.get(identity.id) as StoredValue), identity.id).toEqual([]);
      }
    }
    expect(outcomes.find((outcome) => outcome.identityId === 'payments-webhook')).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/policy.rotate is false/),
    });
    expect(after.get('payments-webhook')).toBe(before.get('payments-webhook'));
    const findings = JSON.parse(run('findings', '--json').stdout) as Finding[];
    expect(findings.map((f) => `${f.type} ${f.subject}`)).toContain('no-owner payments-webhook');
    const status = run('status', 'payments-webhook');
    expect(status.code, status.stderr).toBe(0);
    expect(status.stderr).toMatch(/payments-webhook \(aws-secret, active\) tracked, never rotated/);
    expect(status.stdout).toMatch(/│ active/);
    expect(status.stderr).toMatch(/not rotated: policy.rotate is false/);
  });

  it('verifies the audit trail, then names the record altered directly in DynamoDB', async () => {
    expect(run('audit', 'verify').code).toBe(0);
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient(dynamoDbClientConfig(config.aws)));

    await doc.send(
      new UpdateCommand({
        TableName: config.tableName,
        Key: Keys.audit(7),
        UpdateExpression: 'SET actor = :actor',
        ExpressionAttributeValues: { ':actor': 'cli:someone-else' },
      }),
    );
    const verify = run('audit', 'verify');

    expect(verify.code).toBe(1);
    expect(verify.stderr).toMatch(/audit trail BROKEN: record 7 \(identity\.declared .+\) was altered/);
  });
});
