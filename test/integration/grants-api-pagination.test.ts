/**
 * `GET /grants` a page at a time, through the API's router over the DynamoDB grant store on
 * moto: every grant once, newest first, by state and by requester; a bad `limit`,
 * `requester` or `nextToken` (forged, edited, from another listing) is a 400 in the error
 * shape, never a 500.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { type DynamoStore, dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { type ApiEvent, errorResult } from '../../functions/api/responses.ts';
import { ROUTES, routeRequest } from '../../functions/api/routes.ts';
import type { Grant } from '../../functions/core/grant.ts';
import { FixedClock } from '../support/fixtures.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const clock = new FixedClock(new Date('2026-11-22T00:00:00Z'));
let store: DynamoStore;
let deps: ApiDeps;

/** Grants g-01 … g-07, requested a minute apart: alice asked for the odd ones, bob for the even. */
beforeAll(async () => {
  const client = awsClients(testAws()).dynamodb;
  const tableName = uniqueName('kw-grants-api');
  await ensureStateTable(client, tableName);
  store = dynamoStore({ client, tableName, clock, digest: sha256Hex });
  for (let n = 1; n <= 7; n++) {
    const grant: Grant = {
      grantId: `g-0${n}`,
      roleId: 'prod-db',
      requester: { kind: 'local', id: n % 2 ? 'alice' : 'bob' },
      reason: 'rollback',
      duration: '30m',
      state: n <= 3 ? 'approved' : 'requested',
      ...(n <= 3 ? { expiresAt: new Date(Date.UTC(2026, 10, 21, 11, n)).toISOString() } : {}),
      requestedAt: new Date(Date.UTC(2026, 10, 21, 10, n)).toISOString(),
      approvals: [],
      credentials: [],
    };
    await store.putGrant(grant, undefined);
  }
  // Only what GET /grants reads of the API's dependencies.
  deps = { breakglass: { grants: store, clock }, acceptLocalPrincipals: true } as unknown as ApiDeps;
});

async function get(query: string, user = 'carol') {
  const event = {
    rawPath: '/grants',
    rawQueryString: query,
    queryStringParameters: Object.fromEntries(new URLSearchParams(query)),
    headers: {},
    isBase64Encoded: false,
    requestContext: {
      requestId: 'req-1',
      http: { method: 'GET' },
      authorizer: { lambda: { localUser: user } },
    },
  } as unknown as ApiEvent;
  const result = await routeRequest(deps, event, ROUTES).catch((error: unknown) =>
    errorResult(error, 'req-1', () => {}),
  );
  return { status: result.statusCode, body: JSON.parse(result.body) };
}

/** Every page of a listing, as the grant ids of each. */
async function pages(query: Record<string, string>) {
  const seen: string[][] = [];
  let nextToken: string | undefined;
  do {
    const { status, body } = await get(
      new URLSearchParams({ ...query, ...(nextToken ? { nextToken } : {}) }).toString(),
    );
    expect(status, JSON.stringify(body)).toBe(200);
    seen.push(body.grants.map((g: Grant) => g.grantId));
    nextToken = body.nextToken;
  } while (nextToken);
  return seen;
}

describe('HTTP API: GET /grants, a page at a time', () => {
  it('answers every grant once, newest first, limit at a time, with a nextToken while more follow', async () => {
    expect(await pages({ limit: '3' })).toEqual([
      ['g-07', 'g-06', 'g-05'],
      ['g-04', 'g-03', 'g-02'],
      ['g-01'],
    ]);
    const whole = await get('');
    expect(whole.status).toBe(200);
    expect(whole.body.nextToken).toBeUndefined();
    expect(whole.body.grants).toHaveLength(7);
    expect(whole.body.grants[0]).not.toHaveProperty('rev');
  });

  it('lists by state, by requester, and by both', async () => {
    expect(await pages({ state: 'approved', limit: '2' })).toEqual([['g-03', 'g-02'], ['g-01']]);
    expect((await pages({ requester: 'local:alice', limit: '2' })).flat()).toEqual([
      'g-07',
      'g-05',
      'g-03',
      'g-01',
    ]);
    expect((await pages({ requester: 'local:bob', state: 'approved', limit: '1' })).flat()).toEqual(['g-02']);
    expect(await pages({ requester: 'slack:U0NOBODY' })).toEqual([[]]);
  });

  it('answers 400 in the error shape for a forged, edited or borrowed nextToken, a bad limit or requester', async () => {
    const { body: first } = await get('limit=2');
    const { body: ofState } = await get('state=approved&limit=1');
    const forged = Buffer.from(
      JSON.stringify({ p: 'GRANTS', k: { pk: 'AUDIT', sk: 'HEAD', gsi1pk: 'GRANTS', gsi1sk: 'x' } }),
    ).toString('base64url');
    for (const query of [
      `nextToken=${forged}`,
      `nextToken=${first.nextToken.slice(1)}`,
      'nextToken=%7B%7D',
      `nextToken=${'A'.repeat(5000)}`,
      `state=requested&nextToken=${ofState.nextToken}`,
      `requester=local:alice&nextToken=${first.nextToken}`,
      'limit=0',
      'limit=101',
      'limit=ten',
      'limit=-1',
      'requester=alice',
      'requester=local:',
      `requester=local:${'x'.repeat(5000)}`,
      'state=lost',
    ]) {
      const { status, body } = await get(query);
      expect([query.slice(0, 60), status, body.error?.code]).toEqual([
        query.slice(0, 60),
        400,
        'bad-request',
      ]);
      expect(body.error.message).toMatch(/^expected /);
    }
    // A long requester id is listed too (its partition key is hashed past 1,024 bytes).
    expect(await pages({ requester: `aws:arn:aws:iam::123456789012:role/${'r'.repeat(1_500)}` })).toEqual([
      [],
    ]);
  });

  it('refuses a caller without credentials', async () => {
    const event = {
      rawPath: '/grants',
      headers: {},
      requestContext: { requestId: 'req-1', http: { method: 'GET' } },
    } as unknown as ApiEvent;
    const result = await routeRequest(deps, event, ROUTES).catch((error: unknown) =>
      errorResult(error, 'req-1', () => {}),
    );
    expect(result.statusCode).toBe(401);
  });
});
