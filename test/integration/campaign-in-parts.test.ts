/**
 * A campaign planned in parts (`keywarden revoke --yes` on the local stack): the targets of the
 * service whose revocations take longest (IAM) are stored and run while the other services are
 * listed; the campaign completes only once both parts are in, and a planner that dies between
 * the parts leaves a campaign that `keywarden revoke resume` plans to the end. Against moto,
 * dynalite and OpenBao, through the local revocation runner (the state machine's local shape).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildFleet, stillLive } from '../../bench/support/revocation-fleet.ts';
import {
  type CampaignPlanningDeps,
  type PartsStore,
  type PlannedPart,
  partsAfter,
  planAndStoreCampaign,
} from '../../functions/adapters/campaign-launcher.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import { identityIdOf } from '../../functions/core/campaign.ts';
import { ConflictError, KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import { serviceOf } from '../../functions/core/kinds.ts';
import { makeReportHandler } from '../../functions/handlers/revocation.ts';
import {
  LocalRevocationRunner,
  RevocationRunError,
  type RevocationRunResult,
} from '../../functions/local/revocation-runner.ts';
import { declare, newIncident } from '../support/campaigns.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { newVaultClient, uniqueName } from '../support/stack.ts';

let services: Services;
let vault: VaultClient;
const bucket = uniqueName('kw-parts-plans');
const noWait = { maxAttempts: 3, intervalSeconds: 0, backoffRate: 1 };

beforeAll(async () => {
  process.env.KEYWARDEN_REPORTS_DIR = mkdtempSync(join(tmpdir(), 'kw-parts-reports-'));
  services = await wireLocal(localConfig('kw-parts'));
  vault = newVaultClient();
});

/** The campaign store with its `addTargets` failing: a planner that dies before its second part is stored. */
const storeDyingAtSecondPart = (): PartsStore =>
  new Proxy(services.store, {
    get(target, property) {
      if (property === 'addTargets') {
        return async () => {
          throw new KeywardenError('the state table went away');
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });

/** The campaign store with its `addTargets` held until `release` is called: a planner still listing its second part. */
function storeHoldingSecondPart() {
  let release = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let held = () => {};
  const reached = new Promise<void>((resolve) => {
    held = resolve;
  });
  const campaigns: PartsStore = new Proxy(services.store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (property === 'addTargets' && typeof value === 'function') {
        return async (...args: unknown[]) => {
          held();
          await released;
          return value.apply(target, args);
        };
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { campaigns, reached, release };
}

/** A vault-kv identity of `environment` whose KV path holds nothing: planned `skipped`, nothing live. */
async function emptyKvIdentity(environment: string) {
  const name = uniqueName('kw-empty');
  const identity = makeIdentity({
    id: name,
    kind: 'vault-kv',
    scope: { path: `kw-parts/${name}/api-key` },
    pipeline: { repo: 'acme/app', stage: 'deploy', environment },
    policy: { maxAge: '30d', rotateEvery: '7d', grace: '1h' },
  });
  await declare(services.store, identity);
  return identity;
}

/** Plans `selector` in parts, starting the runner on the first part as `keywarden revoke --yes` does. */
async function planInParts(selector: string, campaigns: PartsStore = services.store) {
  const runner = new LocalRevocationRunner({ services, actor: 'test:responder', bucket, retry: noWait });
  const parts: { first?: PlannedPart; later?: Promise<PlannedPart[]>; run?: Promise<RevocationRunResult> } =
    {};
  const planning = planAndStoreCampaign(
    services,
    {
      incident: newIncident(),
      selectors: [selector],
      reissue: false,
      actor: 'test:responder',
      dryRun: false,
    },
    {
      inParts: {
        campaigns,
        onFirstPart: (first, rest) => {
          parts.first = first;
          parts.run = runner.run(first.campaign.campaignId, { rest });
          parts.run.catch(() => undefined);
          parts.later = (async () => {
            const later: PlannedPart[] = [];
            for await (const part of partsAfter(rest)) later.push(part);
            return later;
          })();
          parts.later.catch(() => undefined);
        },
      },
    },
  );
  return { planning, parts, runner };
}

describe('a campaign planned in parts', () => {
  it("stores IAM's targets first, its planning open, runs them while the rest is listed, and completes once both parts are in", async () => {
    // prepare: a mixed fleet (IAM keys, secrets, Vault tokens, AppRole secret-ids, KV) recorded in the store
    const fleet = await buildFleet({ services, vault }, 120, { preexisting: 0 });
    const { planning, parts } = await planInParts(fleet.selector);

    // act
    const planned = await planning;
    const result = await parts.run;

    // assess: the first part held IAM's targets only, stored with the planning open…
    const first = parts.first as PlannedPart;
    expect(first.campaign.planning).toEqual({ stored: ['iam'] });
    expect(first.pending.length).toBeGreaterThan(0);
    const kindOf = new Map(fleet.subjects.map((s) => [s.identity.id, s.identity.kind]));
    for (const id of first.pending)
      expect(serviceOf(kindOf.get(identityIdOf(id)) ?? 'vault-token')).toBe('iam');
    // …then one part per other service, each stored as soon as it was listed, the last closing the planning…
    const later = (await parts.later) ?? [];
    expect(later.map((part) => part.campaign.planning)).toEqual([
      { stored: ['iam', 'secrets-manager'] },
      undefined,
    ]);
    // …the plan returned is the whole campaign, its planning closed…
    expect(planned.status).toBe('stored');
    if (planned.status !== 'stored' || !result) throw new Error('expected a stored campaign and a run');
    expect(planned.campaign.planning).toBeUndefined();
    expect(planned.summary.counts.total).toBe(result.targets.length);
    expect(new Set(result.targets.map((t) => t.kind)).size).toBeGreaterThan(2);
    // …the second part's batches numbered after the first's…
    const firstIds = new Set(first.pending);
    const firstBatches = result.targets.filter((t) => firstIds.has(t.targetId)).map((t) => t.batch as number);
    const laterBatches = result.targets
      .filter((t) => !firstIds.has(t.targetId) && t.batch !== undefined)
      .map((t) => t.batch as number);
    expect(Math.min(...laterBatches)).toBeGreaterThan(Math.max(...firstBatches));
    // …and every target ended on the servers, the campaign completed and reported.
    expect(result.targets.every((t) => t.outcome === 'revoked' || t.outcome === 'already-revoked')).toBe(
      true,
    );
    expect(result.campaign.status).toBe('completed');
    expect(result.report?.html).toMatch(/report\.html$/);
    expect(await stillLive({ services, vault }, fleet, planned.campaign.incident)).toEqual([]);
  });

  it("lists the other services only once the first part's run is under way", async () => {
    // prepare: a mixed fleet, and each listing's start and end recorded by service
    const fleet = await buildFleet({ services, vault }, 120, { preexisting: 0 });
    const events: { event: 'under way' | 'list' | 'listed'; service: string }[] = [];
    const planning: CampaignPlanningDeps = {
      ...services,
      rotationDeps: (actor) => {
        const live = services.rotationDeps(actor);
        return {
          ...live,
          providerFor: (identity) => {
            const provider = live.providerFor(identity);
            const service = serviceOf(identity.kind);
            return {
              ...provider,
              list: async (options) => {
                events.push({ event: 'list', service });
                try {
                  return await provider.list(options);
                } finally {
                  events.push({ event: 'listed', service });
                }
              },
            } as typeof provider;
          },
        };
      },
    };
    let run: Promise<unknown> | undefined;

    // act: the first part's run says it is under way after a while
    const planned = await planAndStoreCampaign(
      planning,
      {
        incident: newIncident(),
        selectors: [fleet.selector],
        reissue: false,
        actor: 'test:responder',
        dryRun: false,
      },
      {
        inParts: {
          campaigns: services.store,
          onFirstPart: (first, rest) => {
            const runner = new LocalRevocationRunner({
              services,
              actor: 'test:responder',
              bucket,
              retry: noWait,
            });
            run = runner.run(first.campaign.campaignId, { rest });
            run.catch(() => undefined);
            return new Promise<void>((resolve) =>
              setTimeout(() => {
                events.push({ event: 'under way', service: 'iam' });
                resolve();
              }, 200),
            );
          },
        },
      },
    );
    await run;
    if (planned.status !== 'stored') throw new Error('expected a stored campaign');

    // assess: IAM listed first; nothing else listed before the run was under way
    const at = (event: string, service?: string) =>
      events.flatMap((e, i) => (e.event === event && (!service || e.service === service) ? [i] : []));
    const underWay = at('under way')[0] as number;
    expect(Math.max(...at('listed', 'iam'))).toBeLessThan(underWay);
    const others = events.flatMap((e, i) => (e.event === 'list' && e.service !== 'iam' ? [i] : []));
    expect(others.length).toBeGreaterThan(0);
    expect(Math.min(...others)).toBeGreaterThan(underWay);
    expect(await stillLive({ services, vault }, fleet, planned.campaign.incident)).toEqual([]);
  });

  it('left open by a planner that died before its second part: not completed, and resumed, planned to the end', async () => {
    // prepare: the second part cannot be stored
    const fleet = await buildFleet({ services, vault }, 60, { preexisting: 0 });
    const { planning, parts, runner } = await planInParts(fleet.selector, storeDyingAtSecondPart());

    // act: planning fails after the first part is stored and running
    await expect(planning).rejects.toThrow(/the state table went away/);
    const run = parts.run as Promise<RevocationRunResult>;
    await expect(run).rejects.toThrow(RevocationRunError);
    await expect(run).rejects.toThrow(/could not be planned.*keywarden revoke resume/);

    // assess: the first part ran; the campaign stays open, not completed
    const { campaignId } = (parts.first as PlannedPart).campaign;
    const open = await services.store.getCampaign(campaignId);
    expect(open?.planning).toEqual({ stored: ['iam'] });
    expect(open?.status).not.toBe('completed');
    const firstTargets = await services.store.listTargets(campaignId);
    expect(firstTargets.every((t) => serviceOf(t.kind) === 'iam' && t.outcome !== 'pending')).toBe(true);

    // act: the resume (`keywarden revoke resume`) plans the rest, then runs it
    const resumed = await runner.run(campaignId, { retryFailed: true });

    // assess: every service's targets, every one ended, the campaign completed and its planning closed
    expect(resumed.campaign.planning).toBeUndefined();
    expect(resumed.campaign.status).toBe('completed');
    expect(new Set(resumed.targets.map((t) => serviceOf(t.kind)))).toEqual(
      new Set(['iam', 'secrets-manager', 'vault']),
    );
    expect(resumed.targets.every((t) => t.outcome === 'revoked' || t.outcome === 'already-revoked')).toBe(
      true,
    );
    expect(await stillLive({ services, vault }, fleet, open?.incident ?? '')).toEqual([]);
  });

  it('has one planner: a resume while the planner still lists is refused, and the plan is stored once', async () => {
    // prepare: the planner holds its second part back
    const fleet = await buildFleet({ services, vault }, 60, { preexisting: 0 });
    const held = storeHoldingSecondPart();
    const { planning, parts, runner } = await planInParts(fleet.selector, held.campaigns);
    await held.reached;
    const { campaignId } = (parts.first as PlannedPart).campaign;

    // act: a responder resumes meanwhile (keywarden revoke resume, or the API's)
    const resumed = runner.run(campaignId, { retryFailed: true });

    // assess: refused, naming the planner; once the planner goes on, the campaign completes once
    await expect(resumed).rejects.toThrow(ConflictError);
    await expect(resumed).rejects.toThrow(/being planned by another process/);
    held.release();
    const planned = await planning;
    const result = await parts.run;
    expect(planned.status).toBe('stored');
    expect(result?.campaign.status).toBe('completed');
    expect(result?.targets.every((t) => t.outcome === 'revoked' || t.outcome === 'already-revoked')).toBe(
      true,
    );
    expect(await stillLive({ services, vault }, fleet, result?.campaign.incident ?? '')).toEqual([]);
  });

  it("audits the second part's skipped targets once, though the campaign started on the first", async () => {
    // prepare: the fleet and one identity of its environment with nothing live (skipped at planning)
    const fleet = await buildFleet({ services, vault }, 60, { preexisting: 0 });
    const environment = /^env=(.+)$/.exec(fleet.selector)?.[1] ?? '';
    const empty = await emptyKvIdentity(environment);
    const { planning, parts } = await planInParts(fleet.selector);

    // act
    await planning;
    const result = await parts.run;

    // assess: the skipped target is in the campaign, audited by its planner, and once
    const skipped = result?.targets.filter((t) => t.outcome === 'skipped') ?? [];
    expect(skipped.map((t) => t.identityId)).toEqual([empty.id]);
    const campaignId = result?.campaign.campaignId;
    const events = (await services.store.readAll()).records.filter(
      (r) => r.details.campaignId === campaignId,
    );
    const aboutEmpty = events.filter((r) => r.type === 'campaign.target' && r.subject === empty.id);
    expect(aboutEmpty).toHaveLength(1);
    expect(aboutEmpty[0]?.details).toMatchObject({ outcome: 'skipped' });
    // …and the start says its counts were those of the first part
    expect(events.find((r) => r.type === 'campaign.started')?.details).toMatchObject({
      planning: { stored: ['iam'] },
    });
    expect(result?.campaign.status).toBe('completed');
  });

  it('is not reported while its planning is open: the report step refuses, naming the resume', async () => {
    // prepare: a campaign left open by a planner that died before its second part
    const fleet = await buildFleet({ services, vault }, 60, { preexisting: 0 });
    const { planning, parts } = await planInParts(fleet.selector, storeDyingAtSecondPart());
    await expect(planning).rejects.toThrow(/the state table went away/);
    await expect(parts.run).rejects.toThrow(RevocationRunError);
    const { campaignId } = (parts.first as PlannedPart).campaign;

    // act: the state machine's report step
    const report = makeReportHandler({ services, actor: 'test:report' })({ campaignId });

    // assess
    await expect(report).rejects.toThrow(ValidationError);
    await expect(report).rejects.toThrow(
      /planning is still open \(only iam planned\).*keywarden revoke resume/,
    );
  });
});
