/** Containment alerts to owners (issue #14): the alert topic (SNS), Slack, and both at once. */
export { type AlertSettings, configuredAlerts } from './configured.ts';
export { type AlertChannel, AlertDeliveryError, FanOutExposureAlerts } from './fan-out.ts';
export {
  mentionsOf,
  SlackExposureAlerts,
  type SlackExposureAlertsProps,
  slackAlertMessage,
} from './slack-alerts.ts';
export {
  ensureAlertTopic,
  LOCAL_ALERT_TOPIC,
  SnsExposureAlerts,
  type SnsExposureAlertsProps,
  snsAlertMessage,
} from './sns-alerts.ts';
