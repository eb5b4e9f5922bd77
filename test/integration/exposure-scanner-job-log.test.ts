/**
 * The exposure scanner's Lambda entry point handed a finished CI job, as the API hands it after a
 * completion webhook (`{finishedJob}`, an asynchronous invocation in AWS): the cold start reads
 * the forge tokens secret (Secrets Manager, moto) beside its configuration, the job's log is read
 * through the platform's API (the local GitHub/GitLab stand-in, test/support/forge-server.ts) and
 * the managed OpenBao token printed in it is contained — an incident campaign on exactly its
 * accessor, with re-issue, stored in the state table (dynalite) and started in the revocation
 * state machine (moto's Step Functions), audited `exposure.detected` at its line of the log, then
 * `exposure.contained`, and its owner alerted on the alert topic (moto's SNS, read through an SQS
 * subscriber). No token (the leaked one, the platforms') is in anything it returns, records or sends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FinishedJobEvent } from '../../functions/adapters/scan/scanner-event.ts';
import { identity } from '../support/fixtures.ts';
import { type ForgeServer, startForgeServer } from '../support/forge-server.ts';
import {
  type AlertEnvelope,
  alertSubscriber,
  lambdaWorld,
  localVaultEnv,
  newAlertTopic,
  putSecret,
  recordManagedVaultToken,
  useLocalLambdaEnv,
} from '../support/lambda-world.ts';
import { testAws, uniqueName } from '../support/stack.ts';

describe('handler: exposure scanner, a finished CI job handed over by the API (on the local stack)', () => {
  const world = lambdaWorld('kw-job-log');
  const { store } = world;
  const release = identity({ id: 'release-token', kind: 'vault-token', owner: 'team-release' });
  let forge: ForgeServer;
  let readAlerts: (waitSeconds?: number) => Promise<AlertEnvelope[]>;
  let token = '';
  let accessor = '';

  beforeAll(async () => {
    forge = await startForgeServer();
    const env = await world.prepare();
    const forgeTokensArn = await putSecret(
      testAws(),
      uniqueName('kw-forge-tokens'),
      JSON.stringify({ github: forge.githubToken, gitlab: forge.gitlabToken }),
    );
    // A managed token, recorded as rotation records it: its accessor and keyed fingerprint.
    ({ token, accessor } = await recordManagedVaultToken(store, release, world.fingerprintKey));
    // The job printed the token on its third line; GitLab's job printed it again later.
    forge.addGithubRun({
      owner: 'acme',
      repo: 'app',
      runId: 10171458981,
      jobs: [
        {
          id: 29679449,
          name: 'deploy',
          log: `2026-12-05T08:00:00Z ##[group]Run ./deploy.sh\n2026-12-05T08:00:01Z deploying\n2026-12-05T08:00:02Z + vault login ${token}\n2026-12-05T08:00:03Z done\n`,
        },
      ],
    });
    forge.setGitlabTrace('42', 7001, `Running job\nVAULT_TOKEN=${token}\n`);
    // The alert topic, and a queue subscribed to it to read what owners are told.
    const topicArn = await newAlertTopic(testAws());
    readAlerts = await alertSubscriber(testAws(), topicArn);
    useLocalLambdaEnv(world.table, {
      ...env,
      ...(await localVaultEnv()),
      KEYWARDEN_FORGE_TOKENS_SECRET_ARN: forgeTokensArn,
      KEYWARDEN_GITHUB_API_URL: forge.url,
      KEYWARDEN_GITLAB_URL: forge.url,
      KEYWARDEN_EXPOSURE_ALERT_TOPIC_ARN: topicArn,
    });
  });

  afterAll(async () => {
    await forge?.close();
  });

  it('reads the GitHub job log, contains the managed token in it: one campaign on its accessor, started, audited at its line', async () => {
    // prepare
    const { handler } = await import('../../functions/handlers/exposure-scanner.ts');
    const handedOver: FinishedJobEvent = {
      finishedJob: { platform: 'github', repository: 'acme/app', jobId: 29679449 },
    };
    const event = JSON.parse(JSON.stringify(handedOver));

    // act
    const result = await handler(event);

    // assess: the log read with the token of the forge tokens secret
    expect(result).toMatchObject({ lines: 5, managed: 1, contained: 1 });
    expect(
      forge.requests.some((r) => r.path === '/repos/acme/app/actions/jobs/29679449/logs' && r.bearer),
    ).toBe(true);
    const campaigns = await store.listCampaigns();
    expect(campaigns).toHaveLength(1);
    const [campaign] = campaigns;
    expect(campaign).toMatchObject({ reissue: true, requestedBy: 'keywarden:exposure-scanner' });
    expect(campaign?.incident).toMatch(/^EXPOSURE-[0-9a-f]{12}$/);
    const targets = await store.listTargets(campaign?.campaignId ?? '');
    expect(targets.map((t) => [t.handle, t.action, t.outcome])).toEqual([[accessor, 'revoke', 'pending']]);
    expect(await world.executions()).toEqual([campaign?.campaignId]);
    const { records } = await store.readAll();
    const exposure = records.filter((r) => r.type.startsWith('exposure.'));
    expect(exposure.map((r) => r.type)).toEqual(['exposure.detected', 'exposure.contained']);
    expect(exposure[0]?.details).toMatchObject({ source: 'github-run', line: 3 });
    expect(String(exposure[0]?.details.location)).toContain('acme/app');
    // started, not claimed ended: the state machine's execution revokes
    expect(exposure[1]?.details).toMatchObject({ outcome: 'started', revoked: 0 });
    // the owner told, on the alert topic: who, which incident, containment started
    const alerts = await readAlerts(2);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.MessageAttributes?.owner?.Value).toBe('team-release');
    expect(alerts[0]?.MessageAttributes?.incident?.Value).toBe(campaign?.incident);
    expect(alerts[0]?.Message).toContain('release-token');
    expect(alerts[0]?.MessageAttributes?.status?.Value).toBe('started');
    expect(alerts[0]?.Message).toContain(`containment started by ${campaign?.incident}`);
    const everything = JSON.stringify({ result, records, campaigns, alerts });
    for (const secret of [token, forge.githubToken, forge.gitlabToken])
      expect(everything).not.toContain(secret);
  });

  it('reads a GitLab job trace too, and contains the same token once: nothing new is started', async () => {
    const { handler } = await import('../../functions/handlers/exposure-scanner.ts');

    const result = await handler({ finishedJob: { platform: 'gitlab', project: 42, jobId: 7001 } });

    expect(result).toMatchObject({ managed: 1, contained: 0 });
    expect(
      forge.requests.some((r) => r.path === '/api/v4/projects/42/jobs/7001/trace' && r.privateToken),
    ).toBe(true);
    expect(await store.listCampaigns()).toHaveLength(1);
    expect(await world.executions()).toHaveLength(1);
  });
});
