/**
 * The responder's outgoing posts, captured by a plain node:http server on loopback that
 * records what it receives and answers as each test tells it to. It records our
 * messages; it does not imitate Slack's logic.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { refusalMessage } from '../../functions/adapters/slack/messages.ts';
import { SlackResponder, SlackResponseError } from '../../functions/adapters/slack/responder.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import { rejection } from '../support/rejection.ts';

interface Received {
  method: string;
  path: string;
  contentType: string | undefined;
  body: string;
}

type Answer = (response: ServerResponse) => void;

let server: Server;
let base: string;
let port: number;
const received: Received[] = [];
/** Answers for the next requests, in order; after them, 200 ok. */
let answers: Answer[] = [];
const pending: ServerResponse[] = [];

const reply =
  (status: number, text = 'ok', headers: Record<string, string> = {}): Answer =>
  (response) => {
    response.writeHead(status, { 'content-type': 'text/plain', ...headers });
    response.end(text);
  };
/** Never answers (until the server closes): a hung connection. */
const hang: Answer = (response) => {
  pending.push(response);
};

beforeAll(async () => {
  server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      body += chunk;
    });
    request.on('end', () => {
      received.push({
        method: request.method ?? '',
        path: request.url ?? '',
        contentType: request.headers['content-type'],
        body,
      });
      (answers.shift() ?? reply(200))(response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  for (const response of pending) response.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  received.length = 0;
  answers = [];
});

const local = (over: ConstructorParameters<typeof SlackResponder>[0] = {}) =>
  new SlackResponder({ allowedHosts: ['127.0.0.1'], retryDelayMs: 10, timeoutMs: 1_000, ...over });

const message = refusalMessage('role prod-deploy allows at most 1h, got 2h');

describe('slack responder: posting to a response_url', () => {
  it('posts the message as JSON', async () => {
    // act
    await local().respond(`${base}/commands/T1/1/abc`, message);

    // assess
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ method: 'POST', path: '/commands/T1/1/abc' });
    expect(received[0]?.contentType).toMatch(/^application\/json/);
    expect(JSON.parse(received[0]?.body ?? '')).toEqual(message);
  });

  it('replaces the original message when asked', async () => {
    // act
    await local().replaceOriginal(`${base}/actions/T1/1/abc`, message);

    // assess
    expect(JSON.parse(received[0]?.body ?? '')).toEqual({ ...message, replace_original: true });
  });

  it('tries once more after a 5xx', async () => {
    // prepare
    answers = [reply(500, 'internal_error')];

    // act
    await local().respond(`${base}/r`, message);

    // assess
    expect(received).toHaveLength(2);
    expect(received[1]?.body).toBe(received[0]?.body);
  });

  it('gives up after the second 5xx with a retryable error naming the host and status, not the path', async () => {
    // prepare
    answers = [reply(503, 'service_unavailable'), reply(503, 'service_unavailable')];

    // act
    const error = await rejection(local().respond(`${base}/commands/T1/1/SECRETPATH`, message));

    // assess
    expect(received).toHaveLength(2);
    expect(error).toBeInstanceOf(SlackResponseError);
    expect((error as SlackResponseError).retryable).toBe(true);
    expect(error.message).toContain(`could not post the message to ${base} after 2 attempts`);
    expect(error.message).toContain('HTTP 503 service_unavailable');
    expect(error.message).not.toContain('SECRETPATH');
    expect(error.message).not.toContain('prod-deploy');
  });

  it('does not retry a 4xx: an expired or used response_url stays so', async () => {
    // prepare
    answers = [reply(404, 'expired_url')];

    // act
    const error = await rejection(local().respond(`${base}/commands/T1/1/SECRETPATH`, message));

    // assess
    expect(received).toHaveLength(1);
    expect(error).toBeInstanceOf(SlackResponseError);
    expect((error as SlackResponseError).retryable).toBe(false);
    expect(error.message).toContain('HTTP 404 expired_url');
    expect(error.message).not.toContain('SECRETPATH');
  });

  it('tries once more when the first attempt gets no answer in time', async () => {
    // prepare
    answers = [hang];

    // act
    await local({ timeoutMs: 200 }).respond(`${base}/slow`, message);

    // assess
    expect(received).toHaveLength(2);
  });

  it('reports two timeouts as retryable', async () => {
    // prepare
    answers = [hang, hang];

    // act
    const error = await rejection(local({ timeoutMs: 150 }).respond(`${base}/slow`, message));

    // assess
    expect((error as SlackResponseError).retryable).toBe(true);
    expect(error.message).toContain('no answer within 150 ms');
  });

  it('reports a refused connection after a second try', async () => {
    // prepare: a loopback port with nothing listening
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    // act
    const error = await rejection(local().respond(`http://127.0.0.1:${closedPort}/r`, message));

    // assess
    expect(error).toBeInstanceOf(SlackResponseError);
    expect(error.message).toContain('last: a network error');
  });

  it('does not follow a redirect', async () => {
    // prepare
    answers = [reply(302, '', { location: `${base}/elsewhere` })];

    // act
    const error = await rejection(local().respond(`${base}/r`, message));

    // assess
    expect(error).toBeInstanceOf(SlackResponseError);
    expect(error.message).toContain('redirect');
    expect(received.map((r) => r.path)).toEqual(['/r']);
  });
});

describe('slack responder: which response_urls it posts to', () => {
  it('by default accepts hooks.slack.com over https only', () => {
    // prepare
    const responder = new SlackResponder();

    // act / assess
    expect(responder.checkUrl('https://hooks.slack.com/commands/T1/1/abc').host).toBe('hooks.slack.com');
    for (const url of [
      'http://hooks.slack.com/commands/T1/1/abc',
      'https://hooks.slack.com.evil.example/commands/T1/1/abc',
      'https://evil.example/hooks.slack.com/commands',
      'https://169.254.169.254/latest/meta-data/',
      'http://127.0.0.1:8787/commands',
      'https://user:pw@hooks.slack.com/commands/T1/1/abc',
      'ftp://hooks.slack.com/x',
      'not a url',
    ]) {
      expect(() => responder.checkUrl(url), url).toThrow(ValidationError);
    }
  });

  it('sends nothing to a host that is not allowed, and does not echo the path', async () => {
    // act
    const error = await rejection(new SlackResponder().respond(`${base}/commands/T1/1/SECRETPATH`, message));

    // assess
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain(`expected a Slack response_url on hooks.slack.com, got one on ${base}`);
    expect(error.message).not.toContain('SECRETPATH');
    expect(received).toHaveLength(0);
  });

  it('allows plain http for 127.0.0.1 only, even when another loopback name is allowed', () => {
    // prepare
    const responder = new SlackResponder({ allowedHosts: ['127.0.0.1', 'localhost'] });

    // act / assess
    expect(responder.checkUrl('http://127.0.0.1:8787/r').hostname).toBe('127.0.0.1');
    expect(responder.checkUrl('https://localhost:8787/r').hostname).toBe('localhost');
    expect(() => responder.checkUrl('http://localhost:8787/r')).toThrow(
      /over https \(plain http only for 127.0.0.1\)/,
    );
  });

  it('with a host:port entry, allows that port only', () => {
    // prepare
    const responder = new SlackResponder({ allowedHosts: [`127.0.0.1:${port}`] });

    // act / assess
    expect(responder.checkUrl(`${base}/r`).port).toBe(String(port));
    expect(() => responder.checkUrl(`http://127.0.0.1:${port + 1}/r`)).toThrow(ValidationError);
  });

  it('refuses allowed hosts written as URLs', () => {
    expect(() => new SlackResponder({ allowedHosts: ['https://hooks.slack.com'] })).toThrow(
      /expected allowedHosts entries such as hooks.slack.com/,
    );
    expect(() => new SlackResponder({ allowedHosts: [] })).toThrow(/at least one allowed host/);
  });
});
