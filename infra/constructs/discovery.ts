import { Duration, Stack } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { encryptedAlarmTopic, functionAlarms } from '../alarm-topic.ts';
import { iamRolesArn, iamUsersArn, prefixedSecretsArn } from '../arns.ts';
import { InfraConfigError } from '../errors.ts';
import { grantPrefixedSecretKeys, type PipelineCredentialsProps, pipelineScope } from '../function-props.ts';
import { keywardenFunctionIn } from '../lambda-function.ts';
import { deadLetterQueue, liveSchedule } from '../live-schedule.ts';
import { iam5ResourceFinding } from '../nag.ts';
import { validateRecurringSchedule } from '../settings.ts';
import type { ReportBucket } from './report-bucket.ts';

/** cdk context key holding the default discovery schedule expression (see cdk.json). */
export const DISCOVERY_SCHEDULE_CONTEXT = 'keywarden:discoverySchedule';

/** Used when neither props nor cdk context name a schedule. */
export const DEFAULT_DISCOVERY_SCHEDULE = 'rate(6 hours)';

/** Key prefix of discovery reports in the report bucket; the function may write nowhere else. */
export const DISCOVERY_REPORT_PREFIX = 'discovery/';

/** Properties of {@link Discovery}. */
export interface DiscoveryProps extends PipelineCredentialsProps {
  /**
   * IAM path under which the function lists users (with their access keys) and roles; starts
   * and ends with `/`. Discovery only reads, so the root path is allowed. Declared users and
   * roles elsewhere are still looked up directly (metadata reads are granted account-wide).
   *
   * @default '/'
   */
  readonly iamPathPrefix?: string | undefined;
  /** Bucket the function writes its reports to, under `discovery/`. */
  readonly reportBucket: ReportBucket;
  /**
   * A credential not used for this many days is reported as stale.
   *
   * @default 90
   */
  readonly staleAfterDays?: number | undefined;
  /**
   * EventBridge Scheduler `rate(…)` or `cron(…)` expression (UTC).
   *
   * @default the `keywarden:discoverySchedule` context value, else `rate(6 hours)`
   */
  readonly schedule?: string | undefined;
  /**
   * Where the discovery alarms notify. It must accept publishes from CloudWatch alarms (a
   * customer-managed KMS key, and a topic policy for them).
   *
   * @default a KMS-encrypted topic of its own, open to this stack's alarms only
   */
  readonly alarmTopic?: sns.ITopic | undefined;
}

/**
 * Periodic discovery: a Lambda function, run by EventBridge Scheduler, that lists the CI/CD
 * credentials that exist (IAM users' access keys, roles, Secrets Manager secrets under a
 * prefix, Vault) and records and reports those the inventory does not know about.
 *
 * Its role is written statement by statement and reads no more than discovery needs: IAM user
 * and role metadata and secret descriptions account-wide (declared ones may sit outside the
 * prefixes), secret values under the prefix only; the
 * scheduler's role can invoke this function's `live` alias and nothing else. Failed
 * deliveries and failed asynchronous runs land in one encrypted dead-letter queue.
 */
export class Discovery extends Construct {
  /** The discovery function. */
  readonly function: NodejsFunction;
  /** The `live` alias the schedule invokes (the published version of the current code). */
  readonly alias: lambda.Alias;
  /** The function's execution role. */
  readonly role: iam.Role;
  /** The function's log group. */
  readonly logGroup: logs.LogGroup;
  /** The recurring schedule. */
  readonly schedule: scheduler.Schedule;
  /** The role EventBridge Scheduler assumes to invoke the function. */
  readonly schedulerRole: iam.Role;
  /** Receives schedule deliveries and asynchronous runs that failed after their retries. */
  readonly deadLetterQueue: sqs.Queue;
  /** Where the discovery alarms notify; subscribe on-call to it. */
  readonly alarmTopic: sns.ITopic;
  /** The key that encrypts {@link alarmTopic}, when the construct made the topic. */
  readonly alarmKey: kms.Key | undefined;
  /** The discovery function failed within the last 6 hours (one scheduled run). */
  readonly errorsAlarm: cloudwatch.Alarm;
  /** A run waits in {@link deadLetterQueue}: it was never delivered, or failed after its retries. */
  readonly deadLetterAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: DiscoveryProps) {
    super(scope, id);

    // Validate everything before creating a child, so a bad value fails fast and bundling never starts.
    const pipeline = pipelineScope(this, 'Discovery', props, { defaultIamPathPrefix: '/' });
    const { secretNamePrefix, secretsArn } = pipeline;
    // Declared users, roles and secrets are looked up directly wherever they are, so their
    // metadata is readable account-wide; secret values stay readable under the prefix only.
    const allUsersArn = iamUsersArn(this, '/');
    const allRolesArn = iamRolesArn(this, '/');
    const allSecretsArn = prefixedSecretsArn(this, '');
    const staleAfterDays = validateStaleAfterDays(props.staleAfterDays ?? 90);
    const scheduleExpression = validateRecurringSchedule(
      'Discovery',
      props.schedule ?? this.node.tryGetContext(DISCOVERY_SCHEDULE_CONTEXT) ?? DEFAULT_DISCOVERY_SCHEDULE,
      ['rate(6 hours)', 'cron(0 */6 * * ? *)'],
    );

    const { stateStore, reportBucket, secrets } = props;

    this.deadLetterQueue = deadLetterQueue(this);

    // The function's parts sit directly under this construct (their ids predate keywardenFunction).
    const { table, ...settings } = pipeline.environment;
    ({
      function: this.function,
      role: this.role,
      logGroup: this.logGroup,
    } = keywardenFunctionIn(this, {
      handlerFile: 'discovery.ts',
      description:
        'keywarden discovery: finds CI/CD credentials in AWS and Vault and reports those not in the inventory',
      roleDescription: 'keywarden discovery: reads credential metadata, writes state and discovery reports',
      memorySize: 512,
      timeout: Duration.minutes(5),
      logRetention: pipeline.logRetention,
      // Runs never overlap: two concurrent discoveries would race on the same state items.
      reservedConcurrentExecutions: 1,
      deadLetterQueue: this.deadLetterQueue,
      environment: {
        table,
        reportBucket: reportBucket.bucket.bucketName,
        reportPrefix: DISCOVERY_REPORT_PREFIX,
        ...settings,
        staleAfterDays: String(staleAfterDays),
      },
      powertoolsServiceName: 'keywarden-discovery',
    }));

    // These List APIs have no resource-level permissions: `*` is the only valid resource.
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListCredentialHolders',
        actions: ['iam:ListUsers', 'iam:ListRoles', 'secretsmanager:ListSecrets'],
        resources: ['*'],
      }),
    );

    // Metadata only (no key secret is ever returned by IAM): the prefix's users and every
    // declared user, wherever its path (GetUser for those the listing did not find).
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAccessKeyMetadata',
        actions: ['iam:GetUser', 'iam:ListAccessKeys', 'iam:GetAccessKeyLastUsed'],
        resources: [allUsersArn],
      }),
    );

    // ListRoles omits RoleLastUsed; only GetRole returns it. Declared and break-glass roles
    // may sit at any path.
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadRoleLastUsed',
        actions: ['iam:GetRole'],
        resources: [allRolesArn],
      }),
    );

    // Metadata only (name, dates, rotation settings, never a value): declared secrets may be
    // named outside the prefix, and must not be reported missing because they are.
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeDeclaredSecrets',
        actions: ['secretsmanager:DescribeSecret'],
        resources: [allSecretsArn],
      }),
    );

    // Values are read only to compute HMAC fingerprints; the function never stores or logs them.
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'FingerprintPrefixedSecrets',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [secretsArn],
      }),
    );
    // Decrypt only: discovery reads, it never writes a secret.
    const secretKeys = grantPrefixedSecretKeys(this, this.role, pipeline, {
      sid: 'DecryptPrefixedSecrets',
      actions: ['kms:Decrypt'],
    });

    secrets.grantRead(this.role);

    stateStore.grantReadWriteData(this.role);
    reportBucket.grantWriteReports(this.role, DISCOVERY_REPORT_PREFIX);

    ({
      alias: this.alias,
      role: this.schedulerRole,
      schedule: this.schedule,
    } = liveSchedule(this, this.function, {
      idPrefix: '',
      roleDescription:
        'keywarden discovery: lets EventBridge Scheduler invoke the discovery function, nothing else',
      description: 'keywarden: run credential discovery',
      expression: scheduleExpression,
      deadLetterQueue: this.deadLetterQueue,
      // A missed run is superseded by the next one; do not pile up stale deliveries.
      maxEventAge: Duration.hours(1),
      retryAttempts: 3,
    }));

    NagSuppressions.addResourceSuppressions(
      this.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'iam:ListUsers, iam:ListRoles and secretsmanager:ListSecrets support no resource-level permissions, so "*" is the only valid resource. They return metadata only, and discovery must see every user, role and secret to report those missing from the inventory.',
          appliesTo: ['Resource::*'],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Declared IAM users may sit at any path and are named in the inventory, not at deploy time. Only read-only metadata is allowed (GetUser, ListAccessKeys, GetAccessKeyLastUsed: IAM never returns a key secret through them), so a declared user outside the IAM path prefix is looked up instead of reported missing.',
          appliesTo: [iam5ResourceFinding(this, allUsersArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Declared and break-glass IAM roles may sit at any path and are named in the inventory, not at deploy time. iam:GetRole is read-only (the only API that returns RoleLastUsed) and grants no way to assume or change a role.',
          appliesTo: [iam5ResourceFinding(this, allRolesArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Declared secrets may be named outside the prefix and are named in the inventory, not at deploy time. secretsmanager:DescribeSecret returns metadata only (name, dates, rotation settings, version stages), never a value; values stay readable under the prefix only.',
          appliesTo: [iam5ResourceFinding(this, allSecretsArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason: `Pipeline secret names are not known at deploy time. GetSecretValue is limited to secrets named '${secretNamePrefix}*' in this account and region; values are read only to compute HMAC fingerprints and are never stored or logged.`,
          appliesTo: [iam5ResourceFinding(this, secretsArn)],
        },
        secretKeys,
        {
          id: 'AwsSolutions-IAM5',
          reason: `Report object keys are generated per run. s3:PutObject is limited to the '${DISCOVERY_REPORT_PREFIX}' prefix of keywarden's own report bucket; no read, no delete, no other prefix.`,
          appliesTo: [
            iam5ResourceFinding(this, reportBucket.bucket.arnForObjects(`${DISCOVERY_REPORT_PREFIX}*`)),
          ],
        },
      ],
      true,
    );

    // Alarms: a discovery that does not run leaves credentials outside the inventory unreported.
    const alarmNamePrefix = `${Stack.of(this).stackName}-discovery-`;
    if (props.alarmTopic) {
      this.alarmTopic = props.alarmTopic;
      this.alarmKey = undefined;
    } else {
      const { key, topic } = encryptedAlarmTopic(this, { what: 'discovery', alarmNamePrefix });
      this.alarmTopic = topic;
      this.alarmKey = key;
    }
    ({ errorsAlarm: this.errorsAlarm, deadLetterAlarm: this.deadLetterAlarm } = functionAlarms(this, {
      fn: this.function,
      queue: this.deadLetterQueue,
      errorsName: `${alarmNamePrefix}errors`,
      deadLetterName: `${alarmNamePrefix}undelivered`,
      errorsPeriod: Duration.hours(6),
      errorsText:
        "keywarden: the discovery function failed, so credentials outside the inventory may go unreported until a run succeeds. Read the function's logs for the error (a permission, Vault unreachable, a throttled API); the next scheduled run tries again.",
      deadLetterText:
        'keywarden: a discovery run waits in its dead-letter queue (the schedule could not deliver it, or it failed after its retries). Read the message for the error; the next scheduled run supersedes it, so purge it once the cause is fixed.',
      topic: this.alarmTopic,
    }));
  }
}

function validateStaleAfterDays(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 3650) {
    throw new InfraConfigError(
      `Discovery: staleAfterDays must be a whole number of days from 1 to 3650; received ${String(value)}.`,
    );
  }
  return value;
}
