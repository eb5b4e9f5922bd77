import { randomUUID } from 'node:crypto';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  paginateQuery,
  paginateScan,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { ConflictError, KeywardenError } from '../../core/errors.ts';
import { type DynamoWire, dynamoWireOf } from './dynamodb-wire.ts';

/**
 * The single-table layout. Every item has `pk` and `sk`; the partition says what it is.
 *
 * | item                 | pk                   | sk                 |
 * |----------------------|----------------------|--------------------|
 * | identity             | INVENTORY            | IDENTITY#<id>      |
 * | audit record         | AUDIT                | SEQ#<12-digit seq> |
 * | audit block          | AUDIT                | SEQ#<first seq>    |
 * | audit head           | AUDIT                | HEAD               |
 * | findings run         | FINDINGS#<runId>     | FINDING#<id>       |
 * | latest findings      | FINDINGS             | LATEST             |
 * | a finding's claim    | FINDING#CLAIM#<id>   | CLAIM              |
 * | credential ver.      | IDENTITY#<id>        | VERSION#<versionId>|
 * | rotation state, lock | IDENTITY#<id>        | ROTATION           |
 * | grant                | GRANT#<id>           | GRANT              |
 * | campaign             | CAMPAIGN#<id>        | CAMPAIGN           |
 * | campaign target      | CAMPAIGN#<id>        | TARGET#<targetId>  |
 * | re-issue record      | CAMPAIGN#<id>        | REISSUE#<identity> |
 * | batch lease          | CAMPAIGN#<id>        | LEASE#<batch>      |
 * | break-glass config   | BREAKGLASS           | CONFIG             |
 * | a handled delivery   | DELIVERY#<key>       | DELIVERY           |
 *
 * An audit block item holds a run of consecutive records (`records`, `lastSeq`,
 * `lastHash`), written in one put; see dynamodb-audit-log.ts.
 *
 * Index `gsi1` lists grants: gsi1pk `GRANTS`, gsi1sk `<requestedAt>#<id>`; and
 * campaigns: gsi1pk `CAMPAIGNS`, gsi1sk `<createdAt>#<id>`.
 *
 * Grants are also listed by state (`gsi2`: `GRANTS#STATE#<state>`, `<requestedAt>#<id>`), by
 * requester (`gsi3`: `GRANTS#BY#<kind>:<id>`, `<requestedAt>#<id>`), and, sparsely, while
 * something is due (`gsi4`: `GRANTS#SWEEP` or `GRANTS#REVIEW`, `<dueAt>#<id>`): the gsi4
 * attributes exist only while the sweeper has work on the grant or its review is pending, so
 * the sweeper's query never reads a finished grant. See dynamodb-grant-store.ts.
 *
 * Deliveries and findings carry the table's TTL attribute (`expiresAt`, epoch seconds).
 */
export const Keys = {
  identity: (id: string) => ({ pk: 'INVENTORY', sk: `IDENTITY#${id}` }),
  audit: (seq: number) => ({ pk: 'AUDIT', sk: `SEQ#${String(seq).padStart(12, '0')}` }),
  auditHead: { pk: 'AUDIT', sk: 'HEAD' },
  finding: (runId: string, id: string) => ({ pk: `FINDINGS#${runId}`, sk: `FINDING#${id}` }),
  latestFindings: { pk: 'FINDINGS', sk: 'LATEST' },
  findingClaim: (id: string) => ({ pk: `FINDING#CLAIM#${id}`, sk: 'CLAIM' }),
  version: (identityId: string, versionId: string) => ({
    pk: `IDENTITY#${identityId}`,
    sk: `VERSION#${versionId}`,
  }),
  rotation: (identityId: string) => ({ pk: `IDENTITY#${identityId}`, sk: 'ROTATION' }),
  grant: (grantId: string) => ({ pk: `GRANT#${grantId}`, sk: 'GRANT' }),
  campaign: (campaignId: string) => ({ pk: `CAMPAIGN#${campaignId}`, sk: 'CAMPAIGN' }),
  target: (campaignId: string, targetId: string) => ({
    pk: `CAMPAIGN#${campaignId}`,
    sk: `TARGET#${targetId}`,
  }),
  reissue: (campaignId: string, identityId: string) => ({
    pk: `CAMPAIGN#${campaignId}`,
    sk: `REISSUE#${identityId}`,
  }),
  lease: (campaignId: string, batch: string) => ({ pk: `CAMPAIGN#${campaignId}`, sk: `LEASE#${batch}` }),
  breakglassConfig: { pk: 'BREAKGLASS', sk: 'CONFIG' },
  ciConfig: { pk: 'CI', sk: 'CONFIG' },
  delivery: (key: string) => ({ pk: `DELIVERY#${key}`, sk: 'DELIVERY' }),
} as const;

/** The global secondary indexes, each keyed `<name>pk` / `<name>sk` (strings), projecting every attribute. */
export const STATE_INDEXES = ['gsi1', 'gsi2', 'gsi3', 'gsi4'] as const;
export type StateIndex = (typeof STATE_INDEXES)[number];

/** The primary key of an item. */
export interface Key {
  pk: string;
  sk: string;
}

/** An item as the document client reads and writes it. */
export type Item = Record<string, unknown>;

/** A condition (or update) expression with the names and values it refers to. */
export interface Expression {
  expression: string;
  names?: Record<string, string>;
  values?: Record<string, unknown>;
}

export interface DynamoTableProps {
  client: DynamoDBClient;
  tableName: string;
}

/** Items in one BatchWriteItem at most (DynamoDB's limit). */
const BATCH_SIZE = 25;
/** Keys in one BatchGetItem at most (DynamoDB's limit). */
const BATCH_GET_SIZE = 100;
/** BatchWriteItem requests of one `batchPut` in flight at once. */
const BATCH_PUTS_IN_FLIGHT = 4;

const expressionParts = (names?: Record<string, string>, values?: Record<string, unknown>) => ({
  ...(names ? { ExpressionAttributeNames: names } : {}),
  ...(values ? { ExpressionAttributeValues: values } : {}),
});

/**
 * How items are written: as the document client is configured below (undefined attributes left
 * out). Frozen, and the document client given a copy: it sets its own flags on the options
 * object it is handed (`convertTopLevelContainer`), which would change what `marshall` makes here.
 */
const MARSHALL = Object.freeze({ removeUndefinedValues: true, convertClassInstanceToMap: false });

/** An item (or expression values) in DynamoDB's attribute-value form. */
const toAttributes = (item: Record<string, unknown>): Record<string, AttributeValue> =>
  marshall(item, MARSHALL);

/** An item read in DynamoDB's attribute-value form, as the document client would answer it. */
const fromAttributes = (item: Record<string, AttributeValue>): Item => unmarshall(item);

/** {@link expressionParts} with the values in attribute-value form, for the low-level client. */
const rawExpressionParts = (names?: Record<string, string>, values?: Record<string, unknown>) => ({
  ...(names ? { ExpressionAttributeNames: names } : {}),
  ...(values ? { ExpressionAttributeValues: toAttributes(values) } : {}),
});

/** False when DynamoDB refused a write for its condition; any other failure is thrown. */
async function unlessConditionFails(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

/**
 * The few operations the per-port stores need, on one table: reads are consistent, queries
 * read every page, conditional writes answer whether their condition held.
 *
 * The operations every rotation makes (a partition's query, a conditional put, a get, the audit
 * trail's tail and appends) go on the client's wire (dynamodb-wire.ts, json-wire.ts: DynamoDB's JSON protocol
 * with the client's endpoint, credentials and retry, ~0.35 ms of CPU less per request than the
 * SDK's command on loopback, paid ~6 times per rotated identity), their items converted here with
 * the document client's own functions and options. The rest go through the document client.
 */
export class DynamoTable {
  /** The client's wire: the hot requests below, without the SDK's per-call machinery (dynamodb-wire.ts). */
  readonly #wire: DynamoWire;
  readonly #doc: DynamoDBDocumentClient;
  readonly #name: string;

  constructor(props: DynamoTableProps) {
    if (!props.tableName) throw new RangeError('DynamoTable: expected a table name, got an empty string');
    this.#wire = dynamoWireOf(props.client);
    this.#doc = DynamoDBDocumentClient.from(props.client, { marshallOptions: { ...MARSHALL } });
    this.#name = props.tableName;
  }

  async get(key: Key): Promise<Item | undefined> {
    const { Item } = await this.#wire.send('GetItem', {
      TableName: this.#name,
      Key: toAttributes({ ...key }),
      ConsistentRead: true,
    });
    return Item ? fromAttributes(Item) : undefined;
  }

  /** Every item of the partition `pk` (whose sort key starts with `skPrefix`), in sort-key order. */
  async query(pk: string, skPrefix?: string): Promise<Item[]> {
    const items: Item[] = [];
    for await (const page of this.pages(pk, skPrefix)) items.push(...page);
    return items;
  }

  /**
   * The items of the partition `pk` (whose sort key starts with `skPrefix`), in sort-key order,
   * a page (a Query's answer, up to 1 MB) at a time: a caller that keeps only some of each page
   * holds those, not the partition.
   */
  async *pages(pk: string, skPrefix?: string): AsyncGenerator<Item[]> {
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.#wire.send('Query', {
        TableName: this.#name,
        KeyConditionExpression: skPrefix ? 'pk = :pk AND begins_with(sk, :sk)' : 'pk = :pk',
        ExpressionAttributeValues: skPrefix
          ? { ':pk': { S: pk }, ':sk': { S: skPrefix } }
          : { ':pk': { S: pk } },
        ConsistentRead: true,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      });
      yield (page.Items ?? []).map(fromAttributes);
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  /** The item of the partition `pk` with the greatest sort key starting with `skPrefix`. */
  async last(pk: string, skPrefix: string): Promise<Item | undefined> {
    const { Items } = await this.#wire.send('Query', {
      TableName: this.#name,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :sk)',
      ExpressionAttributeValues: { ':pk': { S: pk }, ':sk': { S: skPrefix } },
      ScanIndexForward: false,
      Limit: 1,
      ConsistentRead: true,
    });
    const item = Items?.[0];
    return item ? fromAttributes(item) : undefined;
  }

  /**
   * The items of the partition `pk` whose sort key starts with `skPrefix`, greatest sort key
   * first, `pageSize` per request: a caller that stops iterating stops the reads, so reading
   * the end of a long partition costs only the pages it looks at.
   */
  async *queryBackwards(pk: string, skPrefix: string, pageSize = 25): AsyncGenerator<Item> {
    const pages = paginateQuery(
      { client: this.#doc, pageSize },
      {
        TableName: this.#name,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :sk)',
        ExpressionAttributeValues: { ':pk': pk, ':sk': skPrefix },
        ScanIndexForward: false,
        ConsistentRead: true,
      },
    );
    for await (const page of pages) yield* (page.Items ?? []) as Item[];
  }

  /** Every item listed under `gsi1pk` in index `gsi1`, newest (greatest gsi1sk) first. */
  async queryIndex(gsi1pk: string): Promise<Item[]> {
    const items: Item[] = [];
    const pages = paginateQuery(
      { client: this.#doc },
      {
        TableName: this.#name,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': gsi1pk },
        ScanIndexForward: false,
      },
    );
    for await (const page of pages) items.push(...((page.Items ?? []) as Item[]));
    return items;
  }

  /**
   * One page of the items listed under `partition` in `index`, greatest sort key first: at
   * most `limit` items after `startKey` (an item's key in that index), with `skBelow` an
   * exclusive upper bound on the sort key and `filter` applied to what is read. `lastKey` is
   * the key of the last item returned when more may follow; asking for one item more than
   * `limit` tells, so a listing that ends on a full page does not send the caller to an
   * empty one.
   */
  async queryIndexPage(
    index: StateIndex,
    partition: string,
    options: { limit: number; startKey?: Item | undefined; skBelow?: string; filter?: Expression },
  ): Promise<{ items: Item[]; lastKey?: Item }> {
    const pk = `${index}pk`;
    const sk = `${index}sk`;
    const items: Item[] = [];
    let startKey = options.startKey;
    for (;;) {
      const { Items, LastEvaluatedKey } = await this.#doc.send(
        new QueryCommand({
          TableName: this.#name,
          IndexName: index,
          KeyConditionExpression: options.skBelow ? '#pk = :pk AND #sk < :below' : '#pk = :pk',
          ...(options.filter ? { FilterExpression: options.filter.expression } : {}),
          ExpressionAttributeNames: {
            '#pk': pk,
            ...(options.skBelow ? { '#sk': sk } : {}),
            ...options.filter?.names,
          },
          ExpressionAttributeValues: {
            ':pk': partition,
            ...(options.skBelow ? { ':below': options.skBelow } : {}),
            ...options.filter?.values,
          },
          ScanIndexForward: false,
          Limit: options.limit + 1 - items.length,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      items.push(...((Items ?? []) as Item[]));
      if (items.length > options.limit) {
        const page = items.slice(0, options.limit);
        const last = page.at(-1) as Item;
        return { items: page, lastKey: { pk: last.pk, sk: last.sk, [pk]: last[pk], [sk]: last[sk] } };
      }
      if (!LastEvaluatedKey) return { items };
      startKey = LastEvaluatedKey;
    }
  }

  async put(item: Item & Key): Promise<void> {
    await this.#wire.send('PutItem', { TableName: this.#name, Item: toAttributes(item) });
  }

  /** Puts `item` if `condition` holds; false when it did not. */
  putIf(item: Item & Key, condition: Expression): Promise<boolean> {
    return unlessConditionFails(
      this.#wire.send('PutItem', {
        TableName: this.#name,
        Item: toAttributes(item),
        ConditionExpression: condition.expression,
        ...rawExpressionParts(condition.names, condition.values),
      }),
    );
  }

  /** Updates the item at `key` if `condition` holds; false when it did not. */
  updateIf(key: Key, update: Expression, condition: string): Promise<boolean> {
    return unlessConditionFails(
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#name,
          Key: key,
          UpdateExpression: update.expression,
          ConditionExpression: condition,
          ...expressionParts(update.names, update.values),
        }),
      ),
    );
  }

  /**
   * Updates the item at `key` if `condition` holds; the item as it is after the update, or
   * undefined when the condition failed.
   */
  async updateReturning(key: Key, update: Expression, condition: string): Promise<Item | undefined> {
    try {
      const { Attributes } = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#name,
          Key: key,
          UpdateExpression: update.expression,
          ConditionExpression: condition,
          ReturnValues: 'ALL_NEW',
          ...expressionParts(update.names, update.values),
        }),
      );
      return Attributes ?? {};
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  /**
   * The items at `keys` (consistent reads, missing ones left out, in no set order), 100 keys
   * a request, keys left unprocessed asked again with backoff; `what` names them in the error.
   */
  async batchGet(keys: readonly Key[], what: string): Promise<Item[]> {
    const items: Item[] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_SIZE) {
      let pending: Key[] = keys.slice(i, i + BATCH_GET_SIZE);
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        const result = await this.#doc.send(
          new BatchGetCommand({ RequestItems: { [this.#name]: { Keys: pending, ConsistentRead: true } } }),
        );
        items.push(...((result.Responses?.[this.#name] ?? []) as Item[]));
        pending = (result.UnprocessedKeys?.[this.#name]?.Keys ?? []) as Key[];
        if (pending.length && attempt > 8)
          throw new KeywardenError(`could not read ${what}: reads kept being throttled; try again`, {
            retryable: true,
          });
        if (pending.length) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
    return items;
  }

  /**
   * Every item whose sort key starts with `skPrefix`, in whichever partition (consistent reads,
   * in no set order): one parallel Scan of the whole table in `segments` segments, each read a
   * page (up to 1 MB) at a time. Its cost is the table's size, not the number of partitions it
   * finds items in: for reading many partitions at once, where a Query each would cost more.
   * `undefined` once the segments together have read more than `maxScanned` items (the table
   * holds more than that reading is worth; the pages in flight are let finish and dropped).
   */
  async scanSortKeyPrefix(
    skPrefix: string,
    segments: number,
    maxScanned: number,
  ): Promise<Item[] | undefined> {
    let scanned = 0;
    const read = async (segment: number): Promise<Item[] | undefined> => {
      const items: Item[] = [];
      const pages = paginateScan(
        { client: this.#doc },
        {
          TableName: this.#name,
          FilterExpression: 'begins_with(sk, :sk)',
          ExpressionAttributeValues: { ':sk': skPrefix },
          ConsistentRead: true,
          Segment: segment,
          TotalSegments: segments,
        },
      );
      for await (const page of pages) {
        scanned += page.ScannedCount ?? 0;
        if (scanned > maxScanned) return undefined;
        items.push(...((page.Items ?? []) as Item[]));
      }
      return items;
    };
    const parts = await Promise.all(Array.from({ length: segments }, (_, segment) => read(segment)));
    return parts.some((part) => part === undefined) ? undefined : (parts.flat() as Item[]);
  }

  /** Deletes the item at `key` if `condition` holds; false when it did not. */
  deleteIf(key: Key, condition: Expression): Promise<boolean> {
    return unlessConditionFails(
      this.#doc.send(
        new DeleteCommand({
          TableName: this.#name,
          Key: key,
          ConditionExpression: condition.expression,
          ...expressionParts(condition.names, condition.values),
        }),
      ),
    );
  }

  /**
   * Puts `item` at `key` if `condition` holds, marked with a fresh `writeId`. When the
   * condition fails and the stored item is not our own write (the SDK retries a write whose
   * answer was lost; the retry then fails its own condition), throws `conflict(cause)`.
   */
  async putOwn(key: Key, item: Item, condition: Expression, conflict: (cause: unknown) => Error) {
    // Marks this write, so a retry of it can be told from someone else's write.
    const writeId = randomUUID();
    try {
      await this.#wire.send('PutItem', {
        TableName: this.#name,
        Item: toAttributes({ ...key, ...item, writeId }),
        ConditionExpression: condition.expression,
        ...rawExpressionParts(condition.names, condition.values),
      });
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      if ((await this.get(key))?.writeId === writeId) return;
      throw conflict(error);
    }
  }

  /**
   * Puts an item only if its stored revision is still `expectedRev` (undefined: must not
   * exist), with the next revision; throws ConflictError naming `what` otherwise.
   */
  async putRevisioned<T extends object>(
    key: Key,
    item: T,
    expectedRev: number | undefined,
    what: string,
  ): Promise<T & { rev: number }> {
    const rev = (expectedRev ?? 0) + 1;
    await this.putOwn(
      key,
      { ...item, rev },
      expectedRev === undefined
        ? { expression: 'attribute_not_exists(pk)' }
        : { expression: 'rev = :rev', values: { ':rev': expectedRev } },
      (cause) =>
        new ConflictError(
          `${what} changed since it was read (expected revision ${expectedRev ?? 'none'}); read it again and retry`,
          { cause },
        ),
    );
    return { ...item, rev };
  }

  /**
   * {@link putRevisioned} of an item listed newest first in index gsi1 under `index.pk`
   * (sorted by `index.sk`); returns the item as given, without the index attributes.
   */
  async putRevisionedIndexed<T extends object>(
    key: Key,
    item: T,
    index: { pk: string; sk: string },
    expectedRev: number | undefined,
    what: string,
  ): Promise<T & { rev: number }> {
    await this.putRevisioned(key, { ...item, gsi1pk: index.pk, gsi1sk: index.sk }, expectedRev, what);
    return { ...item, rev: (expectedRev ?? 0) + 1 };
  }

  /** Puts items 25 at a time, trying unprocessed ones again with backoff; `what` names them in the error. */
  async batchPut(items: readonly (Item & Key)[], what: string): Promise<void> {
    const chunks: (Item & Key)[][] = [];
    for (let i = 0; i < items.length; i += BATCH_SIZE) chunks.push(items.slice(i, i + BATCH_SIZE));
    // A few requests at once: a campaign's thousands of targets are stored in a fraction of the time.
    const next = chunks.entries();
    const worker = async () => {
      for (const [, chunk] of next) await this.#batchPutChunk(chunk, what);
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_PUTS_IN_FLIGHT, chunks.length) }, worker));
  }

  /** One BatchWriteItem of at most {@link BATCH_SIZE} items, what it left unprocessed asked again with backoff. */
  async #batchPutChunk(chunk: readonly (Item & Key)[], what: string): Promise<void> {
    let pending = chunk.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      const result = await this.#doc.send(new BatchWriteCommand({ RequestItems: { [this.#name]: pending } }));
      pending = (result.UnprocessedItems?.[this.#name] ?? []) as typeof pending;
      if (pending.length && attempt > 8)
        throw new KeywardenError(`could not store ${what}: writes kept being throttled; try again`, {
          retryable: true,
        });
      if (pending.length) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
    }
  }
}

/**
 * Creates the state table where CDK does not: on the local stack and in tests.
 * The key schema is the one infra/constructs/state-store.ts deploys.
 */
export async function ensureStateTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (error) {
    if ((error as Error).name !== 'ResourceNotFoundException') throw error;
  }
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
          ...STATE_INDEXES.flatMap((index) => [
            { AttributeName: `${index}pk`, AttributeType: 'S' as const },
            { AttributeName: `${index}sk`, AttributeType: 'S' as const },
          ]),
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: STATE_INDEXES.map((index) => ({
          IndexName: index,
          KeySchema: [
            { AttributeName: `${index}pk`, KeyType: 'HASH' as const },
            { AttributeName: `${index}sk`, KeyType: 'RANGE' as const },
          ],
          Projection: { ProjectionType: 'ALL' as const },
        })),
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  // The waiter's default first pause is 20 s. The local DynamoDB (dynalite) may still say
  // CREATING on the first look and ACTIVE a few milliseconds later, and an AWS table is
  // ACTIVE in seconds: look again after 50 ms, backing off to 2 s.
  await waitUntilTableExists(
    { client, maxWaitTime: 30, minDelay: 0.05, maxDelay: 2 },
    { TableName: tableName },
  );
}
