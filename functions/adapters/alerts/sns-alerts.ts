/**
 * Containment alerts on an SNS topic (issue #14: "alerts the owner (the alarm topic…)"): one
 * message per alert, with a subject and a plain-text body an email subscriber reads as is, and
 * message attributes (`owner`, `identity`, `incident`, `cause`, `status`) a subscription filters
 * on, so a team subscribes to its own credentials' alerts only (a filter policy
 * `{"owner": ["team-app"]}`). An alert holds handles, places and a short fingerprint: no value.
 *
 * It publishes through one signed `fetch` (aws/sns-publish.ts), not the SNS client: `Publish` is
 * all it sends.
 */
import { ValidationError } from '../../core/errors.ts';
import { alertSubject, alertText } from '../../core/exposure-alert.ts';
import type { ExposureAlert, ExposureAlerts } from '../../core/ports.ts';
import { awsFailure } from '../aws/clients.ts';
import type { AwsEndpoint } from '../aws/endpoint.ts';
import type { SignedServiceOptions } from '../aws/signed-fetch.ts';
import { type SnsMessage, type SnsPublish, signedSnsPublish } from '../aws/sns-publish.ts';

/** SNS: a subject is "less than 100 characters", printable, on one line. */
const SUBJECT_MAX = 99;
/** SNS takes 256 KiB per message; an alert is a few hundred bytes unless its failures are many. */
const BODY_MAX = 200_000;

const TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;

/** Where the topic is, and how to reach it. */
export interface SnsExposureAlertsProps {
  /** The alert topic's ARN. */
  topicArn: string;
  /** The region and credentials (unset: the default chain, in Lambda the function's role). */
  aws: AwsEndpoint;
  /** Test seams of the signed `fetch`. */
  options?: SignedServiceOptions;
}

/** {@link ExposureAlerts} on an SNS topic. */
export class SnsExposureAlerts implements ExposureAlerts {
  readonly topicArn: string;
  readonly #publish: SnsPublish;

  constructor(props: SnsExposureAlertsProps) {
    if (!TOPIC_ARN.test(props.topicArn)) {
      throw new ValidationError(
        `SnsExposureAlerts: expected an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:keywarden-alerts, got ${JSON.stringify(props.topicArn.slice(0, 120))}`,
      );
    }
    this.topicArn = props.topicArn;
    this.#publish = signedSnsPublish(props.aws, props.options);
  }

  /** How people call it: `SNS topic keywarden-alerts`. */
  get channel(): string {
    return `SNS topic ${this.topicArn.split(':').pop()}`;
  }

  async alert(alert: ExposureAlert): Promise<void> {
    try {
      await this.#publish(snsAlertMessage(this.topicArn, alert));
    } catch (error) {
      throw awsFailure(`publishing ${alert.identityId}'s alert to ${this.channel}`, error);
    }
  }
}

/** The message of one alert: subject, plain-text body, and the attributes subscribers filter on. */
export function snsAlertMessage(topicArn: string, alert: ExposureAlert): SnsMessage {
  const attributes: Record<string, string | undefined> = {
    owner: alert.owner,
    identity: alert.identityId,
    incident: alert.incident,
    cause: alert.cause,
    status: alert.status,
  };
  const body = alertText(alert);
  return {
    topicArn,
    subject: oneLine(alertSubject(alert)).slice(0, SUBJECT_MAX),
    message: body.length > BODY_MAX ? `${body.slice(0, BODY_MAX)}\n…(cut)` : body,
    // An identity without a declared owner carries no `owner`: `{"owner": [{"exists": false}]}` finds those.
    attributes: Object.fromEntries(
      Object.entries(attributes).flatMap(([name, value]) => (value ? [[name, value]] : [])),
    ),
  };
}

/** Printable ASCII on one line: what SNS accepts in a subject everywhere (email clients included). */
const oneLine = (text: string): string => text.replace(/[^\x20-\x7e]/g, '?');
