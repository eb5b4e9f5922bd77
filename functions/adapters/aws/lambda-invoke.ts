/**
 * One Lambda operation, Invoke, as a SigV4-signed `fetch`: how the functions without
 * `iam:PutRolePolicy` ask the role-deny function (role-deny-client.ts, RequestResponse), and how
 * Slack ingress hands a job to the worker (Event). The SDK's Lambda client would add ~70 kB to
 * each of six bundles for this one call (its schemas and error classes cover the whole Lambda
 * API); the signing and the SDK's retry are signed-fetch.ts's.
 */
import type { AwsEndpoint } from './endpoint.ts';
import {
  AwsRequestError,
  type FailureReader,
  lostAnswer,
  regionalHost,
  retryableStatus,
  type SignedFetchOptions,
  signedFetch,
} from './signed-fetch.ts';

/** What Lambda answered an invocation: the function's payload, and its error type when it failed. */
export interface InvokeAnswer {
  payload: string;
  /** `X-Amz-Function-Error`: set when the function threw (its payload then says what). */
  functionError?: string | undefined;
}

/**
 * Invokes a function with a JSON payload: synchronously (its answer), or queued (`Event`: the
 * answer is empty once Lambda has accepted the event).
 */
export type LambdaInvoke = (
  functionName: string,
  payload: string,
  invocationType?: 'RequestResponse' | 'Event',
) => Promise<InvokeAnswer>;

/**
 * Lambda refused or failed the invocation itself (not the function): `name` is its error type,
 * `retryable` for throttling, a server error or no answer (as the SDK's retry sees them).
 */
export class LambdaInvokeError extends AwsRequestError {
  constructor(
    name: string,
    status: number | undefined,
    message: string,
    retryable: boolean = retryableStatus(status),
    options: { cause?: unknown } = {},
  ) {
    super(name, status, message, retryable, options);
  }
}

/** Lambda's endpoint in `region` ({@link regionalHost}: its partition's, FIPS or dual-stack as the environment asks), unless one is configured. */
export function lambdaEndpoint(endpoint: AwsEndpoint, env: NodeJS.ProcessEnv = process.env): URL {
  if (endpoint.endpoint) return new URL(endpoint.endpoint);
  return new URL(`https://${regionalHost('lambda', endpoint.region, env)}`);
}

export type SignedLambdaInvokeOptions = SignedFetchOptions;

/** How Lambda's failures read: its error type in a header (`Type:more`), what went wrong in the body's `message`. */
const LAMBDA_FAILURES: FailureReader<LambdaInvokeError> = {
  refused: ({ status, headers, text }) => {
    const type = headers.get('x-amzn-errortype')?.split(':')[0] || `HTTP${status}`;
    const message = (parseJson(text) as { message?: unknown; Message?: unknown } | undefined) ?? {};
    return new LambdaInvokeError(
      type,
      status,
      String(message.message ?? message.Message ?? `HTTP ${status}`),
    );
  },
  lost: lostAnswer(LambdaInvokeError, 'Lambda'),
};

/**
 * A {@link LambdaInvoke} over a {@link signedFetch}, signed with the endpoint's credentials or
 * the default chain (in Lambda, the execution role's, from the environment), retried like the
 * SDK retries (throttling, server errors, lost connections).
 */
export function signedLambdaInvoke(
  endpoint: AwsEndpoint,
  options: SignedLambdaInvokeOptions = {},
): LambdaInvoke {
  const base = lambdaEndpoint(endpoint);
  const send = signedFetch({ ...options, service: 'lambda', endpoint });
  return async (functionName, payload, invocationType = 'RequestResponse') => {
    const url = new URL(`/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`, base);
    const answer = await send(
      {
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json', 'x-amz-invocation-type': invocationType },
        body: payload,
      },
      LAMBDA_FAILURES,
    );
    return { payload: answer.text, functionError: answer.headers.get('x-amz-function-error') ?? undefined };
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
