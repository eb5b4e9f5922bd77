/**
 * One STS operation, GetCallerIdentity, as a SigV4-signed `fetch` (signed-fetch.ts), signed with
 * credentials given explicitly: how the test step of an IAM access key rotation checks that the
 * new key works and whom it signs as (iam-access-key-provider.ts). The SDK's STS client would add
 * ~21 kB (its schemas, error classes and the query protocol's XML codec) to the rotation and
 * revocation bundles for this one call.
 *
 * STS answers `InvalidClientTokenId` (or `SignatureDoesNotMatch`) to a key it does not accept:
 * a deleted or wrong key, or a new one IAM has not propagated yet; those are thrown as they are
 * (not retryable here: whether to wait for propagation is the caller's decision). Throttling,
 * server errors and lost connections are retried as the SDK's standard retry does. No error says
 * the secret access key.
 */
import { isRetryableAwsError } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';
import { onlyElement, queryError } from './query-xml.ts';
import {
  AwsRequestError,
  type FailureReader,
  lostAnswer,
  type SignedServiceOptions,
  serviceUrl,
  signedFetch,
} from './signed-fetch.ts';

/** The credentials a call is signed with: an access key pair (an IAM user's). */
export interface StsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** Whom STS says signed the call. */
export interface CallerIdentity {
  /** `arn:aws:iam::123456789012:user/ci/deployer`, or an assumed role's session ARN. */
  arn: string;
  account: string;
  userId: string;
}

/**
 * Asks STS whom `credentials` belong to (GetCallerIdentity, which needs no permission).
 *
 * @throws StsRequestError: `name` is STS's error code; {@link isKeyRefused} tells a key STS does
 *   not accept from any other failure; `retryable` once the retries are spent on throttling, a
 *   server error or no answer.
 */
export type GetCallerIdentity = (credentials: StsCredentials) => Promise<CallerIdentity>;

/** STS refused a request, did not answer, or answered what cannot be read: `name` is STS's error code. */
export class StsRequestError extends AwsRequestError {}

/** STS's answers to credentials it does not accept: an unknown (deleted, not yet propagated) key, or a wrong secret. */
const KEY_REFUSED = new Set([
  'InvalidClientTokenId',
  'InvalidClientTokenIdException',
  'SignatureDoesNotMatch',
  'SignatureDoesNotMatchException',
]);

/** Whether `error` is STS refusing the credentials themselves: the key does not work (yet). */
export const isKeyRefused = (error: unknown): boolean =>
  error instanceof StsRequestError && KEY_REFUSED.has(error.name);

/**
 * The caller in STS's answer (`<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>…`),
 * read exactly: one result, holding one non-empty Arn, Account and UserId; undefined otherwise.
 */
export function parseCallerIdentity(xml: string): CallerIdentity | undefined {
  if (!/^\s*(<\?xml[^>]*\?>\s*)?<GetCallerIdentityResponse[\s>]/.test(xml)) return undefined;
  const opened = xml.split('<GetCallerIdentityResult>');
  const closed = (opened[1] ?? '').split('</GetCallerIdentityResult>');
  if (opened.length !== 2 || closed.length !== 2) return undefined;
  const result = closed[0] ?? '';
  const arn = onlyElement(result, 'Arn');
  const account = onlyElement(result, 'Account');
  const userId = onlyElement(result, 'UserId');
  if (!arn || !account || !userId) return undefined;
  return { arn, account, userId };
}

/** The longest part of STS's message kept in an error: a message is one or two sentences. */
const MESSAGE_LIMIT = 300;

/**
 * STS's message, made safe to show: cut before any canonical request or string-to-sign some
 * endpoints append to a signature mismatch, capped, and with the signing secrets removed should
 * an endpoint ever echo them.
 */
function safeMessage(message: string, credentials: StsCredentials): string {
  let safe = message.split(/\s*The Canonical String|\s*The String-to-Sign/)[0] ?? '';
  if (credentials.secretAccessKey) safe = safe.split(credentials.secretAccessKey).join('[redacted]');
  return safe.length > MESSAGE_LIMIT ? `${safe.slice(0, MESSAGE_LIMIT)}…` : safe;
}

/** How STS's failures read: the query protocol's `<ErrorResponse><Error><Code>…<Message>…`. */
function stsFailures(credentials: StsCredentials): FailureReader<StsRequestError> {
  return {
    refused: ({ status, text }) => {
      const { code, message: raw } = queryError(text, status);
      // Without its closing period: awsFailure adds its own after the answer.
      const message = safeMessage(raw, credentials).replace(/\.\s*$/, '') || `HTTP ${status}`;
      const retryable = isRetryableAwsError({ name: code, $metadata: { httpStatusCode: status } });
      return new StsRequestError(code, status, message, retryable);
    },
    lost: lostAnswer(StsRequestError, 'STS', (message) => safeMessage(message, credentials)),
  };
}

/** The form body of the one call: the same bytes every time. */
const BODY = 'Action=GetCallerIdentity&Version=2011-06-15';

/**
 * A {@link GetCallerIdentity} over a signed `fetch`, signed for `endpoint.region` with the
 * credentials each call is given (never the endpoint's, nor the default chain's). Its endpoint is
 * `endpoint`'s, else the environment's as the SDK's client would take it
 * (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`), else STS's regional endpoint.
 */
export function signedGetCallerIdentity(
  endpoint: AwsEndpoint,
  { env, ...options }: SignedServiceOptions = {},
): GetCallerIdentity {
  const url = serviceUrl('sts', endpoint, env);
  return async (credentials) => {
    const { accessKeyId, secretAccessKey } = credentials;
    // A signer per call: each call has its own credentials.
    const send = signedFetch({
      ...options,
      service: 'sts',
      endpoint: { region: endpoint.region, credentials: { accessKeyId, secretAccessKey } },
    });
    const answer = await send(
      {
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: BODY,
      },
      stsFailures(credentials),
    );
    const caller = parseCallerIdentity(answer.text);
    if (!caller) {
      throw new StsRequestError(
        'UnreadableAnswer',
        answer.status,
        `STS answered GetCallerIdentity with HTTP ${answer.status} but without one Arn, Account and UserId`,
        false,
      );
    }
    return caller;
  };
}
