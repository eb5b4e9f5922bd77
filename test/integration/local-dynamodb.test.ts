/**
 * The local DynamoDB (dynalite) keeps the semantics the state store relies on: a
 * conditional write is atomic, so of many writers racing on one item's revision exactly
 * one wins; and a malformed request is refused with DynamoDB's own validation error, not
 * quietly accepted. Checked through keywarden's own store adapter, as the engines use it.
 */

import { randomInt } from 'node:crypto';
import {
  DynamoDBServiceException,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { dynamoIdentityStore } from '../../functions/adapters/aws/dynamodb-identity-store.ts';
import { DynamoTable, ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { ConflictError } from '../../functions/core/errors.ts';
import type { StoredIdentity } from '../../functions/core/ports.ts';
import { identity } from '../support/fixtures.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const WRITERS = 32;
const ROUNDS = 6;

const client = awsClients(testAws()).dynamodb;
let tableName: string;

beforeAll(async () => {
  tableName = uniqueName('kw-local-ddb');
  await ensureStateTable(client, tableName);
});

/** What a rejected promise was rejected with, or undefined when it fulfilled. */
const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

/** A copy of `items` in random order (Fisher–Yates). */
function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = randomInt(i + 1);
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

describe('local DynamoDB: conditional writes', () => {
  it(`lets exactly one of ${WRITERS} concurrent writers win each round on one item's revision; the others get ConflictError`, async () => {
    // prepare: one identity store per writer, all on the same item, all at the local DynamoDB
    const endpoint = await client.config.endpoint?.();
    expect(`http://${endpoint?.hostname}:${endpoint?.port}`).toBe(testStack().dynamodb.endpoint);
    const stores = Array.from({ length: WRITERS }, () =>
      dynamoIdentityStore(new DynamoTable({ client, tableName })),
    );
    const id = uniqueName('contended');
    const record = (writer: number): StoredIdentity => ({
      identity: identity({ id, owner: `writer-${writer}` }),
      status: 'active',
      declarationHash: `hash-${writer}`,
      rev: 0,
      syncedAt: new Date().toISOString(),
    });

    const winners: number[] = [];
    for (let round = 1; round <= ROUNDS; round += 1) {
      // act: every writer reads the item, then all write on the revision they read at once
      const read = await Promise.all(stores.map((store) => store.getIdentity(id)));
      const expectedRev = read[0]?.rev;
      expect(read.map((r) => r?.rev)).toEqual(Array(WRITERS).fill(expectedRev));
      // Sent in a new order each round, so the first request out is not always the same writer's.
      const failures: unknown[] = Array(WRITERS);
      await Promise.all(
        shuffled(stores.map((store, writer) => ({ store, writer }))).map(async ({ store, writer }) => {
          failures[writer] = await failureOf(store.putIdentity(record(writer), expectedRev));
        }),
      );

      // assess: one winner, every loser told it lost to a newer revision
      const won = failures.flatMap((failure, writer) => (failure === undefined ? [writer] : []));
      expect(won, `round ${round}`).toHaveLength(1);
      for (const failure of failures.filter((f) => f !== undefined)) {
        expect(failure).toBeInstanceOf(ConflictError);
        expect((failure as ConflictError).message).toContain(`expected revision ${expectedRev ?? 'none'}`);
      }
      const stored = await stores[0]?.getIdentity(id);
      expect(stored?.rev).toBe(round);
      expect(stored?.identity.owner).toBe(`writer-${won[0]}`);
      winners.push(won[0] as number);
    }

    expect((await stores[0]?.getIdentity(id))?.rev).toBe(ROUNDS);
    console.log(`winners by round (of ${WRITERS} writers): ${winners.join(', ')}`);
  });

  it('applies concurrent conditional increments one at a time: none lost, none doubled', async () => {
    // prepare: a counter item
    const key = { pk: { S: uniqueName('COUNTER') }, sk: { S: 'COUNTER' } };
    await client.send(new PutItemCommand({ TableName: tableName, Item: { ...key, n: { N: '0' } } }));

    // act: WRITERS increments, each conditional on the item existing
    await Promise.all(
      Array.from({ length: WRITERS }, () =>
        client.send(
          new UpdateItemCommand({
            TableName: tableName,
            Key: key,
            UpdateExpression: 'ADD n :one',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: { ':one': { N: '1' } },
          }),
        ),
      ),
    );

    // assess
    const { Item } = await client.send(
      new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }),
    );
    expect(Item?.n?.N).toBe(String(WRITERS));
  });
});

describe('local DynamoDB: validation', () => {
  /** The service error a request was refused with. */
  async function refusal(send: Promise<unknown>) {
    const error = await failureOf(send);
    expect(error).toBeInstanceOf(DynamoDBServiceException);
    const { name, message, $metadata } = error as DynamoDBServiceException;
    return { name, message, status: $metadata.httpStatusCode };
  }

  it('refuses a key without the sort key with ValidationException, as DynamoDB does', async () => {
    expect(
      await refusal(
        client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: 'INVENTORY' } } })),
      ),
    ).toEqual({
      name: 'ValidationException',
      message: 'The provided key element does not match the schema',
      status: 400,
    });
  });

  it('refuses an expression that uses an undefined value with ValidationException', async () => {
    const refused = await refusal(
      client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: { pk: { S: 'x' }, sk: { S: 'y' } },
          ConditionExpression: 'rev = :rev',
        }),
      ),
    );
    expect(refused).toMatchObject({ name: 'ValidationException', status: 400 });
    expect(refused.message).toMatch(/expression attribute value.*not defined.*:rev/i);
  });

  it('refuses an item over 400 KB with ValidationException', async () => {
    const refused = await refusal(
      client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: { pk: { S: 'x' }, sk: { S: 'big' }, blob: { S: 'a'.repeat(401 * 1024) } },
        }),
      ),
    );
    expect(refused).toMatchObject({ name: 'ValidationException', status: 400 });
    expect(refused.message).toMatch(/Item size has exceeded the maximum allowed size/);
  });
});
