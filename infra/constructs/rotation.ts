import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { checkRateLimits } from '../../functions/handlers/env.ts';
import { AT_LEAST_ONCE, encryptedAlarmTopic, notifyOnAlarmAndOk } from '../alarm-topic.ts';
import { InfraConfigError } from '../errors.ts';
import {
  grantPrefixedSecretKeys,
  type PipelineCredentialsProps,
  pipelineScope,
  SECRET_VERSION_ACTIONS,
} from '../function-props.ts';
import { type KeywardenFunction, keywardenFunction } from '../lambda-function.ts';
import { deadLetterQueue, liveSchedule } from '../live-schedule.ts';
import { iam5ResourceFinding } from '../nag.ts';
import { validateRecurringSchedule } from '../settings.ts';
import { DEFAULT_REVOCATION_RATE_LIMITS, type RevocationRateLimits } from './revocation.ts';
import type { ServiceSecrets } from './service-secrets.ts';

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
export interface RotationProps extends PipelineCredentialsProps {
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
   * The account-wide budget per provider service the scheduled rotation paces its rotations'
   * starts at (functions/adapters/rate-limits.ts, as a campaign paces its revocations): a fleet
   * rotated at once takes no more of IAM's account-wide mutating quota, or of Secrets Manager's
   * shared writes, than the budget allows. Give the Revocation construct's `rateLimits`.
   *
   * @default {@link DEFAULT_REVOCATION_RATE_LIMITS}
   */
  readonly rateLimits?: RevocationRateLimits | undefined;
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
    const pipeline = pipelineScope(this, 'Rotation', props, {
      defaultIamPathPrefix: '/ci/',
      // Rotation creates access keys: at the root path it could mint keys for every IAM user,
      // humans and admins included. Pipeline users must live under a path of their own.
      rootPathRefusal:
        "Rotation: iamPathPrefix '/' would let keywarden create access keys for every IAM user, humans and admins included; put pipeline users under a dedicated path such as '/ci/' and set keywarden:iamPathPrefix to it.",
    });
    const { iamPathPrefix, secretNamePrefix, logRetention, usersArn, secretsArn } = pipeline;
    validateNoOverlap(secretNamePrefix, props.secrets);
    const concurrency = validateConcurrency(props.concurrency ?? DEFAULT_ROTATION_CONCURRENCY);
    const budget = props.rateLimits ?? DEFAULT_REVOCATION_RATE_LIMITS;
    const rateLimits = { iam: budget.iam, 'secrets-manager': budget.secretsManager, vault: budget.vault };
    try {
      checkRateLimits(rateLimits);
    } catch (error) {
      throw new InfraConfigError(`Rotation: ${(error as Error).message}`, { cause: error });
    }
    const scheduleExpression = validateRecurringSchedule(
      'Rotation',
      props.schedule ?? this.node.tryGetContext(ROTATION_SCHEDULE_CONTEXT) ?? DEFAULT_ROTATION_SCHEDULE,
      ['rate(1 hour)', 'cron(0 * * * ? *)'],
    );

    const stack = Stack.of(this);
    const { stateStore, secrets } = props;
    const sharedEnvironment = pipeline.environment;

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
          actions: [...SECRET_VERSION_ACTIONS],
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
      const secretKeys = grantPrefixedSecretKeys(this, role, pipeline, {
        sid: 'UsePrefixedSecretKeys',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      });
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
          secretKeys,
        ],
        true,
      );
    };

    // Scheduled rotation.

    this.deadLetterQueue = deadLetterQueue(this);

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
      environment: {
        ...sharedEnvironment,
        rotationConcurrency: String(concurrency),
        rateLimits,
      },
      metricsNamespace: METRICS_NAMESPACE,
      powertoolsServiceName: ROTATION_SERVICE_NAME,
    });
    grantRotation(this.scheduled.role, { createSecrets: true });

    ({
      alias: this.alias,
      role: this.schedulerRole,
      schedule: this.schedule,
    } = liveSchedule(this, this.scheduled.function, {
      idPrefix: '',
      roleDescription:
        'keywarden rotation: lets EventBridge Scheduler invoke the scheduled rotation, nothing else',
      description: 'keywarden: rotate credentials that are due, retire expired ones',
      expression: scheduleExpression,
      deadLetterQueue: this.deadLetterQueue,
      // A missed run is superseded by the next one; do not pile up stale deliveries.
      maxEventAge: Duration.hours(1),
      retryAttempts: 3,
    }));

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
      ...AT_LEAST_ONCE,
    });

    this.scheduledErrorsAlarm = new cloudwatch.Alarm(this, 'ScheduledErrorsAlarm', {
      alarmName: `${alarmNamePrefix}rotation-errors`,
      alarmDescription:
        'keywarden: the scheduled rotation function failed (error, timeout or crash) in the last hour, so due credentials may not have been rotated or retired. Read its logs.',
      metric: this.scheduled.function.metricErrors({ statistic: cloudwatch.Stats.SUM, period: hour }),
      ...AT_LEAST_ONCE,
    });

    this.secretRotationErrorsAlarm = new cloudwatch.Alarm(this, 'SecretRotationErrorsAlarm', {
      alarmName: `${alarmNamePrefix}secret-rotation-errors`,
      alarmDescription:
        'keywarden: a Secrets Manager rotation step failed in the last hour. The secret keeps its AWSCURRENT value; read the secret rotation function logs, then retry with aws secretsmanager rotate-secret.',
      metric: this.secretRotation.function.metricErrors({ statistic: cloudwatch.Stats.SUM, period: hour }),
      ...AT_LEAST_ONCE,
    });

    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetterAlarm', {
      alarmName: `${alarmNamePrefix}rotation-undelivered`,
      alarmDescription:
        'keywarden: a scheduled rotation run could not be delivered or failed after its retries (rotation dead-letter queue not empty). Inspect the messages, fix the cause, then purge the queue.',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(5),
      }),
      ...AT_LEAST_ONCE,
    });

    notifyOnAlarmAndOk(this.alarmTopic, [
      this.rotationFailedAlarm,
      this.scheduledErrorsAlarm,
      this.secretRotationErrorsAlarm,
      this.deadLetterAlarm,
    ]);
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
