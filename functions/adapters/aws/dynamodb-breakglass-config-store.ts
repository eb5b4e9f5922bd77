import { BreakglassConfigSchema } from '../../core/grant.ts';
import type { BreakglassConfigStore, Clock } from '../../core/ports.ts';
import { type DynamoTable, Keys } from './dynamodb-table.ts';

/** The inventory's `breakglass` section as last synced: one item, the config as JSON text. */
export function dynamoBreakglassConfigStore(table: DynamoTable, clock: Clock): BreakglassConfigStore {
  return {
    async putBreakglassConfig(config) {
      const parsed = BreakglassConfigSchema.parse(config);
      await table.put({
        ...Keys.breakglassConfig,
        config: JSON.stringify(parsed),
        syncedAt: clock.now().toISOString(),
      });
    },

    async getBreakglassConfig() {
      const item = await table.get(Keys.breakglassConfig);
      return BreakglassConfigSchema.parse(item ? JSON.parse(String(item.config)) : {});
    },
  };
}
