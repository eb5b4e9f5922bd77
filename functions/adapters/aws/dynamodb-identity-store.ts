import { IdentitySchema } from '../../core/identity.ts';
import type { IdentityStore, StoredIdentity } from '../../core/ports.ts';
import { type DynamoTable, type Item, Keys } from './dynamodb-table.ts';

/** The inventory on the state table: one revisioned item per declared identity. */
export function dynamoIdentityStore(table: DynamoTable): IdentityStore {
  return {
    async getIdentity(id) {
      const item = await table.get(Keys.identity(id));
      return item ? toStoredIdentity(item) : undefined;
    },

    async getIdentities(ids) {
      const items = await table.batchGet(ids.map(Keys.identity), `${ids.length} identities`);
      return items.map(toStoredIdentity);
    },

    async listIdentities() {
      return (await table.query('INVENTORY', 'IDENTITY#')).map(toStoredIdentity);
    },

    putIdentity(record, expectedRev) {
      return table.putRevisioned(
        Keys.identity(record.identity.id),
        record,
        expectedRev,
        `identity ${record.identity.id}`,
      );
    },
  };
}

/** An inventory item as the identity record it stores. */
export function toStoredIdentity(item: Item): StoredIdentity {
  const record: StoredIdentity = {
    identity: IdentitySchema.parse(item.identity),
    status: item.status === 'retired' ? 'retired' : 'active',
    declarationHash: String(item.declarationHash),
    rev: Number(item.rev),
    syncedAt: String(item.syncedAt),
  };
  if (typeof item.retiredAt === 'string') record.retiredAt = item.retiredAt;
  return record;
}
