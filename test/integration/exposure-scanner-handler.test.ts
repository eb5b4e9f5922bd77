/**
 * The exposure scanner's Lambda entry point on the local stack: a CloudWatch Logs payload built
 * as AWS delivers it (the documented JSON, gzipped, base64) holding a managed OpenBao token is
 * scanned and the token contained — an incident campaign on its identity and fingerprint, with
 * re-issue, stored in the state table (dynalite) and started in the revocation state machine
 * (moto's Step Functions), audited `exposure.detected` then `exposure.contained`. The cold start
 * reads its configuration as in AWS: the environment, the fingerprint key and Vault token from
 * Secrets Manager (moto).
 */
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { identity } from '../support/fixtures.ts';
import {
  lambdaWorld,
  localVaultEnv,
  recordManagedVaultToken,
  useLocalLambdaEnv,
} from '../support/lambda-world.ts';

describe('handler: exposure scanner (the Lambda entry point, on the local stack)', () => {
  const world = lambdaWorld('kw-exposure');
  const { store } = world;
  const release = identity({ id: 'release-token', kind: 'vault-token', owner: 'team-release' });
  let token = '';
  let accessor = '';

  beforeAll(async () => {
    const env = await world.prepare();
    // A managed token, recorded as rotation records it: its accessor and keyed fingerprint.
    ({ token, accessor } = await recordManagedVaultToken(store, release, world.fingerprintKey));
    useLocalLambdaEnv(world.table, { ...env, ...(await localVaultEnv()) });
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
    expect(await world.executions()).toEqual([campaign?.campaignId]);
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
    expect(await world.executions()).toHaveLength(1);
  });
});
