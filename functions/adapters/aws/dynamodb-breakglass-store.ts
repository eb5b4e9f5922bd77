/**
 * The break-glass configuration and the Slack delivery ledger, on the same single table
 * as everything else (see dynamodb-store.ts for the layout):
 *
 * | item                 | pk                  | sk        |
 * |----------------------|---------------------|-----------|
 * | break-glass config   | `BREAKGLASS`        | `CONFIG`  |
 * | a handled delivery   | `DELIVERY#<key>`    | `DELIVERY`|
 *
 * Deliveries carry a DynamoDB TTL attribute (`expiresAt`, epoch seconds); the ledger also
 * checks it itself, since TTL deletion is lazy (and never happens on moto).
 */
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { type BreakglassConfig, BreakglassConfigSchema } from '../../core/grant.ts';
import type { BreakglassConfigStore, Clock, DeliveryLedger } from '../../core/ports.ts';

export interface DynamoBreakglassStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  clock: Clock;
}

const CONFIG_KEY = { pk: 'BREAKGLASS', sk: 'CONFIG' };

export class DynamoBreakglassStore implements BreakglassConfigStore, DeliveryLedger {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #clock: Clock;

  constructor(options: DynamoBreakglassStoreOptions) {
    this.#doc = DynamoDBDocumentClient.from(options.client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.#table = options.tableName;
    this.#clock = options.clock;
  }

  async putBreakglassConfig(config: BreakglassConfig): Promise<void> {
    const parsed = BreakglassConfigSchema.parse(config);
    await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        Item: { ...CONFIG_KEY, config: JSON.stringify(parsed), syncedAt: this.#clock.now().toISOString() },
      }),
    );
  }

  async getBreakglassConfig(): Promise<BreakglassConfig> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: CONFIG_KEY, ConsistentRead: true }),
    );
    return BreakglassConfigSchema.parse(Item ? JSON.parse(String(Item.config)) : {});
  }

  async firstDelivery(key: string, keepSeconds: number): Promise<boolean> {
    const now = Math.floor(this.#clock.now().getTime() / 1000);
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: { pk: `DELIVERY#${key}`, sk: 'DELIVERY', expiresAt: now + keepSeconds },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
          ExpressionAttributeValues: { ':now': now },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
