import { Duration, Stack } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { functionAlarms, grantAlertPublish } from '../alarm-topic.ts';
import { grantCampaignListing, type PipelineCredentialsProps, pipelineScope } from '../function-props.ts';
import { type KeywardenFunction, keywardenFunction } from '../lambda-function.ts';
import { deadLetterQueue } from '../live-schedule.ts';

/**
 * Every CI session's SourceIdentity starts with this (the job's correlation id, `ci-<issuer>-…`);
 * the same as functions/adapters/aws/cloudtrail-event.ts reads (infra imports no adapter code).
 */
export const CI_SOURCE_IDENTITY_PREFIX = 'ci-';

/** An IAM user's long-term access key id starts with this (a session's temporary one, `ASIA`). */
export const LONG_TERM_KEY_PREFIX = 'AKIA';

/** Properties of {@link UseMonitor}. */
export interface UseMonitorProps extends PipelineCredentialsProps {
  /**
   * The incident revocation state machine: a managed key used from outside its `allowedRunners`
   * by an identity whose `policy.onUnexpectedUse` is `contain` is ended by a campaign started in
   * it (on the key's fingerprint, with re-issue). Absent, such uses are reported only, and the
   * function holds no Step Functions or IAM grant. Never the Vault token: only access keys are watched.
   *
   * @default no containment
   */
  readonly revocationStateMachine?: sfn.IStateMachine | undefined;
  /**
   * Where the monitor's alarms notify, and, when it contains, where the owner of a contained key
   * is alerted (as the exposure scanner alerts on the alarm topic it is given).
   * @default no alarm, and no alert
   */
  readonly alarmTopic?: sns.ITopic | undefined;
}

/**
 * The use monitor (issues #13 and #14): an EventBridge rule on the default bus sends the function
 * (`functions/handlers/use-monitor.ts`) every CloudTrail API call made with a CI job's session
 * (SourceIdentity starting `ci-`) or signed with an IAM user's long-term access key (`AKIA…`).
 * It records an active exchange's first use, finds a session's call after its exchange ended
 * (`used-after-job-end`) and a managed key's call from outside its identity's `allowedRunners`
 * (`used-from-unexpected-runner`), contained when the identity's policy says so.
 *
 * EventBridge receives these only where a CloudTrail trail logs management events, in the region
 * the call was made (IAM and STS: us-east-1 too); read-only calls (Get*, List*, Describe*) only
 * arrive with the rule state `ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`, which this rule has.
 * Undeliverable events and failed runs wait in {@link deadLetterQueue}.
 */
export class UseMonitor extends Construct {
  /** The monitor function. */
  readonly monitor: KeywardenFunction;
  /** CloudTrail API calls of `ci-` sessions and of `AKIA` keys, to {@link monitor}. */
  readonly rule: events.Rule;
  /** Events EventBridge could not deliver, and runs that failed after their retries. */
  readonly deadLetterQueue: sqs.Queue;
  /** Whether a `contain` identity's key is ended here (a revocation state machine was given). */
  readonly contains: boolean;
  /** The monitor failed within the hour. */
  readonly errorsAlarm: cloudwatch.Alarm | undefined;
  /** An event waits in {@link deadLetterQueue}. */
  readonly deadLetterAlarm: cloudwatch.Alarm | undefined;

  constructor(scope: Construct, id: string, props: UseMonitorProps) {
    super(scope, id);

    // Validate before creating a child, so a bad value fails fast and bundling never starts.
    const pipeline = pipelineScope(this, 'UseMonitor', props, { defaultIamPathPrefix: '/ci/' });
    const { stateStore, secrets, revocationStateMachine } = props;
    this.contains = revocationStateMachine !== undefined;

    this.deadLetterQueue = deadLetterQueue(this);
    this.monitor = keywardenFunction(this, 'Monitor', {
      handlerFile: 'use-monitor.ts',
      description:
        'keywarden use monitor: judges AWS API calls of CI job sessions and managed access keys (CloudTrail)',
      roleDescription: this.contains
        ? 'keywarden use monitor: records uses and findings in the state table, starts revocation campaigns on keys used from outside their runners'
        : 'keywarden use monitor: records uses and findings in the state table; no STS, no IAM',
      memorySize: 512,
      timeout: Duration.seconds(60),
      logRetention: pipeline.logRetention,
      deadLetterQueue: this.deadLetterQueue,
      // No Vault address or token: the monitor contains only `aws-iam-access-key` identities.
      environment: {
        table: pipeline.environment.table,
        fingerprintKeySecretArn: pipeline.environment.fingerprintKeySecretArn,
        ...(revocationStateMachine
          ? {
              iamPathPrefix: pipeline.environment.iamPathPrefix,
              secretNamePrefix: pipeline.environment.secretNamePrefix,
              revocationStateMachineArn: revocationStateMachine.stateMachineArn,
              ...(props.alarmTopic ? { exposureAlertTopicArn: props.alarmTopic.topicArn } : {}),
            }
          : {}),
      },
    });
    const role = this.monitor.role;
    stateStore.grantReadWriteData(role);
    // The fingerprint key only: every function's configuration reads it at cold start.
    secrets.grantRead(role, { vaultToken: false });
    if (revocationStateMachine) {
      // Containment plans its campaign here (as the exposure scanner does): the monitor watches
      // only `aws-iam-access-key` identities, so planning lists the used key's user's keys alone.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'StartRevocationCampaigns',
          actions: ['states:StartExecution'],
          resources: [revocationStateMachine.stateMachineArn],
        }),
      );
      if (props.alarmTopic) grantAlertPublish(role, props.alarmTopic);
      NagSuppressions.addResourceSuppressions(
        role,
        grantCampaignListing(this, role, pipeline, { planned: 'a containment campaign', secrets: false }),
        true,
      );
    }

    this.rule = new events.Rule(this, 'Rule', {
      description: `keywarden: AWS API calls made with CI job sessions (SourceIdentity ${CI_SOURCE_IDENTITY_PREFIX}…) or long-term access keys (${LONG_TERM_KEY_PREFIX}…), to the use monitor`,
      eventPattern: {
        detailType: ['AWS API Call via CloudTrail'],
        detail: {
          // Either handle keywarden knows a caller by; EventBridge's $or matches one or the other.
          $or: [
            { userIdentity: { sessionContext: { sourceIdentity: [{ prefix: CI_SOURCE_IDENTITY_PREFIX }] } } },
            { userIdentity: { accessKeyId: [{ prefix: LONG_TERM_KEY_PREFIX }] } },
          ],
        },
      },
      targets: [
        new eventTargets.LambdaFunction(this.monitor.function, {
          deadLetterQueue: this.deadLetterQueue,
          // A use judged hours late is still a use: the audit wants it more than promptness.
          maxEventAge: Duration.hours(6),
          retryAttempts: 8,
        }),
      ],
    });
    // Read-only calls (Get*, List*, Describe*) reach a rule only in this state.
    (this.rule.node.defaultChild as events.CfnRule).state = 'ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS';

    if (props.alarmTopic) {
      const alarmNamePrefix = `${Stack.of(this).stackName}-use-monitor-`;
      ({ errorsAlarm: this.errorsAlarm, deadLetterAlarm: this.deadLetterAlarm } = functionAlarms(this, {
        fn: this.monitor.function,
        queue: this.deadLetterQueue,
        errorsName: `${alarmNamePrefix}errors`,
        deadLetterName: `${alarmNamePrefix}undelivered`,
        errorsPeriod: Duration.hours(1),
        errorsText:
          "keywarden: the use monitor failed in the last hour, so a CI session's or managed key's call may not be judged (or recorded) until its retry succeeds. Read the function's logs for the event and error.",
        deadLetterText:
          'keywarden: a CloudTrail event waits in the use monitor dead-letter queue (EventBridge could not deliver it, or the monitor failed after its retries), so its use is not judged. Read the message, fix the cause and re-drive it to the use monitor (aws lambda invoke --invocation-type Event).',
        topic: props.alarmTopic,
      }));
    } else {
      this.errorsAlarm = undefined;
      this.deadLetterAlarm = undefined;
    }
  }
}
