/** Containment alerts to owners (issue #14): the alert topic (SNS), Slack, and both at once. */
export {
  type AlertEnv,
  type AlertsRead,
  type AwaitedSlack,
  alertSettingsOf,
  type BotTokenWait,
  recheckedAlerts,
  slackOnceTokenSet,
} from './awaiting-bot-token.ts';
export { type AlertSettings, configuredAlerts, slackAlertChannel } from './configured.ts';
export { type AlertChannel, AlertDeliveryError, FanOutExposureAlerts } from './fan-out.ts';
export { ensureAlertTopic, LOCAL_ALERT_TOPIC } from './local-topic.ts';
export {
  mentionsOf,
  SlackExposureAlerts,
  type SlackExposureAlertsProps,
  slackAlertMessage,
} from './slack-alerts.ts';
export { SnsExposureAlerts, type SnsExposureAlertsProps, snsAlertMessage } from './sns-alerts.ts';
