/**
 * Containment alerts on an SNS topic (issue #14: "alerts the owner (the alarm topic…)"): one
 * message per alert, with a subject and a plain-text body an email subscriber reads as is, and
 * message attributes (`owner`, `identity`, `incident`, `cause`, `status`) a subscription filters
 * on, so a team subscribes to its own credentials' alerts only (a filter policy
 * `{"owner": ["team-app"]}`). An alert holds handles, places and a short fingerprint: no value.
 *
 * The SNS client is loaded on the first alert, not when the module is imported: a function or a
 * command that never contains anything never evaluates it.
 */
import type { PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import { ValidationError } from '../../core/errors.ts';
import { alertSubject, alertText } from '../../core/exposure-alert.ts';
import type { ExposureAlert, ExposureAlerts } from '../../core/ports.ts';
import { awsClientConfig, awsFailure } from '../aws/clients.ts';
import type { AwsEndpoint } from '../aws/endpoint.ts';

/** The local stack's alert topic (`keywarden dev up` creates it on moto). */
export const LOCAL_ALERT_TOPIC = 'keywarden-alerts';

/** SNS: a subject is "less than 100 characters", printable, on one line. */
const SUBJECT_MAX = 99;
/** SNS takes 256 KiB per message; an alert is a few hundred bytes unless its failures are many. */
const BODY_MAX = 200_000;

const TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;

/** Where the topic is, and how to reach it: a ready client, or the endpoint to build one from on first use. */
export type SnsExposureAlertsProps = {
  /** The alert topic's ARN. */
  topicArn: string;
} & ({ client: SNSClient; aws?: never } | { aws: AwsEndpoint; client?: never });

/** {@link ExposureAlerts} on an SNS topic. */
export class SnsExposureAlerts implements ExposureAlerts {
  readonly topicArn: string;
  readonly #props: SnsExposureAlertsProps;
  #client: Promise<SNSClient> | undefined;

  constructor(props: SnsExposureAlertsProps) {
    if (!TOPIC_ARN.test(props.topicArn)) {
      throw new ValidationError(
        `SnsExposureAlerts: expected an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:keywarden-alerts, got ${JSON.stringify(props.topicArn.slice(0, 120))}`,
      );
    }
    this.topicArn = props.topicArn;
    this.#props = props;
  }

  /** How people call it: `SNS topic keywarden-alerts`. */
  get channel(): string {
    return `SNS topic ${this.topicArn.split(':').pop()}`;
  }

  #snsClient(): Promise<SNSClient> {
    const props = this.#props;
    this.#client ??= props.client
      ? Promise.resolve(props.client)
      : import('@aws-sdk/client-sns').then(({ SNSClient }) => new SNSClient(awsClientConfig(props.aws)));
    return this.#client;
  }

  async alert(alert: ExposureAlert): Promise<void> {
    const client = await this.#snsClient();
    const { PublishCommand } = await import('@aws-sdk/client-sns');
    try {
      await client.send(new PublishCommand(snsAlertMessage(this.topicArn, alert)));
    } catch (error) {
      throw awsFailure(`publishing ${alert.identityId}'s alert to ${this.channel}`, error);
    }
  }
}

/** The `Publish` request of one alert: subject, plain-text body, and the attributes subscribers filter on. */
export function snsAlertMessage(topicArn: string, alert: ExposureAlert): PublishCommandInput {
  const attributes: Record<string, string | undefined> = {
    owner: alert.owner,
    identity: alert.identityId,
    incident: alert.incident,
    cause: alert.cause,
    status: alert.status,
  };
  const body = alertText(alert);
  return {
    TopicArn: topicArn,
    Subject: oneLine(alertSubject(alert)).slice(0, SUBJECT_MAX),
    Message: body.length > BODY_MAX ? `${body.slice(0, BODY_MAX)}\n…(cut)` : body,
    // An identity without a declared owner carries no `owner`: `{"owner": [{"exists": false}]}` finds those.
    MessageAttributes: Object.fromEntries(
      Object.entries(attributes).flatMap(([name, value]) =>
        value ? [[name, { DataType: 'String', StringValue: value }]] : [],
      ),
    ),
  };
}

/** Printable ASCII on one line: what SNS accepts in a subject everywhere (email clients included). */
const oneLine = (text: string): string => text.replace(/[^\x20-\x7e]/g, '?');

/**
 * Creates the alert topic if it does not exist (CreateTopic is idempotent by name) and returns
 * its ARN: the local stack's, made by `keywarden dev up` on moto. In AWS the stack declares it.
 */
export async function ensureAlertTopic(aws: AwsEndpoint, name: string = LOCAL_ALERT_TOPIC): Promise<string> {
  const { CreateTopicCommand, SNSClient } = await import('@aws-sdk/client-sns');
  const client = new SNSClient(awsClientConfig(aws));
  try {
    const created = await client.send(new CreateTopicCommand({ Name: name }));
    if (!created.TopicArn) throw new Error('CreateTopic answered without a TopicArn');
    return created.TopicArn;
  } catch (error) {
    throw awsFailure(`creating the alert topic ${name}`, error);
  } finally {
    client.destroy();
  }
}
