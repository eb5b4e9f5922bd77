import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig } from '../../functions/adapters/aws/clients.ts';
import { Keys } from '../../functions/adapters/aws/dynamodb-store.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import type { Finding } from '../../functions/core/findings.ts';
import { IdentityKindSchema } from '../../functions/core/identity.ts';
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

  it('verifies the audit trail, then names the record altered directly in DynamoDB', async () => {
    expect(run('audit', 'verify').code).toBe(0);
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient(awsClientConfig(config.aws)));

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
