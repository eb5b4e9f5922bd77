/**
 * The HTTP API's answers: the event and result shapes (API Gateway HTTP API, payload format
 * 2.0), JSON bodies in and out, and keywarden's errors mapped to statuses. A caller never
 * sees a stack trace or an unexpected error's message: those go to the function log.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import * as z from 'zod';
import { CiRefusalError } from '../core/ci-policy.ts';
import { ConflictError, KeywardenError, NotFoundError, ValidationError } from '../core/errors.ts';
import { type Grant, RefusalError } from '../core/grant.ts';
import type { StoredCampaign, StoredGrant } from '../core/ports.ts';

export type ApiEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: {
      iam?: { userArn?: string };
      /**
       * Set by the local runtime only: the user of a known development token, or
       * `unknownToken` when the request carried a bearer token no user holds.
       */
      lambda?: { localUser?: string; unknownToken?: boolean };
    };
  };
};
export type ApiResult = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

/** What the router reads of an event: its method, path and request id; the rest is read where used. */
export const ApiEventSchema = z.custom<ApiEvent>((event) => {
  const { rawPath, requestContext } = (event ?? {}) as Partial<ApiEvent>;
  return typeof rawPath === 'string' && typeof requestContext?.http?.method === 'string';
}, 'rawPath or requestContext.http.method missing');

/**
 * The largest request body keywarden reads: 1 MB. Behind API Gateway the platform's own limit
 * is higher, so the handler refuses a larger body itself, and the local runtime stops buffering
 * at the same size: both answer 413.
 */
export const MAX_BODY_BYTES = 1_000_000;

/** A caller that is neither SigV4-signed nor a local development user. */
export class UnauthenticatedError extends KeywardenError {
  override readonly name = 'UnauthenticatedError';
}

/** A request body over {@link MAX_BODY_BYTES}. */
export class PayloadTooLargeError extends KeywardenError {
  override readonly name = 'PayloadTooLargeError';
  constructor(received: string) {
    super(
      `expected a request body of at most ${MAX_BODY_BYTES} bytes (1 MB), got ${received}; send less (free-text fields have their own, smaller limits)`,
    );
  }
}

export const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}): ApiResult => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  body: JSON.stringify(body),
});

/** Every `error.code` an answer of the API may carry: api/openapi.yaml `Error` lists the same (test/unit/openapi.test.ts). */
export const ERROR_CODES = [
  'bad-request',
  'unauthenticated',
  'bad-slack-signature',
  'refused',
  'not-found',
  'conflict',
  'payload-too-large',
  'throttled',
  'unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The `Error` body: `{ error: { code, message } }`. */
export const errorAnswer = (statusCode: number, code: ErrorCode, message: string): ApiResult =>
  json(statusCode, { error: { code, message } });

/**
 * An answer with no body (a Slack acknowledgement): Slack wants a 200 and reads nothing, and a
 * content type keeps it describable (api/openapi.yaml `SlackAnswer`: `text/plain`, empty).
 */
export const emptyAnswer = (headers: Record<string, string> = {}): ApiResult => ({
  statusCode: 200,
  headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers },
  body: '',
});

/** The status and code of each of keywarden's errors a caller may cause; any other failure is `internal` (500). */
const errorCode: [new (...args: never[]) => Error, number, ErrorCode][] = [
  [UnauthenticatedError, 401, 'unauthenticated'],
  [PayloadTooLargeError, 413, 'payload-too-large'],
  [RefusalError, 403, 'refused'],
  [NotFoundError, 404, 'not-found'],
  [ValidationError, 400, 'bad-request'],
  [ConflictError, 409, 'conflict'],
];

/** A failure as the caller sees it: keywarden's errors by status, anything else as 500 with the request id. */
export function errorResult(error: unknown, requestId: string, log: (line: string) => void): ApiResult {
  if (error instanceof CiRefusalError) {
    // A token that does not verify is 401, one that verifies but may not is 403; both say why.
    const [status, code] = error.unauthenticated
      ? [401, 'unauthenticated' as const]
      : [403, 'refused' as const];
    return json(status, {
      error: {
        code,
        message: error.message,
        reason: error.reason,
        ...(error.claim ? { claim: error.claim } : {}),
      },
    });
  }
  for (const [type, status, code] of errorCode) {
    if (error instanceof type) return errorAnswer(status, code, error.message);
  }
  if (error instanceof KeywardenError && error.retryable) {
    // Something keywarden depends on did not answer (an issuer's signing keys, say): try again.
    return {
      ...errorAnswer(503, 'unavailable', error.message),
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': '5' },
    };
  }
  // Anything else may carry details a caller must not see: name and message go to the log
  // (keywarden's errors hold no secret values), the caller gets the request id to find them.
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  log(`request ${requestId} failed: ${name}: ${message}`);
  return errorAnswer(
    500,
    'internal',
    `keywarden failed; the function log has the cause (request ${requestId})`,
  );
}

/** The request id API Gateway gave the event, for the log line of a failure. */
export const requestIdOf = (event: unknown): string =>
  (event as Partial<ApiEvent> | undefined)?.requestContext?.requestId ?? 'unknown';

/** A grant as the API shows it: without the store's revision. */
export const view = ({ rev: _rev, ...grant }: StoredGrant): Grant => grant;
export const viewCampaign = ({ rev: _rev, ...campaign }: StoredCampaign) => campaign;

/** The size in bytes of the request's body as sent (base64-decoded when API Gateway encoded it). */
export function bodyBytes(event: ApiEvent): number {
  if (!event.body) return 0;
  return event.isBase64Encoded
    ? Buffer.from(event.body, 'base64').length
    : Buffer.byteLength(event.body, 'utf8');
}

/**
 * Refuses a body over {@link MAX_BODY_BYTES} (413), before anything reads it.
 * @throws PayloadTooLargeError naming the size received.
 */
export function refuseOversizedBody(event: ApiEvent): void {
  const size = bodyBytes(event);
  if (size > MAX_BODY_BYTES) throw new PayloadTooLargeError(`${size} bytes`);
}

export function rawBody(event: ApiEvent): string {
  if (!event.body) return '';
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}

/** The request's JSON body checked against its schema; a wrong one is a 400 naming each bad field. */
export function jsonBody<S extends z.ZodType>(event: ApiEvent, schema: S): z.infer<S> {
  let value: unknown = {};
  const text = rawBody(event);
  if (text) {
    try {
      value = JSON.parse(text);
    } catch {
      throw new ValidationError('expected a JSON body, got something that does not parse as JSON');
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ValidationError(
      `expected ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}
