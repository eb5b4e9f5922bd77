/**
 * The AWS SDK clients keywarden's adapters use, built once (at cold start or by the
 * local runtime) from one `AwsEndpoint`, and the one place SDK failures become
 * keywarden errors.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { AdaptiveRetryStrategy } from '@smithy/core/retry';
import { KeywardenError } from '../../core/errors.ts';
import type { AwsEndpoint } from './endpoint.ts';

/** One client per AWS service keywarden talks to, all configured from the same endpoint. */
export interface AwsClients {
  iam: IAMClient;
  sts: STSClient;
  secrets: SecretsManagerClient;
  dynamodb: DynamoDBClient;
  s3: S3Client;
  scheduler: SchedulerClient;
}

/**
 * Attempts per call, first one included. IAM and STS throttle on unpublished
 * per-API buckets and Secrets Manager writes share one 50 TPS bucket, so a burst
 * (a discovery run, a revocation campaign) must back off rather than fail.
 */
export const AWS_MAX_ATTEMPTS = 8;

/**
 * The settings every client shares. Adaptive retry adds a client-side token bucket
 * that slows down after throttling responses, on top of the backoff of `standard`.
 * Optional settings are left out rather than passed as `undefined`, so the SDK's
 * own defaults (region and credentials from the Lambda environment) still apply.
 */
export function awsClientConfig(endpoint: AwsEndpoint) {
  return {
    retryMode: 'adaptive',
    maxAttempts: AWS_MAX_ATTEMPTS,
    region: endpoint.region,
    ...(endpoint.endpoint === undefined ? {} : { endpoint: endpoint.endpoint }),
    ...(endpoint.credentials === undefined ? {} : { credentials: endpoint.credentials }),
  };
}

/** The settings of a DynamoDB client: those of {@link awsClientConfig}, at `dynamodbEndpoint` when one is set. */
export const dynamoDbClientConfig = (endpoint: AwsEndpoint) =>
  awsClientConfig(
    endpoint.dynamodbEndpoint === undefined ? endpoint : { ...endpoint, endpoint: endpoint.dynamodbEndpoint },
  );

/*
 * One constructor per client, so that a Lambda function builds (and its bundle holds) only the
 * clients its work uses; `awsClients` builds them all for the local runtime, the CLI and tests.
 */

/**
 * IAM's quota refusals (`LimitExceeded`: a third access key, too many policies) reach the SDK as
 * `LimitExceededException`, a name its retry takes for throttling: a CreateAccessKey on a user
 * with two keys was tried 8 times over ~40 s before failing. Trying again cannot free a slot, so
 * the IAM client gives up on them at once and retries everything else as the others do.
 */
class IamRetryStrategy extends AdaptiveRetryStrategy {
  override async refreshRetryTokenForRetry(
    ...[token, errorInfo]: Parameters<AdaptiveRetryStrategy['refreshRetryTokenForRetry']>
  ): ReturnType<AdaptiveRetryStrategy['refreshRetryTokenForRetry']> {
    if (errorInfo.error?.name === 'LimitExceededException') throw errorInfo.error;
    return super.refreshRetryTokenForRetry(token, errorInfo);
  }
}

export const iamClient = (endpoint: AwsEndpoint): IAMClient =>
  new IAMClient({ ...awsClientConfig(endpoint), retryStrategy: new IamRetryStrategy(AWS_MAX_ATTEMPTS) });
export const stsClient = (endpoint: AwsEndpoint): STSClient => new STSClient(awsClientConfig(endpoint));
/**
 * Secrets Manager on standard retry: its writes share one 50 TPS bucket, and once a burst of them
 * met it, adaptive retry's client-side bucket slowed every later call of the client, reads
 * included (a revocation campaign's DescribeSecret 85 → 200+ ms, its replacements trailing IAM's
 * revocations by 1–3 s). The throttled calls are still retried, with backoff; the pace is the
 * callers' (a campaign's limiter, rotateMany's concurrency).
 */
export const secretsClient = (endpoint: AwsEndpoint): SecretsManagerClient =>
  new SecretsManagerClient({ ...awsClientConfig(endpoint), retryMode: 'standard' });
export const dynamoDbClient = (endpoint: AwsEndpoint): DynamoDBClient =>
  new DynamoDBClient(dynamoDbClientConfig(endpoint));
export const schedulerClient = (endpoint: AwsEndpoint): SchedulerClient =>
  new SchedulerClient(awsClientConfig(endpoint));

/**
 * An S3 client, for the local runtime, the CLI and tests (creating the bucket, reading the plan);
 * the Lambda functions write their objects with s3-put-object.ts instead. A custom endpoint
 * (moto) has no per-bucket DNS names, so buckets are addressed by path.
 */
export function s3Client(endpoint: AwsEndpoint): S3Client {
  const config = awsClientConfig(endpoint);
  return new S3Client(endpoint.endpoint === undefined ? config : { ...config, forcePathStyle: true });
}

/** Builds every AWS client from one endpoint description (real AWS, or moto and dynalite on loopback). */
export function awsClients(endpoint: AwsEndpoint): AwsClients {
  return {
    iam: iamClient(endpoint),
    sts: stsClient(endpoint),
    secrets: secretsClient(endpoint),
    dynamodb: dynamoDbClient(endpoint),
    s3: s3Client(endpoint),
    scheduler: schedulerClient(endpoint),
  };
}

/**
 * Error names the SDK's own retry strategy treats as throttling. `LimitExceededException`
 * is left out on purpose: for IAM it means a quota (e.g. two keys per user), which
 * trying again will not fix.
 */
const THROTTLING = new Set([
  'BandwidthLimitExceeded',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
]);

/** Failures below HTTP: the request may never have reached AWS, so a later try may work. */
const TRANSIENT = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
  /** Set by keywarden's own request errors (s3-put-object.ts), which know whether trying again may help. */
  retryable?: boolean;
}

const asSdkError = (error: unknown): SdkErrorShape =>
  typeof error === 'object' && error !== null ? (error as SdkErrorShape) : {};

/** The AWS error code (`ThrottlingException`, `NoSuchEntityException`…) of an SDK failure, if it has one. */
export const awsErrorName = (error: unknown): string | undefined => asSdkError(error).name;

/** True for throttling, HTTP 5xx and network failures: the same call may succeed later. */
export function isRetryableAwsError(error: unknown): boolean {
  const { name = '', code = '', $metadata, $retryable, retryable } = asSdkError(error);
  const status = $metadata?.httpStatusCode;
  return (
    retryable === true ||
    THROTTLING.has(name) ||
    $retryable?.throttling === true ||
    status === 429 ||
    (status !== undefined && status >= 500) ||
    TRANSIENT.has(name) ||
    NETWORK_CODES.has(code)
  );
}

/**
 * Wraps an SDK failure in a KeywardenError that says what keywarden was doing,
 * what AWS answered, and whether trying again may help. `doing` reads as a
 * gerund phrase: `listing IAM users under path /ci/`.
 */
export function awsFailure(doing: string, cause: unknown): KeywardenError {
  const { name, message, $metadata } = asSdkError(cause);
  const status = $metadata?.httpStatusCode === undefined ? '' : ` (HTTP ${$metadata.httpStatusCode})`;
  const answer = `${name ?? 'Error'}${status}: ${(message ?? String(cause)).replace(/\.\s*$/, '')}`;
  const retryable = isRetryableAwsError(cause);
  const advice = retryable
    ? 'AWS is throttling or unavailable; run again later.'
    : "check keywarden's IAM permissions and the configured names, then run again.";
  return new KeywardenError(`AWS failed while ${doing}: ${answer}. ${advice}`, { cause, retryable });
}
