import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { BreakGlass, type BreakGlassProps } from '../../infra/constructs/break-glass.ts';
import type { KeywardenFunction } from '../../infra/lambda-function.ts';
import { flattenCfnValue } from '../../infra/nag.ts';
import {
  ACCOUNT,
  ARNS,
  allowStatementsOfRole,
  awsSolutionsFindingsUnder,
  BUNDLED_HANDLER,
  bareKeywarden,
  expectOnlyScopedActionsOf,
  type FlatStatement,
  firesOnceNotifying,
  lambdaErrorsMetric,
  logicalIdOf,
  PARTITION,
  REGION,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  schedulerTrust,
  serviceVariables,
  synthesizeKeywarden,
  tableAndIndexArns,
} from './keywarden-fixture.ts';

const GRANT_SCHEDULES = ARNS.grantSchedules;

/** A BreakGlass in a bare stack, for property validation (nothing is bundled when it throws first). */
function breakGlassWith(
  props: Partial<BreakGlassProps>,
  context: Record<string, unknown> = {},
): () => BreakGlass {
  const { stack, stateStore, secrets } = bareKeywarden(context);
  return () => new BreakGlass(stack, 'BreakGlass', { stateStore, secrets, ...props });
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

  const functionOf = (fn: KeywardenFunction) => resourceOf(template, 'AWS::Lambda::Function', fn.function);
  const statementsOf = (role: BreakGlass['schedulerRole']): FlatStatement[] =>
    allowStatementsOfRole(template, logicalIdOf(role));
  const enders = () => [
    { name: 'grant expiry', fn: breakGlass.expiry },
    { name: 'sweeper', fn: breakGlass.sweeper },
  ];

  describe('functions', () => {
    it('run functions/handlers/grant-expiry.ts and grant-sweeper.ts on nodejs22.x, arm64', () => {
      expect(functionOf(breakGlass.expiry)?.Properties).toMatchObject({
        ...BUNDLED_HANDLER,
        Timeout: 60,
      });
      expect(functionOf(breakGlass.sweeper)?.Properties).toMatchObject({
        ...BUNDLED_HANDLER,
        Timeout: 240,
        // Sweeps never overlap: two would race to end the same grant.
        ReservedConcurrentExecutions: 1,
      });
    });

    it('receive the environment the handlers read: the table, the secrets, the grant schedule group', () => {
      const { stack } = synthesized;
      for (const { fn } of enders()) {
        expect(functionOf(fn)?.Properties.Environment.Variables).toEqual({
          ...serviceVariables(stack),
          KEYWARDEN_GRANT_SCHEDULE_GROUP: 'keywarden-grants',
          KEYWARDEN_ROLE_DENY_FUNCTION: {
            'Fn::GetAtt': [logicalIdOf(stack.roleDeny.handler.function), 'Arn'],
          },
          NODE_OPTIONS: '--enable-source-maps',
        });
      }
    });
  });

  describe('roles of the grant-expiry and sweeper functions', () => {
    it('hold no IAM policy write and assume nothing: the deny goes through the role-deny function', () => {
      for (const { fn } of enders()) {
        const statements = statementsOf(fn.role);
        for (const action of ['iam:PutRolePolicy', 'iam:DeleteRolePolicy', 'iam:GetRolePolicy']) {
          expect(resourcesAllowedFor(statements, action)).toEqual([]);
        }
        expect(resourcesAllowedFor(statements, 'sts:AssumeRole')).toEqual([]);
        expect(resourcesAllowedFor(statements, 'iam:PassRole')).toEqual([]);
        expect(resourcesAllowedFor(statements, 'lambda:InvokeFunction')).toEqual([
          `<${logicalIdOf(synthesized.stack.roleDeny.handler.function)}.Arn>`,
        ]);
      }
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
      for (const { fn } of enders()) {
        for (const action of ['dynamodb:Query', 'dynamodb:UpdateItem']) {
          expect(resourcesAllowedFor(statementsOf(fn.role), action)).toEqual(
            tableAndIndexArns(synthesized.stack),
          );
        }
      }
    });

    it('need nothing else: no wildcard action, no "*" resource, no other service', () => {
      for (const { fn } of enders()) {
        expectOnlyScopedActionsOf(statementsOf(fn.role), [
          'dynamodb',
          'kms',
          'lambda',
          'logs',
          'scheduler',
          'secretsmanager',
        ]);
      }
    });
  });

  describe('grant schedules', () => {
    it('live in their own group, keywarden-grants', () => {
      const group = resourceOf(template, 'AWS::Scheduler::ScheduleGroup', breakGlass.scheduleGroup);
      expect(group?.Properties.Name).toBe('keywarden-grants');
    });

    it('run as a role that only Scheduler, for schedules of that group in this account, may assume', () => {
      const role = resourceOf(template, 'AWS::IAM::Role', breakGlass.schedulerRole);
      const trust = role?.Properties.AssumeRolePolicyDocument.Statement as Record<string, unknown>[];
      expect(trust).toEqual(schedulerTrust());
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
      resourceOf(template, 'AWS::Scheduler::Schedule', breakGlass.sweeperSchedule)?.Properties;

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
      const role = resourceOf(template, 'AWS::IAM::Role', breakGlass.sweeperSchedulerRole);
      expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual(schedulerTrust());
    });
  });

  describe('alarms', () => {
    const alarm = (construct: BreakGlass['expiryErrorsAlarm']) =>
      resourceOf(template, 'AWS::CloudWatch::Alarm', construct)?.Properties;

    it('raise one when the grant-expiry or the sweeper function errs within the hour, notifying the topic', () => {
      const topic = { Ref: logicalIdOf(breakGlass.alarmTopic) };
      for (const [construct, fn, name] of [
        [breakGlass.expiryErrorsAlarm, breakGlass.expiry, 'Keywarden-grant-expiry-errors'],
        [breakGlass.sweeperErrorsAlarm, breakGlass.sweeper, 'Keywarden-grant-sweeper-errors'],
      ] as const) {
        expect(alarm(construct)).toMatchObject({
          AlarmName: name,
          ...lambdaErrorsMetric(fn.function),
          Period: 3600,
          ...firesOnceNotifying(topic),
        });
      }
    });

    it('notify a topic encrypted with its own rotated key, TLS only', () => {
      const keyId = logicalIdOf(breakGlass.alarmKey);
      const topic = resourceOf(template, 'AWS::SNS::Topic', breakGlass.alarmTopic);
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
    expect(awsSolutionsFindingsUnder(synthesized.stack, ['/BreakGlass/'])).toEqual([]);
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
    const roles = ARNS.roles('/oncall/elevated/');
    expect(
      resourcesAllowedFor(
        allowStatementsOfRole(template, logicalIdOf(stack.roleDeny.handler.role)),
        'iam:PutRolePolicy',
      ),
    ).toEqual([ARNS.roles('/ci/'), roles].sort());
    const api = allowStatementsOfRole(template, logicalIdOf(stack.api.grants.role));
    expect(resourcesAllowedFor(api, 'sts:AssumeRole')).toEqual([roles]);
    expect(
      resourceOf(template, 'AWS::Scheduler::Schedule', stack.breakGlass.sweeperSchedule)?.Properties
        .ScheduleExpression,
    ).toBe('rate(2 minutes)');
    expect(template.toJSON().Outputs.ApiFunctionRoleArn.Description).toContain('/oncall/elevated/');
  });
});
