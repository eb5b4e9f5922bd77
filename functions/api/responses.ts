/**
 * The HTTP API's answers: the event and result shapes (API Gateway HTTP API, payload format
 * 2.0), JSON bodies in and out, and keywarden's errors mapped to statuses. A caller never
 * sees a stack trace or an unexpected error's message: those go to the function log.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { z } from 'zod';
import { ConflictError, KeywardenError, NotFoundError, ValidationError } from '../core/errors.ts';
import { type Grant, RefusalError } from '../core/grant.ts';
import type { StoredCampaign, StoredGrant } from '../core/ports.ts';

export type ApiEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: { iam?: { userArn?: string }; lambda?: { localUser?: string } };
  };
};
export type ApiResult = APIGatewayProxyResultV2 & { statusCode: number; body: string };

/** What the router reads of an event: its method, path and request id; the rest is read where used. */
export const ApiEventSchema = z.custom<ApiEvent>((event) => {
  const { rawPath, requestContext } = (event ?? {}) as Partial<ApiEvent>;
  return typeof rawPath === 'string' && typeof requestContext?.http?.method === 'string';
}, 'rawPath or requestContext.http.method missing');

/** A caller that is neither SigV4-signed nor a local development user. */
export class UnauthenticatedError extends KeywardenError {
  override readonly name = 'UnauthenticatedError';
}

export const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}): ApiResult => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  body: JSON.stringify(body),
});

const errorCode: [new (...args: never[]) => Error, number, string][] = [
  [UnauthenticatedError, 401, 'unauthenticated'],
  [RefusalError, 403, 'refused'],
  [NotFoundError, 404, 'not-found'],
  [ValidationError, 400, 'bad-request'],
  [ConflictError, 409, 'conflict'],
];

/** A failure as the caller sees it: keywarden's errors by status, anything else as 500 with the request id. */
export function errorResult(error: unknown, requestId: string, log: (line: string) => void): ApiResult {
  for (const [type, status, code] of errorCode) {
    if (error instanceof type) return json(status, { error: { code, message: error.message } });
  }
  // Anything else may carry details a caller must not see: name and message go to the log
  // (keywarden's errors hold no secret values), the caller gets the request id to find them.
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  log(`request ${requestId} failed: ${name}: ${message}`);
  return json(500, {
    error: {
      code: 'internal',
      message: `keywarden failed; the function log has the cause (request ${requestId})`,
    },
  });
}

/** The request id API Gateway gave the event, for the log line of a failure. */
export const requestIdOf = (event: unknown): string =>
  (event as Partial<ApiEvent> | undefined)?.requestContext?.requestId ?? 'unknown';

/** A grant as the API shows it: without the store's revision. */
export const view = ({ rev: _rev, ...grant }: StoredGrant): Grant => grant;
export const viewCampaign = ({ rev: _rev, ...campaign }: StoredCampaign) => campaign;

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
