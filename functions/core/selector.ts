/**
 * Selectors: which credentials an incident responder means, written as text on the
 * command line or in Slack, and evaluated against identities and their credential
 * versions.
 *
 * Grammar (one selector, one `--selector` flag):
 *
 * ```
 * selector := term ("," term)*            terms are ANDed
 * term     := key ("=" | "!=") values     "!=" negates the whole term
 *           | "tag:" NAME                 a tag is present (same as tag:NAME=*)
 * values   := value ("|" value)*          any one of the values
 * value    := text, where "*" matches any run of characters (not in dates)
 * key      := identity | kind | owner | repo | stage | env | environment | tag:NAME
 *           | issued-before | issued-after | access-key | fingerprint | handle
 * ```
 *
 * Several selectors are ORed ({@link parseSelectors}, {@link matchesAny}).
 *
 * Identity terms (identity, kind, owner, repo, stage, env, tag) look at the declared
 * identity. Version terms (issued-before, issued-after, access-key, fingerprint,
 * handle) look at its live (not revoked) credential versions: a selector matches when
 * the identity terms hold and ONE live version satisfies every version term of that
 * selector, so `issued-after=2026-01-01,issued-before=2026-02-01` means versions
 * issued in January. A selector without version terms selects the identity whole,
 * with all its live versions.
 */
import type { CredentialVersion } from './credential-version.ts';
import { ValidationError } from './errors.ts';
import { type Identity, IdentityKindSchema, StageSchema, stagesOf } from './identity.ts';
import { wholeScope } from './kinds.ts';

/** What a selector is evaluated against: one identity and the credential versions recorded for it. */
export interface SelectorSubject {
  identity: Identity;
  /** Every recorded version, in any stage; revoked ones never match. May be empty. */
  versions: readonly CredentialVersion[];
}

/** Keys that look at the identity as declared. */
export type IdentityKey = 'identity' | 'kind' | 'owner' | 'repo' | 'stage' | 'env' | 'tag';
/** Keys that look at the identity's live credential versions. */
export type VersionKey = 'issued-before' | 'issued-after' | 'access-key' | 'fingerprint' | 'handle';
export type SelectorKey = IdentityKey | VersionKey;

/** One parsed term, such as `env!=dev|test`. Plain data: it can be logged or stored. */
export interface SelectorTerm {
  /** The term as written, trimmed. */
  text: string;
  key: SelectorKey;
  /** The tag name, for `tag:NAME` terms only. */
  tag?: string;
  /** Written with `!=`: the term holds when none of the values matches. */
  negated: boolean;
  /** Alternatives (`|`); may hold `*` wildcards. Dates are normalized to ISO date-times. */
  values: string[];
}

/** One parsed selector: its terms, all of which must hold. */
export interface Selector {
  text: string;
  terms: SelectorTerm[];
}

/** The keys a selector accepts, as shown in help and error messages. */
export const SELECTOR_KEYS = [
  'identity',
  'kind',
  'owner',
  'repo',
  'stage',
  'env',
  'environment',
  'tag:NAME',
  'issued-before',
  'issued-after',
  'access-key',
  'fingerprint',
  'handle',
] as const;

const VERSION_KEYS: readonly SelectorKey[] = [
  'issued-before',
  'issued-after',
  'access-key',
  'fingerprint',
  'handle',
];
/** Written key → key, for every key but `tag:NAME`. */
const WRITTEN_KEYS: ReadonlyMap<string, SelectorKey> = new Map<string, SelectorKey>([
  ...(['identity', 'kind', 'owner', 'repo', 'stage', 'env', ...VERSION_KEYS] as const).map(
    (key) => [key, key] as const,
  ),
  ['environment', 'env'],
]);
const DATE_KEYS: readonly SelectorKey[] = ['issued-before', 'issued-after'];
/** Keys where two positive terms without wildcards can never both hold: almost surely meant as "either". */
const SINGLE_VALUED: readonly SelectorKey[] = [
  'identity',
  'kind',
  'owner',
  'repo',
  'env',
  'tag',
  'access-key',
  'fingerprint',
  'handle',
];

const EXAMPLE = 'stage=deploy,env=prod';
const quote = (text: string): string => JSON.stringify(text);
const hasWildcard = (value: string): boolean => value.includes('*');

class TermError extends Error {
  constructor(
    readonly expected: string,
    readonly got: string,
  ) {
    super(`expected ${expected}, got ${got}`);
  }
}

/** Checks a value against a closed list; a wildcard must match at least one entry. */
function checkEnum(label: string, options: readonly string[], value: string): void {
  const ok = hasWildcard(value)
    ? options.some((option) => glob(value).test(option))
    : options.includes(value);
  if (!ok) throw new TermError(`${label} ${options.join(' | ')}`, quote(value));
}

function checkPattern(pattern: RegExp, expected: string, value: string): void {
  if (!pattern.test(value)) throw new TermError(expected, quote(value));
}

/** `2026-11-21` (midnight UTC) or a date-time with a zone, normalized to `toISOString()` form. */
function parseDate(value: string): string {
  const expected = 'a date such as 2026-11-21 or a date-time such as 2026-11-21T09:30:00Z';
  const match = /^(\d{4})-(\d{2})-(\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.exec(
    value,
  );
  if (!match) throw new TermError(expected, quote(value));
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  // Date.parse rolls 2026-02-30 over to March; a responder's typo must not move the cut-off.
  const calendar = new Date(Date.UTC(year, month - 1, day));
  const millis = Date.parse(match[4] ? value : `${value}T00:00:00Z`);
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day || Number.isNaN(millis))
    throw new TermError(expected, quote(value));
  return new Date(millis).toISOString();
}

/** Validates and normalizes one value of a term. */
function checkValue(key: SelectorKey, value: string): string {
  switch (key) {
    case 'identity':
      checkPattern(
        /^[a-z0-9._*-]{1,128}$/,
        "an identity id of lowercase letters, digits, '.', '_' or '-' ('*' as a wildcard)",
        value,
      );
      return value;
    case 'kind':
      checkEnum('kind', IdentityKindSchema.options, value);
      return value;
    case 'stage':
      checkEnum('stage', StageSchema.options, value);
      return value;
    case 'repo':
      checkPattern(/^[\w.*-]+\/[\w.*-]+$/, 'a repository as owner/name (such as acme/app or acme/*)', value);
      return value;
    case 'access-key':
      checkPattern(
        /^[A-Z0-9*]{1,128}$/,
        'an access key id: AKIA or ASIA and 16 upper-case letters or digits',
        value,
      );
      return value;
    case 'fingerprint':
      checkPattern(
        /^hmac-sha256:[0-9a-f*]+$/,
        'a fingerprint such as hmac-sha256:3f2a… (lowercase hex)',
        value,
      );
      return value;
    case 'issued-before':
    case 'issued-after':
      return parseDate(value);
    default:
      return value;
  }
}

/** Splits `key=values` / `key!=values` / `tag:NAME` and validates it. */
function parseTerm(text: string): SelectorTerm {
  if (text === '') throw new TermError('a term between commas', 'an empty one');
  const equals = text.indexOf('=');
  if (equals < 0) {
    if (text.startsWith('tag:')) return parseTerm(`${text}=*`);
    throw new TermError(`KEY=VALUE or KEY!=VALUE such as ${EXAMPLE.split(',')[0]}`, quote(text));
  }
  const negated = text[equals - 1] === '!';
  const writtenKey = text.slice(0, negated ? equals - 1 : equals).trim();
  const rest = text.slice(equals + 1).trim();
  const operator = negated ? '!=' : '=';

  let key: SelectorKey;
  let tag: string | undefined;
  if (writtenKey.startsWith('tag:')) {
    key = 'tag';
    tag = writtenKey.slice(4).trim();
    if (!/^[^\s=!|*,]+$/.test(tag))
      throw new TermError('a tag name after "tag:" such as tag:team=payments', quote(writtenKey));
  } else {
    const known = WRITTEN_KEYS.get(writtenKey.toLowerCase());
    if (!known) throw new TermError(`a key ${SELECTOR_KEYS.join(' | ')}`, quote(writtenKey));
    key = known;
  }

  if (rest === '') throw new TermError(`a value after "${operator}"`, 'nothing');
  const raw = rest.split('|').map((value) => value.trim());
  if (raw.some((value) => value === '')) throw new TermError('a value on each side of "|"', 'an empty one');
  if (DATE_KEYS.includes(key)) {
    const opposite = key === 'issued-before' ? 'issued-after' : 'issued-before';
    if (negated) throw new TermError(`${key}=DATE (for the opposite, use ${opposite})`, '"!="');
    if (raw.length > 1) throw new TermError('one date', `${raw.length} (${quote(rest)})`);
  }
  const values = raw.map((value) => checkValue(key, value));
  return { text, key, ...(tag === undefined ? {} : { tag }), negated, values };
}

/** A second positive exact term on a key that holds one value could never match: the writer meant "either". */
function contradiction(terms: readonly SelectorTerm[]): { term: SelectorTerm; error: TermError } | undefined {
  const seen = new Set<string>();
  for (const term of terms) {
    if (term.negated || !SINGLE_VALUED.includes(term.key) || term.values.some(hasWildcard)) continue;
    const slot = term.key === 'tag' ? `tag:${term.tag}` : term.key;
    if (seen.has(slot)) {
      const expected = `at most one exact ${slot}=… term in a selector (for either, write ${slot}=a|b or pass another selector)`;
      return { term, error: new TermError(expected, 'a second one') };
    }
    seen.add(slot);
  }
  return undefined;
}

/**
 * Parses one selector such as `stage=deploy,env=prod`.
 *
 * @throws ValidationError naming the selector and the bad term, saying what was expected
 *   and what was received.
 */
export function parseSelector(text: string): Selector {
  const trimmed = text.trim();
  const fail = (detail: string): never => {
    throw new ValidationError(`selector ${quote(text)}: ${detail}`);
  };
  if (trimmed === '') return fail(`expected at least one term such as ${EXAMPLE}, got nothing`);
  const terms: SelectorTerm[] = [];
  for (const termText of trimmed.split(',').map((term) => term.trim())) {
    try {
      terms.push(parseTerm(termText));
    } catch (error) {
      if (error instanceof TermError) fail(`term ${quote(termText)}: ${error.message}`);
      throw error;
    }
  }
  const clash = contradiction(terms);
  if (clash) fail(`term ${quote(clash.term.text)}: ${clash.error.message}`);
  return { text: trimmed, terms };
}

/**
 * Parses the selectors of one request (one per `--selector` flag); a subject is
 * selected when ANY of them matches.
 *
 * @throws ValidationError when there is none, or for the first invalid one.
 */
export function parseSelectors(texts: readonly string[]): Selector[] {
  if (texts.length === 0)
    throw new ValidationError(`selectors: expected at least one selector such as ${EXAMPLE}, got none`);
  return texts.map(parseSelector);
}

const globs = new Map<string, RegExp>();
/** `*` matches any run of characters, `/` included; everything else is literal. */
function glob(pattern: string, caseInsensitive = false): RegExp {
  const cacheKey = `${caseInsensitive ? 'i' : 's'}${pattern}`;
  let regex = globs.get(cacheKey);
  if (!regex) {
    const body = pattern
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
      .join('.*');
    regex = new RegExp(`^${body}$`, caseInsensitive ? 'i' : '');
    // Selectors come from a handful of flags; the cap only guards a long-lived process.
    if (globs.size > 1_000) globs.clear();
    globs.set(cacheKey, regex);
  }
  return regex;
}

const anyValue = (term: SelectorTerm, candidate: string | undefined, caseInsensitive = false): boolean =>
  candidate !== undefined && term.values.some((value) => glob(value, caseInsensitive).test(candidate));

/** Whether an identity term holds, before negation. */
function identityTermHolds(term: SelectorTerm, identity: Identity): boolean {
  switch (term.key) {
    case 'identity':
      return anyValue(term, identity.id);
    case 'kind':
      return anyValue(term, identity.kind);
    case 'owner':
      return anyValue(term, identity.owner);
    case 'repo':
      // GitHub and GitLab treat repository names case-insensitively.
      return anyValue(term, identity.pipeline.repo, true);
    case 'stage':
      return stagesOf(identity).some((stage) => anyValue(term, stage));
    case 'env':
      return anyValue(term, identity.pipeline.environment);
    case 'tag':
      return anyValue(term, term.tag === undefined ? undefined : identity.tags[term.tag]);
    default:
      return true;
  }
}

/**
 * What a version term is checked against: a live version, or for the kinds revoked as
 * a whole (a lease prefix, a role) the scope itself, which has a handle and nothing else.
 */
interface Candidate {
  version?: CredentialVersion;
  handle: string;
}

/** Whether a version term holds for one candidate, before negation. */
function versionTermHolds(term: SelectorTerm, candidate: Candidate): boolean {
  const version = candidate.version;
  switch (term.key) {
    case 'issued-before':
      return version !== undefined && Date.parse(version.issuedAt) < Date.parse(term.values[0] ?? '');
    case 'issued-after':
      return version !== undefined && Date.parse(version.issuedAt) >= Date.parse(term.values[0] ?? '');
    case 'access-key':
      return version?.kind === 'aws-iam-access-key' && anyValue(term, version.handle);
    case 'fingerprint':
      return anyValue(term, version?.fingerprint);
    case 'handle':
      return anyValue(term, candidate.handle);
    default:
      return true;
  }
}

const holds = (term: SelectorTerm, positive: boolean): boolean => (term.negated ? !positive : positive);

/** Versions that still grant access: every stage but `revoked`. */
export const liveVersions = (versions: readonly CredentialVersion[]): CredentialVersion[] =>
  versions.filter((version) => version.stage !== 'revoked');

/** What one or more selectors picked out of one subject. */
export interface Selection {
  /**
   * Selected as a whole: some selector matched on identity terms alone, or on the scope
   * handle of a lease prefix or role. A whole vault-lease identity is revoked by prefix.
   */
  whole: boolean;
  /** The live versions selected, in recorded order; every live version when `whole`. */
  versions: CredentialVersion[];
}

const isVersionTerm = (term: SelectorTerm): boolean => VERSION_KEYS.includes(term.key);

/**
 * The selectors with their version terms left out. Leaving a term out of an AND only widens
 * it, so whatever the full selectors select, these select too: an identity they do not select
 * cannot be selected whatever versions it has (campaign planning lists no provider for it).
 */
export const identityTermsOf = (selectors: readonly Selector[]): Selector[] =>
  selectors.map((selector) => ({
    text: selector.text,
    terms: selector.terms.filter((t) => !isVersionTerm(t)),
  }));

function selectOne(selector: Selector, subject: SelectorSubject): Selection | undefined {
  const identityTerms = selector.terms.filter((term) => !isVersionTerm(term));
  if (!identityTerms.every((term) => holds(term, identityTermHolds(term, subject.identity))))
    return undefined;
  const live = liveVersions(subject.versions);
  const versionTerms = selector.terms.filter(isVersionTerm);
  if (versionTerms.length === 0) return { whole: true, versions: live };
  const satisfies = (candidate: Candidate) =>
    versionTerms.every((term) => holds(term, versionTermHolds(term, candidate)));
  const scope = wholeScope(subject.identity);
  if (scope !== undefined && satisfies({ handle: scope })) return { whole: true, versions: live };
  const versions = live.filter((version) => satisfies({ version, handle: version.handle }));
  return versions.length > 0 ? { whole: false, versions } : undefined;
}

/**
 * What the selectors (ORed) pick out of a subject, or undefined when none matches.
 * Versions picked by several selectors appear once.
 */
export function select(selectors: readonly Selector[], subject: SelectorSubject): Selection | undefined {
  let whole = false;
  let picked: Set<CredentialVersion> | undefined;
  for (const selector of selectors) {
    const selection = selectOne(selector, subject);
    if (!selection) continue;
    whole ||= selection.whole;
    picked ??= new Set();
    for (const version of selection.versions) picked.add(version);
  }
  if (!picked) return undefined;
  return { whole, versions: subject.versions.filter((version) => picked.has(version)) };
}

/** Whether one selector matches a subject (see the module comment for version terms). */
export const matches = (selector: Selector, subject: SelectorSubject): boolean =>
  selectOne(selector, subject) !== undefined;

/** Whether any of the selectors matches a subject. */
export const matchesAny = (selectors: readonly Selector[], subject: SelectorSubject): boolean =>
  selectors.some((selector) => matches(selector, subject));
