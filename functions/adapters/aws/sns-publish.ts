/**
 * SNS's `Publish` as one SigV4-signed `fetch` (signed-fetch.ts), what the containment alerts send
 * (alerts/sns-alerts.ts): the use monitor and the exposure scanner publish one message per alert
 * and nothing else of SNS, so neither carries the SNS client (~46 kB of schemas, error classes and
 * the query protocol's serde, and a few ms of every cold start). The request is the query
 * protocol's form (`Action=Publish&Version=2010-03-31&…`, message attributes as
 * `MessageAttributes.entry.N.…`), the answer its XML (`<PublishResult><MessageId>`).
 */
import { isRetryableAwsError } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';
import { onlyElement, queryBody, queryError } from './query-xml.ts';
import {
  AwsRequestError,
  type FailureReader,
  lostAnswer,
  type SignedServiceOptions,
  signedService,
} from './signed-fetch.ts';

/** One message: its subject, body, and string attributes (what a subscription's filter policy reads). */
export interface SnsMessage {
  topicArn: string;
  subject: string;
  message: string;
  attributes: Readonly<Record<string, string>>;
}

/** Publishes one message; answers SNS's message id. */
export type SnsPublish = (message: SnsMessage) => Promise<{ messageId: string }>;

/** SNS refused a request or did not answer (its code as `name`: `NotFound`, `Throttling`…). */
export class SnsRequestError extends AwsRequestError {}

/** The longest part of SNS's message kept in an error. */
const MESSAGE_LIMIT = 300;

const SNS_FAILURES: FailureReader<SnsRequestError> = {
  refused: ({ status, text }) => {
    const { code, message } = queryError(text, status);
    const said = message.replace(/\.\s*$/, '').slice(0, MESSAGE_LIMIT) || `HTTP ${status}`;
    return new SnsRequestError(
      code,
      status,
      said,
      isRetryableAwsError({ name: code, $metadata: { httpStatusCode: status } }),
    );
  },
  lost: lostAnswer(SnsRequestError, 'SNS'),
};

/** The form of one `Publish`: each attribute a `String` entry, numbered from 1. */
export function publishBody({ topicArn, subject, message, attributes }: SnsMessage): string {
  const parameters: Record<string, string> = {
    Action: 'Publish',
    Version: '2010-03-31',
    TopicArn: topicArn,
    Subject: subject,
    Message: message,
  };
  Object.entries(attributes).forEach(([name, value], index) => {
    const entry = `MessageAttributes.entry.${index + 1}`;
    parameters[`${entry}.Name`] = name;
    parameters[`${entry}.Value.DataType`] = 'String';
    parameters[`${entry}.Value.StringValue`] = value;
  });
  return queryBody(parameters);
}

/**
 * An {@link SnsPublish} over a signed `fetch`, with the endpoint's credentials or the default chain
 * (in Lambda, the execution role's), retried as the SDK retries. Its endpoint is `endpoint`'s,
 * else the environment's as the SDK's client would take it, else SNS's regional one.
 */
export function signedSnsPublish(endpoint: AwsEndpoint, options: SignedServiceOptions = {}): SnsPublish {
  const { url, send } = signedService('sns', endpoint, options);
  return async (message) => {
    const answer = await send(
      {
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: publishBody(message),
      },
      SNS_FAILURES,
    );
    const messageId = onlyElement(answer.text, 'MessageId');
    if (!messageId) {
      throw new SnsRequestError(
        'UnreadableAnswer',
        answer.status,
        `SNS answered Publish with HTTP ${answer.status} but without one MessageId`,
        false,
      );
    }
    return { messageId };
  };
}
