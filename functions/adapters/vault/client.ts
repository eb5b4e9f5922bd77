/**
 * The one door to Vault / OpenBao: read/list/write/delete over Vault's HTTP API
 * (`<addr>/v1/<path>`, JSON in and out), which every Vault adapter goes through.
 *
 * Why Node's own HTTP client and not node-vault: keywarden used only node-vault's generic
 * read/list/write/delete, never its helpers (whose token-returning calls, `tokenCreate`
 * and `*Login`, replace the client's own token: DESIGN, Known traps), and node-vault
 * brought axios, tv4, mustache and mime-db, ~280 kB of every Lambda bundle. Here:
 * - the token is a private field sent on every request, so nothing can swap it;
 * - a failure never carries the request (our token in its headers, the request body
 *   with secrets in it): it is rethrown as a {@link VaultError} built from the status
 *   and Vault's error strings only, with any request-body value Vault echoes back redacted;
 * - no environment variable (`VAULT_ADDR`, `VAULT_NAMESPACE`, `VAULT_SKIP_VERIFY`) changes
 *   where requests go or how TLS is checked: the options given are the whole truth.
 * - Vault answers "nothing here" with a 404 and an empty `errors` list; that
 *   becomes `undefined` / `[]`, while a 404 that names a problem (an unmounted
 *   path) stays an error, so a typo in a mount cannot look like "no credentials".
 * - Rate limits, 5xx and lost answers are tried again with backoff (./retry.ts),
 *   except where trying again could create a second token or secret-id.
 * - Requests go through `node:http` / `node:https` with a keep-alive agent of the client's own,
 *   not `fetch`: undici's fetch (WHATWG request, headers and body streams around every call) cost
 *   0.5–0.8 ms of CPU per request on loopback against 0.2 ms here, and a rotation of a fleet
 *   makes thousands of them.
 */
import {
  type Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import * as z from 'zod';
import { KeywardenError, ValidationError } from '../../core/errors.ts';
import { keepAliveAgent } from '../keep-alive.ts';
import { wholeNumberOption } from '../options.ts';
import {
  isIdempotentVaultRequest,
  retryVaultCall,
  type VaultFailureFacts,
  type VaultMethod,
} from './retry.ts';

/** How to reach Vault. The token is kept private and never replaced. */
export interface VaultClientOptions {
  /** Base address, such as `http://127.0.0.1:8200` (without `/v1`). */
  addr: string;
  token: string;
  /** Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`. */
  namespace?: string;
  /** Per-request timeout; a hung Vault must not eat a Lambda's whole budget. Default 10 s. */
  requestTimeoutMs?: number;
}

/** The envelope Vault wraps every answer in; `data` and `auth` depend on the endpoint. */
export interface VaultResponse {
  data?: Record<string, unknown> | null;
  auth?: Record<string, unknown> | null;
  warnings?: string[] | null;
  lease_id?: string;
  lease_duration?: number;
  renewable?: boolean;
  wrap_info?: Record<string, unknown> | null;
}

/** A call to Vault failed. `status` is the HTTP status, absent when Vault never answered. */
export class VaultError extends KeywardenError {
  override readonly name: string = 'VaultError';
  readonly status: number | undefined;
  /** Vault's own error strings, request-body values redacted. */
  readonly errors: readonly string[];
  readonly method: string;
  readonly path: string;
  constructor(
    message: string,
    details: { method: string; path: string; status?: number; errors?: readonly string[] },
    options: { cause?: unknown; retryable?: boolean } = {},
  ) {
    super(message, options);
    this.method = details.method;
    this.path = details.path;
    this.status = details.status;
    this.errors = details.errors ?? [];
  }
}

/**
 * What `auth/token/lookup-accessor` and `auth/token/lookup-self` return.
 * `id` is deliberately left out: lookup-self answers with the token itself in
 * it, and parsing strips it so the token travels no further.
 */
export const TokenLookupSchema = z.object({
  accessor: z.string(),
  /** Unix seconds. */
  creation_time: z.number(),
  creation_ttl: z.number(),
  display_name: z.string(),
  /** RFC 3339, or null for a token that never expires. */
  expire_time: z.string().nullable(),
  explicit_max_ttl: z.number(),
  issue_time: z.string().optional(),
  meta: z.record(z.string(), z.string()).nullable(),
  num_uses: z.number(),
  orphan: z.boolean(),
  /** The endpoint that created it: `auth/token/create…`, or `auth/<method>/login` for a login. */
  path: z.string(),
  policies: z.array(z.string()),
  renewable: z.boolean(),
  ttl: z.number(),
  type: z.string(),
  entity_id: z.string().optional(),
});
export type TokenLookup = z.infer<typeof TokenLookupSchema>;

/** The `auth` block of a token-create answer. `client_token` is the secret: hand it on, never log it. */
export const CreatedTokenSchema = z.object({
  client_token: z.string(),
  accessor: z.string(),
  policies: z.array(z.string()),
  token_policies: z.array(z.string()).optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  lease_duration: z.number(),
  renewable: z.boolean(),
  orphan: z.boolean().optional(),
});
export type CreatedToken = z.infer<typeof CreatedTokenSchema>;

/**
 * The `wrap_info` of a response-wrapped answer. `token` is the single-use wrapping token
 * (a secret: whoever unwraps it first gets the answer); `wrapped_accessor` is the accessor
 * of the token inside, when the wrapped answer is a token.
 */
export const WrapInfoSchema = z.object({
  token: z.string().min(1),
  accessor: z.string(),
  /** Seconds the wrapping token lives. */
  ttl: z.number(),
  /** RFC 3339. */
  creation_time: z.string(),
  creation_path: z.string(),
  wrapped_accessor: z.string().optional(),
});
export type WrapInfo = z.infer<typeof WrapInfoSchema>;

/** `<mount>/metadata/<path>` of KV v2 (OpenBao adds `current_metadata_version`). */
export const KvMetadataSchema = z.object({
  current_version: z.number(),
  /** OpenBao only: the revision `metadata_cas` is checked against. */
  current_metadata_version: z.number().optional(),
  custom_metadata: z.record(z.string(), z.string()).nullable().optional(),
  versions: z.record(
    z.string(),
    z.object({
      created_time: z.string(),
      /** Empty while live; set when soft-deleted, or a future time when `delete_version_after` is set. */
      deletion_time: z.string(),
      destroyed: z.boolean(),
    }),
  ),
});

/** The body of `auth/token/create` (see Vault's token auth API); durations as Vault strings (`1h`). */
export interface TokenCreateRequest {
  policies?: string[];
  no_default_policy?: boolean;
  meta?: Record<string, string>;
  display_name?: string;
  ttl?: string;
  explicit_max_ttl?: string;
  period?: string;
  renewable?: boolean;
  num_uses?: number;
  type?: 'service' | 'batch';
  role_name?: string;
}

/** The HTTP methods of the client's four calls (LIST is Vault's own method). */
const HTTP_METHODS: Record<VaultMethod, string> = {
  read: 'GET',
  list: 'LIST',
  write: 'POST',
  delete: 'DELETE',
};

/** The transport's rejection for an answer with a status other than 200 or 204. */
class ApiResponseError extends Error {
  constructor(readonly response: { statusCode: number; body: unknown }) {
    super(`Vault answered HTTP ${response.statusCode}`);
  }
}

const isApiResponseError = (error: unknown): error is ApiResponseError => error instanceof ApiResponseError;

/** The transport's rejection when no answer came: `code` as Node names it (`ECONNRESET`…). */
class NoAnswerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The statuses fetch follows (to `Location`), and how many hops it takes at most here. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** A transport failure as a {@link NoAnswerError} (Node's socket code kept); anything else (a bug) unchanged. */
function noAnswer(error: unknown): unknown {
  if (error instanceof NoAnswerError) return error;
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  // Node's own refusals of a request (`ERR_INVALID_CHAR` in a header…) are not Vault's silence.
  if (typeof code !== 'string' || code.startsWith('ERR_')) return error;
  return new NoAnswerError(code, typeof message === 'string' ? message : code);
}

/** An answer's body: JSON as Vault sends it, the text of anything else, `''` when empty (204). */
function bodyOf(text: string): unknown {
  if (text === '') return '';
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Rate limited, or a server-side failure that may pass: worth another try. */
const retryableStatus = (status: number): boolean => status === 429 || status >= 500;

/**
 * Thin, token-safe Vault client; see the module comment for why it exists.
 * Paths are sent as given (no leading slash, no `/v1`): percent-encode segments
 * that may hold `?`, `#` or spaces, such as names read back from a LIST.
 */
export class VaultClient {
  /** Where requests go; safe to show in messages. */
  readonly addr: string;
  readonly #token: string;
  readonly #namespace: string | undefined;
  readonly #timeoutMs: number;
  /** The origin of `addr` (its requests use {@link #agent}) and any path prefix before `/v1`. */
  readonly #origin: string;
  readonly #prefix: string;
  /** Connections kept open between requests (the process's keep-alive agent, keep-alive.ts). */
  readonly #agent: HttpAgent;

  constructor(options: VaultClientOptions) {
    if (!/^https?:\/\//.test(options.addr)) {
      throw new ValidationError(
        `VaultClient: expected addr such as http://127.0.0.1:8200, got ${JSON.stringify(options.addr)}`,
      );
    }
    // A token read from a file or a secret written from one often ends in a newline: sent as it is,
    // Node would refuse the header (fetch trimmed it).
    const token = options.token.trim();
    if (!token) throw new ValidationError('VaultClient: expected a token, got an empty one');
    if ([...token].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
      throw new ValidationError(
        'VaultClient: expected a token of printable characters, got one holding a control character',
      );
    }
    const timeout = wholeNumberOption(
      { owner: 'VaultClient', option: 'requestTimeoutMs' },
      options.requestTimeoutMs,
      10_000,
    );
    this.addr = options.addr.replace(/\/+$/, '');
    this.#token = token;
    this.#namespace = options.namespace?.trim() || undefined;
    this.#timeoutMs = timeout;
    const url = new URL(this.addr);
    this.#origin = url.origin;
    this.#prefix = url.pathname.replace(/\/+$/, '');
    this.#agent = keepAliveAgent(url.protocol);
  }

  /** GET `path`; `undefined` when Vault has nothing there (404 without an error). */
  async read(path: string): Promise<VaultResponse | undefined> {
    try {
      return asResponse(await this.#send('read', path));
    } catch (error) {
      if (isNothingHere(error)) return undefined;
      throw this.#fail('read', path, error);
    }
  }

  /** LIST `path`: the keys (folders end in `/`), `[]` when there are none. */
  async list(path: string): Promise<string[]> {
    try {
      const response = asResponse(await this.#send('list', path));
      const keys = response.data?.keys;
      return Array.isArray(keys) ? keys.filter((key): key is string => typeof key === 'string') : [];
    } catch (error) {
      if (isNothingHere(error)) return [];
      throw this.#fail('list', path, error);
    }
  }

  /** POST `data` to `path`. The body is never part of an error message. */
  async write(path: string, data: Record<string, unknown>): Promise<VaultResponse> {
    try {
      return asResponse(await this.#send('write', path, data));
    } catch (error) {
      throw this.#fail('write', path, error, data);
    }
  }

  /**
   * POST `data` to `path` with Vault response wrapping (`X-Vault-Wrap-TTL`): Vault keeps
   * the answer in a single-use wrapping token that lives `wrapTtlSeconds`, and returns
   * only that token's `wrap_info`. Every call mints a new wrapping token, so after a lost
   * answer it is never sent again (only a 429 or a refused connection, which prove Vault
   * did nothing, are retried); the failure comes back retryable for the caller to decide.
   */
  async writeWrapped(path: string, data: Record<string, unknown>, wrapTtlSeconds: number): Promise<WrapInfo> {
    wholeNumberOption({ owner: 'VaultClient.writeWrapped', option: 'wrapTtlSeconds' }, wrapTtlSeconds);
    let response: VaultResponse;
    try {
      const headers = { 'X-Vault-Wrap-TTL': `${wrapTtlSeconds}s` };
      response = asResponse(
        await retryVaultCall(() => this.#request('write', path, data, headers), {
          idempotent: false,
          facts: failureFacts,
        }),
      );
    } catch (error) {
      throw this.#fail('write', path, error, data);
    }
    return parseVaultAnswer(WrapInfoSchema, response.wrap_info, 'write', path);
  }

  /** DELETE `path`. */
  async delete(path: string): Promise<void> {
    try {
      await this.#send('delete', path);
    } catch (error) {
      throw this.#fail('delete', path, error);
    }
  }

  /**
   * Creates a token through `auth/token/create` (or `create-orphan`), as a plain
   * write: the new token is handed back, never made this client's own.
   */
  async createToken(body: TokenCreateRequest, options: { orphan?: boolean } = {}): Promise<CreatedToken> {
    const path = options.orphan ? 'auth/token/create-orphan' : 'auth/token/create';
    const response = await this.write(path, { ...body });
    return parseVaultAnswer(CreatedTokenSchema, response.auth, 'write', path);
  }

  /** Looks a token up by accessor; `undefined` when no such token exists (any more). */
  async lookupAccessor(accessor: string): Promise<TokenLookup | undefined> {
    const path = 'auth/token/lookup-accessor';
    try {
      const response = await this.write(path, { accessor });
      return parseVaultAnswer(TokenLookupSchema, response.data, 'write', path);
    } catch (error) {
      if (isUnknownAccessor(error)) return undefined;
      throw error;
    }
  }

  /** This client's own token, without its id. */
  async lookupSelf(): Promise<TokenLookup> {
    const path = 'auth/token/lookup-self';
    const response = await this.read(path);
    return parseVaultAnswer(TokenLookupSchema, response?.data, 'read', path);
  }

  /**
   * Revokes a token (and its children) by accessor. OpenBao answers an unknown
   * accessor with 200 and a warning, Vault with 400 `invalid accessor`; both
   * mean the token is gone, reported as `already-revoked`.
   */
  async revokeAccessor(accessor: string): Promise<'revoked' | 'already-revoked'> {
    try {
      const response = await this.write('auth/token/revoke-accessor', { accessor });
      const gone = (response.warnings ?? []).some((warning) => /no token found/i.test(warning));
      return gone ? 'already-revoked' : 'revoked';
    } catch (error) {
      if (isUnknownAccessor(error)) return 'already-revoked';
      throw error;
    }
  }

  /**
   * One call to Vault, tried again while it fails retryably (see ./retry.ts); the last
   * failure is rethrown as the transport raised it, for the caller's catch to convert.
   */
  #send(method: VaultMethod, path: string, data?: Record<string, unknown>): Promise<unknown> {
    return retryVaultCall(() => this.#request(method, path, data), {
      idempotent: isIdempotentVaultRequest(method, path),
      facts: failureFacts,
    });
  }

  /**
   * One HTTP request: the answer's body for 200 and 204, else an {@link ApiResponseError};
   * a {@link NoAnswerError} when no answer came within the timeout.
   */
  async #request(
    method: VaultMethod,
    path: string,
    data?: Record<string, unknown>,
    extraHeaders: Record<string, string> = {},
  ): Promise<unknown> {
    const headers: Record<string, string | number> = { ...extraHeaders, 'X-Vault-Token': this.#token };
    if (this.#namespace) headers['X-Vault-Namespace'] = this.#namespace;
    const body = data ? Buffer.from(JSON.stringify(data)) : undefined;
    if (body) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = body.length;
    }
    // The URL parser encodes what a path may not hold as it is (spaces, quotes), as fetch did.
    let url = new URL(`${this.#prefix}/v1/${path}`, this.addr);
    let httpMethod = HTTP_METHODS[method];
    let payload = body;
    let response: { status: number; text: string; location: string | undefined };
    for (let hop = 0; ; hop += 1) {
      try {
        response = await this.#exchange(url, httpMethod, headers, payload);
      } catch (error) {
        throw noAnswer(error);
      }
      // Redirects are followed as fetch follows them: a standby Vault without request forwarding
      // answers 307 with the active node's address.
      if (!REDIRECTS.has(response.status) || response.location === undefined || hop >= MAX_REDIRECTS) break;
      url = new URL(response.location, url);
      if (response.status === 303 ? httpMethod !== 'GET' : response.status <= 302 && httpMethod === 'POST') {
        httpMethod = 'GET';
        payload = undefined;
        delete headers['Content-Type'];
        delete headers['Content-Length'];
      }
    }
    const answer = bodyOf(response.text);
    if (response.status !== 200 && response.status !== 204) {
      throw new ApiResponseError({ statusCode: response.status, body: answer });
    }
    return answer;
  }

  /**
   * Sends one request and reads its whole answer as text. A timer of its own, cleared with the
   * answer, ends a request that gets no answer in time (AbortSignal.timeout's signal and timer
   * would live on for the whole timeout after the answer came, thousands at once in a fleet's
   * rotation).
   */
  #exchange(
    url: URL,
    method: string,
    headers: Record<string, string | number>,
    body: Buffer | undefined,
  ): Promise<{ status: number; text: string; location: string | undefined }> {
    const https = url.protocol === 'https:';
    const options: RequestOptions = {
      // An IPv6 literal comes bracketed in a URL, bare in a request's options.
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      ...(url.port ? { port: url.port } : {}),
      path: `${url.pathname}${url.search}`,
      method,
      headers,
      // Vault's own address keeps its connections; a redirect elsewhere goes through Node's default agent.
      ...(url.origin === this.#origin ? { agent: this.#agent } : {}),
    };
    return new Promise((resolve, reject) => {
      const send = https ? httpsRequest : httpRequest;
      const request = send(options, (answer: IncomingMessage) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: answer.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            location: answer.headers.location,
          });
        });
        answer.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
      const timer = setTimeout(
        () => request.destroy(new NoAnswerError('ETIMEDOUT', `timed out after ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
      timer.unref();
      request.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.end(body);
    });
  }

  #fail(method: string, path: string, error: unknown, body?: Record<string, unknown>): VaultError {
    const secrets = [this.#token, ...(body ? stringLeaves(body) : [])];
    if (isApiResponseError(error)) {
      const status = error.response.statusCode;
      const errors = vaultErrors(error.response.body).map((text) => redact(text, secrets));
      const said = errors.length ? `: ${errors.join('; ')}` : '';
      return new VaultError(
        `Vault ${method} ${path} failed with HTTP ${status}${said}`,
        { method, path, status, errors },
        { retryable: retryableStatus(status) },
      );
    }
    // No answer: refused, reset, timed out. Only the code and message survive, as a
    // fresh cause, with any request value in them redacted.
    const code =
      typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : undefined;
    const text = redact(error instanceof Error ? error.message : String(error), secrets);
    return new VaultError(
      `Vault ${method} ${path} got no answer from ${this.addr} (${code ?? 'error'}: ${text}); check that Vault is reachable, then retry`,
      { method, path },
      { retryable: true, cause: new Error(code ? `${code}: ${text}` : text) },
    );
  }
}

/**
 * Checks the part of a Vault answer an adapter relies on. A mismatch is a
 * {@link VaultError} listing issue paths and codes only, never the received
 * values (they may be secrets).
 */
export function parseVaultAnswer<T>(schema: z.ZodType<T>, value: unknown, method: string, path: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.code}`);
  throw new VaultError(
    `Vault ${method} ${path} answered in an unexpected shape (${issues.join('; ')}); expected a Vault/OpenBao server of a supported version`,
    { method, path },
  );
}

/**
 * What a transport failure says about itself, for the retry policy: an answer's status
 * and errors, or the code of an answer that never came. Anything else (a bug) is not a
 * Vault failure and is never retried.
 */
function failureFacts(error: unknown): VaultFailureFacts | undefined {
  if (isApiResponseError(error)) {
    return { status: error.response.statusCode, errors: vaultErrors(error.response.body) };
  }
  return error instanceof NoAnswerError ? { code: error.code } : undefined;
}

/** A 204 has an empty body; callers always get an object. */
function asResponse(value: unknown): VaultResponse {
  return typeof value === 'object' && value !== null ? (value as VaultResponse) : {};
}

/** Vault's "nothing at this path": a 404 whose `errors` list is empty or absent. */
function isNothingHere(error: unknown): boolean {
  return (
    isApiResponseError(error) &&
    error.response.statusCode === 404 &&
    vaultErrors(error.response.body).length === 0
  );
}

const isUnknownAccessor = (error: unknown): boolean =>
  error instanceof VaultError &&
  error.status === 400 &&
  error.errors.some((text) => /invalid accessor/i.test(text));

/** Vault's error strings: `errors[]`, and `data.error` that some plugins (AppRole) use instead. */
function vaultErrors(body: unknown): string[] {
  if (typeof body !== 'object' || body === null) return [];
  const { errors, data } = body as { errors?: unknown; data?: { error?: unknown } | null };
  const found = Array.isArray(errors)
    ? errors.filter((text): text is string => typeof text === 'string')
    : [];
  if (typeof data?.error === 'string') found.push(data.error);
  // Vault wraps multi-errors as "1 error occurred:\n\t* invalid accessor\n\n".
  return found.map((text) => text.replace(/\s+/g, ' ').trim()).filter(Boolean);
}

/** Every string in a request body: what Vault may echo back inside an error ("invalid duration \"…\""). */
function stringLeaves(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringLeaves);
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(stringLeaves);
  return [];
}

/**
 * Removes request values from Vault's error text. Whole values first (4+
 * characters; shorter ones are not secrets and would garble the text). Then any
 * quoted piece of one: Go quotes what it echoes, and sometimes echoes a
 * fragment, as in `time: unknown unit "xQz…" in duration "7xQz…"`.
 */
function redact(text: string, secrets: readonly string[]): string {
  const whole = secrets
    .filter((secret) => secret.length >= 4)
    .sort((a, b) => b.length - a.length)
    .reduce((out, secret) => out.split(secret).join('[redacted]'), text);
  return whole.replace(/"((?:[^"\\]|\\.)*)"/g, (quoted, inner: string) =>
    inner.length >= 2 && secrets.some((secret) => secret.includes(inner)) ? '"[redacted]"' : quoted,
  );
}
