/**
 * The pipeline side of keywarden's CI exchange, shared by the GitHub Action's main and post
 * steps and by `keywarden ci`: trade the job's OIDC token for its grant's credentials
 * (`POST /ci/credentials`), end them early (`DELETE /ci/credentials/{id}`), and name the
 * environment variables and secret values they become.
 *
 * It depends on nothing but `fetch` and zod (the Action bundles it; `@actions/core` stays in
 * main.ts/post.ts), and never puts a token or a credential in an error: a refusal carries
 * keywarden's own message, which names the claim that did not match, never the token.
 */
import * as z from 'zod';

/** What a job's exchange answers (201). Every value under `vault.token` and `aws` but the ids is secret. */
export const CiCredentialsSchema = z.object({
  id: z.string().min(1),
  grant: z.string(),
  correlationId: z.string(),
  expiresAt: z.string(),
  vault: z
    .object({
      token: z.string().min(1),
      accessor: z.string(),
      expiresAt: z.string(),
      /** Where the token is for; absent when keywarden's deployment does not name its Vault. */
      addr: z.string().optional(),
    })
    .optional(),
  aws: z
    .object({
      accessKeyId: z.string().min(1),
      secretAccessKey: z.string().min(1),
      sessionToken: z.string().min(1),
      expiresAt: z.string(),
      region: z.string(),
    })
    .optional(),
});
export type CiCredentials = z.infer<typeof CiCredentialsSchema>;

/** What ending an exchange answers (200, also for one already ended). */
export const CiEndedSchema = z.object({ id: z.string(), ended: z.literal(true) });
export type CiEnded = z.infer<typeof CiEndedSchema>;

/** What the Action's main step saves for its post step (the runner hands it back as `STATE_<name>`). */
export const ACTION_STATE = {
  id: 'keywarden_ci_id',
  url: 'keywarden_url',
  audience: 'keywarden_audience',
} as const;

/** Why a GitHub job has no OIDC token to exchange, or undefined when the runner offers one. */
export function missingGithubIdToken(env: Readonly<Record<string, string | undefined>>): string | undefined {
  return env.ACTIONS_ID_TOKEN_REQUEST_URL && env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
    ? undefined
    : 'expected an OIDC token from the runner, got none: give the job `permissions: id-token: write` (GitHub then sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN)';
}

/** An artifact digest as keywarden's grants name it. */
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** keywarden refused, or could not be reached; the message is keywarden's own (never a token). */
export class CiExchangeError extends Error {
  override readonly name = 'CiExchangeError';
  constructor(
    message: string,
    /** The HTTP status (401: the token did not verify, 403: the policy refused), 0 when unreachable. */
    readonly status: number,
    /** keywarden's error code (`claim-mismatch`, `replayed`, …), or `http` / `unreachable`. */
    readonly code: string,
  ) {
    super(message);
  }
}

export interface ExchangeRequest {
  /** keywarden's API base, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`. */
  url: string;
  /** The job's OIDC token (used once: keywarden refuses a token whose `jti` it has seen). */
  token: string;
  grant: string;
  artifactDigest?: string | undefined;
  /** For tests; defaults to 30 s. */
  timeoutMs?: number;
}

const endpoint = (base: string, path: string): string => {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new CiExchangeError(
      `expected keywarden's API base URL (https://…), got ${JSON.stringify(base)}`,
      0,
      'bad-input',
    );
  }
  return new URL(path.replace(/^\//, ''), url.href.endsWith('/') ? url.href : `${url.href}/`).toString();
};

/** keywarden's error body: `{ error: { code, message, reason?, claim? } }` (the API's shape) or `{ error, message }`. */
function refusalOf(status: number, body: unknown): CiExchangeError {
  const answer = (typeof body === 'object' && body !== null ? body : {}) as {
    error?: unknown;
    message?: unknown;
  };
  const nested =
    typeof answer.error === 'object' && answer.error !== null
      ? (answer.error as { code?: unknown; reason?: unknown; message?: unknown })
      : undefined;
  // A refused exchange names its reason (claim-mismatch, replayed, expired…) beside the code.
  const code = String(
    nested?.reason ?? nested?.code ?? (typeof answer.error === 'string' ? answer.error : 'http'),
  );
  const said = nested?.message ?? answer.message;
  const message = typeof said === 'string' && said ? said : `keywarden answered HTTP ${status}`;
  const hint =
    status === 401
      ? ' (the job token did not verify)'
      : status === 403
        ? ' (the grant does not allow this job)'
        : '';
  return new CiExchangeError(`${message}${hint}`, status, code);
}

async function call(
  method: 'POST' | 'DELETE',
  url: string,
  token: string,
  body: unknown,
  timeoutMs = 30_000,
) {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    // fetch's own errors name the URL and the cause (refused, timeout), never the headers.
    const cause =
      error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : '';
    throw new CiExchangeError(`could not reach keywarden at ${url}: ${cause}`, 0, 'unreachable');
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = undefined;
  }
  if (!response.ok) throw refusalOf(response.status, parsed);
  if (parsed === undefined) {
    throw new CiExchangeError(
      `expected JSON from keywarden at ${url}, got ${response.headers.get('content-type') ?? 'no content type'}`,
      response.status,
      'http',
    );
  }
  return parsed;
}

/**
 * Trades the job's token for its grant's credentials. Not retried: the token is spent on the
 * first answer keywarden gives, and a second try with it would be refused as a replay.
 */
export async function requestCredentials(request: ExchangeRequest): Promise<CiCredentials> {
  if (request.artifactDigest && !DIGEST.test(request.artifactDigest)) {
    throw new CiExchangeError(
      `expected an artifact digest as sha256:<64 lowercase hex digits>, got ${JSON.stringify(request.artifactDigest.slice(0, 80))}`,
      0,
      'bad-input',
    );
  }
  const url = endpoint(request.url, '/ci/credentials');
  const answer = await call(
    'POST',
    url,
    request.token,
    { grant: request.grant, ...(request.artifactDigest ? { artifactDigest: request.artifactDigest } : {}) },
    request.timeoutMs,
  );
  const parsed = CiCredentialsSchema.safeParse(answer);
  if (!parsed.success) {
    // Name the fields only: the answer holds credentials.
    const fields = [...new Set(parsed.error.issues.map((issue) => issue.path.join('.')))].join(', ');
    throw new CiExchangeError(
      `expected keywarden's credentials answer (id, grant, correlationId, expiresAt, vault?, aws?), got one with unexpected ${fields}`,
      201,
      'bad-answer',
    );
  }
  return parsed.data;
}

/** Ends an exchange's credentials early, with a fresh token of the same job (idempotent). */
export async function endCredentials(request: {
  url: string;
  token: string;
  id: string;
  timeoutMs?: number;
}): Promise<CiEnded> {
  if (!request.id) throw new CiExchangeError('expected the exchange id to end, got none', 0, 'bad-input');
  const url = endpoint(request.url, `/ci/credentials/${encodeURIComponent(request.id)}`);
  const answer = await call('DELETE', url, request.token, undefined, request.timeoutMs);
  const parsed = CiEndedSchema.safeParse(answer);
  if (!parsed.success) {
    throw new CiExchangeError(
      `expected { id, ended: true } from keywarden, got ${JSON.stringify(answer)}`,
      200,
      'bad-answer',
    );
  }
  return parsed.data;
}

/** Every value a log must never show: register each as a mask before anything else is written. */
export function secretsOf(credentials: CiCredentials): string[] {
  return [
    credentials.vault?.token,
    credentials.aws?.accessKeyId,
    credentials.aws?.secretAccessKey,
    credentials.aws?.sessionToken,
  ].filter((value): value is string => Boolean(value));
}

/**
 * The environment the credentials become, as the Vault and AWS CLIs and SDKs read it, plus
 * `KEYWARDEN_CI_ID` (what `keywarden ci end` ends).
 */
export function environmentOf(credentials: CiCredentials): Record<string, string> {
  return {
    KEYWARDEN_CI_ID: credentials.id,
    ...(credentials.vault?.addr ? { VAULT_ADDR: credentials.vault.addr } : {}),
    ...(credentials.vault ? { VAULT_TOKEN: credentials.vault.token } : {}),
    ...(credentials.aws
      ? {
          AWS_ACCESS_KEY_ID: credentials.aws.accessKeyId,
          AWS_SECRET_ACCESS_KEY: credentials.aws.secretAccessKey,
          AWS_SESSION_TOKEN: credentials.aws.sessionToken,
          AWS_REGION: credentials.aws.region,
          AWS_DEFAULT_REGION: credentials.aws.region,
        }
      : {}),
  };
}

/** Single-quoted for POSIX shells: nothing inside is expanded (a `'` becomes `'\''`). */
export const shellQuote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;

/** `export NAME='value'` lines for `eval` in a POSIX shell (names are fixed; values are quoted). */
export const shellExports = (env: Readonly<Record<string, string>>): string =>
  Object.entries(env)
    .map(([name, value]) => `export ${name}=${shellQuote(value)}`)
    .join('\n');

/**
 * A GitHub Actions job's OIDC token, by the runner's protocol: GET `ACTIONS_ID_TOKEN_REQUEST_URL`
 * (+ `audience`) with `ACTIONS_ID_TOKEN_REQUEST_TOKEN` as bearer answers `{ value }`. The job
 * needs `permissions: id-token: write` for the runner to set both variables.
 */
export async function requestGithubIdToken(
  env: Readonly<Record<string, string | undefined>>,
  audience: string,
): Promise<string> {
  const requestUrl = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  const missing = missingGithubIdToken(env);
  if (missing || !requestUrl || !requestToken) throw new CiExchangeError(missing ?? '', 0, 'no-token');
  const url = new URL(requestUrl);
  url.searchParams.set('audience', audience);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { authorization: `Bearer ${requestToken}`, accept: 'application/json' },
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    throw new CiExchangeError(
      `could not reach GitHub's token service at ${url.origin}: ${error instanceof Error ? error.message : String(error)}`,
      0,
      'unreachable',
    );
  }
  const body = (await response.json().catch(() => ({}))) as { value?: unknown };
  if (!response.ok || typeof body.value !== 'string' || !body.value) {
    throw new CiExchangeError(
      `expected an OIDC token from GitHub's token service, got HTTP ${response.status} without one`,
      response.status,
      'no-token',
    );
  }
  return body.value;
}
