/**
 * Verifies a CI job's OIDC token (GitHub Actions, GitLab CI, any OIDC issuer) with `jose`:
 * the trusted issuer is picked by the token's `iss` (read before anything is verified, only to
 * choose whose keys to use), then the signature is checked against that issuer's published keys
 * and `iss`, `aud`, `alg`, `exp`, `nbf` and `iat` against what the inventory pins.
 *
 * The token is a secret: no message, error or log line carries it. A refusal names what was
 * expected and, where it helps, the claim value that did not fit (an id or a time, truncated).
 *
 * Keys: an issuer's JWKS (`jwksUrl`, or the `jwks_uri` of its discovery document) is fetched on
 * first use and kept for the process, one key set per URL; a token naming a key the set does not
 * hold makes jose fetch the set again (at most once per cooldown), which is how a rotated key is
 * picked up. A key source that cannot be reached is a retryable error, never a refusal: the
 * job's token may be fine.
 */

import type { JWTPayload, JWTVerifyGetKey, ProtectedHeaderParameters } from 'jose';
import { createRemoteJWKSet, customFetch, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { type CiIssuer, CiRefusalError } from '../../core/ci-policy.ts';
import { KeywardenError } from '../../core/errors.ts';
import type { CiTokenVerifier, Clock, VerifiedCiToken } from '../../core/ports.ts';

/** A fetch as `globalThis.fetch` is; injected in tests. */
export type Fetch = typeof globalThis.fetch;

export interface JoseCiTokenVerifierProps {
  /** How keys and discovery documents are fetched. @default globalThis.fetch */
  fetch?: Fetch | undefined;
  /** The time tokens are checked at (jose reads the system clock otherwise). @default the system clock */
  clock?: Clock | undefined;
  /** The longest a key or discovery fetch may take. @default 5000 */
  timeoutMs?: number | undefined;
  /** The least time between two fetches of a key set caused by an unknown `kid`. @default 30000 */
  cooldownMs?: number | undefined;
  /** How long a fetched key set is used before it is fetched again. @default 600000 (10 minutes) */
  keySetMaxAgeMs?: number | undefined;
}

/**
 * Keywarden could not get an issuer's signing keys: the key source did not answer, answered
 * badly, or is configured unsafely. Not the job's fault, so not a refusal; `retryable` when
 * trying again may help (network, timeout, 5xx).
 */
export class CiKeySourceError extends KeywardenError {
  override readonly name = 'CiKeySourceError';
}

/** A JWT longer than this is not one a CI platform issues (GitHub's are ~1.5 kB). */
const MAX_TOKEN_CHARS = 16 * 1024;

/** A claim or header value for a message: a string JSON-quoted, anything else as JSON; at most 80 characters. */
const shown = (value: unknown): string => {
  if (value === undefined) return 'none';
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  const cut = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  return typeof value === 'string' ? JSON.stringify(cut) : cut;
};

const iso = (seconds: unknown): string =>
  typeof seconds === 'number' && Number.isFinite(seconds)
    ? new Date(seconds * 1_000).toISOString()
    : shown(seconds);

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Keys come over https; plain http only on loopback (the local stand-ins tests use). */
function keyUrl(raw: string, what: string, issuer: CiIssuer): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CiKeySourceError(
      `issuer ${issuer.name}: expected the ${what} as an https URL, got ${shown(raw)}`,
    );
  }
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) return url;
  throw new CiKeySourceError(
    `issuer ${issuer.name}: expected the ${what} as an https URL (plain http only on loopback), got ${shown(raw)}`,
  );
}

/** Why a fetch failed, in words (a network error's code, a timeout), never a body. */
function whyFailed(error: unknown, timeoutMs: number): string {
  if (error instanceof KeywardenError) return error.message;
  if (error instanceof errors.JWKSTimeout || (error instanceof Error && error.name === 'TimeoutError'))
    return `no answer within ${timeoutMs} ms`;
  if (error instanceof errors.JWKSInvalid) return 'its answer is not a JSON Web Key Set';
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  return error instanceof Error ? error.message : String(error);
}

/** A fetch that refuses any answer but 200, naming the status (jose's own error does not). */
const okOnly =
  (fetchImpl: Fetch): Fetch =>
  async (input, init) => {
    const response = await fetchImpl(input, init);
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new CiKeySourceError(`it answered HTTP ${response.status}`, { retryable: true });
    }
    return response;
  };

/** Key sets and discovery results, per fetch function and settings, for the whole process. */
interface KeyCaches {
  keySets: Map<string, JWTVerifyGetKey>;
  discovered: Map<string, Promise<string>>;
}
const PROCESS_CACHES = new WeakMap<Fetch, Map<string, KeyCaches>>();

function cachesFor(fetchImpl: Fetch, settings: string): KeyCaches {
  const bySettings = PROCESS_CACHES.get(fetchImpl) ?? new Map<string, KeyCaches>();
  PROCESS_CACHES.set(fetchImpl, bySettings);
  const caches = bySettings.get(settings) ?? { keySets: new Map(), discovered: new Map() };
  bySettings.set(settings, caches);
  return caches;
}

/** {@link CiTokenVerifier} over `jose`. */
export class JoseCiTokenVerifier implements CiTokenVerifier {
  readonly #fetch: Fetch;
  readonly #clock: Clock | undefined;
  readonly #timeoutMs: number;
  readonly #cooldownMs: number;
  readonly #maxAgeMs: number;
  readonly #caches: KeyCaches;

  constructor(props: JoseCiTokenVerifierProps = {}) {
    this.#fetch = props.fetch ?? globalThis.fetch;
    this.#clock = props.clock;
    this.#timeoutMs = props.timeoutMs ?? 5_000;
    this.#cooldownMs = props.cooldownMs ?? 30_000;
    this.#maxAgeMs = props.keySetMaxAgeMs ?? 600_000;
    // Verifiers built alike (a handler's, at each cold start) share one cache per process;
    // a test's verifier with its own fetch or timings keeps its own.
    this.#caches = cachesFor(this.#fetch, `${this.#timeoutMs}/${this.#cooldownMs}/${this.#maxAgeMs}`);
  }

  async verify(token: string, issuers: readonly CiIssuer[]): Promise<VerifiedCiToken> {
    const { unverified, header } = decodeUnverified(token);
    const issuer = pickIssuer(unverified, issuers);
    // `alg: none`, an HMAC alg (signed with a public key as the secret), anything not pinned:
    // refused before a key is fetched or jose is asked.
    if (typeof header.alg !== 'string' || !issuer.algorithms.includes(header.alg)) {
      throw new CiRefusalError(
        'algorithm',
        `expected alg ${issuer.algorithms.join(' or ')} (issuer ${issuer.name}), got ${shown(header.alg)}`,
        { claim: 'alg' },
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keyGetter(issuer), {
        issuer: issuer.issuer,
        audience: issuer.audience,
        algorithms: issuer.algorithms,
        clockTolerance: issuer.clockSkewSeconds,
        maxTokenAge: issuer.maxTokenAgeSeconds,
        requiredClaims: ['jti', 'iat', 'exp'],
        ...(this.#clock ? { currentDate: this.#clock.now() } : {}),
      }));
    } catch (error) {
      throw refusalOf(error, issuer, unverified, header, this.#clock?.now() ?? new Date());
    }
    const { jti, iat, exp } = payload;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) {
      throw new CiRefusalError(
        'token-invalid',
        `expected a "jti" claim of 1 to 256 characters, got ${shown(jti)}`,
      );
    }
    return {
      issuer,
      claims: payload,
      jti,
      // jose checked both are numbers (iat through maxTokenAge, exp as required).
      issuedAt: new Date((iat as number) * 1_000),
      expiresAt: new Date((exp as number) * 1_000),
    };
  }

  /** The issuer's keys, fetched on first use (an algorithm refused first fetches nothing). */
  #keyGetter(issuer: CiIssuer): JWTVerifyGetKey {
    return async (header, token) => {
      // Discovery's own errors name the discovery document; they pass as they are.
      const url = await this.#jwksUrlOf(issuer);
      try {
        return await this.#keySet(url, issuer)(header, token);
      } catch (error) {
        // The token's own failings pass through to be mapped to refusals.
        if (
          error instanceof errors.JWKSNoMatchingKey ||
          error instanceof errors.JWKSMultipleMatchingKeys ||
          error instanceof errors.JOSEAlgNotAllowed ||
          error instanceof errors.JOSENotSupported ||
          (error instanceof CiKeySourceError && !error.retryable)
        )
          throw error;
        throw new CiKeySourceError(
          `could not fetch the signing keys of issuer ${issuer.name} from ${url}: ${whyFailed(error, this.#timeoutMs)}; try again`,
          { cause: error, retryable: true },
        );
      }
    };
  }

  #keySet(url: string, issuer: CiIssuer): JWTVerifyGetKey {
    let keySet = this.#caches.keySets.get(url);
    if (!keySet) {
      keySet = createRemoteJWKSet(keyUrl(url, 'key set (jwks_uri)', issuer), {
        timeoutDuration: this.#timeoutMs,
        cooldownDuration: this.#cooldownMs,
        cacheMaxAge: this.#maxAgeMs,
        [customFetch]: okOnly(this.#fetch),
      });
      this.#caches.keySets.set(url, keySet);
    }
    return keySet;
  }

  /** The JWKS URL: configured, or read once from the discovery document (whose issuer must be ours). */
  #jwksUrlOf(issuer: CiIssuer): Promise<string> {
    if (issuer.jwksUrl) return Promise.resolve(issuer.jwksUrl);
    const discoveryUrl =
      issuer.discoveryUrl ?? `${issuer.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const key = `${issuer.issuer} ${discoveryUrl}`;
    let found = this.#caches.discovered.get(key);
    if (!found) {
      found = this.#discover(issuer, discoveryUrl);
      this.#caches.discovered.set(key, found);
      // A failure is not kept: the next token tries again.
      found.catch(() => this.#caches.discovered.delete(key));
    }
    return found;
  }

  async #discover(issuer: CiIssuer, discoveryUrl: string): Promise<string> {
    const url = keyUrl(discoveryUrl, 'discovery document', issuer);
    let document: unknown;
    try {
      const response = await okOnly(this.#fetch)(url, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      document = await response.json();
    } catch (error) {
      throw new CiKeySourceError(
        `could not read the discovery document of issuer ${issuer.name} at ${discoveryUrl}: ${whyFailed(error, this.#timeoutMs)}; try again`,
        { cause: error, retryable: true },
      );
    }
    const { issuer: named, jwks_uri: jwksUri } = (document ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
    if (named !== issuer.issuer) {
      throw new CiKeySourceError(
        `issuer ${issuer.name}: expected the discovery document at ${discoveryUrl} to name issuer ${shown(issuer.issuer)}, got ${shown(named)}; check discoveryUrl`,
      );
    }
    if (typeof jwksUri !== 'string') {
      throw new CiKeySourceError(
        `issuer ${issuer.name}: expected a jwks_uri in the discovery document at ${discoveryUrl}, got ${shown(jwksUri)}`,
      );
    }
    keyUrl(jwksUri, 'key set (jwks_uri)', issuer);
    return jwksUri;
  }
}

/** The token's header and claims, unverified: only to choose the issuer and explain a refusal. */
function decodeUnverified(token: string): { unverified: JWTPayload; header: ProtectedHeaderParameters } {
  const refuse = (got: string) =>
    new CiRefusalError(
      'token-invalid',
      `expected a JWT (header.payload.signature, at most 16 KiB), got ${got}`,
    );
  if (typeof token !== 'string' || token.length === 0) throw refuse('nothing');
  if (token.length > MAX_TOKEN_CHARS) throw refuse(`${token.length} characters`);
  try {
    return { unverified: decodeJwt(token), header: decodeProtectedHeader(token) };
  } catch (error) {
    throw new CiRefusalError(
      'token-invalid',
      'expected a JWT (header.payload.signature, at most 16 KiB), got something that does not decode as one',
      { cause: error instanceof errors.JOSEError ? error.code : undefined },
    );
  }
}

/** The trusted issuer the token names; of several with that `iss`, the one for its audience. */
function pickIssuer(unverified: JWTPayload, issuers: readonly CiIssuer[]): CiIssuer {
  const candidates = issuers.filter((issuer) => issuer.issuer === unverified.iss);
  const audiences = Array.isArray(unverified.aud) ? unverified.aud : [unverified.aud];
  const issuer = candidates.find((one) => audiences.includes(one.audience)) ?? candidates[0];
  if (issuer) return issuer;
  const trusted = [...new Set(issuers.map((one) => one.issuer))].map((iss) => JSON.stringify(iss));
  throw new CiRefusalError(
    'issuer-untrusted',
    `expected a token from a trusted issuer (${trusted.join(', ') || 'none trusted'}), got iss ${shown(unverified.iss)}`,
    { claim: 'iss' },
  );
}

/** jose's error as a refusal that says what was expected; a key-source error passes unchanged. */
function refusalOf(
  error: unknown,
  issuer: CiIssuer,
  claims: JWTPayload,
  header: ProtectedHeaderParameters,
  now: Date,
): Error {
  if (error instanceof KeywardenError) return error;
  const skew = issuer.clockSkewSeconds;
  const at = (offsetSeconds: number) => new Date(now.getTime() + offsetSeconds * 1_000).toISOString();
  const options = { cause: error instanceof errors.JOSEError ? error.code : undefined };
  if (error instanceof errors.JWTExpired) {
    if (error.claim === 'iat') {
      return new CiRefusalError(
        'too-old',
        `expected a token issued within the last ${issuer.maxTokenAgeSeconds}s (+${skew}s skew, after ${at(-issuer.maxTokenAgeSeconds - skew)}), got iat ${iso(claims.iat)}; request a fresh token`,
        { ...options, claim: 'iat' },
      );
    }
    return new CiRefusalError(
      'expired',
      `expected a token expiring after ${at(-skew)} (${skew}s skew), got exp ${iso(claims.exp)}; request a fresh token`,
      { ...options, claim: 'exp' },
    );
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const { claim, reason } = error;
    if (reason === 'missing' && claim === 'aud') {
      return new CiRefusalError(
        'audience',
        `expected aud ${shown(issuer.audience)} (issuer ${issuer.name}), got none`,
        {
          ...options,
          claim,
        },
      );
    }
    if (reason === 'missing') {
      return new CiRefusalError('token-invalid', `expected a "${claim}" claim, got none`, {
        ...options,
        claim,
      });
    }
    if (reason === 'invalid') {
      return new CiRefusalError(
        'token-invalid',
        `expected "${claim}" as seconds since the epoch, got ${shown(claims[claim])}`,
        { ...options, claim },
      );
    }
    if (claim === 'aud') {
      return new CiRefusalError(
        'audience',
        `expected aud ${shown(issuer.audience)} (issuer ${issuer.name}), got ${shown(claims.aud)}; request the token for that audience`,
        { ...options, claim },
      );
    }
    if (claim === 'nbf') {
      return new CiRefusalError(
        'not-yet-valid',
        `expected a token valid by ${at(skew)} (nbf, ${skew}s skew), got nbf ${iso(claims.nbf)}`,
        { ...options, claim },
      );
    }
    if (claim === 'iat') {
      return new CiRefusalError(
        'not-yet-valid',
        `expected a token issued by ${at(skew)} (iat, ${skew}s skew), got iat ${iso(claims.iat)}`,
        { ...options, claim },
      );
    }
    if (claim === 'iss') {
      return new CiRefusalError(
        'issuer-untrusted',
        `expected iss ${shown(issuer.issuer)}, got ${shown(claims.iss)}`,
        { ...options, claim },
      );
    }
    return new CiRefusalError(
      'token-invalid',
      `expected a valid "${claim}" claim, got ${shown(claims[claim])}`,
      {
        ...options,
        claim,
      },
    );
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new CiRefusalError(
      'algorithm',
      `expected alg ${issuer.algorithms.join(' or ')} (issuer ${issuer.name}), got ${shown(header.alg)}`,
      { ...options, claim: 'alg' },
    );
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new CiRefusalError(
      'token-invalid',
      `expected a signature by one of issuer ${issuer.name}'s keys, got one that does not verify`,
      options,
    );
  }
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    const found = error instanceof errors.JWKSNoMatchingKey ? 'none' : 'more than one';
    return new CiRefusalError(
      'token-invalid',
      `expected a token signed by a key issuer ${issuer.name} publishes, got kid ${shown(header.kid)} (alg ${shown(header.alg)}), which ${found} of its keys has`,
      options,
    );
  }
  if (error instanceof errors.JOSEError) {
    // jose's messages are fixed texts (they quote no part of the token).
    return new CiRefusalError(
      'token-invalid',
      `expected a signed JWT, got one that jose refused: ${error.message}`,
      options,
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}
