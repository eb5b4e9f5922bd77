import type { Clock, DeliveryLedger } from '../../core/ports.ts';
import { type DynamoTable, Keys } from './dynamodb-table.ts';

/**
 * Deliveries already handled, one item each. The item's `expiresAt` (epoch seconds) is the
 * table's TTL attribute; the ledger also checks it itself, since TTL deletion is lazy (and
 * never happens on moto).
 */
export function dynamoDeliveryLedger(table: DynamoTable, clock: Clock): DeliveryLedger {
  return {
    firstDelivery(key, keepSeconds) {
      const now = Math.floor(clock.now().getTime() / 1000);
      return table.putIf(
        { ...Keys.delivery(key), expiresAt: now + keepSeconds },
        { expression: 'attribute_not_exists(pk) OR expiresAt < :now', values: { ':now': now } },
      );
    },
  };
}
