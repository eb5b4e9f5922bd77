/**
 * The use monitor: EventBridge hands it CloudTrail's API calls of `ci-` sessions and of `AKIA`
 * keys, in the exact envelope of an "AWS API Call via CloudTrail" event. It records an active
 * exchange's first use once, finds a session's call after its exchange ended, and finds (and,
 * by policy, contains) a managed key's call from outside its identity's allowedRunners. Stores,
 * audit log and containment are the in-memory twins of keywarden's ports.
 */
import { randomBytes } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it } from 'vitest';
import { BlockListRanges } from '../../functions/adapters/address-ranges.ts';
import { cachedWatch } from '../../functions/adapters/watched-identities.ts';
import type { CiCredentialRecord } from '../../functions/core/ci-records.ts';
import type { Finding } from '../../functions/core/findings.ts';
import type { Identity } from '../../functions/core/identity.ts';
import type { ExposureAlert, ExposureContainment } from '../../functions/core/ports.ts';
import { FINDING_CLAIM_MS, FINDING_LEASE_MS, USE_MONITOR_ACTOR } from '../../functions/core/use-monitor.ts';
import { makeHandler } from '../../functions/handlers/use-monitor.ts';
import { credentialVersion, FixedClock, identity } from '../support/fixtures.ts';
import { MemoryCiStore } from '../support/memory-ci-stores.ts';
import {
  MemoryAuditLog,
  MemoryFindings,
  MemoryIdentityStore,
  MemoryRotationStore,
} from '../support/memory-stores.ts';

const JOB = 'ci-github-123456789.9876543210.1.31415926';
const ROLE = 'arn:aws:iam::123456789012:role/ci/deploy-app';
const ACCOUNT = '123456789012';

/** An access key id made at run time (AKIA and 16 of [A-Z2-7]). */
const accessKeyId = () =>
  `AKIA${Array.from(randomBytes(16), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[b % 32]).join('')}`;

const exchange = (id: string, sourceIdentity: string): CiCredentialRecord => ({
  id,
  grant: 'deploy-app',
  issuer: 'github',
  jobKey: `github/${sourceIdentity}`,
  correlationId: sourceIdentity,
  jobIds: {},
  issuedAt: '2026-12-05T07:30:00.000Z',
  expiresAt: '2026-12-05T07:45:00.000Z',
  aws: {
    roleArn: ROLE,
    sourceIdentity,
    sessionName: id,
    expiresAt: '2026-12-05T07:45:00.000Z',
    denied: false,
    released: false,
  },
  state: 'active',
  usedRecorded: false,
});

/** An exchange of the job ended at 07:35 by its post step (its first use already recorded). */
const endedExchange = (id: string, sourceIdentity: string): CiCredentialRecord => ({
  ...exchange(id, sourceIdentity),
  state: 'ended',
  ended: { at: '2026-12-05T07:35:00.000Z', by: 'job' },
  usedRecorded: true,
});

/** An EventBridge "AWS API Call via CloudTrail" event, as EventBridge delivers it. */
const cloudTrailEvent = (
  userIdentity: Record<string, unknown>,
  call: { eventTime?: string; eventName?: string; sourceIPAddress?: string; errorCode?: string } = {},
) => ({
  version: '0',
  id: '6f3b1c52-0f1e-4a43-9b83-3a0c7d1a2f11',
  'detail-type': 'AWS API Call via CloudTrail',
  source: 'aws.s3',
  account: ACCOUNT,
  time: call.eventTime ?? '2026-12-05T07:31:12Z',
  region: 'eu-west-1',
  resources: [],
  detail: {
    eventVersion: '1.09',
    userIdentity,
    eventTime: call.eventTime ?? '2026-12-05T07:31:12Z',
    eventSource: 's3.amazonaws.com',
    eventName: call.eventName ?? 'PutObject',
    awsRegion: 'eu-west-1',
    sourceIPAddress: call.sourceIPAddress ?? '203.0.113.24',
    userAgent: 'aws-cli/2.17.0',
    ...(call.errorCode ? { errorCode: call.errorCode, errorMessage: 'explicit deny' } : {}),
    requestParameters: null,
    responseElements: null,
    eventID: '0e4d3f0a-6c8e-4bd4-8a0f-6d4b5e3f2a10',
    readOnly: false,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: ACCOUNT,
  },
});

/** A call of the job's role session (SourceIdentity set, kept through role chaining). */
const sessionCall = (sourceIdentity: string | undefined, call: Parameters<typeof cloudTrailEvent>[1] = {}) =>
  cloudTrailEvent(
    {
      type: 'AssumedRole',
      principalId: 'AROAEXAMPLEROLEID:x',
      arn: `arn:aws:sts::${ACCOUNT}:assumed-role/deploy-app/x`,
      accountId: ACCOUNT,
      accessKeyId: `ASIA${accessKeyId().slice(4)}`,
      sessionContext: {
        sessionIssuer: { type: 'Role', arn: ROLE, userName: 'deploy-app' },
        attributes: { creationDate: '2026-12-05T07:30:00Z', mfaAuthenticated: 'false' },
        ...(sourceIdentity ? { sourceIdentity } : {}),
      },
    },
    call,
  );

/** A call signed with an IAM user's long-term access key. */
const keyCall = (userName: string, key: string, call: Parameters<typeof cloudTrailEvent>[1] = {}) =>
  cloudTrailEvent(
    {
      type: 'IAMUser',
      principalId: 'AIDAEXAMPLEUSERID',
      arn: `arn:aws:iam::${ACCOUNT}:user/ci/${userName}`,
      accountId: ACCOUNT,
      accessKeyId: key,
      userName,
    },
    call,
  );

/** Containment that records what it was asked to end (the state machine's part is the campaign engine's). */
class RecordingContainment implements ExposureContainment {
  readonly asked: { incident: string; fingerprint: string; identityId: string }[] = [];
  /** How many attempts fail first, as a throttled StartExecution does. */
  failing = 0;
  async contain(request: { incident: string; fingerprint: string; identityId: string }) {
    this.asked.push(request);
    // A stolen key's calls arrive together: each attempt takes a moment, as planning does.
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.failing > 0) {
      this.failing -= 1;
      throw new Error('StartExecution: ThrottlingException (Rate exceeded)');
    }
    return { campaignId: `c-${this.asked.length}`, outcome: 'contained' as const, revoked: 1, failures: [] };
  }
}

/** A world: the stores, an identity store with `identities` synced and their versions, the handler. */
async function world(
  identities: Identity[] = [],
  versions: Parameters<MemoryRotationStore['putVersion']>[0][] = [],
) {
  const clock = new FixedClock(new Date('2026-12-05T07:40:00Z'));
  const ci = new MemoryCiStore();
  const audit = new MemoryAuditLog(clock);
  const findings = new MemoryFindings();
  const inventory = new MemoryIdentityStore();
  const rotation = new MemoryRotationStore();
  for (const item of identities) {
    await inventory.putIdentity(
      { identity: item, status: 'active', declarationHash: item.id, syncedAt: clock.now().toISOString() },
      undefined,
    );
  }
  for (const version of versions) await rotation.putVersion(version, undefined);
  const containment = new RecordingContainment();
  const alerted: ExposureAlert[] = [];
  const handler = makeHandler({
    exchange: { store: ci, audit },
    monitor: {
      ci,
      watched: cachedWatch(
        { listIdentities: () => inventory.listIdentities(), listVersions: (id) => rotation.listVersions(id) },
        clock,
      ),
      ranges: new BlockListRanges(),
      findings,
      audit,
      clock,
      containment,
      alerts: {
        alert: async (alert) => {
          alerted.push(alert);
        },
      },
    },
    logger: new Logger({ logLevel: 'SILENT' }),
  });
  return { clock, ci, audit, findings, containment, alerted, handler };
}

describe('use monitor: a CI session’s calls', () => {
  it("records the first call of the job's session, once, with what it called and from where", async () => {
    // prepare
    const { ci, audit, handler } = await world();
    await ci.putCredential(exchange('x-1', JOB), undefined);
    await ci.putCredential(exchange('x-2', 'ci-github-other.1.1.1'), undefined);

    // act
    const first = await handler(sessionCall(JOB));
    const again = await handler(sessionCall(JOB, { eventName: 'GetObject' }));
    const person = await handler(sessionCall(undefined));
    const other = await handler({ 'detail-type': 'Scheduled Event', detail: {} });

    // assess
    expect([first, again, person, other]).toEqual([
      { recorded: 1 },
      { recorded: 0 },
      { recorded: 0 },
      { recorded: 0 },
    ]);
    const { records } = await audit.readAll();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      type: 'ci.credentials.used',
      subject: JOB,
      details: { exchangeId: 'x-1', firstUse: 's3:PutObject', from: '203.0.113.24', uses: 1 },
    });
  });

  it('finds a call after the exchange ended (a denied one counts): saved with the latest findings and audited once', async () => {
    // prepare: the job ended its credentials at 07:35; a copy of the session is used at 07:36, refused.
    const { ci, audit, findings, handler } = await world();
    const earlier: Finding = {
      id: 'stale:deploy',
      type: 'stale',
      severity: 'medium',
      subject: 'deploy',
      identityIds: ['deploy'],
      handles: [],
      message: 'from discovery',
    };
    findings.latest = { runId: 'run-1', at: '2026-12-05T07:00:00.000Z', findings: [earlier] };
    await ci.putCredential(endedExchange('x-1', JOB), undefined);
    const late = sessionCall(JOB, {
      eventTime: '2026-12-05T07:36:02Z',
      errorCode: 'AccessDenied',
      sourceIPAddress: '198.51.100.7',
    });

    // act
    const before = await handler(sessionCall(JOB, { eventTime: '2026-12-05T07:34:59Z' }));
    const after = await handler(late);
    const repeated = await handler(late);

    // assess
    const id = `used-after-job-end:ci:x-1:${JOB}`;
    expect(before).toEqual({ recorded: 0 });
    expect(after).toEqual({ recorded: 0, findings: [id] });
    expect(repeated).toEqual({ recorded: 0, findings: [id] });
    expect(findings.saves).toBe(1);
    expect(findings.latest?.findings.map((f) => f.id)).toEqual(['stale:deploy', id]);
    const saved = findings.latest?.findings[1];
    expect(saved).toMatchObject({
      type: 'used-after-job-end',
      severity: 'high',
      subject: 'ci:x-1',
      handles: [JOB],
    });
    expect(saved?.message).toBe(
      `CI job github/${JOB} (grant deploy-app, exchange x-1): ${JOB} was used once after its credentials ended at 2026-12-05T07:35:00.000Z (by job), first at 2026-12-05T07:36:02Z from 198.51.100.7 (cloudtrail: s3:PutObject (AccessDenied))`,
    );
    const { records } = await audit.readAll();
    expect(records).toEqual([
      expect.objectContaining({
        type: 'ci.credentials.used',
        actor: USE_MONITOR_ACTOR,
        subject: JOB,
        details: expect.objectContaining({
          exchangeId: 'x-1',
          afterEnd: true,
          finding: id,
          at: '2026-12-05T07:36:02Z',
          from: '198.51.100.7',
          action: 's3:PutObject (AccessDenied)',
        }),
      }),
    ]);
  });

  it('reads only the exchanges ended within the last hour (a CI session is a chained role session), and not one whose session had expired', async () => {
    // prepare: the exchange ended at 07:35 and its session expires at 07:45
    const { ci, handler } = await world();
    await ci.putCredential(endedExchange('x-1', JOB), undefined);
    const since: Date[] = [];
    const listEnded = ci.listEnded.bind(ci);
    ci.listEnded = async (after: Date) => {
      since.push(after);
      return listEnded(after);
    };

    // act
    const alive = await handler(sessionCall(JOB, { eventTime: '2026-12-05T07:44:59Z' }));
    const expired = await handler(sessionCall(JOB, { eventTime: '2026-12-05T07:45:01Z' }));

    // assess
    expect(alive).toEqual({ recorded: 0, findings: [`used-after-job-end:ci:x-1:${JOB}`] });
    expect(expired).toEqual({ recorded: 0 });
    expect(since.map((d) => d.toISOString())).toEqual([
      '2026-12-05T06:44:59.000Z',
      '2026-12-05T06:45:01.000Z',
    ]);
  });

  it('does not judge a call while another exchange of the same job, with the same SourceIdentity, was live', async () => {
    // prepare: the job's build exchange ended at 07:35; its deploy exchange (same job, same
    // SourceIdentity) was issued at 07:35:30 and is active.
    const { ci, findings, handler } = await world();
    await ci.putCredential(endedExchange('x-build', JOB), undefined);
    await ci.putCredential(
      { ...exchange('x-deploy', JOB), issuedAt: '2026-12-05T07:35:30.000Z', usedRecorded: true },
      undefined,
    );

    // act
    const during = await handler(sessionCall(JOB, { eventTime: '2026-12-05T07:36:02Z' }));
    const between = await handler(
      sessionCall(JOB, { eventTime: '2026-12-05T07:35:10Z', errorCode: 'AccessDenied' }),
    );

    // assess: a call before the deploy exchange existed is the build session's, after its end
    expect(during).toEqual({ recorded: 0 });
    expect(between).toEqual({ recorded: 0, findings: [`used-after-job-end:ci:x-build:${JOB}`] });
    expect(findings.latest?.findings.map((f) => f.subject)).toEqual(['ci:x-build']);
  });
});

describe('use monitor: calls signed with a managed access key', () => {
  const deploy = identity({
    id: 'deploy-prod',
    kind: 'aws-iam-access-key',
    scope: { userName: 'deploy-prod' },
    allowedRunners: { cidrs: ['10.20.0.0/16'] },
    policy: { onUnexpectedUse: 'contain' },
  });
  const reporter = identity({
    id: 'build',
    kind: 'aws-iam-access-key',
    scope: { userName: 'build' },
    allowedRunners: { cidrs: ['10.30.0.0/16'] },
  });
  const unwatched = identity({ id: 'legacy', kind: 'aws-iam-access-key', scope: { userName: 'legacy' } });

  it('finds a call from outside allowedRunners and contains the key of a contain identity, once; a call from inside is nothing', async () => {
    // prepare
    const key = accessKeyId();
    const fingerprint = `hmac-sha256:${randomBytes(32).toString('hex')}`;
    const { audit, findings, containment, alerted, handler } = await world(
      [deploy],
      [credentialVersion(deploy, { handle: key, fingerprint, verifiedAt: '2026-12-01T00:00:00.000Z' })],
    );

    // act
    const inside = await handler(keyCall('deploy-prod', key, { sourceIPAddress: '10.20.4.5' }));
    const outside = await handler(keyCall('deploy-prod', key, { sourceIPAddress: '198.51.100.7' }));
    const again = await handler(keyCall('deploy-prod', key, { sourceIPAddress: '198.51.100.8' }));

    // assess
    const id = `used-from-unexpected-runner:deploy-prod:${key}`;
    expect(inside).toEqual({ recorded: 0 });
    expect(outside).toEqual({
      recorded: 0,
      findings: [id],
      contained: [
        {
          identityId: 'deploy-prod',
          handle: key,
          status: 'contained',
          incident: `UNEXPECTED-USE-${fingerprint.slice('hmac-sha256:'.length, 'hmac-sha256:'.length + 12)}`,
          campaignId: 'c-1',
        },
      ],
    });
    expect(again).toEqual({ recorded: 0, findings: [id] });
    expect(containment.asked).toEqual([
      { incident: expect.stringMatching(/^UNEXPECTED-USE-/), fingerprint, identityId: 'deploy-prod' },
    ]);
    // its owner told once: who, where it was used from, which campaign
    expect(alerted).toEqual([
      expect.objectContaining({
        cause: 'unexpected-use',
        identityId: 'deploy-prod',
        owner: 'team-platform',
        status: 'contained',
        where: '198.51.100.7 at 2026-12-05T07:31:12Z',
        campaignId: 'c-1',
      }),
    ]);
    expect(findings.latest?.findings).toEqual([
      expect.objectContaining({
        id,
        type: 'used-from-unexpected-runner',
        severity: 'high',
        subject: 'deploy-prod',
      }),
    ]);
    expect(findings.latest?.findings[0]?.message).toContain(
      `${key} was used from 198.51.100.7 at 2026-12-05T07:31:12Z (cloudtrail: s3:PutObject), outside its allowedRunners (cidrs 10.20.0.0/16)`,
    );
    const { records } = await audit.readAll();
    expect(records).toEqual([
      expect.objectContaining({
        type: 'credential.used',
        actor: USE_MONITOR_ACTOR,
        subject: 'deploy-prod',
        details: expect.objectContaining({
          finding: id,
          handle: key,
          from: '198.51.100.7',
          outsideAllowedRunners: true,
        }),
      }),
    ]);
  });

  it('attributes a key keywarden never recorded to the identity of the IAM user that signed, reported only (no fingerprint to contain by)', async () => {
    // prepare
    const { containment, findings, handler } = await world([deploy]);
    const key = accessKeyId();

    // act
    const result = await handler(keyCall('deploy-prod', key, { sourceIPAddress: '198.51.100.7' }));

    // assess
    expect(result).toMatchObject({
      findings: [`used-from-unexpected-runner:deploy-prod:${key}`],
      contained: [
        expect.objectContaining({ status: 'skipped', reason: expect.stringContaining('keywarden revoke') }),
      ],
    });
    expect(containment.asked).toEqual([]);
    expect(findings.latest?.findings).toHaveLength(1);
  });

  it('reports a report identity without containing; ignores identities without allowedRunners, unknown users and calls from a service', async () => {
    // prepare
    const [buildKey, legacyKey, strayKey] = [accessKeyId(), accessKeyId(), accessKeyId()];
    const { containment, findings, handler } = await world(
      [deploy, reporter, unwatched],
      [
        credentialVersion(reporter, { handle: buildKey }),
        credentialVersion(unwatched, { handle: legacyKey }),
      ],
    );

    // act
    const reported = await handler(keyCall('build', buildKey, { sourceIPAddress: '198.51.100.7' }));
    const legacy = await handler(keyCall('legacy', legacyKey, { sourceIPAddress: '198.51.100.7' }));
    const stray = await handler(keyCall('someone', strayKey, { sourceIPAddress: '198.51.100.7' }));
    const service = await handler(
      keyCall('deploy-prod', accessKeyId(), { sourceIPAddress: 'cloudformation.amazonaws.com' }),
    );

    // assess
    expect(reported).toEqual({ recorded: 0, findings: [`used-from-unexpected-runner:build:${buildKey}`] });
    expect([legacy, stray, service]).toEqual([{ recorded: 0 }, { recorded: 0 }, { recorded: 0 }]);
    expect(containment.asked).toEqual([]);
    expect(findings.latest?.findings.map((f) => f.subject)).toEqual(['build']);
  });

  it('takes a call within moments of keywarden’s own verification of a version for its own test, not a runner’s use', async () => {
    // prepare: the version was verified at 07:31:11.5; CloudTrail writes whole seconds.
    const key = accessKeyId();
    const { findings, handler } = await world(
      [deploy],
      [
        credentialVersion(deploy, {
          handle: key,
          fingerprint: 'hmac-sha256:ab',
          verifiedAt: '2026-12-05T07:31:11.500Z',
        }),
      ],
    );

    // act
    const result = await handler(keyCall('deploy-prod', key, { sourceIPAddress: '198.51.100.7' }));

    // assess
    expect(result).toEqual({ recorded: 0 });
    expect(findings.latest).toBeUndefined();
  });
});

describe('use monitor: acting once on a finding', () => {
  const deploy = identity({
    id: 'deploy-prod',
    kind: 'aws-iam-access-key',
    scope: { userName: 'deploy-prod' },
    allowedRunners: { cidrs: ['10.20.0.0/16'] },
    policy: { onUnexpectedUse: 'contain' },
  });
  const fingerprint = () => `hmac-sha256:${randomBytes(32).toString('hex')}`;

  it('contains, audits and alerts once when a stolen key’s calls arrive at once, and not again after discovery replaced the latest findings', async () => {
    // prepare
    const key = accessKeyId();
    const { audit, findings, containment, alerted, handler } = await world(
      [deploy],
      [credentialVersion(deploy, { handle: key, fingerprint: fingerprint() })],
    );
    const call = (n: number) => keyCall('deploy-prod', key, { sourceIPAddress: `198.51.100.${n}` });

    // act: a burst of five calls, each its own invocation; then discovery runs, and the key calls again
    const burst = await Promise.all([1, 2, 3, 4, 5].map((n) => handler(call(n))));
    findings.latest = { runId: 'discovery-2', at: '2026-12-05T07:45:00.000Z', findings: [] };
    const later = await handler(call(6));

    // assess
    const id = `used-from-unexpected-runner:deploy-prod:${key}`;
    expect(burst.filter((r) => r.contained)).toHaveLength(1);
    expect(burst.every((r) => r.findings?.[0] === id)).toBe(true);
    expect(later).toEqual({ recorded: 0, findings: [id] });
    expect(containment.asked).toHaveLength(1);
    expect(alerted).toHaveLength(1);
    expect((await audit.readAll()).records.map((r) => r.type)).toEqual(['credential.used']);
    expect(findings.saves).toBe(1);
  });

  it('throws when the containment fails, without auditing or saving, so the retried event contains the key', async () => {
    // prepare: the first StartExecution is throttled
    const key = accessKeyId();
    const { audit, findings, containment, handler } = await world(
      [deploy],
      [credentialVersion(deploy, { handle: key, fingerprint: fingerprint() })],
    );
    containment.failing = 1;
    const call = keyCall('deploy-prod', key, { sourceIPAddress: '198.51.100.7' });

    // act
    const first = await handler(call).then(
      () => undefined,
      (error: unknown) => error,
    );
    const afterFailure = { audited: (await audit.readAll()).records.length, saves: findings.saves };
    const retried = await handler(call);

    // assess
    expect(first).toMatchObject({
      name: 'KeywardenError',
      retryable: true,
      message: expect.stringContaining('deploy-prod'),
    });
    expect((first as Error).message).toContain('ThrottlingException');
    expect(afterFailure).toEqual({ audited: 0, saves: 0 });
    expect(retried.contained).toEqual([expect.objectContaining({ status: 'contained', campaignId: 'c-2' })]);
    expect(containment.asked).toHaveLength(2);
    expect((await audit.readAll()).records.map((r) => r.type)).toEqual(['credential.used']);
    expect(findings.latest?.findings.map((f) => f.id)).toEqual([
      `used-from-unexpected-runner:deploy-prod:${key}`,
    ]);
  });

  it('acts after a caller that died holding the claim (a short lease), and keeps the claim for days once it acted', async () => {
    // prepare: another invocation claimed the finding at 07:40 and timed out mid-containment
    const key = accessKeyId();
    const { clock, findings, containment, handler } = await world(
      [deploy],
      [credentialVersion(deploy, { handle: key, fingerprint: fingerprint() })],
    );
    const id = `used-from-unexpected-runner:deploy-prod:${key}`;
    await findings.claimFinding(id, new Date(clock.now().getTime() + FINDING_LEASE_MS), clock.now());
    const call = () => keyCall('deploy-prod', key, { sourceIPAddress: '198.51.100.7' });

    // act
    const whileLeased = await handler(call());
    clock.advance(FINDING_LEASE_MS + 1_000);
    const afterLease = await handler(call());
    clock.advance(24 * 3_600_000);
    const nextDay = await handler(call());

    // assess
    expect(whileLeased.contained).toBeUndefined();
    expect(afterLease.contained).toEqual([expect.objectContaining({ status: 'contained' })]);
    expect(nextDay.contained).toBeUndefined();
    expect(containment.asked).toHaveLength(1);
    expect(findings.claims.get(id)).toBe(
      Date.parse('2026-12-05T07:40:00Z') + FINDING_LEASE_MS + 1_000 + FINDING_CLAIM_MS,
    );
  });

  it('does not judge again a contained (revoked) key that keeps trying, though its IAM user signed the call', async () => {
    // prepare: the key was contained and its version revoked; a new version is current
    const [revoked, current] = [accessKeyId(), accessKeyId()];
    const { findings, containment, handler } = await world(
      [deploy],
      [
        credentialVersion(deploy, { handle: revoked, fingerprint: fingerprint(), stage: 'revoked' }),
        credentialVersion(deploy, { handle: current, fingerprint: fingerprint() }),
      ],
    );

    // act
    const result = await handler(keyCall('deploy-prod', revoked, { sourceIPAddress: '198.51.100.7' }));

    // assess
    expect(result).toEqual({ recorded: 0 });
    expect(containment.asked).toEqual([]);
    expect(findings.latest).toBeUndefined();
  });
});

describe('use monitor: the watched identities', () => {
  it('are read once per minute at most, and again after it', async () => {
    // prepare
    const clock = new FixedClock(new Date('2026-12-05T07:40:00Z'));
    let reads = 0;
    const watched = cachedWatch(
      {
        listIdentities: async () => {
          reads += 1;
          return [];
        },
        listVersions: async () => [],
      },
      clock,
    );

    // act
    await Promise.all([watched(), watched()]);
    clock.advance(59_000);
    await watched();
    clock.advance(2_000);
    await watched();

    // assess
    expect(reads).toBe(2);
  });
});
