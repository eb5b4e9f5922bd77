import {
  DeleteCommand,
  DynamoDBDocumentClient,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { beforeEach, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { dynamoBreakglassStore } from '../../functions/adapters/aws/dynamodb-breakglass-store.ts';
import { type DynamoStore, dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable, Keys } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { nextRecord, verifyChain } from '../../functions/core/audit.ts';
import { ConflictError } from '../../functions/core/errors.ts';
import { BreakglassConfigSchema } from '../../functions/core/grant.ts';
import { syncInventory } from '../../functions/core/inventory-sync.ts';
import { FixedClock, identity } from '../support/fixtures.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const client = awsClients(testAws()).dynamodb;
const doc = DynamoDBDocumentClient.from(client);
const clock = new FixedClock(new Date('2026-11-01T00:00:00Z'));
let tableName: string;
let store: DynamoStore;

beforeEach(async () => {
  tableName = uniqueName('kw-state');
  await ensureStateTable(client, tableName);
  store = dynamoStore({ client, tableName, clock, digest: sha256Hex });
});

const deps = () => ({ store, audit: store, clock, digest: sha256Hex });

describe('state store: inventory sync', () => {
  it('stores declared identities and changes nothing when run again', async () => {
    const declared = [identity({ id: 'app-build' }), identity({ id: 'app-deploy', kind: 'vault-token' })];

    const first = await syncInventory(deps(), declared, 'alice');
    const second = await syncInventory(deps(), declared, 'alice');

    expect(first).toEqual({ declared: 2, changed: 0, unchanged: 0, retired: 0 });
    expect(second).toEqual({ declared: 0, changed: 0, unchanged: 2, retired: 0 });
    expect((await store.listIdentities()).map((r) => [r.identity.id, r.status, r.rev])).toEqual([
      ['app-build', 'active', 1],
      ['app-deploy', 'active', 1],
    ]);
    const { records } = await store.readAll();
    expect(records.map((r) => r.type)).toEqual([
      'identity.declared',
      'identity.declared',
      'inventory.synced',
    ]);
  });

  it('marks an identity removed from the file retired, keeps it, and revives it when declared again', async () => {
    const build = identity({ id: 'app-build' });
    const deploy = identity({ id: 'app-deploy' });
    await syncInventory(deps(), [build, deploy], 'alice');

    const removal = await syncInventory(deps(), [build], 'alice');
    const retired = await store.getIdentity('app-deploy');
    const revival = await syncInventory(deps(), [build, deploy], 'alice');

    expect(removal.retired).toBe(1);
    expect(retired?.status).toBe('retired');
    expect(retired?.retiredAt).toBe(clock.now().toISOString());
    expect(revival.changed).toBe(1);
    expect((await store.getIdentity('app-deploy'))?.status).toBe('active');
  });

  it('records a changed declaration as a new revision', async () => {
    await syncInventory(deps(), [identity({ id: 'app-build' })], 'alice');
    await syncInventory(deps(), [identity({ id: 'app-build', owner: 'team-security' })], 'bob');

    const stored = await store.getIdentity('app-build');
    expect(stored?.rev).toBe(2);
    expect(stored?.identity.owner).toBe('team-security');
  });
});

describe('state store: optimistic locking', () => {
  it('refuses a write that names a stale revision', async () => {
    const record = {
      identity: identity({ id: 'app' }),
      status: 'active' as const,
      declarationHash: 'h',
      syncedAt: 'now',
    };
    const first = await store.putIdentity(record, undefined);
    await store.putIdentity(record, first.rev);

    await expect(store.putIdentity(record, first.rev)).rejects.toBeInstanceOf(ConflictError);
    await expect(store.putIdentity(record, undefined)).rejects.toBeInstanceOf(ConflictError);
  });
});

describe('state store: audit chain', () => {
  const appendSome = async (count: number) => {
    for (let i = 0; i < count; i += 1) {
      await store.append({
        type: 'credential.issued',
        actor: 'rotation',
        subject: `id-${i}`,
        details: { n: i },
      });
    }
  };

  it('keeps one unbroken chain under concurrent appenders', async () => {
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        store.append({ type: 'credential.used', actor: `w${i}`, subject: 's' }),
      ),
    );

    const { records, head } = await store.readAll();
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(verifyChain(records, head, sha256Hex)).toEqual({ ok: true, checked: 12 });
  });

  it('names a record altered directly in DynamoDB', async () => {
    await appendSome(5);
    await doc.send(
      new UpdateCommand({
        TableName: tableName,
        Key: Keys.audit(3),
        UpdateExpression: 'SET subject = :s',
        ExpressionAttributeValues: { ':s': 'someone-else' },
      }),
    );

    const { records, head } = await store.readAll();
    const verdict = verifyChain(records, head, sha256Hex);
    expect(verdict).toMatchObject({ ok: false, problem: 'altered', seq: 3 });
  });

  it('names a record removed from the middle', async () => {
    await appendSome(5);
    await doc.send(new DeleteCommand({ TableName: tableName, Key: Keys.audit(2) }));

    const { records, head } = await store.readAll();
    expect(verifyChain(records, head, sha256Hex)).toMatchObject({ ok: false, problem: 'removed', seq: 2 });
  });

  it('names records removed from the end, which only the head shows', async () => {
    await appendSome(5);
    await doc.send(new DeleteCommand({ TableName: tableName, Key: Keys.audit(5) }));

    const { records, head } = await store.readAll();
    expect(verifyChain(records, head, sha256Hex)).toMatchObject({ ok: false, problem: 'removed', seq: 5 });
  });

  it('names a record inserted after the head that does not link to the chain', async () => {
    await appendSome(3);
    const { records } = await store.readAll();
    const second = records[1];
    if (!second) throw new Error('expected three records');
    // Hashed correctly, but built on record 2: it does not follow record 3.
    const forged = {
      ...nextRecord(
        second,
        { type: 'grant.approved', actor: 'mallory', subject: 'g' },
        { id: 'forged', at: second.at },
        sha256Hex,
      ),
      seq: 4,
    };
    await doc.send(new PutCommand({ TableName: tableName, Item: { ...Keys.audit(4), ...forged } }));

    const after = await store.readAll();
    expect(verifyChain(after.records, after.head, sha256Hex)).toMatchObject({ ok: false, seq: 4 });
  });
});

describe('state store: the audit trail read back from its end (recordsSince)', () => {
  it('returns the records at or after the time less a minute of clock skew, in order, from flat and block items, in one Query for a recent time', async () => {
    // prepare: 60 records an hour ago, then a burst (one block item) and a single record now
    const queries = { count: 0 };
    const counted = awsClients(testAws()).dynamodb;
    counted.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'QueryCommand') queries.count += 1;
        return next(args);
      },
      { step: 'initialize', name: 'countQueries' },
    );
    const reader = dynamoStore({ client: counted, tableName, clock, digest: sha256Hex });
    const started = clock.now();
    try {
      for (let i = 0; i < 60; i += 1) {
        await store.append({ type: 'credential.used', actor: 'old', subject: `s-${i}` });
      }
      clock.advance(3_600_000);
      const now = clock.now().toISOString();
      await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          store.append({ type: 'credential.issued', actor: 'burst', subject: `b-${i}` }),
        ),
      );
      clock.advance(30_000);
      await store.append({ type: 'credential.activated', actor: 'last', subject: 'x' });
      const blocks = (await doc.send(new ScanCommand({ TableName: tableName }))).Items?.filter((item) =>
        Array.isArray(item.records),
      );

      // act
      const recent = await reader.recordsSince(now);
      const recentQueries = queries.count;
      const withinSkew = await reader.recordsSince(new Date(Date.parse(now) + 60_000).toISOString());
      const all = await reader.recordsSince(started.toISOString());

      // assess: the burst went in a block item, and both kinds of item are read
      expect(blocks?.length).toBeGreaterThan(0);
      expect(recent.map((r) => r.seq)).toEqual([61, 62, 63, 64, 65, 66]);
      expect(recent.map((r) => r.actor)).toEqual(['burst', 'burst', 'burst', 'burst', 'burst', 'last']);
      expect(recentQueries).toBe(1);
      // assess: a minute of skew reaches back to the burst; from the start, the whole trail as readAll has it
      expect(withinSkew.map((r) => r.seq)).toEqual([61, 62, 63, 64, 65, 66]);
      expect(all).toEqual((await store.readAll()).records);
      expect(await reader.recordsSince(new Date(Date.parse(now) + 200_000).toISOString())).toEqual([]);
    } finally {
      clock.set(started);
    }
  });
});

describe('state store: findings', () => {
  it('returns the latest run as a whole', async () => {
    const finding = {
      id: 'no-owner:app',
      type: 'no-owner' as const,
      severity: 'medium' as const,
      subject: 'app',
      identityIds: ['app'],
      handles: [],
      message: 'app has no owner',
    };
    await store.saveFindings({ runId: 'r1', at: '2026-11-01T00:00:00.000Z', findings: [finding] });
    await store.saveFindings({ runId: 'r2', at: '2026-11-02T00:00:00.000Z', findings: [] });

    expect(await store.latestFindings()).toEqual({
      runId: 'r2',
      at: '2026-11-02T00:00:00.000Z',
      findings: [],
    });
  });
});

describe('state store: grants', () => {
  const requester = { kind: 'local' as const, id: 'alice' };
  const grant = (grantId: string, requestedAt: string) => ({
    grantId,
    roleId: 'prod-deploy',
    requester,
    reason: 'hotfix',
    duration: '30m',
    state: 'requested' as const,
    requestedAt,
    approvals: [],
    credentials: [],
  });

  it('stores a grant, refuses a stale transition, and lists grants newest first', async () => {
    const first = await store.putGrant(grant('g-1', '2026-11-21T10:00:00.000Z'), undefined);
    await store.putGrant(grant('g-2', '2026-11-21T11:00:00.000Z'), undefined);
    const approved = await store.putGrant({ ...first, state: 'approved' }, first.rev);

    await expect(store.putGrant({ ...first, state: 'denied' }, first.rev)).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect(await store.getGrant('g-1')).toMatchObject({ state: 'approved', rev: approved.rev });
    expect((await store.listGrants()).map((g) => g.grantId)).toEqual(['g-2', 'g-1']);
    expect((await store.listGrants({ states: ['approved'] })).map((g) => g.grantId)).toEqual(['g-1']);
  });
});

describe('state store: item layout', () => {
  it("writes every port's items under the keys deployed tables hold", async () => {
    const at = '2026-11-01T00:00:00.000Z';
    await syncInventory(deps(), [identity({ id: 'app' })], 'alice');
    await store.putVersion(
      {
        identityId: 'app',
        versionId: 'v1',
        kind: 'vault-kv',
        stage: 'current',
        handle: '1',
        origin: 'issued',
        issuedAt: at,
      },
      undefined,
    );
    await store.putRotation(
      {
        identityId: 'app',
        rotationId: 'r',
        versionId: 'v1',
        step: 'finished',
        startedAt: at,
        attemptStartedAt: at,
        attempts: 1,
        updatedAt: at,
      },
      undefined,
    );
    await store.acquireLock('app', 'me', 0, 60_000);
    await store.saveFindings({ runId: 'run1', at, findings: [] });
    await store.putGrant(
      {
        grantId: 'g-1',
        roleId: 'r',
        requester: { kind: 'local', id: 'alice' },
        reason: 'x',
        duration: '30m',
        state: 'requested',
        requestedAt: at,
        approvals: [],
        credentials: [],
      },
      undefined,
    );
    const breakglass = dynamoBreakglassStore({ client, tableName, clock });
    await breakglass.putBreakglassConfig(BreakglassConfigSchema.parse({}));
    await breakglass.firstDelivery('slack-1', 60);

    const { Items = [] } = await doc.send(new ScanCommand({ TableName: tableName }));
    const keys = Items.map(
      (item) => `${item.pk} ${item.sk}${item.gsi1pk ? ` ${item.gsi1pk} ${item.gsi1sk}` : ''}`,
    );

    expect(keys.sort()).toEqual(
      [
        'AUDIT HEAD',
        'AUDIT SEQ#000000000001',
        'AUDIT SEQ#000000000002',
        'BREAKGLASS CONFIG',
        'DELIVERY#slack-1 DELIVERY',
        'FINDINGS LATEST',
        `GRANT#g-1 GRANT GRANTS ${at}#g-1`,
        'IDENTITY#app LOCK',
        'IDENTITY#app ROTATION',
        'IDENTITY#app VERSION#v1',
        'INVENTORY IDENTITY#app',
      ].sort(),
    );
  });
});
