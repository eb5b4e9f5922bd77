import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { encryptedAlarmTopic } from '../alarm-topic.ts';
import { accountKeysArn, iamUsersArn, prefixedSecretsArn } from '../arns.ts';
import { InfraConfigError } from '../errors.ts';
import {
  DEFAULT_LOG_RETENTION,
  type KeywardenFunction,
  keywardenFunction,
  serviceEnvironment,
} from '../lambda-function.ts';
import { iam5ResourceFinding } from '../nag.ts';
import { schedulerPrincipal } from '../principals.ts';
import {
  validateIamPathPrefix,
  validateRecurringSchedule,
  validateSecretNamePrefix,
  validateVaultAddr,
} from '../settings.ts';
import type { ServiceSecrets } from './service-secrets.ts';
import type { StateStore } from './state-store.ts';

/** cdk context key holding the default rotation schedule expression (see cdk.json). */
export const ROTATION_SCHEDULE_CONTEXT = 'keywarden:rotationSchedule';

/** Used when neither props nor cdk context name a schedule. */
export const DEFAULT_ROTATION_SCHEDULE = 'rate(1 hour)';

/** How many identities one scheduled run rotates at once, unless props say otherwise. */
export const DEFAULT_ROTATION_CONCURRENCY = 8;

/**
 * Powertools service names of the two functions. Powertools adds `service` as the default
 * dimension of every EMF metric, so the failure alarm selects the scheduled function's
 * metrics by this value.
 */
export const ROTATION_SERVICE_NAME = 'keywarden-rotation';
export const SECRET_ROTATION_SERVICE_NAME = 'keywarden-secret-rotation';

/** CloudWatch namespace of keywarden's Powertools metrics. */
export const METRICS_NAMESPACE = 'keywarden';

/** Properties of {@link Rotation}. */
export interface RotationProps {
  /** Table holding the inventory, credential versions and per-identity locks. */
  readonly stateStore: StateStore;
  /** The Vault token and the fingerprint HMAC key the functions read. */
  readonly secrets: ServiceSecrets;
  /**
   * Vault/OpenBao address (`https://…`). Empty or absent: Vault identities cannot be rotated.
   *
   * @default ''
   */
  readonly vaultAddr?: string | undefined;
  /**
   * IAM path of the users whose access keys the functions may create, deactivate and delete;
   * starts and ends with `/`. Prefer a dedicated path such as `/ci/`: with `/`, the functions
   * may manage the access keys of every IAM user in the account.
   *
   * @default '/ci/' (the root path is refused)
   */
  readonly iamPathPrefix?: string | undefined;
  /**
   * Name prefix of the Secrets Manager secrets the functions may rotate, write and create.
   * Must not be empty and must not overlap keywarden's own secrets (`ServiceSecrets.namePrefix`).
   *
   * @default 'ci/'
   */
  readonly secretNamePrefix?: string | undefined;
  /**
   * EventBridge Scheduler `rate(…)` or `cron(…)` expression (UTC) of the scheduled rotation.
   *
   * @default the `keywarden:rotationSchedule` context value, else `rate(1 hour)`
   */
  readonly schedule?: string | undefined;
  /**
   * How many identities one scheduled run rotates at once (1 to 50). IAM and Secrets Manager
   * throttle per account, so more is not faster past a point.
   *
   * @default 8
   */
  readonly concurrency?: number | undefined;
  /**
   * How long the functions' logs are kept.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays | undefined;
}

/** A rotation function, its role and its log group. */
export type RotationFunction = KeywardenFunction;

/**
 * Credential rotation, two ways in:
 *
 * - **scheduled** — EventBridge Scheduler runs `functions/handlers/scheduled-rotation.ts`
 *   (through its `live` alias) to rotate every identity due by `rotateEvery` or over `maxAge`,
 *   retire previous versions whose grace ended and enforce `maxAge`. Runs never overlap.
 * - **secret rotation** — `functions/handlers/secret-rotation.ts` is a Secrets Manager rotation
 *   function (`aws secretsmanager rotate-secret --rotation-lambda-arn <SecretRotationFunctionArn>`),
 *   which only Secrets Manager, for a secret under the name prefix in this account, may invoke.
 *
 * Each function has its own least-privilege role: access keys of IAM users under the path
 * prefix, secrets under the name prefix (and their KMS keys only through Secrets Manager), the
 * state table and keywarden's two service secrets. Failed rotations, function errors and
 * undeliverable schedule runs raise alarms on an encrypted SNS topic ({@link alarmTopic}).
 */
export class Rotation extends Construct {
  /** The scheduled rotation function. */
  readonly scheduled: RotationFunction;
  /** The `live` alias the schedule invokes (the published version of the current code). */
  readonly alias: lambda.Alias;
  /** The recurring schedule. */
  readonly schedule: scheduler.Schedule;
  /** The role EventBridge Scheduler assumes to invoke the scheduled function. */
  readonly schedulerRole: iam.Role;
  /** Receives schedule deliveries and asynchronous scheduled runs that failed after their retries. */
  readonly deadLetterQueue: sqs.Queue;
  /** The Secrets Manager rotation function. */
  readonly secretRotation: RotationFunction;
  /** Where the rotation alarms notify; subscribe on-call to it. */
  readonly alarmTopic: sns.Topic;
  /** The customer-managed key that encrypts {@link alarmTopic}. */
  readonly alarmKey: kms.Key;
  /** At least one identity failed to rotate within an hour (metric `keywarden/rotation_failed`). */
  readonly rotationFailedAlarm: cloudwatch.Alarm;
  /** The scheduled function failed (error, timeout, crash) within an hour. */
  readonly scheduledErrorsAlarm: cloudwatch.Alarm;
  /** The Secrets Manager rotation function failed within an hour. */
  readonly secretRotationErrorsAlarm: cloudwatch.Alarm;
  /** A scheduled run could not be delivered or failed after its retries (dead-letter queue not empty). */
  readonly deadLetterAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: RotationProps) {
    super(scope, id);

    // Validate everything before creating a child, so a bad value fails fast and bundling never starts.
    const vaultAddr = validateVaultAddr('Rotation', props.vaultAddr);
    // Rotation creates access keys: at the root path it could mint keys for every IAM user,
    // humans and admins included. Pipeline users must live under a path of their own.
    const iamPathPrefix = validateIamPathPrefix('Rotation', props.iamPathPrefix ?? '/ci/');
    if (iamPathPrefix === '/') {
      throw new InfraConfigError(
        "Rotation: iamPathPrefix '/' would let keywarden create access keys for every IAM user, humans and admins included; put pipeline users under a dedicated path such as '/ci/' and set keywarden:iamPathPrefix to it.",
      );
    }
    const secretNamePrefix = validateSecretNamePrefix('Rotation', props.secretNamePrefix ?? 'ci/');
    validateNoOverlap(secretNamePrefix, props.secrets);
    const concurrency = validateConcurrency(props.concurrency ?? DEFAULT_ROTATION_CONCURRENCY);
    const scheduleExpression = validateRecurringSchedule(
      'Rotation',
      props.schedule ?? this.node.tryGetContext(ROTATION_SCHEDULE_CONTEXT) ?? DEFAULT_ROTATION_SCHEDULE,
      ['rate(1 hour)', 'cron(0 * * * ? *)'],
    );

    const stack = Stack.of(this);
    const { stateStore, secrets } = props;
    const logRetention = props.logRetention ?? DEFAULT_LOG_RETENTION;
    const usersArn = iamUsersArn(this, iamPathPrefix);
    const secretsArn = prefixedSecretsArn(this, secretNamePrefix);
    const keysArn = accountKeysArn(this);

    const { table, ...service } = serviceEnvironment({ stateStore, secrets, vaultAddr });
    const sharedEnvironment = { table, iamPathPrefix, secretNamePrefix, ...service };

    /** What both functions may do; `createSecrets` only where a delivery target may not exist yet. */
    const grantRotation = (role: iam.Role, options: { createSecrets: boolean }): void => {
      // Verifying a new key calls STS GetCallerIdentity signed with that key, not with this role,
      // and GetCallerIdentity needs no permission anyway: no sts:* statement is needed.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'RotateAccessKeysUnderPath',
          actions: [
            'iam:CreateAccessKey',
            'iam:UpdateAccessKey',
            'iam:DeleteAccessKey',
            'iam:ListAccessKeys',
            'iam:GetAccessKeyLastUsed',
            // The verify step compares the new key's caller ARN with the user's ARN (path included).
            'iam:GetUser',
          ],
          resources: [usersArn],
        }),
      );
      // The four-step protocol: read current, put pending, move stages, list versions to retire.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'RotatePrefixedSecrets',
          actions: [
            'secretsmanager:DescribeSecret',
            'secretsmanager:GetSecretValue',
            'secretsmanager:PutSecretValue',
            'secretsmanager:UpdateSecretVersionStage',
            'secretsmanager:ListSecretVersionIds',
          ],
          resources: [secretsArn],
        }),
      );
      if (options.createSecrets) {
        // A delivery target named in the inventory may not exist yet; it can only be created
        // under the prefix, with no replica regions and no resource policy (those need other actions).
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            sid: 'CreatePrefixedSecrets',
            actions: ['secretsmanager:CreateSecret'],
            resources: [secretsArn],
          }),
        );
      }
      // Secrets under the prefix may use customer-managed keys unknown at deploy time. The keys
      // are usable only by Secrets Manager and only for a secret under the prefix: Secrets
      // Manager puts the secret's ARN in the encryption context of every data key.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'UsePrefixedSecretKeys',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [keysArn],
          conditions: {
            StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.${stack.urlSuffix}` },
            StringLike: { 'kms:EncryptionContext:SecretARN': secretsArn },
          },
        }),
      );
      secrets.grantRead(role);
      stateStore.grantReadWriteData(role);
      // Powertools metrics are EMF log lines: no cloudwatch:PutMetricData.

      NagSuppressions.addResourceSuppressions(
        role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason: `IAM user names come from the inventory, not known at deploy time. Access-key rotation (create, deactivate, delete, list, last used, and GetUser to verify a new key) is allowed only for users under the configured IAM path '${iamPathPrefix}', in this account.`,
            appliesTo: [iam5ResourceFinding(this, usersArn)],
          },
          {
            id: 'AwsSolutions-IAM5',
            reason: `Pipeline secret names come from the inventory, not known at deploy time. Rotation actions${options.createSecrets ? ' and CreateSecret' : ''} are limited to secrets named '${secretNamePrefix}*' in this account and region; keywarden's own secrets lie outside that prefix (checked at synth). Values are never logged or stored.`,
            appliesTo: [iam5ResourceFinding(this, secretsArn)],
          },
          {
            id: 'AwsSolutions-IAM5',
            reason: `Keys protecting the '${secretNamePrefix}*' secrets are not known at deploy time. kms:Decrypt and kms:GenerateDataKey are limited to this account's keys, only through Secrets Manager (kms:ViaService) and only for secrets under the prefix (kms:EncryptionContext:SecretARN).`,
            appliesTo: [iam5ResourceFinding(this, keysArn)],
          },
        ],
        true,
      );
    };

    // Scheduled rotation.

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    this.scheduled = keywardenFunction(this, 'Scheduled', {
      handlerFile: 'scheduled-rotation.ts',
      description:
        'keywarden scheduled rotation: rotates identities that are due, retires old versions, enforces max age',
      roleDescription:
        'keywarden scheduled rotation: rotates IAM access keys under its path and secrets under its prefix',
      memorySize: 1024,
      timeout: Duration.minutes(15),
      logRetention,
      // Runs never overlap (the handler also locks each identity): two runs would race to
      // rotate the same identity, and IAM allows only two keys per user.
      reservedConcurrentExecutions: 1,
      deadLetterQueue: this.deadLetterQueue,
      environment: { ...sharedEnvironment, rotationConcurrency: String(concurrency) },
      metricsNamespace: METRICS_NAMESPACE,
      powertoolsServiceName: ROTATION_SERVICE_NAME,
    });
    grantRotation(this.scheduled.role, { createSecrets: true });

    // The cast only bridges aws-cdk-lib's declarations, which are not written for `exactOptionalPropertyTypes`.
    this.alias = new lambda.Alias(this, 'LiveAlias', {
      aliasName: 'live',
      version: this.scheduled.function.currentVersion as lambda.IVersion,
    });

    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description:
        'keywarden rotation: lets EventBridge Scheduler invoke the scheduled rotation, nothing else',
      // Only schedules of this account's default group may assume it (confused-deputy guard).
      assumedBy: schedulerPrincipal(this),
    });

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'keywarden: rotate credentials that are due, retire expired ones',
      schedule: scheduler.ScheduleExpression.expression(scheduleExpression),
      // Invoking the alias grants lambda:InvokeFunction on the alias ARN only (no `:*` qualifier wildcard).
      target: new targets.LambdaInvoke(this.alias as lambda.IFunction, {
        role: this.schedulerRole,
        deadLetterQueue: this.deadLetterQueue,
        // A missed run is superseded by the next one; do not pile up stale deliveries.
        maxEventAge: Duration.hours(1),
        retryAttempts: 3,
      }),
    });

    // Secrets Manager rotation function.

    this.secretRotation = keywardenFunction(this, 'SecretRotation', {
      handlerFile: 'secret-rotation.ts',
      description:
        'keywarden secret rotation: the Secrets Manager rotation function (createSecret, setSecret, testSecret, finishSecret)',
      roleDescription:
        'keywarden secret rotation: rotates secrets under its prefix and the IAM access keys they carry',
      memorySize: 512,
      timeout: Duration.minutes(5),
      logRetention,
      environment: sharedEnvironment,
      metricsNamespace: METRICS_NAMESPACE,
      powertoolsServiceName: SECRET_ROTATION_SERVICE_NAME,
    });
    // The secret being rotated exists by definition: no CreateSecret.
    grantRotation(this.secretRotation.role, { createSecrets: false });

    // Only Secrets Manager, rotating a secret of this account under the prefix, may invoke it
    // (confused-deputy guard; Lambda compares SourceArn with StringLike, so the prefix pattern holds).
    this.secretRotation.function.addPermission('InvokeBySecretsManager', {
      principal: new iam.ServicePrincipal('secretsmanager.amazonaws.com'),
      action: 'lambda:InvokeFunction',
      sourceAccount: stack.account,
      sourceArn: secretsArn,
    });

    // Alarms.

    const alarmNamePrefix = `${stack.stackName}-`;
    ({ key: this.alarmKey, topic: this.alarmTopic } = encryptedAlarmTopic(this, {
      what: 'rotation',
      alarmNamePrefix,
    }));

    const hour = Duration.hours(1);
    const atLeastOnce = {
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // No data means nothing failed (the metric is only emitted by runs, errors only by failures).
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    };

    this.rotationFailedAlarm = new cloudwatch.Alarm(this, 'RotationFailedAlarm', {
      alarmName: `${alarmNamePrefix}rotation-failed`,
      alarmDescription: `keywarden: at least one identity failed to rotate in the last hour. Its working credential was kept; read the '${ROTATION_SERVICE_NAME}' function's logs for the identity and error, and fix it before the credential reaches its maxAge.`,
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: 'rotation_failed',
        dimensionsMap: { service: ROTATION_SERVICE_NAME },
        statistic: cloudwatch.Stats.SUM,
        period: hour,
      }),
      ...atLeastOnce,
    });

    this.scheduledErrorsAlarm = new cloudwatch.Alarm(this, 'ScheduledErrorsAlarm', {
      alarmName: `${alarmNamePrefix}rotation-errors`,
      alarmDescription:
        'keywarden: the scheduled rotation function failed (error, timeout or crash) in the last hour, so due credentials may not have been rotated or retired. Read its logs.',
      metric: this.scheduled.function.metricErrors({ statistic: cloudwatch.Stats.SUM, period: hour }),
      ...atLeastOnce,
    });

    this.secretRotationErrorsAlarm = new cloudwatch.Alarm(this, 'SecretRotationErrorsAlarm', {
      alarmName: `${alarmNamePrefix}secret-rotation-errors`,
      alarmDescription:
        'keywarden: a Secrets Manager rotation step failed in the last hour. The secret keeps its AWSCURRENT value; read the secret rotation function logs, then retry with aws secretsmanager rotate-secret.',
      metric: this.secretRotation.function.metricErrors({ statistic: cloudwatch.Stats.SUM, period: hour }),
      ...atLeastOnce,
    });

    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetterAlarm', {
      alarmName: `${alarmNamePrefix}rotation-undelivered`,
      alarmDescription:
        'keywarden: a scheduled rotation run could not be delivered or failed after its retries (rotation dead-letter queue not empty). Inspect the messages, fix the cause, then purge the queue.',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(5),
      }),
      ...atLeastOnce,
    });

    const notify = new cloudwatchActions.SnsAction(this.alarmTopic);
    for (const alarm of [
      this.rotationFailedAlarm,
      this.scheduledErrorsAlarm,
      this.secretRotationErrorsAlarm,
      this.deadLetterAlarm,
    ]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}

/** Rotation writes secrets under the prefix: keywarden's own secrets must not be among them. */
function validateNoOverlap(secretNamePrefix: string, secrets: ServiceSecrets): void {
  const own = secrets.namePrefix;
  if (Token.isUnresolved(own)) return;
  if (own.startsWith(secretNamePrefix) || secretNamePrefix.startsWith(own)) {
    throw new InfraConfigError(
      `Rotation: secretNamePrefix must not overlap the prefix of keywarden's own secrets ('${own}'), or rotation could overwrite the Vault token or the fingerprint key; received '${secretNamePrefix}'. Use a pipeline prefix such as 'ci/'.`,
    );
  }
}

function validateConcurrency(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 50) {
    throw new InfraConfigError(
      `Rotation: concurrency must be a whole number from 1 to 50; received ${String(value)}.`,
    );
  }
  return value;
}
