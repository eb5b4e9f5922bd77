import type { Template } from 'aws-cdk-lib/assertions';
import { Match } from 'aws-cdk-lib/assertions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { beforeAll, describe, expect, it } from 'vitest';
import { Revocation, type RevocationProps } from '../../infra/constructs/revocation.ts';
import {
  ARNS,
  allowStatementsOfRole,
  awsSolutionsFindingsUnder,
  bareKeywarden,
  type FlatStatement,
  firesOnceNotifying,
  lambdaErrorsMetric,
  logicalIdOf,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  synthesizeKeywarden,
} from './keywarden-fixture.ts';

const USERS = ARNS.users('/ci/');
const ROLES = ARNS.roles('/ci/');
const SECRETS = ARNS.secrets('ci/');

/** A Revocation in a bare stack, for property validation (nothing is bundled when it throws first). */
function revocationWith(props: Partial<RevocationProps>): () => Revocation {
  const { stack, ...shared } = bareKeywarden();
  return () => new Revocation(stack, 'Revocation', { ...shared, ...props });
}

describe('infra: revocation', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let revocation: Revocation;
  let definition: Record<string, unknown>;
  const statementsOf = (role: Revocation['plan']['role']): FlatStatement[] =>
    allowStatementsOfRole(template, logicalIdOf(role));

  beforeAll(() => {
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
    revocation = synthesized.stack.revocation;
    const machine = resourceOf(template, 'AWS::StepFunctions::StateMachine', revocation.stateMachine);
    const body = machine?.Properties.DefinitionString as { 'Fn::Join': [string, unknown[]] };
    // Only the Lambda ARNs and the bucket are tokens; the rest of the definition is literal JSON.
    definition = JSON.parse(
      body['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : 'TOKEN')).join(''),
    ) as Record<string, unknown>;
  });

  describe('state machine', () => {
    it('runs plan → a Distributed Map of revoke batches → report', () => {
      expect(definition.StartAt).toBe('WriteTargets');
      const states = definition.States as Record<string, Record<string, unknown>>;
      expect(states.WriteTargets?.Next).toBe('RevokeTargets');
      expect(states.RevokeTargets?.Next).toBe('WriteReport');
      expect(states.WriteReport?.End).toBe(true);
    });

    it('reads the plan’s target list from S3, 25 targets a batch, 4 batches at once (the IAM budget)', () => {
      const map = (definition.States as Record<string, Record<string, unknown>>).RevokeTargets;
      expect(map).toMatchObject({
        Type: 'Map',
        MaxConcurrency: 4,
        ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED' } },
        ItemReader: {
          Resource: 'arn:TOKEN:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { 'Bucket.$': '$.plan.bucket', 'Key.$': '$.plan.key' },
        },
        ItemBatcher: { MaxItemsPerBatch: 25, BatchInput: { 'campaignId.$': '$.campaignId' } },
      });
    });

    it('retries a batch whose worker stopped before its targets were settled', () => {
      const map = (definition.States as Record<string, Record<string, unknown>>).RevokeTargets as {
        ItemProcessor: { States: Record<string, { Retry?: { ErrorEquals: string[] }[] }> };
      };
      const retries = Object.values(map.ItemProcessor.States).flatMap((state) => state.Retry ?? []);
      expect(retries.some((retry) => retry.ErrorEquals.includes('BatchUnfinishedError'))).toBe(true);
    });

    it('is traced with X-Ray and logs every event to a KMS-encrypted log group', () => {
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: Match.objectLike({ Level: 'ALL' }),
      });
      const group = resourceOf(template, 'AWS::Logs::LogGroup', revocation.logGroup);
      expect(group?.Properties.KmsKeyId).toEqual({
        'Fn::GetAtt': [logicalIdOf(revocation.logKey), 'Arn'],
      });
    });

    it('may read target lists under campaigns/ only', () => {
      const statements = statementsOf(revocation.stateMachine.role as Revocation['plan']['role']);
      expect(resourcesAllowedFor(statements, 's3:GetObject')).toEqual([
        `<${logicalIdOf(synthesized.stack.reportBucket.bucket)}.Arn>/campaigns/*`,
      ]);
    });
  });

  describe('functions', () => {
    it('run one entry file each (functions/handlers/revocation-{plan,batch,report}.ts), so each bundle holds its step only', () => {
      const handlerOf = (fn: Revocation['plan']) =>
        resourceOf(template, 'AWS::Lambda::Function', fn.function)?.Properties.Handler;
      for (const fn of [revocation.plan, revocation.revokeBatch, revocation.report]) {
        expect(handlerOf(fn)).toBe('index.handler');
      }
      // Which file each builds from is the bundling spec's (test/infra/bundling.test.ts): three assets.
    });

    it('give each worker a quarter of the account budget, so four at once stay inside it', () => {
      const env = resourceOf(template, 'AWS::Lambda::Function', revocation.revokeBatch.function)?.Properties
        .Environment.Variables;
      expect(env).toMatchObject({
        KEYWARDEN_CONCURRENCY_IAM: '1',
        KEYWARDEN_RATE_IAM: '1.2', // 5 / 4, to a tenth: 4.8 a second in all
        KEYWARDEN_CONCURRENCY_SECRETS_MANAGER: '4',
        KEYWARDEN_RATE_SECRETS_MANAGER: '10',
        KEYWARDEN_CONCURRENCY_VAULT: '8',
        KEYWARDEN_RATE_VAULT: '25',
      });
    });
  });

  describe('roles', () => {
    it('let the plan step write under campaigns/ and nothing else in the bucket', () => {
      const statements = statementsOf(revocation.plan.role);
      expect(resourcesAllowedFor(statements, 's3:PutObject')).toEqual([
        `<${logicalIdOf(synthesized.stack.reportBucket.bucket)}.Arn>/campaigns/*`,
      ]);
      expect(statements.flatMap((s) => s.actions).filter((a) => a.startsWith('iam:'))).toEqual([]);
    });

    it('let the report step write under reports/ only', () => {
      expect(resourcesAllowedFor(statementsOf(revocation.report.role), 's3:PutObject')).toEqual([
        `<${logicalIdOf(synthesized.stack.reportBucket.bucket)}.Arn>/reports/*`,
      ]);
    });

    it('scope the worker to users and roles under the IAM path and secrets under the prefix', () => {
      const statements = statementsOf(revocation.revokeBatch.role);
      expect(resourcesAllowedFor(statements, 'iam:DeleteAccessKey')).toEqual([USERS]);
      // Role sessions are ended through the role-deny function: the worker holds no IAM policy write.
      expect(resourcesAllowedFor(statements, 'iam:PutRolePolicy')).toEqual([]);
      expect(resourcesAllowedFor(statements, 'iam:GetRolePolicy')).toEqual([]);
      expect(resourcesAllowedFor(statements, 'lambda:InvokeFunction')).toEqual([
        `<${logicalIdOf(synthesized.stack.roleDeny.handler.function)}.Arn>`,
      ]);
      const roleDeny = statementsOf(synthesized.stack.roleDeny.handler.role);
      expect(resourcesAllowedFor(roleDeny, 'iam:PutRolePolicy')).toContain(ROLES);
      expect(resourcesAllowedFor(statements, 'secretsmanager:UpdateSecretVersionStage')).toEqual([SECRETS]);
      expect(resourcesAllowedFor(statements, 'secretsmanager:CreateSecret')).toEqual([]);
      expect(resourcesAllowedFor(statements, 's3:PutObject')).toEqual([]);
      expect(statements.flatMap((s) => s.resources)).not.toContain('*');
    });
  });

  describe('alarms', () => {
    const alarm = (construct: Revocation['executionsFailedAlarm']) =>
      resourceOf(template, 'AWS::CloudWatch::Alarm', construct)?.Properties;
    const topic = () => ({ Ref: logicalIdOf(revocation.alarmTopic) });
    const onTheStateMachine = () => [
      { Name: 'StateMachineArn', Value: { Ref: logicalIdOf(revocation.stateMachine) } },
    ];

    it.each([
      ['executionsFailedAlarm', 'ExecutionsFailed'],
      ['executionsTimedOutAlarm', 'ExecutionsTimedOut'],
      ['executionsAbortedAlarm', 'ExecutionsAborted'],
    ] as const)(
      'raise %s on the state machine’s %s within 5 minutes, notifying the topic',
      (name, metric) => {
        expect(alarm(revocation[name])).toMatchObject({
          Namespace: 'AWS/States',
          MetricName: metric,
          Dimensions: onTheStateMachine(),
          Statistic: 'Sum',
          Period: 300,
          ...firesOnceNotifying(topic()),
        });
        expect(alarm(revocation[name])?.AlarmDescription).toContain('keywarden revoke resume');
      },
    );

    it('raise one when the revoke-batch worker errs', () => {
      expect(alarm(revocation.workerErrorsAlarm)).toMatchObject({
        ...lambdaErrorsMetric(revocation.revokeBatch.function),
        Threshold: 1,
        AlarmActions: [topic()],
      });
    });

    it('notify a topic encrypted with its own KMS key, open to this stack’s revocation alarms only', () => {
      const topics = template.findResources('AWS::SNS::Topic');
      expect(topics[logicalIdOf(revocation.alarmTopic)]?.Properties).toMatchObject({
        KmsMasterKeyId: {
          'Fn::GetAtt': [logicalIdOf(revocation.alarmKey as NonNullable<Revocation['alarmKey']>), 'Arn'],
        },
      });
      const policies = Object.values(template.findResources('AWS::SNS::TopicPolicy')).filter((policy) =>
        JSON.stringify(policy.Properties.Topics).includes(logicalIdOf(revocation.alarmTopic)),
      );
      const statements = policies.flatMap(
        (policy) => policy.Properties.PolicyDocument.Statement as { Sid?: string; Condition?: unknown }[],
      );
      expect(JSON.stringify(statements.find((st) => st.Sid === 'AllowThisStacksAlarmsToPublish'))).toContain(
        '-revocation-*',
      );
    });

    it('notify a topic given instead, making none of its own', () => {
      const { stack, ...shared } = bareKeywarden();
      const given = new sns.Topic(stack, 'OnCall');
      const made = new Revocation(stack, 'Revocation', { ...shared, alarmTopic: given });
      expect(made.alarmTopic).toBe(given);
      expect(made.alarmKey).toBeUndefined();
      expect(made.node.tryFindChild('AlarmTopic')).toBeUndefined();
    });
  });

  it('Compliance: no unsuppressed AwsSolutions finding on the revocation resources', () => {
    expect(awsSolutionsFindingsUnder(synthesized.stack, ['/Revocation/'])).toEqual([]);
  });

  describe('validation', () => {
    it("refuses the root IAM path '/'", () => {
      expect(revocationWith({ iamPathPrefix: '/' })).toThrow(/iamPathPrefix '\/' would let keywarden revoke/);
    });

    it('refuses more workers than the smallest budget can share', () => {
      expect(revocationWith({ maxConcurrency: 6 })).toThrow(
        /maxConcurrency must be a whole number from 1 to 4.*received 6/,
      );
    });
  });
});
