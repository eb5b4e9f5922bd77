import { App, Stack } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { BreakGlass, type BreakGlassProps } from '../../infra/constructs/break-glass.ts';
import { ServiceSecrets } from '../../infra/constructs/service-secrets.ts';
import { StateStore } from '../../infra/constructs/state-store.ts';
import type { KeywardenFunction } from '../../infra/lambda-function.ts';
import { flattenCfnValue } from '../../infra/nag.ts';
import {
  allowStatementsOfRole,
  cdkJsonContext,
  type FlatStatement,
  logicalIdOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  synthesizeKeywarden,
} from './keywarden-fixture.ts';

const PARTITION = '<AWS::Partition>';
const REGION = '<AWS::Region>';
const ACCOUNT = '<AWS::AccountId>';
const BREAKGLASS_ROLES = `arn:${PARTITION}:iam::${ACCOUNT}:role/breakglass/*`;
const GRANT_SCHEDULES = `arn:${PARTITION}:scheduler:${REGION}:${ACCOUNT}:schedule/keywarden-grants/*`;

/** A BreakGlass in a bare stack, for property validation (nothing is bundled when it throws first). */
function breakGlassWith(
  props: Partial<BreakGlassProps>,
  context: Record<string, unknown> = {},
): () => BreakGlass {
  const stack = new Stack(new App({ context: { ...cdkJsonContext(), ...context } }), 'Bare');
  const base = {
    stateStore: new StateStore(stack, 'StateStore'),
    secrets: new ServiceSecrets(stack, 'Secrets'),
  };
  return () => new BreakGlass(stack, 'BreakGlass', { ...base, ...props });
}

describe('infra: break-glass', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let breakGlass: BreakGlass;

  beforeAll(() => {
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
    breakGlass = synthesized.stack.breakGlass;
  });

  const functionOf = (fn: KeywardenFunction) =>
    template.findResources('AWS::Lambda::Function')[logicalIdOf(fn.function)];
  const statementsOf = (role: BreakGlass['schedulerRole']): FlatStatement[] =>
    allowStatementsOfRole(template, logicalIdOf(role));
  const enders = () => [
    { name: 'grant expiry', fn: breakGlass.expiry },
    { name: 'sweeper', fn: breakGlass.sweeper },
  ];

  describe('functions', () => {
    it('run functions/handlers/grant-expiry.ts and grant-sweeper.ts on nodejs22.x, arm64', () => {
      expect(functionOf(breakGlass.expiry)?.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        Timeout: 60,
      });
      expect(functionOf(breakGlass.sweeper)?.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        Timeout: 240,
        // Sweeps never overlap: two would race to end the same grant.
        ReservedConcurrentExecutions: 1,
      });
    });

    it('receive the environment the handlers read: the table, the secrets, the grant schedule group', () => {
      const { stack } = synthesized;
      for (const { fn } of enders()) {
        expect(functionOf(fn)?.Properties.Environment.Variables).toEqual({
          KEYWARDEN_TABLE: { Ref: logicalIdOf(stack.stateStore.table) },
          KEYWARDEN_VAULT_ADDR: '',
          KEYWARDEN_VAULT_TOKEN_SECRET_ARN: { Ref: logicalIdOf(stack.secrets.vaultToken) },
          KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: { Ref: logicalIdOf(stack.secrets.fingerprintKey) },
          KEYWARDEN_GRANT_SCHEDULE_GROUP: 'keywarden-grants',
          NODE_OPTIONS: '--enable-source-maps',
        });
      }
    });
  });

  describe('roles of the grant-expiry and sweeper functions', () => {
    it('put the deny-this-grant policy only on roles under /breakglass/, and never assume them', () => {
      for (const { fn } of enders()) {
        const statements = statementsOf(fn.role);
        expect(resourcesAllowedFor(statements, 'iam:PutRolePolicy')).toEqual([BREAKGLASS_ROLES]);
        expect(resourcesAllowedFor(statements, 'sts:AssumeRole')).toEqual([]);
        expect(resourcesAllowedFor(statements, 'iam:PassRole')).toEqual([]);
      }
    });

    it('let only the sweeper remove a deny, once the grant is over, on those roles', () => {
      const [expiry, sweeper] = enders();
      expect(
        resourcesAllowedFor(
          statementsOf((sweeper as { fn: KeywardenFunction }).fn.role),
          'iam:DeleteRolePolicy',
        ),
      ).toEqual([BREAKGLASS_ROLES]);
      expect(
        resourcesAllowedFor(
          statementsOf((expiry as { fn: KeywardenFunction }).fn.role),
          'iam:DeleteRolePolicy',
        ),
      ).toEqual([]);
    });

    it('delete schedules of the grant group only, and create none', () => {
      for (const { fn } of enders()) {
        const statements = statementsOf(fn.role);
        expect(resourcesAllowedFor(statements, 'scheduler:DeleteSchedule')).toEqual([GRANT_SCHEDULES]);
        expect(resourcesAllowedFor(statements, 'scheduler:CreateSchedule')).toEqual([]);
      }
    });

    it('read the Vault token and the fingerprint key, not the Slack signing secret', () => {
      const { secrets } = synthesized.stack;
      for (const { fn } of enders()) {
        expect(resourcesAllowedFor(statementsOf(fn.role), 'secretsmanager:GetSecretValue').sort()).toEqual(
          [`<${logicalIdOf(secrets.vaultToken)}>`, `<${logicalIdOf(secrets.fingerprintKey)}>`].sort(),
        );
      }
    });

    it('read and write the state table and its gsi1 index only', () => {
      const table = `<${logicalIdOf(synthesized.stack.stateStore.table)}.Arn>`;
      for (const { fn } of enders()) {
        for (const action of ['dynamodb:Query', 'dynamodb:UpdateItem']) {
          expect(resourcesAllowedFor(statementsOf(fn.role), action)).toEqual([table, `${table}/index/gsi1`]);
        }
      }
    });

    it('need nothing else: no wildcard action, no "*" resource, no other service', () => {
      for (const { fn } of enders()) {
        const statements = statementsOf(fn.role);
        expect(statements.flatMap((s) => s.actions).filter((a) => a.includes('*'))).toEqual([]);
        expect(statements.filter((s) => s.resources.includes('*'))).toEqual([]);
        expect([...new Set(statements.flatMap((s) => s.actions).map((a) => a.split(':')[0]))].sort()).toEqual(
          ['dynamodb', 'iam', 'kms', 'logs', 'scheduler', 'secretsmanager'],
        );
      }
    });
  });

  describe('grant schedules', () => {
    it('live in their own group, keywarden-grants', () => {
      const group = template.findResources('AWS::Scheduler::ScheduleGroup')[
        logicalIdOf(breakGlass.scheduleGroup)
      ];
      expect(group?.Properties.Name).toBe('keywarden-grants');
    });

    it('run as a role that only Scheduler, for schedules of that group in this account, may assume', () => {
      const role = template.findResources('AWS::IAM::Role')[logicalIdOf(breakGlass.schedulerRole)];
      const trust = role?.Properties.AssumeRolePolicyDocument.Statement as Record<string, unknown>[];
      expect(trust).toEqual([
        expect.objectContaining({
          Effect: 'Allow',
          Action: 'sts:AssumeRole',
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: {
            StringEquals: {
              'aws:SourceAccount': { Ref: 'AWS::AccountId' },
              'aws:SourceArn': expect.anything(),
            },
          },
        }),
      ]);
      const condition = trust[0]?.Condition as { StringEquals: Record<string, unknown> };
      expect(flattenCfnValue(condition.StringEquals['aws:SourceArn'])).toBe(
        `arn:${PARTITION}:scheduler:${REGION}:${ACCOUNT}:schedule-group/keywarden-grants`,
      );
    });

    it('may invoke the grant-expiry function (unqualified) and nothing else', () => {
      const statements = statementsOf(breakGlass.schedulerRole);
      expect(
        statements.map(({ actions, resources, condition }) => ({ actions, resources, condition })),
      ).toEqual([
        {
          actions: ['lambda:InvokeFunction'],
          resources: [`<${logicalIdOf(breakGlass.expiry.function)}.Arn>`],
          condition: undefined,
        },
      ]);
    });
  });

  describe('sweeper schedule', () => {
    const schedule = () =>
      template.findResources('AWS::Scheduler::Schedule')[logicalIdOf(breakGlass.sweeperSchedule)]?.Properties;

    it('runs every 5 minutes, in the default group (out of reach of whatever manages grant schedules)', () => {
      expect(schedule()).toMatchObject({ ScheduleExpression: 'rate(5 minutes)', State: 'ENABLED' });
      expect(schedule()?.GroupName).toBeUndefined();
    });

    it('invokes the live alias of the sweeper, dropping deliveries older than one interval', () => {
      expect(schedule()?.Target).toMatchObject({
        Arn: { Ref: logicalIdOf(breakGlass.sweeperAlias) },
        RoleArn: { 'Fn::GetAtt': [logicalIdOf(breakGlass.sweeperSchedulerRole), 'Arn'] },
        RetryPolicy: { MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 2 },
      });
    });

    it('runs as a role that may invoke that alias only', () => {
      expect(
        statementsOf(breakGlass.sweeperSchedulerRole).map(({ actions, resources }) => ({
          actions,
          resources,
        })),
      ).toEqual([
        { actions: ['lambda:InvokeFunction'], resources: [`<${logicalIdOf(breakGlass.sweeperAlias)}>`] },
      ]);
      const role = template.findResources('AWS::IAM::Role')[logicalIdOf(breakGlass.sweeperSchedulerRole)];
      expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        expect.objectContaining({
          Principal: { Service: 'scheduler.amazonaws.com' },
          Condition: {
            StringEquals: {
              'aws:SourceAccount': { Ref: 'AWS::AccountId' },
              'aws:SourceArn': expect.anything(),
            },
          },
        }),
      ]);
    });
  });

  describe('alarms', () => {
    const alarm = (construct: BreakGlass['expiryErrorsAlarm']) =>
      template.findResources('AWS::CloudWatch::Alarm')[logicalIdOf(construct)]?.Properties;

    it('raise one when the grant-expiry or the sweeper function errs within the hour, notifying the topic', () => {
      const topic = { Ref: logicalIdOf(breakGlass.alarmTopic) };
      for (const [construct, fn, name] of [
        [breakGlass.expiryErrorsAlarm, breakGlass.expiry, 'Keywarden-grant-expiry-errors'],
        [breakGlass.sweeperErrorsAlarm, breakGlass.sweeper, 'Keywarden-grant-sweeper-errors'],
      ] as const) {
        expect(alarm(construct)).toMatchObject({
          AlarmName: name,
          Namespace: 'AWS/Lambda',
          MetricName: 'Errors',
          Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalIdOf(fn.function) } }],
          Statistic: 'Sum',
          Period: 3600,
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
          AlarmActions: [topic],
          OKActions: [topic],
        });
      }
    });

    it('notify a topic encrypted with its own rotated key, TLS only', () => {
      const keyId = logicalIdOf(breakGlass.alarmKey);
      const topic = template.findResources('AWS::SNS::Topic')[logicalIdOf(breakGlass.alarmTopic)];
      expect(topic?.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
      expect(template.findResources('AWS::KMS::Key')[keyId]?.Properties.EnableKeyRotation).toBe(true);
      const policy = Object.values(template.findResources('AWS::SNS::TopicPolicy')).find(
        (p) =>
          JSON.stringify(p.Properties.Topics) ===
          JSON.stringify([{ Ref: logicalIdOf(breakGlass.alarmTopic) }]),
      );
      expect(policy?.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    });
  });

  it('Compliance: no unsuppressed AwsSolutions finding on the break-glass resources', () => {
    const findings = [
      ...Annotations.fromStack(synthesized.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...Annotations.fromStack(synthesized.stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ].filter((finding) => finding.id.includes('/BreakGlass/'));
    expect(findings).toEqual([]);
  });

  describe('validation', () => {
    it("refuses the root IAM path '/', which would let keywarden assume every role", () => {
      expect(breakGlassWith({ breakglassRolePath: '/' })).toThrow(
        /BreakGlass: breakglassRolePath '\/' would let keywarden assume every IAM role/,
      );
      expect(breakGlassWith({}, { 'keywarden:breakglassRolePath': '/' })).toThrow(/assume every IAM role/);
    });

    it('refuses a path that is not an IAM path or carries a wildcard', () => {
      expect(breakGlassWith({ breakglassRolePath: '/break*/' })).toThrow(
        /breakglassRolePath must be an IAM path .* received '\/break\*\/'/,
      );
      expect(breakGlassWith({ breakglassRolePath: 'breakglass' })).toThrow(/received 'breakglass'/);
    });

    it('accepts only a recurring sweeper schedule, from props or context', () => {
      expect(breakGlassWith({ sweeperSchedule: 'rate(5 minute)' })).toThrow(
        /BreakGlass: schedule must be a recurring .* received "rate\(5 minute\)"/,
      );
      expect(breakGlassWith({ sweeperSchedule: 'at(2030-01-01T00:00:00)' })).toThrow(/received "at\(/);
      expect(breakGlassWith({}, { 'keywarden:sweeperSchedule': 'often' })).toThrow(/received "often"/);
    });

    it("refuses the 'default' schedule group, where the recurring schedules live", () => {
      expect(breakGlassWith({ scheduleGroupName: 'default' })).toThrow(
        /scheduleGroupName 'default' would let/,
      );
      expect(breakGlassWith({ scheduleGroupName: 'grants/*' })).toThrow(/received 'grants\/\*'/);
    });

    it('refuses a Vault address that is not https', () => {
      expect(breakGlassWith({ vaultAddr: 'http://vault:8200' })).toThrow(
        /BreakGlass: vaultAddr .* received 'http:\/\/vault:8200'/,
      );
    });
  });
});

describe('infra: break-glass with explicit settings', () => {
  let synthesized: SynthesizedKeywarden;

  beforeAll(() => {
    synthesized = synthesizeKeywarden({
      breakglassRolePath: '/oncall/elevated/',
      sweeperSchedule: 'rate(2 minutes)',
    });
  });

  it('scopes every role of the capability to the given path and sweeps on the given schedule', () => {
    const { template, stack } = synthesized;
    const roles = `arn:${PARTITION}:iam::${ACCOUNT}:role/oncall/elevated/*`;
    for (const role of [stack.breakGlass.expiry.role, stack.breakGlass.sweeper.role]) {
      expect(
        resourcesAllowedFor(allowStatementsOfRole(template, logicalIdOf(role)), 'iam:PutRolePolicy'),
      ).toEqual([roles]);
    }
    const api = allowStatementsOfRole(template, logicalIdOf(stack.api.handler.role));
    expect(resourcesAllowedFor(api, 'sts:AssumeRole')).toEqual([roles]);
    expect(
      template.findResources('AWS::Scheduler::Schedule')[logicalIdOf(stack.breakGlass.sweeperSchedule)]
        ?.Properties.ScheduleExpression,
    ).toBe('rate(2 minutes)');
    expect(template.toJSON().Outputs.ApiFunctionRoleArn.Description).toContain('/oncall/elevated/');
  });
});
