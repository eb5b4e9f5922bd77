/**
 * The composition root: every part of the composition (composition.ts, which the Lambda handlers
 * import) and the containment alerts part, which the exposure scanner, the CLI and the local
 * runtime compose. The alerts part lives here, not there, so that a handler's bundle does not even
 * read the alert modules (see composition.ts: the SNS alerts' dynamic import of the SNS client
 * costs every bundle that reads it, whether it keeps it or not).
 */
import { SecretValue } from '../core/secret-value.ts';
import { configuredAlerts, type FanOutExposureAlerts } from './alerts/index.ts';
import { breakglassConfigStore, type Part } from './composition.ts';

export * from './composition.ts';

/**
 * Containment alerts to owners: the alert topic and a Slack channel, each when configured (an
 * owner who is a person of `breakglass.people` is mentioned in Slack); undefined when neither is.
 */
export const alerts: Part<FanOutExposureAlerts | undefined> = (c) => {
  const { topicArn, slack } = c.config.alerts;
  return configuredAlerts(
    { topicArn, slack: slack && { ...slack, botToken: new SecretValue(slack.botToken) } },
    {
      aws: c.config.aws,
      people: async () => (await c.get(breakglassConfigStore).getBreakglassConfig()).people,
    },
  );
};
