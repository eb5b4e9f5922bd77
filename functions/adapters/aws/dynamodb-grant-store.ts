import { GrantSchema } from '../../core/grant.ts';
import type { GrantStore } from '../../core/ports.ts';
import { type DynamoTable, Keys } from './dynamodb-table.ts';

/** Break-glass grants, one revisioned item each, listed newest first through index `gsi1` (`GRANTS`). */
export function dynamoGrantStore(table: DynamoTable): GrantStore {
  return {
    async getGrant(grantId) {
      const item = await table.get(Keys.grant(grantId));
      if (!item) return undefined;
      return { ...GrantSchema.parse(item), rev: Number(item.rev) };
    },

    async putGrant(grant, expectedRev) {
      const parsed = GrantSchema.parse(grant);
      return table.putRevisionedIndexed(
        Keys.grant(grant.grantId),
        parsed,
        { pk: 'GRANTS', sk: `${parsed.requestedAt}#${parsed.grantId}` },
        expectedRev,
        `grant ${grant.grantId}`,
      );
    },

    async listGrants(filter = {}) {
      const grants = (await table.queryIndex('GRANTS')).map((item) => ({
        ...GrantSchema.parse(item),
        rev: Number(item.rev),
      }));
      return filter.states ? grants.filter((grant) => filter.states?.includes(grant.state)) : grants;
    },
  };
}
