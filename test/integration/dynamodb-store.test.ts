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
import { grantItem } from '../../functions/adapters/aws/dynamodb-grant-store.ts';
import { type DynamoStore, dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { DynamoTable, ensureStateTable, Keys } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { nextRecord, verifyChain } from '../../functions/core/audit.ts';
import { ConflictError, ValidationError } from '../../functions/core/errors.ts';
import { BreakglassConfigSchema, type Grant } from '../../functions/core/grant.ts';
import { syncInventory } from '../../functions/core/inventory-sync.ts';
import type { GrantPage } from '../../functions/core/ports.ts';
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

/** A store over a client of its own that counts the Queries it sends. */
function queryCountingStore() {
  const queries = { count: 0 };
  const counted = awsClients(testAws()).dynamodb;
  counted.middlewareStack.add(
    (next, context) => (args) => {
      if (context.commandName === 'QueryCommand') queries.count += 1;
      return next(args);
    },
    { step: 'initialize', name: 'countQueries' },
  );
  return { queries, reader: dynamoStore({ client: counted, tableName, clock, digest: sha256Hex }) };
}

describe('state store: the audit trail read back from its end (recordsSince)', () => {
  it('returns the records at or after the time less a minute of clock skew, in order, from flat and block items, in one Query for a recent time', async () => {
    // prepare: 60 records an hour ago, then a burst (one block item) and a single record now
    const { queries, reader } = queryCountingStore();
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

describe('state store: the records about some subjects (recordsAbout)', () => {
  it('keeps only theirs, in sequence order, from flat and block items over more than one Query page', async () => {
    // prepare: two flat records, then 1,200 records in block items (~1.3 MB: two Query pages
    // at least), the subjects of interest among them
    const { queries, reader } = queryCountingStore();
    await store.append({ type: 'credential.issued', actor: 'a', subject: 'kept-1' });
    await store.append({ type: 'credential.issued', actor: 'a', subject: 'other' });
    const note = 'n'.repeat(1_000);
    await store.appendMany(
      Array.from({ length: 1_200 }, (_, i) => ({
        type: 'credential.used' as const,
        actor: 'a',
        subject: i % 400 === 7 ? 'kept-2' : `other-${i}`,
        details: { note },
      })),
    );

    // act
    const about = await reader.recordsAbout(new Set(['kept-1', 'kept-2']));

    // assess: what readAll has of them, read over more than one page
    const all = (await store.readAll()).records;
    expect(about).toEqual(all.filter((r) => r.subject === 'kept-1' || r.subject === 'kept-2'));
    expect(about.map((r) => r.seq)).toEqual([1, 10, 410, 810]);
    expect(queries.count).toBeGreaterThan(1);
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

  it('claims a finding for exactly one of many callers at once, with the TTL attribute; a released or expired claim may be taken again, a held one not', async () => {
    // prepare
    const id = 'used-from-unexpected-runner:deploy:AKIA-handle';
    const now = new Date('2026-11-01T00:00:00Z');
    const until = new Date('2026-11-08T00:00:00Z');

    // act
    const racing = await Promise.all(Array.from({ length: 8 }, () => store.claimFinding(id, until, now)));
    const item = (await doc.send(new ScanCommand({ TableName: tableName }))).Items?.find(
      (i) => i.pk === `FINDING#CLAIM#${id}`,
    );
    await store.releaseFinding(id);
    const afterRelease = await store.claimFinding(id, until, now);
    const whileHeld = await store.claimFinding(id, until, new Date('2026-11-07T23:59:58Z'));
    const afterExpiry = await store.claimFinding(
      id,
      new Date('2026-11-15T00:00:00Z'),
      new Date('2026-11-08T00:00:01Z'),
    );
    await store.holdFinding(id, new Date('2026-11-22T00:00:00Z'));
    const afterHeld = await store.claimFinding(id, until, new Date('2026-11-16T00:00:00Z'));

    // assess
    expect(racing.filter(Boolean)).toHaveLength(1);
    expect(item).toMatchObject({ sk: 'CLAIM', finding: id, expiresAt: until.getTime() / 1000 });
    expect([afterRelease, whileHeld, afterExpiry, afterHeld]).toEqual([true, false, true, false]);
    // the latest findings are not touched by claims
    expect(await store.latestFindings()).toBeUndefined();
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
    expect((await store.queryGrants()).grants.map((g) => g.grantId)).toEqual(['g-2', 'g-1']);
    expect((await store.queryGrants({ state: 'approved' })).grants.map((g) => g.grantId)).toEqual(['g-1']);
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
        'IDENTITY#app ROTATION',
        'IDENTITY#app VERSION#v1',
        'INVENTORY IDENTITY#app',
      ].sort(),
    );
  });
});

describe('state store: grants listed by index', () => {
  const alice = { kind: 'local' as const, id: 'alice' };
  const bob = { kind: 'local' as const, id: 'bob' };
  const at = (minute: number) => new Date(Date.UTC(2026, 10, 21, 10, minute)).toISOString();
  const grantAt = (grantId: string, minute: number, more: Partial<Grant> = {}): Grant => ({
    grantId,
    roleId: 'prod-deploy',
    requester: alice,
    reason: 'hotfix',
    duration: '30m',
    state: 'requested',
    requestedAt: at(minute),
    approvals: [],
    credentials: [],
    ...more,
  });
  /** Ended, credentials ended, released and reviewed: nothing is due on it ever again. */
  const finished = (grantId: string, minute: number) =>
    grantAt(grantId, minute, {
      state: 'revoked',
      expiresAt: at(minute + 30),
      endedAt: at(minute + 1),
      credentialsEndedAt: at(minute + 1),
      releasedAt: at(minute + 31),
      review: { dueAt: at(minute + 2), reviewedAt: at(minute + 3), notes: 'ok', reviewer: bob },
    });
  const ids = (page: { grants: { grantId: string }[] }) => page.grants.map((g) => g.grantId);

  /** Every page of a listing, following nextToken. */
  async function all(list: (request: { limit: number; nextToken?: string }) => Promise<GrantPage>) {
    const pages: string[][] = [];
    let nextToken: string | undefined;
    do {
      const page = await list({ limit: 2, ...(nextToken ? { nextToken } : {}) });
      pages.push(ids(page));
      nextToken = page.nextToken;
    } while (nextToken);
    return pages;
  }

  it('lists all grants, by state, by requester and by both, newest first, a page at a time', async () => {
    // prepare
    for (const [id, minute, more] of [
      ['g-1', 1, { state: 'approved', expiresAt: at(31) }],
      ['g-2', 2, {}],
      ['g-3', 3, { requester: bob }],
      ['g-4', 4, { state: 'approved', expiresAt: at(34) }],
      ['g-5', 5, { state: 'denied', endedAt: at(6) }],
    ] as const) {
      await store.putGrant(grantAt(id, minute, more as Partial<Grant>), undefined);
    }

    // act + assess
    expect(await all((page) => store.queryGrants(page))).toEqual([['g-5', 'g-4'], ['g-3', 'g-2'], ['g-1']]);
    expect(await all((page) => store.queryGrants({ ...page, state: 'approved' }))).toEqual([['g-4', 'g-1']]);
    expect(await all((page) => store.queryGrants({ ...page, requester: alice }))).toEqual([
      ['g-5', 'g-4'],
      ['g-2', 'g-1'],
    ]);
    expect(
      (await all((page) => store.queryGrants({ ...page, requester: alice, state: 'requested' }))).flat(),
    ).toEqual(['g-2']);
    expect(ids(await store.queryGrants({ requester: bob }))).toEqual(['g-3']);
    expect(ids(await store.queryGrants({ state: 'active' }))).toEqual([]);
  });

  it('refuses a forged, edited or borrowed nextToken with a ValidationError', async () => {
    for (let minute = 1; minute <= 3; minute++)
      await store.putGrant(
        grantAt(`g-${minute}`, minute, { state: 'approved', expiresAt: at(40) }),
        undefined,
      );
    const { nextToken = '' } = await store.queryGrants({ limit: 1 });
    expect(nextToken).not.toBe('');
    const decoded = JSON.parse(Buffer.from(nextToken, 'base64url').toString('utf8'));
    const forge = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

    for (const token of [
      'not a token',
      '%ZZ',
      forge({ p: 'GRANTS', k: { ...decoded.k, pk: 'AUDIT', sk: 'HEAD' } }),
      forge({ p: 'GRANTS#SWEEP', k: decoded.k }),
      forge({ ...decoded, extra: 1 }),
      nextToken.slice(0, -3),
      'x'.repeat(5_000),
    ]) {
      await expect(store.queryGrants({ nextToken: token }), token.slice(0, 40)).rejects.toBeInstanceOf(
        ValidationError,
      );
    }
    // A token of the unfiltered listing does not continue the listing of one state.
    await expect(store.queryGrants({ state: 'approved', nextToken })).rejects.toBeInstanceOf(ValidationError);
    await expect(store.queryGrants({ limit: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(store.queryGrants({ limit: 101 })).rejects.toBeInstanceOf(ValidationError);
    expect(ids(await store.queryGrants({ nextToken }))).toEqual(['g-2', 'g-1']);
  });

  it('lists as due exactly the grants the sweeper has work on now, and the reviews overdue', async () => {
    // prepare: one grant at each step of its life
    const grants = [
      grantAt('requested', 1),
      grantAt('approved-due', 2, { state: 'approved', expiresAt: at(10) }),
      grantAt('active-later', 3, { state: 'active', expiresAt: at(50) }),
      grantAt('half-ended', 4, {
        state: 'expired',
        expiresAt: at(5),
        endedAt: at(5),
        review: { dueAt: at(59) },
      }),
      grantAt('to-release', 5, {
        state: 'revoked',
        expiresAt: at(12),
        endedAt: at(6),
        credentialsEndedAt: at(6),
        review: { dueAt: at(59) },
      }),
      grantAt('review-due', 6, {
        state: 'expired',
        expiresAt: at(7),
        endedAt: at(7),
        credentialsEndedAt: at(7),
        review: { dueAt: at(19) },
      }),
      finished('finished', 7),
    ];
    for (const grant of grants) await store.putGrant(grant, undefined);

    // act + assess: at 10:20, what is due
    const now = new Date(at(20));
    expect((await all((page) => store.sweepDueGrants(now, page))).flat().sort()).toEqual([
      'approved-due',
      'half-ended',
      'to-release',
    ]);
    expect((await all((page) => store.reviewDueGrants(now, page))).flat()).toEqual(['review-due']);

    // Finishing a step takes the grant out of the due listing; the review of a stuck grant is found.
    const released = await store.getGrant('to-release');
    await store.putGrant({ ...(released as Grant), releasedAt: at(20) }, released?.rev);
    const later = new Date(at(60));
    expect((await all((page) => store.sweepDueGrants(later, page))).flat().sort()).toEqual([
      'active-later',
      'approved-due',
      'half-ended',
    ]);
    expect((await all((page) => store.reviewDueGrants(later, page))).flat().sort()).toEqual([
      'half-ended',
      'review-due',
      'to-release',
    ]);
    await expect(store.sweepDueGrants(now, { nextToken: forgeFrom('GRANTS') })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });

  it("reads the same number of requests and items for the sweeper's listing whatever the number of finished grants", async () => {
    // prepare: a client that counts what DynamoDB answers
    const counted = awsClients(testAws()).dynamodb;
    const reads = { requests: 0, items: 0 };
    counted.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        reads.requests += 1;
        reads.items += Number((result.output as { ScannedCount?: number }).ScannedCount ?? 0);
        return result;
      },
      { step: 'initialize', name: 'countReads' },
    );
    const counting = dynamoStore({ client: counted, tableName, clock, digest: sha256Hex });
    const sweepReads = async () => {
      reads.requests = 0;
      reads.items = 0;
      const due = await all((page) => counting.sweepDueGrants(new Date(at(59)), page));
      return { due: due.flat().length, ...reads };
    };
    await store.putGrant(grantAt('due', 1, { state: 'active', expiresAt: at(31) }), undefined);
    await seedFinished(tableName, 0, 10);
    const few = await sweepReads();

    // act: 300 more finished grants
    await seedFinished(tableName, 10, 300);
    const many = await sweepReads();

    // assess
    expect(few).toEqual({ due: 1, requests: 1, items: 1 });
    expect(many).toEqual(few);
    expect((await store.queryGrants({ state: 'revoked', limit: 100 })).grants).toHaveLength(100);
  });

  async function seedFinished(table: string, from: number, count: number) {
    const items = Array.from({ length: count }, (_, i) => grantItem(finished(`done-${from + i}`, 1)));
    await new DynamoTable({ client, tableName: table }).batchPut(items, 'finished grants');
  }

  const forgeFrom = (partition: string) =>
    Buffer.from(
      JSON.stringify({ p: partition, k: { pk: 'GRANT#x', sk: 'GRANT', gsi1pk: partition, gsi1sk: 'a#x' } }),
    ).toString('base64url');
});
