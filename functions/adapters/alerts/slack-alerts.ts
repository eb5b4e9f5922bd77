/**
 * Containment alerts in a Slack channel (issue #14: "…and Slack where configured"), posted as the
 * app's bot through {@link WebApiThreadPoster}. An owner who is a person of the break-glass people
 * directory (`breakglass.people`, matched by name) is mentioned by each of their Slack users, so
 * the alert pings them; a team owner is named in the text. Every text is escaped: an identity or
 * a place cannot ping a channel or link elsewhere. An alert holds no value, so neither does this.
 */
import { alertAdvice, alertFacts, alertSummary } from '../../core/exposure-alert.ts';
import type { Person } from '../../core/grant.ts';
import type { ExposureAlert, ExposureAlerts } from '../../core/ports.ts';
import { escapeMrkdwn, type SlackMessage } from '../slack/messages.ts';
import type { SlackThreadPoster } from '../slack/web-api-poster.ts';

export interface SlackExposureAlertsProps {
  /** Posts as the app's bot (`WebApiThreadPoster`, a bot token with `chat:write`). */
  poster: SlackThreadPoster;
  /** The channel id alerts go to (the bot must be in it), e.g. `C0123456789`. */
  channel: string;
  /**
   * The break-glass people directory, read per alert (it is synced with the inventory). Unread
   * or failing, an alert still goes out, with no one mentioned.
   * @default no directory
   */
  people?: (() => Promise<readonly Person[]>) | undefined;
}

/** {@link ExposureAlerts} in a Slack channel. */
export class SlackExposureAlerts implements ExposureAlerts {
  readonly #props: SlackExposureAlertsProps;

  constructor(props: SlackExposureAlertsProps) {
    this.#props = props;
  }

  /** How people call it: `Slack channel C0123456789`. */
  get channel(): string {
    return `Slack channel ${this.#props.channel}`;
  }

  async alert(alert: ExposureAlert): Promise<void> {
    const people = await (this.#props.people?.() ?? Promise.resolve([])).catch(() => []);
    await this.#props.poster.post(
      this.#props.channel,
      slackAlertMessage(alert, mentionsOf(alert.owner, people)),
    );
  }
}

/** `<@U…>` for each Slack user of the person named `owner` in the directory; none for a team or an unknown name. */
export function mentionsOf(owner: string | undefined, people: readonly Person[]): string[] {
  const person = owner === undefined ? undefined : people.find((p) => p.name === owner);
  return (person?.slackUsers ?? []).map((user) => `<@${user}>`);
}

/** Slack caps a field at 2000 characters. */
const clip = (text: string, max = 1_900): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

const HEADING: Record<ExposureAlert['status'], string> = {
  contained: 'Contained',
  started: 'Containment started',
  failed: 'Containment failed',
};

/** The alert as a Slack message: who is pinged and what happened, the facts as fields, what to do. */
export function slackAlertMessage(alert: ExposureAlert, mentions: readonly string[] = []): SlackMessage {
  const ping = mentions.length ? `${mentions.join(' ')} ` : '';
  const summary = `${ping}${escapeMrkdwn(alertSummary(alert))}`;
  return {
    text: `${ping}keywarden: ${alertSummary(alert).replace(/[<>&]/g, ' ')}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:rotating_light: ${summary}` } },
      {
        type: 'section',
        text: {
          type: 'mrkdwn',
          text: `*${HEADING[alert.status]}*`,
        },
        fields: alertFacts(alert).map(([label, text]) => ({
          type: 'mrkdwn' as const,
          text: `*${label}*\n${escapeMrkdwn(clip(text))}`,
        })),
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escapeMrkdwn(alertAdvice(alert)) }] },
    ],
  };
}
