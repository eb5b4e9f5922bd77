/**
 * The deployed exposure scanner: a CloudWatch Logs subscription filter on each configured log
 * group delivering to the scanner function, whose role may use the state table, read the
 * fingerprint key and Vault token, and start the revocation state machine, nothing more.
 */
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  EXPOSURE_FILTER_NAME,
  EXPOSURE_LOG_GROUPS_CONTEXT,
  ExposureScanner,
} from '../../infra/constructs/exposure-scanner.ts';
import { InfraConfigError } from '../../infra/errors.ts';
import { KeywardenStack } from '../../infra/keywarden-stack.ts';
import { flattenCfnValue } from '../../infra/nag.ts';
import {
  ACCOUNT,
  ARNS,
  allowStatementsOfRole,
  awsSolutionsFindingsUnder,
  BUNDLED_HANDLER,
  bareKeywarden,
  expectOnlyScopedActionsOf,
  firesOnceNotifying,
  lambdaErrorsMetric,
  logicalIdOf,
  PARTITION,
  REGION,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  serviceVariables,
  suppressionsIn,
  synthesizeKeywarden,
  tableAndIndexArns,
} from './keywarden-fixture.ts';

const LOG_GROUPS = ['/aws/codebuild/deploy-app', '/aws/lambda/ci-runner'];

describe('infra: exposure scanner', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let exposure: ExposureScanner;

  beforeAll(() => {
    synthesized = synthesizeKeywarden({
      vaultAddr: 'https://vault.example.com',
      exposureLogGroups: LOG_GROUPS,
    });
    template = synthesized.template;
    const built = synthesized.stack.exposure;
    if (built === undefined) throw new Error('the stack was given log groups but built no ExposureScanner');
    exposure = built;
  });

  const functionArn = () => ({ 'Fn::GetAtt': [logicalIdOf(exposure.scanner.function), 'Arn'] });

  it('puts one keywarden-exposure filter on each log group, matching every event, delivering to the scanner', () => {
    const filters = Object.values(template.findResources('AWS::Logs::SubscriptionFilter')).map(
      (filter) => filter.Properties,
    );
    expect(filters).toHaveLength(LOG_GROUPS.length);
    expect(filters.map((filter) => filter.LogGroupName).sort()).toEqual([...LOG_GROUPS].sort());
    for (const filter of filters) {
      expect(filter).toMatchObject({
        FilterName: EXPOSURE_FILTER_NAME,
        FilterPattern: '',
        DestinationArn: functionArn(),
      });
    }
  });

  it('lets CloudWatch Logs invoke the scanner for the configured log groups only', () => {
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission'))
      .map((permission) => permission.Properties)
      .filter((permission) => JSON.stringify(permission.FunctionName) === JSON.stringify(functionArn()));
    expect(permissions).toHaveLength(LOG_GROUPS.length);
    for (const permission of permissions) {
      expect(permission).toMatchObject({ Action: 'lambda:InvokeFunction', Principal: 'logs.amazonaws.com' });
    }
    // This account's log groups by name: no other account's, no wildcard but the streams'.
    expect(permissions.map((permission) => flattenCfnValue(permission.SourceArn)).sort()).toEqual(
      LOG_GROUPS.map((name) => `arn:${PARTITION}:logs:${REGION}:${ACCOUNT}:log-group:${name}:*`).sort(),
    );
  });

  it('runs functions/handlers/exposure-scanner.ts with the service settings and the revocation state machine, failed batches to its dead-letter queue', () => {
    const fn = resourceOf(template, 'AWS::Lambda::Function', exposure.scanner.function)?.Properties;
    const queueArn = { 'Fn::GetAtt': [logicalIdOf(exposure.deadLetterQueue), 'Arn'] };
    expect(fn).toMatchObject({ ...BUNDLED_HANDLER, DeadLetterConfig: { TargetArn: queueArn } });
    expect(fn?.Environment.Variables).toEqual({
      ...serviceVariables(synthesized.stack, 'https://vault.example.com'),
      KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
      KEYWARDEN_SECRET_NAME_PREFIX: 'ci/',
      KEYWARDEN_REVOCATION_STATE_MACHINE_ARN: { Ref: logicalIdOf(synthesized.stack.revocation.stateMachine) },
      NODE_OPTIONS: '--enable-source-maps',
    });
  });

  it('may use the state table, read the fingerprint key and Vault token, list what a plan lists, and start the revocation state machine only', () => {
    const statements = allowStatementsOfRole(template, logicalIdOf(exposure.scanner.role));
    const { stack } = synthesized;
    expect(resourcesAllowedFor(statements, 'dynamodb:PutItem')).toEqual(tableAndIndexArns(stack));
    expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue').sort()).toEqual(
      [stack.secrets.vaultToken, stack.secrets.fingerprintKey].map((s) => `<${logicalIdOf(s)}>`).sort(),
    );
    expect(resourcesAllowedFor(statements, 'states:StartExecution')).toEqual([
      `<${logicalIdOf(stack.revocation.stateMachine)}>`,
    ]);
    expect(statements.filter((s) => s.actions.some((a) => a.startsWith('states:')))).toEqual([
      expect.objectContaining({ actions: ['states:StartExecution'] }),
    ]);
    expect(resourcesAllowedFor(statements, 'sqs:SendMessage')).toEqual([
      `<${logicalIdOf(exposure.deadLetterQueue)}.Arn>`,
    ]);
    // Listing only (metadata, under the revocation's path and prefix): the revocation functions revoke.
    expect(resourcesAllowedFor(statements, 'iam:ListAccessKeys')).toEqual([ARNS.users('/ci/')]);
    expect(statements.flatMap((s) => s.actions).filter((a) => a.startsWith('iam:'))).toEqual([
      'iam:ListAccessKeys',
    ]);
    expect(resourcesAllowedFor(statements, 'secretsmanager:ListSecretVersionIds')).toEqual([
      ARNS.secrets('ci/'),
    ]);
    expect(
      statements
        .filter((s) => s.resources.includes(ARNS.secrets('ci/')))
        .flatMap((s) => s.actions)
        .sort(),
    ).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:ListSecretVersionIds']);
    expectOnlyScopedActionsOf(statements, [
      'dynamodb',
      'iam',
      'kms',
      'logs',
      'secretsmanager',
      'sqs',
      'states',
    ]);
  });

  it('alarms on the scanner’s errors and on an unscanned batch, into the revocation alarm topic', () => {
    const topic = { Ref: logicalIdOf(synthesized.stack.revocation.alarmTopic) };
    const alarm = (construct: ExposureScanner['errorsAlarm']) =>
      resourceOf(template, 'AWS::CloudWatch::Alarm', construct as never)?.Properties;
    expect(alarm(exposure.errorsAlarm)).toMatchObject({
      AlarmName: 'Keywarden-exposure-scanner-errors',
      ...lambdaErrorsMetric(exposure.scanner.function),
      Period: 300,
      ...firesOnceNotifying(topic),
    });
    expect(alarm(exposure.deadLetterAlarm)).toMatchObject({
      AlarmName: 'Keywarden-exposure-unscanned',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      ...firesOnceNotifying(topic),
    });
  });

  it('leaves no unsuppressed AwsSolutions finding, and suppresses only the pinned runtime and the listing scopes', () => {
    expect(awsSolutionsFindingsUnder(synthesized.stack, ['/'])).toEqual([]);
    expect(Annotations.fromStack(synthesized.stack).findWarning('*', Match.anyValue())).toEqual([]);
    const found = suppressionsIn(template).filter((s) => s.path.includes('/ExposureScanner/'));
    for (const suppression of found) expect(suppression.reason.length).toBeGreaterThan(80);
    expect(
      [...new Set(found.map((s) => `${s.path} ${s.id} ${JSON.stringify(s.appliesTo ?? [])}`))].sort(),
    ).toEqual(
      [
        'Keywarden/ExposureScanner/Scanner/Function/Resource AwsSolutions-L1 []',
        ...[
          'Keywarden/ExposureScanner/Scanner/Role/Resource',
          'Keywarden/ExposureScanner/Scanner/Role/DefaultPolicy/Resource',
        ].flatMap((path) =>
          [ARNS.users('/ci/'), ARNS.secrets('ci/')].map(
            (arn) => `${path} AwsSolutions-IAM5 ${JSON.stringify([`Resource::${arn}`])}`,
          ),
        ),
      ].sort(),
    );
  });
});

describe('infra: exposure scanner settings', () => {
  const STATE_MACHINE = {
    stateMachineArn: `arn:aws:states:eu-west-1:${'1'.repeat(12)}:stateMachine:x`,
  } as sfn.IStateMachine;

  it('is not deployed when no log group is configured', () => {
    const { stack } = bareKeywarden();
    const keywarden = new KeywardenStack(stack.node.root as never, 'NoScanner');
    expect(keywarden.exposure).toBeUndefined();
  });

  it(`reads the log groups from context ${EXPOSURE_LOG_GROUPS_CONTEXT}, as JSON from the command line`, () => {
    const { stack } = bareKeywarden({ [EXPOSURE_LOG_GROUPS_CONTEXT]: JSON.stringify(['/aws/codebuild/x']) });
    const keywarden = new KeywardenStack(stack.node.root as never, 'FromContext');
    expect(keywarden.exposure?.logGroupNames).toEqual(['/aws/codebuild/x']);
  });

  it.each([
    [
      'a wildcard',
      ['/aws/codebuild/*'],
      /logGroups\[0\] must be a log group name .*received "\/aws\/codebuild\/\*"/,
    ],
    ['a name twice', ['/a', '/a'], /each log group may be listed once; received '\/a' twice/],
    ['not a list', '{"group":"/a"}', /logGroups must list at most 50 CloudWatch Logs log group names/],
    ['not JSON', '[/a]', /logGroups must be JSON such as/],
    ['an empty list', [], /logGroups must name at least one log group/],
  ])('refuses %s before creating anything', (_name, logGroups, message) => {
    const { stack, stateStore, secrets } = bareKeywarden();
    let refusal: unknown;
    try {
      new ExposureScanner(stack, 'Scanner', {
        stateStore,
        secrets,
        logGroups: logGroups as string[],
        revocationStateMachine: STATE_MACHINE,
      });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(InfraConfigError);
    expect((refusal as Error).message).toMatch(message);
    expect(stack.node.tryFindChild('Scanner')?.node.children).toEqual([]);
  });

  it('keeps each subscription’s construct id when the list is reordered', () => {
    const ids = (logGroups: string[]) => {
      const { stack, stateStore, secrets } = bareKeywarden();
      const scanner = new ExposureScanner(stack, 'Scanner', {
        stateStore,
        secrets,
        logGroups,
        revocationStateMachine: STATE_MACHINE,
      });
      return new Map([...scanner.subscriptions].map(([name, filter]) => [name, filter.node.id]));
    };
    expect(ids(['/a/b', '/c'])).toEqual(ids(['/c', '/a/b']));
  });
});
