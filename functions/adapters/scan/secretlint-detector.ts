/**
 * The established engine behind `keywarden scan` (issue #14): secretlint and its recommended
 * preset, run in process on a string (no files, no config lookup). Its messages become
 * `DetectedSecret`s: rule `secretlint:<rule id>`, the value sliced from the text by the
 * message's range, line and column from its location.
 *
 * secretlint's core slows down with the size of a source and the number of its messages (a
 * 40 MB text full of tokens did not finish in 10 minutes), so a text is linted in chunks of
 * whole lines (128 KiB by default; a PEM block is never cut) and positions are shifted back.
 */
import { lintSource } from '@secretlint/core';
import { rules as recommendedRules } from '@secretlint/secretlint-rule-preset-recommend';
import { LineIndex } from '../../core/exposure-rules.ts';
import type { DetectedSecret } from '../../core/exposure-types.ts';
import type { SecretDetector } from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';

type LintConfig = Parameters<typeof lintSource>[0]['options']['config'];

/**
 * Preset rules left out, and why: each of these does not report the secret itself.
 * - `aws`: its range for a secret access key starts at the variable's name, not the key; and
 *   keywarden's own AWS rule pairs the id with its secret (the form a managed pair is
 *   fingerprinted in).
 * - `basicauth`, `database-connection-string`: report the whole URL, not the password.
 * - `filter-comments`: a filter (`secretlint-disable` comments), not a detector.
 */
export const EXCLUDED_SECRETLINT_RULES: ReadonlySet<string> = new Set([
  '@secretlint/secretlint-rule-aws',
  '@secretlint/secretlint-rule-basicauth',
  '@secretlint/secretlint-rule-database-connection-string',
  '@secretlint/secretlint-rule-filter-comments',
]);

const MULTI_LINE_RULES: ReadonlySet<string> = new Set(['@secretlint/secretlint-rule-privatekey']);

/** Options of {@link SecretlintDetector}. */
export interface SecretlintDetectorProps {
  /**
   * Largest chunk linted at once, in characters (cut at a line end; a PEM block is kept whole).
   * @default 131072
   */
  chunkSize?: number;
}

/** secretlint's recommended preset as a {@link SecretDetector}. */
export class SecretlintDetector implements SecretDetector {
  readonly #config: LintConfig;
  readonly #chunkSize: number;

  constructor(props: SecretlintDetectorProps = {}) {
    const chunkSize = props.chunkSize ?? 128 * 1024;
    if (!Number.isInteger(chunkSize) || chunkSize < 1_024) {
      throw new RangeError(
        `SecretlintDetector: expected chunkSize an integer ≥ 1024, got ${String(props.chunkSize)}`,
      );
    }
    this.#chunkSize = chunkSize;
    this.#config = {
      rules: recommendedRules
        .filter((rule) => !EXCLUDED_SECRETLINT_RULES.has(rule.meta.id))
        .map((rule) => ({ id: rule.meta.id, rule }) as LintConfig['rules'][number]),
    };
  }

  async detect(text: string): Promise<DetectedSecret[]> {
    if (text.length === 0) return [];
    const lines = new LineIndex(text);
    const found: DetectedSecret[] = [];
    for (const [start, end] of chunks(text, this.#chunkSize)) {
      const chunk = text.slice(start, end);
      const result = await lintSource({
        source: { content: chunk, filePath: 'scan.txt', contentType: 'text' },
        options: { config: this.#config, noPhysicFilePath: true },
      });
      for (const message of result.messages) {
        const [from, to] = message.range;
        const value = chunk.slice(from, to);
        if (value.trim().length === 0) continue;
        // A one-line token spanning lines is a misreported range: the value would be wrong.
        if (value.includes('\n') && !MULTI_LINE_RULES.has(message.ruleId)) continue;
        found.push({
          rule: `secretlint:${message.ruleId.replace(/^@secretlint\/secretlint-rule-/, '')}`,
          value: new SecretValue(value),
          ...lines.position(start + from),
          encoding: 'plain',
        });
      }
    }
    return found;
  }
}

const PEM_BEGIN = '-----BEGIN ';
const PEM_END = '-----END ';
/** A PEM block longer than this is not kept whole (a private key is a few KiB). */
const MAX_PEM = 64 * 1024;

/** [start, end) offsets of chunks of whole lines, none cutting a PEM block. */
function* chunks(text: string, size: number): Generator<[number, number]> {
  let start = 0;
  while (start < text.length) {
    let end = start + size;
    if (end >= text.length) {
      yield [start, text.length];
      return;
    }
    const newline = text.lastIndexOf('\n', end);
    end = newline > start ? newline + 1 : end;
    // Searches stay inside the chunk and one PEM's length past it: a log with no PEM at all
    // must not be searched back to its start for every chunk.
    const chunk = text.slice(start, end);
    const begin = chunk.lastIndexOf(PEM_BEGIN);
    if (begin !== -1 && chunk.lastIndexOf(PEM_END) < begin) {
      const close = text.slice(end, start + begin + MAX_PEM).indexOf(PEM_END);
      if (close !== -1) {
        const after = text.indexOf('\n', end + close);
        end = after === -1 ? text.length : after + 1;
      }
    }
    yield [start, end];
    start = end;
  }
}
