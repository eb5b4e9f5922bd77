/**
 * Reading what a CloudWatch Logs subscription filter hands a Lambda function. Payloads are built
 * as CloudWatch Logs builds them (the documented JSON document, gzipped, in base64, under
 * `awslogs.data`), from the shape of AWS's own example in the CloudWatch Logs User Guide
 * ("Using CloudWatch Logs subscription filters", example 2: Lambda).
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  decodeLogsEvent,
  MAX_DECODED_BYTES,
  MAX_ENCODED_CHARS,
} from '../../functions/adapters/aws/cloudwatch-logs-payload.ts';
import { ValidationError } from '../../functions/core/errors.ts';

/** The subscription event Lambda receives for `document`. */
const delivered = (document: unknown) => ({
  awslogs: { data: gzipSync(Buffer.from(JSON.stringify(document), 'utf8')).toString('base64') },
});

/** A data message in the documented shape (AWS's example: a Lambda log group, two events). */
const dataMessage = (messages: string[]) => ({
  messageType: 'DATA_MESSAGE',
  owner: '123456789012',
  logGroup: '/aws/codebuild/deploy-app',
  logStream: 'd2d0ac4e-0bd2-4ff4-a8b8-7d3f0a8e6d11',
  subscriptionFilters: ['keywarden-exposure'],
  logEvents: messages.map((message, index) => ({
    id: `3195310660696698337880902507980421114328961542429EXAMPLE${index}`,
    timestamp: 1_764_921_600_000 + index,
    message,
  })),
});

/** The message CloudWatch Logs sends when a filter is created, to check its destination. */
const CONTROL_MESSAGE = {
  messageType: 'CONTROL_MESSAGE',
  owner: 'CloudwatchLogs',
  logGroup: '',
  logStream: '',
  subscriptionFilters: [],
  logEvents: [
    {
      id: '',
      timestamp: 1_432_826_855_000,
      message: 'CWL CONTROL MESSAGE: Checking health of destination Lambda function.',
    },
  ],
};

/** The ValidationError `run` throws (fails the spec if it throws nothing, or something else). */
function refusal(run: () => unknown): ValidationError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('expected a ValidationError, got none');
}

describe('CloudWatch Logs payload: a subscription batch decoded', () => {
  it('gives the log group, stream and events of a data message, in order', () => {
    // prepare
    const event = delivered(
      dataMessage(['[Container] 2026/12/05 08:00:00 Running command npm ci\n', 'done']),
    );

    // act
    const logs = decodeLogsEvent(event);

    // assess
    expect(logs).toEqual({
      messageType: 'DATA_MESSAGE',
      owner: '123456789012',
      logGroup: '/aws/codebuild/deploy-app',
      logStream: 'd2d0ac4e-0bd2-4ff4-a8b8-7d3f0a8e6d11',
      events: [
        expect.objectContaining({ message: '[Container] 2026/12/05 08:00:00 Running command npm ci\n' }),
        expect.objectContaining({ message: 'done', timestamp: 1_764_921_600_001 }),
      ],
    });
  });

  it('lets through fields AWS adds (an account-level filter’s policyLevel)', () => {
    const logs = decodeLogsEvent(delivered({ ...dataMessage(['x']), policyLevel: 'ACCOUNT_LEVEL_POLICY' }));

    expect(logs.messageType).toBe('DATA_MESSAGE');
  });

  it('ignores a control message: it holds no application log', () => {
    expect(decodeLogsEvent(delivered(CONTROL_MESSAGE))).toEqual({ messageType: 'CONTROL_MESSAGE' });
  });
});

describe('CloudWatch Logs payload: what is refused, clearly and without quoting the logs', () => {
  it.each([
    ['no awslogs', { Records: [] }, /expected a CloudWatch Logs subscription event.*awslogs/],
    ['data not a string', { awslogs: { data: 42 } }, /awslogs\.data/],
    ['data not base64', { awslogs: { data: 'not base64 at all!' } }, /awslogs\.data/],
    [
      'base64 that is not gzip',
      { awslogs: { data: Buffer.from('plain text').toString('base64') } },
      /expected awslogs\.data to be gzip-compressed, got 10 bytes that do not gunzip/,
    ],
    [
      'gzip that is not JSON',
      { awslogs: { data: gzipSync('{not json').toString('base64') } },
      /expected awslogs\.data to unpack to a JSON document, got 9 characters that do not parse/,
    ],
    [
      'JSON of another shape',
      delivered({ messageType: 'DATA_MESSAGE', logEvents: [{ message: 1 }] }),
      /expected awslogs\.data to unpack to a CloudWatch Logs document.*owner.*logEvents\.0\.message/,
    ],
    [
      'an unknown message type',
      delivered({ ...dataMessage([]), messageType: 'HEALTH' }),
      /messageType: Invalid option/,
    ],
  ])('%s', (_name, event, message) => {
    // act
    const error = refusal(() => decodeLogsEvent(event));

    // assess
    expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(/\n\s+at /);
  });

  it('never quotes a log line in a refusal', () => {
    // prepare: a document of the wrong shape whose lines hold a generated token
    const token = `hvs.${Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('base64url')}`;
    const event = delivered({ ...dataMessage([`VAULT_TOKEN=${token}`]), owner: 7 });

    // act
    const error = refusal(() => decodeLogsEvent(event));

    // assess
    expect(error.message).toMatch(/owner/);
    expect(error.message).not.toContain(token);
  });

  it(`refuses more than ${MAX_ENCODED_CHARS} base64 characters before decoding them`, () => {
    const error = refusal(() => decodeLogsEvent({ awslogs: { data: 'A'.repeat(MAX_ENCODED_CHARS + 4) } }));

    expect(error.message).toMatch(/at most 2097152 base64 characters.*awslogs\.data/);
  });

  it(`refuses a payload that unpacks to more than ${MAX_DECODED_BYTES} bytes (a gzip bomb), without unpacking it all`, () => {
    // prepare: 9 MB of blanks (valid JSON around a document would not matter: the size is checked first) gzip to ~9 kB
    const bomb = gzipSync(Buffer.alloc(MAX_DECODED_BYTES + 1024 * 1024, ' '));
    expect(bomb.toString('base64').length).toBeLessThan(MAX_ENCODED_CHARS);

    // act
    const error = refusal(() => decodeLogsEvent({ awslogs: { data: bomb.toString('base64') } }));

    // assess
    expect(error.message).toBe(
      `expected awslogs.data to unpack to at most ${MAX_DECODED_BYTES} bytes (CloudWatch Logs batches hold at most 1 MB of events), got more`,
    );
  });
});
