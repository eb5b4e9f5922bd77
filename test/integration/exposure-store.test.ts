/**
 * Where exposed managed credentials are kept (dynamodb-exposure-store.ts), on the local
 * DynamoDB (dynalite): one item per fingerprint, the first sighting a conditional write (two
 * scanners racing on one leak see exactly one `true`), containment recorded on it.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { dynamoExposureStore, exposureKey } from '../../functions/adapters/aws/dynamodb-exposure-store.ts';
import { DynamoTable, ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import type { ExposureRecord } from '../../functions/core/exposure-record.ts';
import type { ExposureStore } from '../../functions/core/ports.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const client = awsClients(testAws()).dynamodb;

const sighting = (fingerprint: string, location: string): ExposureRecord => ({
  fingerprint,
  identityId: 'app-ci-reader',
  kind: 'vault-token',
  versionId: 'v-1',
  handle: 'accessor-1',
  source: { kind: 'file', location },
  line: 12,
  rule: 'vault-service-token',
  detectedAt: '2026-12-05T09:00:00.000Z',
});

describe('exposure store (DynamoDB, local)', () => {
  let store: ExposureStore;
  let table: DynamoTable;

  beforeAll(async () => {
    const tableName = uniqueName('kw-exposure');
    await ensureStateTable(client, tableName);
    table = new DynamoTable({ client, tableName });
    store = dynamoExposureStore(table);
  });

  const newFingerprint = () => `hmac-sha256:${randomBytes(16).toString('hex')}`;

  it('records a fingerprint once: the first sighting is kept, a later one (another file) is refused', async () => {
    // prepare
    const fingerprint = newFingerprint();
    // act
    const first = await store.recordExposure(sighting(fingerprint, 'build.log'));
    const again = await store.recordExposure(sighting(fingerprint, 'deploy.log'));
    // assess
    expect([first, again]).toEqual([true, false]);
    expect(await store.getExposure(fingerprint)).toEqual(sighting(fingerprint, 'build.log'));
    expect(await table.get(exposureKey(fingerprint))).toMatchObject({
      pk: `EXPOSURE#${fingerprint}`,
      sk: 'EXPOSURE',
    });
  });

  it('lets exactly one of many racing scanners contain a leak', async () => {
    const fingerprint = newFingerprint();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.recordExposure(sighting(fingerprint, `log-${i}`))),
    );
    expect(answers.filter(Boolean)).toHaveLength(1);
  });

  it('records how the containment ended on the sighting', async () => {
    const fingerprint = newFingerprint();
    await store.recordExposure(sighting(fingerprint, 'build.log'));
    await store.markContained(fingerprint, {
      campaignId: 'EXPOSURE-0123456789ab-20261205T090000Z-1a2b',
      outcome: 'contained',
      containedAt: '2026-12-05T09:00:05.000Z',
    });
    expect(await store.getExposure(fingerprint)).toEqual({
      ...sighting(fingerprint, 'build.log'),
      campaignId: 'EXPOSURE-0123456789ab-20261205T090000Z-1a2b',
      outcome: 'contained',
      containedAt: '2026-12-05T09:00:05.000Z',
    });
  });

  const claimAt = (at: string, minutes = 15) => ({
    at,
    until: new Date(new Date(at).getTime() + minutes * 60_000).toISOString(),
  });

  it('gives the claim to contain a leak to exactly one of many racing scanners', async () => {
    // prepare
    const fingerprint = newFingerprint();
    await store.recordExposure(sighting(fingerprint, 'build.log'));
    // act
    const claims = await Promise.all(
      Array.from({ length: 8 }, () =>
        store.claimContainment(fingerprint, claimAt('2026-12-05T09:00:00.000Z')),
      ),
    );
    // assess
    const won = claims.filter((claim) => claim !== undefined);
    expect(won).toEqual([
      { ...sighting(fingerprint, 'build.log'), claimedUntil: '2026-12-05T09:15:00.000Z' },
    ]);
  });

  it('lets the claim of a scanner that died be taken once its lease ran out, not before', async () => {
    const fingerprint = newFingerprint();
    await store.recordExposure(sighting(fingerprint, 'build.log'));
    await store.claimContainment(fingerprint, claimAt('2026-12-05T09:00:00.000Z'));
    expect(await store.claimContainment(fingerprint, claimAt('2026-12-05T09:14:59.000Z'))).toBeUndefined();
    expect(await store.claimContainment(fingerprint, claimAt('2026-12-05T09:15:01.000Z'))).toMatchObject({
      claimedUntil: '2026-12-05T09:30:01.000Z',
    });
  });

  it('frees the claim of a failed attempt and keeps when a containment of it first failed', async () => {
    // prepare
    const fingerprint = newFingerprint();
    await store.recordExposure(sighting(fingerprint, 'build.log'));
    await store.claimContainment(fingerprint, claimAt('2026-12-05T09:00:00.000Z'));
    // act: two attempts fail, the third claims at once
    await store.releaseContainment(fingerprint, '2026-12-05T09:00:01.000Z');
    await store.claimContainment(fingerprint, claimAt('2026-12-05T09:01:00.000Z'));
    await store.releaseContainment(fingerprint, '2026-12-05T09:01:01.000Z');
    const third = await store.claimContainment(fingerprint, claimAt('2026-12-05T09:03:00.000Z'));
    // assess
    expect(third).toMatchObject({
      failedAt: '2026-12-05T09:00:01.000Z',
      claimedUntil: '2026-12-05T09:18:00.000Z',
    });
  });

  it('refuses a claim on a leak contained or started before, and takes one on a leak whose containment failed', async () => {
    const outcomes = ['contained', 'started', 'failed'] as const;
    const claims = [];
    for (const outcome of outcomes) {
      const fingerprint = newFingerprint();
      await store.recordExposure(sighting(fingerprint, 'build.log'));
      await store.claimContainment(fingerprint, claimAt('2026-12-05T09:00:00.000Z'));
      await store.markContained(fingerprint, {
        campaignId: 'c',
        outcome,
        containedAt: '2026-12-05T09:00:05.000Z',
      });
      const record = await store.getExposure(fingerprint);
      expect(record?.claimedUntil).toBeUndefined();
      expect(record?.failedAt).toBe(outcome === 'failed' ? '2026-12-05T09:00:05.000Z' : undefined);
      claims.push(await store.claimContainment(fingerprint, claimAt('2026-12-05T09:00:06.000Z')));
    }
    expect(claims.map((claim) => claim?.outcome)).toEqual([undefined, undefined, 'failed']);
  });

  it('knows nothing of a fingerprint never seen, and marks nothing it never recorded', async () => {
    const fingerprint = newFingerprint();
    expect(await store.getExposure(fingerprint)).toBeUndefined();
    await store.markContained(fingerprint, {
      campaignId: 'c',
      outcome: 'failed',
      containedAt: '2026-12-05T09:00:05.000Z',
    });
    await store.releaseContainment(fingerprint, '2026-12-05T09:00:05.000Z');
    expect(await store.claimContainment(fingerprint, claimAt('2026-12-05T09:00:06.000Z'))).toBeUndefined();
    expect(await store.getExposure(fingerprint)).toBeUndefined();
  });
});
