import type { BreakglassConfigStore, Clock, DeliveryLedger } from '../../core/ports.ts';
import { dynamoBreakglassConfigStore } from './dynamodb-breakglass-config-store.ts';
import { dynamoDeliveryLedger } from './dynamodb-delivery-ledger.ts';
import { composedOf } from './dynamodb-store.ts';
import { DynamoTable, type DynamoTableProps } from './dynamodb-table.ts';

export type DynamoBreakglassStoreProps = DynamoTableProps & { clock: Clock };

/**
 * The break-glass configuration and the Slack delivery ledger, on the same single table
 * as everything else (the layout is in dynamodb-table.ts).
 */
export class DynamoBreakglassStore extends composedOf<BreakglassConfigStore & DeliveryLedger>() {
  constructor(props: DynamoBreakglassStoreProps) {
    const table = new DynamoTable(props);
    super({
      ...dynamoBreakglassConfigStore(table, props.clock),
      ...dynamoDeliveryLedger(table, props.clock),
    });
  }
}
