/**
 * The revocation state machine's report step on a containment campaign (incident `EXPOSURE-…` or
 * `UNEXPECTED-USE-…`, started by the deployed scanner or use monitor, which returned long before
 * the re-issue): it audits `exposure.reissued` once per re-issued identity, with the campaign,
 * the incident, the new version and the fingerprint its selector names — once, however many
 * times the step runs. In-memory stores of keywarden's own ports; the report goes to a temporary
 * folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Campaign, summarize, type Target } from '../../functions/core/campaign.ts';
import { exposureReissuedEvents } from '../../functions/core/containment-reissue.ts';
import { makeReportHandler } from '../../functions/handlers/revocation.ts';
import { FixedClock, identity } from '../support/fixtures.ts';
import { MemoryAuditLog, MemoryCampaignStore, MemoryIdentityStore } from '../support/memory-stores.ts';

const CREATED = '2026-12-05T08:00:00.000Z';
const SCANNER = 'keywarden:exposure-scanner';
const release = identity({ id: 'release-token', kind: 'vault-token', owner: 'team-release' });

/** A keyed fingerprint's shape, random per run. */
const fingerprint = `hmac-sha256:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex')}`;

const revoked: Target = {
  targetId: 'release-token:accessor-1',
  identityId: release.id,
  kind: release.kind,
  owner: 'team-release',
  environment: release.pipeline.environment,
  handle: 'accessor-1',
  action: 'revoke',
  reissue: true,
  attempts: 1,
  outcome: 'revoked',
};

const containment = (incident: string, over: Partial<Campaign> = {}): Campaign => ({
  campaignId: `${incident}-20261205T080000Z-a1b2`,
  incident,
  selectors: [`identity=${release.id},fingerprint=${fingerprint}`],
  requestedBy: SCANNER,
  createdAt: CREATED,
  startedAt: CREATED,
  status: 'running',
  reissue: true,
  dryRun: false,
  counts: summarize([revoked]),
  ...over,
});

/** A deployment's stores in memory, one campaign in them with its re-issue recorded. */
async function world(campaign: Campaign, reissued = true) {
  const clock = new FixedClock(new Date('2026-12-05T08:05:00Z'));
  const campaigns = new MemoryCampaignStore();
  const audit = new MemoryAuditLog(clock);
  const identities = new MemoryIdentityStore();
  await identities.putIdentity(
    { identity: release, status: 'active', declarationHash: 'h', syncedAt: CREATED },
    undefined,
  );
  await campaigns.createCampaign(campaign, [revoked]);
  await campaigns.putReissue(campaign.campaignId, {
    identityId: release.id,
    ...(reissued
      ? { status: 'reissued', versionId: 'v-2' }
      : { status: 'failed', reason: 'delivery refused' }),
    at: '2026-12-05T08:04:00.000Z',
  });
  const store = {
    getCampaign: (id: string) => campaigns.getCampaign(id),
    putCampaign: (c: Campaign, rev: number) => campaigns.putCampaign(c, rev),
    listTargets: (id: string) => campaigns.listTargets(id),
    listReissues: (id: string) => campaigns.listReissues(id),
    listIdentities: () => identities.listIdentities(),
    append: audit.append.bind(audit),
    appendMany: audit.appendMany.bind(audit),
    recordsSince: audit.recordsSince.bind(audit),
    recordsAbout: audit.recordsAbout.bind(audit),
  };
  const report = (auditExposureReissues: boolean) =>
    makeReportHandler({
      services: {
        store,
        clock,
        config: {},
        putObject: () => Promise.reject(new Error('no report bucket here')),
      },
      actor: 'keywarden:revocation',
      auditExposureReissues,
    });
  const reissuedEvents = async () =>
    (await audit.readAll()).records.filter((r) => r.type === 'exposure.reissued');
  return { report, reissuedEvents, campaigns };
}

describe('revocation report step: exposure.reissued for a containment campaign', () => {
  let reports = '';
  const before = process.env.KEYWARDEN_REPORTS_DIR;
  beforeAll(() => {
    reports = mkdtempSync(join(tmpdir(), 'kw-report-step-'));
    process.env.KEYWARDEN_REPORTS_DIR = reports;
  });
  afterAll(() => {
    if (before === undefined) delete process.env.KEYWARDEN_REPORTS_DIR;
    else process.env.KEYWARDEN_REPORTS_DIR = before;
    rmSync(reports, { recursive: true, force: true });
  });

  it.each(['EXPOSURE-3f2a9c1b7d4e', 'UNEXPECTED-USE-3f2a9c1b7d4e'])(
    'audits one exposure.reissued per re-issued identity of %s, as the one who contained',
    async (incident) => {
      // prepare
      const campaign = containment(incident);
      const { report, reissuedEvents } = await world(campaign);

      // act
      await report(true)({ campaignId: campaign.campaignId });

      // assess
      const events = await reissuedEvents();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        actor: SCANNER,
        subject: release.id,
        details: { campaignId: campaign.campaignId, incident, versionId: 'v-2', fingerprint },
      });
    },
  );

  it('audits it once when the step runs again (a retry or a resume)', async () => {
    const campaign = containment('EXPOSURE-3f2a9c1b7d4e');
    const { report, reissuedEvents, campaigns } = await world(campaign);

    await report(true)({ campaignId: campaign.campaignId });
    await report(true)({ campaignId: campaign.campaignId });

    expect(await reissuedEvents()).toHaveLength(1);
    expect((await campaigns.getCampaign(campaign.campaignId))?.status).toBe('completed');
  });

  it('audits nothing for a responder’s incident, a re-issue that failed, or where the runner audits it (local)', async () => {
    const responder = containment('INC-42', { selectors: [`fingerprint=${fingerprint}`] });
    const failed = containment('EXPOSURE-3f2a9c1b7d4e');
    const local = containment('EXPOSURE-0a0b0c0d0e0f');

    const runs = await Promise.all([world(responder), world(failed, false), world(local)]);
    await runs[0]?.report(true)({ campaignId: responder.campaignId });
    await runs[1]?.report(true)({ campaignId: failed.campaignId });
    await runs[2]?.report(false)({ campaignId: local.campaignId });

    for (const run of runs) expect(await run.reissuedEvents()).toEqual([]);
  });
});

describe('revocation report step: exposureReissuedEvents', () => {
  it('reads the fingerprint from the selector, whichever term comes first, and leaves out what is audited', () => {
    const campaign = containment('EXPOSURE-3f2a9c1b7d4e', {
      selectors: [`fingerprint=${fingerprint},identity=${release.id}`],
    });
    const reissue = { identityId: release.id, status: 'reissued' as const, versionId: 'v-2', at: CREATED };

    const first = exposureReissuedEvents(campaign, [reissue], []);
    const audited = first.map((event, index) => ({
      ...event,
      details: event.details ?? {},
      seq: index + 1,
      id: `r${index}`,
      at: CREATED,
      prevHash: '',
      hash: '',
    }));

    expect(first.map((e) => e.details?.fingerprint)).toEqual([fingerprint]);
    expect(exposureReissuedEvents(campaign, [reissue], audited)).toEqual([]);
    // a campaign naming no fingerprint is no containment's
    expect(
      exposureReissuedEvents({ ...campaign, selectors: [`identity=${release.id}`] }, [reissue], []),
    ).toEqual([]);
  });
});
