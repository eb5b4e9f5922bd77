import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rotation, type RotationFunction, type RotationProps } from '../../infra/constructs/rotation.ts';
import { flattenCfnValue } from '../../infra/nag.ts';
import {
  ACCOUNT,
  ARNS,
  allowStatementsOfRole,
  BUNDLED_HANDLER,
  bareKeywarden,
  cdkJsonContext,
  type FlatStatement,
  firesOnceNotifying,
  lambdaErrorsMetric,
  logicalIdOf,
  onEveryResource,
  PARTITION,
  REGION,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  schedulerTrust,
  servicesIn,
  serviceVariables,
  synthesizeKeywarden,
  tableAndIndexArns,
  wildcardActionsIn,
} from './keywarden-fixture.ts';

const USERS = ARNS.users('/ci/');
const SECRETS = ARNS.secrets('ci/');
const KEYS = ARNS.keys;
const VIA_SECRETS_MANAGER = {
  'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]],
};

/** One value of a policy condition, flattened like a resource ARN (`''` when absent). */
function conditionValue(condition: unknown, operator: string, key: string): string {
  return flattenCfnValue(
    (condition as Record<string, Record<string, unknown>> | undefined)?.[operator]?.[key],
  );
}

describe('infra: rotation', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let rotation: Rotation;
  let scheduledStatements: FlatStatement[];
  let secretRotationStatements: FlatStatement[];

  beforeAll(() => {
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
    rotation = synthesized.stack.rotation;
    scheduledStatements = allowStatementsOfRole(template, logicalIdOf(rotation.scheduled.role));
    secretRotationStatements = allowStatementsOfRole(template, logicalIdOf(rotation.secretRotation.role));
  });

  const functionOf = (fn: RotationFunction) => resourceOf(template, 'AWS::Lambda::Function', fn.function);
  const roles = () => [
    { name: 'scheduled', statements: scheduledStatements },
    { name: 'secret rotation', statements: secretRotationStatements },
  ];

  describe('scheduled function', () => {
    it('runs the ESM bundle of functions/handlers/scheduled-rotation.ts on nodejs22.x, arm64, 1024 MB, 15 minutes', () => {
      expect(functionOf(rotation.scheduled)?.Properties).toMatchObject({
        ...BUNDLED_HANDLER,
        MemorySize: 1024,
        Timeout: 900,
      });
    });

    it('never runs twice at once (reserved concurrency 1)', () => {
      expect(functionOf(rotation.scheduled)?.Properties.ReservedConcurrentExecutions).toBe(1);
    });

    it('receives the environment the handler reads, with safe defaults: the account budget its rotations are paced at', () => {
      const { stack } = synthesized;
      expect(functionOf(rotation.scheduled)?.Properties.Environment.Variables).toEqual({
        ...serviceVariables(stack),
        KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
        KEYWARDEN_SECRET_NAME_PREFIX: 'ci/',
        KEYWARDEN_ROTATION_CONCURRENCY: '8',
        // The whole budget (DEFAULT_REVOCATION_RATE_LIMITS): one run, never two at once.
        KEYWARDEN_RATE_IAM: '5',
        KEYWARDEN_CONCURRENCY_IAM: '4',
        KEYWARDEN_RATE_SECRETS_MANAGER: '40',
        KEYWARDEN_CONCURRENCY_SECRETS_MANAGER: '16',
        KEYWARDEN_RATE_VAULT: '100',
        KEYWARDEN_CONCURRENCY_VAULT: '32',
        POWERTOOLS_SERVICE_NAME: 'keywarden-rotation',
        POWERTOOLS_METRICS_NAMESPACE: 'keywarden',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('sends runs that failed after their retries to the rotation dead-letter queue', () => {
      expect(functionOf(rotation.scheduled)?.Properties.DeadLetterConfig).toEqual({
        TargetArn: { 'Fn::GetAtt': [logicalIdOf(rotation.deadLetterQueue), 'Arn'] },
      });
    });
  });

  describe('secret rotation function', () => {
    it('runs the ESM bundle of functions/handlers/secret-rotation.ts on nodejs22.x, arm64, 512 MB, 5 minutes', () => {
      expect(functionOf(rotation.secretRotation)?.Properties).toMatchObject({
        ...BUNDLED_HANDLER,
        MemorySize: 512,
        Timeout: 300,
      });
    });

    it('receives the shared environment under its own service name, without the scheduled concurrency', () => {
      const variables = functionOf(rotation.secretRotation)?.Properties.Environment.Variables;
      expect(variables).toMatchObject({
        KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
        KEYWARDEN_SECRET_NAME_PREFIX: 'ci/',
        POWERTOOLS_SERVICE_NAME: 'keywarden-secret-rotation',
        POWERTOOLS_METRICS_NAMESPACE: 'keywarden',
        NODE_OPTIONS: '--enable-source-maps',
      });
      expect(Object.keys(variables).sort()).toEqual(
        [
          'KEYWARDEN_TABLE',
          'KEYWARDEN_IAM_PATH_PREFIX',
          'KEYWARDEN_SECRET_NAME_PREFIX',
          'KEYWARDEN_VAULT_ADDR',
          'KEYWARDEN_VAULT_TOKEN_SECRET_ARN',
          'KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN',
          'POWERTOOLS_SERVICE_NAME',
          'POWERTOOLS_METRICS_NAMESPACE',
          'NODE_OPTIONS',
        ].sort(),
      );
    });

    it('may be invoked only by Secrets Manager, for secrets of this account under the prefix', () => {
      const functionId = logicalIdOf(rotation.secretRotation.function);
      const permissions = Object.values(template.findResources('AWS::Lambda::Permission')).filter(
        (permission) =>
          JSON.stringify(permission.Properties.FunctionName) ===
          JSON.stringify({ 'Fn::GetAtt': [functionId, 'Arn'] }),
      );
      expect(permissions).toHaveLength(1);
      const properties = permissions[0]?.Properties;
      expect(properties).toMatchObject({
        Action: 'lambda:InvokeFunction',
        Principal: 'secretsmanager.amazonaws.com',
        SourceAccount: { Ref: 'AWS::AccountId' },
      });
      expect(flattenCfnValue(properties.SourceArn)).toBe(SECRETS);
    });
  });

  describe('schedule', () => {
    it('runs at the cdk.json keywarden:rotationSchedule expression, rate(1 hour)', () => {
      expect(cdkJsonContext()['keywarden:rotationSchedule']).toBe('rate(1 hour)');
      const schedule = resourceOf(template, 'AWS::Scheduler::Schedule', rotation.schedule);
      expect(schedule?.Properties).toMatchObject({ ScheduleExpression: 'rate(1 hour)', State: 'ENABLED' });
    });

    it('invokes the live alias, retries a little and dead-letters what it could not deliver', () => {
      const schedule = resourceOf(template, 'AWS::Scheduler::Schedule', rotation.schedule);
      expect(schedule?.Properties.Target).toMatchObject({
        Arn: { Ref: logicalIdOf(rotation.alias) },
        RoleArn: { 'Fn::GetAtt': [logicalIdOf(rotation.schedulerRole), 'Arn'] },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalIdOf(rotation.deadLetterQueue), 'Arn'] } },
        RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 3 },
      });
    });

    it('uses a role, assumable only by Scheduler for this account, that may invoke that alias and write the dead-letter queue, nothing else', () => {
      const statements = allowStatementsOfRole(template, logicalIdOf(rotation.schedulerRole));
      expect(statements.map(({ actions, resources }) => ({ actions, resources }))).toEqual([
        { actions: ['lambda:InvokeFunction'], resources: [`<${logicalIdOf(rotation.alias)}>`] },
        { actions: ['sqs:SendMessage'], resources: [`<${logicalIdOf(rotation.deadLetterQueue)}.Arn>`] },
      ]);
      const role = resourceOf(template, 'AWS::IAM::Role', rotation.schedulerRole);
      expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual(schedulerTrust());
    });
  });

  describe('roles', () => {
    it('have no managed policy and write logs only to their own log group', () => {
      for (const fn of [rotation.scheduled, rotation.secretRotation]) {
        const role = resourceOf(template, 'AWS::IAM::Role', fn.role);
        expect(role?.Properties.ManagedPolicyArns).toBeUndefined();
        const statements = allowStatementsOfRole(template, logicalIdOf(fn.role));
        const logGroup = `<${logicalIdOf(fn.logGroup)}.Arn>`;
        expect(resourcesAllowedFor(statements, 'logs:PutLogEvents')).toEqual([logGroup]);
        expect(resourcesAllowedFor(statements, 'logs:CreateLogStream')).toEqual([logGroup]);
        expect(resourcesAllowedFor(statements, 'logs:CreateLogGroup')).toEqual([]);
        expect(functionOf(fn)?.Properties.LoggingConfig).toEqual({
          LogGroup: { Ref: logicalIdOf(fn.logGroup) },
        });
      }
    });

    it('grant no wildcard action and no "*" resource', () => {
      for (const { statements } of roles()) {
        expect(wildcardActionsIn(statements)).toEqual([]);
        expect(onEveryResource(statements)).toEqual([]);
      }
    });

    it('manage access keys only of users under the IAM path prefix, never "*"', () => {
      for (const { statements } of roles()) {
        for (const action of [
          'iam:CreateAccessKey',
          'iam:UpdateAccessKey',
          'iam:DeleteAccessKey',
          'iam:ListAccessKeys',
          'iam:GetAccessKeyLastUsed',
          'iam:GetUser',
        ]) {
          expect(resourcesAllowedFor(statements, action)).toEqual([USERS]);
        }
      }
      expect(resourcesAllowedFor(scheduledStatements, 'iam:CreateAccessKey')).not.toContain('*');
    });

    it('rotate only secrets under the name prefix; only the scheduled function may create one', () => {
      for (const { statements } of roles()) {
        for (const action of [
          'secretsmanager:DescribeSecret',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
          'secretsmanager:ListSecretVersionIds',
        ]) {
          expect(resourcesAllowedFor(statements, action)).toEqual([SECRETS]);
        }
      }
      expect(resourcesAllowedFor(scheduledStatements, 'secretsmanager:CreateSecret')).toEqual([SECRETS]);
      expect(resourcesAllowedFor(secretRotationStatements, 'secretsmanager:CreateSecret')).toEqual([]);
    });

    it('read secret values under the prefix and of the two service secrets only', () => {
      const { secrets } = synthesized.stack;
      for (const { statements } of roles()) {
        expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue').sort()).toEqual(
          [
            SECRETS,
            `<${logicalIdOf(secrets.vaultToken)}>`,
            `<${logicalIdOf(secrets.fingerprintKey)}>`,
          ].sort(),
        );
      }
    });

    it('use KMS keys only through Secrets Manager and only for secrets under the prefix', () => {
      for (const { statements } of roles()) {
        const keys = statements.find((s) => s.sid === 'UsePrefixedSecretKeys');
        expect(keys?.actions).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
        expect(keys?.resources).toEqual([KEYS]);
        expect(keys?.condition).toEqual({
          StringEquals: { 'kms:ViaService': VIA_SECRETS_MANAGER },
          StringLike: { 'kms:EncryptionContext:SecretARN': expect.anything() },
        });
        expect(conditionValue(keys?.condition, 'StringLike', 'kms:EncryptionContext:SecretARN')).toBe(
          SECRETS,
        );
      }
    });

    it('read and write the state table and its gsi1 index only', () => {
      for (const { statements } of roles()) {
        for (const action of [
          'dynamodb:GetItem',
          'dynamodb:Query',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
        ]) {
          expect(resourcesAllowedFor(statements, action)).toEqual(tableAndIndexArns(synthesized.stack));
        }
      }
    });

    it('need no STS, CloudWatch metrics, S3 or other service permission', () => {
      expect(servicesIn(scheduledStatements)).toEqual([
        'dynamodb',
        'iam',
        'kms',
        'logs',
        'secretsmanager',
        'sqs',
      ]);
      expect(servicesIn(secretRotationStatements)).toEqual([
        'dynamodb',
        'iam',
        'kms',
        'logs',
        'secretsmanager',
      ]);
    });
  });

  describe('alarms', () => {
    const alarm = (construct: Rotation['rotationFailedAlarm']) =>
      resourceOf(template, 'AWS::CloudWatch::Alarm', construct)?.Properties;
    const topic = () => ({ Ref: logicalIdOf(rotation.alarmTopic) });

    it('raise one when a rotation failed within the hour (keywarden/rotation_failed, service keywarden-rotation), notifying the topic', () => {
      expect(alarm(rotation.rotationFailedAlarm)).toMatchObject({
        Namespace: 'keywarden',
        MetricName: 'rotation_failed',
        Dimensions: [{ Name: 'service', Value: 'keywarden-rotation' }],
        Statistic: 'Sum',
        Period: 3600,
        ...firesOnceNotifying(topic()),
      });
    });

    it('raise one when the scheduled function errs within the hour', () => {
      expect(alarm(rotation.scheduledErrorsAlarm)).toMatchObject({
        ...lambdaErrorsMetric(rotation.scheduled.function),
        Period: 3600,
        ...firesOnceNotifying(topic()),
      });
    });

    it('also raise one for secret rotation errors and undelivered scheduled runs', () => {
      expect(alarm(rotation.secretRotationErrorsAlarm)).toMatchObject({
        ...lambdaErrorsMetric(rotation.secretRotation.function),
        AlarmActions: [topic()],
      });
      expect(alarm(rotation.deadLetterAlarm)).toMatchObject({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: expect.anything() }],
        Threshold: 1,
        AlarmActions: [topic()],
      });
    });

    it('notify a topic encrypted with its own rotated key, TLS only, that only this stack’s alarms may publish to', () => {
      const keyId = logicalIdOf(rotation.alarmKey);
      const topicResource = resourceOf(template, 'AWS::SNS::Topic', rotation.alarmTopic);
      expect(topicResource?.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
      expect(template.findResources('AWS::KMS::Key')[keyId]?.Properties.EnableKeyRotation).toBe(true);

      const policy = Object.values(template.findResources('AWS::SNS::TopicPolicy')).find(
        (p) => JSON.stringify(p.Properties.Topics) === JSON.stringify([topic()]),
      );
      const statements = policy?.Properties.PolicyDocument.Statement as Record<string, unknown>[];
      expect(statements).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
      const publish = statements.find((s) => s.Effect === 'Allow');
      expect(publish).toMatchObject({
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: 'sns:Publish',
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      });
      expect(conditionValue(publish?.Condition, 'ArnLike', 'aws:SourceArn')).toBe(
        `arn:${PARTITION}:cloudwatch:${REGION}:${ACCOUNT}:alarm:Keywarden-*`,
      );
      expect(alarm(rotation.rotationFailedAlarm)?.AlarmName).toBe('Keywarden-rotation-failed');
    });

    it('let CloudWatch use the topic key', () => {
      const key = resourceOf(template, 'AWS::KMS::Key', rotation.alarmKey);
      expect(key?.Properties.KeyPolicy.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Allow',
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        }),
      );
    });
  });

  it('outputs the secret rotation function ARN and the alarm topic ARN', () => {
    const outputs = template.toJSON().Outputs;
    expect(outputs.SecretRotationFunctionArn.Value).toEqual({
      'Fn::GetAtt': [logicalIdOf(rotation.secretRotation.function), 'Arn'],
    });
    expect(outputs.RotationAlarmTopicArn.Value).toEqual({ Ref: logicalIdOf(rotation.alarmTopic) });
  });
});

describe('infra: rotation with explicit settings', () => {
  let synthesized: SynthesizedKeywarden;
  let statements: FlatStatement[];

  beforeAll(() => {
    synthesized = synthesizeKeywarden({
      iamPathPrefix: '/ci/',
      secretNamePrefix: 'pipelines/',
      rotationSchedule: 'cron(15 * * * ? *)',
      rotationConcurrency: 4,
    });
    statements = allowStatementsOfRole(
      synthesized.template,
      logicalIdOf(synthesized.stack.rotation.scheduled.role),
    );
  });

  it('scopes keys and secrets to the configured path and prefix, and runs on the given schedule', () => {
    const { rotation } = synthesized.stack;
    expect(resourcesAllowedFor(statements, 'iam:CreateAccessKey')).toEqual([ARNS.users('/ci/')]);
    expect(resourcesAllowedFor(statements, 'secretsmanager:PutSecretValue')).toEqual([
      ARNS.secrets('pipelines/'),
    ]);
    const fn = resourceOf(synthesized.template, 'AWS::Lambda::Function', rotation.scheduled.function);
    expect(fn?.Properties.Environment.Variables).toMatchObject({
      KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
      KEYWARDEN_SECRET_NAME_PREFIX: 'pipelines/',
      KEYWARDEN_ROTATION_CONCURRENCY: '4',
    });
    expect(
      resourceOf(synthesized.template, 'AWS::Scheduler::Schedule', rotation.schedule)?.Properties
        .ScheduleExpression,
    ).toBe('cron(15 * * * ? *)');
  });
});

describe('infra: rotation validation', () => {
  // Each construct throws before creating a child, so none of these bundles any code.
  const build = (props: Partial<RotationProps>, context: Record<string, unknown> = {}) => {
    const { stack, stateStore, secrets } = bareKeywarden(context);
    return () => new Rotation(stack, 'Rotation', { stateStore, secrets, ...props });
  };

  it('refuses an empty or wildcard secret name prefix', () => {
    expect(build({ secretNamePrefix: '' })).toThrow(/Rotation: secretNamePrefix .* received ''/);
    expect(build({ secretNamePrefix: 'ci/*' })).toThrow(/received 'ci\/\*'/);
  });

  it("refuses a secret name prefix that covers keywarden's own secrets", () => {
    expect(build({ secretNamePrefix: 'Bare/' })).toThrow(/overlap .* received 'Bare\/'/);
    expect(build({ secretNamePrefix: 'B' })).toThrow(/received 'B'/);
    expect(build({ secretNamePrefix: 'Bare/ci/' })).toThrow(/received 'Bare\/ci\/'/);
  });

  it('requires an IAM path prefix without wildcards', () => {
    expect(build({ iamPathPrefix: '/*/' })).toThrow(/Rotation: iamPathPrefix .* received '\/\*\/'/);
    expect(build({ iamPathPrefix: '/' })).toThrow(/every IAM user, humans and admins included/);
  });

  it('accepts only recurring schedules, from props or context', () => {
    expect(build({ schedule: 'rate(1 hours)' })).toThrow(/Rotation: schedule .* received "rate\(1 hours\)"/);
    expect(build({}, { 'keywarden:rotationSchedule': 'hourly' })).toThrow(/received "hourly"/);
  });

  it('refuses a rate budget the scheduled function could not read (checked at synth, not at each cold start)', () => {
    const budget = {
      iam: { concurrency: 4, perSecond: 7.25 },
      secretsManager: { concurrency: 300, perSecond: 40 },
      vault: { concurrency: 32, perSecond: 100 },
    };
    expect(build({ rateLimits: budget })).toThrow(
      /Rotation: rateLimits: .*iam\.perSecond.*secrets-manager\.concurrency/,
    );
  });

  it('requires a concurrency from 1 to 50', () => {
    expect(build({ concurrency: 0 })).toThrow(/concurrency .* received 0/);
    expect(build({ concurrency: 51 })).toThrow(/received 51/);
    expect(build({ concurrency: 2.5 })).toThrow(/received 2.5/);
  });

  it('refuses a Vault address that is not https', () => {
    expect(build({ vaultAddr: 'http://vault:8200' })).toThrow(
      /Rotation: vaultAddr .* received 'http:\/\/vault:8200'/,
    );
  });
});
