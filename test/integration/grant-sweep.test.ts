/**
 * The sweeper reads what is due and nothing else: against the DynamoDB store on moto, the
 * requests one sweep sends are the same with 10 finished grants as with 400, and it still
 * ends the grant past its end, leaves the one not yet due, and finishes the half-way ending.
 */
import { describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { grantItem } from '../../functions/adapters/aws/dynamodb-grant-store.ts';
import { dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { DynamoTable, ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import type { BreakglassDeps } from '../../functions/core/breakglass.ts';
import { BreakglassConfigSchema, type Grant } from '../../functions/core/grant.ts';
import { sweep } from '../../functions/core/grant-sweep.ts';
import { OffsetClock } from '../support/offset-clock.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const config = BreakglassConfigSchema.parse({
  roles: [
    {
      id: 'prod-db',
      description: 'prod database secrets',
      target: { type: 'vault-policies', policies: ['prod-db'] },
      maxDuration: '1h',
      approvers: { localUsers: ['bob'] },
      requireIncident: false,
    },
  ],
});

/** A sweep's DynamoDB requests, by command, over a client that counts them. */
async function sweepCounted(tableName: string, clock: OffsetClock) {
  const client = awsClients(testAws()).dynamodb;
  const requests: Record<string, number> = {};
  client.middlewareStack.add(
    (next, context) => (args) => {
      const command = (context.commandName ?? '?').replace(/Command$/, '');
      requests[command] = (requests[command] ?? 0) + 1;
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  const store = dynamoStore({ client, tableName, clock, digest: sha256Hex });
  const deps: BreakglassDeps = {
    grants: store,
    audit: store,
    clock,
    config: async () => config,
    issuer: () => {
      throw new Error('no credential was issued in this spec');
    },
    scheduler: { scheduleExpiry: async () => {}, cancelExpiry: async () => {} },
    newGrantId: () => uniqueName('g'),
  };
  const result = await sweep(deps);
  return { result, requests };
}

describe('grant sweeper: reads only what is due', () => {
  it('sends the same requests with 10 finished grants as with 400, and ends what is due', async () => {
    // prepare: per round, one grant past its end, one not yet due, one ended without its credentials ended
    const clock = new OffsetClock();
    const client = awsClients(testAws()).dynamodb;
    const tableName = uniqueName('kw-sweep');
    await ensureStateTable(client, tableName);
    const table = new DynamoTable({ client, tableName });
    const minutes = (n: number) => new Date(clock.now().getTime() + n * 60_000).toISOString();
    const grant = (grantId: string, more: Partial<Grant>): Grant => ({
      grantId,
      roleId: 'prod-db',
      requester: { kind: 'local', id: 'alice' },
      reason: 'rollback',
      duration: '30m',
      state: 'active',
      requestedAt: minutes(-40),
      approvals: [],
      credentials: [],
      ...more,
    });
    const finished = (grantId: string) =>
      grant(grantId, {
        state: 'expired',
        expiresAt: minutes(-10),
        endedAt: minutes(-10),
        credentialsEndedAt: minutes(-10),
        review: {
          dueAt: minutes(-5),
          reviewedAt: minutes(-4),
          notes: 'fine',
          reviewer: { kind: 'local', id: 'bob' },
        },
      });
    const round = async (tag: string, finishedCount: number) => {
      await table.batchPut(
        [
          grant(`${tag}-due`, { expiresAt: minutes(-1) }),
          grant(`${tag}-later`, { expiresAt: minutes(20) }),
          grant(`${tag}-half`, { state: 'expired', expiresAt: minutes(-5), endedAt: minutes(-5) }),
          ...Array.from({ length: finishedCount }, (_, i) => finished(`${tag}-done-${i}`)),
        ].map((g) => grantItem(g)),
        'grants',
      );
      return sweepCounted(tableName, clock);
    };

    // act
    const few = await round('a', 10);
    const many = await round('b', 390);

    // assess
    expect(few.result).toEqual({ expired: ['a-due'], released: [], failed: [] });
    expect(many.result).toEqual({ expired: ['b-due'], released: [], failed: [] });
    expect(many.requests).toEqual(few.requests);
    expect(few.requests.Query).toBeLessThanOrEqual(2); // the due grants; the audit chain's tail
    expect(few.requests).not.toHaveProperty('Scan');
    const store = dynamoStore({ client, tableName, clock, digest: sha256Hex });
    for (const id of ['a-half', 'b-half'])
      expect((await store.getGrant(id))?.credentialsEndedAt).toBeDefined();
    expect((await store.getGrant('b-later'))?.state).toBe('active');
    expect((await store.sweepDueGrants(clock.now())).grants).toEqual([]);
  });
});
