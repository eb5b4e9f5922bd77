/**
 * One Lambda operation, Invoke, as a SigV4-signed `fetch`: how the functions without
 * `iam:PutRolePolicy` ask the role-deny function (role-deny-client.ts, RequestResponse), and how
 * Slack ingress hands a job to the worker (Event). The SDK's Lambda client would add ~70 kB to
 * each of six bundles for this one call (its schemas and error
 * classes cover the whole Lambda API); the signer (`@smithy/signature-v4`) and the credential
 * chain (`@aws-sdk/credential-provider-node`) are the SDK's own and already in every bundle.
 * Like the SDK, it retries throttling, server errors and lost connections with backoff.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { AWS_MAX_ATTEMPTS } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';
import { Sha256 } from './sha256.ts';

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

/** Lambda refused or failed the invocation itself (not the function): `name` is its error type. */
export class LambdaInvokeError extends Error {
  constructor(
    override readonly name: string,
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Lambda's endpoint in `region` (China's regions have their own domain), unless one is configured. */
export function lambdaEndpoint(endpoint: AwsEndpoint): URL {
  if (endpoint.endpoint) return new URL(endpoint.endpoint);
  const domain = endpoint.region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return new URL(`https://lambda.${endpoint.region}.${domain}`);
}

/** Whether trying again may help: throttling, a server error, or no answer at all. */
const retryable = (status: number | undefined) => status === undefined || status === 429 || status >= 500;

export interface SignedLambdaInvokeOptions {
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  maxAttempts?: number;
}

/**
 * A {@link LambdaInvoke} over `fetch`, signed with the endpoint's credentials or the default chain
 * (in Lambda, the execution role's, from the environment). A lost connection is retried like a
 * throttle, as the SDK does: the role-deny function's requests are idempotent, and a queued
 * event may reach its function twice anyway (Lambda delivers them at least once).
 */
export function signedLambdaInvoke(
  endpoint: AwsEndpoint,
  { fetch: fetchFn = fetch, sleep = delay, maxAttempts = AWS_MAX_ATTEMPTS }: SignedLambdaInvokeOptions = {},
): LambdaInvoke {
  const base = lambdaEndpoint(endpoint);
  const signer = new SignatureV4({
    service: 'lambda',
    region: endpoint.region,
    credentials: endpoint.credentials ?? defaultProvider(),
    sha256: Sha256,
  });
  return async (functionName, payload, invocationType = 'RequestResponse') => {
    const path = `/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`;
    for (let attempt = 1; ; attempt++) {
      const signed = await signer.sign({
        method: 'POST',
        protocol: base.protocol,
        hostname: base.hostname,
        ...(base.port ? { port: Number(base.port) } : {}),
        path,
        headers: {
          host: base.host,
          'content-type': 'application/json',
          'x-amz-invocation-type': invocationType,
        },
        body: payload,
      });
      let failure: LambdaInvokeError;
      try {
        const response = await fetchFn(new URL(path, base), {
          method: 'POST',
          headers: signed.headers,
          body: payload,
        });
        const text = await response.text();
        if (response.ok) {
          return { payload: text, functionError: response.headers.get('x-amz-function-error') ?? undefined };
        }
        // Lambda names its error in a header (`Type:more`) and says what in the body's `message`.
        const type = response.headers.get('x-amzn-errortype')?.split(':')[0] || `HTTP${response.status}`;
        const message = (parseJson(text) as { message?: unknown; Message?: unknown } | undefined) ?? {};
        failure = new LambdaInvokeError(
          type,
          response.status,
          String(message.message ?? message.Message ?? `HTTP ${response.status}`),
        );
      } catch (error) {
        failure = new LambdaInvokeError((error as Error).name, undefined, (error as Error).message);
      }
      if (!retryable(failure.status) || attempt >= maxAttempts) throw failure;
      // Full jitter, as the SDK's standard retry: up to 100 ms · 2^attempt, at most 20 s.
      await sleep(Math.random() * Math.min(20_000, 100 * 2 ** attempt));
    }
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
