import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildFleet, stillLive } from '../../bench/support/revocation-fleet.ts';
import { LocalCampaignLauncher, planAndStoreCampaign } from '../../functions/adapters/campaign-launcher.ts';
import { DEFAULT_RATE_LIMITS } from '../../functions/adapters/rate-limits.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import { ConflictError } from '../../functions/core/errors.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { REVOKE_BATCH_SIZE } from '../../functions/core/revocation-batching.ts';
import { rotateIdentity } from '../../functions/core/rotation.ts';
import { LocalRevocationRunner } from '../../functions/local/revocation-runner.ts';
import { declaredKvIdentity, newIncident, planNothingToRevoke, testPlan } from '../support/campaigns.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { newVaultClient, uniqueName } from '../support/stack.ts';

let services: Services;
let vault: VaultClient;
const prefix = uniqueName('kw-runner');
const bucket = uniqueName('kw-runner-plans');
const noWait = { maxAttempts: 3, intervalSeconds: 0, backoffRate: 1 };

beforeAll(async () => {
  // Reports go to a folder of this file's own, as on a laptop.
  process.env.KEYWARDEN_REPORTS_DIR = mkdtempSync(join(tmpdir(), 'kw-runner-reports-'));
  services = await wireLocal(localConfig('kw-runner'));
  vault = newVaultClient();
});

/** `count` vault-kv identities in one environment, each with two live KV versions. */
async function kvFleet(count: number): Promise<{ environment: string; identities: Identity[] }> {
  const environment = uniqueName('env');
  const identities = await Promise.all(
    Array.from({ length: count }, () => declaredKvIdentity({ services, vault }, prefix, environment)),
  );
  // Rotated once each, so every identity has two live versions (the adopted one and the issued one).
  for (const identity of identities) {
    const outcome = await rotateIdentity(services.rotationDeps('setup'), identity, { owner: 'setup' });
    expect(outcome.status, outcome.reason).toBe('rotated');
  }
  return { environment, identities };
}

/** KV versions of the identity still readable (not destroyed) on OpenBao. */
async function liveVersions(identity: Identity): Promise<number> {
  const path = identity.kind === 'vault-kv' ? identity.scope.path : '';
  const metadata = await vault.read(`secret/metadata/${path}`);
  const versions = (metadata?.data?.versions ?? {}) as Record<string, { destroyed: boolean }>;
  return Object.values(versions).filter((v) => !v.destroyed).length;
}

async function storedCampaign(environment: string, dryRun = false) {
  const planned = await planAndStoreCampaign(services, {
    incident: newIncident(),
    selectors: [`env=${environment}`],
    reissue: false,
    actor: 'test:responder',
    dryRun,
  });
  return planned;
}

describe('local revocation runner: plan → batches → report', () => {
  it('revokes every target in batches of 25, as many at once as the CDK derives, and writes the report', async () => {
    // prepare: 15 identities of two versions each, 30 targets: two batches.
    const { environment, identities } = await kvFleet(15);
    const planned = await storedCampaign(environment);
    expect(planned.status).toBe('stored');
    const campaignId = planned.status === 'stored' ? planned.campaign.campaignId : '';
    const runner = new LocalRevocationRunner({ services, actor: 'test:runner', bucket, retry: noWait });
    const progress: number[] = [];

    // act
    const result = await runner.run(campaignId, { onOutcome: (_t, { done }) => progress.push(done) });

    // assess: the shape of the state machine…
    expect(result.batches).toBe(Math.ceil(30 / REVOKE_BATCH_SIZE));
    expect(result.maxConcurrency).toBe(DEFAULT_RATE_LIMITS.iam.concurrency);
    expect(result.plan).toMatchObject({ bucket, count: 30, retryFailed: false });
    await expect(services.aws.s3.send(new HeadBucketCommand({ Bucket: bucket }))).resolves.toBeDefined();
    const listed = JSON.parse(
      (await (
        await services.aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: result.plan.key }))
      ).Body?.transformToString()) ?? '[]',
    ) as unknown[];
    expect(listed).toHaveLength(30);
    // …its outcome on OpenBao itself and in the store…
    for (const identity of identities) expect(await liveVersions(identity)).toBe(0);
    expect(result.stopped).toBe(false);
    expect(result.campaign.status).toBe('completed');
    expect(result.targets.every((t) => t.outcome === 'revoked')).toBe(true);
    // …progress counted over the whole campaign, across batches…
    expect(progress.sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // …and the report, recorded on the campaign.
    expect(result.report?.html).toMatch(/report\.html$/);
    expect(result.campaign.reportLocation).toBe(result.report?.html);
  });

  it('completes a campaign with nothing to revoke: zero batches, started and completed, reported completed', async () => {
    // prepare: every target settled at planning (an identity with nothing recorded), as the CLI stores it.
    const planned = await planNothingToRevoke({ services, vault }, prefix, 'env');
    expect(planned.targets.filter((t) => t.outcome === 'pending')).toEqual([]);
    await services.store.createCampaign(planned.campaign, planned.targets);
    const runner = new LocalRevocationRunner({ services, actor: 'test:runner', bucket, retry: noWait });

    // act
    const result = await runner.run(planned.campaign.campaignId);

    // assess
    expect([result.plan.count, result.batches, result.stopped]).toEqual([0, 0, false]);
    expect(result.campaign).toMatchObject({ status: 'completed' });
    expect(result.campaign.startedAt).toBeDefined();
    expect(result.campaign.finishedAt).toBeDefined();
    const events = (await services.store.readAll()).records
      .filter((r) => r.details.campaignId === planned.campaign.campaignId)
      .map((r) => r.type);
    expect(events[0]).toBe('campaign.started');
    expect(events.at(-1)).toBe('campaign.completed');
    const report = JSON.parse(readFileSync(result.report?.json ?? '', 'utf8')) as {
      campaign: { status: string };
    };
    expect(report.campaign.status).toBe('completed');
  });

  it('stops after the targets in flight when its signal aborts, and a second run finishes without repeating any', async () => {
    const { environment, identities } = await kvFleet(3);
    const planned = await storedCampaign(environment);
    const campaignId = planned.status === 'stored' ? planned.campaign.campaignId : '';
    const stop = new AbortController();
    // The signal aborts as the first revoke reaches the provider: the revokes under way finish,
    // and each identity's next version is left pending.
    let revokes = 0;
    const stopping: Services = {
      ...services,
      campaignDeps: (actor, overrides) => {
        const deps = services.campaignDeps(actor, overrides);
        const providerFor = deps.rotation.providerFor;
        return {
          ...deps,
          rotation: {
            ...deps.rotation,
            providerFor: (identity) =>
              new Proxy(providerFor(identity), {
                get: (provider, key) =>
                  key === 'revoke'
                    ? (handle: string) => {
                        revokes += 1;
                        if (revokes === 1) stop.abort();
                        return provider.revoke(handle);
                      }
                    : Reflect.get(provider, key),
              }),
          },
        };
      },
    };
    const first = await new LocalRevocationRunner({
      services: stopping,
      actor: 'test:runner',
      bucket,
      retry: noWait,
    }).run(campaignId, { signal: stop.signal });
    const runner = new LocalRevocationRunner({ services, actor: 'test:runner', bucket, retry: noWait });
    const second = await runner.run(campaignId);

    expect(first.stopped).toBe(true);
    expect(first.report).toBeUndefined();
    expect(first.targets.some((t) => t.outcome === 'pending')).toBe(true);
    expect(second.stopped).toBe(false);
    expect(second.plan.count).toBe(first.targets.filter((t) => t.outcome === 'pending').length);
    // Each target claimed once in all: nothing revoked twice.
    expect(second.targets.map((t) => [t.outcome, t.attempts])).toEqual(
      second.targets.map(() => ['revoked', 1]),
    );
    for (const identity of identities) expect(await liveVersions(identity)).toBe(0);
    expect(second.report).toBeDefined();
  });
});

describe('local campaign launcher', () => {
  it('runs a stored campaign in the background and refuses a second launch while it runs', async () => {
    const { environment, identities } = await kvFleet(2);
    const planned = await storedCampaign(environment);
    const campaignId = planned.status === 'stored' ? planned.campaign.campaignId : '';
    const logged: string[] = [];
    const launcher = new LocalCampaignLauncher({
      runner: new LocalRevocationRunner({ services, actor: 'slack:U123', bucket, retry: noWait }),
      campaigns: services.store,
      log: (line) => logged.push(line),
    });

    await launcher.launch(campaignId);
    await expect(launcher.launch(campaignId)).rejects.toThrow(ConflictError);
    await launcher.idle();

    const campaign = await services.store.getCampaign(campaignId);
    expect(campaign?.status).toBe('completed');
    expect(campaign?.reportLocation).toMatch(/report\.html$/);
    for (const identity of identities) expect(await liveVersions(identity)).toBe(0);
    expect(logged).toEqual([]);
  });

  it('records a failed run on the campaign and logs why', async () => {
    // A dry run stored by hand: the plan step refuses it, so the run throws.
    const { environment } = await kvFleet(1);
    const planned = await storedCampaign(environment, true);
    expect(planned.status).toBe('dry-run');
    const incident = newIncident();
    const { planCampaign } = await import('../../functions/core/campaign.ts');
    const plan = planCampaign({
      campaignId: `${incident}-dry`,
      incident,
      selectors: [`env=${environment}`],
      requestedBy: 'test',
      now: new Date().toISOString(),
      reissue: false,
      dryRun: true,
      subjects: [],
    });
    await services.store.createCampaign(plan.campaign, plan.targets);
    const logged: string[] = [];
    const launcher = new LocalCampaignLauncher({
      runner: new LocalRevocationRunner({ services, actor: 'slack:U123', bucket, retry: noWait }),
      campaigns: services.store,
      log: (line) => logged.push(line),
    });

    await launcher.launch(plan.campaign.campaignId);
    await launcher.idle();

    expect((await services.store.getCampaign(plan.campaign.campaignId))?.status).toBe('failed');
    expect(logged.join('\n')).toMatch(
      /the revocation run failed \(ValidationError: .*dry run.*revoke resume/,
    );
  });
});

describe('local revocation runner: store requests', () => {
  it('costs at most 0.5 DynamoDB requests per target over plan → batches → report, for 300 mixed targets', async () => {
    // prepare: 300 mixed targets on the servers and recorded in the store, planned as the CLI plans them
    const fleet = await buildFleet({ services, vault }, 300);
    const incident = newIncident();
    const planned = testPlan({
      campaignId: `${incident}-requests`,
      incident,
      selectors: [fleet.selector],
      subjects: fleet.subjects,
    });
    const { campaignId } = planned.campaign;
    await services.store.createCampaign(planned.campaign, planned.targets);
    // Every DynamoDB request the adapters send from here on, by command.
    const sent = new Map<string, number>();
    const { dynamodb } = services.aws;
    dynamodb.middlewareStack.add(
      (next, context) => (args) => {
        const command = context.commandName ?? 'unknown';
        sent.set(command, (sent.get(command) ?? 0) + 1);
        return next(args);
      },
      { step: 'initialize', name: 'countCampaignRequests' },
    );
    const runner = new LocalRevocationRunner({ services, actor: 'test:runner', bucket, retry: noWait });

    // act
    const result = await runner
      .run(campaignId)
      .finally(() => dynamodb.middlewareStack.remove('countCampaignRequests'));

    // assess: every target settled, the campaign completed and reported…
    expect(result.targets.filter((t) => !['revoked', 'already-revoked'].includes(t.outcome))).toEqual([]);
    expect(result.campaign.status).toBe('completed');
    expect(await stillLive({ services, vault }, fleet, incident)).toEqual([]);
    // …for at most half a DynamoDB request per target: a worker reads its batch by key, not the campaign
    const requests = [...sent.values()].reduce((a, b) => a + b, 0);
    console.log(
      `${planned.targets.length} targets in ${result.batches} batches: ${requests} DynamoDB requests (${(requests / planned.targets.length).toFixed(2)} per target) ${JSON.stringify(Object.fromEntries(sent))}`,
    );
    expect(sent.get('QueryCommand') ?? 0).toBeLessThan(result.batches);
    expect(requests / planned.targets.length).toBeLessThanOrEqual(0.5);
  });
});
