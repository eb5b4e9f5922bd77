/**
 * The revocation report as Markdown: headings and tables, every value escaped (no raw HTML,
 * no pipe or line break that could break a table).
 */
import type { RevocationReport } from './revocation-report-model.ts';
import {
  detailsText,
  formatDuration,
  OUTCOME_ORDER as OUTCOMES,
  withCodeSpans,
} from './revocation-report-text.ts';

/** Text safe in a Markdown table cell: no line breaks, no pipes, no markup, no raw HTML. */
export const markdownText = (value: string | number | boolean | undefined): string =>
  value === undefined || value === ''
    ? '—'
    : String(value)
        .replace(/\s*[\r\n]+\s*/g, ' ')
        .replace(/[\\`*_{}[\]<>|~&]/g, (c) => `\\${c}`);

/** Like {@link markdownText}, but the backtick-quoted commands of a hint stay code spans. */
const markdownWithCode = (text: string): string =>
  withCodeSpans(text, (part) => `\`${part.replace(/[`|\r\n]/g, '')}\``, markdownText);

/** A cell already in Markdown (built by {@link markdownWithCode}); anything else is escaped. */
class MarkdownCell {
  constructor(readonly text: string) {}
}
type Cell = string | number | boolean | undefined | MarkdownCell;
const mdCell = (value: Cell): string => (value instanceof MarkdownCell ? value.text : markdownText(value));
const mdRow = (cells: readonly Cell[]): string => `| ${cells.map(mdCell).join(' | ')} |`;
const mdTable = (head: readonly string[], rows: readonly (readonly Cell[])[]): string =>
  [mdRow(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(mdRow)].join('\n');

/** The report as Markdown: headings and tables, every value escaped. */
export function renderMarkdown(report: RevocationReport): string {
  const c = report.campaign;
  const t = report.timeToRevoke;
  const lines: string[] = [
    `# Revocation report ${markdownText(report.incident)} — campaign ${markdownText(c.campaignId)}`,
    '',
    `Generated ${markdownText(report.generatedAt)}. Status **${markdownText(c.status)}**${c.dryRun ? ' (dry run)' : ''}.`,
    '',
    '## Who ran it and when',
    '',
    mdTable(
      ['Field', 'Value'],
      [
        ['Requested by', c.requestedBy],
        ['Created', c.createdAt],
        ['Started', c.startedAt],
        ['Finished', c.finishedAt],
        ['Duration', c.durationMs === undefined ? undefined : formatDuration(c.durationMs)],
      ],
    ),
    '',
    '## Selectors and plan',
    '',
    ...report.plan.selectors.map((s) => `- ${markdownText(s)}`),
    '',
    `${report.plan.targets} targets; re-issue ${report.plan.reissue ? 'requested' : 'not requested'}; actions: ${report.plan.byAction.revoke} revoke, ${report.plan.byAction['revoke-prefix']} revoke-prefix, ${report.plan.byAction['deny-sessions']} deny-sessions.`,
    '',
    mdTable(
      ['Kind', 'Targets'],
      report.plan.byKind.map((k) => [k.kind, k.targets]),
    ),
    '',
    '## Outcomes',
    '',
    mdTable(
      ['Kind', 'Total', ...OUTCOMES],
      [
        ...report.outcomes.byKind.map((k) => [k.kind, k.total, ...OUTCOMES.map((o) => k[o])]),
        ['all', report.outcomes.total, ...OUTCOMES.map((o) => report.outcomes.byOutcome[o])],
      ],
    ),
    '',
    '## Time to revoke',
    '',
    t
      ? mdTable(
          ['Measured', 'p50', 'p95', 'max'],
          [[t.measured, formatDuration(t.p50Ms), formatDuration(t.p95Ms), formatDuration(t.maxMs)]],
        )
      : 'No target has been revoked yet.',
    '',
    '## Failures',
    '',
    report.failures.length === 0
      ? 'None.'
      : mdTable(
          ['Target', 'Kind', 'Owner', 'Error', 'Cause', 'Remediation'],
          report.failures.map((f) => [
            f.targetId,
            f.kind,
            f.owner ?? '(no owner)',
            f.error,
            f.cause,
            new MarkdownCell(markdownWithCode(f.remediation)),
          ]),
        ),
    '',
    '## Residual exposure',
    '',
    report.residualExposure.length === 0
      ? 'None: every selected credential is revoked.'
      : mdTable(
          ['Target', 'Kind', 'Outcome', 'Owner', 'Environment', 'Purpose', 'Why'],
          report.residualExposure.map((r) => [
            r.targetId,
            r.kind,
            r.outcome,
            r.owner ?? '(no owner)',
            r.environment,
            r.purpose,
            r.why,
          ]),
        ),
    '',
    '## Credential history',
    '',
  ];
  if (report.credentialHistory.length === 0) lines.push('No audit record of the affected identities.', '');
  for (const group of report.credentialHistory) {
    lines.push(
      `### ${markdownText(group.identityId)} · ${group.handle === undefined ? 'identity events' : markdownText(group.handle)}`,
      '',
      mdTable(
        ['Seq', 'Time', 'Phase', 'Type', 'Actor', 'Details', 'Hash'],
        group.events.map((e) => [e.seq, e.at, e.phase, e.type, e.actor, detailsText(e.details), e.hash]),
      ),
      '',
    );
  }
  lines.push(
    '## Re-issued identities',
    '',
    report.reissued.length === 0
      ? 'None.'
      : mdTable(
          ['Identity', 'Kind', 'Owner', 'Environment', 'Delivered to'],
          report.reissued.map((r) => [r.identityId, r.kind, r.owner, r.environment, r.delivery]),
        ),
    '',
    '## Controls evidenced',
    '',
    mdTable(
      ['Framework', 'Id', 'Title', 'Status', 'Evidence in this report'],
      report.controls.map((k) => [
        k.framework,
        k.id,
        k.title,
        k.status,
        new MarkdownCell(markdownWithCode(k.evidence)),
      ]),
    ),
    '',
  );
  return lines.join('\n');
}
