import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Api } from './constructs/api.ts';
import { BreakGlass } from './constructs/break-glass.ts';
import { CI_ISSUERS_CONTEXT, CiCredentials, ciEnabled, ciRolePathOf } from './constructs/ci-credentials.ts';
import { Discovery } from './constructs/discovery.ts';
import {
  EXPOSURE_ALERT_CHANNEL_CONTEXT,
  EXPOSURE_GITHUB_API_CONTEXT,
  EXPOSURE_GITLAB_URL_CONTEXT,
  EXPOSURE_LOG_GROUPS_CONTEXT,
  ExposureScanner,
} from './constructs/exposure-scanner.ts';
import { ReportBucket } from './constructs/report-bucket.ts';
import { Revocation } from './constructs/revocation.ts';
import { RoleDeny } from './constructs/role-deny.ts';
import { Rotation } from './constructs/rotation.ts';
import { ServiceSecrets } from './constructs/service-secrets.ts';
import { StateStore } from './constructs/state-store.ts';
import { UseMonitor } from './constructs/use-monitor.ts';
import { type CiIssuerSetting, validateExposureLogGroups } from './settings.ts';

/** Properties of {@link KeywardenStack}; every setting has a safe default. */
export interface KeywardenStackProps extends StackProps {
  /** Vault/OpenBao address (`https://…`); empty or absent skips Vault discovery and rotation. */
  readonly vaultAddr?: string | undefined;
  /**
   * IAM path whose users discovery inspects and rotation and revocation manage access keys of.
   * @default each construct's own: '/' for discovery, '/ci/' for rotation and revocation
   */
  readonly iamPathPrefix?: string | undefined;
  /** Name prefix of the Secrets Manager secrets discovery fingerprints and rotation writes. @default 'ci/' */
  readonly secretNamePrefix?: string | undefined;
  /** Discovery schedule expression. @default context `keywarden:discoverySchedule`, else `rate(6 hours)` */
  readonly discoverySchedule?: string | undefined;
  /** Scheduled rotation expression. @default context `keywarden:rotationSchedule`, else `rate(1 hour)` */
  readonly rotationSchedule?: string | undefined;
  /** Identities one scheduled rotation run rotates at once. @default 8 */
  readonly rotationConcurrency?: number | undefined;
  /** Days without use after which a credential is reported stale. @default 90 */
  readonly staleAfterDays?: number | undefined;
  /**
   * IAM path of the roles break-glass grants may assume; `/` is refused.
   * @default context `keywarden:breakglassRolePath`, else '/breakglass/'
   */
  readonly breakglassRolePath?: string | undefined;
  /** Grant sweeper expression. @default context `keywarden:sweeperSchedule`, else `rate(5 minutes)` */
  readonly sweeperSchedule?: string | undefined;
  /**
   * The OIDC issuers (with the audience their jobs request) whose CI job tokens the API's JWT
   * authorizer lets through to the exchange; see `CiCredentialsProps.issuers`. None: CI job
   * credentials are off (no CI route, key, secret or function is deployed).
   *
   * @default context `keywarden:ciIssuers` (an array, or its JSON), else none
   */
  readonly ciIssuers?: readonly CiIssuerSetting[] | string | undefined;
  /** IAM path of the roles CI job grants may assume. @default context `keywarden:ciRolePath`, else '/ci/' */
  readonly ciRolePath?: string | undefined;
  /** CI sweeper expression. @default context `keywarden:ciSweeperSchedule`, else `rate(1 minute)` */
  readonly ciSweeperSchedule?: string | undefined;
  /**
   * The CloudWatch Logs log groups the exposure scanner subscribes to (CodeBuild's, Lambda's, the
   * CI runners'); see `ExposureScannerProps.logGroups`. None: no scanner is deployed.
   *
   * @default context `keywarden:exposureLogGroups` (an array, or its JSON), else none
   */
  readonly exposureLogGroups?: readonly string[] | string | undefined;
  /**
   * GitHub's REST API root the exposure scanner reads finished jobs' logs from.
   * @default context `keywarden:githubApiUrl`, else https://api.github.com
   */
  readonly githubApiUrl?: string | undefined;
  /**
   * The GitLab instance the exposure scanner reads finished jobs' traces from.
   * @default context `keywarden:gitlabUrl`, else https://gitlab.com
   */
  readonly gitlabUrl?: string | undefined;
  /**
   * The Slack channel id the exposure scanner posts containment alerts to (with the Slack bot token).
   * @default context `keywarden:exposureAlertChannel`, else none (alerts go to the revocation alarm topic only)
   */
  readonly exposureAlertChannel?: string | undefined;
}

/**
 * keywarden in one account: the state table, the report bucket, keywarden's own secrets, the
 * scheduled discovery function, rotation (scheduled and Secrets Manager rotation, with alarms), the
 * incident revocation state machine, break-glass expiry (one-time schedules and a sweeper, with
 * alarms), the HTTP API for the CLI and Slack, and, when a deployment trusts a CI issuer, CI job
 * credentials (infra/constructs/ci-credentials.ts). Construct ids are public API: renaming one replaces the
 * resource (and the table and bucket are retained, not moved).
 */
export class KeywardenStack extends Stack {
  /** The state table and its key. */
  readonly stateStore: StateStore;
  /** The report bucket, its key and its access-log bucket. */
  readonly reportBucket: ReportBucket;
  /** The Vault token, fingerprint key and Slack signing secrets. */
  readonly secrets: ServiceSecrets;
  /** The scheduled discovery function. */
  readonly discovery: Discovery;
  /** Scheduled and Secrets Manager rotation, and the rotation alarms. */
  readonly rotation: Rotation;
  /** The incident revocation state machine and its three functions. */
  readonly revocation: Revocation;
  /** Grant expiry (one-time schedules, their group and role), the sweeper and their alarms. */
  readonly breakGlass: BreakGlass;
  /** The only function that puts deny policies on IAM roles. */
  readonly roleDeny: RoleDeny;
  /** The HTTP API, its grants and campaigns functions, Slack ingress and the Slack worker. */
  readonly api: Api;
  /** CI job credentials (routes, approval key, webhook secrets, sweeper); `undefined` when off. */
  readonly ci: CiCredentials | undefined;
  /** The exposure scanner on the configured log groups; `undefined` when none is configured. */
  readonly exposure: ExposureScanner | undefined;
  /** CloudTrail calls of CI sessions and managed access keys, judged as they happen. */
  readonly useMonitor: UseMonitor;

  constructor(scope: Construct, id: string, props: KeywardenStackProps = {}) {
    super(scope, id, props);

    this.stateStore = new StateStore(this, 'StateStore');
    this.reportBucket = new ReportBucket(this, 'ReportBucket');
    this.secrets = new ServiceSecrets(this, 'ServiceSecrets');
    // What every construct that reaches pipeline credentials is given.
    const pipeline = {
      stateStore: this.stateStore,
      secrets: this.secrets,
      vaultAddr: props.vaultAddr,
      iamPathPrefix: props.iamPathPrefix,
      secretNamePrefix: props.secretNamePrefix,
    };
    this.discovery = new Discovery(this, 'Discovery', {
      ...pipeline,
      reportBucket: this.reportBucket,
      staleAfterDays: props.staleAfterDays,
      schedule: props.discoverySchedule,
    });
    this.rotation = new Rotation(this, 'Rotation', {
      ...pipeline,
      schedule: props.rotationSchedule,
      concurrency: props.rotationConcurrency,
    });
    this.revocation = new Revocation(this, 'Revocation', { ...pipeline, reportBucket: this.reportBucket });
    this.breakGlass = new BreakGlass(this, 'BreakGlass', {
      stateStore: this.stateStore,
      secrets: this.secrets,
      vaultAddr: props.vaultAddr,
      breakglassRolePath: props.breakglassRolePath,
      sweeperSchedule: props.sweeperSchedule,
    });
    // CI is on when a deployment trusts at least one issuer; its role path is known before role-deny's.
    const ciIssuers: readonly CiIssuerSetting[] | string | undefined =
      props.ciIssuers ?? this.node.tryGetContext(CI_ISSUERS_CONTEXT);
    const ciRolePath = ciEnabled(ciIssuers) ? ciRolePathOf(this, props.ciRolePath) : undefined;
    // Exactly one function may put inline policies on roles: the others invoke it.
    this.roleDeny = new RoleDeny(this, 'RoleDeny', {
      rolePaths: [
        this.breakGlass.breakglassRolePath,
        this.revocation.iamPathPrefix,
        ...(ciRolePath === undefined ? [] : [ciRolePath]),
      ],
      alarmTopic: this.breakGlass.alarmTopic,
    });
    for (const caller of [this.breakGlass.expiry, this.breakGlass.sweeper, this.revocation.revokeBatch]) {
      this.roleDeny.grantInvoke(caller);
    }
    this.api = new Api(this, 'Api', {
      ...pipeline,
      roleDeny: this.roleDeny,
      breakGlass: this.breakGlass,
      revocationStateMachine: this.revocation.stateMachine,
      // A campaign that cannot start is an incident's: its alarm goes where the revocation alarms go.
      campaignsAlarmTopic: this.revocation.alarmTopic,
    });
    this.ci =
      ciRolePath === undefined
        ? undefined
        : new CiCredentials(this, 'CiCredentials', {
            api: this.api,
            roleDeny: this.roleDeny,
            stateStore: this.stateStore,
            secrets: this.secrets,
            vaultAddr: props.vaultAddr,
            issuers: ciIssuers ?? [],
            rolePath: ciRolePath,
            sweeperSchedule: props.ciSweeperSchedule,
            alarmTopic: this.breakGlass.alarmTopic,
          });
    // The exposure scanner is on when a deployment names log groups to scan.
    const exposureLogGroups = validateExposureLogGroups(
      'ExposureScanner',
      props.exposureLogGroups ?? this.node.tryGetContext(EXPOSURE_LOG_GROUPS_CONTEXT),
    );
    this.exposure =
      exposureLogGroups.length === 0
        ? undefined
        : new ExposureScanner(this, 'ExposureScanner', {
            ...pipeline,
            logGroups: exposureLogGroups,
            revocationStateMachine: this.revocation.stateMachine,
            // Containment is an incident: its failures go where the revocation alarms go.
            alarmTopic: this.revocation.alarmTopic,
            githubApiUrl: props.githubApiUrl ?? this.node.tryGetContext(EXPOSURE_GITHUB_API_CONTEXT),
            gitlabUrl: props.gitlabUrl ?? this.node.tryGetContext(EXPOSURE_GITLAB_URL_CONTEXT),
            alertChannel:
              props.exposureAlertChannel ?? this.node.tryGetContext(EXPOSURE_ALERT_CHANNEL_CONTEXT),
          });
    // A finished CI job's log is scanned when both are deployed: the CI function hands the job over.
    if (this.exposure !== undefined && this.ci !== undefined) {
      this.exposure.acceptFinishedJobsFrom(this.ci.handler);
    }

    // Every stack watches use: CI sessions after their job's end, managed keys outside their runners.
    this.useMonitor = new UseMonitor(this, 'UseMonitor', {
      ...pipeline,
      revocationStateMachine: this.revocation.stateMachine,
      // Containing a used key is an incident: its failures go where the revocation alarms go.
      alarmTopic: this.revocation.alarmTopic,
    });

    // What an operator needs after deploy: where state and reports live, and which secret to set.
    new CfnOutput(this, 'StateTableName', { value: this.stateStore.table.tableName });
    new CfnOutput(this, 'ReportBucketName', { value: this.reportBucket.bucket.bucketName });
    new CfnOutput(this, 'VaultTokenSecretArn', {
      value: this.secrets.vaultToken.secretArn,
      description: 'Set the Vault/OpenBao token here after deploy (aws secretsmanager put-secret-value).',
    });
    new CfnOutput(this, 'DiscoveryFunctionName', { value: this.discovery.function.functionName });
    new CfnOutput(this, 'SecretRotationFunctionArn', {
      value: this.rotation.secretRotation.function.functionArn,
      description:
        'Rotation function for secrets under the prefix: aws secretsmanager rotate-secret --secret-id <secret> --rotation-lambda-arn <this>.',
    });
    new CfnOutput(this, 'RotationAlarmTopicArn', {
      value: this.rotation.alarmTopic.topicArn,
      description: 'Rotation alarms notify this topic: subscribe on-call to it (aws sns subscribe).',
    });
    new CfnOutput(this, 'RevocationStateMachineArn', {
      value: this.revocation.stateMachine.stateMachineArn,
      description:
        'Runs a planned campaign: aws stepfunctions start-execution --state-machine-arn <this> --input \'{"campaignId":"…"}\'.',
    });
    new CfnOutput(this, 'ApiUrl', {
      value: this.api.url,
      description:
        'keywarden HTTP API: the CLI calls it with SigV4 (KEYWARDEN_API_URL); Slack commands go to <this>slack/commands, buttons to <this>slack/interactions.',
    });
    new CfnOutput(this, 'ApiFunctionRoleArn', {
      value: this.api.grants.role.roleArn,
      description: `Break-glass roles (under ${this.breakGlass.breakglassRolePath}) must trust this role (the API's grants function) for sts:AssumeRole and sts:SetSourceIdentity, or grants cannot be issued.`,
    });
    if (this.ci !== undefined) {
      new CfnOutput(this, 'CiFunctionRoleArn', {
        value: this.ci.handler.role.roleArn,
        description: `CI roles (under ${this.ci.rolePath}) must trust this role (the API's CI function) for sts:AssumeRole and sts:SetSourceIdentity, or CI job credentials cannot be issued.`,
      });
    }
    new CfnOutput(this, 'SlackSigningSecretArn', {
      value: this.secrets.slackSigningSecret.secretArn,
      description:
        "Set the Slack app's signing secret here after deploy (aws secretsmanager put-secret-value).",
    });
    new CfnOutput(this, 'SlackBotTokenSecretArn', {
      value: this.secrets.slackBotToken.secretArn,
      description:
        "Optional: set the Slack app's bot token (xoxb-…, scope chat:write) here so /revoke progress is a thread; without it progress goes to response_url.",
    });
    new CfnOutput(this, 'DeferredJobsDeadLetterQueueUrl', {
      value: this.api.deferredJobsQueue.queueUrl,
      description:
        'Deferred Slack jobs that failed wait here: runbooks/break-glass.md reads and re-drives them (aws sqs receive-message).',
    });
    new CfnOutput(this, 'SlackWorkerFunctionName', {
      value: this.api.slackWorker.function.functionName,
      description:
        'Runs deferred Slack jobs; re-drive a dead-lettered job with aws lambda invoke --invocation-type Event.',
    });
    new CfnOutput(this, 'DiscoveryAlarmTopicArn', {
      value: this.discovery.alarmTopic.topicArn,
      description: 'Discovery alarms notify this topic: subscribe on-call to it (aws sns subscribe).',
    });
    new CfnOutput(this, 'BreakGlassAlarmTopicArn', {
      value: this.breakGlass.alarmTopic.topicArn,
      description:
        'Grant expiry, sweeper, role-deny and deferred Slack job alarms notify this topic: subscribe on-call to it (aws sns subscribe).',
    });
    if (this.exposure !== undefined) {
      new CfnOutput(this, 'ExposureForgeTokensSecretArn', {
        value: this.exposure.forgeTokens.secretArn,
        description:
          'Set the GitHub and GitLab tokens the exposure scanner reads finished jobs\' logs with here, as JSON {"github": "<token with Actions read>", "gitlab": "<token with read_api>"} (aws secretsmanager put-secret-value); an empty token: that platform is not read.',
      });
    }
    if (this.ci !== undefined) {
      new CfnOutput(this, 'CiGitHubWebhookSecretArn', {
        value: this.ci.githubWebhookSecret.secretArn,
        description:
          "GitHub: add a webhook (workflow_job events, application/json) to <ApiUrl>ci/webhooks/github with this secret's value (aws secretsmanager get-secret-value) as its Secret.",
      });
      new CfnOutput(this, 'CiGitLabWebhookSecretArn', {
        value: this.ci.gitlabWebhookSecret.secretArn,
        description:
          "GitLab: add a webhook (Job events) to <ApiUrl>ci/webhooks/gitlab with this secret's value (aws secretsmanager get-secret-value) as its Secret token.",
      });
      new CfnOutput(this, 'CiApprovalKeyArn', {
        value: this.ci.approvalKey.keyArn,
        description:
          'Signs artifact approvals (alias/keywarden-approvals, ECC_NIST_P256); kept when the stack is deleted so approvals stay verifiable (aws kms get-public-key).',
      });
    }
  }
}
