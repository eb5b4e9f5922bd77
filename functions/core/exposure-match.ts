/**
 * Matching a text against the credentials keywarden manages, by keyed fingerprint only: the
 * live versions' fingerprints are the index, and every stretch of the text that could be a
 * credential is fingerprinted in each form keywarden fingerprints a value of that kind, then
 * looked up. Nothing here keeps a value beyond the candidate it is looking at; no rule has to
 * recognise a managed credential (a KV password, an AppRole secret-id that looks like a UUID)
 * for it to be found.
 *
 * The forms (what `credentialPart` fingerprints, secret-shape.ts):
 * - plain: the value itself (a token, a plain secret);
 * - a field: `{"<field>":"<value>"}` canonical, for each identity whose shape generates exactly
 *   one field (a KV `field`, a template with one generated field such as a database password);
 * - an AppRole secret-id: `{"role_id":"<role>","secret_id":"<value>"}` for each managed role;
 * - an AWS key pair: `{"accessKeyId":"<id>","secretAccessKey":"<value>"}` for each managed
 *   access key id written in the text (and all of them when there are few).
 *
 * A template generating several fields is fingerprinted over all of them together, which no
 * single stretch of text is: such a credential is found only whole, by a detector's value.
 */
import { encodedSegments } from './exposure-rules.ts';
import type { DetectedSecret, Encoding } from './exposure-types.ts';
import type { Identity, IdentityKind } from './identity.ts';
import { stagesOf } from './identity.ts';
import { valueShapeOf } from './secret-shape.ts';

/** The fingerprint of a text: the deployment's keyed HMAC (crypto.ts `Fingerprinter.of`). */
export type FingerprintText = (text: string) => string;

/** A live credential version keywarden manages, as a hit names it (never its value). */
export interface ManagedRef {
  identityId: string;
  kind: IdentityKind;
  versionId: string;
  handle: string;
  /** The version's stage (`current`, `previous`…). */
  versionStage: string;
  fingerprint: string;
  owner: string | undefined;
  /** The pipeline stages and environment of the identity. */
  stage: string;
  environment: string;
  repo: string;
}

/** What the index is built from: each active identity with its recorded versions. */
export interface ManagedSubject {
  identity: Identity;
  versions: readonly {
    versionId: string;
    handle: string;
    stage: string;
    fingerprint?: string | undefined;
  }[];
  /** AppRole: the role's role-id (not a secret), which its delivered value carries. */
  roleId?: string | undefined;
}

/** The fingerprints of every live managed version, and the forms to try candidates in. */
export interface ManagedIndex {
  byFingerprint: ReadonlyMap<string, ManagedRef>;
  /** Field names of identities whose shape generates one field. */
  fields: readonly string[];
  /** Role-ids of managed AppRoles. */
  roleIds: readonly string[];
  /** Live managed AWS access key ids (handles), to pair with a secret found near them. */
  accessKeyIds: ReadonlyMap<string, ManagedRef>;
}

/** At most this many managed key ids are tried against every 40-character candidate. */
const ALL_KEYS_LIMIT = 32;
/**
 * At most this many managed AppRole roles are tried against every UUID; with more, a UUID is
 * tried only against the roles whose role-id the text names within {@link ROLE_WINDOW} lines
 * (a delivered AppRole value carries its role-id: `role_id=… secret_id=…`, `{"role_id":…}`).
 * Without it the cost was UUIDs × roles: 11 M of the 14.6 M fingerprints of a 50 MB log.
 */
const ALL_ROLES_LIMIT = 32;
/** How many lines before and after a UUID a role-id pairs with it. */
export const ROLE_WINDOW = 5;

/** Builds the index of the versions with a fingerprint (live ones, and revoked ones to say so). */
export function buildManagedIndex(subjects: readonly ManagedSubject[]): ManagedIndex {
  const byFingerprint = new Map<string, ManagedRef>();
  const fields = new Set<string>();
  const roleIds = new Set<string>();
  const accessKeyIds = new Map<string, ManagedRef>();
  for (const { identity, versions, roleId } of subjects) {
    const shape = valueShapeOf(identity);
    if (shape?.type === 'fields') {
      const generated = shape.generate.filter(([, format]) => format.format !== 'template');
      if (generated.length === 1 && generated[0]) fields.add(generated[0][0]);
    }
    if (identity.kind === 'vault-approle-secret-id' && roleId) roleIds.add(roleId);
    for (const version of versions) {
      // Revoked versions are indexed too: a dead keywarden credential found again is keywarden's
      // (nothing to contain), not an unknown one.
      if (!version.fingerprint) continue;
      const ref: ManagedRef = {
        identityId: identity.id,
        kind: identity.kind,
        versionId: version.versionId,
        handle: version.handle,
        versionStage: version.stage,
        fingerprint: version.fingerprint,
        owner: identity.owner,
        stage: stagesOf(identity).join(','),
        environment: identity.pipeline.environment,
        repo: identity.pipeline.repo,
      };
      // A live version wins over a revoked one of the same value (a value adopted again).
      if (version.stage !== 'revoked' || !byFingerprint.has(version.fingerprint)) {
        byFingerprint.set(version.fingerprint, ref);
      }
      if (identity.kind === 'aws-iam-access-key' && version.stage !== 'revoked') {
        accessKeyIds.set(version.handle, ref);
      }
    }
  }
  return { byFingerprint, fields: [...fields].sort(), roleIds: [...roleIds].sort(), accessKeyIds };
}

/** One stretch of text that could be a credential, where it starts. */
export interface Candidate {
  text: string;
  line: number;
  column: number;
  encoding: Encoding;
}

/** Shortest and longest stretch considered. */
export const MIN_CANDIDATE = 8;
export const MAX_CANDIDATE = 512;

/** Runs of characters between hard delimiters (space, quotes, brackets, separators). */
const TOKEN = /[^\s"'`<>(){}[\],;|\\]+/g;
/**
 * Soft delimiters inside a token (`KEY=value`, `user:pass@host`, a URL's query): what comes
 * before and after each is a candidate, and each piece between. A path's `/` only cuts pieces
 * (a path has many, and its prefixes and suffixes are not credentials).
 */
const SOFT = /[=:@/&?#]/g;
/**
 * Obviously not a credential: a lowercase word under 16 letters, lowercase words joined by
 * `_./-` (`node_modules/some-package`), a number, a time stamp. A lowercase-only generated value
 * of 16 letters or more is still looked up.
 */
const NOT_SECRET = /^(?:[a-z]{1,15}|[a-z]+(?:[_./-][a-z]+)+|[0-9]+|[0-9:.TZ+-]+)$/;

const fits = (text: string): boolean =>
  text.length >= MIN_CANDIDATE && text.length <= MAX_CANDIDATE && !NOT_SECRET.test(text);

/**
 * Every candidate of a line: each token, and its parts around soft delimiters (what follows
 * and what precedes each, and the pieces between), URL-decoded too when it has escapes.
 */
export function* candidatesOf(line: string, lineNumber: number): Generator<Candidate> {
  for (const match of line.matchAll(TOKEN)) {
    const token = match[0];
    if (token.length < MIN_CANDIDATE) continue;
    yield* partsOf(token, lineNumber, (match.index ?? 0) + 1, 'plain');
    if (token.includes('%')) {
      let decoded: string | undefined;
      try {
        decoded = decodeURIComponent(token);
      } catch {
        decoded = undefined;
      }
      if (decoded && decoded !== token) {
        for (const inner of decoded.matchAll(TOKEN)) {
          yield* partsOf(inner[0], lineNumber, (match.index ?? 0) + 1, 'url');
        }
      }
    }
  }
}

function* partsOf(token: string, line: number, column: number, encoding: Encoding): Generator<Candidate> {
  const at = (text: string, offset: number): Candidate => ({
    text,
    line,
    column: column + offset,
    encoding,
  });
  if (fits(token)) yield at(token, 0);
  const cuts = [...token.matchAll(SOFT)].map((m) => m.index ?? 0);
  if (cuts.length === 0 || cuts.length > 64) return;
  let start = 0;
  for (const cut of cuts) {
    const piece = token.slice(start, cut);
    if (start > 0 && fits(piece)) yield at(piece, start);
    if (token[cut] !== '/') {
      const before = token.slice(0, cut);
      const after = token.slice(cut + 1);
      if (before !== piece && fits(before)) yield at(before, 0);
      if (fits(after)) yield at(after, cut + 1);
    }
    start = cut + 1;
  }
  const last = token.slice(start);
  if (start > 0 && token[start - 1] === '/' && fits(last)) yield at(last, start);
}

/** The AWS access key ids written in a text. */
const ACCESS_KEY_ID = /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g;
/**
 * What an AWS secret access key looks like: 40 of base64's characters, with an uppercase letter
 * (which a git hash or a hex digest never has; a real one lacks one with odds of about 1e-9).
 */
const SECRET_ACCESS_KEY = /^(?=.*[A-Z])[A-Za-z0-9/+]{40}$/;
/** Role-ids near a UUID in either of two places (undefined, every role, wins). */
const nearBoth = (
  a: readonly string[] | undefined,
  b: readonly string[] | undefined,
): readonly string[] | undefined =>
  a === undefined || b === undefined ? undefined : [...new Set([...a, ...b])];
/** What an AppRole secret-id looks like. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** UUIDs written in a text (role-ids among them); no word boundary: a URL escape (`%3D<uuid>`) runs into one. */
const UUIDS = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/**
 * Finds managed credentials in texts, one {@link ManagedIndex} for a whole scan, remembering
 * (boundedly) which candidates it has already looked up, so a log's repeated lines cost once.
 */
export class ManagedMatcher {
  readonly #index: ManagedIndex;
  readonly #fingerprint: FingerprintText;
  readonly #seen = new Map<string, ManagedRef | null>();
  readonly #cacheSize: number;
  readonly #fieldPrefixes: readonly string[];
  readonly #rolePrefixes: ReadonlyMap<string, string>;
  /** Candidates fingerprinted (for measurements). */
  lookups = 0;

  constructor(index: ManagedIndex, fingerprint: FingerprintText, options: { cacheSize?: number } = {}) {
    this.#index = index;
    this.#fingerprint = fingerprint;
    this.#cacheSize = options.cacheSize ?? 200_000;
    this.#fieldPrefixes = index.fields.map((field) => `{${JSON.stringify(field)}:`);
    // Keyed lower-case: a role-id is a UUID, which a text may write in either case.
    this.#rolePrefixes = new Map(
      index.roleIds.map((roleId) => [
        roleId.toLowerCase(),
        `{"role_id":${JSON.stringify(roleId)},"secret_id":`,
      ]),
    );
  }

  /** Whether anything is managed at all (nothing to look for otherwise). */
  get empty(): boolean {
    return this.#index.byFingerprint.size === 0;
  }

  /**
   * The managed version a value is (in any of its forms), if any: an AWS secret paired with
   * `keyIds`, a UUID with `roleIds` (every managed role when not given).
   */
  lookup(value: string, keyIds: readonly string[] = [], roleIds?: readonly string[]): ManagedRef | undefined {
    const cached = this.#seen.get(value);
    if (cached !== undefined) return cached ?? undefined;
    const found = this.#match(value, keyIds, roleIds);
    if (this.#seen.size >= this.#cacheSize) this.#seen.clear();
    // A pairing depends on the key ids and role-ids near it: only a pairing-independent miss is cached.
    if (found || (keyIds.length === 0 && (roleIds === undefined || !UUID.test(value)))) {
      this.#seen.set(value, found ?? null);
    }
    return found;
  }

  #match(
    value: string,
    keyIds: readonly string[],
    roleIds: readonly string[] | undefined,
  ): ManagedRef | undefined {
    const { byFingerprint } = this.#index;
    const find = (text: string) => {
      this.lookups++;
      return byFingerprint.get(this.#fingerprint(text));
    };
    const plain = find(value);
    if (plain) return plain;
    // The forms written out as JSON.stringify / canonicalJson write them (one key, or keys in
    // their sorted order), without building objects: this runs for every candidate.
    const quoted = JSON.stringify(value);
    for (const prefix of this.#fieldPrefixes) {
      const found = find(`${prefix}${quoted}}`);
      if (found) return found;
    }
    if (UUID.test(value)) {
      for (const roleId of roleIds ?? this.#rolePrefixes.keys()) {
        const prefix = this.#rolePrefixes.get(roleId);
        const found = prefix === undefined ? undefined : find(`${prefix}${quoted}}`);
        if (found) return found;
      }
    }
    if (SECRET_ACCESS_KEY.test(value)) {
      for (const accessKeyId of keyIds) {
        const found = find(`{"accessKeyId":${JSON.stringify(accessKeyId)},"secretAccessKey":${quoted}}`);
        if (found) return found;
      }
    }
    return undefined;
  }

  /** The managed key ids to pair secrets with in `text`: those it names, or all when few. */
  keyIdsFor(text: string): string[] {
    const { accessKeyIds } = this.#index;
    if (accessKeyIds.size === 0) return [];
    if (accessKeyIds.size <= ALL_KEYS_LIMIT) return [...accessKeyIds.keys()];
    const named = new Set<string>();
    for (const match of text.matchAll(ACCESS_KEY_ID)) if (accessKeyIds.has(match[0])) named.add(match[0]);
    return [...named];
  }

  /**
   * The managed role-ids to pair a UUID at a line with: every one when few, otherwise those the
   * text names within {@link ROLE_WINDOW} lines of it (undefined: every managed role).
   */
  rolesNear(text: string): (line: number) => readonly string[] | undefined {
    if (this.#rolePrefixes.size <= ALL_ROLES_LIMIT) return () => undefined;
    const byLine = new Map<number, string[]>();
    let line = 1;
    let next = text.indexOf('\n');
    for (const match of text.matchAll(UUIDS)) {
      const roleId = match[0].toLowerCase();
      if (!this.#rolePrefixes.has(roleId)) continue;
      const at = match.index ?? 0;
      while (next !== -1 && next < at) {
        line++;
        next = text.indexOf('\n', next + 1);
      }
      byLine.set(line, [...(byLine.get(line) ?? []), roleId]);
    }
    return (at) => {
      const near = new Set<string>();
      for (let l = at - ROLE_WINDOW; l <= at + ROLE_WINDOW; l++)
        for (const r of byLine.get(l) ?? []) near.add(r);
      return [...near];
    };
  }

  /** Every managed credential in `text`, one per place and version. */
  *scan(text: string): Generator<{ candidate: Candidate; ref: ManagedRef }> {
    if (this.empty) return;
    const keyIds = this.keyIdsFor(text);
    const rolesAt = this.rolesNear(text);
    let lineNumber = 0;
    let start = 0;
    while (start <= text.length) {
      const end = text.indexOf('\n', start);
      const line = text.slice(start, end === -1 ? text.length : end);
      lineNumber++;
      const found = new Set<string>();
      for (const candidate of candidatesOf(line, lineNumber)) {
        const ref = this.lookup(
          candidate.text,
          keyIds,
          UUID.test(candidate.text) ? rolesAt(lineNumber) : undefined,
        );
        if (ref && !found.has(ref.fingerprint)) {
          found.add(ref.fingerprint);
          yield { candidate, ref };
        }
      }
      if (end === -1) break;
      start = end + 1;
    }
    // What base64 hides (a value no rule knows, encoded): its decoded text's candidates, placed
    // at the segment. URL escapes are decoded token by token above.
    const found = new Set<string>();
    for (const segment of encodedSegments(text)) {
      if (segment.encoding !== 'base64') continue;
      const rolesInSegment = this.rolesNear(segment.decoded);
      for (const [index, line] of segment.decoded.split('\n').entries()) {
        for (const candidate of candidatesOf(line, segment.line)) {
          const ref = this.lookup(
            candidate.text,
            keyIds,
            UUID.test(candidate.text)
              ? nearBoth(rolesInSegment(index + 1), rolesAt(segment.line))
              : undefined,
          );
          const key = `${segment.line}\u0000${ref?.fingerprint}`;
          if (ref && !found.has(key)) {
            found.add(key);
            yield { candidate: { ...candidate, column: segment.column, encoding: 'base64' }, ref };
          }
        }
      }
    }
  }

  /**
   * What a detector found, matched: the managed version it is, or, for an AWS pair whose key id
   * is managed but whose pair is not, that key's version (the secret does not match).
   */
  matchDetected(detected: DetectedSecret): { ref?: ManagedRef; keyIdOf?: ManagedRef } {
    const value = detected.value.reveal();
    const ref = this.lookup(value) ?? this.#pairPart(value);
    if (ref) return { ref };
    const keyIdOf = detected.accessKeyId ? this.#index.accessKeyIds.get(detected.accessKeyId) : undefined;
    return keyIdOf ? { keyIdOf } : {};
  }

  /** A detected JSON value (a pair, `{role_id, secret_id}`): its parts looked up in their forms. */
  #pairPart(value: string): ManagedRef | undefined {
    if (!value.startsWith('{')) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return undefined;
    }
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const record = parsed as Record<string, unknown>;
    if (typeof record.secretAccessKey === 'string' && typeof record.accessKeyId === 'string') {
      return this.lookup(record.secretAccessKey, [record.accessKeyId]);
    }
    if (typeof record.secret_id === 'string') {
      return this.lookup(
        record.secret_id,
        [],
        typeof record.role_id === 'string' ? [record.role_id.toLowerCase()] : undefined,
      );
    }
    return undefined;
  }
}

/**
 * At most 4 characters of a value's start, fewer for a short one (a quarter of it), so a
 * reader can tell which credential without learning it. An AWS pair shows its key id's prefix.
 */
export function redactedPrefix(value: string, accessKeyId?: string): string {
  const shown = accessKeyId ?? value;
  const length = accessKeyId ? 4 : Math.min(4, Math.floor(value.length / 4));
  return `${shown.slice(0, length)}…`;
}
