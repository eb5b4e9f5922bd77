/**
 * The containment alerts a deployment configured: the alert topic when it names one, Slack when
 * it has a bot token and an alert channel, both at once through {@link FanOutExposureAlerts};
 * nothing when neither is configured (containment goes on, and says no one was told).
 */
import type { Person } from '../../core/grant.ts';
import type { SecretValue } from '../../core/secret-value.ts';
import type { AwsEndpoint } from '../aws/endpoint.ts';
import { WebApiThreadPoster } from '../slack/web-api-poster.ts';
import { type AlertChannel, FanOutExposureAlerts } from './fan-out.ts';
import { SlackExposureAlerts } from './slack-alerts.ts';
import { SnsExposureAlerts } from './sns-alerts.ts';

/** Where alerts go. */
export interface AlertSettings {
  /** The alert topic's ARN. */
  topicArn?: string | undefined;
  /** A Slack channel, posted to as the app's bot. */
  slack?:
    | {
        /** The bot token (`xoxb-…`, scope `chat:write`). */
        botToken: SecretValue;
        /** The channel id (the bot must be in it). */
        channel: string;
        /** Slack's Web API base; a local stand-in in tests. @default 'https://slack.com/api/' */
        apiUrl?: string | undefined;
      }
    | undefined;
}

/** The channels `settings` configure, as one {@link FanOutExposureAlerts}; undefined when none is. */
export function configuredAlerts(
  settings: AlertSettings,
  deps: {
    /** How to reach SNS. */
    aws: AwsEndpoint;
    /** The break-glass people directory: owners who are people are mentioned in Slack. */
    people?: (() => Promise<readonly Person[]>) | undefined;
  },
): FanOutExposureAlerts | undefined {
  const channels: AlertChannel[] = [];
  if (settings.topicArn) channels.push(new SnsExposureAlerts({ topicArn: settings.topicArn, aws: deps.aws }));
  if (settings.slack) channels.push(slackAlertChannel(settings.slack, deps.people));
  return channels.length ? new FanOutExposureAlerts(channels) : undefined;
}

/** The Slack channel of {@link configuredAlerts}: posted to as the app's bot, owners who are people mentioned. */
export function slackAlertChannel(
  slack: NonNullable<AlertSettings['slack']>,
  people?: (() => Promise<readonly Person[]>) | undefined,
): SlackExposureAlerts {
  const { botToken, channel, apiUrl } = slack;
  return new SlackExposureAlerts({
    poster: new WebApiThreadPoster({ botToken, slackApiUrl: apiUrl }),
    channel,
    people,
  });
}
