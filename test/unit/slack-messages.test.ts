import { describe, expect, it } from 'vitest';
import {
  type Block,
  campaignProgressMessage,
  campaignStartedMessage,
  escapeMrkdwn,
  grantDecidedMessage,
  grantEndedMessage,
  grantRequestedMessage,
  noticeMessage,
  refusalMessage,
  type SlackMessage,
} from '../../functions/adapters/slack/messages.ts';
import { type Campaign, type CampaignCounts, summarize, type Target } from '../../functions/core/campaign.ts';
import { BreakglassRoleSchema, type Grant, GrantSchema, type Principal } from '../../functions/core/grant.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';

const alice: Principal = { kind: 'slack', id: 'U0ALICE', name: 'alice' };
const bob: Principal = { kind: 'slack', id: 'U0BOB' };
const carol: Principal = { kind: 'aws', id: 'arn:aws:sts::123456789012:assumed-role/oncall/carol' };

const role = BreakglassRoleSchema.parse({
  id: 'prod-deploy',
  description: 'deploy to prod by hand',
  target: { type: 'aws-role', roleArn: 'arn:aws:iam::123456789012:role/prod-deploy' },
  maxDuration: '1h',
  approvers: { slackUsers: ['U0BOB'], awsPrincipals: ['arn:aws:sts::123456789012:assumed-role/oncall/*'] },
  approvalsRequired: 2,
});

const grant = (over: Partial<Grant> = {}): Grant =>
  GrantSchema.parse({
    grantId: 'g-1',
    roleId: 'prod-deploy',
    requester: alice,
    reason: 'roll back the failed release',
    incident: 'INC-42',
    duration: '30m',
    state: 'requested',
    requestedAt: '2026-11-21T10:00:00.000Z',
    approvals: [],
    ...over,
  });

const approvedBy = (...approvers: Principal[]) =>
  approvers.map((approver) => ({ approver, at: '2026-11-21T10:05:00.000Z' }));

/** Every piece of text a reader sees, joined. */
function rendered(message: SlackMessage): string {
  const texts: string[] = [message.text];
  const walk = (value: unknown) => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'text' && typeof inner === 'string') texts.push(inner);
        else walk(inner);
      }
    }
  };
  walk(message.blocks);
  return texts.join('\n');
}

const actions = (message: SlackMessage) =>
  message.blocks.filter((block): block is Extract<Block, { type: 'actions' }> => block.type === 'actions');

describe('slack messages: a break-glass request', () => {
  it('shows who asks for which role, for how long, the incident, the reason and approvals so far', () => {
    // act
    const message = grantRequestedMessage(grant(), role);
    const text = rendered(message);

    // assess
    expect(message.response_type).toBe('in_channel');
    expect(text).toContain('<@U0ALICE> asks for break-glass access to role `prod-deploy`');
    expect(text).toContain('30m (at most 1h)');
    expect(text).toContain('INC-42');
    expect(text).toContain('roll back the failed release');
    expect(text).toContain('0 of 2 required');
    expect(text).toContain('never posted in Slack');
  });

  it('carries Approve and Deny buttons whose value is the grant id', () => {
    // act
    const [buttons] = actions(grantRequestedMessage(grant(), role));

    // assess
    expect(buttons?.elements.map((b) => [b.action_id, b.value, b.style])).toEqual([
      ['breakglass.approve', 'g-1', 'primary'],
      ['breakglass.deny', 'g-1', 'danger'],
    ]);
    expect(buttons?.elements[0]?.confirm?.text.text).toContain('You cannot approve your own request');
  });

  it('escapes a reason and incident so they cannot mention a channel or hide a link', () => {
    // prepare
    const hostile = grant({
      reason: 'urgent <!channel> see <https://evil.example|the runbook> & <@U0BOB>',
      incident: 'INC-42',
    });

    // act
    const text = rendered(grantRequestedMessage(hostile, role));

    // assess
    expect(text).toContain(
      'urgent &lt;!channel&gt; see &lt;https://evil.example|the runbook&gt; &amp; &lt;@U0BOB&gt;',
    );
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<https://evil.example');
  });

  it('cuts a very long reason to fit Slack limits', () => {
    // act
    const message = grantRequestedMessage(grant({ reason: 'x'.repeat(10_000) }), role);

    // assess
    for (const block of message.blocks) {
      if (block.type === 'section') expect(block.text.text.length).toBeLessThanOrEqual(3_000);
    }
    expect(rendered(message)).toContain('x…');
  });

  it('shows an AWS requester by ARN, as code', () => {
    expect(rendered(grantRequestedMessage(grant({ requester: carol }), role))).toContain(
      '`arn:aws:sts::123456789012:assumed-role/oncall/carol` asks',
    );
  });
});

describe('slack messages: decisions', () => {
  it('shows a partial approval N/M and keeps the buttons for the next approver', () => {
    // act
    const message = grantDecidedMessage(grant({ approvals: approvedBy(bob) }), role);

    // assess
    expect(rendered(message)).toContain('Partially approved 1/2* by <@U0BOB>; 1 more approval(s) needed');
    expect(actions(message)).toHaveLength(1);
  });

  it('tells the approved requester to fetch the credential with the CLI, and has no buttons', () => {
    // prepare
    const approved = grant({
      state: 'approved',
      approvals: approvedBy(bob, carol),
      approvedAt: '2026-11-21T10:05:00.000Z',
      expiresAt: '2026-11-21T10:35:00.000Z',
    });

    // act
    const message = grantDecidedMessage(approved, role);
    const text = rendered(message);

    // assess
    expect(text).toContain(
      '*Approved* by <@U0BOB>, `arn:aws:sts::123456789012:assumed-role/oncall/carol` (2 of 2)',
    );
    expect(text).toContain('<@U0ALICE>, run `keywarden breakglass credentials g-1` in your terminal');
    expect(text).toContain('It is never posted in Slack');
    expect(text).toContain(`until <!date^${Date.parse('2026-11-21T10:35:00.000Z') / 1_000}^`);
    expect(actions(message)).toHaveLength(0);
  });

  it('shows a denial, by whom and why', () => {
    // prepare
    const denied = grant({ state: 'denied', deniedBy: bob, denialReason: 'use the <runbook> first' });

    // act
    const text = rendered(grantDecidedMessage(denied, role));

    // assess
    expect(text).toContain('*Denied* by <@U0BOB>');
    expect(text).toContain('use the &lt;runbook&gt; first');
  });

  it('shows an ended grant as ended', () => {
    expect(
      rendered(grantDecidedMessage(grant({ state: 'expired', endedAt: '2026-11-21T10:35:00.000Z' }), role)),
    ).toContain('*Expired*');
  });
});

describe('slack messages: a grant ends', () => {
  it('says it was revoked, by whom, and that a review is due by someone else', () => {
    // prepare
    const revoked = grant({
      state: 'revoked',
      revokedBy: bob,
      endedAt: '2026-11-21T10:20:00.000Z',
      review: { dueAt: '2026-11-23T10:20:00.000Z' },
    });

    // act
    const text = rendered(grantEndedMessage(revoked));

    // assess
    expect(text).toContain('*Revoked* by <@U0BOB>');
    expect(text).toContain('its credentials no longer work');
    expect(text).toContain(
      'someone other than the requester runs `keywarden breakglass review g-1 --notes "…"`',
    );
  });

  it('says who reviewed it once reviewed', () => {
    // prepare
    const reviewed = grant({
      state: 'expired',
      endedAt: '2026-11-21T10:35:00.000Z',
      review: { dueAt: '2026-11-23T10:35:00.000Z', reviewer: bob, reviewedAt: '2026-11-22T09:00:00.000Z' },
    });

    // act / assess
    expect(rendered(grantEndedMessage(reviewed))).toContain('Reviewed by <@U0BOB>');
  });
});

describe('slack messages: no secret can reach Slack', () => {
  it('refuses, at compile time, a grant that carries a credential value', () => {
    // prepare
    const withCredential = { ...grant(), credential: new SecretValue('s.leaked-token') };
    const smuggled = {
      ...grant({ state: 'approved', approvals: approvedBy(bob, carol) }),
      token: 's.leaked',
    };

    // act / assess: the type checker refuses the SecretValue …
    // @ts-expect-error a SecretValue field makes the argument not Disclosable
    grantRequestedMessage(withCredential, role);
    // @ts-expect-error likewise for the decision and end messages
    grantEndedMessage(withCredential);

    // … and a clear string smuggled in at run time is not rendered: builders read named fields only.
    const message = grantDecidedMessage(smuggled, role);
    expect(JSON.stringify(message)).not.toContain('s.leaked');
  });

  it('does not show credential handles either', () => {
    // prepare
    const active = grant({
      state: 'active',
      approvals: approvedBy(bob, carol),
      credentials: [
        {
          type: 'vault-wrapped-token',
          handle: 'accessor-abc123',
          issuedAt: '2026-11-21T10:06:00.000Z',
          expiresAt: '2026-11-21T10:35:00.000Z',
        },
      ],
    });

    // act / assess
    expect(JSON.stringify(grantDecidedMessage(active, role))).not.toContain('accessor-abc123');
  });
});

describe('slack messages: refusals', () => {
  it('are ephemeral and escaped', () => {
    // act
    const message = refusalMessage('U0ALICE requested grant g-1 and cannot approve it: <someone else> must');

    // assess
    expect(message.response_type).toBe('ephemeral');
    expect(rendered(message)).toContain(
      ':warning: U0ALICE requested grant g-1 and cannot approve it: &lt;someone else&gt; must',
    );
  });
});

describe('slack messages: notices', () => {
  it('are ephemeral, escaped, and carry no warning sign', () => {
    // act
    const message = noticeMessage('Planning the revocation for INC-42 <soon>…');

    // assess
    expect(message.response_type).toBe('ephemeral');
    expect(rendered(message)).toContain('Planning the revocation for INC-42 &lt;soon&gt;…');
    expect(rendered(message)).not.toContain(':warning:');
  });
});

describe('slack messages: /revoke campaigns', () => {
  const target = (over: Partial<Target>): Target => ({
    targetId: 't',
    identityId: 'deploy-bot',
    kind: 'aws-iam-access-key',
    environment: 'prod',
    handle: 'h',
    action: 'revoke',
    reissue: true,
    outcome: 'pending',
    attempts: 0,
    ...over,
  });
  const planned: Target[] = [
    target({ targetId: 'a' }),
    target({ targetId: 'b' }),
    target({ targetId: 'c', kind: 'vault-token' }),
  ];
  const campaign = (over: Partial<Campaign> = {}): Campaign => ({
    campaignId: 'INC-42-20261121T1000',
    incident: 'INC-42',
    selectors: ['stage=deploy,env=prod', 'kind=vault-token'],
    requestedBy: 'slack:U0ALICE',
    createdAt: '2026-11-21T10:00:00.000Z',
    status: 'planned',
    reissue: true,
    dryRun: false,
    counts: summarize(planned),
    ...over,
  });

  it('starts a thread with the selectors, who asked and the targets per kind', () => {
    // act
    const message = campaignStartedMessage(campaign(), summarize(planned));
    const text = rendered(message);

    // assess
    expect(message.response_type).toBe('in_channel');
    expect(text).toContain('Revocation for INC-42');
    expect(text).toContain('`stage=deploy,env=prod` or `kind=vault-token`');
    expect(text).toContain('requested by <@U0ALICE>');
    expect(text).toContain('*Targets* 3\n`aws-iam-access-key`: 2 · `vault-token`: 1');
    expect(text).toContain('`keywarden revoke status INC-42-20261121T1000`');
  });

  it('says plainly when it is a dry run', () => {
    expect(rendered(campaignStartedMessage(campaign({ dryRun: true }), summarize(planned)))).toContain(
      'dry run: nothing is revoked',
    );
  });

  it('reports progress by outcome, failures per kind with how to retry, and the report once written', () => {
    // prepare
    const done = [
      target({ targetId: 'a', outcome: 'revoked' }),
      target({ targetId: 'b', outcome: 'failed', error: 'Throttling', retryable: true }),
      target({ targetId: 'c', kind: 'vault-token', outcome: 'already-revoked' }),
    ];
    const counts: CampaignCounts = summarize(done);

    // act
    const text = rendered(
      campaignProgressMessage(
        campaign({ status: 'completed', reportLocation: 's3://keywarden-reports/INC-42/report.md', counts }),
        counts,
      ),
    );

    // assess
    expect(text).toContain(
      ':warning: *completed*: 1 revoked · 1 already revoked · 0 skipped · 1 failed · 0 pending, of 3',
    );
    expect(text).toContain(
      '*Failed* `aws-iam-access-key`: 1; retry with `keywarden revoke resume INC-42-20261121T1000`',
    );
    expect(text).toContain('*Report* `s3://keywarden-reports/INC-42/report.md`');
  });
});

describe('slack messages: escaping', () => {
  it("escapes exactly Slack's three control characters", () => {
    expect(escapeMrkdwn('a & b < c > d *e* _f_ @here')).toBe('a &amp; b &lt; c &gt; d *e* _f_ @here');
  });
});
