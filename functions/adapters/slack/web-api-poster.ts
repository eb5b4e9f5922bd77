/**
 * Posts keywarden's messages to a Slack channel as the app's bot, through Slack's Web API
 * (`chat.postMessage`, the official `@slack/web-api` client): the first message of a
 * `/revoke` in the channel, every later one as a reply in its thread. Unlike a `response_url`
 * (5 posts in 30 minutes), a thread has no budget and no expiry, so a long campaign is
 * followed to its end in one place.
 *
 * The bot token is a secret: it goes to the client only, never into a message, an error or a
 * log line. A Slack error names its code (`not_in_channel`, `invalid_auth`), never the token.
 *
 * The client (with axios and its dependencies, ~350 kB of the Slack worker's bundle) is loaded on
 * the first post, not when the module is imported: a deployment without a bot token never
 * evaluates it, and the worker's cold start does not wait for it.
 */
import type { WebClient } from '@slack/web-api';
import { KeywardenError, ValidationError } from '../../core/errors.ts';
import type { SecretValue } from '../../core/secret-value.ts';
import type { SlackMessage } from './messages.ts';

/** A bot token as Slack issues it; anything else (the deployed placeholder) means "no bot". */
export const BOT_TOKEN = /^xoxb-[A-Za-z0-9-]+$/;

/** Whether `token` is a Slack bot token keywarden can post with. */
export const isBotToken = (token: string): boolean => BOT_TOKEN.test(token.trim());

/** Posts into a channel, or into the thread of an earlier post. */
export interface SlackThreadPoster {
  /**
   * Posts `message` in `channel` (a reply in `threadTs`'s thread when given).
   *
   * @returns the posted message's `ts`, which names the thread of the replies.
   */
  post(channel: string, message: SlackMessage, threadTs?: string): Promise<string>;
}

export interface WebApiThreadPosterProps {
  /** The app's bot token (`xoxb-…`), with the `chat:write` scope. */
  botToken: SecretValue;
  /** Slack's Web API base; a local stand-in in tests. @default 'https://slack.com/api/' */
  slackApiUrl?: string | undefined;
  /** Per request. @default 5000 */
  timeoutMs?: number | undefined;
}

/** A post Slack refused or that did not reach it; the message names Slack's error code only. */
export class SlackPostError extends KeywardenError {
  override readonly name = 'SlackPostError';
}

const CHANNEL = /^[A-Z0-9]{2,32}$/;

/** {@link SlackThreadPoster} over `@slack/web-api`. */
export class WebApiThreadPoster implements SlackThreadPoster {
  readonly #props: WebApiThreadPosterProps;
  #client: Promise<WebClient> | undefined;

  constructor(props: WebApiThreadPosterProps) {
    if (!isBotToken(props.botToken.reveal())) {
      throw new ValidationError(
        'WebApiThreadPoster: expected a Slack bot token (xoxb-…), got something else; set the bot token secret or leave it unset to post through response_url',
      );
    }
    this.#props = props;
  }

  /** The Web API client, loaded and built on first use. */
  #webClient(): Promise<WebClient> {
    const props = this.#props;
    this.#client ??= import('@slack/web-api').then(
      ({ LogLevel, WebClient }) =>
        new WebClient(props.botToken.reveal().trim(), {
          ...(props.slackApiUrl === undefined ? {} : { slackApiUrl: props.slackApiUrl }),
          timeout: props.timeoutMs ?? 5_000,
          // One retry at most: a progress post is worth little after a minute.
          retryConfig: { retries: 1, factor: 1, minTimeout: 250, maxTimeout: 1_000 },
          rejectRateLimitedCalls: false,
          logLevel: LogLevel.ERROR,
        }),
    );
    return this.#client;
  }

  async post(channel: string, message: SlackMessage, threadTs?: string): Promise<string> {
    if (!CHANNEL.test(channel)) {
      throw new ValidationError(
        `expected a Slack channel id such as C0123456789, got ${JSON.stringify(channel.slice(0, 40))}`,
      );
    }
    const client = await this.#webClient();
    let answer: Awaited<ReturnType<WebClient['chat']['postMessage']>>;
    try {
      answer = await client.chat.postMessage({
        channel,
        text: message.text,
        blocks: message.blocks,
        ...(threadTs === undefined ? {} : { thread_ts: threadTs }),
        unfurl_links: false,
        unfurl_media: false,
      });
    } catch (error) {
      const code = (error as { data?: { error?: unknown }; code?: unknown }).data?.error;
      throw new SlackPostError(
        `Slack refused chat.postMessage in ${channel}: ${typeof code === 'string' ? code : (error as Error).name}; invite the app to the channel and check its bot token has chat:write`,
        { retryable: typeof code !== 'string' },
      );
    }
    if (!answer.ok || typeof answer.ts !== 'string') {
      throw new SlackPostError(
        `Slack answered chat.postMessage in ${channel} without a message ts (${answer.error ?? 'no error code'})`,
      );
    }
    return answer.ts;
  }
}
