import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../functions/core/errors.ts';
import {
  activateGrant,
  approveGrant,
  assertIssuable,
  BreakglassRoleSchema,
  denyGrant,
  expireGrant,
  FetchLimitError,
  type Grant,
  isApprover,
  isOverdue,
  isReviewOverdue,
  MAX_CREDENTIAL_FETCHES,
  type Principal,
  personOf,
  RefusalError,
  requestGrant,
  reviewGrant,
  revokeGrant,
  TEXT_LIMITS,
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

describe('grants: one person, several principals', () => {
  const people = [
    {
      name: 'alice',
      awsPrincipals: ['arn:aws:iam::123456789012:user/alice'],
      slackUsers: ['U0ALICE'],
      localUsers: [],
    },
  ];
  const aliceOnSlack: Principal = { kind: 'slack', id: 'U0ALICE' };
  const slackRole = BreakglassRoleSchema.parse({
    ...role,
    approvers: { slackUsers: ['U0ALICE', 'U0CAROL'] },
  });

  const directory = {
    people: [...people, { name: 'carol', awsPrincipals: [], slackUsers: ['U0CAROL'], localUsers: [] }],
  };

  it('refuses a requester approving from another channel', () => {
    expect(personOf(directory, aliceOnSlack)).toBe('person:alice');
    expect(() => approveGrant(request({ role: slackRole }), slackRole, aliceOnSlack, now, directory)).toThrow(
      'cannot approve it: someone else must',
    );
    expect(approveGrant(request({ role: slackRole }), slackRole, carol, now, directory).state).toBe(
      'approved',
    );
  });

  it('refuses an approver it cannot tell from the requester, once there is a directory', () => {
    const stranger: Principal = { kind: 'slack', id: 'U0STRANGE' };
    const open = BreakglassRoleSchema.parse({ ...role, approvers: { slackUsers: ['U0STRANGE'] } });
    expect(() => approveGrant(request({ role: open }), open, stranger, now, directory)).toThrow(
      'is not in breakglass.people',
    );
  });
});

describe('grants: what AWS vouches for', () => {
  const oncall = (session: string): Principal => ({
    kind: 'aws',
    id: `arn:aws:sts::123456789012:assumed-role/oncall/${session}`,
  });
  const sso = (user: string): Principal => ({
    kind: 'aws',
    id: `arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Oncall_0123abcd/${user}`,
  });
  const anyOncall = BreakglassRoleSchema.parse({
    ...role,
    approvers: {
      awsPrincipals: [
        'arn:aws:sts::123456789012:assumed-role/oncall/*',
        'arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Oncall_0123abcd/*',
      ],
    },
  });

  it('never takes a session name the caller chose for a second person', () => {
    const grant = request({ role: anyOncall, requester: oncall('alice') });
    expect(() => approveGrant(grant, anyOncall, oncall('not-alice'), now)).toThrow(
      'cannot approve it: someone else must',
    );
    expect(personOf({ people: [] }, oncall('alice'))).toBe(
      'aws:arn:aws:sts::123456789012:assumed-role/oncall/*',
    );
  });

  it('tells people apart by the session name of roles that pin it (Identity Center, or listed)', () => {
    const grant = request({ role: anyOncall, requester: sso('alice@example.com') });
    expect(approveGrant(grant, anyOncall, sso('bob@example.com'), now).state).toBe('approved');
    const pinned = { people: [], pinnedSessionRoles: ['oncall'] };
    const other = request({ role: anyOncall, requester: oncall('alice') });
    expect(approveGrant(other, anyOncall, oncall('bob'), now, pinned).state).toBe('approved');
  });

  it('lets a wildcard match within one ARN segment only', () => {
    const users = BreakglassRoleSchema.parse({
      ...role,
      approvers: { awsPrincipals: ['arn:aws:iam::123456789012:user/*'] },
    });
    expect(isApprover(users, { kind: 'aws', id: 'arn:aws:iam::123456789012:user/bob' })).toBe(true);
    expect(isApprover(users, { kind: 'aws', id: 'arn:aws:iam::123456789012:user/ops/bob' })).toBe(false);
  });
});

describe('grants: activity and end', () => {
  const session = { type: 'aws-session' as const, handle: 'g-1', expiresAt: later(30).toISOString() };
  const active = () => activateGrant(approveGrant(request(), role, bob, now), session, later(1));

  it('runs for its duration from approval, whenever its credentials are fetched', () => {
    const approved = approveGrant(request(), role, bob, now);
    expect(approved).toMatchObject({ state: 'approved', expiresAt: later(30).toISOString() });
    expect(active()).toMatchObject({
      state: 'active',
      activatedAt: later(1).toISOString(),
      expiresAt: later(30).toISOString(),
      credentials: [{ ...session, issuedAt: later(1).toISOString() }],
    });
    expect(() => activateGrant(request(), session, now)).toThrow('only an approved grant is activated');
  });

  it('issues credentials to the requester only, and only within the window', () => {
    const approved = approveGrant(request(), role, bob, now);
    expect(() => assertIssuable(approved, alice, later(29))).not.toThrow();
    expect(() => assertIssuable(approved, bob, later(1))).toThrow(
      'only its requester receives its credentials',
    );
    expect(() => assertIssuable(approved, alice, later(30))).toThrow('ended at');
    expect(() => assertIssuable(request(), alice, now)).toThrow('issued for an approved grant only');
  });

  it('lets an approved grant whose credentials were never fetched lapse', () => {
    const approved = approveGrant(request(), role, bob, now);
    expect(expireGrant(approved, later(30), 'sweeper')).toMatchObject({
      state: 'expired',
      endedBy: 'sweeper',
    });
  });

  it('expires only once past its end, and then a review is due', () => {
    expect(isOverdue(active(), later(29))).toBe(false);
    expect(() => expireGrant(active(), later(29))).toThrow('not past its end');
    const expired = expireGrant(active(), later(30));
    expect(expired).toMatchObject({ state: 'expired', endedAt: later(30).toISOString() });
    expect(expired.review?.dueAt).toBeDefined();
  });

  it('can be revoked early', () => {
    expect(revokeGrant(active(), role, bob, later(5))).toMatchObject({ state: 'revoked', revokedBy: bob });
    expect(revokeGrant(active(), role, alice, later(5))).toMatchObject({
      state: 'revoked',
      revokedBy: alice,
    });
    expect(() => revokeGrant(active(), role, mallory, later(5))).toThrow('only its requester or an approver');
  });

  it('is reviewed by someone other than the requester, with notes', () => {
    const expired = expireGrant(active(), later(30));
    expect(() => reviewGrant(expired, role, alice, 'fine', later(40))).toThrow(
      'cannot review it: someone else must',
    );
    expect(() => reviewGrant(expired, role, mallory, 'mine', later(40))).toThrow(
      'reviews are for the approvers',
    );
    expect(() => reviewGrant(expired, role, bob, '  ', later(40))).toThrow('expected review notes');
    const reviewed = reviewGrant(expired, role, bob, 'hotfix deployed, nothing else touched', later(40));
    expect(reviewed.review).toMatchObject({ reviewer: bob, notes: 'hotfix deployed, nothing else touched' });
    expect(() => reviewGrant(reviewed, role, carol, 'again', later(50))).toThrow('already reviewed');
  });

  it('reports a review that is overdue', () => {
    const expired = expireGrant(active(), later(30));
    expect(isReviewOverdue(expired, later(60))).toBe(false);
    expect(isReviewOverdue(expired, later(60 * 24 * 3))).toBe(true);
  });
});

describe('grants: bounded input (issue #11)', () => {
  const approved = () => approveGrant(request(), role, bob, now);
  const vaultToken = (n: number) => ({
    type: 'vault-wrapped-token' as const,
    handle: `accessor-${n}`,
    expiresAt: later(30).toISOString(),
  });

  it('refuses a reason, a denial reason or review notes over their limit, naming the field and the limit', () => {
    expect(() => request({ reason: 'x'.repeat(TEXT_LIMITS.reason + 1) })).toThrow(ValidationError);
    expect(() => request({ reason: 'x'.repeat(TEXT_LIMITS.reason + 1) })).toThrow(
      `break-glass request: reason: expected at most ${TEXT_LIMITS.reason} characters, got ${TEXT_LIMITS.reason + 1}`,
    );
    expect(request({ reason: 'x'.repeat(TEXT_LIMITS.reason) }).reason).toHaveLength(TEXT_LIMITS.reason);
    expect(() => denyGrant(request(), role, bob, now, 'n'.repeat(TEXT_LIMITS.denialReason + 1))).toThrow(
      `denial: reason: expected at most ${TEXT_LIMITS.denialReason} characters`,
    );
    const expired = expireGrant(activateGrant(approved(), vaultToken(0), later(1)), later(30));
    expect(() => reviewGrant(expired, role, bob, 'n'.repeat(TEXT_LIMITS.reviewNotes + 1), later(40))).toThrow(
      `review: notes: expected at most ${TEXT_LIMITS.reviewNotes} characters`,
    );
  });

  it('refuses a requester whose display name is over its limit, without echoing it whole', () => {
    const long = { ...carol, name: 'n'.repeat(100_000) };
    expect(() => request({ requester: long })).toThrow(
      `requester: name: expected at most ${TEXT_LIMITS.principalName} characters, got 100000`,
    );
  });

  it('refuses a blank incident (space, tab, newline) whether or not the role requires one', () => {
    const optional = BreakglassRoleSchema.parse({ ...role, requireIncident: false });
    for (const blank of [' ', '\t', '\n', '']) {
      expect(() => request({ incident: blank })).toThrow('incident: expected an incident id such as INC-42');
      expect(() => request({ role: optional, incident: blank })).toThrow(ValidationError);
    }
    expect(request({ role: optional, incident: undefined }).incident).toBeUndefined();
  });

  it('quotes an oversized incident clipped, so the refusal (and its audit record) stays small', () => {
    const refusal = (() => {
      try {
        request({ incident: `INC ${'9'.repeat(400_000)}` });
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(refusal?.length).toBeLessThan(400);
    expect(refusal).toContain('(400004 characters)');
  });

  it(`hands out at most ${MAX_CREDENTIAL_FETCHES} credentials per grant, then refuses with a FetchLimitError`, () => {
    let grant = approved();
    for (let n = 0; n < MAX_CREDENTIAL_FETCHES; n++) {
      assertIssuable(grant, alice, later(2));
      grant = activateGrant(grant, vaultToken(n), later(2));
    }
    expect(grant.credentials).toHaveLength(MAX_CREDENTIAL_FETCHES);
    expect(() => assertIssuable(grant, alice, later(2))).toThrow(FetchLimitError);
    expect(() => assertIssuable(grant, alice, later(2))).toThrow(
      `has handed out ${MAX_CREDENTIAL_FETCHES} credentials, the most one grant may`,
    );
    expect(() => activateGrant(grant, vaultToken(99), later(2))).toThrow(RefusalError);
  });
});

describe('grants: separation of duties on deny (issue #11)', () => {
  const directory = {
    people: [
      { name: 'alice', awsPrincipals: [alice.id], slackUsers: ['U0ALICE'], localUsers: [] },
      { name: 'carol', awsPrincipals: [], slackUsers: ['U0CAROL'], localUsers: [] },
    ],
  };
  const both = BreakglassRoleSchema.parse({
    ...role,
    approvers: { awsPrincipals: [alice.id], slackUsers: ['U0ALICE', 'U0CAROL'] },
  });

  it('refuses the requester denying their own request, even as an approver of the role', () => {
    expect(() => denyGrant(request({ role: both }), both, alice, now)).toThrow(
      `${'aws:'}${alice.id} requested grant g-1 and cannot deny it`,
    );
  });

  it('refuses the requester denying from another channel (the directory makes them one person)', () => {
    const fromSlack: Principal = { kind: 'slack', id: 'U0ALICE' };
    expect(() => denyGrant(request({ role: both }), both, fromSlack, now, undefined, directory)).toThrow(
      'slack:U0ALICE requested grant g-1 and cannot deny it',
    );
    expect(denyGrant(request({ role: both }), both, carol, now, ' no ', directory)).toMatchObject({
      state: 'denied',
      deniedBy: carol,
      denialReason: 'no',
    });
  });
});
