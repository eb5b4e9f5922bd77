import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type FoundSuppression,
  type SynthesizedKeywarden,
  suppressionsIn,
  synthesizeKeywarden,
} from './keywarden-fixture.ts';

const NAG_FINDING = Match.stringLikeRegexp('AwsSolutions-.*');

describe('infra: cdk-nag AwsSolutions', () => {
  let agnostic: SynthesizedKeywarden;
  let pinned: SynthesizedKeywarden;

  beforeAll(() => {
    agnostic = synthesizeKeywarden();
    // Suppressions name wildcard ARNs; those render differently once account and region are known.
    pinned = synthesizeKeywarden({}, { account: '123456789012', region: 'eu-west-1' });
  });

  it('reports no unsuppressed error', () => {
    expect(Annotations.fromStack(agnostic.stack).findError('*', NAG_FINDING)).toEqual([]);
  });

  it('reports no unsuppressed warning', () => {
    expect(Annotations.fromStack(agnostic.stack).findWarning('*', NAG_FINDING)).toEqual([]);
  });

  it('stays clean when the stack is bound to an account and region', () => {
    expect(Annotations.fromStack(pinned.stack).findError('*', NAG_FINDING)).toEqual([]);
    expect(Annotations.fromStack(pinned.stack).findWarning('*', NAG_FINDING)).toEqual([]);
  });

  it('raises no CDK warning or error of any other kind', () => {
    expect(Annotations.fromStack(agnostic.stack).findError('*', Match.anyValue())).toEqual([]);
    expect(Annotations.fromStack(agnostic.stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  describe('suppressions', () => {
    let suppressions: FoundSuppression[];

    beforeAll(() => {
      suppressions = suppressionsIn(agnostic.template);
    });

    it('each carry a reason a reviewer can judge (at least 20 characters)', () => {
      expect(suppressions.length).toBeGreaterThan(0);
      const thin = suppressions.filter((s) => s.reason.trim().length < 20);
      expect(thin).toEqual([]);
    });

    it('never silence the wildcard rule wholesale: every IAM5 suppression names the finding it covers', () => {
      const wholesale = suppressions.filter((s) => s.id === 'AwsSolutions-IAM5' && !s.appliesTo?.length);
      expect(wholesale).toEqual([]);
    });

    it('sit on resources, none on the whole stack', () => {
      expect(suppressions.filter((s) => s.path === '(stack)')).toEqual([]);
    });

    it('are exactly the reviewed set (a new one must be added here on purpose)', () => {
      const inventory = [
        ...new Set(
          suppressions.map((s) => `${s.path} ${s.id}${s.appliesTo ? ` ${JSON.stringify(s.appliesTo)}` : ''}`),
        ),
      ].sort();
      expect(inventory).toEqual(
        [
          'Keywarden/Discovery/Function/Resource AwsSolutions-L1',
          'Keywarden/ServiceSecrets/FingerprintKey/Resource AwsSolutions-SMG4',
          'Keywarden/ServiceSecrets/VaultToken/Resource AwsSolutions-SMG4',
          ...['Keywarden/Discovery/Role/Resource', 'Keywarden/Discovery/Role/DefaultPolicy/Resource'].flatMap(
            (path) => [
              `${path} AwsSolutions-IAM5 ["Resource::*"]`,
              `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*"]`,
              `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/*"]`,
              `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:ci/*"]`,
              `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*"]`,
              `${path} AwsSolutions-IAM5 ["Resource::<ReportBucket6B54E113.Arn>/discovery/*"]`,
            ],
          ),
          'Keywarden/Rotation/Scheduled/Function/Resource AwsSolutions-L1',
          'Keywarden/Rotation/SecretRotation/Function/Resource AwsSolutions-L1',
          // Both rotation roles: access keys of users under the IAM path, secrets under the name
          // prefix, and KMS keys only via Secrets Manager for those secrets. No "*" resource at all.
          ...[
            'Keywarden/Rotation/Scheduled/Role/Resource',
            'Keywarden/Rotation/Scheduled/Role/DefaultPolicy/Resource',
            'Keywarden/Rotation/SecretRotation/Role/Resource',
            'Keywarden/Rotation/SecretRotation/Role/DefaultPolicy/Resource',
          ].flatMap((path) => [
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/ci/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:ci/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*"]`,
          ]),
          'Keywarden/Revocation/Plan/Function/Resource AwsSolutions-L1',
          'Keywarden/Revocation/RevokeBatch/Function/Resource AwsSolutions-L1',
          'Keywarden/Revocation/Report/Function/Resource AwsSolutions-L1',
          // Plan and report write under their own prefix of the report bucket only.
          ...[
            'Keywarden/Revocation/Plan/Role/Resource',
            'Keywarden/Revocation/Plan/Role/DefaultPolicy/Resource',
          ].map((path) => `${path} AwsSolutions-IAM5 ["Resource::<ReportBucket6B54E113.Arn>/campaigns/*"]`),
          ...[
            'Keywarden/Revocation/Report/Role/Resource',
            'Keywarden/Revocation/Report/Role/DefaultPolicy/Resource',
          ].map((path) => `${path} AwsSolutions-IAM5 ["Resource::<ReportBucket6B54E113.Arn>/reports/*"]`),
          // The revoke-batch worker: what the rotation roles have, plus deny policies on roles under the path.
          ...[
            'Keywarden/Revocation/RevokeBatch/Role/Resource',
            'Keywarden/Revocation/RevokeBatch/Role/DefaultPolicy/Resource',
          ].flatMap((path) => [
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/ci/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/ci/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:ci/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*"]`,
          ]),
          // The state machine: qualified invokes of its three functions, the plan's target lists,
          // X-Ray and log delivery (no resource-level permissions), and its own child executions.
          ...[
            'Keywarden/Revocation/StateMachine/Role/Resource',
            'Keywarden/Revocation/StateMachine/Role/DefaultPolicy/Resource',
          ].flatMap((path) => [
            `${path} AwsSolutions-IAM5 ["Resource::*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::<ReportBucket6B54E113.Arn>/campaigns/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::<RevocationPlanFunction737E1F63.Arn>:*","Resource::<RevocationRevokeBatchFunction2118C226.Arn>:*","Resource::<RevocationReportFunction0E1399CC.Arn>:*"]`,
          ]),
          'Keywarden/Revocation/StateMachine/DistributedMapPolicy/Resource AwsSolutions-IAM5 [{"regex":"/^Resource::arn:.*:states:.*:execution:.*\\\\*$/"}]',
          // Slack issues the signing secret; Secrets Manager cannot rotate it.
          'Keywarden/ServiceSecrets/SlackSigningSecret/Resource AwsSolutions-SMG4',
          'Keywarden/BreakGlass/Expiry/Function/Resource AwsSolutions-L1',
          'Keywarden/BreakGlass/Sweeper/Function/Resource AwsSolutions-L1',
          'Keywarden/Api/Handler/Function/Resource AwsSolutions-L1',
          // Grant expiry and sweeper: the deny policy on roles under the break-glass path, and
          // deleting schedules of the grant group.
          ...[
            'Keywarden/BreakGlass/Expiry/Role/Resource',
            'Keywarden/BreakGlass/Expiry/Role/DefaultPolicy/Resource',
            'Keywarden/BreakGlass/Sweeper/Role/Resource',
            'Keywarden/BreakGlass/Sweeper/Role/DefaultPolicy/Resource',
          ].flatMap((path) => [
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/breakglass/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/keywarden-grants/*"]`,
          ]),
          // The API: assume and deny roles under the break-glass path, grant schedules, grant reports.
          ...[
            'Keywarden/Api/Handler/Role/Resource',
            'Keywarden/Api/Handler/Role/DefaultPolicy/Resource',
          ].flatMap((path) => [
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/breakglass/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/keywarden-grants/*"]`,
            `${path} AwsSolutions-IAM5 ["Resource::<ReportBucket6B54E113.Arn>/grants/*"]`,
          ]),
          // Slack cannot sign with SigV4: its two routes are authenticated by the handler's
          // signature check (cdk-nag's COG4 applies to REST methods only, not HTTP API routes).
          'Keywarden/Api/HttpApi/POST--slack--commands/Resource AwsSolutions-APIG4',
          'Keywarden/Api/HttpApi/POST--slack--interactions/Resource AwsSolutions-APIG4',
        ].sort(),
      );
    });
  });
});
