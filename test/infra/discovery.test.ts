import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { Discovery, type DiscoveryProps } from '../../infra/constructs/discovery.ts';
import {
  ARNS,
  allowStatementsOfRole,
  BUNDLED_HANDLER,
  bareKeywarden,
  cdkJsonContext,
  type FlatStatement,
  logicalIdOf,
  onEveryResource,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  schedulerTrust,
  serviceVariables,
  synthesizeKeywarden,
  tableAndIndexArns,
  wildcardActionsIn,
} from './keywarden-fixture.ts';

describe('infra: discovery', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let functionId: string;
  let statements: FlatStatement[];

  beforeAll(() => {
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
    functionId = logicalIdOf(synthesized.stack.discovery.function);
    statements = allowStatementsOfRole(template, logicalIdOf(synthesized.stack.discovery.role));
  });

  const discoveryFunction = () => template.findResources('AWS::Lambda::Function')[functionId];

  describe('alarms', () => {
    it('alarm when discovery fails and when a run waits in the dead-letter queue, on an encrypted topic', () => {
      const { discovery } = synthesized.stack;
      const topic = { Ref: logicalIdOf(discovery.alarmTopic) };
      expect(resourceOf(template, 'AWS::CloudWatch::Alarm', discovery.errorsAlarm)?.Properties).toMatchObject(
        {
          AlarmName: 'Keywarden-discovery-errors',
          Namespace: 'AWS/Lambda',
          MetricName: 'Errors',
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId } }],
          Threshold: 1,
          AlarmActions: [topic],
          OKActions: [topic],
        },
      );
      expect(
        resourceOf(template, 'AWS::CloudWatch::Alarm', discovery.deadLetterAlarm)?.Properties,
      ).toMatchObject({
        AlarmName: 'Keywarden-discovery-undelivered',
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        AlarmActions: [topic],
      });
      expect(discovery.alarmKey).toBeDefined();
      expect(
        resourceOf(template, 'AWS::SNS::Topic', discovery.alarmTopic as never)?.Properties.KmsMasterKeyId,
      ).toEqual({ 'Fn::GetAtt': [logicalIdOf(discovery.alarmKey as never), 'Arn'] });
      expect(template.toJSON().Outputs.DiscoveryAlarmTopicArn.Value).toEqual(topic);
    });
  });

  describe('function', () => {
    it('runs the ESM bundle of functions/handlers/discovery.ts on nodejs22.x, arm64, 512 MB, 5 minutes', () => {
      expect(discoveryFunction()?.Properties).toMatchObject({
        ...BUNDLED_HANDLER,
        MemorySize: 512,
        Timeout: 300,
      });
    });

    it('never runs twice at once (reserved concurrency 1)', () => {
      expect(discoveryFunction()?.Properties.ReservedConcurrentExecutions).toBe(1);
    });

    it('receives the environment the handler reads, with safe defaults', () => {
      const { stack } = synthesized;
      expect(discoveryFunction()?.Properties.Environment.Variables).toEqual({
        ...serviceVariables(stack),
        KEYWARDEN_REPORT_BUCKET: { Ref: logicalIdOf(stack.reportBucket.bucket) },
        KEYWARDEN_REPORT_PREFIX: 'discovery/',
        KEYWARDEN_IAM_PATH_PREFIX: '/',
        KEYWARDEN_SECRET_NAME_PREFIX: 'ci/',
        KEYWARDEN_STALE_AFTER_DAYS: '90',
        POWERTOOLS_SERVICE_NAME: 'keywarden-discovery',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('logs to its own log group, kept for a year', () => {
      const logGroupId = logicalIdOf(synthesized.stack.discovery.logGroup);
      expect(discoveryFunction()?.Properties.LoggingConfig).toEqual({ LogGroup: { Ref: logGroupId } });
      expect(template.findResources('AWS::Logs::LogGroup')[logGroupId]?.Properties.RetentionInDays).toBe(365);
    });

    it('sends runs that failed after their retries to the encrypted, TLS-only dead-letter queue', () => {
      const queueId = logicalIdOf(synthesized.stack.discovery.deadLetterQueue);
      expect(discoveryFunction()?.Properties.DeadLetterConfig).toEqual({
        TargetArn: { 'Fn::GetAtt': [queueId, 'Arn'] },
      });
      expect(template.findResources('AWS::SQS::Queue')[queueId]?.Properties.SqsManagedSseEnabled).toBe(true);
      const queuePolicy = Object.values(template.findResources('AWS::SQS::QueuePolicy'))[0];
      expect(queuePolicy?.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    });
  });

  describe('schedule', () => {
    it('runs at the cdk.json keywarden:discoverySchedule expression, rate(6 hours)', () => {
      expect(cdkJsonContext()['keywarden:discoverySchedule']).toBe('rate(6 hours)');
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'rate(6 hours)',
        State: 'ENABLED',
      });
    });

    it('invokes the live alias, retries a little and dead-letters what it could not deliver', () => {
      const { discovery } = synthesized.stack;
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        Target: {
          Arn: { Ref: logicalIdOf(discovery.alias) },
          RoleArn: { 'Fn::GetAtt': [logicalIdOf(discovery.schedulerRole), 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalIdOf(discovery.deadLetterQueue), 'Arn'] } },
          RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 3 },
        },
      });
    });

    it('uses a role that may invoke that alias and write the dead-letter queue, nothing else', () => {
      const { discovery } = synthesized.stack;
      const schedulerStatements = allowStatementsOfRole(template, logicalIdOf(discovery.schedulerRole));
      expect(schedulerStatements.map(({ actions, resources }) => ({ actions, resources }))).toEqual([
        { actions: ['lambda:InvokeFunction'], resources: [`<${logicalIdOf(discovery.alias)}>`] },
        { actions: ['sqs:SendMessage'], resources: [`<${logicalIdOf(discovery.deadLetterQueue)}.Arn>`] },
      ]);
    });

    it("can be assumed only by EventBridge Scheduler for this account's default schedule group", () => {
      const role = resourceOf(template, 'AWS::IAM::Role', synthesized.stack.discovery.schedulerRole);
      expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual(
        schedulerTrust(expect.objectContaining({ 'Fn::Join': expect.anything() })),
      );
      expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
    });
  });

  describe('role', () => {
    it('has no managed policy; it writes logs only to its own log group', () => {
      const role = resourceOf(template, 'AWS::IAM::Role', synthesized.stack.discovery.role);
      expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
      const logGroup = `<${logicalIdOf(synthesized.stack.discovery.logGroup)}.Arn>`;
      expect(resourcesAllowedFor(statements, 'logs:PutLogEvents')).toEqual([logGroup]);
      expect(resourcesAllowedFor(statements, 'logs:CreateLogStream')).toEqual([logGroup]);
      expect(resourcesAllowedFor(statements, 'logs:CreateLogGroup')).toEqual([]);
    });

    it('grants no wildcard action', () => {
      expect(wildcardActionsIn(statements)).toEqual([]);
    });

    it('uses "*" only for the List APIs that have no resource-level permissions', () => {
      expect(
        onEveryResource(statements)
          .flatMap((s) => s.actions)
          .sort(),
      ).toEqual(['iam:ListRoles', 'iam:ListUsers', 'secretsmanager:ListSecrets']);
    });

    it('reads user and access-key metadata (GetUser for declared users) of every user, and nothing else of IAM users', () => {
      const users = ARNS.users('/');
      const onUsers = statements.filter((s) => s.resources.includes(users));
      expect(onUsers.map(({ sid, actions, resources }) => ({ sid, actions, resources }))).toEqual([
        {
          sid: 'ReadAccessKeyMetadata',
          actions: ['iam:GetAccessKeyLastUsed', 'iam:GetUser', 'iam:ListAccessKeys'],
          resources: [users],
        },
      ]);
    });

    it('reads role details (for RoleLastUsed) of every role, declared and break-glass ones at any path, and nothing else of roles', () => {
      const roles = ARNS.roles('/');
      expect(resourcesAllowedFor(statements, 'iam:GetRole')).toEqual([roles]);
      expect(statements.filter((s) => s.resources.includes(roles)).flatMap((s) => s.actions)).toEqual([
        'iam:GetRole',
      ]);
    });

    it('describes every secret (metadata only), and reads values only under the prefix and of its two service secrets, never "*"', () => {
      const { secrets } = synthesized.stack;
      const prefixed = ARNS.secrets('ci/');
      expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue').sort()).toEqual(
        [prefixed, `<${logicalIdOf(secrets.vaultToken)}>`, `<${logicalIdOf(secrets.fingerprintKey)}>`].sort(),
      );
      const everySecret = ARNS.secrets('');
      expect(resourcesAllowedFor(statements, 'secretsmanager:DescribeSecret')).toEqual([everySecret]);
      expect(statements.filter((s) => s.resources.includes(everySecret))).toEqual([
        expect.objectContaining({
          sid: 'DescribeDeclaredSecrets',
          actions: ['secretsmanager:DescribeSecret'],
        }),
      ]);
    });

    it('decrypts only through Secrets Manager and only for secrets under the prefix', () => {
      const decryptForSecrets = statements.find((s) => s.sid === 'DecryptPrefixedSecrets');
      expect(decryptForSecrets?.actions).toEqual(['kms:Decrypt']);
      expect(decryptForSecrets?.resources).toEqual([ARNS.keys]);
      expect(decryptForSecrets?.condition).toEqual({
        StringEquals: {
          'kms:ViaService': {
            'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]],
          },
        },
        StringLike: {
          'kms:EncryptionContext:SecretARN': expect.objectContaining({ 'Fn::Join': expect.anything() }),
        },
      });
    });

    it('reads and writes items of the state table and its gsi1 index only, and uses the table key only through DynamoDB', () => {
      for (const action of [
        'dynamodb:GetItem',
        'dynamodb:Query',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
      ]) {
        expect(resourcesAllowedFor(statements, action)).toEqual(tableAndIndexArns(synthesized.stack));
      }
      expect(resourcesAllowedFor(statements, 'dynamodb:DeleteTable')).toEqual([]);
      const tableKey = statements.find((s) =>
        s.resources.includes(`<${logicalIdOf(synthesized.stack.stateStore.key)}.Arn>`),
      );
      expect(tableKey?.condition).toEqual({
        StringEquals: {
          'kms:ViaService': {
            'Fn::Join': ['', ['dynamodb.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]],
          },
        },
      });
    });

    it('writes reports only under discovery/ and cannot read or delete any', () => {
      const bucket = logicalIdOf(synthesized.stack.reportBucket.bucket);
      expect(resourcesAllowedFor(statements, 's3:PutObject')).toEqual([`<${bucket}.Arn>/discovery/*`]);
      const s3Actions = statements.flatMap((s) => s.actions).filter((action) => action.startsWith('s3:'));
      expect(s3Actions).toEqual(['s3:PutObject']);
    });
  });
});

describe('infra: discovery with explicit settings', () => {
  let synthesized: SynthesizedKeywarden;
  let statements: FlatStatement[];

  beforeAll(() => {
    synthesized = synthesizeKeywarden({
      vaultAddr: 'https://vault.example.com:8200',
      iamPathPrefix: '/ci/',
      secretNamePrefix: 'pipelines/',
      discoverySchedule: 'cron(0 */2 * * ? *)',
      staleAfterDays: 30,
    });
    statements = allowStatementsOfRole(synthesized.template, logicalIdOf(synthesized.stack.discovery.role));
  });

  it('passes the settings to the handler', () => {
    const fn = resourceOf(
      synthesized.template,
      'AWS::Lambda::Function',
      synthesized.stack.discovery.function,
    );
    expect(fn?.Properties.Environment.Variables).toMatchObject({
      KEYWARDEN_VAULT_ADDR: 'https://vault.example.com:8200',
      KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
      KEYWARDEN_SECRET_NAME_PREFIX: 'pipelines/',
      KEYWARDEN_STALE_AFTER_DAYS: '30',
    });
  });

  it('narrows secret values to the configured prefix; metadata stays readable account-wide for declared resources', () => {
    expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue')).toContain(
      ARNS.secrets('pipelines/'),
    );
    expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue')).not.toContain(ARNS.secrets(''));
    for (const action of ['iam:GetUser', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed']) {
      expect(resourcesAllowedFor(statements, action)).toEqual([ARNS.users('/')]);
    }
    expect(resourcesAllowedFor(statements, 'iam:GetRole')).toEqual([ARNS.roles('/')]);
    expect(resourcesAllowedFor(statements, 'secretsmanager:DescribeSecret')).toEqual([ARNS.secrets('')]);
  });

  it('runs at the given schedule instead of the context default', () => {
    synthesized.template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 */2 * * ? *)',
    });
  });
});

describe('infra: discovery validation', () => {
  // Validation runs before any child is created, so these never bundle code.
  const build = (overrides: Partial<DiscoveryProps>, context: Record<string, unknown> = {}) => {
    const { stack, ...shared } = bareKeywarden(context);
    const props: DiscoveryProps = { ...shared, ...overrides };
    return () => new Discovery(stack, 'Discovery', props);
  };

  it('accepts only an https Vault address, and never echoes credentials embedded in it', () => {
    expect(build({ vaultAddr: 'http://vault:8200' })).toThrow(/https:\/\/.*received 'http:\/\/vault:8200'/);
    expect(build({ vaultAddr: 'vault.example.com' })).toThrow(/received 'vault.example.com'/);
    const withPassword = build({ vaultAddr: 'https://admin:hunter2@vault.example.com' });
    expect(withPassword).toThrow(/without credentials/);
    expect(withPassword).not.toThrow(/hunter2/);
  });

  it('requires an IAM path prefix that starts and ends with "/" and holds no wildcard', () => {
    expect(build({ iamPathPrefix: 'ci/' })).toThrow(/iamPathPrefix .* received 'ci\/'/);
    expect(build({ iamPathPrefix: '/ci' })).toThrow(/received '\/ci'/);
    expect(build({ iamPathPrefix: '/*/' })).toThrow(/received '\/\*\/'/);
  });

  it('refuses an empty or wildcard secret name prefix, which would expose every secret', () => {
    expect(build({ secretNamePrefix: '' })).toThrow(/secretNamePrefix .* received ''/);
    expect(build({ secretNamePrefix: 'ci/*' })).toThrow(/received 'ci\/\*'/);
  });

  it('accepts only recurring rate() or cron() schedules, from props or context', () => {
    expect(build({ schedule: 'rate(1 hours)' })).toThrow(/received "rate\(1 hours\)"/);
    expect(build({ schedule: 'at(2030-01-01T00:00:00)' })).toThrow(/received "at\(2030-01-01T00:00:00\)"/);
    expect(build({}, { 'keywarden:discoverySchedule': 'every 6 hours' })).toThrow(/received "every 6 hours"/);
  });

  it('requires staleAfterDays to be a whole number of days', () => {
    expect(build({ staleAfterDays: 0 })).toThrow(/staleAfterDays .* received 0/);
    expect(build({ staleAfterDays: 1.5 })).toThrow(/received 1.5/);
  });
});
