import {
  type Campaign,
  CampaignSchema,
  ReissueRecordSchema,
  type Target,
  TargetSchema,
} from '../../core/campaign.ts';
import { ConflictError, NotFoundError } from '../../core/errors.ts';
import type { CampaignShortcuts, CampaignStore, StoredCampaign } from '../../core/ports.ts';
import { toStoredIdentity } from './dynamodb-identity-store.ts';
import { type DynamoTable, type Item, Keys } from './dynamodb-table.ts';

/**
 * Revocation campaigns, each in its own partition (`CAMPAIGN#<id>`): the revisioned
 * campaign item, one item per target, one per re-issued identity, one per batch lease
 * (`LEASE#<batch>`: its holder, until when, and the tries counted per target not yet
 * checkpointed, `try:<targetId>`). Campaigns are listed newest first through index `gsi1`.
 */
export function dynamoCampaignStore(table: DynamoTable): CampaignStore & CampaignShortcuts {
  const getCampaign = async (campaignId: string): Promise<StoredCampaign | undefined> => {
    const item = await table.get(Keys.campaign(campaignId));
    return item ? toStoredCampaign(item) : undefined;
  };

  /** Conditional on `expectedRev`; undefined (only when created): the campaign must not exist yet. */
  const putCampaign = async (
    campaign: Campaign,
    expectedRev: number | undefined,
  ): Promise<StoredCampaign> => {
    const parsed = CampaignSchema.parse(campaign);
    return table.putRevisionedIndexed(
      Keys.campaign(parsed.campaignId),
      parsed,
      { pk: 'CAMPAIGNS', sk: `${parsed.createdAt}#${parsed.campaignId}` },
      expectedRev,
      `campaign ${parsed.campaignId}`,
    );
  };

  return {
    getCampaign,
    putCampaign,

    async createCampaign(campaign, targets) {
      const parsed = CampaignSchema.parse(campaign);
      if (await getCampaign(parsed.campaignId)) {
        throw new ConflictError(`campaign ${parsed.campaignId} exists already; plan it again under a new id`);
      }
      const items = targets.map((target) => ({
        ...Keys.target(parsed.campaignId, target.targetId),
        ...TargetSchema.parse(target),
      }));
      await table.batchPut(items, `the targets of campaign ${parsed.campaignId}`);
      // The campaign goes in last, so a reader that finds it finds every target.
      return putCampaign(parsed, undefined);
    },

    async addTargets(campaignId, targets) {
      if (!(await getCampaign(campaignId))) {
        throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)} to add targets to`);
      }
      await table.batchPut(
        targets.map((target) => ({
          ...Keys.target(campaignId, target.targetId),
          ...TargetSchema.parse(target),
        })),
        `${targets.length} more targets of campaign ${campaignId}`,
      );
    },

    async listCampaigns() {
      return (await table.queryIndex('CAMPAIGNS')).map(toStoredCampaign);
    },

    async listTargets(campaignId) {
      return (await table.query(`CAMPAIGN#${campaignId}`, 'TARGET#')).map(targetOf);
    },

    async getTargets(campaignId, targetIds) {
      const items = await table.batchGet(
        targetIds.map((id) => Keys.target(campaignId, id)),
        `${targetIds.length} targets of campaign ${campaignId}`,
      );
      return items.map(targetOf);
    },

    async readBatchWork(campaignId, targetIds, identityIds) {
      const items = await table.batchGet(
        [
          Keys.campaign(campaignId),
          ...targetIds.map((id) => Keys.target(campaignId, id)),
          ...identityIds.map(Keys.identity),
        ],
        `campaign ${campaignId}, ${targetIds.length} of its targets and their identities`,
      );
      const campaignKey = Keys.campaign(campaignId);
      const campaign = items.find((item) => item.pk === campaignKey.pk && item.sk === campaignKey.sk);
      return {
        campaign: campaign && toStoredCampaign(campaign),
        targets: items
          .filter((item) => item.pk === campaignKey.pk && String(item.sk).startsWith('TARGET#'))
          .map(targetOf),
        identities: items.filter((item) => item.pk === Keys.identity('').pk).map(toStoredIdentity),
      };
    },

    async listTargetsOf(campaignId, identityId) {
      // The prefix may also match an identity whose id extends this one's with a colon.
      const items = await table.query(`CAMPAIGN#${campaignId}`, `TARGET#${identityId}:`);
      return items.map(targetOf).filter((target) => target.identityId === identityId);
    },

    async leaseBatch(campaignId, { batch, holder, now, expiresAt, tryIds }) {
      const key = Keys.lease(campaignId, batch);
      const tries = tryIds.map((id, i) => [`#t${i}`, `${TRY}${id}`] as const);
      const taken = await table.updateReturning(
        key,
        {
          expression: `SET holder = :holder, expiresAt = :expires${tries.map(([name]) => `, ${name} = if_not_exists(${name}, :zero) + :one`).join('')}`,
          // A lease without tries (a campaign's planning) names no attribute: DynamoDB refuses an empty map.
          ...(tries.length ? { names: Object.fromEntries(tries) } : {}),
          values: {
            ':holder': holder,
            ':expires': expiresAt,
            ':now': now,
            ...(tries.length ? { ':zero': 0, ':one': 1 } : {}),
          },
        },
        'attribute_not_exists(holder) OR expiresAt < :now OR holder = :holder',
      );
      if (!taken) {
        const held = await table.get(key);
        return { taken: false, holder: String(held?.holder ?? ''), expiresAt: Number(held?.expiresAt ?? 0) };
      }
      const items = await table.batchGet(
        tryIds.map((id) => Keys.target(campaignId, id)),
        `the targets of batch ${batch} of campaign ${campaignId}`,
      );
      return { taken: true, targets: items.map(targetOf), tries: triesOf(taken) };
    },

    renewBatch(campaignId, { batch, holder, expiresAt, tried }) {
      return table.updateIf(
        Keys.lease(campaignId, batch),
        {
          expression: `SET expiresAt = :expires${tried === undefined ? '' : ', #t = if_not_exists(#t, :zero) + :one'}`,
          ...(tried === undefined ? {} : { names: { '#t': `${TRY}${tried}` } }),
          values: {
            ':expires': expiresAt,
            ':holder': holder,
            ...(tried === undefined ? {} : { ':zero': 0, ':one': 1 }),
          },
        },
        'holder = :holder',
      );
    },

    async settleBatch(campaignId, { batch, holder, outcomes, done, untried }) {
      await table.batchPut(
        outcomes.map((target) => ({
          ...Keys.target(campaignId, target.targetId),
          ...TargetSchema.parse(target),
        })),
        `the outcomes of batch ${batch} of campaign ${campaignId}`,
      );
      const dropped = [...outcomes.map((t) => t.targetId), ...done].map(
        (id, i) => [`#d${i}`, `${TRY}${id}`] as const,
      );
      const lowered = untried.map((id, i) => [`#u${i}`, `${TRY}${id}`] as const);
      // False: the lease ran out and another run took it; what it does with the batch stands.
      await table.updateIf(
        Keys.lease(campaignId, batch),
        {
          expression: [
            `REMOVE holder, expiresAt${dropped.map(([name]) => `, ${name}`).join('')}`,
            ...(lowered.length
              ? [`SET ${lowered.map(([name]) => `${name} = ${name} - :one`).join(', ')}`]
              : []),
          ].join(' '),
          // None for a lease without tries (a campaign's planning): DynamoDB refuses an empty map.
          ...(dropped.length + lowered.length ? { names: Object.fromEntries([...dropped, ...lowered]) } : {}),
          values: { ':holder': holder, ...(lowered.length ? { ':one': 1 } : {}) },
        },
        'holder = :holder',
      );
    },

    async listBatchLeases(campaignId) {
      const items = await table.query(`CAMPAIGN#${campaignId}`, 'LEASE#');
      return items
        .map((item) => ({
          batch: String(item.sk).slice('LEASE#'.length),
          ...(item.holder === undefined ? {} : { holder: String(item.holder) }),
          ...(item.expiresAt === undefined ? {} : { expiresAt: Number(item.expiresAt) }),
          tries: triesOf(item),
        }))
        .filter((lease) => lease.holder !== undefined || Object.values(lease.tries).some((n) => n > 0));
    },

    async putReissue(campaignId, record) {
      await table.put({
        ...Keys.reissue(campaignId, record.identityId),
        ...ReissueRecordSchema.parse(record),
      });
    },

    async listReissues(campaignId) {
      const items = await table.query(`CAMPAIGN#${campaignId}`, 'REISSUE#');
      return items.map(({ pk: _pk, sk: _sk, ...rest }) => ReissueRecordSchema.parse(rest));
    },
  };
}

/** A lease item's attribute counting the tries of one target not yet checkpointed. */
const TRY = 'try:';

/** The tries a lease item counts, per target id. */
function triesOf(item: Item): Record<string, number> {
  return Object.fromEntries(
    Object.entries(item)
      .filter(([name]) => name.startsWith(TRY))
      .map(([name, count]) => [name.slice(TRY.length), Number(count)]),
  );
}

/** A target item as the target it stores. */
function targetOf({ pk: _pk, sk: _sk, writeId: _w, ...rest }: Item): Target {
  return TargetSchema.parse(rest);
}

/** The campaign fields of an item, without the table's own attributes. */
function toStoredCampaign(item: Item): StoredCampaign {
  const { pk: _pk, sk: _sk, gsi1pk: _p, gsi1sk: _s, writeId: _w, rev, ...rest } = item;
  return { ...CampaignSchema.parse(rest), rev: Number(rev) };
}
