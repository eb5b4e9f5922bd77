/**
 * The ci-usage function: EventBridge hands it CloudTrail's API calls of `ci-` sessions, and the
 * first call of each exchange is recorded once as `ci.credentials.used`. Store and audit log are
 * the in-memory twins of keywarden's ports.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it } from 'vitest';
import type { CiCredentialRecord } from '../../functions/core/ci-records.ts';
import { makeHandler } from '../../functions/handlers/ci-usage.ts';
import { MemoryCiStore } from '../support/memory-ci-stores.ts';
import { MemoryAuditLog } from '../support/memory-stores.ts';
import { OffsetClock } from '../support/offset-clock.ts';

const JOB = 'ci-github-123456789.9876543210.1.31415926';
const ROLE = 'arn:aws:iam::123456789012:role/ci/deploy-app';

const record = (id: string, sourceIdentity: string): CiCredentialRecord => ({
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

/** An EventBridge "AWS API Call via CloudTrail" event of a session with this SourceIdentity. */
const call = (sourceIdentity: string | undefined, eventName = 'PutObject') => ({
  version: '0',
  'detail-type': 'AWS API Call via CloudTrail',
  source: 'aws.s3',
  detail: {
    eventTime: '2026-12-05T07:31:12Z',
    eventSource: 's3.amazonaws.com',
    eventName,
    sourceIPAddress: '203.0.113.24',
    userIdentity: {
      type: 'AssumedRole',
      arn: 'arn:aws:sts::123456789012:assumed-role/deploy-app/x',
      sessionContext: {
        sessionIssuer: { type: 'Role', arn: ROLE },
        ...(sourceIdentity ? { sourceIdentity } : {}),
      },
    },
  },
});

describe('ci-usage: CloudTrail calls of a job session become one use event per exchange', () => {
  it("records the first call of the job's session, once, with what it called and from where", async () => {
    // prepare
    const store = new MemoryCiStore();
    const audit = new MemoryAuditLog(new OffsetClock());
    await store.putCredential(record('x-1', JOB), undefined);
    await store.putCredential(record('x-2', 'ci-github-other.1.1.1'), undefined);
    const handler = makeHandler({ exchange: { store, audit }, logger: new Logger({ logLevel: 'SILENT' }) });

    // act
    const first = await handler(call(JOB));
    const again = await handler(call(JOB, 'GetObject'));
    const person = await handler(call(undefined));
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
});
