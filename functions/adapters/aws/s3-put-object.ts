/**
 * One S3 operation, PutObject, as a SigV4-signed `fetch` (signed-fetch.ts): how the revocation
 * plan writes a campaign's targets, the report step its report, and discovery its run's report.
 * The SDK's S3 client would add ~130 kB (its XML codecs, checksum layers and whole-API schemas)
 * to each of those bundles for this one call.
 *
 * What it sends is what the SDK's PutObject sent for keywarden: no `x-amz-server-side-encryption`
 * header, so the report bucket's default applies (its own KMS key, bucket key on; `aws:kms`
 * without a key id would pick the AWS-managed key instead); the content type, cache control and
 * user metadata given; a checksum (SHA-256, signed as the payload's hash and stored with the
 * object as `x-amz-checksum-sha256`, where the SDK stored a CRC32). The bucket's policy refuses
 * anything but TLS (`aws:SecureTransport`): AWS's endpoints here are `https://`.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../../core/errors.ts';
import { awsFailure } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';
import {
  AwsRequestError,
  configuredEndpoint,
  type FailureReader,
  lostAnswer,
  regionalHost,
  retryableStatus,
  type SignedServiceOptions,
  signedFetch,
} from './signed-fetch.ts';

/** One object to write. */
export interface S3Object {
  bucket: string;
  key: string;
  body: string | Uint8Array;
  contentType: string;
  /** `Cache-Control`, e.g. `no-store`. */
  cacheControl?: string | undefined;
  /** User metadata (`x-amz-meta-<name>`): lower-case names, printable ASCII values. */
  metadata?: Readonly<Record<string, string>> | undefined;
  /** What the object is, for a failure's message (`writing report s3://…`). */
  what?: string | undefined;
}

/**
 * Writes one object (S3 PutObject), replacing the current one at its key (the report bucket keeps
 * the replaced version).
 *
 * @throws KeywardenError naming the object and S3's answer (`NoSuchBucket (HTTP 404): …`),
 *   `retryable` for throttling, server errors and lost connections once the retries are spent.
 * @throws ValidationError for a key or metadata S3 would not take as given.
 */
export type PutObject = (object: S3Object) => Promise<void>;

/** S3 refused a request or did not answer: `name` is S3's error code (`NoSuchBucket`, `SlowDown`…). */
export class S3RequestError extends AwsRequestError {}

/** Error codes S3 answers with a 4xx that the SDK retries all the same: the next attempt may pass. */
const RETRYABLE_CODES = new Set(['RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'Throttling']);

/** S3's XML error (`<Error><Code>…</Code><Message>…</Message>…</Error>`), read without an XML parser. */
function xmlField(text: string, field: string): string | undefined {
  const value = new RegExp(`<${field}>([^<]*)</${field}>`).exec(text)?.[1];
  return value
    ?.replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

const S3_FAILURES: FailureReader<S3RequestError> = {
  refused: ({ status, text }) => {
    const code = xmlField(text, 'Code') || `HTTP${status}`;
    // Without its closing period: awsFailure adds its own after the answer.
    const message = xmlField(text, 'Message')?.replace(/\.$/, '') || `HTTP ${status}`;
    return new S3RequestError(code, status, message, retryableStatus(status) || RETRYABLE_CODES.has(code));
  },
  lost: lostAnswer(S3RequestError, 'S3'),
};

/** A bucket name S3 can serve as a host name over TLS: no dots (the wildcard certificate covers one label). */
const VIRTUAL_HOSTABLE = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/**
 * A key as a URL path: each segment percent-encoded as the SDK does (`encodeURIComponent`, and
 * `!'()*` too), `/` kept. A `.` or `..` segment is refused: a URL would resolve it away and write
 * elsewhere than the key says.
 */
function keyPath(key: string): string {
  const segments = key.split('/');
  if (key === '' || segments.some((segment) => segment === '.' || segment === '..')) {
    throw new ValidationError(
      `S3 PutObject: expected an object key with no '.' or '..' segment, got ${JSON.stringify(key)}`,
    );
  }
  return segments
    .map((segment) =>
      encodeURIComponent(segment).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join('/');
}

/**
 * Where an object is written: a configured endpoint (moto) by path (`<endpoint>/<bucket>/<key>`:
 * it has no per-bucket host names); AWS by the bucket's own host name
 * (`<bucket>.s3.<region>.amazonaws.com`), or by path when the name cannot be a TLS host name (dots).
 */
export function s3ObjectUrl(
  endpoint: AwsEndpoint,
  bucket: string,
  key: string,
  env: NodeJS.ProcessEnv = process.env,
): URL {
  const path = keyPath(key);
  if (endpoint.endpoint) {
    const base = endpoint.endpoint.replace(/\/+$/, '');
    return new URL(`${base}/${encodeURIComponent(bucket)}/${path}`);
  }
  const service = regionalHost('s3', endpoint.region, env);
  return VIRTUAL_HOSTABLE.test(bucket)
    ? new URL(`https://${bucket}.${service}/${path}`)
    : new URL(`https://${service}/${encodeURIComponent(bucket)}/${path}`);
}

/** A user metadata name: what S3 keeps as given (it lower-cases the rest). */
const METADATA_NAME = /^[a-z0-9][a-z0-9-]*$/;
/** A header value fetch sends as is: printable ASCII. */
const METADATA_VALUE = /^[\x20-\x7e]*$/;

function metadataHeaders(metadata: Readonly<Record<string, string>>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(metadata)) {
    if (!METADATA_NAME.test(name) || !METADATA_VALUE.test(value)) {
      throw new ValidationError(
        `S3 PutObject: expected metadata as lower-case names of letters, digits and '-' with printable ASCII values, got the name ${JSON.stringify(name)}`,
      );
    }
    headers[`x-amz-meta-${name}`] = value;
  }
  return headers;
}

/**
 * A {@link PutObject} over a signed `fetch`, with the endpoint's credentials or the default chain
 * (in Lambda, the execution role's), retried as the SDK's standard retry does. Its endpoint is
 * `endpoint`'s, else the environment's as the SDK's client would take it, else AWS's.
 */
export function signedPutObject(
  endpoint: AwsEndpoint,
  { env, ...options }: SignedServiceOptions = {},
): PutObject {
  const configured = configuredEndpoint('s3', endpoint, env);
  const target: AwsEndpoint = configured === undefined ? endpoint : { ...endpoint, endpoint: configured };
  // S3 signs the path as sent (encoded once), unlike every other service.
  const send = signedFetch({ ...options, service: 's3', endpoint, uriEscapePath: false });
  return async ({ bucket, key, body, contentType, cacheControl, metadata = {}, what }) => {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const digest = createHash('sha256').update(bytes).digest();
    const url = s3ObjectUrl(target, bucket, key, env);
    const headers = {
      'content-type': contentType,
      ...(cacheControl === undefined ? {} : { 'cache-control': cacheControl }),
      ...metadataHeaders(metadata),
      // The signed payload hash: S3 refuses a body that does not match it.
      'x-amz-content-sha256': digest.toString('hex'),
      // The same digest kept with the object, readable with GetObject's ChecksumMode.
      'x-amz-checksum-sha256': digest.toString('base64'),
      'x-amz-sdk-checksum-algorithm': 'SHA256',
    };
    try {
      await send({ method: 'PUT', url, headers, body: bytes }, S3_FAILURES);
    } catch (error) {
      throw awsFailure(`writing ${what ? `${what} ` : ''}s3://${bucket}/${key}`, error);
    }
  };
}
