import { describe, expect, it } from 'vitest';
import {
  activateGrant,
  approveGrant,
  BreakglassRoleSchema,
  denyGrant,
  expireGrant,
  type Grant,
  isOverdue,
  isReviewOverdue,
  type Principal,
  RefusalError,
  requestGrant,
  reviewGrant,
  revokeGrant,
} from '../../functions/core/grant.ts';

const now = new Date('2026-11-21T10:00:00Z');
const later = (minutes: number) => new Date(now.getTime() + minutes * 60_000);
const alice: Principal = { kind: 'aws', id: 'arn:aws:iam::123456789012:user/alice' };
const bob: Principal = { kind: 'aws', id: 'arn:aws:sts::123456789012:assumed-role/oncall/bob' };
const carol: Principal = { kind: 'slack', id: 'U0CAROL' };
const mallory: Principal = { kind: 'aws', id: 'arn:aws:iam::999999999999:user/mallory' };

const role = BreakglassRoleSchema.parse({
  id: 'prod-deploy',
  description: 'deploy to prod by hand',
  target: { type: 'aws-role', roleArn: 'arn:aws:iam::123456789012:role/prod-deploy' },
  maxDuration: '1h',
  approvers: {
    awsPrincipals: [
      'arn:aws:sts::123456789012:assumed-role/oncall/*',
      'arn:aws:iam::123456789012:user/alice',
    ],
    slackUsers: ['U0CAROL'],
  },
  approvalsRequired: 1,
});

const request = (over: Partial<Parameters<typeof requestGrant>[0]> = {}): Grant =>
  requestGrant({
    grantId: 'g-1',
    role,
    requester: alice,
    reason: 'hotfix',
    incident: 'INC-42',
    duration: '30m',
    now,
    ...over,
  });

describe('grants: request', () => {
  it('records who asks, why and for how long', () => {
    expect(request()).toMatchObject({
      state: 'requested',
      requester: alice,
      reason: 'hotfix',
      incident: 'INC-42',
      duration: '30m',
      approvals: [],
    });
  });

  it('refuses a duration above the role maximum, and a missing incident when the role requires one', () => {
    expect(() => request({ duration: '2h' })).toThrow('role prod-deploy allows at most 1h, got 2h');
    expect(() => request({ incident: undefined })).toThrow(
      'role prod-deploy requires an incident reference (--incident INC-42)',
    );
    expect(() => request({ duration: 'soon' })).toThrow(RefusalError);
  });

  it('caps a role at 12 hours in the inventory', () => {
    const result = BreakglassRoleSchema.safeParse({ ...role, maxDuration: '2d' });
    expect(result.success).toBe(false);
  });
});

describe('grants: approval', () => {
  it('never lets the requester approve their own grant', () => {
    const selfApprovingRole = BreakglassRoleSchema.parse({
      ...role,
      approvers: { awsPrincipals: [alice.id] },
    });
    expect(() => approveGrant(request(), selfApprovingRole, alice, now)).toThrow(
      'aws:arn:aws:iam::123456789012:user/alice requested grant g-1 and cannot approve it: someone else must',
    );
  });

  it('refuses someone who is not an approver of the role', () => {
    expect(() => approveGrant(request(), role, mallory, now)).toThrow(
      'is not an approver of role prod-deploy',
    );
  });

  it('matches approver ARN patterns and Slack users', () => {
    expect(approveGrant(request(), role, bob, now).state).toBe('approved');
    expect(approveGrant(request(), role, carol, now).state).toBe('approved');
  });

  it('counts distinct approvers towards the number required', () => {
    const twoPerson = BreakglassRoleSchema.parse({ ...role, approvalsRequired: 2 });
    const once = approveGrant(request(), twoPerson, bob, now);
    expect(once.state).toBe('requested');
    expect(() => approveGrant(once, twoPerson, bob, now)).toThrow(
      'already approved grant g-1; another approver is needed',
    );
    expect(approveGrant(once, twoPerson, carol, now).state).toBe('approved');
  });

  it('lets an approver deny, which ends the request', () => {
    const denied = denyGrant(request(), role, bob, now);
    expect(denied).toMatchObject({ state: 'denied', deniedBy: bob });
    expect(() => approveGrant(denied, role, carol, now)).toThrow(
      'grant g-1 is denied, not awaiting approval',
    );
  });
});

describe('grants: activity and end', () => {
  const active = () => activateGrant(approveGrant(request(), role, bob, now), 'g-1', now);

  it('runs for its duration from activation', () => {
    expect(active()).toMatchObject({
      state: 'active',
      credentialHandle: 'g-1',
      expiresAt: later(30).toISOString(),
    });
    expect(() => activateGrant(request(), 'x', now)).toThrow('only an approved grant is activated');
  });

  it('expires only once past its end, and then a review is due', () => {
    expect(isOverdue(active(), later(29))).toBe(false);
    expect(() => expireGrant(active(), later(29))).toThrow('not past its end');
    const expired = expireGrant(active(), later(30));
    expect(expired).toMatchObject({ state: 'expired', endedAt: later(30).toISOString() });
    expect(expired.review?.dueAt).toBeDefined();
  });

  it('can be revoked early', () => {
    expect(revokeGrant(active(), bob, later(5))).toMatchObject({ state: 'revoked', revokedBy: bob });
  });

  it('is reviewed by someone other than the requester, with notes', () => {
    const expired = expireGrant(active(), later(30));
    expect(() => reviewGrant(expired, alice, 'fine', later(40))).toThrow(
      'cannot review it: someone else must',
    );
    expect(() => reviewGrant(expired, bob, '  ', later(40))).toThrow('expected review notes');
    const reviewed = reviewGrant(expired, bob, 'hotfix deployed, nothing else touched', later(40));
    expect(reviewed.review).toMatchObject({ reviewer: bob, notes: 'hotfix deployed, nothing else touched' });
    expect(() => reviewGrant(reviewed, carol, 'again', later(50))).toThrow('already reviewed');
  });

  it('reports a review that is overdue', () => {
    const expired = expireGrant(active(), later(30));
    expect(isReviewOverdue(expired, later(60))).toBe(false);
    expect(isReviewOverdue(expired, later(60 * 24 * 3))).toBe(true);
  });
});
