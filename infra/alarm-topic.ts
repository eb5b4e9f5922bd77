import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** An alarm topic with its own key, as {@link encryptedAlarmTopic} builds it. */
export interface AlarmTopic {
  readonly key: kms.Key;
  readonly topic: sns.Topic;
}

/**
 * The SNS topic a capability's CloudWatch alarms notify, as `AlarmKey` and `AlarmTopic` under
 * `scope`. CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key,
 * so the topic has a key of its own. The topic policy that `enforceSSL` creates replaces SNS's
 * default one, so CloudWatch gets an explicit grant: only alarms of this stack whose names
 * start with `alarmNamePrefix`, in this account and region.
 */
export function encryptedAlarmTopic(
  scope: Construct,
  props: { what: string; alarmNamePrefix: string },
): AlarmTopic {
  const stack = Stack.of(scope);
  const key = new kms.Key(scope, 'AlarmKey', {
    description: `keywarden ${props.what} alarm topic encryption`,
    enableKeyRotation: true,
    // Protects notifications in transit through SNS only; nothing stored depends on it.
    removalPolicy: RemovalPolicy.DESTROY,
  });
  // Actions as AWS documents them for alarm notifications; which alarms may publish is
  // restricted by the topic policy below.
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'AllowCloudWatchAlarmsToPublishToTheTopic',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
    }),
  );
  const topic = new sns.Topic(scope, 'AlarmTopic', {
    displayName: `keywarden ${props.what} alarms`,
    masterKey: key,
    enforceSSL: true,
  });
  topic.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'AllowThisStacksAlarmsToPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
      conditions: {
        StringEquals: { 'aws:SourceAccount': stack.account },
        ArnLike: {
          'aws:SourceArn': stack.formatArn({
            service: 'cloudwatch',
            resource: 'alarm',
            resourceName: `${props.alarmNamePrefix}*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        },
      },
    }),
  );
  return { key, topic };
}

/**
 * Lets `role` publish keywarden's containment alerts to `topic` and nothing else: `sns:Publish`
 * on it, and, when it is encrypted, a data key of its key for SNS to encrypt with.
 */
export function grantAlertPublish(role: iam.IRole, topic: sns.ITopic): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'PublishContainmentAlerts',
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
    }),
  );
  if (topic.masterKey) {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'EncryptContainmentAlerts',
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [topic.masterKey.keyArn],
      }),
    );
  }
}

/**
 * How every keywarden alarm fires: once in one period is enough. No data means nothing failed
 * (the metrics keywarden alarms on exist only when something ran or failed).
 */
export const AT_LEAST_ONCE = {
  threshold: 1,
  evaluationPeriods: 1,
  comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
  treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
} as const;

/** Notifies `topic` when any of `alarms` fires and when it clears. */
export function notifyOnAlarmAndOk(topic: sns.ITopic, alarms: readonly cloudwatch.Alarm[]): void {
  const notify = new cloudwatchActions.SnsAction(topic);
  for (const alarm of alarms) {
    alarm.addAlarmAction(notify);
    alarm.addOkAction(notify);
  }
}

/**
 * An alarm on `fn`'s errors (a crash or a timeout; a refusal is an answer), summed over `period`
 * (one is enough), notifying `topic` when it fires and when it clears.
 */
export function functionErrorsAlarm(
  scope: Construct,
  id: string,
  props: {
    readonly fn: lambda.IFunction;
    readonly name: string;
    readonly text: string;
    readonly topic: sns.ITopic;
    readonly period?: Duration;
  },
): cloudwatch.Alarm {
  const alarm = new cloudwatch.Alarm(scope, id, {
    alarmName: props.name,
    alarmDescription: props.text,
    metric: props.fn.metricErrors({
      statistic: cloudwatch.Stats.SUM,
      period: props.period ?? Duration.minutes(5),
    }),
    ...AT_LEAST_ONCE,
  });
  notifyOnAlarmAndOk(props.topic, [alarm]);
  return alarm;
}

/** What {@link functionAlarms} watches and says. */
export interface FunctionAlarmsProps {
  /** The function whose errors fire `ErrorsAlarm`. */
  readonly fn: lambda.IFunction;
  /** Its dead-letter queue, whose waiting messages fire `DeadLetterAlarm`. */
  readonly queue: sqs.IQueue;
  /** The alarms' names: `<stack>-<capability>-…`, under the alarm topic's prefix. */
  readonly errorsName: string;
  readonly deadLetterName: string;
  /** Over how long errors are summed (one is enough). */
  readonly errorsPeriod: Duration;
  /** What each alarm tells the one who reads it: what may be missed, what to do. */
  readonly errorsText: string;
  readonly deadLetterText: string;
  /** Where both notify, when they fire and when they clear. */
  readonly topic: sns.ITopic;
}

/**
 * The alarm pair of a function fed by events: its errors (summed over `errorsPeriod`) and a
 * message waiting in its dead-letter queue (the most visible over 15 minutes), as `ErrorsAlarm`
 * and `DeadLetterAlarm` under `scope`, both notifying `topic` on alarm and on OK.
 */
export function functionAlarms(
  scope: Construct,
  props: FunctionAlarmsProps,
): { errorsAlarm: cloudwatch.Alarm; deadLetterAlarm: cloudwatch.Alarm } {
  const errorsAlarm = functionErrorsAlarm(scope, 'ErrorsAlarm', {
    fn: props.fn,
    name: props.errorsName,
    text: props.errorsText,
    topic: props.topic,
    period: props.errorsPeriod,
  });
  const deadLetterAlarm = new cloudwatch.Alarm(scope, 'DeadLetterAlarm', {
    alarmName: props.deadLetterName,
    alarmDescription: props.deadLetterText,
    metric: props.queue.metricApproximateNumberOfMessagesVisible({
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(15),
    }),
    ...AT_LEAST_ONCE,
  });
  notifyOnAlarmAndOk(props.topic, [deadLetterAlarm]);
  return { errorsAlarm, deadLetterAlarm };
}
