import { ExposureRecordSchema } from '../../core/exposure-record.ts';
import type { ExposureStore } from '../../core/ports.ts';
import type { DynamoTable, Item } from './dynamodb-table.ts';

/** An exposed credential's item: `EXPOSURE#<fingerprint>` / `EXPOSURE` (one per fingerprint, kept). */
export const exposureKey = (fingerprint: string) => ({ pk: `EXPOSURE#${fingerprint}`, sk: 'EXPOSURE' });

const recordOf = (item: Item) => {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return ExposureRecordSchema.parse(rest);
};

/**
 * Exposed managed credentials on the state table, one item per fingerprint: the first sighting
 * is a conditional put and the right to contain a conditional claim with a lease, so two
 * scanners that see the same leak at once contain it once.
 */
export function dynamoExposureStore(table: DynamoTable): ExposureStore {
  return {
    recordExposure(record) {
      const parsed = ExposureRecordSchema.parse(record);
      return table.putIf(
        { ...exposureKey(parsed.fingerprint), ...parsed },
        { expression: 'attribute_not_exists(pk)' },
      );
    },

    async getExposure(fingerprint) {
      const item = await table.get(exposureKey(fingerprint));
      return item ? recordOf(item) : undefined;
    },

    async claimContainment(fingerprint, claim) {
      // Not ended by an earlier containment (none ran, or it failed), and no live claim: ISO
      // times of one format (toISOString) compare as strings.
      const item = await table.updateReturning(
        exposureKey(fingerprint),
        {
          expression: 'SET claimedUntil = :until',
          values: { ':until': claim.until, ':at': claim.at, ':failed': 'failed' },
        },
        'attribute_exists(pk) AND (attribute_not_exists(outcome) OR outcome = :failed) AND (attribute_not_exists(claimedUntil) OR claimedUntil < :at)',
      );
      return item ? recordOf(item) : undefined;
    },

    async releaseContainment(fingerprint, failedAt) {
      await table.updateIf(
        exposureKey(fingerprint),
        {
          expression: 'SET failedAt = if_not_exists(failedAt, :failed) REMOVE claimedUntil',
          values: { ':failed': failedAt },
        },
        'attribute_exists(pk)',
      );
    },

    async markContained(fingerprint, result) {
      const failed = result.outcome === 'failed';
      await table.updateIf(
        exposureKey(fingerprint),
        {
          expression: `SET campaignId = :campaign, outcome = :outcome, containedAt = :at${failed ? ', failedAt = if_not_exists(failedAt, :at)' : ''} REMOVE claimedUntil`,
          values: { ':campaign': result.campaignId, ':outcome': result.outcome, ':at': result.containedAt },
        },
        'attribute_exists(pk)',
      );
    },
  };
}
