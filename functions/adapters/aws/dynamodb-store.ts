import type {
  AuditLog,
  CampaignStore,
  FindingStore,
  GrantStore,
  IdentityStore,
  RotationStore,
  VersionShortcuts,
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

/**
 * A class whose instances carry the members of `parts` as their own. The per-port stores
 * are plain objects of closures, composed by spreading; this keeps their composition
 * constructible with `new`, typed as every port at once.
 */
export function composedOf<T extends object>(): new (parts: T) => T {
  return class {
    constructor(parts: T) {
      Object.assign(this, parts);
    }
  } as new (
    parts: T,
  ) => T;
}

export type DynamoStoreProps = DynamoTableProps & DynamoAuditLogProps;

/** Every port the state store implements on its one table. */
export type DynamoStorePorts = IdentityStore &
  AuditLog &
  FindingStore &
  RotationStore &
  VersionShortcuts &
  GrantStore &
  CampaignStore;

/**
 * The state store on one DynamoDB table: identities, audit chain, findings, credential
 * versions and rotations, grants, campaigns. Each port lives in its own file over the
 * table layer (dynamodb-table.ts, which also documents the layout); this only composes them.
 */
export class DynamoStore extends composedOf<DynamoStorePorts>() {
  constructor(props: DynamoStoreProps) {
    const table = new DynamoTable(props);
    super({
      ...dynamoIdentityStore(table),
      ...dynamoAuditLog(table, props),
      ...dynamoFindingStore(table),
      ...dynamoRotationStore(table),
      ...dynamoGrantStore(table),
      ...dynamoCampaignStore(table),
    });
  }
}
