import type { BreakglassConfigStore, CiConfigStore, Clock, DeliveryLedger } from '../../core/ports.ts';
import { dynamoBreakglassConfigStore } from './dynamodb-breakglass-config-store.ts';
import { dynamoCiConfigStore } from './dynamodb-ci-config-store.ts';
import { dynamoDeliveryLedger } from './dynamodb-delivery-ledger.ts';
import { DynamoTable, type DynamoTableProps } from './dynamodb-table.ts';

export type DynamoBreakglassStoreProps = DynamoTableProps & { clock: Clock };

/**
 * The break-glass store: the break-glass and CI configurations (the inventory's sections) and the
 * Slack delivery ledger, on the same single table as everything else (the layout is in dynamodb-table.ts).
 */
export type DynamoBreakglassStore = BreakglassConfigStore & CiConfigStore & DeliveryLedger;

/** Builds the {@link DynamoBreakglassStore} over the table. */
export function dynamoBreakglassStore(props: DynamoBreakglassStoreProps): DynamoBreakglassStore {
  const table = new DynamoTable(props);
  return {
    ...dynamoBreakglassConfigStore(table, props.clock),
    ...dynamoCiConfigStore(table, props.clock),
    ...dynamoDeliveryLedger(table, props.clock),
  };
}
