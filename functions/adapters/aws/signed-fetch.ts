/**
 * One AWS request as a SigV4-signed `fetch`, retried like the SDK retries it: what Lambda's
 * Invoke (lambda-invoke.ts) and S3's PutObject (s3-put-object.ts) are built on, so that a
 * function making one call of a service carries neither the service's SDK client (its schemas,
 * error classes and protocol layers cover the whole API) nor a second signer. The signer
 * (`@smithy/signature-v4`) and the credential chain (`@aws-sdk/credential-provider-node`) are the
 * SDK's own and already in every bundle.
 */
import { partition } from '@aws-sdk/core/client';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { isClockSkewError } from '@smithy/core/retry';
import { SignatureV4 } from '@smithy/signature-v4';
import { AWS_MAX_ATTEMPTS } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';
import { Sha256 } from './sha256.ts';

/** One request: `url` as it is sent (its path already percent-encoded). */
export interface AwsRequest {
  method: 'POST' | 'PUT';
  url: URL;
  /** Lower-case names; all of them are signed. */
  headers: Record<string, string>;
  body: string | Uint8Array;
}

/** What the service answered, read whole. */
export interface AwsAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/**
 * A service refused a request or did not answer: `name` is its error code (`NoSuchBucket`,
 * `TooManyRequestsException`…), `status` its HTTP status (none when no answer came), `retryable`
 * whether the same request may succeed later, as on keywarden's other errors. Not a
 * KeywardenError: it is the service's answer as read, which the caller words for people
 * (awsFailure, or its own message), and an API caller is never shown it as it is.
 */
export class AwsRequestError extends Error {
  /** The shape the SDK's errors have, so awsFailure and isRetryableAwsError read this one like theirs. */
  readonly $metadata: { httpStatusCode?: number };
  constructor(
    override readonly name: string,
    readonly status: number | undefined,
    message: string,
    /** Whether the same request may succeed later (throttling, a server error, no answer). */
    readonly retryable: boolean,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.$metadata = status === undefined ? {} : { httpStatusCode: status };
  }
}

/** How a service's failures read: the error of a refusal and of no answer, each saying whether it is worth trying again. */
export interface FailureReader<E extends AwsRequestError> {
  /** The error of an answer outside 2xx (redirects included: they are not followed). */
  refused: (answer: AwsAnswer) => E;
  /** The error of a request that got no answer (connection refused or lost, DNS…). */
  lost: (error: unknown) => E;
}

/** An {@link AwsRequestError} class: its name, status, message, retryability and cause. */
export type AwsRequestErrorClass<E extends AwsRequestError> = new (
  name: string,
  status: number | undefined,
  message: string,
  retryable: boolean,
  options?: { cause?: unknown },
) => E;

/**
 * The `lost` of a {@link FailureReader}: an error of `ErrorClass` named as the failure, saying
 * `no answer from <service>: <its message> (<its cause's code>)`, retryable, the failure its cause.
 * `redact` words the failure's message where it may quote what was sent (a key, an input).
 */
export const lostAnswer =
  <E extends AwsRequestError>(
    ErrorClass: AwsRequestErrorClass<E>,
    service: string,
    redact: (text: string) => string = (text) => text,
  ) =>
  (error: unknown): E => {
    const { name, message, cause } = error as Error & { cause?: { code?: unknown } };
    const code = typeof cause?.code === 'string' ? ` (${cause.code})` : '';
    return new ErrorClass(
      String(name),
      undefined,
      `no answer from ${service}: ${redact(String(message))}${code}`,
      true,
      {
        cause: error,
      },
    );
  };

/** Sends one request and returns the service's 2xx answer, or throws the reader's error. */
export type SignedFetch = <E extends AwsRequestError>(
  request: AwsRequest,
  failures: FailureReader<E>,
) => Promise<AwsAnswer>;

/** Test seams and the retry budget. */
export interface SignedFetchOptions {
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  /** Attempts per request, the first included. @default AWS_MAX_ATTEMPTS */
  maxAttempts?: number;
  /**
   * How long one attempt may wait for the whole answer before it is abandoned and counted as
   * lost (so retried): a connection that hangs must not hold the caller until its own timeout.
   * @default ATTEMPT_TIMEOUT_MS
   */
  attemptTimeoutMs?: number;
  /** The clock requests are signed by. @default Date.now */
  now?: () => number;
}

/** A signed-fetch adapter's options: {@link SignedFetchOptions}, and where a configured endpoint is read. */
export interface SignedServiceOptions extends SignedFetchOptions {
  /** Where an endpoint set outside the code is read, as the SDK reads it (`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`). @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** {@link SignedFetchOptions.attemptTimeoutMs}'s default: above any answer keywarden waits for (a synchronous role-deny invocation). */
export const ATTEMPT_TIMEOUT_MS = 60_000;

/** A signing clock further than this from the service's (its `Date` header) is corrected, as the SDK's signer does. */
const CLOCK_SKEW_MS = 240_000;

/**
 * The clock offset (the service's time less this clock's) an answer's `Date` header tells, when the
 * offset in use is {@link CLOCK_SKEW_MS} or more off it, as the SDK's signer corrects it;
 * undefined when it is not (or the header is missing or unreadable).
 */
export function correctedClockOffset(
  date: string | null | undefined,
  offset: number,
  now: number = Date.now(),
): number | undefined {
  const serverTime = Date.parse(date ?? '');
  if (Number.isNaN(serverTime) || Math.abs(now + offset - serverTime) < CLOCK_SKEW_MS) return undefined;
  return serverTime - now;
}

export interface SignedFetchProps extends SignedFetchOptions {
  /** The signing name: `lambda`, `s3`, `states`. */
  service: string;
  /** The region signed for, and the credentials (unset: the default chain, in Lambda the execution role's). */
  endpoint: AwsEndpoint;
  /**
   * Whether the signer encodes the path once more: every service but S3 signs the path encoded
   * twice; S3 signs it as sent.
   * @default true
   */
  uriEscapePath?: boolean;
}

/**
 * The endpoint the SDK's client of `serviceId` (`S3`, `LAMBDA`) would take from the environment
 * when none is configured in code: `AWS_ENDPOINT_URL_<ID>`, else `AWS_ENDPOINT_URL`, unless
 * `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`. Unset in Lambda; the local stack's specs set it.
 */
export function environmentEndpoint(
  serviceId: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true') return undefined;
  return env[`AWS_ENDPOINT_URL_${serviceId}`] || env.AWS_ENDPOINT_URL || undefined;
}

/** The services keywarden reaches through a signed `fetch`, by their host name label (Step Functions': `states`). */
export type SignedService = 'lambda' | 's3' | 'sns' | 'states' | 'sts';

/**
 * The host name of `service` in `region` as the SDK's endpoint rules name it when no endpoint
 * is configured: the DNS suffix of the region's partition (`amazonaws.com`, `amazonaws.com.cn`,
 * the isolated partitions'), its FIPS endpoint when `AWS_USE_FIPS_ENDPOINT` is `true`
 * (`<service>-fips.<region>…`; STS in GovCloud, and Step Functions in us-gov-west-1 without
 * dual-stack, are FIPS at their plain name), its dual-stack one when `AWS_USE_DUALSTACK_ENDPOINT`
 * is `true` (the partition's dual-stack suffix; S3 as `s3.dualstack.<region>…`; Step Functions'
 * dual-stack host in GovCloud is its FIPS one). Every partition has both today (the SDK's
 * partition data).
 */
export function regionalHost(
  service: SignedService,
  region: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const zone = partition(region);
  const fips = env.AWS_USE_FIPS_ENDPOINT?.toLowerCase() === 'true';
  const dualStack = env.AWS_USE_DUALSTACK_ENDPOINT?.toLowerCase() === 'true';
  const plainFips =
    (service === 'sts' && zone.name === 'aws-us-gov') ||
    (service === 'states' && region === 'us-gov-west-1' && !dualStack);
  const fipsLabel = (fips && !plainFips) || (service === 'states' && dualStack && zone.name === 'aws-us-gov');
  const label = fipsLabel ? `${service}-fips` : service;
  if (service === 's3' && dualStack) return `${label}.dualstack.${region}.${zone.dnsSuffix}`;
  return `${label}.${region}.${dualStack ? zone.dualStackDnsSuffix : zone.dnsSuffix}`;
}

/** The SDK's service id of each, as its environment variables name it (`AWS_ENDPOINT_URL_<ID>`). */
const SERVICE_IDS: Readonly<Record<SignedService, string>> = {
  lambda: 'LAMBDA',
  s3: 'S3',
  sns: 'SNS',
  states: 'SFN',
  sts: 'STS',
};

/**
 * An endpoint set outside AWS's own for `service`: `endpoint.endpoint` (the local stack's), else
 * the environment's as the SDK's client takes it ({@link environmentEndpoint}); undefined in Lambda.
 */
export const configuredEndpoint = (
  service: SignedService,
  endpoint: AwsEndpoint,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined => endpoint.endpoint ?? environmentEndpoint(SERVICE_IDS[service], env);

/** Where `service`'s requests go: its {@link configuredEndpoint}, else its {@link regionalHost}'s root. */
export const serviceUrl = (
  service: SignedService,
  endpoint: AwsEndpoint,
  env: NodeJS.ProcessEnv = process.env,
): URL =>
  new URL(
    configuredEndpoint(service, endpoint, env) ?? `https://${regionalHost(service, endpoint.region, env)}/`,
  );

/**
 * A service's URL ({@link serviceUrl}) and a {@link signedFetch} for it with `endpoint`'s
 * credentials or the default chain: what an adapter of one or two operations starts from.
 */
export function signedService(
  service: SignedService,
  endpoint: AwsEndpoint,
  { env = process.env, ...options }: SignedServiceOptions = {},
): { url: URL; send: SignedFetch } {
  return { url: serviceUrl(service, endpoint, env), send: signedFetch({ ...options, service, endpoint }) };
}

/** Throttling, a server error, or no answer at all: what the SDK's standard retry tries again. */
export const retryableStatus = (status: number | undefined): boolean =>
  status === undefined || status === 429 || status >= 500;

/**
 * A {@link SignedFetch}: each attempt signed afresh (a retry may come after the credentials
 * rotate), a refused or lost attempt tried again while its error is `retryable`, with the
 * SDK's full-jitter backoff. A lost connection (or an attempt past `attemptTimeoutMs`) is retried
 * like a throttle, as the SDK does: the requests keywarden sends this way are idempotent (a
 * PutObject writes the same object again, a queued event may reach its function twice anyway).
 * Like the SDK's signer, it keeps the offset between this clock and the services' (their `Date`
 * header) when they differ by 4 minutes or more, signs with the corrected time, and tries again a
 * request refused for its signature's time (`RequestTimeTooSkewed`, `SignatureDoesNotMatch`…) once
 * the offset changed: a host whose clock drifted still gets its answer.
 */
export function signedFetch({
  service,
  endpoint,
  uriEscapePath = true,
  fetch: fetchFn = fetch,
  sleep = delay,
  maxAttempts = AWS_MAX_ATTEMPTS,
  attemptTimeoutMs = ATTEMPT_TIMEOUT_MS,
  now = Date.now,
}: SignedFetchProps): SignedFetch {
  /** Service time minus this clock, learnt from the answers' `Date` headers. */
  let clockOffset = 0;
  /** Learns the service's clock from an answer; true when the offset changed. */
  const sampleClock = (headers: Headers): boolean => {
    const corrected = correctedClockOffset(headers.get('date'), clockOffset, now());
    if (corrected === undefined) return false;
    clockOffset = corrected;
    return true;
  };
  const signer = new SignatureV4({
    service,
    region: endpoint.region,
    credentials: endpoint.credentials ?? defaultProvider(),
    sha256: Sha256,
    uriEscapePath,
  });
  return async (request, failures) => {
    const { method, url, body } = request;
    for (let attempt = 1; ; attempt++) {
      const signed = await signer.sign(
        {
          method,
          protocol: url.protocol,
          hostname: url.hostname,
          ...(url.port ? { port: Number(url.port) } : {}),
          path: url.pathname,
          headers: { host: url.host, ...request.headers },
          body,
        },
        { signingDate: new Date(now() + clockOffset) },
      );
      let failure: ReturnType<typeof failures.refused>;
      let skewCorrected = false;
      try {
        const response = await fetchFn(url, {
          method,
          headers: signed.headers,
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(attemptTimeoutMs),
        });
        const answer = { status: response.status, headers: response.headers, text: await response.text() };
        skewCorrected = sampleClock(response.headers);
        if (response.ok) return answer;
        failure = failures.refused(answer);
      } catch (error) {
        failure = failures.lost(error);
      }
      const worthRetrying =
        failure.retryable ||
        (skewCorrected && isClockSkewError({ name: failure.name, message: failure.message }));
      if (!worthRetrying || attempt >= maxAttempts) throw failure;
      // Full jitter, as the SDK's standard retry: up to 100 ms · 2^attempt, at most 20 s.
      await sleep(Math.random() * Math.min(20_000, 100 * 2 ** attempt));
    }
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
