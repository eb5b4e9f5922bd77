/**
 * The deployed exposure scanner: a CloudWatch Logs subscription filter on each configured log
 * group delivering to the scanner function, whose role may use the state table, read the
 * fingerprint key and Vault token, and start the revocation state machine, nothing more.
 */
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  EXPOSURE_ALERT_CHANNEL_CONTEXT,
  EXPOSURE_FILTER_NAME,
  EXPOSURE_GITHUB_API_CONTEXT,
  EXPOSURE_LOG_GROUPS_CONTEXT,
  ExposureScanner,
  FORGE_TOKENS_PLACEHOLDER,
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
    // With CI job credentials: the API hands finished jobs to the scanner.
    synthesized = synthesizeKeywarden({
      vaultAddr: 'https://vault.example.com',
      exposureLogGroups: LOG_GROUPS,
      ciIssuers: [{ preset: 'github', audience: 'keywarden' }],
      gitlabUrl: 'https://gitlab.example.com',
      exposureAlertChannel: 'C0123456789',
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
      KEYWARDEN_FORGE_TOKENS_SECRET_ARN: { Ref: logicalIdOf(exposure.forgeTokens) },
      // GitHub's default (api.github.com) is the handler's; the configured GitLab is passed on.
      KEYWARDEN_GITLAB_URL: 'https://gitlab.example.com',
      // Alerts: the revocation alarm topic, and the Slack channel with the bot token to post as.
      KEYWARDEN_EXPOSURE_ALERT_TOPIC_ARN: { Ref: logicalIdOf(synthesized.stack.revocation.alarmTopic) },
      KEYWARDEN_EXPOSURE_ALERT_CHANNEL: 'C0123456789',
      KEYWARDEN_SLACK_BOT_TOKEN_SECRET_ARN: { Ref: logicalIdOf(synthesized.stack.secrets.slackBotToken) },
      NODE_OPTIONS: '--enable-source-maps',
    });
  });

  it('creates the forge tokens secret with empty tokens for the operator to set, readable by the scanner only, and outputs its ARN', () => {
    const secret = resourceOf(template, 'AWS::SecretsManager::Secret', exposure.forgeTokens)?.Properties;
    expect(secret).toMatchObject({ Name: 'Keywarden/forge-tokens', SecretString: FORGE_TOKENS_PLACEHOLDER });
    expect(JSON.parse(FORGE_TOKENS_PLACEHOLDER)).toEqual({ github: '', gitlab: '' });
    const ref = `<${logicalIdOf(exposure.forgeTokens)}>`;
    const readers = Object.keys(template.findResources('AWS::IAM::Role')).filter((role) =>
      allowStatementsOfRole(template, role).some((s) => s.resources.includes(ref)),
    );
    expect(readers).toEqual([logicalIdOf(exposure.scanner.role)]);
    const scanner = allowStatementsOfRole(template, logicalIdOf(exposure.scanner.role));
    expect(scanner.filter((s) => s.resources.includes(ref)).flatMap((s) => s.actions)).toEqual([
      'secretsmanager:GetSecretValue',
    ]);
    expect(template.findOutputs('ExposureForgeTokensSecretArn').ExposureForgeTokensSecretArn?.Value).toEqual({
      Ref: logicalIdOf(exposure.forgeTokens),
    });
  });

  it('lets the CI function invoke the scanner (and no other function of it), naming it in its environment', () => {
    const api = synthesized.stack.ci?.handler;
    if (!api) throw new Error('no CI function built');
    const statements = allowStatementsOfRole(template, logicalIdOf(api.role));
    const scannerArn = `<${logicalIdOf(exposure.scanner.function)}.Arn>`;
    const handOff = statements.filter((s) => s.resources.includes(scannerArn));
    expect(handOff).toEqual([expect.objectContaining({ actions: ['lambda:InvokeFunction'] })]);
    expect(handOff[0]?.resources).toEqual([scannerArn]);
    const fn = resourceOf(template, 'AWS::Lambda::Function', api.function)?.Properties;
    expect(fn?.Environment.Variables.KEYWARDEN_EXPOSURE_SCANNER_FUNCTION_ARN).toEqual(functionArn());
    // Nothing else may hand the scanner work: only CloudWatch Logs' permissions and the API's role name it.
    const invokers = Object.keys(template.findResources('AWS::IAM::Role')).filter((role) =>
      allowStatementsOfRole(template, role).some((s) => s.resources.includes(scannerArn)),
    );
    expect(invokers).toEqual([logicalIdOf(api.role)]);
  });

  it('may use the state table, read the fingerprint key and Vault token, list what a plan lists, and start the revocation state machine only', () => {
    const statements = allowStatementsOfRole(template, logicalIdOf(exposure.scanner.role));
    const { stack } = synthesized;
    expect(resourcesAllowedFor(statements, 'dynamodb:PutItem')).toEqual(tableAndIndexArns(stack));
    expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue').sort()).toEqual(
      [
        stack.secrets.vaultToken,
        stack.secrets.fingerprintKey,
        stack.secrets.slackBotToken,
        exposure.forgeTokens,
      ]
        .map((s) => `<${logicalIdOf(s)}>`)
        .sort(),
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
    // Alerts: publish to the alert topic (the revocation alarm topic) and use its key, nothing else of SNS.
    expect(exposure.alertTopic).toBe(stack.revocation.alarmTopic);
    expect(resourcesAllowedFor(statements, 'sns:Publish')).toEqual([
      `<${logicalIdOf(stack.revocation.alarmTopic)}>`,
    ]);
    expect(statements.flatMap((s) => s.actions).filter((a) => a.startsWith('sns:'))).toEqual(['sns:Publish']);
    const alarmKey = `<${logicalIdOf(stack.revocation.alarmKey as never)}.Arn>`;
    expect(
      statements
        .filter((s) => s.resources.includes(alarmKey))
        .flatMap((s) => s.actions)
        .sort(),
    ).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expectOnlyScopedActionsOf(statements, [
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
        'Keywarden/ExposureScanner/ForgeTokens/Resource AwsSolutions-SMG4 []',
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

  it('hands no finished job over without CI job credentials: no API function may invoke the scanner', () => {
    const { stack, template } = synthesizeKeywarden({ exposureLogGroups: ['/aws/codebuild/x'] });
    const scanner = stack.exposure?.scanner.function;
    if (!scanner) throw new Error('no scanner built');
    expect(stack.ci).toBeUndefined();
    for (const api of [stack.api.grants, stack.api.campaigns]) {
      const statements = allowStatementsOfRole(template, logicalIdOf(api.role));
      const scannerArn = `<${logicalIdOf(scanner)}.Arn>`;
      expect(statements.filter((s) => s.resources.includes(scannerArn))).toEqual([]);
      const fn = resourceOf(template, 'AWS::Lambda::Function', api.function)?.Properties;
      expect(fn?.Environment.Variables.KEYWARDEN_EXPOSURE_SCANNER_FUNCTION_ARN).toBeUndefined();
    }
  });

  it(`reads GitHub's API root from context ${EXPOSURE_GITHUB_API_CONTEXT}`, () => {
    const { stack } = bareKeywarden({
      [EXPOSURE_LOG_GROUPS_CONTEXT]: ['/aws/codebuild/x'],
      [EXPOSURE_GITHUB_API_CONTEXT]: 'https://github.example.com/api/v3',
    });
    const keywarden = new KeywardenStack(stack.node.root as never, 'GithubFromContext');
    const scanner = keywarden.exposure?.scanner.function;
    if (!scanner) throw new Error('no scanner built');
    const fn = resourceOf(Template.fromStack(keywarden), 'AWS::Lambda::Function', scanner)?.Properties;
    expect(fn?.Environment.Variables.KEYWARDEN_GITHUB_API_URL).toBe('https://github.example.com/api/v3');
  });

  it('refuses a platform URL in clear or with credentials, quoting no password', () => {
    const { stack, stateStore, secrets } = bareKeywarden();
    let built = 0;
    const refusal = (gitlabUrl: string): string => {
      try {
        built += 1;
        new ExposureScanner(stack, `Scanner${built}`, {
          stateStore,
          secrets,
          logGroups: ['/a'],
          revocationStateMachine: STATE_MACHINE,
          gitlabUrl,
        });
      } catch (error) {
        expect(error).toBeInstanceOf(InfraConfigError);
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refusal('http://gitlab.example.com')).toMatch(/gitlabUrl must be an https:\/\/ URL/);
    const withPassword = refusal(`https://root:${'x'.repeat(12)}@gitlab.example.com`);
    expect(withPassword).toMatch(/received 'https:\/\/\*\*\*@gitlab\.example\.com'/);
    expect(withPassword).not.toContain('x'.repeat(12));
  });

  it('publishes alerts to an encrypted topic of its own when given no alarm topic, and may use that one only', () => {
    const { stack, stateStore, secrets } = bareKeywarden();
    const scanner = new ExposureScanner(stack, 'Scanner', {
      stateStore,
      secrets,
      logGroups: ['/a'],
      revocationStateMachine: STATE_MACHINE,
    });
    const template = Template.fromStack(stack);
    const topic = resourceOf(template, 'AWS::SNS::Topic', scanner.alertTopic)?.Properties;
    expect(topic?.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [expect.stringContaining('AlertKey'), 'Arn'] });
    const statements = allowStatementsOfRole(template, logicalIdOf(scanner.scanner.role));
    expect(resourcesAllowedFor(statements, 'sns:Publish')).toEqual([`<${logicalIdOf(scanner.alertTopic)}>`]);
    // The state table's key aside, the topic's key only.
    const [topicKey] =
      (topic?.KmsMasterKeyId as { 'Fn::GetAtt': string[] } | undefined)?.['Fn::GetAtt'] ?? [];
    expect(resourcesAllowedFor(statements, 'kms:GenerateDataKey').sort()).toEqual(
      [`<${logicalIdOf(stateStore.key)}.Arn>`, `<${topicKey}.Arn>`].sort(),
    );
    // No channel: no Slack, and the bot token is not readable.
    const fn = resourceOf(template, 'AWS::Lambda::Function', scanner.scanner.function)?.Properties;
    expect(fn?.Environment.Variables.KEYWARDEN_EXPOSURE_ALERT_CHANNEL).toBeUndefined();
    expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue')).not.toContain(
      `<${logicalIdOf(secrets.slackBotToken)}>`,
    );
  });

  it(`reads the Slack alert channel from context ${EXPOSURE_ALERT_CHANNEL_CONTEXT}, and refuses a channel name`, () => {
    const { stack } = bareKeywarden({
      [EXPOSURE_LOG_GROUPS_CONTEXT]: ['/aws/codebuild/x'],
      [EXPOSURE_ALERT_CHANNEL_CONTEXT]: 'C0ALERTS42',
    });
    const keywarden = new KeywardenStack(stack.node.root as never, 'ChannelFromContext');
    const scanner = keywarden.exposure?.scanner.function;
    if (!scanner) throw new Error('no scanner built');
    const fn = resourceOf(Template.fromStack(keywarden), 'AWS::Lambda::Function', scanner)?.Properties;
    expect(fn?.Environment.Variables.KEYWARDEN_EXPOSURE_ALERT_CHANNEL).toBe('C0ALERTS42');

    const bare = bareKeywarden();
    expect(
      () =>
        new ExposureScanner(bare.stack, 'Named', {
          stateStore: bare.stateStore,
          secrets: bare.secrets,
          logGroups: ['/a'],
          revocationStateMachine: STATE_MACHINE,
          alertChannel: '#security',
        }),
    ).toThrow(/alertChannel must be a Slack channel id such as 'C0123456789'.*received '#security'/);
  });

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
