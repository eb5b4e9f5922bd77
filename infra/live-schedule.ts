import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { schedulerPrincipal } from './principals.ts';

/** A recurring schedule that invokes a function's `live` alias, as {@link liveSchedule} builds it. */
export interface LiveSchedule {
  /** The `live` alias the schedule invokes (the published version of the current code). */
  readonly alias: lambda.Alias;
  /** The role EventBridge Scheduler assumes to invoke the alias, and nothing else. */
  readonly role: iam.Role;
  readonly schedule: scheduler.Schedule;
}

/** Properties of {@link liveSchedule}. */
export interface LiveScheduleProps {
  /** Prefix of the construct ids: `<idPrefix>LiveAlias`, `<idPrefix>SchedulerRole`, `<idPrefix>Schedule`. */
  readonly idPrefix: string;
  /** The scheduler role's description. */
  readonly roleDescription: string;
  /** The schedule's description. */
  readonly description: string;
  /** A validated recurring expression (`settings.ts` `validateRecurringSchedule`). */
  readonly expression: string;
  /** Where undeliverable runs go. @default none */
  readonly deadLetterQueue?: sqs.IQueue;
  /** How long a missed run is still worth delivering; the next run supersedes an older one. */
  readonly maxEventAge: Duration;
  readonly retryAttempts: number;
}

/**
 * A recurring schedule of this account's `default` group that invokes `fn` through a `live`
 * alias, as a role only such schedules may assume (confused-deputy guard). Invoking the alias
 * grants `lambda:InvokeFunction` on the alias ARN only (no `:*` qualifier wildcard).
 */
export function liveSchedule(scope: Construct, fn: lambda.Function, props: LiveScheduleProps): LiveSchedule {
  // The casts only bridge aws-cdk-lib's declarations, which are not written for
  // `exactOptionalPropertyTypes` (a class's `role: IRole | undefined` vs the interface's `role?: IRole`).
  const alias = new lambda.Alias(scope, `${props.idPrefix}LiveAlias`, {
    aliasName: 'live',
    version: fn.currentVersion as lambda.IVersion,
  });
  const role = new iam.Role(scope, `${props.idPrefix}SchedulerRole`, {
    description: props.roleDescription,
    assumedBy: schedulerPrincipal(scope),
  });
  const schedule = new scheduler.Schedule(scope, `${props.idPrefix}Schedule`, {
    description: props.description,
    schedule: scheduler.ScheduleExpression.expression(props.expression),
    target: new targets.LambdaInvoke(alias as lambda.IFunction, {
      role,
      ...(props.deadLetterQueue === undefined ? {} : { deadLetterQueue: props.deadLetterQueue }),
      maxEventAge: props.maxEventAge,
      retryAttempts: props.retryAttempts,
    }),
  });
  return { alias, role, schedule };
}

/**
 * The encrypted queue, `DeadLetterQueue` under `scope`, that receives schedule deliveries and
 * asynchronous runs that failed after their retries; kept 14 days.
 */
export function deadLetterQueue(scope: Construct): sqs.Queue {
  return new sqs.Queue(scope, 'DeadLetterQueue', {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
}
