import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ARNS,
  type FoundSuppression,
  type SynthesizedKeywarden,
  suppressionsIn,
  synthesizeKeywarden,
} from './keywarden-fixture.ts';

const NAG_FINDING = Match.stringLikeRegexp('AwsSolutions-.*');

/** The report bucket's ARN as the suppressions name it. */
const REPORT_BUCKET = '<ReportBucket6B54E113.Arn>';

/** An `AwsSolutions-IAM5` suppression entry covering exactly these resources. */
const iam5 = (...resources: string[]): string =>
  `AwsSolutions-IAM5 ${JSON.stringify(resources.map((resource) => `Resource::${resource}`))}`;

/**
 * The entries `suppressions` on the roles of the functions at these paths (under `Keywarden/`)
 * stand in the inventory as: each on the role and again on its default policy.
 */
const onRoles = (functions: readonly string[], ...entries: string[]): string[] =>
  functions
    .flatMap((fn) => [`Keywarden/${fn}/Role/Resource`, `Keywarden/${fn}/Role/DefaultPolicy/Resource`])
    .flatMap((path) => entries.map((entry) => `${path} ${entry}`));

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
          ...['ServiceSecrets/FingerprintKey', 'ServiceSecrets/VaultToken'].map(
            (path) => `Keywarden/${path}/Resource AwsSolutions-SMG4`,
          ),
          // Every function is on the pinned nodejs22.x runtime.
          ...[
            'Discovery',
            'Rotation/Scheduled',
            'Rotation/SecretRotation',
            'Revocation/Plan',
            'Revocation/RevokeBatch',
            'Revocation/Report',
            'BreakGlass/Expiry',
            'BreakGlass/Sweeper',
            'RoleDeny/Handler',
            'Api/Handler',
            'Api/Campaigns',
            'Api/SlackWorker',
            'Api/SlackIngress',
            'UseMonitor/Monitor',
          ].map((fn) => `Keywarden/${fn}/Function/Resource AwsSolutions-L1`),
          // Discovery: List APIs ("*"), metadata of every user, role and secret (declared ones sit
          // anywhere), secret values under the name prefix only.
          ...onRoles(
            ['Discovery'],
            iam5('*'),
            iam5(ARNS.users('/')),
            iam5(ARNS.roles('/')),
            iam5(ARNS.secrets('')),
            iam5(ARNS.secrets('ci/')),
            iam5(ARNS.keys),
            iam5(`${REPORT_BUCKET}/discovery/*`),
          ),
          // Both rotation roles: access keys of users under the IAM path, secrets under the name
          // prefix, and KMS keys only via Secrets Manager for those secrets. No "*" resource at all.
          ...onRoles(
            ['Rotation/Scheduled', 'Rotation/SecretRotation'],
            iam5(ARNS.users('/ci/')),
            iam5(ARNS.secrets('ci/')),
            iam5(ARNS.keys),
          ),
          // Plan and report write under their own prefix of the report bucket only.
          ...onRoles(['Revocation/Plan'], iam5(`${REPORT_BUCKET}/campaigns/*`)),
          ...onRoles(['Revocation/Report'], iam5(`${REPORT_BUCKET}/reports/*`)),
          // The revoke-batch worker: what the rotation roles have (role sessions are denied through
          // the role-deny function).
          ...onRoles(
            ['Revocation/RevokeBatch'],
            iam5(ARNS.users('/ci/')),
            iam5(ARNS.secrets('ci/')),
            iam5(ARNS.keys),
          ),
          // The use monitor plans a used key's containment: it lists the key's identity's access
          // keys (metadata) under the IAM path; it contains IAM keys only, so no secrets' versions.
          ...onRoles(['UseMonitor/Monitor'], iam5(ARNS.users('/ci/'))),
          // The one holder of iam:PutRolePolicy: roles under the break-glass and revocation paths.
          ...onRoles(['RoleDeny/Handler'], iam5(ARNS.breakglassRoles, ARNS.roles('/ci/'))),
          // The state machine: qualified invokes of its three functions, the plan's target lists,
          // X-Ray and log delivery (no resource-level permissions), and its own child executions.
          ...onRoles(
            ['Revocation/StateMachine'],
            iam5('*'),
            iam5(`${REPORT_BUCKET}/campaigns/*`),
            iam5(
              '<RevocationPlanFunction737E1F63.Arn>:*',
              '<RevocationRevokeBatchFunction2118C226.Arn>:*',
              '<RevocationReportFunction0E1399CC.Arn>:*',
            ),
          ),
          'Keywarden/Revocation/StateMachine/DistributedMapPolicy/Resource AwsSolutions-IAM5 [{"regex":"/^Resource::arn:.*:states:.*:execution:.*\\\\*$/"}]',
          // Slack issues the signing secret and the bot token; Secrets Manager cannot rotate them.
          'Keywarden/ServiceSecrets/SlackSigningSecret/Resource AwsSolutions-SMG4',
          'Keywarden/ServiceSecrets/SlackBotToken/Resource AwsSolutions-SMG4',
          // Grant expiry and sweeper: deleting schedules of the grant group (denies go through role-deny).
          ...onRoles(['BreakGlass/Expiry', 'BreakGlass/Sweeper'], iam5(ARNS.grantSchedules)),
          // The Slack worker: an approved grant's expiry schedule, in the grant group; `/revoke`
          // plans over what is live, as the campaigns function.
          ...onRoles(
            ['Api/SlackWorker'],
            iam5(ARNS.grantSchedules),
            iam5(ARNS.users('/ci/')),
            iam5(ARNS.secrets('ci/')),
          ),
          // The deferred-jobs queue is a dead-letter queue (an on-failure destination cdk-nag does not see).
          'Keywarden/Api/DeferredJobsDeadLetterQueue/Resource AwsSolutions-SQS3',
          // The API's grants function: assume and read roles under the break-glass path, grant
          // schedules.
          ...onRoles(['Api/Handler'], iam5(ARNS.breakglassRoles), iam5(ARNS.grantSchedules)),
          // Its campaigns function plans over what is live: access keys of users under the IAM
          // path, versions of secrets under the name prefix (metadata).
          ...onRoles(['Api/Campaigns'], iam5(ARNS.users('/ci/')), iam5(ARNS.secrets('ci/'))),
          // Slack cannot sign with SigV4: its two routes are authenticated by the handler's
          // signature check (cdk-nag's COG4 applies to REST methods only, not HTTP API routes).
          'Keywarden/Api/HttpApi/POST--slack--commands/Resource AwsSolutions-APIG4',
          'Keywarden/Api/HttpApi/POST--slack--interactions/Resource AwsSolutions-APIG4',
        ].sort(),
      );
    });
  });
});
