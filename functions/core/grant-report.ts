/**
 * The per-grant break-glass report: who asked, why, who approved, when the credential was
 * issued, when it ended and how, the review, and what the credential was used for as far as
 * an audit trail shows it (keywarden's own chain, and the provider's trail where keywarden
 * can read it: OpenBao's audit device locally). Pure: the caller gathers the records.
 */
import type { AuditRecord } from './audit.ts';
import type { BreakglassRole, Grant, Principal } from './grant.ts';

/** One use of a grant's credential, from the provider's audit trail. */
export interface GrantUsage {
  at: string;
  /** What was done, such as `read secret/data/prod/db` or `s3:GetObject`. */
  action: string;
  /** Where the record comes from, such as `openbao-audit` or `cloudtrail`. */
  source: string;
}

export interface GrantReport {
  grantId: string;
  role: { id: string; description: string; target: string };
  requester: string;
  reason: string;
  incident?: string | undefined;
  duration: string;
  state: Grant['state'];
  approvals: { by: string; at: string }[];
  deniedBy?: string | undefined;
  timeline: { at: string; event: string; actor: string; details: string }[];
  issued: { type: string; handle: string; issuedAt: string; expiresAt: string }[];
  requestedAt: string;
  approvedAt?: string | undefined;
  expiresAt?: string | undefined;
  endedAt?: string | undefined;
  endedBy?: string | undefined;
  review: { dueAt?: string; reviewer?: string; reviewedAt?: string; notes?: string; overdue: boolean };
  usage: { available: boolean; note: string; events: GrantUsage[] };
}

const who = (p: Principal | undefined) =>
  p ? (p.name ? `${p.name} (${p.kind}:${p.id})` : `${p.kind}:${p.id}`) : '';

const targetOf = (role: BreakglassRole) =>
  role.target.type === 'aws-role'
    ? `AWS role ${role.target.roleArn}`
    : `Vault policies ${role.target.policies.join(', ')}`;

/** Details of an audit record in one line, keys sorted; records never hold secret values. */
const oneLine = (details: Record<string, unknown>) =>
  Object.keys(details)
    .sort()
    .map((key) => `${key}=${typeof details[key] === 'string' ? details[key] : JSON.stringify(details[key])}`)
    .join(' ');

export function grantReport(input: {
  grant: Grant;
  role: BreakglassRole;
  /** The audit records whose subject is the grant. */
  records: readonly AuditRecord[];
  usage: { available: boolean; note: string; events: readonly GrantUsage[] };
  now: Date;
}): GrantReport {
  const { grant, role } = input;
  const review = grant.review;
  return {
    grantId: grant.grantId,
    role: { id: role.id, description: role.description, target: targetOf(role) },
    requester: who(grant.requester),
    reason: grant.reason,
    incident: grant.incident,
    duration: grant.duration,
    state: grant.state,
    approvals: grant.approvals.map((a) => ({ by: who(a.approver), at: a.at })),
    deniedBy: grant.deniedBy ? who(grant.deniedBy) : undefined,
    timeline: input.records
      .filter((r) => r.subject === grant.grantId)
      .map((r) => ({ at: r.at, event: r.type, actor: r.actor, details: oneLine(r.details) })),
    issued: grant.credentials.map((c) => ({ ...c })),
    requestedAt: grant.requestedAt,
    approvedAt: grant.approvedAt,
    expiresAt: grant.expiresAt,
    endedAt: grant.endedAt,
    endedBy: grant.revokedBy ? who(grant.revokedBy) : grant.endedBy,
    review: {
      ...(review?.dueAt ? { dueAt: review.dueAt } : {}),
      ...(review?.reviewer ? { reviewer: who(review.reviewer) } : {}),
      ...(review?.reviewedAt ? { reviewedAt: review.reviewedAt } : {}),
      ...(review?.notes ? { notes: review.notes } : {}),
      overdue: review !== undefined && !review.reviewedAt && Date.parse(review.dueAt) < input.now.getTime(),
    },
    usage: { ...input.usage, events: [...input.usage.events].sort((a, b) => a.at.localeCompare(b.at)) },
  };
}

const cell = (text: string | undefined) => (text ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The report as Markdown, for the incident ticket. */
export function grantReportMarkdown(report: GrantReport): string {
  const lines = [
    `# Break-glass grant ${report.grantId}`,
    '',
    `| | |`,
    `|---|---|`,
    `| role | ${cell(report.role.id)}: ${cell(report.role.description)} (${cell(report.role.target)}) |`,
    `| requester | ${cell(report.requester)} |`,
    `| reason | ${cell(report.reason)} |`,
    `| incident | ${cell(report.incident ?? '(none)')} |`,
    `| duration | ${report.duration} |`,
    `| state | ${report.state} |`,
    `| approvals | ${report.approvals.map((a) => `${cell(a.by)} at ${a.at}`).join('; ') || '(none)'} |`,
    `| requested / approved | ${report.requestedAt} / ${report.approvedAt ?? '—'} |`,
    `| ends / ended | ${report.expiresAt ?? '—'} / ${report.endedAt ?? '—'} (${cell(report.endedBy ?? '—')}) |`,
    `| review | ${report.review.reviewedAt ? `${cell(report.review.reviewer)} at ${report.review.reviewedAt}: ${cell(report.review.notes)}` : report.review.dueAt ? `due ${report.review.dueAt}${report.review.overdue ? ' — OVERDUE' : ''}` : 'due once the grant ends'} |`,
    '',
    '## Credentials issued',
    '',
    ...(report.issued.length
      ? [
          '| type | handle | issued | ends |',
          '|---|---|---|---|',
          ...report.issued.map((c) => `| ${c.type} | ${c.handle} | ${c.issuedAt} | ${c.expiresAt} |`),
        ]
      : ['None: the credentials were never fetched.']),
    '',
    '## What the credential was used for',
    '',
    report.usage.note,
    '',
    ...(report.usage.events.length
      ? [
          '| at | action | source |',
          '|---|---|---|',
          ...report.usage.events.map((u) => `| ${u.at} | ${cell(u.action)} | ${u.source} |`),
        ]
      : []),
    '',
    '## Audit trail',
    '',
    '| at | event | actor | details |',
    '|---|---|---|---|',
    ...report.timeline.map((t) => `| ${t.at} | ${t.event} | ${cell(t.actor)} | ${cell(t.details)} |`),
    '',
  ];
  return lines.join('\n');
}
