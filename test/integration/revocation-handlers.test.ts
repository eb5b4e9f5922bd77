import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { providerLimiters } from '../../functions/adapters/rate-limits.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { targetsKey } from '../../functions/core/revocation-steps.ts';
import { rotateIdentity } from '../../functions/core/rotation.ts';
import {
  makePlanHandler,
  makeReportHandler,
  makeRevokeBatchHandler,
} from '../../functions/handlers/revocation.ts';
import { declaredKvIdentity, newIncident, planNothingToRevoke, testPlan } from '../support/campaigns.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { newVaultClient, uniqueName } from '../support/stack.ts';

let services: Services;
let vault: VaultClient;
const bucket = uniqueName('kw-revocation');
const prefix = uniqueName('kw-sfn');

beforeAll(async () => {
  services = await wireLocal(localConfig('kw-revocation', { reportBucket: bucket }));
  vault = newVaultClient();
  await services.aws.s3.send(new CreateBucketCommand({ Bucket: bucket }));
});

/** What the plan step is given in the Lambda: the store, the clock, who acts, the bucket. */
const planDeps = () => ({
  book: {
    campaigns: services.store,
    audit: services.store,
    clock: services.clock,
    actor: 'test:stepfunctions',
  },
  putObject: services.putObject,
  bucket,
});

/** A vault-kv identity declared in the inventory and rotated once, so it has two live versions. */
async function kvIdentity(environment: string): Promise<Identity> {
  const identity = await declaredKvIdentity({ services, vault }, prefix, environment);
  const outcome = await rotateIdentity(services.rotationDeps('setup'), identity, { owner: 'setup' });
  expect(outcome.status, outcome.reason).toBe('rotated');
  return identity;
}

/** Whether any KV version of the identity is still readable (not destroyed). */
async function liveVersions(identity: Identity): Promise<number> {
  const path = identity.kind === 'vault-kv' ? identity.scope.path : '';
  const metadata = await vault.read(`secret/metadata/${path}`);
  const versions = (metadata?.data?.versions ?? {}) as Record<string, { destroyed: boolean }>;
  return Object.values(versions).filter((v) => !v.destroyed).length;
}

describe('revocation handlers: plan → revoke batch → report', () => {
  it('revokes every planned target of the batch and writes the report to S3', async () => {
    // prepare: a stored campaign over three vault-kv identities, as the CLI leaves it.
    const environment = uniqueName('prod');
    const identities = await Promise.all([1, 2, 3].map(() => kvIdentity(environment)));
    const subjects = await Promise.all(
      identities.map(async (identity) => ({
        identity,
        versions: await services.store.listVersions(identity.id),
      })),
    );
    const incident = newIncident();
    const planned = testPlan({
      campaignId: `${incident}-sfn`,
      incident,
      selectors: [`env=${environment}`],
      subjects,
    });
    const { campaignId } = planned.campaign;
    await services.store.createCampaign(planned.campaign, planned.targets);

    // act: the plan step writes the target list the Distributed Map reads.
    const plan = await makePlanHandler(planDeps())({
      campaignId,
    });
    expect(plan).toEqual({
      bucket,
      key: targetsKey(campaignId),
      count: planned.targets.length,
      retryFailed: false,
    });
    const listed = JSON.parse(
      (await (
        await services.aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: plan.key }))
      ).Body?.transformToString()) ?? '[]',
    ) as { targetId: string }[];
    expect(listed.map((item) => item.targetId).sort()).toEqual(planned.targets.map((t) => t.targetId).sort());

    // act: one batch, as the ItemBatcher hands it to the worker.
    const batch = await makeRevokeBatchHandler({
      campaign: services.campaignDeps('test:stepfunctions'),
      limitFor: providerLimiters().limitFor,
    })({ Items: listed, BatchInput: { campaignId } });
    expect(batch.outcomes.revoked).toBe(listed.length);
    expect(batch.outcomes.pending).toBe(0);

    // act: the report step.
    const locations = await makeReportHandler({ services, actor: 'test:stepfunctions' })({ campaignId });

    // assess: revoked on OpenBao itself, settled in the store, the report in the bucket.
    for (const identity of identities) expect(await liveVersions(identity)).toBe(0);
    const targets = await services.store.listTargets(campaignId);
    expect(targets.every((t) => t.outcome === 'revoked')).toBe(true);
    expect((await services.store.getCampaign(campaignId))?.status).toBe('completed');
    for (const location of Object.values(locations)) {
      const key = location.replace(`s3://${bucket}/`, '');
      expect(key.startsWith(`reports/${incident}/${campaignId}/`)).toBe(true);
      await expect(
        services.aws.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })),
      ).resolves.toBeDefined();
    }
  });

  it('completes a campaign with nothing to revoke: zero items, no batch, the report step closes it', async () => {
    // prepare: a stored campaign whose every target the plan settled (an identity with nothing recorded).
    const planned = await planNothingToRevoke({ services, vault }, prefix, 'prod');
    const { campaignId } = planned.campaign;
    expect(planned.targets.length).toBeGreaterThan(0);
    expect(planned.targets.filter((t) => t.outcome === 'pending')).toEqual([]);
    await services.store.createCampaign(planned.campaign, planned.targets);

    // act: plan (zero items: the Distributed Map runs no batch), then report.
    const plan = await makePlanHandler(planDeps())({
      campaignId,
    });
    const locations = await makeReportHandler({ services, actor: 'test:stepfunctions' })({ campaignId });
    await makeReportHandler({ services, actor: 'test:stepfunctions' })({ campaignId });

    // assess: completed with its timings and its events, once; the report says completed.
    expect(plan.count).toBe(0);
    const campaign = await services.store.getCampaign(campaignId);
    expect(campaign?.status).toBe('completed');
    expect(campaign?.startedAt).toBeDefined();
    expect(campaign?.finishedAt).toBeDefined();
    const events = (await services.store.readAll()).records
      .filter((r) => r.details.campaignId === campaignId)
      .map((r) => [r.type, r.actor]);
    expect(events).toEqual([
      ['campaign.started', 'test:stepfunctions'],
      ...planned.targets.map(() => ['campaign.target', 'test:stepfunctions']),
      ['campaign.completed', 'test:stepfunctions'],
    ]);
    const report = JSON.parse(
      (await (
        await services.aws.s3.send(
          new GetObjectCommand({ Bucket: bucket, Key: locations.json.replace(`s3://${bucket}/`, '') }),
        )
      ).Body?.transformToString()) ?? '{}',
    ) as { campaign: { status: string; durationMs?: number } };
    expect(report.campaign.status).toBe('completed');
    expect(report.campaign.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('refuses to plan a dry run, and a batch naming targets the campaign does not have', async () => {
    // prepare: a stored dry run, and a stored real campaign.
    const environment = uniqueName('prod');
    const identity = await kvIdentity(environment);
    const subjects = [{ identity, versions: await services.store.listVersions(identity.id) }];
    const incident = newIncident();
    const common = { incident, selectors: [`env=${environment}`], subjects };
    const dry = testPlan({ ...common, campaignId: `${incident}-dry`, dryRun: true });
    const real = testPlan({ ...common, campaignId: `${incident}-real` });
    await services.store.createCampaign(dry.campaign, dry.targets);
    await services.store.createCampaign(real.campaign, real.targets);
    const plan = makePlanHandler(planDeps());
    const worker = makeRevokeBatchHandler({
      campaign: services.campaignDeps('test:stepfunctions'),
      limitFor: providerLimiters().limitFor,
    });

    // act + assess
    await expect(plan({ campaignId: dry.campaign.campaignId })).rejects.toThrow(/is a dry run/);
    await expect(
      worker({ Items: [{ targetId: 'not-a-target' }], BatchInput: { campaignId: real.campaign.campaignId } }),
    ).rejects.toThrow(/has no targets "not-a-target"/);
    // Nothing was claimed.
    expect((await services.store.listTargets(real.campaign.campaignId)).map((t) => t.attempts)).toEqual(
      real.targets.map(() => 0),
    );
  });

  it('rejects a batch that is not a Distributed Map batch, naming the bad field', async () => {
    const handler = makeRevokeBatchHandler({
      campaign: services.campaignDeps('test:stepfunctions'),
      limitFor: providerLimiters().limitFor,
    });
    await expect(handler({ Items: [], BatchInput: { campaignId: 'x' } })).rejects.toThrow(/Items/);
  });
});
