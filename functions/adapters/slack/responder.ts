/**
 * Posts keywarden's answers to a Slack `response_url`.
 *
 * The response_url comes inside the request body, so it is attacker-controlled input
 * even after the signature check (a leaked signing secret, a bug upstream). Before any
 * connection is made it must name an allowed host (by default only `hooks.slack.com`)
 * over https, carry no credentials, and redirects are refused, so keywarden cannot be
 * made to relay requests into its own network (SSRF). Plain http is accepted for
 * 127.0.0.1 only, which the local runtime uses.
 *
 * One retry on a network error, a timeout or a 5xx; a 4xx (an expired or used URL) is
 * final. Message bodies and the URL's path (it works as a bearer token for 30 minutes)
 * are never logged nor put in an error.
 */
import { KeywardenError, ValidationError } from '../../core/errors.ts';
import type { SlackMessage } from './messages.ts';

export interface SlackResponderProps {
  /**
   * Hosts a response_url may name: a host name (any port) or `host:port`. Default
   * `['hooks.slack.com']`. Only `127.0.0.1` may be reached over plain http.
   */
  allowedHosts?: readonly string[];
  /** Per attempt; default 5 s. */
  timeoutMs?: number;
  /** Pause before the one retry; default 250 ms. */
  retryDelayMs?: number;
  /** The HTTP client; default the global fetch. */
  fetch?: typeof fetch;
}

export interface RespondOptions {
  /** Replace the message the button was on (Slack's `replace_original`), e.g. to remove the buttons once decided. */
  replaceOriginal?: boolean;
}

/** A post to Slack that did not succeed; the message names the host and status, never the body or path. */
export class SlackResponseError extends KeywardenError {
  override readonly name = 'SlackResponseError';
}

export const DEFAULT_SLACK_HOSTS: readonly string[] = ['hooks.slack.com'];

/** The only host reachable over plain http: the local runtime's loopback address. */
const HTTP_HOST = '127.0.0.1';
const HOST_ENTRY = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/;

/** fetch with `redirect: 'error'` fails with a TypeError whose cause says so. */
const isRedirect = (error: unknown): boolean =>
  error instanceof Error && error.cause instanceof Error && /redirect/i.test(error.cause.message);

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class SlackResponder {
  readonly #allowedHosts: readonly string[];
  readonly #timeoutMs: number;
  readonly #retryDelayMs: number;
  readonly #fetch: typeof fetch;

  constructor(props: SlackResponderProps = {}) {
    const hosts = (props.allowedHosts ?? DEFAULT_SLACK_HOSTS).map((host) => host.trim().toLowerCase());
    const bad = hosts.find((host) => !HOST_ENTRY.test(host));
    if (bad !== undefined) {
      throw new ValidationError(
        `SlackResponder: expected allowedHosts entries such as hooks.slack.com or 127.0.0.1:8787 (no scheme, no path), got ${JSON.stringify(bad)}`,
      );
    }
    if (hosts.length === 0) {
      throw new ValidationError(
        'SlackResponder: expected at least one allowed host (hooks.slack.com), got none',
      );
    }
    for (const [name, value] of [
      ['timeoutMs', props.timeoutMs],
      ['retryDelayMs', props.retryDelayMs],
    ] as const) {
      if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
        throw new ValidationError(
          `SlackResponder: expected ${name} to be a number of milliseconds ≥ 0, got ${value}`,
        );
      }
    }
    this.#allowedHosts = hosts;
    this.#timeoutMs = props.timeoutMs ?? 5_000;
    this.#retryDelayMs = props.retryDelayMs ?? 250;
    this.#fetch = props.fetch ?? globalThis.fetch;
  }

  /**
   * The response_url as a URL, if keywarden may post to it.
   *
   * @throws ValidationError when it is not a URL, not https (http only for 127.0.0.1),
   *   carries credentials, or names a host outside the allowed ones.
   */
  checkUrl(responseUrl: string): URL {
    let url: URL;
    try {
      url = new URL(responseUrl);
    } catch {
      throw new ValidationError('expected the Slack response_url to be an absolute URL, got something else');
    }
    const origin = `${url.protocol}//${url.host}`;
    if (url.username || url.password) {
      throw new ValidationError(
        `expected a Slack response_url without credentials, got one on ${origin}; refused`,
      );
    }
    const allowed = this.#allowedHosts.some((entry) => entry === url.host || entry === url.hostname);
    if (!allowed) {
      throw new ValidationError(
        `expected a Slack response_url on ${this.#allowedHosts.join(', ')}, got one on ${origin}; refused, so keywarden does not relay requests elsewhere`,
      );
    }
    const secure = url.protocol === 'https:' || (url.protocol === 'http:' && url.hostname === HTTP_HOST);
    if (!secure) {
      throw new ValidationError(
        `expected a Slack response_url over https (plain http only for ${HTTP_HOST}), got ${origin}; refused`,
      );
    }
    return url;
  }

  /**
   * Posts `message` as JSON to the response_url.
   *
   * @throws ValidationError for a URL that may not be used (nothing is sent);
   *   SlackResponseError when Slack refuses (4xx) or both attempts fail (retryable).
   */
  async respond(responseUrl: string, message: SlackMessage, options: RespondOptions = {}): Promise<void> {
    const url = this.checkUrl(responseUrl);
    const body = JSON.stringify(options.replaceOriginal ? { ...message, replace_original: true } : message);
    const origin = `${url.protocol}//${url.host}`;
    let lastProblem = '';
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      if (attempt > 1) await pause(this.#retryDelayMs);
      let response: Response;
      try {
        response = await this.#fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body,
          redirect: 'error',
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
      } catch (error) {
        if (isRedirect(error)) {
          throw new SlackResponseError(
            `${origin} answered the response_url with a redirect; refused, so keywarden does not follow it elsewhere`,
          );
        }
        const timedOut =
          error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
        lastProblem = timedOut ? `no answer within ${this.#timeoutMs} ms` : 'a network error';
        continue;
      }
      // Slack answers `ok` or a short error code such as `expired_url` / `used_url`; it echoes nothing of ours.
      const answer = (await response.text().catch(() => '')).slice(0, 100).replace(/[^\w .:-]/g, '');
      if (response.ok) return;
      if (response.status < 500) {
        throw new SlackResponseError(
          `Slack refused the message posted to ${origin}: HTTP ${response.status} ${answer}; a response_url works for 30 minutes and 5 messages, so ask the user to run the command again`,
        );
      }
      lastProblem = `HTTP ${response.status} ${answer}`.trim();
    }
    throw new SlackResponseError(
      `could not post the message to ${origin} after 2 attempts (last: ${lastProblem}); Slack may be degraded, try again later`,
      { retryable: true },
    );
  }

  /** Replaces the message the clicked button was on. */
  replaceOriginal(responseUrl: string, message: SlackMessage): Promise<void> {
    return this.respond(responseUrl, message, { replaceOriginal: true });
  }
}
