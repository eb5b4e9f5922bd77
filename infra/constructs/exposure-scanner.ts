import { createHash } from 'node:crypto';
import { Duration, RemovalPolicy, SecretValue, Stack } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as destinations from 'aws-cdk-lib/aws-logs-destinations';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { KEYWARDEN_ENV } from '../../functions/handlers/env.ts';
import { functionAlarms, grantAlertPublish } from '../alarm-topic.ts';
import { InfraConfigError } from '../errors.ts';
import { grantCampaignListing, type PipelineCredentialsProps, pipelineScope } from '../function-props.ts';
import { type KeywardenFunction, keywardenFunction } from '../lambda-function.ts';
import { deadLetterQueue } from '../live-schedule.ts';
import { validateExposureLogGroups } from '../settings.ts';

/** cdk context key that may hold the log groups to scan (an array, or its JSON); none: no scanner. */
export const EXPOSURE_LOG_GROUPS_CONTEXT = 'keywarden:exposureLogGroups';

/** The name of every subscription filter the scanner puts on a log group. */
export const EXPOSURE_FILTER_NAME = 'keywarden-exposure';

/** cdk context key that may hold GitHub's REST API root the scanner reads job logs from (GitHub Enterprise Server's `https://<host>/api/v3`). */
export const EXPOSURE_GITHUB_API_CONTEXT = 'keywarden:githubApiUrl';

/** cdk context key that may hold the GitLab instance's URL the scanner reads job logs from. */
export const EXPOSURE_GITLAB_URL_CONTEXT = 'keywarden:gitlabUrl';

/** cdk context key that may hold the Slack channel id containment alerts are posted to (with the Slack bot token). */
export const EXPOSURE_ALERT_CHANNEL_CONTEXT = 'keywarden:exposureAlertChannel';

/** What the forge tokens secret holds until the operator sets tokens: no token, so no platform is read. */
export const FORGE_TOKENS_PLACEHOLDER = '{"github":"","gitlab":""}';

/** Properties of {@link ExposureScanner}. */
export interface ExposureScannerProps extends PipelineCredentialsProps {
  /**
   * The log groups to scan (CodeBuild's `/aws/codebuild/<project>`, Lambda's, the CI runners'),
   * by name; each gets one subscription filter delivering every event to the scanner. A log group
   * holds at most two subscription filters: a group that already has two cannot be added. Never
   * list the scanner's own log group (it would scan its own output, for ever). May be given as
   * JSON (`-c keywarden:exposureLogGroups='["/aws/codebuild/deploy-app"]'`).
   */
  readonly logGroups: readonly string[] | string;
  /**
   * The incident revocation state machine: containing a managed credential starts a campaign in
   * it (on the exposed credential's fingerprint, with re-issue). The scanner may start executions
   * of this state machine and nothing else in Step Functions.
   */
  readonly revocationStateMachine: sfn.IStateMachine;
  /** Where the scanner's alarms notify. @default no alarm */
  readonly alarmTopic?: sns.ITopic | undefined;
  /**
   * GitHub's REST API root, where finished jobs' logs are read (GitHub Enterprise Server:
   * `https://<host>/api/v3`). An https URL.
   * @default https://api.github.com
   */
  readonly githubApiUrl?: string | undefined;
  /** The GitLab instance's URL, where finished jobs' traces are read. An https URL. @default https://gitlab.com */
  readonly gitlabUrl?: string | undefined;
  /**
   * The Slack channel id (`C0123456789`) containment alerts are posted to, as keywarden's Slack
   * app (the bot token secret of {@link PipelineCredentialsProps.secrets}; the bot must be in the
   * channel). While that secret holds no bot token, alerts go to the topic only.
   * @default no Slack alert
   */
  readonly alertChannel?: string | undefined;
}

/**
 * The deployed exposure scanner (issue #14): CloudWatch Logs subscription filters on the
 * configured log groups deliver every log event, in batches, to a scanner function
 * (`functions/handlers/exposure-scanner.ts`), which scans each line for credentials and contains
 * the managed ones by starting an incident revocation campaign (re-issue included) on the exposed
 * credential's fingerprint.
 *
 * - **Function**: its role may use the state table (the inventory to match a hit's fingerprint,
 *   the campaign it stores, the audit trail), read the fingerprint key and the Vault token, list
 *   (read-only metadata, as planning a campaign does) the access keys of users under the IAM path
 *   and the versions of secrets under the name prefix, and start executions of the revocation
 *   state machine only: the revoking is done there, by the revocation functions, with their own
 *   grants. The IAM path and name prefix are the revocation's (`keywarden:iamPathPrefix`, `ci/`).
 * - **Subscriptions**: one `keywarden-exposure` filter per log group, matching every event, with
 *   the invoke permission CloudWatch Logs needs for that log group only.
 * - **Finished CI jobs**: when CI job credentials are deployed too, the API function hands each
 *   finished job to the scanner (an asynchronous invocation, {@link acceptFinishedJobsFrom}), which
 *   reads its log through GitHub's or GitLab's API with the tokens of {@link forgeTokens} (a
 *   secret only the scanner may read; JSON `{"github": "<token>", "gitlab": "<token>"}`, set by
 *   the operator after deploy) and scans it as a batch.
 * - **Alerts**: each containment attempted is published to {@link alertTopic} (the alarm topic it
 *   is given, else a topic of its own, encrypted), whose subscribers may filter on the owner;
 *   and posted to the Slack alert channel when one is configured and the bot token is set.
 * - **Failures**: CloudWatch Logs and the API invoke asynchronously; an event whose scan failed
 *   after Lambda's retries waits in {@link deadLetterQueue}, so a leak is never dropped unscanned.
 *   Alarms on the function's errors and on a dead-lettered event.
 */
export class ExposureScanner extends Construct {
  /** The validated log group names, as given. */
  readonly logGroupNames: readonly string[];
  /** The scanner function. */
  readonly scanner: KeywardenFunction;
  /** The subscription filter of each log group, by log group name. */
  readonly subscriptions: ReadonlyMap<string, logs.SubscriptionFilter>;
  /** Batches whose scan failed after Lambda's retries. */
  readonly deadLetterQueue: sqs.Queue;
  /** The scanner failed within the last 5 minutes. */
  readonly errorsAlarm: cloudwatch.Alarm | undefined;
  /** A batch waits in {@link deadLetterQueue}. */
  readonly deadLetterAlarm: cloudwatch.Alarm | undefined;
  /**
   * The GitHub and GitLab tokens finished jobs' logs are read with, JSON `{"github", "gitlab"}`:
   * deployed with empty tokens (no platform read), set by the operator with put-secret-value.
   * Only the scanner may read it.
   */
  readonly forgeTokens: secretsmanager.Secret;
  /** Where containment alerts are published: the alarm topic given, or the construct's own. */
  readonly alertTopic: sns.ITopic;

  constructor(scope: Construct, id: string, props: ExposureScannerProps) {
    super(scope, id);

    // Validate before creating a child, so a bad value fails fast and bundling never starts.
    const pipeline = pipelineScope(this, 'ExposureScanner', props, { defaultIamPathPrefix: '/ci/' });
    this.logGroupNames = validateExposureLogGroups('ExposureScanner', props.logGroups);
    if (this.logGroupNames.length === 0) {
      throw new InfraConfigError(
        `ExposureScanner: logGroups must name at least one log group to scan, such as ["/aws/codebuild/deploy-app"]; received none. Leave the scanner out when no log group is configured.`,
      );
    }
    const alertChannel = validateAlertChannel(props.alertChannel);
    const githubApiUrl = validateForgeUrl('githubApiUrl', props.githubApiUrl);
    const gitlabUrl = validateForgeUrl('gitlabUrl', props.gitlabUrl);
    const { stateStore, secrets, revocationStateMachine } = props;

    this.forgeTokens = new secretsmanager.Secret(this, 'ForgeTokens', {
      secretName: `${secrets.namePrefix}forge-tokens`,
      description:
        'GitHub and GitLab tokens the keywarden exposure scanner reads finished CI jobs\' logs with, JSON {"github": "<token>", "gitlab": "<token>"}. Deployed empty (no platform read): set it with put-secret-value.',
      // A placeholder, not a secret: it tells the scanner there is no token yet.
      secretStringValue: SecretValue.unsafePlainText(FORGE_TOKENS_PLACEHOLDER),
      // The platforms reissue tokens at any time; nothing stored depends on them.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    NagSuppressions.addResourceSuppressions(this.forgeTokens, [
      {
        id: 'AwsSolutions-SMG4',
        reason:
          'The values are tokens GitHub and GitLab issue (a fine-grained token with Actions read, a GitLab token with read_api); Secrets Manager cannot mint or rotate them. They are reissued on the platforms, with their own expiry, and replaced here with put-secret-value.',
      },
    ]);

    // Alerts go where the alarms go; without an alarm topic, to a topic of the scanner's own.
    if (props.alarmTopic) {
      this.alertTopic = props.alarmTopic;
    } else {
      const alertKey = new kms.Key(this, 'AlertKey', {
        description: 'keywarden exposure containment alert topic encryption',
        enableKeyRotation: true,
        // Protects alerts in transit through SNS only; nothing stored depends on it.
        removalPolicy: RemovalPolicy.DESTROY,
      });
      this.alertTopic = new sns.Topic(this, 'AlertTopic', {
        displayName: 'keywarden exposure containment alerts',
        masterKey: alertKey,
        enforceSSL: true,
      });
    }

    this.deadLetterQueue = deadLetterQueue(this);
    this.scanner = keywardenFunction(this, 'Scanner', {
      handlerFile: 'exposure-scanner.ts',
      description:
        'keywarden exposure scanner: scans CloudWatch Logs batches for credentials, contains managed ones',
      roleDescription:
        'keywarden exposure scanner: reads the inventory and audit trail, starts revocation campaigns on exposed credentials',
      // A batch unpacks to at most 8 MB, scanned line by line.
      memorySize: 1024,
      timeout: Duration.minutes(2),
      logRetention: pipeline.logRetention,
      deadLetterQueue: this.deadLetterQueue,
      environment: {
        ...pipeline.environment,
        revocationStateMachineArn: revocationStateMachine.stateMachineArn,
        forgeTokensSecretArn: this.forgeTokens.secretArn,
        ...(githubApiUrl === undefined ? {} : { githubApiUrl }),
        ...(gitlabUrl === undefined ? {} : { gitlabUrl }),
        exposureAlertTopicArn: this.alertTopic.topicArn,
        ...(alertChannel === undefined
          ? {}
          : { exposureAlertChannel: alertChannel, slackBotTokenSecretArn: secrets.slackBotToken.secretArn }),
      },
    });
    const role = this.scanner.role;
    stateStore.grantReadWriteData(role);
    secrets.grantRead(role, { slackBotToken: alertChannel !== undefined });
    grantAlertPublish(role, this.alertTopic);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadForgeTokens',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.forgeTokens.secretArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StartRevocationCampaigns',
        actions: ['states:StartExecution'],
        resources: [revocationStateMachine.stateMachineArn],
      }),
    );
    // Planning the campaign lists what is live of the exposed identity.
    NagSuppressions.addResourceSuppressions(
      role,
      grantCampaignListing(this, role, pipeline, { planned: 'a containment campaign' }),
      true,
    );

    const destination = new destinations.LambdaDestination(this.scanner.function);
    const subscriptions = new Map<string, logs.SubscriptionFilter>();
    for (const name of this.logGroupNames) {
      // Ids from the name, not the position: reordering the list replaces nothing.
      const key = `${name.replace(/[^A-Za-z0-9]/g, '').slice(-40)}${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
      subscriptions.set(
        name,
        new logs.SubscriptionFilter(this, `Subscription${key}`, {
          logGroup: logs.LogGroup.fromLogGroupName(this, `LogGroup${key}`, name),
          destination,
          filterPattern: logs.FilterPattern.allEvents(),
          filterName: EXPOSURE_FILTER_NAME,
        }),
      );
    }
    this.subscriptions = subscriptions;

    if (props.alarmTopic) {
      const alarmNamePrefix = `${Stack.of(this).stackName}-exposure-`;
      ({ errorsAlarm: this.errorsAlarm, deadLetterAlarm: this.deadLetterAlarm } = functionAlarms(this, {
        fn: this.scanner.function,
        queue: this.deadLetterQueue,
        errorsName: `${alarmNamePrefix}scanner-errors`,
        deadLetterName: `${alarmNamePrefix}unscanned`,
        errorsPeriod: Duration.minutes(5),
        errorsText:
          "keywarden: the exposure scanner failed in the last 5 minutes, so a log batch or a finished job's log may not be scanned yet (Lambda retries it twice, then keeps it in the dead-letter queue) and a leaked credential may still be live. Read the scanner's logs for the error.",
        deadLetterText:
          "keywarden: a CloudWatch Logs batch or a finished CI job handed over by the API waits in the exposure dead-letter queue (the scanner failed on it after its retries: for a job, often a forge token that cannot read its log), so its lines are not scanned and a leak in them not contained. Read the scanner's logs for the error, fix the cause, then re-drive the message to the scanner (aws lambda invoke --invocation-type Event).",
        topic: props.alarmTopic,
      }));
    } else {
      this.errorsAlarm = undefined;
      this.deadLetterAlarm = undefined;
    }
  }

  /**
   * Lets `api` hand finished CI jobs to the scanner (statement `HandFinishedJobsToExposureScanner`:
   * `lambda:InvokeFunction` on the scanner function only) and tells it where (its environment's
   * scanner function ARN). The stack calls it when CI job credentials and the scanner are both
   * deployed.
   */
  acceptFinishedJobsFrom(api: KeywardenFunction): void {
    api.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'HandFinishedJobsToExposureScanner',
        actions: ['lambda:InvokeFunction'],
        resources: [this.scanner.function.functionArn],
      }),
    );
    api.function.addEnvironment(KEYWARDEN_ENV.exposureScannerFunctionArn, this.scanner.function.functionArn);
  }
}

/** A Slack channel id (`C0123456789`), or undefined when not set. */
function validateAlertChannel(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  if (!/^[A-Z0-9]{2,32}$/.test(trimmed)) {
    throw new InfraConfigError(
      `ExposureScanner: alertChannel must be a Slack channel id such as 'C0123456789' (channel details > About), not its name; received '${trimmed.slice(0, 64)}'.`,
    );
  }
  return trimmed;
}

/** A platform's URL as the scanner is given it: https, no credentials; undefined when not set. */
function validateForgeUrl(name: string, value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(trimmed);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'https:' || url.username !== '' || url.password !== '' || url.search !== '') {
    const shown = url && (url.username || url.password) ? `${url.protocol}//***@${url.host}` : trimmed;
    throw new InfraConfigError(
      `ExposureScanner: ${name} must be an https:// URL without credentials or query, such as 'https://github.example.com/api/v3'; received '${shown}'.`,
    );
  }
  return trimmed;
}
