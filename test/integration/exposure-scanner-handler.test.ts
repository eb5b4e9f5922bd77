/**
 * The exposure scanner's Lambda entry point on the local stack: a CloudWatch Logs payload built
 * as AWS delivers it (the documented JSON, gzipped, base64) holding a managed OpenBao token is
 * scanned and the token contained — an incident campaign on its identity and fingerprint, with
 * re-issue, stored in the state table (dynalite) and started in the revocation state machine
 * (moto's Step Functions), audited `exposure.detected` then `exposure.contained`. The cold start
 * reads its configuration as in AWS: the environment, the fingerprint key and Vault token from
 * Secrets Manager (moto).
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig, awsClients } from '../../functions/adapters/aws/clients.ts';
import { dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { systemClock } from '../../functions/adapters/wiring.ts';
import { identity } from '../support/fixtures.ts';
import {
  putSecret,
  recordManagedVaultToken,
  standInStateMachine,
  useLocalLambdaEnv,
} from '../support/lambda-world.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

describe('handler: exposure scanner (the Lambda entry point, on the local stack)', () => {
  const aws = awsClients(testAws());
  const sfn = new SFNClient(awsClientConfig(testAws()));
  const table = uniqueName('kw-exposure');
  const fingerprintKey = randomBytes(32).toString('hex');
  const store = dynamoStore({
    client: aws.dynamodb,
    tableName: table,
    clock: systemClock,
    digest: sha256Hex,
  });
  const release = identity({ id: 'release-token', kind: 'vault-token', owner: 'team-release' });
  let stateMachineArn = '';
  let token = '';
  let accessor = '';

  beforeAll(async () => {
    const stack = testStack();
    await ensureStateTable(aws.dynamodb, table);
    const secret = (name: string, value: string) => putSecret(testAws(), name, value);
    const keyArn = await secret(uniqueName('kw-fp-key'), fingerprintKey);
    const tokenArn = await secret(uniqueName('kw-vault-token'), stack.vault.token);
    stateMachineArn = await standInStateMachine(testAws());
    // A managed token, recorded as rotation records it: its accessor and keyed fingerprint.
    ({ token, accessor } = await recordManagedVaultToken(store, release, fingerprintKey));
    useLocalLambdaEnv(table, {
      KEYWARDEN_VAULT_ADDR: stack.vault.addr,
      KEYWARDEN_VAULT_TOKEN_SECRET_ARN: tokenArn,
      KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: keyArn,
      KEYWARDEN_REVOCATION_STATE_MACHINE_ARN: stateMachineArn,
    });
  });

  /** What CloudWatch Logs hands the function for these lines of a CodeBuild log stream. */
  const delivered = (messages: string[]) => ({
    awslogs: {
      data: gzipSync(
        JSON.stringify({
          messageType: 'DATA_MESSAGE',
          owner: '123456789012',
          logGroup: '/aws/codebuild/deploy-app',
          logStream: 'build/7f3e',
          subscriptionFilters: ['keywarden-exposure'],
          logEvents: messages.map((message, index) => ({
            id: `${Date.now()}${index}`,
            timestamp: Date.now(),
            message,
          })),
        }),
      ).toString('base64'),
    },
  });

  it('contains the managed token a payload holds: a campaign stored and started, audited, no value anywhere', async () => {
    // prepare
    const { handler } = await import('../../functions/handlers/exposure-scanner.ts');

    // act
    const result = await handler(delivered(['[Container] npm ci\n', `+ vault login ${token}\n`]));

    // assess
    expect(result).toMatchObject({ events: 2, managed: 1, contained: 1 });
    const campaigns = await store.listCampaigns();
    expect(campaigns).toHaveLength(1);
    const [campaign] = campaigns;
    expect(campaign).toMatchObject({ reissue: true, requestedBy: 'keywarden:exposure-scanner' });
    expect(campaign?.incident).toMatch(/^EXPOSURE-[0-9a-f]{12}$/);
    // exactly the exposed token: nothing else the identity or OpenBao holds
    const targets = await store.listTargets(campaign?.campaignId ?? '');
    expect(targets.map((t) => [t.handle, t.action, t.outcome])).toEqual([[accessor, 'revoke', 'pending']]);
    const executions = await sfn.send(new ListExecutionsCommand({ stateMachineArn }));
    expect(executions.executions?.map((e) => e.name)).toEqual([campaign?.campaignId]);
    const { records } = await store.readAll();
    const exposure = records.filter((r) => r.type.startsWith('exposure.'));
    expect(exposure.map((r) => r.type)).toEqual(['exposure.detected', 'exposure.contained']);
    expect(exposure[0]?.details).toMatchObject({
      source: 'cloudwatch-logs',
      location: '/aws/codebuild/deploy-app/build/7f3e',
      line: 2,
    });
    expect(JSON.stringify({ result, records, campaigns })).not.toContain(token);
  });

  it('contains it once: the same token printed again starts nothing new', async () => {
    const { handler } = await import('../../functions/handlers/exposure-scanner.ts');

    const again = await handler(delivered([`retry: VAULT_TOKEN=${token}`]));

    expect(again).toMatchObject({ managed: 1, contained: 0 });
    expect(await store.listCampaigns()).toHaveLength(1);
    const executions = await sfn.send(new ListExecutionsCommand({ stateMachineArn }));
    expect(executions.executions).toHaveLength(1);
  });
});
