/**
 * When and how a Vault / OpenBao call is tried again: exponential backoff with full
 * jitter (a random wait between 0 and `base · 2^retry`, capped), a bounded number of
 * attempts and a bounded total time, for failures that may pass — HTTP 429 (rate limit
 * quota), 5xx, and answers that never came (reset, refused, timed out). Any other 4xx
 * is Vault's verdict on the request, and the same request gets the same verdict.
 *
 * Idempotency decides the rest. A request the client never heard back from may have
 * been carried out: for a read, a revoke or a check-and-set write, doing it again is
 * harmless (a revoke then finds nothing to revoke, a CAS write fails its check and the
 * caller's conflict handling takes over). For a request that *creates* something each
 * time — a token (`auth/token/create*`), an AppRole secret-id, a login, a wrapping
 * token, dynamic credentials (`…/creds/…`) — a retry after a lost answer creates a
 * second one, and the first, whose secret nobody received, lives on unrecorded until
 * its TTL. Such requests are retried only when the failure proves Vault did not act on
 * them: HTTP 429 (the quota check runs before the request is handled) or no connection
 * at all (refused, DNS). Any other failure of a create is returned at once, as a
 * retryable {@link VaultError}: the rotation attempt stops with its progress stored,
 * and the next run resumes it — and the resumed attempt's orphan cleanup revokes what
 * the lost create made, found by the identity and version ids in its metadata. That
 * cleanup is built for crashed attempts; this makes a lost answer look like one,
 * instead of letting a retry hide a duplicate that no one would ever clean up.
 *
 * Not hand-rolled for lack of trying: p-retry (v6) randomizes by a factor of 1–2 rather
 * than full jitter, gives up on `maxRetryTime` with the *most frequent* error rather
 * than the last one, and has no injectable clock or sleep; the AWS SDK's own full-jitter
 * strategy (`@smithy/util-retry`) is built around SDK retry tokens and error types. The
 * loop below is small, pure apart from the injected `sleep`/`now`/`random`, and unit
 * tested without I/O (test/unit/vault-retry.test.ts).
 */

/** The client's four ways of calling Vault (LIST is its own HTTP method). */
export type VaultMethod = 'read' | 'list' | 'write' | 'delete';

/** What a failed call tells about itself, as far as retrying goes. */
export interface VaultFailureFacts {
  /** HTTP status; absent when Vault never answered. */
  status?: number | undefined;
  /** Node/axios error code when Vault never answered: `ECONNRESET`, `ECONNREFUSED`, `ECONNABORTED`… */
  code?: string | undefined;
  /** Vault's error strings. */
  errors?: readonly string[] | undefined;
}

/** How hard to try. */
export interface VaultRetryPolicy {
  /** Attempts in all, the first included (default 6). */
  maxAttempts: number;
  /** Upper bound of the first retry's wait; it doubles with each retry (default 100 ms). */
  baseDelayMs: number;
  /** Cap of any one wait (default 2 s). */
  maxDelayMs: number;
  /**
   * No retry starts (and no wait is begun) that would end after this much time since
   * the first attempt (default 15 s), so a Vault in trouble cannot eat a Lambda's
   * budget: the worst case is this plus one request timeout.
   */
  maxElapsedMs: number;
}

export const DEFAULT_VAULT_RETRY_POLICY: Readonly<VaultRetryPolicy> = Object.freeze({
  maxAttempts: 6,
  baseDelayMs: 100,
  maxDelayMs: 2_000,
  maxElapsedMs: 15_000,
});

/** Error codes of a connection that was never made: nothing reached Vault. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);

/** Error codes of a call whose answer was lost or never came: Vault may have acted. */
const NO_ANSWER_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED', // axios' timeout
  'ESOCKETTIMEDOUT',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
]);

/**
 * 5xx answers that are Vault's settled verdict, not a passing failure. OpenBao answers
 * an unknown AppRole secret-id accessor with HTTP 500 "failed to find accessor entry";
 * asking again only delays the caller, which reads it as "already gone".
 */
const SETTLED_5XX = [/failed to find accessor entry/i];

/**
 * Requests that create something new each time they are carried out (see the module
 * comment). Matched against the path without query; `method` is in the key because a
 * read of `…/creds/…` issues dynamic credentials too.
 */
const CREATES: readonly RegExp[] = [
  /^write auth\/token\/create(?:-orphan)?(?:\/.*)?$/, // tokens, orphan or by role
  /^write auth\/.+\/role\/[^/]+\/(?:custom-)?secret-id$/, // AppRole secret-ids
  /^write auth\/.+\/login(?:\/.*)?$/, // any auth method's login mints a token
  /^write sys\/wrapping\/(?:wrap|rewrap|unwrap)$/, // wrapping tokens; unwrap is single-use
  /^(?:read|write) (?:.+\/)?(?:creds|sts)\/[^/]+$/, // dynamic secrets engines
];

/** Whether carrying the request out twice has the same effect as once (see the module comment). */
export function isIdempotentVaultRequest(method: VaultMethod, path: string): boolean {
  const key = `${method} ${path.split('?')[0]?.replace(/^\/+/, '') ?? ''}`;
  return !CREATES.some((pattern) => pattern.test(key));
}

/**
 * Whether a failed call is worth another attempt: 429, a 5xx that is not a settled
 * verdict, or no answer — and, for a request that is not idempotent, only when Vault
 * certainly did not act on it (429, or no connection at all).
 */
export function isRetryableVaultFailure(failure: VaultFailureFacts, idempotent: boolean): boolean {
  const { status, code } = failure;
  if (status !== undefined) {
    if (status === 429) return true;
    if (status < 500) return false;
    if ((failure.errors ?? []).some((text) => SETTLED_5XX.some((pattern) => pattern.test(text))))
      return false;
    return idempotent;
  }
  if (code !== undefined && NOT_SENT_CODES.has(code)) return true;
  // An answer that never came (reset, timeout, or an error without a code): Vault may have acted.
  return idempotent && (code === undefined || NO_ANSWER_CODES.has(code));
}

/**
 * Full jitter: a uniform wait in `[0, min(maxDelayMs, baseDelayMs · 2^(retry−1)))`,
 * `retry` counting from 1. Spreading retries over the whole window is what keeps many
 * clients that failed together from coming back together (AWS Architecture Blog,
 * "Exponential Backoff And Jitter").
 */
export function fullJitterDelay(retry: number, policy: VaultRetryPolicy, random: () => number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

/** Seams for tests; production uses the real ones. */
export interface RetryEnvironment {
  sleep: (ms: number) => Promise<void>;
  now: () => number;
  random: () => number;
}

const realEnvironment: RetryEnvironment = {
  sleep: (ms) => new Promise((wake) => setTimeout(wake, ms)),
  now: () => Date.now(),
  random: Math.random,
};

/** What one decision to retry was based on, for a caller that wants to log or count it. */
export interface VaultRetryEvent {
  attempt: number;
  delayMs: number;
  error: unknown;
}

/** Options of {@link retryVaultCall}. */
export interface RetryVaultCallOptions {
  /** From {@link isIdempotentVaultRequest}. */
  idempotent: boolean;
  /** The facts of a failure; `undefined` for an error that is not a Vault call's failure (never retried). */
  facts: (error: unknown) => VaultFailureFacts | undefined;
  policy?: Partial<VaultRetryPolicy>;
  environment?: Partial<RetryEnvironment>;
  onRetry?: (event: VaultRetryEvent) => void;
}

/**
 * Runs `call`, and again after a full-jitter wait while it fails retryably and the
 * policy's attempts and time allow. Rejects with the last failure, unchanged, so the
 * caller's error handling sees exactly what it would have seen without retries.
 */
export async function retryVaultCall<T>(
  call: (attempt: number) => Promise<T>,
  options: RetryVaultCallOptions,
): Promise<T> {
  const policy = { ...DEFAULT_VAULT_RETRY_POLICY, ...options.policy };
  const env = { ...realEnvironment, ...options.environment };
  const started = env.now();
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call(attempt);
    } catch (error) {
      const facts = options.facts(error);
      if (facts === undefined || !isRetryableVaultFailure(facts, options.idempotent)) throw error;
      if (attempt >= policy.maxAttempts) throw error;
      const delayMs = fullJitterDelay(attempt, policy, env.random);
      if (env.now() - started + delayMs >= policy.maxElapsedMs) throw error;
      options.onRetry?.({ attempt, delayMs, error });
      await env.sleep(delayMs);
    }
  }
}
