import type {
  AuditLog,
  CampaignShortcuts,
  CampaignStore,
  FindingStore,
  GrantStore,
  IdentityStore,
  RotationStore,
  VersionShortcuts,
  VersionsOfMany,
} from '../../core/ports.ts';
import { type DynamoAuditLogProps, dynamoAuditLog } from './dynamodb-audit-log.ts';
import { dynamoCampaignStore } from './dynamodb-campaign-store.ts';
import { dynamoFindingStore } from './dynamodb-finding-store.ts';
import { dynamoGrantStore } from './dynamodb-grant-store.ts';
import { dynamoIdentityStore } from './dynamodb-identity-store.ts';
import { dynamoRotationStore } from './dynamodb-rotation-store.ts';
import { DynamoTable, type DynamoTableProps } from './dynamodb-table.ts';

/** The table's layout, for tests and benches that read or write items directly. */
export { Keys } from './dynamodb-table.ts';

export type DynamoStoreProps = DynamoTableProps & DynamoAuditLogProps;

/** Every port the state store implements on its one table. */
export type DynamoStorePorts = IdentityStore &
  AuditLog &
  FindingStore &
  RotationStore &
  VersionShortcuts &
  VersionsOfMany &
  GrantStore &
  CampaignStore &
  CampaignShortcuts;

/**
 * The state store on one DynamoDB table: identities, audit chain, findings, credential
 * versions and rotations, grants, campaigns. Each port lives in its own file over the
 * table layer (dynamodb-table.ts, which also documents the layout); this only composes them.
 */
export type DynamoStore = DynamoStorePorts;

/** Builds the {@link DynamoStore} over one table. */
export function dynamoStore(props: DynamoStoreProps): DynamoStore {
  const table = new DynamoTable(props);
  return {
    ...dynamoIdentityStore(table),
    ...dynamoAuditLog(table, props),
    ...dynamoFindingStore(table),
    ...dynamoRotationStore(table),
    ...dynamoGrantStore(table),
    ...dynamoCampaignStore(table),
  };
}
