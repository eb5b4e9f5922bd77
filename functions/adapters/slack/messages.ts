/**
 * Block Kit messages keywarden posts in Slack: break-glass requests with their Approve
 * and Deny buttons, decisions, ends, refusals, and the progress of `/revoke` campaigns.
 *
 * Chat is not a place for secrets. The builders take grants, roles and campaigns only,
 * which hold credential handles at most, never values; their parameter types refuse any
 * object that carries a SecretValue, and each builder reads the fields it shows by name,
 * so nothing smuggled in at run time reaches the message. An approved requester is told
 * to fetch the credential with the CLI: it never comes through Slack.
 *
 * Text a person typed (reason, incident, names) is escaped, so `<!channel>` or
 * `<https://evil|here>` in a reason shows as text instead of pinging or linking.
 */
import type { Campaign, CampaignCounts } from '../../core/campaign.ts';
import type { ApprovalRecord } from '../../core/ci-records.ts';
import type { BreakglassRole, Grant, Principal } from '../../core/grant.ts';
import type { SecretValue } from '../../core/secret-value.ts';
import {
  APPROVE_ACTION_ID,
  APPROVE_ARTIFACT_ACTION_ID,
  type ApproveCommand,
  DENY_ACTION_ID,
} from './commands.ts';

export interface PlainText {
  type: 'plain_text';
  text: string;
  emoji?: boolean;
}
export interface Mrkdwn {
  type: 'mrkdwn';
  text: string;
}
export type TextObject = PlainText | Mrkdwn;

export interface ButtonElement {
  type: 'button';
  action_id: string;
  text: PlainText;
  value: string;
  style?: 'primary' | 'danger';
  confirm?: { title: PlainText; text: TextObject; confirm: PlainText; deny: PlainText };
}

export type Block =
  | { type: 'header'; text: PlainText }
  | { type: 'section'; text: TextObject; fields?: TextObject[] }
  | { type: 'context'; elements: TextObject[] }
  | { type: 'actions'; block_id?: string; elements: ButtonElement[] }
  | { type: 'divider' };

/** A message for a `response_url` or a slash-command answer. `text` is the notification fallback. */
export interface SlackMessage {
  text: string;
  blocks: Block[];
  response_type?: 'in_channel' | 'ephemeral';
  replace_original?: boolean;
}

/**
 * `T`, refused by the type checker when any field, at any depth, holds a SecretValue:
 * the way a message builder's parameter says "no credential can come in here".
 */
export type Disclosable<T> = T extends SecretValue
  ? never
  : T extends readonly (infer U)[]
    ? readonly Disclosable<U>[]
    : T extends object
      ? { [K in keyof T]: Disclosable<T[K]> }
      : T;

/** Escapes Slack's three mrkdwn control characters, so user text cannot form a mention or a link. */
export const escapeMrkdwn = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Slack caps section text at 3000 characters and fields at 2000; long user text is cut, visibly. */
const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** User text, escaped and cut to fit. */
const user = (text: string, max = 500): string => escapeMrkdwn(clip(text, max));

/** Inline code of a value we generated or validated (ids, commands); still escaped. */
const code = (text: string): string => `\`${escapeMrkdwn(text.replace(/`/g, "'"))}\``;

const SLACK_USER_ID = /^[UW][A-Z0-9]+$/;

/** A principal as Slack shows it: a mention for a Slack user, the ARN or name otherwise. */
function who(principal: Principal): string {
  if (principal.kind === 'slack' && SLACK_USER_ID.test(principal.id)) return `<@${principal.id}>`;
  const id = principal.kind === 'aws' ? code(principal.id) : user(principal.id, 100);
  return principal.name ? `${user(principal.name, 100)} (${id})` : id;
}

/** A principal for the plain-text fallback and headers: no markup at all. */
const plainWho = (principal: Principal): string => clip(principal.name ?? principal.id, 100);

/** `requestedBy` of a campaign (`slack:U123`, `cli:alice`). */
function requester(requestedBy: string): string {
  const [kind, id] = requestedBy.split(':', 2);
  if (kind === 'slack' && id && SLACK_USER_ID.test(id)) return `<@${id}>`;
  return code(clip(requestedBy, 200));
}

/** A time each reader sees in their own time zone, with the ISO form as fallback. */
function when(iso: string): string {
  const seconds = Math.floor(Date.parse(iso) / 1_000);
  if (!Number.isFinite(seconds)) return escapeMrkdwn(iso);
  return `<!date^${seconds}^{date_short_pretty} {time}|${escapeMrkdwn(iso)}>`;
}

const mrkdwn = (text: string): Mrkdwn => ({ type: 'mrkdwn', text: clip(text, 2_900) });
const plain = (text: string): PlainText => ({ type: 'plain_text', text: clip(text, 150), emoji: true });
const section = (text: string): Block => ({ type: 'section', text: mrkdwn(text) });
const context = (text: string): Block => ({ type: 'context', elements: [mrkdwn(text)] });

const NEVER_IN_SLACK = 'Credentials are fetched with the keywarden CLI and are never posted in Slack.';

const credentialsCommand = (grant: Pick<Grant, 'grantId'>): string =>
  code(`keywarden breakglass credentials ${grant.grantId}`);

/** The facts of a request, shared by the request and its partial approvals. */
function requestFields(grant: Disclosable<Grant>, role: Disclosable<BreakglassRole>): Block[] {
  const approvals = grant.approvals.length;
  const approvedBy = approvals > 0 ? ` (${grant.approvals.map((a) => who(a.approver)).join(', ')})` : '';
  return [
    {
      type: 'section',
      text: mrkdwn(`${who(grant.requester)} asks for break-glass access to role ${code(role.id)}.`),
      fields: [
        mrkdwn(`*Role*\n${code(role.id)}: ${user(role.description, 300)}`),
        mrkdwn(`*Duration*\n${escapeMrkdwn(grant.duration)} (at most ${escapeMrkdwn(role.maxDuration)})`),
        mrkdwn(`*Incident*\n${grant.incident ? user(grant.incident, 100) : '_none given_'}`),
        mrkdwn(`*Approvals*\n${approvals} of ${role.approvalsRequired} required${approvedBy}`),
        mrkdwn(`*Grant*\n${code(grant.grantId)}`),
      ],
    },
    section(`*Reason*\n${user(grant.reason, 1_500)}`),
  ];
}

function decisionButtons(grant: Disclosable<Grant>, role: Disclosable<BreakglassRole>): Block {
  return {
    type: 'actions',
    block_id: `breakglass:${clip(grant.grantId, 200)}`,
    elements: [
      {
        type: 'button',
        action_id: APPROVE_ACTION_ID,
        text: plain('Approve'),
        value: grant.grantId,
        style: 'primary',
        confirm: {
          title: plain('Approve break-glass access?'),
          text: mrkdwn(
            `${who(grant.requester)} gets role ${code(role.id)} for ${escapeMrkdwn(grant.duration)}. You cannot approve your own request.`,
          ),
          confirm: plain('Approve'),
          deny: plain('Cancel'),
        },
      },
      {
        type: 'button',
        action_id: DENY_ACTION_ID,
        text: plain('Deny'),
        value: grant.grantId,
        style: 'danger',
      },
    ],
  };
}

/** A new break-glass request, posted in the channel with Approve and Deny buttons (value: the grant id). */
export function grantRequestedMessage<G extends Grant, R extends BreakglassRole>(
  grant: G & Disclosable<G>,
  role: R & Disclosable<R>,
): SlackMessage {
  return requested(grant, role);
}

function requested(grant: Disclosable<Grant>, role: Disclosable<BreakglassRole>): SlackMessage {
  return {
    response_type: 'in_channel',
    text: `Break-glass request ${grant.grantId}: ${escapeMrkdwn(plainWho(grant.requester))} asks for role ${role.id} for ${grant.duration}`,
    blocks: [
      { type: 'header', text: plain(`Break-glass request: ${role.id}`) },
      ...requestFields(grant, role),
      decisionButtons(grant, role),
      context(
        `Approvers of ${code(role.id)} decide; the requester can neither approve nor deny their own request. ${NEVER_IN_SLACK}`,
      ),
    ],
  };
}

/**
 * Where a request stands after a decision: partially approved (N of M, buttons kept for
 * the next approver), approved (the requester fetches the credential with the CLI),
 * denied, or, once over, ended.
 */
export function grantDecidedMessage<G extends Grant, R extends BreakglassRole>(
  grant: G & Disclosable<G>,
  role: R & Disclosable<R>,
): SlackMessage {
  const approvers = grant.approvals.map((a) => who(a.approver)).join(', ');
  switch (grant.state) {
    case 'requested': {
      if (grant.approvals.length === 0) return requested(grant, role);
      const count = `${grant.approvals.length}/${role.approvalsRequired}`;
      return {
        response_type: 'in_channel',
        text: `Break-glass request ${grant.grantId} for role ${role.id}: approved ${count}, waiting for another approver`,
        blocks: [
          { type: 'header', text: plain(`Break-glass request: ${role.id} (approved ${count})`) },
          ...requestFields(grant, role),
          section(
            `:hourglass_flowing_sand: *Partially approved ${count}* by ${approvers}; ${role.approvalsRequired - grant.approvals.length} more approval(s) needed.`,
          ),
          decisionButtons(grant, role),
          context(NEVER_IN_SLACK),
        ],
      };
    }
    case 'approved':
    case 'active': {
      const until = grant.expiresAt ? `, until ${when(grant.expiresAt)}` : '';
      return {
        response_type: 'in_channel',
        text: `Break-glass grant ${grant.grantId} for role ${role.id} approved`,
        blocks: [
          { type: 'header', text: plain(`Break-glass approved: ${role.id}`) },
          section(
            `:white_check_mark: *Approved* by ${approvers} (${grant.approvals.length} of ${role.approvalsRequired}): ${who(grant.requester)} has role ${code(role.id)} for ${escapeMrkdwn(grant.duration)}${until}.`,
          ),
          section(
            `${who(grant.requester)}, run ${credentialsCommand(grant)} in your terminal to get the credential. It is never posted in Slack.`,
          ),
          context(
            `Grant ${code(grant.grantId)} · incident ${grant.incident ? user(grant.incident, 100) : '_none_'} · reason: ${user(grant.reason, 300)}`,
          ),
        ],
      };
    }
    case 'denied': {
      const by = grant.deniedBy ? ` by ${who(grant.deniedBy)}` : '';
      const because = grant.denialReason ? `\n*Why:* ${user(grant.denialReason, 1_000)}` : '';
      return {
        response_type: 'in_channel',
        text: `Break-glass request ${grant.grantId} for role ${role.id} denied`,
        blocks: [
          { type: 'header', text: plain(`Break-glass denied: ${role.id}`) },
          section(
            `:no_entry: *Denied*${by}: ${who(grant.requester)}'s request for role ${code(role.id)} (${escapeMrkdwn(grant.duration)}) is closed.${because}`,
          ),
          context(`Grant ${code(grant.grantId)} · reason given: ${user(grant.reason, 300)}`),
        ],
      };
    }
    default:
      return ended(grant);
  }
}

/** A grant that ended, on time or early, and the review it now owes. */
export function grantEndedMessage<G extends Grant>(grant: G & Disclosable<G>): SlackMessage {
  return ended(grant);
}

function ended(grant: Disclosable<Grant>): SlackMessage {
  const at = grant.endedAt ? ` at ${when(grant.endedAt)}` : '';
  const how =
    grant.state === 'revoked'
      ? `:octagonal_sign: *Revoked*${grant.revokedBy ? ` by ${who(grant.revokedBy)}` : ''}${at}`
      : grant.state === 'expired'
        ? `:alarm_clock: *Expired*${at}`
        : `*${escapeMrkdwn(grant.state)}*`;
  const review = grant.review?.reviewedAt
    ? `Reviewed${grant.review.reviewer ? ` by ${who(grant.review.reviewer)}` : ''}.`
    : grant.review
      ? `Review due by ${when(grant.review.dueAt)}: someone other than the requester runs ${code(`keywarden breakglass review ${grant.grantId} --notes "…"`)}.`
      : '';
  return {
    response_type: 'in_channel',
    text: `Break-glass grant ${grant.grantId} for role ${grant.roleId} ${grant.state}`,
    blocks: [
      section(
        `${how}: ${who(grant.requester)}'s break-glass access to role ${code(grant.roleId)} has ended; its credentials no longer work.`,
      ),
      ...(review ? [context(review)] : []),
      context(
        `Grant ${code(grant.grantId)}${grant.incident ? ` · incident ${user(grant.incident, 100)}` : ''}`,
      ),
    ],
  };
}

/** A refusal or usage error, shown only to the person who typed the command. */
export function refusalMessage(text: string): SlackMessage {
  const shown = user(text, 2_800);
  return { response_type: 'ephemeral', text: shown, blocks: [section(`:warning: ${shown}`)] };
}

/** A plain acknowledgement, shown only to the person who typed the command ("Planning the revocation…"). */
export function noticeMessage(text: string): SlackMessage {
  const shown = user(text, 2_800);
  return { response_type: 'ephemeral', text: shown, blocks: [section(shown)] };
}

const OUTCOMES = ['revoked', 'already-revoked', 'skipped', 'failed', 'pending'] as const;

/** `aws-iam-access-key: 3 · vault-token: 2`. */
function perKind(counts: Disclosable<CampaignCounts>, what: 'total' | (typeof OUTCOMES)[number]): string {
  const kinds = Object.entries(counts.byKind)
    .filter(([, c]) => c !== undefined && c[what] > 0)
    .map(([kind, c]) => `${code(kind)}: ${c?.[what] ?? 0}`);
  return kinds.length > 0 ? kinds.join(' · ') : '_none_';
}

function campaignFacts(campaign: Disclosable<Campaign>): string {
  const selectors = campaign.selectors.map((s) => code(clip(s, 300))).join(' or ');
  return [
    `*Campaign* ${code(campaign.campaignId)} · requested by ${requester(campaign.requestedBy)}`,
    `*Selectors* ${selectors}`,
    `*Re-issue* ${campaign.reissue ? 'yes: identities with a delivery target get a fresh credential' : 'no'}`,
  ].join('\n');
}

/** The first message of a `/revoke` thread: what was selected, how many targets, per kind. */
export function campaignStartedMessage<C extends Campaign, N extends CampaignCounts>(
  campaign: C & Disclosable<C>,
  counts: N & Disclosable<N>,
): SlackMessage {
  const dryRun = campaign.dryRun ? ' (dry run: nothing is revoked)' : '';
  return {
    response_type: 'in_channel',
    text: `Revocation campaign ${campaign.campaignId} for ${escapeMrkdwn(campaign.incident)}: ${counts.total} target(s)${dryRun}`,
    blocks: [
      { type: 'header', text: plain(`Revocation for ${campaign.incident}${dryRun}`) },
      section(campaignFacts(campaign)),
      section(`*Targets* ${counts.total}\n${perKind(counts, 'total')}`),
      context(
        `Progress follows in this thread; ${code(`keywarden revoke status ${campaign.campaignId}`)} shows it too.`,
      ),
    ],
  };
}

const STATUS_ICON: Record<Campaign['status'], string> = {
  planned: ':clipboard:',
  running: ':hourglass_flowing_sand:',
  completed: ':white_check_mark:',
  failed: ':x:',
};

/** Where a campaign stands: counts by outcome, failures per kind, and the report once written. */
export function campaignProgressMessage<C extends Campaign, N extends CampaignCounts>(
  campaign: C & Disclosable<C>,
  counts: N & Disclosable<N>,
): SlackMessage {
  const o = counts.byOutcome;
  const icon = campaign.status === 'completed' && o.failed > 0 ? ':warning:' : STATUS_ICON[campaign.status];
  const lines = [
    `${icon} *${campaign.status}*: ${o.revoked} revoked · ${o['already-revoked']} already revoked · ${o.skipped} skipped · ${o.failed} failed · ${o.pending} pending, of ${counts.total}`,
    ...(o.failed > 0
      ? [
          `*Failed* ${perKind(counts, 'failed')}; retry with ${code(`keywarden revoke resume ${campaign.campaignId}`)}`,
        ]
      : []),
    ...(campaign.reportLocation ? [`*Report* ${code(campaign.reportLocation)}`] : []),
  ];
  return {
    response_type: 'in_channel',
    text: `Revocation campaign ${campaign.campaignId} for ${escapeMrkdwn(campaign.incident)}: ${campaign.status}, ${o.revoked + o['already-revoked']} of ${counts.total} revoked, ${o.failed} failed`,
    blocks: [
      section(lines.join('\n')),
      context(`Campaign ${code(campaign.campaignId)} · incident ${user(campaign.incident, 100)}`),
    ],
  };
}

/**
 * An artifact approval asked for with `/approve`: the digest, gate and environment, and an
 * Approve button (value `DIGEST GATE ENVIRONMENT`) for that gate's Slack approvers. Asking
 * approves nothing: the click does, by someone keywarden checks.
 */
export function artifactApprovalRequestedMessage(request: ApproveCommand, requestedBy: string): SlackMessage {
  const what = `${code(request.digest)} for gate *${escapeMrkdwn(request.gate)}* in ${code(request.environment)}`;
  return {
    response_type: 'in_channel',
    text: `Approval asked: ${request.digest} for ${request.gate} in ${request.environment}`,
    blocks: [
      { type: 'header', text: plain(`Artifact approval: ${request.gate} in ${request.environment}`) },
      section(`<@${SLACK_USER_ID.test(requestedBy) ? requestedBy : 'unknown'}> asks to approve ${what}.`),
      {
        type: 'actions',
        block_id: `ci-approve:${request.gate}:${clip(request.environment, 64)}`,
        elements: [
          {
            type: 'button',
            action_id: APPROVE_ARTIFACT_ACTION_ID,
            text: plain('Approve'),
            value: `${request.digest} ${request.gate} ${request.environment}`,
            style: 'primary',
            confirm: {
              title: plain(`Approve for ${request.gate}?`),
              text: mrkdwn(
                `keywarden signs your approval of ${what}. Approvers of the gate only; not the approver of the gate before it, and it never counts for a job you started.`,
              ),
              confirm: plain('Approve'),
              deny: plain('Cancel'),
            },
          },
        ],
      },
      context(`Check the chain with ${code(`keywarden approvals verify --digest ${request.digest}`)}.`),
    ],
  };
}

/** An artifact approval recorded (signed and appended). */
export function artifactApprovedMessage<A extends ApprovalRecord>(
  approval: A & Disclosable<A>,
): SlackMessage {
  return {
    response_type: 'in_channel',
    text: `Approved: ${approval.digest} for ${approval.gate} in ${approval.environment}`,
    blocks: [
      section(
        `:white_check_mark: *Approved* by ${who(approval.approver)}: ${code(approval.digest)} for gate *${escapeMrkdwn(approval.gate)}* in ${code(approval.environment)}, until ${when(approval.expiresAt)}.`,
      ),
      context(`Approval ${code(approval.id)} · signed by ${code(approval.keyId)}`),
    ],
  };
}
