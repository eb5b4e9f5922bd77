/**
 * Wording the revocation report's builder and its renderers share: durations, counts,
 * audit details, the order outcomes are shown in, and the backtick-quoted commands of a hint.
 */
import type { TargetOutcome } from './campaign.ts';
import type { EventDetails } from './revocation-report-model.ts';

/** The order outcomes are shown in (columns, legend): done first, then what is left. */
export const OUTCOME_ORDER = [
  'revoked',
  'already-revoked',
  'skipped',
  'failed',
  'pending',
] as const satisfies readonly TargetOutcome[];

/** Milliseconds as a person reads them: `850 ms`, `12.4 s`, `3 min 05 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${String(seconds).padStart(2, '0')} s`;
}

/** `1 target`, `3 targets`. */
export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** The printed details of an audit record on one line: `handle=…, outcome=…`. */
export const detailsText = (details: EventDetails): string =>
  Object.entries(details)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/**
 * A text whose backtick-quoted parts (the commands of a hint) are code: each part goes
 * through `code` or `prose`, and the results are joined.
 */
export const withCodeSpans = (
  text: string,
  code: (part: string) => string,
  prose: (part: string) => string,
): string =>
  text
    .split('`')
    .map((part, i) => (i % 2 === 1 ? code(part) : prose(part)))
    .join('');
