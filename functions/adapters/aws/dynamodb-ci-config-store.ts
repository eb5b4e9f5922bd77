import { CiConfigSchema } from '../../core/ci-policy.ts';
import type { CiConfigStore, Clock } from '../../core/ports.ts';
import { type DynamoTable, Keys } from './dynamodb-table.ts';

/** The inventory's `ci` section as last synced: one item, the section as JSON text (as break-glass's config). */
export function dynamoCiConfigStore(table: DynamoTable, clock: Clock): CiConfigStore {
  return {
    async putCiConfig(config) {
      const parsed = CiConfigSchema.parse(config);
      await table.put({
        ...Keys.ciConfig,
        config: JSON.stringify(parsed),
        syncedAt: clock.now().toISOString(),
      });
    },

    async getCiConfig() {
      const item = await table.get(Keys.ciConfig);
      return item ? CiConfigSchema.parse(JSON.parse(String(item.config))) : undefined;
    },
  };
}
