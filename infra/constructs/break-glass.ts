import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { AT_LEAST_ONCE, encryptedAlarmTopic, notifyOnAlarmAndOk } from '../alarm-topic.ts';
import { iamRolesArn } from '../arns.ts';
import { InfraConfigError } from '../errors.ts';
import type { KeywardenFunctionsProps } from '../function-props.ts';
import {
  DEFAULT_LOG_RETENTION,
  type KeywardenFunction,
  keywardenFunction,
  serviceEnvironment,
} from '../lambda-function.ts';
import { liveSchedule } from '../live-schedule.ts';
import { iam5ResourceFinding } from '../nag.ts';
import { schedulerPrincipal } from '../principals.ts';
import { validateBreakglassRolePath, validateRecurringSchedule, validateVaultAddr } from '../settings.ts';

/** cdk context key that may hold the break-glass role path when props do not. */
export const BREAKGLASS_ROLE_PATH_CONTEXT = 'keywarden:breakglassRolePath';

/** cdk context key that may hold the sweeper schedule expression when props do not. */
export const SWEEPER_SCHEDULE_CONTEXT = 'keywarden:sweeperSchedule';

/** IAM path of the roles break-glass grants may assume, unless props or context say otherwise. */
export const DEFAULT_BREAKGLASS_ROLE_PATH = '/breakglass/';

/** How often the sweeper ends overdue grants, unless props or context say otherwise. */
export const DEFAULT_SWEEPER_SCHEDULE = 'rate(5 minutes)';

/** The schedule group holding the one-time expiry schedule of each grant. */
export const DEFAULT_GRANT_SCHEDULE_GROUP = 'keywarden-grants';

/** Properties of {@link BreakGlass}. */
export interface BreakGlassProps extends KeywardenFunctionsProps {
  /**
   * IAM path of the roles break-glass grants may assume and end (a deny on the grant's
   * SourceIdentity, put by the role-deny function); starts and ends with `/`. Those roles must trust the API
   * grants function's role (stack output `ApiFunctionRoleArn`).
   *
   * @default the `keywarden:breakglassRolePath` context value, else '/breakglass/' (the root path is refused)
   */
  readonly breakglassRolePath?: string | undefined;
  /**
   * EventBridge Scheduler `rate(…)` or `cron(…)` expression (UTC) of the sweeper, the third
   * guarantee that a grant ends: it ends every active grant past its end.
   *
   * @default the `keywarden:sweeperSchedule` context value, else `rate(5 minutes)`
   */
  readonly sweeperSchedule?: string | undefined;
  /**
   * Name of the schedule group the API creates each grant's one-time expiry schedule in. Only
   * schedules of this group may be created or deleted by keywarden's functions, so it must not be
   * `default` (where the recurring rotation, discovery and sweeper schedules live).
   *
   * @default 'keywarden-grants'
   */
  readonly scheduleGroupName?: string | undefined;
}

/**
 * The parts of break-glass that end grants on time, besides the credential's own TTL:
 *
 * - **grant expiry** — `functions/handlers/grant-expiry.ts`, invoked with `{ "grantId": "…" }`
 *   by the one-time EventBridge Scheduler schedule the API creates in {@link scheduleGroup} when
 *   a grant becomes active; Scheduler assumes {@link schedulerRole}, which may invoke this
 *   function and nothing else.
 * - **sweeper** — `functions/handlers/grant-sweeper.ts`, every few minutes (a recurring schedule
 *   in the `default` group, outside the grant group, so nothing that manages grant schedules can
 *   delete it): ends every active grant past its end.
 *
 * Both may delete schedules of the grant group and use the state table, nothing more in AWS: the
 * deny-this-SourceIdentity policy on roles under {@link breakglassRolePath} is put by the
 * role-deny function (infra/constructs/role-deny.ts), which the stack lets them invoke. Their errors raise alarms on an encrypted SNS
 * topic ({@link alarmTopic}). The API that starts grants is the {@link Api} construct.
 */
export class BreakGlass extends Construct {
  /** IAM path of the roles break-glass may assume, e.g. `/breakglass/`. */
  readonly breakglassRolePath: string;
  /** ARN pattern of every role under {@link breakglassRolePath} in this account. */
  readonly breakglassRolesArn: string;
  /** The grant schedule group's name. */
  readonly scheduleGroupName: string;
  /** ARN pattern of every schedule in the grant group (`…:schedule/<group>/*`). */
  readonly grantSchedulesArn: string;
  /** The group of one-time grant expiry schedules. */
  readonly scheduleGroup: scheduler.ScheduleGroup;
  /** The role grant expiry schedules run as: may invoke the grant-expiry function only. */
  readonly schedulerRole: iam.Role;
  /** Ends one grant; invoked by its one-time schedule. */
  readonly expiry: KeywardenFunction;
  /** Ends every overdue grant; invoked by {@link sweeperSchedule}. */
  readonly sweeper: KeywardenFunction;
  /** The `live` alias the sweeper schedule invokes. */
  readonly sweeperAlias: lambda.Alias;
  /** The recurring sweeper schedule. */
  readonly sweeperSchedule: scheduler.Schedule;
  /** The role the sweeper schedule runs as: may invoke the sweeper alias only. */
  readonly sweeperSchedulerRole: iam.Role;
  /** Where the break-glass alarms notify; subscribe on-call to it. */
  readonly alarmTopic: sns.Topic;
  /** The customer-managed key that encrypts {@link alarmTopic}. */
  readonly alarmKey: kms.Key;
  /** The grant-expiry function failed within the hour. */
  readonly expiryErrorsAlarm: cloudwatch.Alarm;
  /** The sweeper failed within the hour. */
  readonly sweeperErrorsAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: BreakGlassProps) {
    super(scope, id);

    // Validate everything before creating a child, so a bad value fails fast and bundling never starts.
    const vaultAddr = validateVaultAddr('BreakGlass', props.vaultAddr);
    this.breakglassRolePath = validateBreakglassRolePath(
      'BreakGlass',
      props.breakglassRolePath ??
        stringContext(this, BREAKGLASS_ROLE_PATH_CONTEXT) ??
        DEFAULT_BREAKGLASS_ROLE_PATH,
    );
    const sweeperExpression = validateRecurringSchedule(
      'BreakGlass',
      props.sweeperSchedule ?? this.node.tryGetContext(SWEEPER_SCHEDULE_CONTEXT) ?? DEFAULT_SWEEPER_SCHEDULE,
      ['rate(5 minutes)', 'cron(0/5 * * * ? *)'],
    );
    this.scheduleGroupName = validateScheduleGroupName(
      props.scheduleGroupName ?? DEFAULT_GRANT_SCHEDULE_GROUP,
    );

    const stack = Stack.of(this);
    const { stateStore, secrets } = props;
    const logRetention = props.logRetention ?? DEFAULT_LOG_RETENTION;
    this.breakglassRolesArn = iamRolesArn(this, this.breakglassRolePath);
    this.grantSchedulesArn = stack.formatArn({
      service: 'scheduler',
      resource: 'schedule',
      resourceName: `${this.scheduleGroupName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'ScheduleGroup', {
      scheduleGroupName: this.scheduleGroupName,
      // Leftover one-time schedules of ended grants are harmless; the grants are in the table.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const environment = {
      ...serviceEnvironment({ stateStore, secrets, vaultAddr }),
      grantScheduleGroup: this.scheduleGroupName,
    };

    /**
     * What ending a grant takes: its schedule gone. The deny on the grant's SourceIdentity goes
     * through the role-deny function (infra/constructs/role-deny.ts), which the stack lets these
     * functions invoke: neither holds an IAM write.
     */
    const grantEndGrants = (role: iam.Role): void => {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'DeleteGrantSchedules',
          actions: ['scheduler:DeleteSchedule'],
          resources: [this.grantSchedulesArn],
        }),
      );
      secrets.grantRead(role);
      stateStore.grantReadWriteData(role);
      NagSuppressions.addResourceSuppressions(
        role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason: `Each grant's one-time expiry schedule is named after the grant, created at run time. scheduler:DeleteSchedule is limited to schedules of the '${this.scheduleGroupName}' group, which holds nothing else.`,
            appliesTo: [iam5ResourceFinding(this, this.grantSchedulesArn)],
          },
        ],
        true,
      );
    };

    // Grant expiry: the second guarantee, on time to the minute.

    this.expiry = keywardenFunction(this, 'Expiry', {
      handlerFile: 'grant-expiry.ts',
      description: 'keywarden grant expiry: ends one break-glass grant at its end (one-time schedule)',
      roleDescription:
        'keywarden grant expiry: ends grants (deny policy on break-glass roles, revoke Vault token, delete schedule)',
      memorySize: 512,
      timeout: Duration.minutes(1),
      logRetention,
      environment,
    });
    grantEndGrants(this.expiry.role);

    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description:
        'keywarden break-glass: lets grant expiry schedules invoke the grant-expiry function, nothing else',
      // Only schedules of this account's grant group may assume it (confused-deputy guard).
      assumedBy: schedulerPrincipal(this, this.scheduleGroupName),
    });
    // The unqualified function ARN exactly: the API's schedules target it, not a version.
    iam.Grant.addToPrincipal({
      grantee: this.schedulerRole,
      actions: ['lambda:InvokeFunction'],
      resourceArns: [this.expiry.function.functionArn],
    });

    // Sweeper: the third guarantee, within a few minutes even if a schedule was lost.

    this.sweeper = keywardenFunction(this, 'Sweeper', {
      handlerFile: 'grant-sweeper.ts',
      description: 'keywarden grant sweeper: ends every break-glass grant past its end',
      roleDescription:
        'keywarden grant sweeper: ends overdue grants (deny policy on break-glass roles, revoke Vault token, delete schedule)',
      memorySize: 512,
      timeout: Duration.minutes(4),
      logRetention,
      // Sweeps never overlap: two would race to end the same grant.
      reservedConcurrentExecutions: 1,
      environment,
    });
    // The sweeper also tidies up (an early revocation's deny, once the grant's sessions are all
    // dead, so denies do not fill a role's 10 KB of inline policies): through the role-deny function too.
    grantEndGrants(this.sweeper.role);

    ({
      alias: this.sweeperAlias,
      role: this.sweeperSchedulerRole,
      schedule: this.sweeperSchedule,
    } = liveSchedule(this, this.sweeper.function, {
      idPrefix: 'Sweeper',
      roleDescription:
        'keywarden break-glass: lets EventBridge Scheduler invoke the grant sweeper, nothing else',
      description: 'keywarden: end break-glass grants past their end',
      expression: sweeperExpression,
      // The next sweep supersedes a missed one; a sweep older than the interval is worthless.
      maxEventAge: Duration.minutes(5),
      retryAttempts: 2,
    }));

    // Alarms.

    const alarmNamePrefix = `${stack.stackName}-`;
    ({ key: this.alarmKey, topic: this.alarmTopic } = encryptedAlarmTopic(this, {
      what: 'break-glass',
      alarmNamePrefix,
    }));

    const hourlySum = { statistic: cloudwatch.Stats.SUM, period: Duration.hours(1) };

    this.expiryErrorsAlarm = new cloudwatch.Alarm(this, 'ExpiryErrorsAlarm', {
      alarmName: `${alarmNamePrefix}grant-expiry-errors`,
      alarmDescription:
        "keywarden: the grant-expiry function failed in the last hour, so a grant may not have ended at its scheduled time. Its credential still ends by its own TTL and the sweeper retries within minutes; read the function's logs for the grant id and error.",
      metric: this.expiry.function.metricErrors(hourlySum),
      ...AT_LEAST_ONCE,
    });
    this.sweeperErrorsAlarm = new cloudwatch.Alarm(this, 'SweeperErrorsAlarm', {
      alarmName: `${alarmNamePrefix}grant-sweeper-errors`,
      alarmDescription:
        "keywarden: the grant sweeper failed in the last hour, so overdue grants may still be recorded active. Credentials still end by their own TTL; read the sweeper's logs and fix the cause.",
      metric: this.sweeper.function.metricErrors(hourlySum),
      ...AT_LEAST_ONCE,
    });

    notifyOnAlarmAndOk(this.alarmTopic, [this.expiryErrorsAlarm, this.sweeperErrorsAlarm]);
  }
}

/** A context value as a string, or `undefined` when absent. */
function stringContext(scope: Construct, key: string): string | undefined {
  const value: unknown = scope.node.tryGetContext(key);
  return value === undefined ? undefined : String(value);
}

/** A schedule group name of Scheduler's alphabet, other than `default`. */
function validateScheduleGroupName(value: string): string {
  if (!/^[0-9a-zA-Z._-]{1,64}$/.test(value)) {
    throw new InfraConfigError(
      `BreakGlass: scheduleGroupName must be 1 to 64 letters, digits or '._-', such as 'keywarden-grants'; received '${value}'.`,
    );
  }
  if (value === 'default') {
    throw new InfraConfigError(
      "BreakGlass: scheduleGroupName 'default' would let keywarden's API delete the recurring rotation, discovery and sweeper schedules, which live in that group; use a group of its own such as 'keywarden-grants'.",
    );
  }
  return value;
}
