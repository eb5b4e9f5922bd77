import { ExposureRecordSchema } from '../../core/exposure-record.ts';
import type { ExposureStore } from '../../core/ports.ts';
import type { DynamoTable } from './dynamodb-table.ts';

/** An exposed credential's item: `EXPOSURE#<fingerprint>` / `EXPOSURE` (one per fingerprint, kept). */
export const exposureKey = (fingerprint: string) => ({ pk: `EXPOSURE#${fingerprint}`, sk: 'EXPOSURE' });

/**
 * Exposed managed credentials on the state table, one item per fingerprint: the first sighting
 * is a conditional put, so two scanners that see the same leak at once contain it once.
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
      if (!item) return undefined;
      const { pk: _pk, sk: _sk, ...rest } = item;
      return ExposureRecordSchema.parse(rest);
    },

    async markContained(fingerprint, result) {
      await table.updateIf(
        exposureKey(fingerprint),
        {
          expression: 'SET campaignId = :campaign, outcome = :outcome, containedAt = :at',
          values: { ':campaign': result.campaignId, ':outcome': result.outcome, ':at': result.containedAt },
        },
        'attribute_exists(pk)',
      );
    },
  };
}
