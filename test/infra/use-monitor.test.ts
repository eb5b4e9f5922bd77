/**
 * The use monitor: one EventBridge rule on CloudTrail's API calls of `ci-` sessions and of
 * `AKIA` keys, delivering to functions/handlers/use-monitor.ts with a dead-letter queue; its role
 * may use the state table, read the fingerprint key (never the Vault token: only access keys are
 * watched), list the used key's user's keys and start the revocation state machine, nothing more;
 * without a state machine, no containment grant at all.
 */
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import * as cloudtrail from '../../functions/adapters/aws/cloudtrail-event.ts';
import {
  CI_SOURCE_IDENTITY_PREFIX,
  LONG_TERM_KEY_PREFIX,
  UseMonitor,
} from '../../infra/constructs/use-monitor.ts';
import {
  ARNS,
  allowStatementsOfRole,
  awsSolutionsFindingsUnder,
  BUNDLED_HANDLER,
  bareKeywarden,
  expectOnlyScopedActionsOf,
  firesOnceNotifying,
  lambdaErrorsMetric,
  logicalIdOf,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  serviceVariables,
  suppressionsIn,
  synthesizeKeywarden,
  tableAndIndexArns,
} from './keywarden-fixture.ts';

describe('infra: use monitor', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let monitor: UseMonitor;

  beforeAll(() => {
    // The default stack, with no CI issuer: managed keys are watched all the same.
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
    monitor = synthesized.stack.useMonitor;
  });

  const rule = () => resourceOf(template, 'AWS::Events::Rule', monitor.rule)?.Properties;
  const queueArn = () => ({ 'Fn::GetAtt': [logicalIdOf(monitor.deadLetterQueue), 'Arn'] });
  const statements = () => allowStatementsOfRole(template, logicalIdOf(monitor.monitor.role));

  it('hears every CloudTrail API call of a session whose SourceIdentity starts ci- or signed with a long-term AKIA key, read-only ones included', () => {
    expect(rule()?.EventPattern).toEqual({
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: {
        $or: [
          { userIdentity: { sessionContext: { sourceIdentity: [{ prefix: 'ci-' }] } } },
          { userIdentity: { accessKeyId: [{ prefix: 'AKIA' }] } },
        ],
      },
    });
    expect(rule()?.State).toBe('ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS');
    // The prefixes and detail-type the function reads events by.
    expect([CI_SOURCE_IDENTITY_PREFIX, LONG_TERM_KEY_PREFIX, 'AWS API Call via CloudTrail']).toEqual([
      cloudtrail.CI_SOURCE_IDENTITY_PREFIX,
      cloudtrail.LONG_TERM_KEY_PREFIX,
      cloudtrail.CLOUDTRAIL_API_CALL,
    ]);
    // The default bus, where CloudTrail's events arrive.
    expect(rule()?.EventBusName).toBeUndefined();
  });

  it('sends them to functions/handlers/use-monitor.ts, and what cannot be delivered or fails to the dead-letter queue', () => {
    expect(rule()?.Targets).toEqual([
      expect.objectContaining({
        Arn: { 'Fn::GetAtt': [logicalIdOf(monitor.monitor.function), 'Arn'] },
        DeadLetterConfig: { Arn: queueArn() },
        RetryPolicy: { MaximumEventAgeInSeconds: 6 * 3600, MaximumRetryAttempts: 8 },
      }),
    ]);
    const fn = resourceOf(template, 'AWS::Lambda::Function', monitor.monitor.function)?.Properties;
    expect(fn).toMatchObject({ ...BUNDLED_HANDLER, DeadLetterConfig: { TargetArn: queueArn() } });
    const {
      KEYWARDEN_VAULT_ADDR: _addr,
      KEYWARDEN_VAULT_TOKEN_SECRET_ARN: _token,
      ...service
    } = serviceVariables(synthesized.stack);
    expect(fn?.Environment.Variables).toEqual({
      ...service,
      KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
      KEYWARDEN_SECRET_NAME_PREFIX: 'ci/',
      KEYWARDEN_REVOCATION_STATE_MACHINE_ARN: { Ref: logicalIdOf(synthesized.stack.revocation.stateMachine) },
      KEYWARDEN_EXPOSURE_ALERT_TOPIC_ARN: { Ref: logicalIdOf(synthesized.stack.revocation.alarmTopic) },
      NODE_OPTIONS: '--enable-source-maps',
    });
    expect(resourceOf(template, 'AWS::SQS::Queue', monitor.deadLetterQueue)?.Properties).toMatchObject({
      SqsManagedSseEnabled: true,
    });
  });

  it('uses the state table, reads the fingerprint key only, starts the revocation state machine only, lists only the used key’s user’s keys, and alerts on the alarm topic', () => {
    const granted = statements();
    const { stack } = synthesized;
    expect(resourcesAllowedFor(granted, 'dynamodb:PutItem')).toEqual(tableAndIndexArns(stack));
    expect(resourcesAllowedFor(granted, 'secretsmanager:GetSecretValue')).toEqual([
      `<${logicalIdOf(stack.secrets.fingerprintKey)}>`,
    ]);
    expect(granted.flatMap((s) => s.actions).filter((a) => a.startsWith('secretsmanager:'))).toEqual([
      'secretsmanager:GetSecretValue',
    ]);
    expect(resourcesAllowedFor(granted, 'states:StartExecution')).toEqual([
      `<${logicalIdOf(stack.revocation.stateMachine)}>`,
    ]);
    expect(granted.flatMap((s) => s.actions).filter((a) => a.startsWith('states:'))).toEqual([
      'states:StartExecution',
    ]);
    // Owners told on the revocation alarm topic, encrypted with its key.
    expect(resourcesAllowedFor(granted, 'sns:Publish')).toEqual([
      `<${logicalIdOf(stack.revocation.alarmTopic)}>`,
    ]);
    expect(resourcesAllowedFor(granted, 'kms:GenerateDataKey')).toContain(
      `<${logicalIdOf(stack.revocation.alarmKey as never)}.Arn>`,
    );
    expect(resourcesAllowedFor(granted, 'iam:ListAccessKeys')).toEqual([ARNS.users('/ci/')]);
    expect(granted.flatMap((s) => s.actions).filter((a) => a.startsWith('iam:'))).toEqual([
      'iam:ListAccessKeys',
    ]);
    expect(resourcesAllowedFor(granted, 'sqs:SendMessage')).toEqual([
      `<${logicalIdOf(monitor.deadLetterQueue)}.Arn>`,
    ]);
    expectOnlyScopedActionsOf(granted, [
      'dynamodb',
      'iam',
      'kms',
      'logs',
      'secretsmanager',
      'sns',
      'sqs',
      'states',
    ]);
  });

  it('alarms on its errors and on a dead-lettered event, into the revocation alarm topic', () => {
    const topic = { Ref: logicalIdOf(synthesized.stack.revocation.alarmTopic) };
    const alarm = (construct: UseMonitor['errorsAlarm']) =>
      resourceOf(template, 'AWS::CloudWatch::Alarm', construct as never)?.Properties;
    expect(alarm(monitor.errorsAlarm)).toMatchObject({
      AlarmName: 'Keywarden-use-monitor-errors',
      ...lambdaErrorsMetric(monitor.monitor.function),
      ...firesOnceNotifying(topic),
    });
    expect(alarm(monitor.deadLetterAlarm)).toMatchObject({
      AlarmName: 'Keywarden-use-monitor-undelivered',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      ...firesOnceNotifying(topic),
    });
  });

  it('leaves no unsuppressed AwsSolutions finding, and suppresses only the pinned runtime and the IAM users listing scope', () => {
    expect(awsSolutionsFindingsUnder(synthesized.stack, ['/UseMonitor/'])).toEqual([]);
    expect(Annotations.fromStack(synthesized.stack).findWarning('*', Match.anyValue())).toEqual([]);
    const found = suppressionsIn(template).filter((s) => s.path.includes('/UseMonitor/'));
    for (const suppression of found) expect(suppression.reason.length).toBeGreaterThan(80);
    expect(
      [...new Set(found.map((s) => `${s.path} ${s.id} ${JSON.stringify(s.appliesTo ?? [])}`))].sort(),
    ).toEqual(
      [
        'Keywarden/UseMonitor/Monitor/Function/Resource AwsSolutions-L1 []',
        ...[
          'Keywarden/UseMonitor/Monitor/Role/Resource',
          'Keywarden/UseMonitor/Monitor/Role/DefaultPolicy/Resource',
        ].flatMap((path) =>
          [ARNS.users('/ci/')].map(
            (arn) => `${path} AwsSolutions-IAM5 ${JSON.stringify([`Resource::${arn}`])}`,
          ),
        ),
      ].sort(),
    );
  });
});

describe('infra: use monitor without a revocation state machine', () => {
  it('reports only: the state table and the fingerprint key, no Step Functions, IAM or Vault token', () => {
    // prepare
    const { stack, stateStore, secrets } = bareKeywarden();

    // act
    const monitor = new UseMonitor(stack, 'UseMonitor', { stateStore, secrets });

    // assess
    const template = Template.fromStack(stack);
    const granted = allowStatementsOfRole(template, logicalIdOf(monitor.monitor.role));
    expect(monitor.contains).toBe(false);
    expect(resourcesAllowedFor(granted, 'secretsmanager:GetSecretValue')).toEqual([
      `<${logicalIdOf(secrets.fingerprintKey)}>`,
    ]);
    expectOnlyScopedActionsOf(granted, ['dynamodb', 'kms', 'logs', 'secretsmanager', 'sqs']);
    const fn = resourceOf(template, 'AWS::Lambda::Function', monitor.monitor.function)?.Properties;
    expect(Object.keys(fn?.Environment.Variables ?? {}).sort()).toEqual([
      'KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN',
      'KEYWARDEN_TABLE',
      'NODE_OPTIONS',
    ]);
  });

  it('takes a state machine by its ARN (an imported one)', () => {
    const { stack, stateStore, secrets } = bareKeywarden();
    const revocationStateMachine = {
      stateMachineArn: `arn:aws:states:eu-west-1:${'1'.repeat(12)}:stateMachine:x`,
    } as sfn.IStateMachine;
    expect(
      new UseMonitor(stack, 'UseMonitor', { stateStore, secrets, revocationStateMachine }).contains,
    ).toBe(true);
  });
});
