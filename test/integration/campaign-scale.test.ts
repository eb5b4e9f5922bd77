import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildFleet, type RevocationFleet, stillLive } from '../../bench/support/revocation-fleet.ts';
import { dynamoDbClientConfig } from '../../functions/adapters/aws/clients.ts';
import { dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { publishCampaignReport } from '../../functions/adapters/campaign-report.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { providerLimiters, type RateLimits } from '../../functions/adapters/rate-limits.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import { verifyChain } from '../../functions/core/audit.ts';
import type { Target } from '../../functions/core/campaign.ts';
import { type CampaignDeps, type CampaignRun, runCampaign } from '../../functions/core/campaign-engine.ts';
import { countingRevokes, newIncident, testPlan } from '../support/campaigns.ts';
import { runtimeConfigThrough, startStackProxies, summarizeFaults } from '../support/fault-proxy.ts';
import { type LocalConfig, localConfig, wireLocal } from '../support/local-state.ts';
import { newVaultClient, testStack } from '../support/stack.ts';

const TARGETS = 2_000;
const LIMITS: RateLimits = {
  iam: { concurrency: 4, perSecond: 20 },
  'secrets-manager': { concurrency: 16, perSecond: 40 },
  vault: { concurrency: 32, perSecond: 400 },
};
/** Per request, on every proxy: 3% throttled, 2% HTTP 5xx, 1% dropped (half after the server did the work). */
const STORM = { throttleRate: 0.03, serverErrorRate: 0.02, dropRate: 0.01 };

let services: Services;
let vault: VaultClient;
let config: LocalConfig;
let proxies: Awaited<ReturnType<typeof startStackProxies>> | undefined;
const SETTLED = ['revoked', 'already-revoked'];

beforeAll(() => {
  vault = newVaultClient();
});

/** A state table of the scenario's own, and the adapters on it. */
beforeEach(async () => {
  config = localConfig('kw-scale');
  services = await wireLocal(config);
});

afterAll(async () => {
  await proxies?.close();
});

const ctx = () => ({ services, vault });

async function fleetOf(label: string): Promise<RevocationFleet> {
  const started = Date.now();
  const fleet = await buildFleet(ctx(), TARGETS);
  console.log(`${label}: fleet of ${TARGETS} targets built in ${Date.now() - started} ms`);
  return fleet;
}

/** Plans the campaign over the fleet (the CLI's plan, from the fleet's recorded versions) and stores it. */
async function planned(fleet: RevocationFleet) {
  const incident = newIncident();
  const plan = testPlan({
    campaignId: `${incident}-scale`,
    incident,
    selectors: [fleet.selector],
    subjects: fleet.subjects,
  });
  await services.store.createCampaign(plan.campaign, plan.targets);
  return { incident, campaignId: plan.campaign.campaignId, targets: plan.targets };
}

const unsettled = (targets: readonly Target[]) =>
  targets
    .filter((t) => !SETTLED.includes(t.outcome))
    .map((t) => `${t.targetId}: ${t.outcome} ${t.error ?? ''}`);

const keyOf = (t: Target) => (t.action === 'revoke' ? `${t.identityId}:${t.handle}` : t.handle);

describe('campaign at scale: 2,000 mixed targets on the local stack', { timeout: 600_000 }, () => {
  it('revokes every target, as moto and OpenBao themselves show, and writes the report in three formats', async () => {
    const fleet = await fleetOf('clean');
    const { incident, campaignId, targets } = await planned(fleet);
    const reports = mkdtempSync(join(tmpdir(), 'kw-scale-reports-'));
    process.env.KEYWARDEN_REPORTS_DIR = reports;

    const started = Date.now();
    const run = await runCampaign(services.campaignDeps('test:responder'), campaignId, {
      limitFor: providerLimiters(LIMITS).limitFor,
    });
    const ranMs = Date.now() - started;
    const locations = await publishCampaignReport(services, run);
    const reportMs = Date.now() - started - ranMs;
    console.log(`clean: campaign of ${targets.length} targets ran in ${ranMs} ms, report in ${reportMs} ms`);

    expect(targets).toHaveLength(TARGETS);
    expect(run.stopped).toBe(false);
    expect(run.campaign.status).toBe('completed');
    expect(unsettled(run.targets)).toEqual([]);
    expect(run.settled).toBe(TARGETS);
    // The servers themselves: tokens unknown, secret-ids gone, KV versions destroyed, keys
    // deleted, previous labels removed, no lease under the prefix, the deny policy on the role.
    const checking = Date.now();
    expect(await stillLive(ctx(), fleet, incident)).toEqual([]);
    console.log(`clean: the servers checked in ${Date.now() - checking} ms`);
    // The store: recorded versions marked revoked, naming the incident (a sample of every kind).
    const versions = await Promise.all(
      fleet.versions
        .filter((_, i) => i % 50 === 0)
        .map((v) => services.store.getVersion(v.identityId, v.versionId)),
    );
    expect(
      versions
        .map((v) => [v?.stage, v?.note?.includes(incident)])
        .filter(([stage, named]) => stage !== 'revoked' || !named),
    ).toEqual([]);
    // The report in three formats.
    const html = readFileSync(locations.html, 'utf8');
    expect(html).toContain(incident);
    expect(readFileSync(locations.html.replace(/html$/, 'md'), 'utf8')).toContain(incident);
    const json = JSON.parse(readFileSync(locations.html.replace(/html$/, 'json'), 'utf8'));
    expect(json.incident).toBe(incident);
    // The audit trail: one event per target, each its own link of an unbroken chain.
    const { records, head } = await services.store.readAll();
    expect(verifyChain(records, head, sha256Hex)).toMatchObject({ ok: true });
    const trail = records.filter((r) => r.details.campaignId === campaignId);
    expect(trail.filter((r) => r.type === 'campaign.target')).toHaveLength(TARGETS);
    expect(
      new Set(trail.filter((r) => r.type === 'campaign.target').map((r) => r.details.targetId)).size,
    ).toBe(TARGETS);
  });

  it('behind fault proxies in front of moto, DynamoDB and OpenBao, accounts for every target and ends as the clean run does', async () => {
    const fleet = await fleetOf('faults');
    const { incident, campaignId, targets } = await planned(fleet);
    proxies = await startStackProxies(testStack(), {
      aws: { seed: 5 },
      dynamodb: { seed: 6 },
      vault: { seed: 7 },
    });
    const faulty = wire(runtimeConfigThrough(proxies, config));
    // The state store on standard retries: adaptive retry's shared token bucket slows a
    // whole campaign under a storm (see rotation-faults.test.ts), which is not under test here.
    const client = new DynamoDBClient({ ...dynamoDbClientConfig(faulty.config.aws), retryMode: 'standard' });
    const store = dynamoStore({
      client,
      tableName: config.tableName,
      clock: faulty.clock,
      digest: sha256Hex,
    });
    const base = faulty.campaignDeps('test:responder', { store, audit: store });
    const deps: CampaignDeps = { ...base, campaigns: store, identities: store };
    const { limitFor } = providerLimiters(LIMITS);
    for (const proxy of [proxies.aws, proxies.dynamodb, proxies.vault]) proxy.setRates(STORM);

    // A run ends early when the store itself cannot be written (every retry met a fault):
    // the responder resumes, and failures that could pass get a fresh budget.
    const started = Date.now();
    const runs: string[] = [];
    let run: CampaignRun | undefined;
    for (let attempt = 1; attempt <= 6 && (!run || unsettled(run.targets).length > 0); attempt += 1) {
      run = await runCampaign(deps, campaignId, { limitFor, retryFailed: attempt > 1 }).catch(
        (error: unknown) => {
          runs.push(`run ${attempt} stopped: ${(error as Error).message}`);
          return undefined;
        },
      );
      if (run) runs.push(`run ${attempt}: ${JSON.stringify(run.campaign.counts.byOutcome)}`);
    }
    const ranMs = Date.now() - started;
    for (const proxy of [proxies.aws, proxies.dynamodb, proxies.vault]) proxy.setRates({});
    console.log(
      [
        `faults: campaign of ${targets.length} targets ran in ${ranMs} ms`,
        ...runs.map((line) => `  ${line}`),
        `  ${summarizeFaults('moto proxy', proxies.aws)}`,
        `  ${summarizeFaults('DynamoDB proxy', proxies.dynamodb)}`,
        `  ${summarizeFaults('OpenBao proxy', proxies.vault)}`,
      ].join('\n'),
    );

    const stored = await services.store.listTargets(campaignId);
    expect(stored).toHaveLength(TARGETS);
    expect(unsettled(stored)).toEqual([]);
    expect((await services.store.getCampaign(campaignId))?.status).toBe('completed');
    expect(proxies.aws.counts.throttled + proxies.aws.counts.serverError).toBeGreaterThan(0);
    expect(proxies.dynamodb.counts.throttled + proxies.dynamodb.counts.serverError).toBeGreaterThan(0);
    expect(proxies.vault.counts.throttled + proxies.vault.counts.serverError).toBeGreaterThan(0);
    expect(proxies.aws.counts.droppedAfterForward + proxies.vault.counts.droppedAfterForward).toBeGreaterThan(
      0,
    );
    expect(await stillLive(ctx(), fleet, incident)).toEqual([]);
    const { records, head } = await services.store.readAll();
    expect(verifyChain(records, head, sha256Hex)).toMatchObject({ ok: true });
    const events = records.filter((r) => r.details.campaignId === campaignId && r.type === 'campaign.target');
    // Every target audited with its outcome (a run cut short may audit one again on resume).
    expect(new Set(events.map((r) => r.details.targetId)).size).toBe(TARGETS);
  });

  it('stopped partway and resumed, revokes each credential exactly once and misses none', async () => {
    const fleet = await fleetOf('resume');
    const { incident, campaignId, targets } = await planned(fleet);
    const { deps, calls } = countingRevokes(services.campaignDeps('test:responder'));
    const stop = new AbortController();
    const { limitFor } = providerLimiters(LIMITS);

    const started = Date.now();
    const first = await runCampaign(deps, campaignId, {
      limitFor,
      signal: stop.signal,
      // The stop comes at a set count of settled targets, not at a time.
      onOutcome: (_target, { done }) => {
        if (done >= 800) stop.abort();
      },
    });
    const afterStop = await services.store.listTargets(campaignId);
    const second = await runCampaign(deps, campaignId, { limitFor });
    console.log(
      `resume: ${first.settled} targets before the stop, ${second.settled} after, ${Date.now() - started} ms in all`,
    );

    expect(first.stopped).toBe(true);
    expect(first.campaign.status).toBe('running');
    expect(afterStop.filter((t) => t.outcome === 'pending').length).toBeGreaterThan(0);
    expect(first.settled).toBeGreaterThanOrEqual(800);
    expect(second.stopped).toBe(false);
    expect(second.campaign.status).toBe('completed');
    expect(first.settled + second.settled).toBe(TARGETS);
    expect(unsettled(second.targets)).toEqual([]);
    // Exactly one revoke call per target over both runs, and none for anything else.
    expect(calls.size).toBe(TARGETS);
    expect([...calls.keys()].sort()).toEqual(targets.map(keyOf).sort());
    expect([...calls].filter(([, n]) => n !== 1)).toEqual([]);
    expect(second.targets.filter((t) => t.outcome === 'already-revoked')).toEqual([]);
    expect(await stillLive(ctx(), fleet, incident)).toEqual([]);
  });
});
