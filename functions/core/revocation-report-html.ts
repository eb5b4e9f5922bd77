/**
 * The revocation report as one self-contained HTML page: inline CSS, an inline SVG timeline,
 * no script and no external reference of any kind, every interpolated string escaped.
 */
import type { TargetOutcome } from './campaign.ts';
import type { RevocationReport } from './revocation-report-model.ts';
import {
  detailsText,
  formatDuration,
  OUTCOME_ORDER as OUTCOMES,
  withCodeSpans,
} from './revocation-report-text.ts';

/** Markup that is already safe; anything else interpolated into {@link html} is escaped. */
class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** Escapes text for HTML element content and quoted attribute values. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const fragment = (value: unknown): string => {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(fragment).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(String(value));
};

/** Tagged template: every interpolation is escaped unless it is itself built by `html`. */
const html = (strings: TemplateStringsArray, ...values: unknown[]): SafeHtml =>
  new SafeHtml(
    strings.reduce((out, part, i) => out + part + (i < values.length ? fragment(values[i]) : ''), ''),
  );

const OUTCOME_COLOR: Record<TargetOutcome, string> = {
  revoked: '#1a7f37',
  'already-revoked': '#0969da',
  skipped: '#6e7781',
  failed: '#cf222e',
  pending: '#9a6700',
};

/** One mark on the timeline: shape and colour both tell the outcome (readable in greyscale). */
function mark(outcome: TargetOutcome, x: number, y: number, label: string): SafeHtml {
  const color = OUTCOME_COLOR[outcome];
  const title = html`<title>${label}</title>`;
  const px = x.toFixed(1);
  const py = y.toFixed(1);
  switch (outcome) {
    case 'revoked':
      return html`<circle cx="${px}" cy="${py}" r="4" fill="${color}">${title}</circle>`;
    case 'already-revoked':
      return html`<circle cx="${px}" cy="${py}" r="4" fill="none" stroke="${color}" stroke-width="1.5">${title}</circle>`;
    case 'failed':
      return html`<path d="M${(x - 4).toFixed(1)} ${(y - 4).toFixed(1)}l8 8m0 -8l-8 8" stroke="${color}" stroke-width="2">${title}</path>`;
    default:
      return html`<rect x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" fill="${color}">${title}</rect>`;
  }
}

/** Campaign start → each target's finish, one lane per kind, with p50 and p95 lines. */
function timelineSvg(report: RevocationReport): SafeHtml {
  const kinds = report.outcomes.byKind.map((k) => k.kind);
  const timed = report.targets.filter((t) => t.sinceStartMs !== undefined);
  const ttr = report.timeToRevoke;
  const maxMs = Math.max(1, ...timed.map((t) => t.sinceStartMs ?? 0), ttr?.maxMs ?? 0);
  const left = 190;
  const right = 30;
  const top = 34;
  const lane = 34;
  const width = 960;
  const plot = width - left - right;
  const height = top + Math.max(1, kinds.length) * lane + 56;
  const xOf = (ms: number): number => left + (ms / maxMs) * plot;
  const bottom = top + Math.max(1, kinds.length) * lane;

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const x = xOf(f * maxMs);
    return html`<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${bottom}" class="grid"/><text x="${x.toFixed(1)}" y="${bottom + 16}" text-anchor="middle" class="tick">${formatDuration(f * maxMs)}</text>`;
  });
  const lanes = kinds.map((kind, i) => {
    const y = top + i * lane + lane / 2;
    const marks = timed
      .filter((t) => t.kind === kind)
      .map((t, j) =>
        // A small deterministic jitter keeps marks finishing together from hiding each other.
        mark(
          t.outcome,
          xOf(t.sinceStartMs ?? 0),
          y + ((j % 5) - 2) * 3,
          `${t.targetId}: ${t.outcome} after ${formatDuration(t.sinceStartMs ?? 0)}`,
        ),
      );
    return html`<text x="${left - 10}" y="${(y + 4).toFixed(1)}" text-anchor="end" class="lane">${kind}</text><line x1="${left}" y1="${(y + lane / 2).toFixed(1)}" x2="${width - right}" y2="${(y + lane / 2).toFixed(1)}" class="sep"/>${marks}`;
  });
  const percentileLine = (name: string, ms: number, dy: number) => {
    const x = xOf(ms).toFixed(1);
    return html`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${bottom}" class="pct"/><text x="${x}" y="${top - 10 - dy}" text-anchor="middle" class="pct-label">${name} ${formatDuration(ms)}</text>`;
  };
  const legend = OUTCOMES.filter((o) => report.outcomes.byOutcome[o] > 0).map((o, i) => {
    const x = left + i * 150;
    return html`${mark(o, x, bottom + 38, o)}<text x="${x + 10}" y="${bottom + 42}" class="tick">${o}</text>`;
  });
  const summary = ttr
    ? `Time from campaign start to each target's end, per kind. p50 ${formatDuration(ttr.p50Ms)}, p95 ${formatDuration(ttr.p95Ms)}, max ${formatDuration(ttr.maxMs)}.`
    : 'No target has finished yet.';
  return html`<svg viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-labelledby="tl-title tl-desc">
<title id="tl-title">Revocation timeline</title><desc id="tl-desc">${summary}</desc>
${ticks}${lanes}${ttr ? [percentileLine('p50', ttr.p50Ms, 0), percentileLine('p95', ttr.p95Ms, ttr.p95Ms - ttr.p50Ms < maxMs * 0.08 ? 12 : 0)] : ''}${legend}
</svg>`;
}

const STYLE = `
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--band:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1100px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px}
.muted{color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--band);font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--band);padding:1px 4px;border-radius:4px;word-break:break-all}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:140px}.card b{display:block;font-size:20px}
.status{font-weight:600;padding:1px 6px;border-radius:10px;font-size:12px;white-space:nowrap}
.evidenced{background:#dafbe1;color:#1a7f37}.partial{background:#fff8c5;color:#7d4e00}.not-evidenced{background:#ffebe9;color:#cf222e}
.revoked{color:#1a7f37}.already-revoked{color:#0969da}.skipped{color:#6e7781}.failed{color:#cf222e}.pending{color:#9a6700}
svg{border:1px solid var(--line);border-radius:6px;background:#fff}
svg .grid{stroke:#eaeef2}svg .sep{stroke:#eaeef2}svg .tick{font-size:11px;fill:#59636e}svg .lane{font-size:12px;fill:#1f2328}
svg .pct{stroke:#8250df;stroke-dasharray:4 3;stroke-width:1.5}svg .pct-label{font-size:11px;fill:#8250df;font-weight:600}
@media print{body{padding:0}h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
`;

const cell = (value: string | number | undefined, className?: string): SafeHtml =>
  className ? html`<td class="${className}">${value ?? '—'}</td>` : html`<td>${value ?? '—'}</td>`;

/** A table with a header row (`th` cells made from text, or given whole); the body on lines of its own. */
const table = (head: readonly (string | SafeHtml)[], body: unknown): SafeHtml =>
  html`<table><thead><tr>${head.map((h) => (h instanceof SafeHtml ? h : html`<th>${h}</th>`))}</tr></thead><tbody>
${body}
</tbody></table>`;

/** Inline code spans for the backtick-quoted commands of a remediation hint; the rest is escaped. */
const withCode = (text: string): SafeHtml =>
  new SafeHtml(withCodeSpans(text, (part) => `<code>${escapeHtml(part)}</code>`, escapeHtml));

/**
 * The report as one self-contained HTML page: inline CSS, an inline SVG timeline, no script
 * and no external reference of any kind (a Content-Security-Policy forbids them too), every
 * interpolated string escaped.
 */
export function renderHtml(report: RevocationReport): string {
  const c = report.campaign;
  const t = report.timeToRevoke;
  const o = report.outcomes.byOutcome;
  const title = `Revocation report ${report.incident} — ${c.campaignId}`;
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${new SafeHtml(STYLE)}</style>
</head>
<body>
<header>
<h1>${title}</h1>
<p class="muted">Status <b>${c.status}</b>${c.dryRun ? ' (dry run)' : ''} · generated ${report.generatedAt} · no secret value appears in this report</p>
<div class="cards">
<div class="card"><span class="muted">Targets</span><b>${report.outcomes.total}</b></div>
<div class="card"><span class="muted">Revoked</span><b class="revoked">${o.revoked + o['already-revoked']}</b></div>
<div class="card"><span class="muted">Failed</span><b class="failed">${o.failed}</b></div>
<div class="card"><span class="muted">Skipped</span><b class="skipped">${o.skipped}</b></div>
<div class="card"><span class="muted">p95 to revoke</span><b>${t ? formatDuration(t.p95Ms) : '—'}</b></div>
</div>
</header>
<main>
<section><h2>Who ran it and when</h2>
<table><tbody>
<tr><th scope="row">Incident</th>${cell(report.incident)}</tr>
<tr><th scope="row">Requested by</th>${cell(c.requestedBy)}</tr>
<tr><th scope="row">Created</th>${cell(c.createdAt)}</tr>
<tr><th scope="row">Started</th>${cell(c.startedAt)}</tr>
<tr><th scope="row">Finished</th>${cell(c.finishedAt)}</tr>
<tr><th scope="row">Duration</th>${cell(c.durationMs === undefined ? undefined : formatDuration(c.durationMs))}</tr>
</tbody></table></section>

<section><h2>Selectors and plan</h2>
<ul>${report.plan.selectors.map((s) => html`<li><code>${s}</code></li>`)}</ul>
<p>${report.plan.targets} targets · re-issue ${report.plan.reissue ? 'requested' : 'not requested'} · actions: ${report.plan.byAction.revoke} revoke, ${report.plan.byAction['revoke-prefix']} revoke-prefix, ${report.plan.byAction['deny-sessions']} deny-sessions</p>
${table(
  ['Kind', 'Targets'],
  report.plan.byKind.map((k) => html`<tr>${cell(k.kind)}${cell(k.targets, 'n')}</tr>`),
)}</section>

<section><h2>Outcomes</h2>
${table(
  ['Kind', 'Total', ...OUTCOMES.map((name) => html`<th class="${name}">${name}</th>`)],
  html`${report.outcomes.byKind.map((k) => html`<tr>${cell(k.kind)}${cell(k.total, 'n')}${OUTCOMES.map((name) => cell(k[name], 'n'))}</tr>`)}
<tr><th scope="row">all</th>${cell(report.outcomes.total, 'n')}${OUTCOMES.map((name) => cell(o[name], 'n'))}</tr>`,
)}</section>

<section><h2>Time to revoke</h2>
${
  t
    ? html`<table><thead><tr><th>Measured</th><th>p50</th><th>p95</th><th>max</th></tr></thead><tbody><tr>${cell(t.measured, 'n')}${cell(formatDuration(t.p50Ms), 'n')}${cell(formatDuration(t.p95Ms), 'n')}${cell(formatDuration(t.maxMs), 'n')}</tr></tbody></table>`
    : html`<p>No target has been revoked yet.</p>`
}
<figure>${timelineSvg(report)}<figcaption class="muted">Each mark is one target, placed at the time it ended after the campaign started; dashed lines are p50 and p95 of revoked and already-revoked targets.</figcaption></figure>
</section>

<section><h2>Failures</h2>
${
  report.failures.length === 0
    ? html`<p>None.</p>`
    : table(
        ['Target', 'Kind', 'Owner', 'Error', 'Cause', 'Remediation'],
        report.failures.map(
          (f) =>
            html`<tr><td><code>${f.targetId}</code></td>${cell(f.kind)}${cell(f.owner ?? '(no owner)')}${cell(f.error)}${cell(f.cause)}<td>${withCode(f.remediation)}</td></tr>`,
        ),
      )
}
</section>

<section><h2>Residual exposure</h2>
${
  report.residualExposure.length === 0
    ? html`<p>None: every selected credential is revoked.</p>`
    : html`<p>What could not be revoked. Call the owner of each.</p>${table(
        ['Target', 'Kind', 'Outcome', 'Owner', 'Environment', 'Purpose', 'Why'],
        report.residualExposure.map(
          (r) =>
            html`<tr><td><code>${r.targetId}</code></td>${cell(r.kind)}${cell(r.outcome, r.outcome)}${cell(r.owner ?? '(no owner)')}${cell(r.environment)}${cell(r.purpose)}${cell(r.why)}</tr>`,
        ),
      )}`
}
</section>

<section><h2>Credential history</h2>
${
  report.credentialHistory.length === 0
    ? html`<p>No audit record of the affected identities.</p>`
    : report.credentialHistory.map(
        (
          g,
        ) => html`<h3><code>${g.identityId}</code> · ${g.handle === undefined ? 'identity events' : html`<code>${g.handle}</code>`}${g.kind ? html` <span class="muted">(${g.kind})</span>` : ''}</h3>
${table(
  ['Seq', 'Time', 'Phase', 'Type', 'Actor', 'Details', 'Hash'],
  g.events.map(
    (e) =>
      html`<tr>${cell(e.seq, 'n')}${cell(e.at)}${cell(e.phase)}${cell(e.type)}${cell(e.actor)}${cell(detailsText(e.details) || undefined)}<td><code>${e.hash}</code></td></tr>`,
  ),
)}`,
      )
}
</section>

<section><h2>Re-issued identities</h2>
${
  report.reissued.length === 0
    ? html`<p>None.</p>`
    : table(
        ['Identity', 'Kind', 'Owner', 'Environment', 'Delivered to'],
        report.reissued.map(
          (r) =>
            html`<tr><td><code>${r.identityId}</code></td>${cell(r.kind)}${cell(r.owner)}${cell(r.environment)}${cell(r.delivery)}</tr>`,
        ),
      )
}
</section>

<section><h2>Controls evidenced</h2>
${table(
  ['Framework', 'Id', 'Title', 'Status', 'Evidence in this report'],
  report.controls.map(
    (k) =>
      html`<tr>${cell(k.framework)}<td><b>${k.id}</b></td>${cell(k.title)}<td><span class="status ${k.status}">${k.status}</span></td><td>${withCode(k.evidence)}</td></tr>`,
  ),
)}</section>
</main>
</body>
</html>
`;
  return page.text;
}
