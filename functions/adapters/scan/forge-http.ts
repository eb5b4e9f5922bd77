/**
 * The one door to GitHub's and GitLab's REST APIs for exposure scanning (job logs, CI/CD
 * variables): token-safe requests, bounded bodies, checked redirects, retries.
 *
 * - The token goes in one header of requests to the configured API only. A redirect (GitHub
 *   answers a log download with a 302 to a short-lived storage URL that carries its own
 *   signature) is followed without it, and only to https, or http on loopback: a plain-http
 *   hop elsewhere would hand the signed URL, and what it serves, to anyone on the path.
 * - No message holds the token, a signed URL's path or query, or a line of a log: a failure
 *   names the platform, the status, what was asked for, and what to do. The platform's own
 *   `message` (GitLab's "404 Project Not Found", GitHub's "Bad credentials") is quoted, short,
 *   with the token cut out should it be echoed.
 * - Bodies are read up to a bound: a log over it is kept up to the bound and marked truncated.
 * - 5xx, 429 and answers that never came are tried again with backoff and full jitter (the
 *   Vault client's policy, ../vault/retry.ts: every request here is a read, so all are
 *   idempotent); 401, 403, 404 are verdicts and are not.
 */
import { KeywardenError, ValidationError } from '../../core/errors.ts';
import type { ExposureSource } from '../../core/exposure-types.ts';
import { retryVaultCall, type VaultRetryPolicy } from '../vault/retry.ts';

/** One log as fetched: where it came from (for hits' locations) and its text. */
export interface FetchedLog {
  source: ExposureSource;
  text: string;
  /** Set when `text` is only the start of the log (it was over the limit): says how much was read. */
  note?: string;
}

/** Which platform answered. */
export type Forge = 'GitHub' | 'GitLab';

/** A request to GitHub or GitLab failed; `status` is absent when no answer came. */
export class ForgeError extends KeywardenError {
  override readonly name: string = 'ForgeError';
  readonly forge: Forge;
  readonly status: number | undefined;
  /** The platform limited the rate: worth trying again later, not at once. */
  readonly rateLimited: boolean;
  constructor(
    message: string,
    details: { forge: Forge; status?: number | undefined; rateLimited?: boolean },
    options: { cause?: unknown; retryable?: boolean } = {},
  ) {
    super(message, options);
    this.forge = details.forge;
    this.status = details.status;
    this.rateLimited = details.rateLimited ?? false;
  }
}

/** How much to read and how long to wait. */
export interface ForgeLimits {
  /** A log longer than this is read up to it and marked truncated. @default 64 MiB */
  maxLogBytes: number;
  /** The most a GitHub run's log archive (zip) may weigh, and its logs in all. @default 512 MiB */
  maxRunBytes: number;
  /** One API call (JSON). @default 30 s */
  requestTimeoutMs: number;
  /** One download (a log, an archive), body included. @default 5 min */
  downloadTimeoutMs: number;
  /** Retries of failures that may pass. */
  retry: Partial<VaultRetryPolicy>;
}

const MiB = 1024 * 1024;

export const DEFAULT_FORGE_LIMITS: Readonly<ForgeLimits> = Object.freeze({
  maxLogBytes: 64 * MiB,
  maxRunBytes: 512 * MiB,
  requestTimeoutMs: 30_000,
  downloadTimeoutMs: 300_000,
  retry: {},
});

/** A size for a message: `12.3 MB`, `512 bytes`. */
export const sizeOf = (bytes: number): string =>
  bytes >= 1_000_000 ? `${(bytes / 1_000_000).toFixed(1)} MB` : `${bytes} bytes`;

/** How to reach one platform's API. */
export interface ForgeAccess {
  forge: Forge;
  /** The API root: `https://api.github.com`, or GitLab's `https://gitlab.example.com/api/v4`. */
  api: URL;
  token: string;
  /** Where the token came from (`GITHUB_TOKEN`), for messages that say which token to fix. */
  tokenSource: string;
  /** The header that carries the token. */
  authorize: (token: string) => Record<string, string>;
  /** Headers every API call sends (Accept, API version, User-Agent). */
  headers: Record<string, string>;
  limits: ForgeLimits;
}

const LOOPBACK = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** Whether a URL may be requested: https anywhere, http only on loopback (local servers, tests). */
export function isSafeUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.test(url.hostname));
}

/**
 * An API root given as an option or in the environment, checked: an http root elsewhere than
 * loopback would send the token in clear, so it is refused.
 */
export function apiRoot(owner: string, option: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(
      `${owner}: expected ${option} to be a URL such as https://…, got ${JSON.stringify(value)}`,
    );
  }
  if (!isSafeUrl(url) || url.username || url.password || url.search || url.hash) {
    throw new ValidationError(
      `${owner}: expected ${option} to be an https URL (http only on loopback) without credentials or query, got ${url.protocol}//${url.host}`,
    );
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/** The limits given over the defaults, each checked. */
export function limitsOf(owner: string, given: Partial<ForgeLimits> | undefined): ForgeLimits {
  const limits = { ...DEFAULT_FORGE_LIMITS, ...given };
  for (const key of ['maxLogBytes', 'maxRunBytes', 'requestTimeoutMs', 'downloadTimeoutMs'] as const) {
    const value = limits[key];
    if (!Number.isInteger(value) || value < 1) {
      throw new ValidationError(`${owner}: expected ${key} to be a whole number ≥ 1, got ${value}`);
    }
  }
  return limits;
}

/** What a request is for, in the words its failures use. */
export interface Purpose {
  /** What was asked for: `the logs of run 123 of octo/app`. */
  what: string;
  /** What the token must be able to read, and how: `the Actions logs of octo/app (actions: read)`. */
  needs: string;
  /** What a 404 means: `no run 123 in octo/app`. */
  missing: string;
}

/** The platform's own short reason, from a JSON error body, with the token cut out. */
async function platformSays(response: Response, token: string): Promise<string> {
  if (!/json/i.test(response.headers.get('content-type') ?? '')) return '';
  try {
    const body = (await response.json()) as { message?: unknown; error?: unknown };
    const said =
      typeof body.message === 'string' ? body.message : typeof body.error === 'string' ? body.error : '';
    if (!said) return '';
    const clean = said.split(token).join('[token]').replace(/\s+/g, ' ').slice(0, 160);
    return ` (it says ${JSON.stringify(clean)})`;
  } catch {
    return '';
  }
}

/** The failure an answer other than success is, as the user should read it. */
async function failureOf(access: ForgeAccess, response: Response, purpose: Purpose): Promise<ForgeError> {
  const { forge, tokenSource } = access;
  const status = response.status;
  const says = await platformSays(response, access.token);
  const rateLimited =
    status === 429 || (status === 403 && response.headers.get('x-ratelimit-remaining') === '0');
  if (rateLimited) {
    const reset = Number(response.headers.get('x-ratelimit-reset'));
    const retryAfter = response.headers.get('retry-after');
    const when = retryAfter
      ? ` after ${retryAfter} s`
      : Number.isFinite(reset) && reset > 0
        ? ` after ${new Date(reset * 1_000).toISOString()}`
        : ' later';
    return new ForgeError(
      `${forge} limited the rate of requests (HTTP ${status}) when asked for ${purpose.what}; try again${when}`,
      { forge, status, rateLimited: true },
      { retryable: true },
    );
  }
  if (status === 401) {
    return new ForgeError(
      `${forge} answered 401 to the request for ${purpose.what}${says}: the token in ${tokenSource} may not read ${purpose.needs}; it may be expired or revoked, or not a ${forge} token`,
      { forge, status },
    );
  }
  if (status === 403) {
    return new ForgeError(
      `${forge} answered 403 to the request for ${purpose.what}${says}: the token in ${tokenSource} may not read ${purpose.needs}`,
      { forge, status },
    );
  }
  if (status === 404) {
    return new ForgeError(
      `${forge} has ${purpose.missing}${says}, or the token in ${tokenSource} cannot see it; check the names and the token's access`,
      { forge, status },
    );
  }
  if (status === 410) {
    return new ForgeError(`${forge} no longer has ${purpose.what} (HTTP 410: expired or deleted)${says}`, {
      forge,
      status,
    });
  }
  return new ForgeError(
    `${forge} answered ${status} to the request for ${purpose.what}${says}${status >= 500 ? '; try again later' : ''}`,
    { forge, status },
    { retryable: status >= 500 },
  );
}

/** A request that got no answer (refused, reset, timed out), as a retryable failure. */
function noAnswer(access: ForgeAccess, url: URL, purpose: Purpose, error: unknown): ForgeError {
  const cause = error instanceof TypeError ? (error.cause as { code?: unknown } | undefined) : undefined;
  const reason =
    error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
      ? 'timed out'
      : typeof cause?.code === 'string'
        ? cause.code
        : 'no answer';
  return new ForgeError(
    `could not reach ${access.forge} at ${url.protocol}//${url.host} for ${purpose.what}: ${reason}`,
    { forge: access.forge },
    { retryable: true },
  );
}

/** Runs a whole exchange again while it fails in a way that may pass (not rate limits: those want a wait). */
export function withRetries<T>(access: ForgeAccess, call: () => Promise<T>): Promise<T> {
  return retryVaultCall(call, {
    idempotent: true,
    policy: access.limits.retry,
    // The Vault policy reads statuses; a ForgeError already knows whether it may pass.
    facts: (error) =>
      error instanceof ForgeError ? { status: error.retryable && !error.rateLimited ? 503 : 400 } : undefined,
  });
}

/** The URL of an API path (`/repos/…`), with its query. */
export function apiUrl(access: ForgeAccess, path: string, query: Record<string, string | number> = {}): URL {
  const url = new URL(access.api.href);
  url.pathname = `${access.api.pathname.replace(/\/+$/, '')}${path}`;
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, String(value));
  return url;
}

async function send(
  access: ForgeAccess,
  url: URL,
  purpose: Purpose,
  options: { authorized: boolean; timeoutMs: number; accept?: string },
): Promise<Response> {
  try {
    return await fetch(url, {
      method: 'GET',
      redirect: 'manual',
      headers: {
        ...access.headers,
        ...(options.accept ? { accept: options.accept } : {}),
        ...(options.authorized ? access.authorize(access.token) : {}),
      },
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (error) {
    throw noAnswer(access, url, purpose, error);
  }
}

/** GET an API path as JSON, with its response headers (pagination). Not retried here: see {@link withRetries}. */
export async function getJson(
  access: ForgeAccess,
  url: URL,
  purpose: Purpose,
): Promise<{ body: unknown; headers: Headers }> {
  const response = await send(access, url, purpose, {
    authorized: true,
    timeoutMs: access.limits.requestTimeoutMs,
  });
  if (response.status !== 200) throw await failureOf(access, response, purpose);
  let body: unknown;
  try {
    body = await response.json();
  } catch (error) {
    throw new ForgeError(
      `${access.forge} answered the request for ${purpose.what} with something that is not JSON`,
      { forge: access.forge, status: 200 },
      { cause: error instanceof Error ? error.name : undefined, retryable: true },
    );
  }
  return { body, headers: response.headers };
}

/** A body read up to a bound. */
export interface BoundedBody {
  bytes: Uint8Array;
  /** Whether the body went on past the bound. */
  truncated: boolean;
  /** The whole body's length, when the answer said it (Content-Length) or it was read whole. */
  totalBytes: number | undefined;
}

/** Reads at most `maxBytes` of a body, then stops reading (the rest is never downloaded). */
export async function readBounded(
  access: ForgeAccess,
  response: Response,
  maxBytes: number,
  purpose: Purpose,
): Promise<BoundedBody> {
  const declared = Number(response.headers.get('content-length'));
  const chunks: Uint8Array[] = [];
  let length = 0;
  let truncated = false;
  const reader = response.body?.getReader();
  if (reader) {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const room = maxBytes - length;
        if (value.length > room) {
          chunks.push(value.subarray(0, room));
          length += room;
          truncated = true;
          break;
        }
        chunks.push(value);
        length += value.length;
      }
    } catch (error) {
      throw noAnswer(access, new URL(response.url || access.api.href), purpose, error);
    } finally {
      if (truncated) await reader.cancel().catch(() => undefined);
      reader.releaseLock();
    }
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const totalBytes = truncated ? (Number.isFinite(declared) && declared > 0 ? declared : undefined) : length;
  return { bytes, truncated, totalBytes };
}

/** Most hops a download may take after the API's own answer. */
const MAX_HOPS = 3;

/**
 * GET an API path that answers with the content itself (GitLab's trace) or with a redirect to
 * it (GitHub's logs: 302 to a short-lived signed URL), and read the content up to `maxBytes`.
 * Each redirect target is checked ({@link isSafeUrl}) before it is asked, and asked without the
 * token. Not retried here: see {@link withRetries}.
 */
export async function download(
  access: ForgeAccess,
  url: URL,
  purpose: Purpose,
  maxBytes: number,
): Promise<BoundedBody> {
  let response = await send(access, url, purpose, {
    authorized: true,
    timeoutMs: access.limits.downloadTimeoutMs,
  });
  let at = url;
  for (let hop = 0; isRedirect(response.status); hop++) {
    const location = response.headers.get('location');
    if (!location || hop >= MAX_HOPS) {
      throw new ForgeError(
        `${access.forge} answered the request for ${purpose.what} with ${location ? 'too many redirects' : `a ${response.status} without a Location`}`,
        { forge: access.forge, status: response.status },
        { retryable: true },
      );
    }
    let next: URL;
    try {
      next = new URL(location, at);
    } catch {
      throw new ForgeError(
        `${access.forge} redirected the request for ${purpose.what} to something that is not a URL`,
        { forge: access.forge, status: response.status },
      );
    }
    if (!isSafeUrl(next)) {
      // Only the scheme and host are shown: the path and query of a signed URL are its signature.
      throw new ForgeError(
        `refused to follow ${access.forge}'s redirect for ${purpose.what} to ${next.protocol}//${next.host}: expected an https URL (http only on loopback)`,
        { forge: access.forge, status: response.status },
      );
    }
    at = next;
    response = await send(access, next, purpose, {
      authorized: false,
      timeoutMs: access.limits.downloadTimeoutMs,
    });
    if (!isRedirect(response.status) && response.status !== 200) {
      // The signed URL expired (it lives about a minute) or storage failed: the whole
      // exchange, API call included, is worth another try.
      throw new ForgeError(
        `the download URL ${access.forge} gave for ${purpose.what} (${next.protocol}//${next.host}) answered ${response.status}; it lives about a minute, try again`,
        { forge: access.forge, status: response.status },
        { retryable: true },
      );
    }
  }
  if (response.status !== 200) throw await failureOf(access, response, purpose);
  return readBounded(access, response, maxBytes, purpose);
}

const isRedirect = (status: number): boolean => [301, 302, 303, 307, 308].includes(status);

/** A log's text as read, and a note when it is only the start of the log. */
export function textOf(body: BoundedBody, limitBytes: number): { text: string; note?: string } {
  const text = new TextDecoder('utf-8').decode(body.bytes);
  if (!body.truncated) return { text };
  const of = body.totalBytes === undefined ? 'longer' : sizeOf(body.totalBytes);
  return {
    text,
    note: `the log is ${of}: only its first ${sizeOf(limitBytes)} were read and scanned`,
  };
}
