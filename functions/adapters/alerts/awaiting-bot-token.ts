/**
 * Containment alerts whose Slack channel waits for its bot token: the bot token secret is
 * deployed as a placeholder (`not-set`) and set by an operator afterwards, so a warm container
 * reads it again, at most once a minute and only while an alert channel is set and the secret
 * still holds no bot token ({@link rereadWhile}). Only the token is read again: the channels built
 * at cold start (the alert topic) are kept, and Slack joins them once the token is there.
 */

import { KeywardenError } from '../../core/errors.ts';
import type { Person } from '../../core/grant.ts';
import type { ExposureAlerts } from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { rereadWhile } from '../rechecked-secret.ts';
import type { RuntimeConfig } from '../runtime-config.ts';
import { isBotToken } from '../slack/web-api-poster.ts';
import { slackAlertChannel } from './configured.ts';
import { FanOutExposureAlerts } from './fan-out.ts';

/** Where a deployment's containment alerts go, as its environment says it. */
export interface AlertEnv {
  /** The alert topic's ARN. */
  exposureAlertTopicArn?: string | undefined;
  /** The Slack channel id, posted to when the bot token secret holds a bot token. */
  exposureAlertChannel?: string | undefined;
}

/**
 * Where the containment alerts go: the alert topic `env` names, and the Slack channel when it
 * names one and `botToken` is a bot token (`xoxb-…`; anything else, such as the deployed
 * placeholder, leaves Slack out).
 */
export function alertSettingsOf(env: AlertEnv, botToken: string | undefined): RuntimeConfig['alerts'] {
  const channel = env.exposureAlertChannel;
  return {
    ...(env.exposureAlertTopicArn ? { topicArn: env.exposureAlertTopicArn } : {}),
    ...(channel && botToken && isBotToken(botToken) ? { slack: { botToken, channel } } : {}),
  };
}

/** The alerts as read at one moment, and whether Slack is among them (see {@link alertSettingsOf}). */
export interface AlertsRead {
  alerts: ExposureAlerts | undefined;
  slack: boolean;
}

/** What the alerts wait for: a bot token in the secret. */
export interface BotTokenWait {
  /** How an operator finds the bot token secret (the variable naming its ARN), for the error. */
  secretName: string;
  /** The alerts as they are once the secret is read again (see {@link slackOnceTokenSet}). */
  reload: () => Promise<AlertsRead>;
}

/**
 * The alerts built at cold start, read again (`wait.reload`) at most once a minute while Slack is
 * not among them, so a bot token set after deploy is used by warm containers. With nothing to
 * wait for (no channel set, no bot token secret named) or Slack already in, the alerts as they are.
 */
export function recheckedAlerts(
  first: AlertsRead,
  wait: BotTokenWait | undefined,
  now: () => number = Date.now,
): ExposureAlerts | undefined {
  if (!wait || first.slack) return first.alerts;
  const read = rereadWhile(first, wait.reload, now);
  return {
    async alert(alert) {
      // A re-read that fails loses no alert: it goes out on the channels of the cold start (the
      // secret is read again a minute later).
      const current = await read((alerts) => !alerts.slack).catch(() => first);
      if (!current.alerts) {
        // Said on the containment's result (alertError), never thrown past it.
        throw new KeywardenError(
          `no alert channel yet: the Slack bot token secret (${wait.secretName}) holds no bot token (xoxb-…); set it with aws secretsmanager put-secret-value`,
        );
      }
      await current.alerts.alert(alert);
    },
  };
}

/** The Slack channel that waits for its token, and how to read the token. */
export interface AwaitedSlack {
  /** The channel id alerts go to (the bot must be in it). */
  channel: string;
  /** Reads the bot token secret's current value. */
  readToken: () => Promise<string>;
  /** The break-glass people directory: owners who are people are mentioned. @default no directory */
  people?: (() => Promise<readonly Person[]>) | undefined;
}

/**
 * The reload of {@link recheckedAlerts}: reads the bot token secret only, and with a bot token
 * there, the cold start's channels (`first`, the alert topic) and then Slack, as
 * configuredAlerts orders them; without one, `first` as it is.
 */
export function slackOnceTokenSet(
  first: FanOutExposureAlerts | undefined,
  slack: AwaitedSlack,
): () => Promise<AlertsRead> {
  return async () => {
    const token = await slack.readToken();
    if (!isBotToken(token)) return { alerts: first, slack: false };
    const channel = slackAlertChannel(
      { botToken: new SecretValue(token), channel: slack.channel },
      slack.people,
    );
    return { alerts: new FanOutExposureAlerts([...(first?.channels ?? []), channel]), slack: true };
  };
}
