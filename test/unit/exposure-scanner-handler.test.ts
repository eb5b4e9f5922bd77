/**
 * The exposure scanner function: a CloudWatch Logs subscription batch (gzip, base64, as AWS
 * delivers it) is decoded, each of its lines scanned where it was written, with containment on.
 * The scanning use case is injected here (it is specified with its own ports in its own spec):
 * this one records what it was handed and answers as the use case would.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it, vi } from 'vitest';
import { stateMachineContainment } from '../../functions/adapters/campaign-launcher.ts';
import { Fingerprinter } from '../../functions/adapters/crypto.ts';
import { CombinedSecretDetector } from '../../functions/adapters/scan/detector.ts';
import type { FinishedJob } from '../../functions/adapters/scan/finished-job-log.ts';
import type { FetchedLog } from '../../functions/adapters/scan/forge-http.ts';
import {
  forgeSettingsOf,
  jobLogReader,
  parseForgeTokens,
} from '../../functions/adapters/scan/forge-tokens-secret.ts';
import { FinishedJobEventSchema, lineCount } from '../../functions/adapters/scan/scanner-event.ts';
import { jobLogHandOff } from '../../functions/api/job-log-hand-off.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import { type ScanInput, type ScanTexts, scanWith } from '../../functions/core/exposure-batch.ts';
import type { BoundProvider } from '../../functions/core/ports.ts';
import { makeHandler, SCANNER_ACTOR } from '../../functions/handlers/exposure-scanner.ts';
import { credentialVersion, FixedClock, identity } from '../support/fixtures.ts';
import {
  MemoryAuditLog,
  MemoryCampaignStore,
  MemoryExposureStore,
  MemoryFindings,
  MemoryIdentityStore,
  MemoryRotationStore,
} from '../support/memory-stores.ts';

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

/**
 * A deployment in memory: one managed Vault token (its keyed fingerprint recorded, as rotation
 * records it), the scanner's real scan and containment over keywarden's in-memory stores, and a
 * launcher standing for the revocation state machine that records what it was asked to start.
 */
async function deployment() {
  const clock = new FixedClock(new Date('2026-12-05T08:00:00Z'));
  const fingerprinter = new Fingerprinter(randomBytes(32));
  const identities = new MemoryIdentityStore();
  const versions = new MemoryRotationStore();
  const campaigns = new MemoryCampaignStore();
  const audit = new MemoryAuditLog(clock);
  const exposures = new MemoryExposureStore();
  const findings = new MemoryFindings();
  const token = `hvs.${randomBytes(66).toString('base64url')}`;
  const release = identity({ id: 'release-token', kind: 'vault-token', owner: 'team-release' });
  await identities.putIdentity(
    { identity: release, status: 'active', declarationHash: 'h', syncedAt: clock.now().toISOString() },
    undefined,
  );
  const fingerprint = fingerprinter.of(token);
  await versions.putVersion(credentialVersion(release, { handle: 'accessor-1', fingerprint }), undefined);
  const launched: string[] = [];
  // Vault lists nothing live beyond what is recorded (the scanner reads Vault with keywarden's token).
  const listed = { list: async () => [] } as unknown as BoundProvider;
  const containment = stateMachineContainment(
    {
      store: {
        listIdentities: () => identities.listIdentities(),
        listVersions: (id) => versions.listVersions(id),
        putVersion: (version, rev) => versions.putVersion(version, rev),
        createCampaign: (campaign, targets) => campaigns.createCampaign(campaign, targets),
      },
      clock,
      rotationDeps: () => ({
        providerFor: () => listed,
        deliveryFor: () => {
          throw new Error('no delivery read from the scanner');
        },
        fingerprint: (secret) => fingerprinter.of(secret.reveal()),
        audit,
      }),
    },
    { launch: async (campaignId) => void launched.push(campaignId) },
    SCANNER_ACTOR,
  );
  const scan = scanWith({
    exposure: {
      identities,
      versions,
      fingerprint: (text) => fingerprinter.of(text),
      exposures,
      audit,
      findings,
      clock,
    },
    detector: new CombinedSecretDetector(),
    containment,
    actor: SCANNER_ACTOR,
  });
  return { token, fingerprint, scan, launched, campaigns, audit, exposures, findings };
}

describe('exposure scanner: the managed credential a CloudWatch Logs payload holds is contained', () => {
  it('starts one incident campaign on its fingerprint with re-issue, audited detected then contained, and names no value', async () => {
    // prepare
    const world = await deployment();
    const { logger, lines } = capturedLogger();
    const handler = makeHandler({ scan: world.scan, logger });

    // act
    const stranger = generatedToken();
    const result = await handler(
      delivered([
        'Running npm ci\n',
        'a stack trace\n  at one\n  at two\n',
        `+ vault login ${world.token}\n`,
        `+ export OTHER_TOKEN=${stranger}\n`,
      ]),
    );

    // assess: one campaign, on exactly that credential, re-issuing, started in the state machine
    expect(result).toMatchObject({ events: 4, hits: 2, managed: 1, contained: 1 });
    expect(world.launched).toHaveLength(1);
    const campaign = await world.campaigns.getCampaign(world.launched[0] ?? '');
    expect(campaign).toMatchObject({ reissue: true, requestedBy: SCANNER_ACTOR });
    expect(campaign?.selectors).toEqual([`identity=release-token,fingerprint=${world.fingerprint}`]);
    expect((await world.campaigns.listTargets(campaign?.campaignId ?? '')).map((t) => t.handle)).toEqual([
      'accessor-1',
    ]);
    const { records } = await world.audit.readAll();
    const exposureEvents = records.filter((r) => r.type.startsWith('exposure.'));
    expect(exposureEvents.map((r) => r.type)).toEqual(['exposure.detected', 'exposure.contained']);
    expect(exposureEvents[0]?.details).toMatchObject({
      source: 'cloudwatch-logs',
      location: `${LOG_GROUP}/${LOG_STREAM}`,
      line: 3,
    });
    // started, not ended: what the execution revokes is its own record
    expect(exposureEvents[1]?.details).toMatchObject({
      outcome: 'started',
      revoked: 0,
      reason: `containment started (campaign ${campaign?.campaignId})`,
    });
    expect(world.exposures.records.get(world.fingerprint)).toMatchObject({ outcome: 'started' });
    // the other token is no credential of keywarden's: a finding, at its event
    expect(world.findings.latest?.findings).toEqual([
      expect.objectContaining({
        type: 'exposed-unmanaged',
        subject: `cloudwatch-logs:${LOG_GROUP}/${LOG_STREAM}`,
        message: expect.stringContaining(`cloudwatch-logs ${LOG_GROUP}/${LOG_STREAM}:4`),
      }),
    ]);
    const everything = JSON.stringify({
      result,
      records,
      lines,
      exposures: [...world.exposures.records.values()],
    });
    expect(everything).not.toContain(world.token);
  });

  it('contains the same leaked value once, however many batches print it', async () => {
    const world = await deployment();
    const { logger } = capturedLogger();
    const handler = makeHandler({ scan: world.scan, logger });

    await handler(delivered([`VAULT_TOKEN=${world.token}`]));
    const again = await handler(delivered([`retrying with ${world.token}`]));

    expect(again).toMatchObject({ managed: 1, contained: 0 });
    expect(world.launched).toHaveLength(1);
  });
});

/** How the forge tokens secret is named to operators (the variable naming its ARN). */
const SECRET = 'KEYWARDEN_FORGE_TOKENS_SECRET_ARN';

/** A finished GitHub job, as the API hands it over. */
const GITHUB_JOB: FinishedJob = { platform: 'github', repository: 'acme/app', jobId: 29679449 };

/** The platform's API in memory: the job's log as it would be read, and the jobs asked for. */
function jobLogs(text: string) {
  const asked: FinishedJob[] = [];
  const jobLog = async (job: FinishedJob): Promise<FetchedLog> => {
    asked.push(job);
    return job.platform === 'github'
      ? { source: { kind: 'github-run', location: `${job.repository} job ${job.jobId}` }, text }
      : { source: { kind: 'gitlab-job', location: `${job.project}/jobs/${job.jobId}` }, text };
  };
  return { jobLog, asked };
}

describe('exposure scanner: a finished CI job handed over by the API', () => {
  it('reads the job log through the platform and scans it as one text (hits at its own lines), with containment on', async () => {
    // prepare
    const token = generatedToken();
    const { scan, calls } = scanFinding(token);
    const { logger, lines } = capturedLogger();
    const logs = jobLogs(`##[group]Run npm ci\nadded 12 packages\n+ vault login ${token}\ndone`);
    const handler = makeHandler({ scan, logger, jobLog: logs.jobLog });

    // act
    const result = await handler({ finishedJob: GITHUB_JOB });

    // assess
    expect(logs.asked).toEqual([GITHUB_JOB]);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.contain).toBe(true);
    // No line given: the use case places each hit at its own line of the log, not split here.
    expect(calls[0]?.inputs).toEqual([
      {
        source: { kind: 'github-run', location: 'acme/app job 29679449' },
        text: `##[group]Run npm ci\nadded 12 packages\n+ vault login ${token}\ndone`,
      },
    ]);
    expect(result).toEqual({ job: 'acme/app job 29679449', lines: 4, hits: 1, managed: 1, contained: 1 });
    expect(lines.some((line) => line.includes("credentials found in a finished job's log"))).toBe(true);
    expect(JSON.stringify(result) + lines.join('\n')).not.toContain(token);
  });

  it('contains the managed credential a job log holds: one campaign on its fingerprint, placed at its line', async () => {
    // prepare: the real scan and containment over in-memory stores
    const world = await deployment();
    const { logger } = capturedLogger();
    const logs = jobLogs(`Run ./deploy.sh\nusing token ${world.token}\n`);
    const handler = makeHandler({ scan: world.scan, logger, jobLog: logs.jobLog });

    // act
    const result = await handler({ finishedJob: { platform: 'gitlab', project: 42, jobId: '7001' } });

    // assess
    expect(result).toMatchObject({ managed: 1, contained: 1 });
    expect(world.launched).toHaveLength(1);
    const campaign = await world.campaigns.getCampaign(world.launched[0] ?? '');
    expect(campaign?.selectors).toEqual([`identity=release-token,fingerprint=${world.fingerprint}`]);
    const { records } = await world.audit.readAll();
    expect(records.find((r) => r.type === 'exposure.detected')?.details).toMatchObject({
      source: 'gitlab-job',
      location: '42/jobs/7001',
      line: 2,
    });
  });

  it.each([
    [
      'a job of an unknown platform',
      { finishedJob: { platform: 'bitbucket', jobId: 1 } },
      /finishedJob\.platform/,
    ],
    [
      'a GitHub job without its repository',
      { finishedJob: { platform: 'github', jobId: 1 } },
      /finishedJob\.repository/,
    ],
    [
      'a job id that is no number',
      { finishedJob: { platform: 'gitlab', project: 1, jobId: '1; rm' } },
      /finishedJob\.jobId/,
    ],
    ['anything else', { detail: { hello: 'world' } }, /got an object with "detail"/],
    ['no event at all', undefined, /got undefined/],
  ])(
    'refuses %s with a ValidationError saying both shapes expected, reading no log',
    async (_name, event, detail) => {
      const { scan, calls } = scanFinding(generatedToken());
      const { logger } = capturedLogger();
      const logs = jobLogs('');

      const refused = makeHandler({ scan, logger, jobLog: logs.jobLog })(event);

      await expect(refused).rejects.toThrow(ValidationError);
      await expect(refused).rejects.toThrow(
        /expected a CloudWatch Logs subscription event .* or a finished CI job handed over by the API/,
      );
      await expect(refused).rejects.toThrow(detail);
      expect(logs.asked).toEqual([]);
      expect(calls).toEqual([]);
    },
  );

  it('reads no log of a platform it has no token for, and says which field to set instead of failing (no retry, no dead letter)', async () => {
    // prepare: a GitHub token only, as after the operator set one field of the secret
    const { scan, calls } = scanFinding(generatedToken());
    const { logger, lines } = capturedLogger();
    const read: FinishedJob[] = [];
    const settings = forgeSettingsOf(
      {},
      parseForgeTokens(JSON.stringify({ github: generatedToken() }), SECRET),
      SECRET,
    );
    const jobLog = jobLogReader(
      async () => settings,
      async (job) => {
        read.push(job);
        return { source: { kind: 'github-run', location: 'acme/app job 1' }, text: 'ok' };
      },
    );
    const handler = makeHandler({ scan, logger, jobLog });

    // act
    const gitlab = await handler({ finishedJob: { platform: 'gitlab', project: 42, jobId: 7001 } });
    const github = await handler({ finishedJob: GITHUB_JOB });

    // assess
    expect(gitlab).toEqual({
      job: 'GitLab project 42 job 7001',
      unread: expect.stringMatching(/no GitLab token: set the "gitlab" field of the forge tokens secret/),
    });
    expect(github).toMatchObject({ lines: 1 });
    expect(read).toEqual([GITHUB_JOB]);
    expect(calls).toHaveLength(1);
    expect(lines.some((line) => line.includes("a finished job's log was not read"))).toBe(true);
  });

  it('counts a log’s lines as splitting it would, without splitting it', () => {
    for (const text of ['', 'one', 'one\n', 'a\nb\nc', '\n\n']) {
      expect(lineCount(text)).toBe(text.split('\n').length);
    }
  });

  it('refuses a finished job when it was given no way to read logs', async () => {
    const { scan } = scanFinding(generatedToken());
    const { logger } = capturedLogger();

    const refused = makeHandler({ scan, logger })({ finishedJob: GITHUB_JOB });

    await expect(refused).rejects.toThrow(KeywardenError);
    await expect(refused).rejects.toThrow(/reads no CI job logs/);
  });
});

describe('api: a finished job handed to the exposure scanner', () => {
  const SCANNER = 'arn:aws:lambda:eu-west-1:123456789012:function:keywarden-scanner';

  it('invokes the scanner asynchronously with the job only, in the shape the scanner parses', async () => {
    // prepare
    const invocations: { name: string; payload: string; type: string | undefined }[] = [];
    const handOff = jobLogHandOff(
      async (name, payload, type) => {
        invocations.push({ name, payload, type });
        return { payload: '' };
      },
      SCANNER,
      () => {},
    );

    // act
    await handOff(GITHUB_JOB);

    // assess
    expect(invocations).toHaveLength(1);
    expect(invocations[0]).toMatchObject({ name: SCANNER, type: 'Event' });
    expect(FinishedJobEventSchema.parse(JSON.parse(invocations[0]?.payload ?? ''))).toEqual({
      finishedJob: GITHUB_JOB,
    });
  });

  it('logs a hand-off Lambda refuses, naming the job and how to re-drive it, and does not fail the webhook', async () => {
    const logged: string[] = [];
    const handOff = jobLogHandOff(
      async () => {
        throw Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
      },
      SCANNER,
      (line) => logged.push(line),
    );

    await expect(handOff({ platform: 'gitlab', project: 42, jobId: 7001 })).resolves.toBeUndefined();

    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain('GitLab project 42 job 7001');
    expect(logged[0]).toContain('TooManyRequestsException: Rate exceeded');
    expect(logged[0]).toContain(`invoke ${SCANNER}`);
  });
});
