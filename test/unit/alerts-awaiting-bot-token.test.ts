/**
 * Where the deployed exposure scanner's containment alerts go (functions/adapters/alerts/
 * awaiting-bot-token.ts): the alert topic its environment names, and the Slack channel once the
 * bot token secret holds a bot token. The secret is deployed as a placeholder and set afterwards:
 * while it is, the secret alone is read again, at most once a minute, and Slack joins the topic.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  alertSettingsOf,
  recheckedAlerts,
  slackOnceTokenSet,
} from '../../functions/adapters/alerts/awaiting-bot-token.ts';
import { FanOutExposureAlerts } from '../../functions/adapters/alerts/fan-out.ts';
import { SnsExposureAlerts } from '../../functions/adapters/alerts/sns-alerts.ts';
import { SECRET_RECHECK_MS } from '../../functions/adapters/rechecked-secret.ts';
import type { ExposureAlert } from '../../functions/core/ports.ts';
import { MemoryExposureAlerts } from '../support/memory-alerts.ts';

/** How the bot token secret is named to operators: the variable naming its ARN. */
const SECRET = 'KEYWARDEN_SLACK_BOT_TOKEN_SECRET_ARN';
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:keywarden-revocation-alarms';
/** A bot token's shape, generated per run (never a literal). */
const botToken = () => `xoxb-${randomBytes(12).toString('hex')}-${randomBytes(12).toString('hex')}`;

describe('alerts: a Slack bot token set after deploy', () => {
  const alert: ExposureAlert = {
    cause: 'exposure',
    identityId: 'release-token',
    owner: 'team-release',
    incident: 'EXPOSURE-0123456789ab',
    status: 'started',
    where: 'file build.log:3',
    fingerprint: 'hmac-sha256:0123456789ab',
    failures: [],
  };

  it('reads the bot token secret again while it holds the placeholder, at most once a minute, then alerts through Slack', async () => {
    // prepare: a channel configured, the secret still the placeholder at cold start
    let now = 0;
    const slack = new MemoryExposureAlerts();
    const reads: number[] = [];
    const scannerAlerts = recheckedAlerts(
      { alerts: undefined, slack: false },
      {
        secretName: SECRET,
        reload: async () => {
          reads.push(now);
          return { alerts: slack, slack: true };
        },
      },
      () => now,
    );
    // act
    const early = scannerAlerts?.alert(alert);
    await expect(early).rejects.toThrow(
      /no alert channel yet: the Slack bot token secret \(KEYWARDEN_SLACK_BOT_TOKEN_SECRET_ARN\) holds no bot token/,
    );
    now = SECRET_RECHECK_MS;
    await scannerAlerts?.alert(alert);
    now = 3 * SECRET_RECHECK_MS;
    await scannerAlerts?.alert(alert);
    // assess
    expect(reads).toEqual([SECRET_RECHECK_MS]);
    expect(slack.sent).toHaveLength(2);
  });

  it('loses no alert when the secret cannot be read again: it goes to the topic, and the secret is read a minute later', async () => {
    // prepare: the topic at cold start, Slack still waiting; the first re-read fails
    let now = 0;
    const topic = new MemoryExposureAlerts();
    const slack = new MemoryExposureAlerts();
    let reads = 0;
    const scannerAlerts = recheckedAlerts(
      { alerts: topic, slack: false },
      {
        secretName: SECRET,
        reload: async () => {
          reads += 1;
          if (reads === 1) throw new Error('Secrets Manager did not answer');
          return { alerts: slack, slack: true };
        },
      },
      () => now,
    );

    // act
    now = SECRET_RECHECK_MS;
    await scannerAlerts?.alert(alert);
    now = 2 * SECRET_RECHECK_MS;
    await scannerAlerts?.alert(alert);

    // assess
    expect([topic.sent.length, slack.sent.length, reads]).toEqual([1, 1, 2]);
  });

  it('reads the bot token secret alone again: the placeholder keeps the alerts as built, a bot token adds Slack after the topic', async () => {
    // prepare: the alert topic built at cold start, the secret still the placeholder
    const topic = new FanOutExposureAlerts([
      new SnsExposureAlerts({ topicArn: TOPIC, aws: { region: 'eu-west-1' } }),
    ]);
    let secret = 'not-set';
    const reload = slackOnceTokenSet(topic, { channel: 'C0123456789', readToken: async () => secret });

    // act
    const before = await reload();
    secret = `${botToken()}\n`;
    const after = await reload();

    // assess
    expect(before).toEqual({ alerts: topic, slack: false });
    expect(after.slack).toBe(true);
    expect(after.alerts).toBeInstanceOf(FanOutExposureAlerts);
    const { channels, description } = after.alerts as FanOutExposureAlerts;
    expect(channels[0]).toBe(topic.channels[0]);
    expect(description).toBe('SNS topic keywarden-revocation-alarms and Slack channel C0123456789');
    expect(JSON.stringify(after)).not.toContain(secret.trim());
  });

  it('adds Slack alone when no topic was configured', async () => {
    const reload = slackOnceTokenSet(undefined, {
      channel: 'C0123456789',
      readToken: async () => botToken(),
    });

    const { alerts } = await reload();

    expect((alerts as FanOutExposureAlerts).description).toBe('Slack channel C0123456789');
  });

  it('keeps the alerts as built when no channel waits for a token, or Slack is in already', () => {
    const topic = new MemoryExposureAlerts();
    const never = async () => {
      throw new Error('not read again');
    };
    expect(recheckedAlerts({ alerts: topic, slack: false }, undefined)).toBe(topic);
    expect(recheckedAlerts({ alerts: topic, slack: true }, { secretName: SECRET, reload: never })).toBe(
      topic,
    );
  });
});

describe("alerts: where the scanner's containment alerts go", () => {
  it('publishes to the topic its environment names, and posts to the channel with a bot token', () => {
    const token = botToken();

    const settings = alertSettingsOf(
      { exposureAlertTopicArn: TOPIC, exposureAlertChannel: 'C0123456789' },
      token,
    );

    expect(settings).toEqual({ topicArn: TOPIC, slack: { botToken: token, channel: 'C0123456789' } });
  });

  it.each([
    ['no channel', {}, botToken()],
    ['the deployed placeholder instead of a bot token', { exposureAlertChannel: 'C0123456789' }, 'not-set'],
    ['no bot token read', { exposureAlertChannel: 'C0123456789' }, undefined],
  ])('leaves Slack out with %s', (_name, env, token) => {
    expect(alertSettingsOf({ exposureAlertTopicArn: TOPIC, ...env }, token)).toEqual({ topicArn: TOPIC });
  });
});
