/**
 * The one-time EventBridge Scheduler schedule that calls the grant-expiry Lambda at a
 * grant's end: the second guarantee after the credential's own TTL (principle 2).
 *
 * One schedule per grant, `grant-<grantId>`, in keywarden's schedule group, with an
 * `at()` expression in UTC, no flexible window, and `ActionAfterCompletion: DELETE`
 * so a fired schedule cleans itself up. Creating is idempotent by name (an existing
 * schedule for the grant is kept), deleting by tolerance (a missing one is fine).
 *
 * moto stores schedules but never fires them (DESIGN, Known traps): the local runtime
 * uses {@link dueGrantSchedules} to find the due ones, calls the grant-expiry handler,
 * then {@link deleteGrantSchedule} as `ActionAfterCompletion: DELETE` would.
 */
import {
  CreateScheduleCommand,
  CreateScheduleGroupCommand,
  DeleteScheduleCommand,
  GetScheduleCommand,
  type GetScheduleCommandOutput,
  GetScheduleGroupCommand,
  ListSchedulesCommand,
  type ListSchedulesCommandOutput,
  type SchedulerClient,
} from '@aws-sdk/client-scheduler';
import pLimit from 'p-limit';
import * as z from 'zod';
import { ValidationError } from '../../core/errors.ts';
import type { GrantExpiryScheduler } from '../../core/ports.ts';
import { awsErrorName, awsFailure } from './clients.ts';

/** What every grant schedule's name starts with. */
export const GRANT_SCHEDULE_PREFIX = 'grant-';

/**
 * How the Scheduler retries a failed invocation of the grant-expiry Lambda: as long as
 * it allows (24 h, 185 attempts). Expiry must happen; the handler is idempotent.
 */
export const GRANT_EXPIRY_RETRY_POLICY = Object.freeze({
  MaximumEventAgeInSeconds: 86_400,
  MaximumRetryAttempts: 185,
});

/** What {@link EventBridgeGrantExpiryScheduler} needs. */
export interface EventBridgeGrantExpirySchedulerProps {
  scheduler: SchedulerClient;
  /** keywarden's schedule group (see {@link ensureScheduleGroup}). */
  groupName: string;
  /** The grant-expiry Lambda's ARN. */
  targetArn: string;
  /** The role the Scheduler assumes to invoke it. */
  roleArn: string;
}

/** The event the grant-expiry Lambda receives. */
export const GrantExpiryInputSchema = z.object({ grantId: z.string().min(1) });
export type GrantExpiryInput = z.infer<typeof GrantExpiryInputSchema>;

/** Schedule names: at most 64 of `[0-9a-zA-Z-_.]`. */
const SCHEDULE_NAME = /^[0-9a-zA-Z\-_.]{1,64}$/;

/** The schedule name of a grant: `grant-<grantId>`. */
export function grantScheduleName(grantId: string): string {
  const name = `${GRANT_SCHEDULE_PREFIX}${grantId}`;
  if (!SCHEDULE_NAME.test(name)) {
    throw new ValidationError(
      `expected a grant id of at most ${64 - GRANT_SCHEDULE_PREFIX.length} letters, digits, '-', '_' or '.' (it names an EventBridge schedule), got ${JSON.stringify(grantId)}`,
    );
  }
  return name;
}

/**
 * The `at()` expression for `at`, in UTC, rounded up to the next whole second: a
 * schedule must never fire before the grant's end.
 */
export function atExpression(at: Date): string {
  if (Number.isNaN(at.getTime()))
    throw new ValidationError('expected a valid date for a grant schedule, got an invalid one');
  const rounded = new Date(Math.ceil(at.getTime() / 1_000) * 1_000);
  return `at(${rounded.toISOString().slice(0, 19)})`;
}

/** The time of an `at(yyyy-mm-ddThh:mm:ss)` expression read in UTC; `undefined` for any other expression. */
export function parseAtExpression(expression: string, timezone = 'UTC'): Date | undefined {
  const match = /^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$/.exec(expression);
  if (!match || timezone !== 'UTC') return undefined;
  const at = new Date(`${match[1]}Z`);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

/** {@link GrantExpiryScheduler} on EventBridge Scheduler; see the module comment. */
export class EventBridgeGrantExpiryScheduler implements GrantExpiryScheduler {
  readonly #scheduler: SchedulerClient;
  readonly #groupName: string;
  readonly #targetArn: string;
  readonly #roleArn: string;

  constructor(props: EventBridgeGrantExpirySchedulerProps) {
    for (const key of ['groupName', 'targetArn', 'roleArn'] as const) {
      if (!props[key]) {
        throw new ValidationError(
          `EventBridgeGrantExpiryScheduler: expected ${key}, got ${JSON.stringify(props[key])}`,
        );
      }
    }
    this.#scheduler = props.scheduler;
    this.#groupName = props.groupName;
    this.#targetArn = props.targetArn;
    this.#roleArn = props.roleArn;
  }

  /** Creates the grant's schedule; a schedule of that name already there (a retry) is kept. */
  async scheduleExpiry(grantId: string, at: Date): Promise<void> {
    const name = grantScheduleName(grantId);
    const input: GrantExpiryInput = { grantId };
    try {
      await this.#scheduler.send(
        new CreateScheduleCommand({
          Name: name,
          GroupName: this.#groupName,
          ScheduleExpression: atExpression(at),
          ScheduleExpressionTimezone: 'UTC',
          FlexibleTimeWindow: { Mode: 'OFF' },
          ActionAfterCompletion: 'DELETE',
          Description: `keywarden: end of break-glass grant ${grantId}`,
          Target: {
            Arn: this.#targetArn,
            RoleArn: this.#roleArn,
            Input: JSON.stringify(input),
            RetryPolicy: { ...GRANT_EXPIRY_RETRY_POLICY },
          },
        }),
      );
    } catch (error) {
      if (awsErrorName(error) === 'ConflictException') return;
      throw awsFailure(`creating schedule ${name} in group ${this.#groupName}`, error);
    }
  }

  /** Deletes the grant's schedule; one that is gone already (fired, or cancelled) is fine. */
  async cancelExpiry(grantId: string): Promise<void> {
    await deleteGrantSchedule(this.#scheduler, this.#groupName, grantScheduleName(grantId));
  }
}

/** A grant schedule that is due. */
export interface DueGrantSchedule {
  name: string;
  grantId: string;
  at: Date;
}

/**
 * The grant schedules of `groupName` whose time is at or before `now`, earliest first.
 * For the local runtime, which fires them itself (moto never does).
 */
export async function dueGrantSchedules(
  scheduler: SchedulerClient,
  groupName: string,
  now: Date,
): Promise<DueGrantSchedule[]> {
  const names: string[] = [];
  let nextToken: string | undefined;
  do {
    let page: ListSchedulesCommandOutput;
    try {
      page = await listPage(scheduler, groupName, nextToken);
    } catch (error) {
      throw awsFailure(`listing schedules of group ${groupName}`, error);
    }
    for (const summary of page.Schedules ?? []) {
      // moto matches GroupName loosely: keep this group's own only.
      if (summary.GroupName === groupName && summary.Name?.startsWith(GRANT_SCHEDULE_PREFIX))
        names.push(summary.Name);
    }
    nextToken = page.NextToken;
  } while (nextToken);

  const limit = pLimit(8);
  const read = await Promise.all(
    names.map((name) => limit(() => readGrantSchedule(scheduler, groupName, name))),
  );
  return read
    .filter((schedule): schedule is DueGrantSchedule => schedule !== undefined && schedule.at <= now)
    .sort((a, b) => a.at.getTime() - b.at.getTime());
}

const listPage = (scheduler: SchedulerClient, groupName: string, nextToken: string | undefined) =>
  scheduler.send(
    new ListSchedulesCommand({
      GroupName: groupName,
      NamePrefix: GRANT_SCHEDULE_PREFIX,
      ...(nextToken === undefined ? {} : { NextToken: nextToken }),
    }),
  );

/** One schedule's time and grant; `undefined` when it is gone or is not a one-time grant schedule. */
async function readGrantSchedule(
  scheduler: SchedulerClient,
  groupName: string,
  name: string,
): Promise<DueGrantSchedule | undefined> {
  let schedule: GetScheduleCommandOutput;
  try {
    schedule = await scheduler.send(new GetScheduleCommand({ Name: name, GroupName: groupName }));
  } catch (error) {
    // Deleted between the list and the read: fired or cancelled meanwhile.
    if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
    throw awsFailure(`reading schedule ${name} of group ${groupName}`, error);
  }
  const at = parseAtExpression(
    schedule.ScheduleExpression ?? '',
    schedule.ScheduleExpressionTimezone ?? 'UTC',
  );
  if (at === undefined) return undefined;
  const input = GrantExpiryInputSchema.safeParse(parseJson(schedule.Target?.Input));
  const grantId = input.success ? input.data.grantId : name.slice(GRANT_SCHEDULE_PREFIX.length);
  return { name, grantId, at };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Deletes one schedule by name; a missing one is fine (it fired, or was cancelled). */
export async function deleteGrantSchedule(
  scheduler: SchedulerClient,
  groupName: string,
  name: string,
): Promise<void> {
  try {
    await scheduler.send(new DeleteScheduleCommand({ Name: name, GroupName: groupName }));
  } catch (error) {
    if (awsErrorName(error) === 'ResourceNotFoundException') return;
    throw awsFailure(`deleting schedule ${name} of group ${groupName}`, error);
  }
}

/**
 * Creates the schedule group unless it exists. Looked up first rather than created
 * blindly: moto replaces an existing group, and its schedules with it, on a second
 * CreateScheduleGroup (AWS answers ConflictException, which is fine too).
 */
export async function ensureScheduleGroup(scheduler: SchedulerClient, groupName: string): Promise<void> {
  try {
    await scheduler.send(new GetScheduleGroupCommand({ Name: groupName }));
    return;
  } catch (error) {
    if (awsErrorName(error) !== 'ResourceNotFoundException')
      throw awsFailure(`reading schedule group ${groupName}`, error);
  }
  try {
    await scheduler.send(new CreateScheduleGroupCommand({ Name: groupName }));
  } catch (error) {
    if (awsErrorName(error) === 'ConflictException') return;
    throw awsFailure(`creating schedule group ${groupName}`, error);
  }
}
