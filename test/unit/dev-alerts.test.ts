import { randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ALERT_SLACK_ENV, localSlackAlerts } from '../../functions/local/dev.ts';

/** A bot token of Slack's shape, made for this run. */
const botToken = () =>
  `xoxb-${randomInt(1e9, 9e9)}-${randomInt(1e9, 9e9)}-${randomBytes(12).toString('hex')}`;

describe('dev up: Slack alerts from the environment', () => {
  it('takes the bot token and the channel together (and a stand-in API for tests)', () => {
    const token = botToken();
    expect(
      localSlackAlerts(
        {
          [ALERT_SLACK_ENV.botToken]: token,
          [ALERT_SLACK_ENV.channel]: 'C0ALERTS',
          [ALERT_SLACK_ENV.apiUrl]: 'http://127.0.0.1:9/api/',
        },
        undefined,
      ),
    ).toEqual({ botToken: token, channel: 'C0ALERTS', apiUrl: 'http://127.0.0.1:9/api/' });
  });

  it('keeps what the last dev up kept when neither is set, and has none otherwise', () => {
    const kept = { botToken: botToken(), channel: 'C0KEPT' };
    expect(localSlackAlerts({}, kept)).toEqual(kept);
    expect(localSlackAlerts({}, undefined)).toBeUndefined();
  });

  it('refuses one without the other, a token that is not a bot’s, and a channel name, never echoing the token', () => {
    const userToken = `xoxp-${randomBytes(16).toString('hex')}`;
    expect(() => localSlackAlerts({ [ALERT_SLACK_ENV.channel]: 'C0ALERTS' }, undefined)).toThrow(
      /need both KEYWARDEN_SLACK_BOT_TOKEN .* and KEYWARDEN_ALERT_SLACK_CHANNEL .*; only KEYWARDEN_ALERT_SLACK_CHANNEL is set/,
    );
    const wrong = () =>
      localSlackAlerts(
        { [ALERT_SLACK_ENV.botToken]: userToken, [ALERT_SLACK_ENV.channel]: 'C0ALERTS' },
        undefined,
      );
    expect(wrong).toThrow(
      /KEYWARDEN_SLACK_BOT_TOKEN: expected a Slack bot token \(xoxb-…\), got something else/,
    );
    expect(wrong).not.toThrow(new RegExp(userToken));
    expect(() =>
      localSlackAlerts(
        { [ALERT_SLACK_ENV.botToken]: botToken(), [ALERT_SLACK_ENV.channel]: '#alerts' },
        undefined,
      ),
    ).toThrow(/expected a Slack channel id such as C0123456789, got "#alerts"/);
  });
});
