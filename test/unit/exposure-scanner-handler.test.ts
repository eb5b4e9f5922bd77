/**
 * The exposure scanner function: a CloudWatch Logs subscription batch (gzip, base64, as AWS
 * delivers it) is decoded, each of its lines scanned where it was written, with containment on.
 * The scanning use case is injected here (it is specified with its own ports in its own spec):
 * this one records what it was handed and answers as the use case would.
 */
import { gzipSync } from 'node:zlib';
import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it, vi } from 'vitest';
import { ValidationError } from '../../functions/core/errors.ts';
import { makeHandler, type ScanInput, type ScanTexts } from '../../functions/handlers/exposure-scanner.ts';

const LOG_GROUP = '/aws/codebuild/deploy-app';
const LOG_STREAM = 'd2d0ac4e-0bd2-4ff4-a8b8-7d3f0a8e6d11';

/** A Vault service token's shape, generated per run (never a literal). */
const generatedToken = () =>
  `hvs.${Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('base64url')}`;

/** The subscription event Lambda receives for these log lines. */
const delivered = (messages: string[], messageType = 'DATA_MESSAGE') => ({
  awslogs: {
    data: gzipSync(
      JSON.stringify({
        messageType,
        owner: '123456789012',
        logGroup: LOG_GROUP,
        logStream: LOG_STREAM,
        subscriptionFilters: ['keywarden-exposure'],
        logEvents: messages.map((message, index) => ({
          id: `31953106606966983378809025079804211143289615424298221${index}`,
          timestamp: 1_764_921_600_000 + index,
          message,
        })),
      }),
    ).toString('base64'),
  },
});

/** A scan that finds `managed` in the texts that contain it, and contains it when asked. */
function scanFinding(managed: string) {
  const calls: { inputs: readonly ScanInput[]; contain: boolean }[] = [];
  const scan: ScanTexts = async (inputs, { contain }) => {
    calls.push({ inputs, contain });
    const hits = inputs.filter((input) => input.text.includes(managed)).length;
    return { hits, managed: hits, contained: contain ? hits : 0 };
  };
  return { scan, calls };
}

/** A logger whose output is kept, to check that nothing of a log line reaches it. */
function capturedLogger() {
  const lines: string[] = [];
  const logger = new Logger({ serviceName: 'keywarden', logLevel: 'INFO' });
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    vi.spyOn(logger, level).mockImplementation((...args: unknown[]) => {
      lines.push(JSON.stringify(args));
    });
  }
  return { logger, lines };
}

describe('exposure scanner: a CloudWatch Logs batch scanned and contained', () => {
  it('hands the managed credential of one event to scanning with its location, its line, and containment on', async () => {
    // prepare
    const token = generatedToken();
    const { scan, calls } = scanFinding(token);
    const { logger, lines } = capturedLogger();
    const handler = makeHandler({ scan, logger });
    const event = delivered(['npm ci\n', `export VAULT_TOKEN=${token}\n`, 'done\n']);

    // act
    const result = await handler(event);

    // assess
    expect(calls).toHaveLength(1);
    expect(calls[0]?.contain).toBe(true);
    const source = { kind: 'cloudwatch-logs', location: `${LOG_GROUP}/${LOG_STREAM}` };
    expect(calls[0]?.inputs).toEqual([
      { source, text: 'npm ci\n', line: 1 },
      { source, text: `export VAULT_TOKEN=${token}\n`, line: 2 },
      { source, text: 'done\n', line: 3 },
    ]);
    expect(result).toEqual({
      logGroup: LOG_GROUP,
      logStream: LOG_STREAM,
      events: 3,
      hits: 1,
      managed: 1,
      contained: 1,
    });
    expect(lines.some((line) => line.includes('credentials found'))).toBe(true);
    expect(JSON.stringify(result)).not.toContain(token);
    expect(lines.join('\n')).not.toContain(token);
  });

  it('logs nothing when a batch holds no credential', async () => {
    const { scan } = scanFinding(generatedToken());
    const { logger, lines } = capturedLogger();

    const result = await makeHandler({ scan, logger })(delivered(['build ok']));

    expect(result).toMatchObject({ events: 1, hits: 0, contained: 0 });
    expect(lines).toEqual([]);
  });

  it('ignores a control message: nothing is scanned', async () => {
    const { scan, calls } = scanFinding(generatedToken());
    const { logger } = capturedLogger();

    const result = await makeHandler({ scan, logger })(
      delivered(['CWL CONTROL MESSAGE: Checking health of destination Lambda function.'], 'CONTROL_MESSAGE'),
    );

    expect(result).toEqual({ ignored: 'control-message' });
    expect(calls).toEqual([]);
  });

  it('refuses a malformed payload with a ValidationError saying what was expected, scanning nothing', async () => {
    const { scan, calls } = scanFinding(generatedToken());
    const { logger } = capturedLogger();
    const handler = makeHandler({ scan, logger });

    const refused = handler({ awslogs: { data: Buffer.from('not gzip').toString('base64') } });

    await expect(refused).rejects.toThrow(ValidationError);
    await expect(refused).rejects.toThrow(/expected awslogs\.data to be gzip-compressed/);
    expect(calls).toEqual([]);
  });
});
