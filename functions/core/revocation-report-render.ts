/**
 * The three renderings of a revocation report, written side by side: JSON (the model itself,
 * keys in schema order), Markdown and HTML.
 */
import { renderHtml } from './revocation-report-html.ts';
import { renderMarkdown } from './revocation-report-markdown.ts';
import { type RevocationReport, RevocationReportSchema } from './revocation-report-model.ts';

/** The three renderings, written side by side. */
export interface RenderedReport {
  json: string;
  markdown: string;
  html: string;
}

/** The report as JSON, keys in schema order (validated again, so the order is the schema's). */
export const renderJson = (report: RevocationReport): string =>
  `${JSON.stringify(RevocationReportSchema.parse(report), null, 2)}\n`;

/** All three renderings of a report. */
export const renderReport = (report: RevocationReport): RenderedReport => ({
  json: renderJson(report),
  markdown: renderMarkdown(report),
  html: renderHtml(report),
});
