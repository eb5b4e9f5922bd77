import { type Campaign, CampaignSchema, ReissueRecordSchema, TargetSchema } from '../../core/campaign.ts';
import { ConflictError } from '../../core/errors.ts';
import type { CampaignStore, StoredCampaign } from '../../core/ports.ts';
import { type DynamoTable, type Item, Keys } from './dynamodb-table.ts';

/**
 * Revocation campaigns, each in its own partition (`CAMPAIGN#<id>`): the revisioned
 * campaign item, one item per target, one per re-issued identity. Campaigns are listed
 * newest first through index `gsi1` (`CAMPAIGNS`).
 */
export function dynamoCampaignStore(table: DynamoTable): CampaignStore {
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

    async listCampaigns() {
      return (await table.queryIndex('CAMPAIGNS')).map(toStoredCampaign);
    },

    async listTargets(campaignId) {
      const items = await table.query(`CAMPAIGN#${campaignId}`, 'TARGET#');
      return items.map(({ pk: _pk, sk: _sk, writeId: _w, ...rest }) => TargetSchema.parse(rest));
    },

    putTarget(campaignId, target, expectedAttempts) {
      return table.putOwn(
        Keys.target(campaignId, target.targetId),
        TargetSchema.parse(target),
        {
          expression: '#attempts = :attempts AND (#outcome = :pending OR #outcome = :failed)',
          names: { '#attempts': 'attempts', '#outcome': 'outcome' },
          values: { ':attempts': expectedAttempts, ':pending': 'pending', ':failed': 'failed' },
        },
        (cause) =>
          new ConflictError(
            `target ${target.targetId} of campaign ${campaignId} was settled or tried by another run (expected ${expectedAttempts} attempts and an open outcome); its record stands`,
            { cause },
          ),
      );
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

/** The campaign fields of an item, without the table's own attributes. */
function toStoredCampaign(item: Item): StoredCampaign {
  const { pk: _pk, sk: _sk, gsi1pk: _p, gsi1sk: _s, writeId: _w, rev, ...rest } = item;
  return { ...CampaignSchema.parse(rest), rev: Number(rev) };
}
