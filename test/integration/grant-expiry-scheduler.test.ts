/**
 * The grant-expiry schedules against the real moto server of the local stack. moto
 * stores schedules but never fires them, which is why the local runtime needs
 * `dueGrantSchedules`. Each test uses a schedule group of its own (`uniqueName`).
 */
import { GetScheduleCommand, ListSchedulesCommand } from '@aws-sdk/client-scheduler';
import { beforeAll, describe, expect, it } from 'vitest';
import { type AwsClients, awsClients } from '../../functions/adapters/aws/clients.ts';
import {
  atExpression,
  deleteGrantSchedule,
  dueGrantSchedules,
  EventBridgeGrantExpiryScheduler,
  ensureScheduleGroup,
  GRANT_EXPIRY_RETRY_POLICY,
  grantScheduleName,
  parseAtExpression,
} from '../../functions/adapters/aws/grant-expiry-scheduler.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const TARGET_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:keywarden-grant-expiry';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/keywarden-scheduler';

describe('grant expiry scheduler: EventBridge Scheduler', () => {
  let aws: AwsClients;
  beforeAll(() => {
    aws = awsClients(testAws());
  });

  const newScheduler = async () => {
    const groupName = uniqueName('kw-grants');
    await ensureScheduleGroup(aws.scheduler, groupName);
    const scheduler = new EventBridgeGrantExpiryScheduler({
      scheduler: aws.scheduler,
      groupName,
      targetArn: TARGET_ARN,
      roleArn: ROLE_ARN,
    });
    return { groupName, scheduler };
  };
  const scheduleNames = async (groupName: string) =>
    ((await aws.scheduler.send(new ListSchedulesCommand({ GroupName: groupName }))).Schedules ?? [])
      .filter((summary) => summary.GroupName === groupName)
      .map((summary) => summary.Name)
      .sort();

  it('creates a one-time UTC schedule per grant that invokes the expiry Lambda with the grant id and deletes itself', async () => {
    // prepare
    const { groupName, scheduler } = await newScheduler();
    const grantId = uniqueName('g');
    // act
    await scheduler.scheduleExpiry(grantId, new Date('2030-01-01T10:00:00.250Z'));
    // assess
    const schedule = await aws.scheduler.send(
      new GetScheduleCommand({ Name: `grant-${grantId}`, GroupName: groupName }),
    );
    expect(schedule).toMatchObject({
      ScheduleExpression: 'at(2030-01-01T10:00:01)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      State: 'ENABLED',
      Target: {
        Arn: TARGET_ARN,
        RoleArn: ROLE_ARN,
        Input: JSON.stringify({ grantId }),
        RetryPolicy: GRANT_EXPIRY_RETRY_POLICY,
      },
    });
  });

  it('lists only the due grants, cancels idempotently, and keeps an existing schedule when asked twice', async () => {
    // prepare
    const { groupName, scheduler } = await newScheduler();
    const [first, second] = [uniqueName('g1'), uniqueName('g2')];
    const firstAt = new Date('2030-01-01T10:00:00.000Z');
    const secondAt = new Date('2030-01-01T11:00:00.000Z');
    await scheduler.scheduleExpiry(first, firstAt);
    await scheduler.scheduleExpiry(second, secondAt);
    // act + assess: due between the two → only the first
    expect(await dueGrantSchedules(aws.scheduler, groupName, new Date('2030-01-01T10:30:00.000Z'))).toEqual([
      { name: grantScheduleName(first), grantId: first, at: firstAt },
    ]);
    expect(await dueGrantSchedules(aws.scheduler, groupName, new Date('2030-01-01T09:59:59.999Z'))).toEqual(
      [],
    );
    // cancel the second, then again
    await scheduler.cancelExpiry(second);
    await scheduler.cancelExpiry(second);
    expect(await scheduleNames(groupName)).toEqual([grantScheduleName(first)]);
    // schedule the first twice: kept as it was, no error
    await scheduler.scheduleExpiry(first, firstAt);
    await scheduler.scheduleExpiry(first, new Date('2030-06-01T00:00:00.000Z'));
    const kept = await dueGrantSchedules(aws.scheduler, groupName, new Date('2031-01-01T00:00:00.000Z'));
    expect(kept).toEqual([{ name: grantScheduleName(first), grantId: first, at: firstAt }]);
    // fired locally: deleted like ActionAfterCompletion DELETE, twice is fine
    await deleteGrantSchedule(aws.scheduler, groupName, grantScheduleName(first));
    await deleteGrantSchedule(aws.scheduler, groupName, grantScheduleName(first));
    expect(await dueGrantSchedules(aws.scheduler, groupName, new Date('2031-01-01T00:00:00.000Z'))).toEqual(
      [],
    );
  });

  it('lists the due grants of its own group only, earliest first', async () => {
    const mine = await newScheduler();
    const other = await newScheduler();
    const [late, early, elsewhere] = [uniqueName('late'), uniqueName('early'), uniqueName('else')];
    await mine.scheduler.scheduleExpiry(late, new Date('2030-01-01T12:00:00.000Z'));
    await mine.scheduler.scheduleExpiry(early, new Date('2030-01-01T08:00:00.000Z'));
    await other.scheduler.scheduleExpiry(elsewhere, new Date('2030-01-01T08:00:00.000Z'));
    const due = await dueGrantSchedules(aws.scheduler, mine.groupName, new Date('2030-01-02T00:00:00.000Z'));
    expect(due.map((schedule) => schedule.grantId)).toEqual([early, late]);
  });

  it('ensures a schedule group twice without losing the schedules in it', async () => {
    const { groupName, scheduler } = await newScheduler();
    const grantId = uniqueName('g');
    await scheduler.scheduleExpiry(grantId, new Date('2030-01-01T10:00:00.000Z'));
    await ensureScheduleGroup(aws.scheduler, groupName);
    expect(await scheduleNames(groupName)).toEqual([grantScheduleName(grantId)]);
  });

  it('writes at() in UTC rounded up to the second, and refuses names the Scheduler would refuse', () => {
    expect(atExpression(new Date('2030-01-01T10:00:00.000Z'))).toBe('at(2030-01-01T10:00:00)');
    expect(atExpression(new Date('2030-01-01T23:59:59.001Z'))).toBe('at(2030-01-02T00:00:00)');
    expect(parseAtExpression('at(2030-01-01T10:00:00)')).toEqual(new Date('2030-01-01T10:00:00.000Z'));
    expect(parseAtExpression('rate(1 hour)')).toBeUndefined();
    expect(() => grantScheduleName('has space')).toThrow(ValidationError);
    expect(() => grantScheduleName('x'.repeat(59))).toThrow(/at most 58/);
    expect(grantScheduleName('x'.repeat(58))).toHaveLength(64);
  });
});
