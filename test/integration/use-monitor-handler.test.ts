/**
 * The use monitor's Lambda entry point on the local stack, handed EventBridge's "AWS API Call via
 * CloudTrail" events as the rule delivers them: the cold start reads its configuration (the
 * fingerprint key from Secrets Manager, moto), the state table is dynalite's, and containment
 * starts an execution of the revocation state machine (a stand-in in moto's Step Functions). A
 * managed IAM user's real access key (moto) used from outside its identity's allowedRunners is
 * found and contained; a CI job's session used after its exchange ended is found; both join the
 * latest findings that `keywarden findings` reads, and are audited. The contained key's owner is
 * told on the alert topic (moto's SNS, read through an SQS subscriber).
 */
import { randomBytes } from 'node:crypto';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { beforeAll, describe, expect, it } from 'vitest';
import { dynamoCiStore } from '../../functions/adapters/aws/dynamodb-ci-store.ts';
import { DynamoTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { Fingerprinter } from '../../functions/adapters/crypto.ts';
import type { CiCredentialRecord } from '../../functions/core/ci-records.ts';
import { USE_MONITOR_ACTOR } from '../../functions/core/use-monitor.ts';
import { credentialVersion, identity } from '../support/fixtures.ts';
import {
  type AlertEnvelope,
  alertSubscriber,
  lambdaWorld,
  newAlertTopic,
  useLocalLambdaEnv,
} from '../support/lambda-world.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const ACCOUNT = '123456789012';

/** An EventBridge "AWS API Call via CloudTrail" event, as EventBridge delivers it. */
const cloudTrailEvent = (
  userIdentity: Record<string, unknown>,
  call: { eventTime: string; sourceIPAddress: string; errorCode?: string },
) => ({
  version: '0',
  id: crypto.randomUUID(),
  'detail-type': 'AWS API Call via CloudTrail',
  source: 'aws.sts',
  account: ACCOUNT,
  time: call.eventTime,
  region: 'us-east-1',
  resources: [],
  detail: {
    eventVersion: '1.09',
    userIdentity,
    eventTime: call.eventTime,
    eventSource: 'sts.amazonaws.com',
    eventName: 'GetCallerIdentity',
    awsRegion: 'us-east-1',
    sourceIPAddress: call.sourceIPAddress,
    userAgent: 'aws-cli/2.17.0',
    ...(call.errorCode ? { errorCode: call.errorCode } : {}),
    requestParameters: null,
    responseElements: null,
    eventID: crypto.randomUUID(),
    readOnly: true,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
  },
});

/** Whole seconds, as CloudTrail writes eventTime. */
const cloudTrailTime = (date: Date) => `${date.toISOString().slice(0, 19)}Z`;

describe('handler: use monitor, CloudTrail calls judged as they arrive (on the local stack)', () => {
  const world = lambdaWorld('kw-use-monitor');
  const { aws, store, fingerprintKey } = world;
  const ciStore = dynamoCiStore(new DynamoTable({ client: aws.dynamodb, tableName: world.table }));
  const userName = uniqueName('deploy-prod');
  const deploy = identity({
    id: 'deploy-prod',
    kind: 'aws-iam-access-key',
    owner: 'team-deploy',
    scope: { userName },
    allowedRunners: { cidrs: ['10.20.0.0/16'] },
    policy: { onUnexpectedUse: 'contain' },
  });
  const job = `ci-github-${randomBytes(4).toString('hex')}.1.1`;
  let readAlerts: (waitSeconds?: number) => Promise<AlertEnvelope[]>;
  let accessKeyId = '';
  let secret = '';

  beforeAll(async () => {
    const env = await world.prepare();
    // A managed IAM user's key, recorded as rotation records it: its id and keyed fingerprint.
    await aws.iam.send(new CreateUserCommand({ UserName: userName, Path: '/ci/' }));
    const key = (await aws.iam.send(new CreateAccessKeyCommand({ UserName: userName }))).AccessKey;
    accessKeyId = key?.AccessKeyId ?? '';
    secret = key?.SecretAccessKey ?? '';
    await store.putIdentity(
      { identity: deploy, status: 'active', declarationHash: 'h', syncedAt: new Date().toISOString() },
      undefined,
    );
    await store.putVersion(
      credentialVersion(deploy, {
        handle: accessKeyId,
        fingerprint: new Fingerprinter(fingerprintKey).of(secret),
        verifiedAt: new Date(Date.now() - 3_600_000).toISOString(),
      }),
      undefined,
    );
    // A CI job's exchange, ended a minute ago by the job.
    const record: CiCredentialRecord = {
      id: uniqueName('x'),
      grant: 'deploy-web',
      issuer: 'github',
      jobKey: `github/${job}`,
      correlationId: job,
      jobIds: { run_id: '1' },
      issuedAt: new Date(Date.now() - 300_000).toISOString(),
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
      aws: {
        roleArn: `arn:aws:iam::${ACCOUNT}:role/ci/deploy-web`,
        sourceIdentity: job,
        sessionName: 'ci-github-1-1',
        expiresAt: new Date(Date.now() + 600_000).toISOString(),
        denied: true,
        released: false,
      },
      state: 'ended',
      ended: { at: new Date(Date.now() - 60_000).toISOString(), by: 'job' },
      usedRecorded: true,
    };
    await ciStore.putCredential(record, undefined);
    // The alert topic, and a queue subscribed to it to read what owners are told.
    const topicArn = await newAlertTopic(testAws());
    readAlerts = await alertSubscriber(testAws(), topicArn);
    useLocalLambdaEnv(world.table, {
      ...env,
      KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
      KEYWARDEN_EXPOSURE_ALERT_TOPIC_ARN: topicArn,
    });
  });

  it('finds the managed key used from outside its allowedRunners and starts one containment campaign on its fingerprint, however many calls arrive at once; a call from inside is nothing', async () => {
    // prepare
    const { handler } = await import('../../functions/handlers/use-monitor.ts');
    const signedBy = (sourceIPAddress: string) =>
      cloudTrailEvent(
        {
          type: 'IAMUser',
          principalId: 'AIDAEXAMPLE',
          arn: `arn:aws:iam::${ACCOUNT}:user/ci/${userName}`,
          accountId: ACCOUNT,
          accessKeyId,
          userName,
        },
        { eventTime: cloudTrailTime(new Date()), sourceIPAddress },
      );

    // act: a burst of a stolen key's calls, each its own invocation (the claim is on dynalite)
    const inside = await handler(signedBy('10.20.1.2'));
    const burst = await Promise.all(Array.from({ length: 4 }, () => handler(signedBy('198.51.100.7'))));
    const outside = burst.find((r) => r.contained);
    const again = burst.filter((r) => r !== outside);

    // assess
    const id = `used-from-unexpected-runner:deploy-prod:${accessKeyId}`;
    expect(inside).toEqual({ recorded: 0 });
    expect(outside).toMatchObject({
      findings: [id],
      // started in the state machine: its execution revokes and re-issues
      contained: [{ identityId: 'deploy-prod', handle: accessKeyId, status: 'started' }],
    });
    expect(again).toEqual(Array.from({ length: 3 }, () => ({ recorded: 0, findings: [id] })));
    const campaigns = await store.listCampaigns();
    expect(campaigns).toEqual([expect.objectContaining({ reissue: true, requestedBy: USE_MONITOR_ACTOR })]);
    expect(campaigns[0]?.incident).toMatch(/^UNEXPECTED-USE-[0-9a-f]{12}$/);
    const targets = await store.listTargets(campaigns[0]?.campaignId ?? '');
    expect(targets.map((t) => [t.handle, t.action])).toEqual([[accessKeyId, 'revoke']]);
    expect(await world.executions()).toEqual([campaigns[0]?.campaignId]);
    expect((await store.latestFindings())?.findings.map((f) => f.id)).toContain(id);
    const { records } = await store.readAll();
    expect(records.filter((r) => r.type === 'credential.used')).toEqual([
      expect.objectContaining({
        actor: USE_MONITOR_ACTOR,
        subject: 'deploy-prod',
        details: expect.objectContaining({
          handle: accessKeyId,
          from: '198.51.100.7',
          outsideAllowedRunners: true,
        }),
      }),
    ]);
    // its owner told once, on the alert topic: who, which incident, from where
    const alerts = await readAlerts(2);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.MessageAttributes?.owner?.Value).toBe('team-deploy');
    expect(alerts[0]?.MessageAttributes?.incident?.Value).toBe(campaigns[0]?.incident);
    expect(alerts[0]?.Message).toContain('198.51.100.7');
    expect(JSON.stringify({ outside, records, campaigns, alerts })).not.toContain(secret);
  });

  it("finds a CI job's session used (and refused) after its exchange ended, beside the findings already listed", async () => {
    // prepare
    const { handler } = await import('../../functions/handlers/use-monitor.ts');
    const event = cloudTrailEvent(
      {
        type: 'AssumedRole',
        principalId: 'AROAEXAMPLE:ci-github-1-1',
        arn: `arn:aws:sts::${ACCOUNT}:assumed-role/deploy-web/ci-github-1-1`,
        accountId: ACCOUNT,
        accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
        sessionContext: {
          sessionIssuer: {
            type: 'Role',
            arn: `arn:aws:iam::${ACCOUNT}:role/ci/deploy-web`,
            userName: 'deploy-web',
          },
          sourceIdentity: job,
        },
      },
      { eventTime: cloudTrailTime(new Date()), sourceIPAddress: '203.0.113.50', errorCode: 'AccessDenied' },
    );

    // act
    const result = await handler(event);

    // assess
    expect(result).toMatchObject({ findings: [expect.stringMatching(/^used-after-job-end:ci:x-/)] });
    const latest = (await store.latestFindings())?.findings ?? [];
    expect(latest.map((f) => f.type).sort()).toEqual(['used-after-job-end', 'used-from-unexpected-runner']);
    expect(latest.find((f) => f.type === 'used-after-job-end')?.message).toContain(
      'from 203.0.113.50 (cloudtrail: sts:GetCallerIdentity (AccessDenied))',
    );
    const { records } = await store.readAll();
    expect(records.filter((r) => r.type === 'ci.credentials.used')).toEqual([
      expect.objectContaining({ subject: job, details: expect.objectContaining({ afterEnd: true }) }),
    ]);
  });
});
