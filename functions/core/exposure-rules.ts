/**
 * keywarden's own detection rules (issue #14): what the established engines miss. Vault/OpenBao
 * tokens (`s.`, namespaced `s.<24>.<ns>`, batch `b.`, `hvs.`, `hvb.`, `hvr.`), AWS access key
 * ids with their secret access key nearby, literal `password=` assignments and the small PEM
 * private keys secretlint passes by, in plain text and inside base64- and URL-encoded segments.
 * Pure functions over a string: no I/O, nothing logged.
 *
 * Every pattern is linear: a literal prefix, bounded quantifiers over one character class (or
 * unambiguous alternatives), searches that never rescan, so a 50 MB build log scans in seconds
 * and no input can make it backtrack.
 */
import type { DetectedSecret, Encoding } from './exposure-types.ts';
import { SecretValue } from './secret-value.ts';

/** The names of keywarden's own rules, as `DetectedSecret.rule` carries them. */
export const OWN_RULES = [
  'vault-service-token',
  'vault-batch-token',
  'vault-hcp-token',
  'aws-access-key-pair',
  'aws-access-key-id',
  'password-assignment',
  'private-key',
] as const;
export type OwnRule = (typeof OWN_RULES)[number];

/** A segment of a text that decoded to readable text, with where the encoded form starts. */
export interface EncodedSegment {
  encoding: Exclude<Encoding, 'plain'>;
  /** Offset, 1-based line and column of the encoded segment in the scanned text. */
  offset: number;
  line: number;
  column: number;
  /** The encoded text as written. */
  raw: string;
  /** What it decodes to. */
  decoded: string;
}

const END_ALNUM = String.raw`(?![A-Za-z0-9_\-])`;
/** Characters that may not precede a token (so `x.s.…` or `abs.…` do not count). */
const TOKEN_CHAR = /[A-Za-z0-9_.\-/+]/;
/**
 * Whether a match starts a token. Checked in code, not by a leading lookbehind: a pattern that
 * starts with a literal lets the engine skip to it (2× faster over a log).
 */
function startsToken(text: string, index: number): boolean {
  return index === 0 || !TOKEN_CHAR.test(text[index - 1] ?? '');
}

/** Vault/OpenBao service token `s.<24>` and the namespaced `s.<24>.<namespace id>`. */
const SERVICE = /s\.[A-Za-z0-9]{24}(?:\.[A-Za-z0-9]{3,16})?(?![A-Za-z0-9_\-.])/g;
/** Vault/OpenBao batch token `b.<~100–140>` (base64url-ish body). */
const BATCH = new RegExp(`b\\.[A-Za-z0-9_\\-]{80,240}${END_ALNUM}`, 'g');
/** Vault 1.10+ / HCP service, batch and recovery tokens. */
const HCP = new RegExp(`hv[sbr]\\.[A-Za-z0-9_\\-]{24,400}${END_ALNUM}`, 'g');
/** AWS access key id: a long-term (`AKIA`) or temporary (`ASIA`) key. */
const AWS_ID = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g;
/** A 40-character secret access key candidate (base64 alphabet, not part of a longer run). */
const AWS_SECRET = /(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g;
const SECRET_KEYWORD = /secret/i;
/** `password=…`, `"password": "…"`, `PASSWD: …` with a literal value (not a variable or a mask). */
const PASSWORD =
  /(?<![A-Za-z0-9])(?:password|passwd|pwd)["']?[ \t]{0,4}[:=][ \t]{0,4}["']?([^\s"'`,;&<>()[\]{}$*]{8,128})/gi;
const PASSWORD_PLACEHOLDERS =
  /^(?:null|none|true|false|required|optional|changeme|password|redacted|x+|\.+)$/i;

/** Lines before and after an AWS key id searched for its secret access key. */
const AWS_PAIR_LINES = 3;
/** A base64 run shorter than this is not decoded (issue #14: "runs of ≥ 24 base64 chars"). */
const MIN_BASE64 = 24;
/** Longest encoded segment decoded (a bound on the work per segment). */
const MAX_SEGMENT = 1 << 20;

/**
 * The index of the last of `starts` (ascending, the first 0 or 1) at or before `at`: which line,
 * segment or input a position falls in. 0 when `at` comes before them all.
 */
export function lastStartAtOrBefore(starts: readonly number[], at: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] ?? 0) <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Offsets of the start of every line of a text: the map from offset to line and column. */
export class LineIndex {
  readonly #starts: number[] = [0];
  constructor(text: string) {
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.#starts.push(i + 1);
  }

  /** 1-based line and column of an offset. */
  position(offset: number): { line: number; column: number } {
    const line = this.lineOf(offset);
    return { line: line + 1, column: offset - (this.#starts[line] ?? 0) + 1 };
  }

  /** 0-based line of an offset. */
  lineOf(offset: number): number {
    return lastStartAtOrBefore(this.#starts, offset);
  }

  /** Offset of a 1-based line and column. */
  offset(line: number, column: number): number {
    return (this.#starts[line - 1] ?? 0) + column - 1;
  }

  /** Offset of the start of a 0-based line (the text's end past the last). */
  lineStart(line: number, textLength: number): number {
    return line < this.#starts.length ? (this.#starts[line] ?? textLength) : textLength;
  }
}

interface RawHit {
  rule: OwnRule;
  offset: number;
  value: SecretValue;
  accessKeyId?: string;
}

/** Mixed case: a random base62 body has both (a long identifier in one case does not). */
function mixedCase(s: string): boolean {
  return /[a-z]/.test(s) && /[A-Z]/.test(s);
}

function tokenHits(text: string, out: RawHit[]): void {
  for (const m of text.matchAll(SERVICE)) {
    // The 24-character body of a real token is random base62: mixed case. `s.` followed by a
    // long lowercase word (a Scala/Java package path) is not a token.
    if (startsToken(text, m.index) && mixedCase(m[0].slice(2, 26)))
      out.push({ rule: 'vault-service-token', offset: m.index, value: new SecretValue(m[0]) });
  }
  for (const m of text.matchAll(BATCH)) {
    if (startsToken(text, m.index) && mixedCase(m[0]))
      out.push({ rule: 'vault-batch-token', offset: m.index, value: new SecretValue(m[0]) });
  }
  for (const m of text.matchAll(HCP)) {
    if (startsToken(text, m.index) && mixedCase(m[0].slice(4)))
      out.push({ rule: 'vault-hcp-token', offset: m.index, value: new SecretValue(m[0]) });
  }
}

/** A secret access key is random base64: both cases and a digit or symbol, never all hex. */
function looksLikeAwsSecret(s: string): boolean {
  return mixedCase(s) && /[0-9/+]/.test(s) && !/^[0-9a-fA-F]+$/.test(s);
}

function awsHits(text: string, lines: LineIndex, out: RawHit[]): void {
  for (const m of text.matchAll(AWS_ID)) {
    const accessKeyId = m[0];
    const line = lines.lineOf(m.index);
    const from = lines.lineStart(Math.max(0, line - AWS_PAIR_LINES), text.length);
    const to = lines.lineStart(line + AWS_PAIR_LINES + 1, text.length);
    const secretAccessKey = nearestSecret(text, from, to, m.index, lines);
    out.push(
      secretAccessKey === undefined
        ? { rule: 'aws-access-key-id', offset: m.index, value: new SecretValue(accessKeyId), accessKeyId }
        : {
            rule: 'aws-access-key-pair',
            offset: m.index,
            // Exactly this key order: the IAM provider fingerprints a key pair in this form.
            value: SecretValue.ofJson({ accessKeyId, secretAccessKey }),
            accessKeyId,
          },
    );
  }
}

/**
 * The secret access key that belongs to the id at `idAt`: among 40-character candidates in the
 * window, one on a line that names a secret wins; then the nearest by line, then by offset.
 */
function nearestSecret(
  text: string,
  from: number,
  to: number,
  idAt: number,
  lines: LineIndex,
): string | undefined {
  const window = text.slice(from, to);
  const idLine = lines.lineOf(idAt);
  let best: { value: string; score: number } | undefined;
  for (const m of window.matchAll(AWS_SECRET)) {
    if (!looksLikeAwsSecret(m[0])) continue;
    const at = from + m.index;
    const candidateLine = lines.lineOf(at);
    const lineText = text.slice(lines.lineStart(candidateLine, text.length), at);
    const named = SECRET_KEYWORD.test(lineText) ? 0 : 1_000_000;
    const score = named + Math.abs(candidateLine - idLine) * 10_000 + Math.min(9_999, Math.abs(at - idAt));
    if (best === undefined || score < best.score) best = { value: m[0], score };
  }
  return best?.value;
}

function passwordHits(text: string, out: RawHit[]): void {
  for (const m of text.matchAll(PASSWORD)) {
    const value = m[1];
    if (value === undefined || PASSWORD_PLACEHOLDERS.test(value) || /^(.)\1*$/.test(value)) continue;
    out.push({
      rule: 'password-assignment',
      offset: m.index + m[0].length - value.length,
      value: new SecretValue(value),
    });
  }
}

const PEM_BEGIN = /-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED )?PRIVATE KEY-----/g;
const PEM_BODY = /^(?:[A-Za-z0-9+/=\s]|\\n){40,16384}$/;
/** The longest PEM block looked at (an RSA-8192 key is ~6.5 KB). */
const MAX_PEM = 16_384;

/**
 * Private keys in PEM, the block from BEGIN to END. secretlint's rule misses the small ones: it
 * wants 100 base64 characters starting `MI`, so an Ed25519 key (64) and a P-256 key in SEC1
 * (`MHc…`) pass it by.
 */
function privateKeyHits(text: string, out: RawHit[]): void {
  // The next `-----END ` after the current BEGIN, found again only once passed: a text of many
  // BEGINs and no END costs one pass, not one pass per BEGIN.
  let close = -1;
  for (const m of text.matchAll(PEM_BEGIN)) {
    const label = m[0].slice('-----BEGIN '.length, -'-----'.length);
    const footer = `-----END ${label}-----`;
    const bodyAt = m.index + m[0].length;
    if (close !== Number.POSITIVE_INFINITY && close < bodyAt) {
      close = text.indexOf('-----END ', bodyAt);
      if (close === -1) close = Number.POSITIVE_INFINITY;
    }
    if (close - m.index > MAX_PEM || !text.startsWith(footer, close)) continue;
    if (!PEM_BODY.test(text.slice(m.index + m[0].length, close))) continue;
    out.push({
      rule: 'private-key',
      offset: m.index,
      value: new SecretValue(text.slice(m.index, close + footer.length)),
    });
  }
}

function plainHits(text: string, lines: LineIndex): RawHit[] {
  const out: RawHit[] = [];
  tokenHits(text, out);
  awsHits(text, lines, out);
  passwordHits(text, out);
  privateKeyHits(text, out);
  return out;
}

/**
 * keywarden's own rules over plain text: each hit with its 1-based line and column,
 * `encoding: 'plain'`. Encoded segments are {@link findOwnSecrets}'s.
 */
export function findPlainSecrets(text: string, lines: LineIndex = new LineIndex(text)): DetectedSecret[] {
  return plainHits(text, lines)
    .sort((a, b) => a.offset - b.offset)
    .map((hit) => toDetected(hit, lines.position(hit.offset), 'plain'));
}

/** Text decoded from bytes, if it reads as text (base64 of binary does not). */
function readable(bytes: Buffer): string | undefined {
  if (bytes.length < 16) return undefined;
  let printable = 0;
  for (const b of bytes) if ((b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d) printable++;
  return printable / bytes.length >= 0.95 ? bytes.toString('latin1') : undefined;
}

/** Characters of a base64 run (standard and URL alphabets), by char code. */
const BASE64_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_')
  BASE64_CHAR[c.charCodeAt(0)] = 1;

/**
 * Runs of base64 characters of at least {@link MIN_BASE64}, with their `=` padding. A loop over
 * char codes, not a regex: a regex with `{24,}` retries at every word start of a log (4× slower).
 */
function* base64Runs(text: string): Generator<{ index: number; raw: string }> {
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (BASE64_CHAR[text.charCodeAt(i)] !== 1) {
      i++;
      continue;
    }
    const start = i;
    while (i < n && BASE64_CHAR[text.charCodeAt(i)] === 1) i++;
    if (i - start < MIN_BASE64) continue;
    let end = i;
    while (end < n && end - i < 2 && text.charCodeAt(end) === 61 /* = */) end++;
    yield { index: start, raw: text.slice(start, end) };
    i = end;
  }
}

const PERCENT = /%[0-9A-Fa-f]{2}/g;
const URL_CHAR = /[A-Za-z0-9._~!*'()+=&:/%-]/;

/**
 * The base64- and URL-encoded segments of a text that decode to readable text: base64 runs of
 * at least 24 characters (standard or URL alphabet), and runs of URL characters holding a
 * percent-escape. The scan is linear; each segment is decoded once.
 */
export function encodedSegments(text: string, lines: LineIndex = new LineIndex(text)): EncodedSegment[] {
  const out: EncodedSegment[] = [];
  for (const { index, raw } of base64Runs(text)) {
    // Node's base64 decoder reads both the standard and the URL alphabet. Hashes and random
    // blobs decode to binary: the first 18 bytes tell, before the whole run is decoded.
    if (raw.length > MAX_SEGMENT || readable(Buffer.from(raw.slice(0, MIN_BASE64), 'base64')) === undefined)
      continue;
    const decoded = readable(Buffer.from(raw, 'base64'));
    if (decoded !== undefined)
      out.push({ encoding: 'base64', offset: index, ...lines.position(index), raw, decoded });
  }
  let end = 0;
  for (const m of text.matchAll(PERCENT)) {
    if (m.index < end) continue;
    let start = m.index;
    while (start > 0 && URL_CHAR.test(text[start - 1] ?? '')) start--;
    end = m.index;
    while (end < text.length && URL_CHAR.test(text[end] ?? '')) end++;
    if (end - start > MAX_SEGMENT) continue;
    const raw = text.slice(start, end);
    const decoded = percentDecode(raw);
    if (decoded !== raw) out.push({ encoding: 'url', offset: start, ...lines.position(start), raw, decoded });
  }
  return out.sort((a, b) => a.offset - b.offset);
}

/** Percent-decoding that leaves a malformed escape as written (decodeURIComponent would throw). */
function percentDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}

/**
 * Whether a hit from a decoded segment repeats a plain one: the same value found in the clear
 * on the segment's line (a segment never spans lines). The encoding hid nothing then, and the
 * plain hit, at the value's own place, is the one kept.
 */
export function repeatsPlain(
  hit: DetectedSecret,
  plainValuesByLine: ReadonlyMap<number, ReadonlySet<string>>,
): boolean {
  return plainValuesByLine.get(hit.line)?.has(hit.value.reveal()) ?? false;
}

/** The values of plain hits, by line, for {@link repeatsPlain}. */
export function plainValuesByLine(hits: readonly DetectedSecret[]): Map<number, Set<string>> {
  const byLine = new Map<number, Set<string>>();
  for (const hit of hits) {
    if (hit.encoding !== 'plain') continue;
    const values = byLine.get(hit.line) ?? new Set<string>();
    values.add(hit.value.reveal());
    byLine.set(hit.line, values);
  }
  return byLine;
}

/** What every detector of one text shares: its line index and its decoded segments, found once. */
export interface ScanContext {
  lines: LineIndex;
  segments: EncodedSegment[];
}

/** The line index and encoded segments of a text. */
export function scanContext(text: string): ScanContext {
  const lines = new LineIndex(text);
  return { lines, segments: encodedSegments(text, lines) };
}

/**
 * keywarden's own rules over a text, in plain text and in its base64- and URL-encoded segments.
 * A hit in a segment carries the segment's encoding, line and column; a value the segment
 * shows in the clear (found by the plain scan on that line) is reported once, as plain.
 * Ordered by position.
 */
export function findOwnSecrets(text: string, context: ScanContext = scanContext(text)): DetectedSecret[] {
  const found = findPlainSecrets(text, context.lines);
  const plain = plainValuesByLine(found);
  for (const segment of context.segments) {
    for (const hit of findPlainSecrets(segment.decoded)) {
      const placed: DetectedSecret = {
        ...hit,
        encoding: segment.encoding,
        line: segment.line,
        column: segment.column,
      };
      if (!repeatsPlain(placed, plain)) found.push(placed);
    }
  }
  return found.sort((a, b) => a.line - b.line || a.column - b.column);
}

function toDetected(hit: RawHit, at: { line: number; column: number }, encoding: Encoding): DetectedSecret {
  return {
    rule: hit.rule,
    value: hit.value,
    ...(hit.accessKeyId === undefined ? {} : { accessKeyId: hit.accessKeyId }),
    line: at.line,
    column: at.column,
    encoding,
  };
}
