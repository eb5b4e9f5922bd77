/**
 * Where CI exchanges, spent token ids and approvals are kept: one behavioural spec run
 * against the DynamoDB adapters on the local DynamoDB (dynalite) and against the in-memory
 * twins unit specs use (test/support/memory-ci-stores.ts), so the two cannot drift apart.
 * Then what only the table shows: TTLs, keys that never carry the raw token id, and
 * listings that are queries.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { dynamoApprovalLedger } from '../../functions/adapters/aws/dynamodb-approval-ledger.ts';
import { dynamoCiStore } from '../../functions/adapters/aws/dynamodb-ci-store.ts';
import { DynamoTable, ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import type { ApprovalRecord, CiCredentialRecord } from '../../functions/core/ci-records.ts';
import { ConflictError, ValidationError } from '../../functions/core/errors.ts';
import type { ApprovalLedger, CiCredentialStore } from '../../functions/core/ports.ts';
import { MemoryApprovalLedger, MemoryCiStore } from '../support/memory-ci-stores.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const client = awsClients(testAws()).dynamodb;

interface Stores {
  store: CiCredentialStore;
  ledger: ApprovalLedger;
}

/** A fresh pair of stores per spec: the listings read everything, so specs must not meet. */
const implementations: [string, () => Promise<Stores>][] = [
  [
    'DynamoDB (local)',
    async () => {
      const tableName = uniqueName('kw-ci');
      await ensureStateTable(client, tableName);
      const table = new DynamoTable({ client, tableName });
      return { store: dynamoCiStore(table), ledger: dynamoApprovalLedger(table) };
    },
  ],
  ['in memory', async () => ({ store: new MemoryCiStore(), ledger: new MemoryApprovalLedger() })],
];

const NOW = new Date('2026-12-05T09:00:00.000Z');
const at = (minutes: number) => new Date(NOW.getTime() + minutes * 60_000).toISOString();

/** An exchange issued `issued` minutes from NOW for 15 minutes; `overrides` replace whole fields. */
function exchange(overrides: Partial<CiCredentialRecord> & { issued?: number } = {}): CiCredentialRecord {
  const { issued = -5, ...rest } = overrides;
  const id = `x-${randomUUID()}`;
  return {
    id,
    grant: 'app-deploy',
    issuer: 'github',
    jobKey: 'github/1234/5678/1',
    correlationId: 'ci-github-1234.5678.1',
    actor: 'octocat',
    jobIds: { run_id: '5678', job_id: '1' },
    issuedAt: at(issued),
    expiresAt: at(issued + 15),
    vault: { accessor: `acc-${randomUUID()}`, expiresAt: at(issued + 15) },
    state: 'active',
    usedRecorded: false,
    ...rest,
  };
}

/** An AWS session part ending `ends` minutes from NOW. */
const session = (ends: number, flags: { denied?: boolean; released?: boolean } = {}) => ({
  roleArn: 'arn:aws:iam::123456789012:role/deploy',
  sourceIdentity: 'ci-github-1234.5678.1',
  sessionName: 'ci-github-5678-1',
  expiresAt: at(ends),
  denied: flags.denied ?? false,
  released: flags.released ?? false,
});

const ended = (record: CiCredentialRecord, by: 'job' | 'webhook' | 'ttl' = 'job'): CiCredentialRecord => ({
  ...record,
  state: 'ended',
  ended: { at: at(0), by },
});

const digestOf = () => `sha256:${randomBytes(32).toString('hex')}`;

/** An approval of `digest` made `minutes` from NOW; the signature is random bytes, not a real one. */
function approval(digest: string, minutes: number, overrides: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    id: randomUUID(),
    digest,
    gate: 'publish',
    environment: 'prod',
    approver: { kind: 'local', id: 'alice' },
    approvedAt: at(minutes),
    expiresAt: at(minutes + 24 * 60),
    statement: JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ digest }] }),
    signature: randomBytes(64).toString('base64'),
    keyId: `key-${randomUUID()}`,
    ...overrides,
  };
}

const ids = (records: readonly { id: string }[]) => records.map((r) => r.id).sort();

/** What a rejected promise was rejected with, or undefined when it fulfilled. */
const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe.each(implementations)('CI stores (%s)', (_name, fresh) => {
  describe('spent token ids', () => {
    it('of 32 concurrent spends of one jti, exactly one is true; the same jti of another issuer is its own', async () => {
      // prepare
      const { store } = await fresh();
      const jti = randomUUID();
      const keepUntil = new Date(Date.now() + 10 * 60_000);

      // act
      const answers = await Promise.all(
        Array.from({ length: 32 }, () => store.spendJti('github', jti, keepUntil)),
      );
      const again = await store.spendJti('github', jti, keepUntil);
      const otherIssuer = await store.spendJti('gitlab', jti, keepUntil);

      // assess
      expect(answers.filter(Boolean)).toHaveLength(1);
      expect(again).toBe(false);
      expect(otherIssuer).toBe(true);
    });

    it('keeps a jti spent after keepUntil has passed (its token has expired by then)', async () => {
      const { store } = await fresh();
      const jti = randomUUID();
      const past = new Date(Date.now() - 60_000);

      expect(await store.spendJti('github', jti, past)).toBe(true);
      expect(await store.spendJti('github', jti, new Date(Date.now() + 60_000))).toBe(false);
    });

    it('tells an issuer/jti pair apart from one that joins to the same text', async () => {
      const { store } = await fresh();
      const keepUntil = new Date(Date.now() + 60_000);

      expect(await store.spendJti('a#b', 'c', keepUntil)).toBe(true);
      expect(await store.spendJti('a', 'b#c', keepUntil)).toBe(true);
    });
  });

  describe('exchanges', () => {
    it('are written with revisions: a stale or missing revision is a ConflictError, and of 8 racing writers one wins', async () => {
      // prepare
      const { store } = await fresh();
      const record = exchange();

      // act
      const first = await store.putCredential(record, undefined);
      const duplicate = await failureOf(store.putCredential(record, undefined));
      const second = await store.putCredential({ ...record, usedRecorded: true }, first.rev);
      const stale = await failureOf(store.putCredential(ended(record), first.rev));
      const race = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          store.putCredential({ ...ended(record), grant: `writer-${i}` }, second.rev),
        ),
      );
      const read = await store.getCredential(record.id);

      // assess
      expect(first).toEqual({ ...record, rev: 1 });
      expect(duplicate).toBeInstanceOf(ConflictError);
      expect(second.rev).toBe(2);
      expect(stale).toBeInstanceOf(ConflictError);
      const won = race.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const lost of race.filter((r) => r.status === 'rejected'))
        expect(lost.reason).toBeInstanceOf(ConflictError);
      expect(read).toEqual(won[0]?.value);
      expect(read?.rev).toBe(3);
      expect(await store.getCredential('x-never-stored')).toBeUndefined();
    });

    it('are listed by job: only that job’s, ended ones included, oldest first', async () => {
      // prepare
      const { store } = await fresh();
      const mine = [
        exchange({ issued: -3 }),
        ended(exchange({ issued: -9 })),
        exchange({ issued: -1, grant: 'app-publish' }),
      ];
      const other = exchange({ jobKey: 'github/1234/5678/2' });
      const longKey = exchange({ jobKey: `github/${'9'.repeat(3_000)}` });
      for (const record of [...mine, other, longKey]) await store.putCredential(record, undefined);

      // act
      const listed = await store.listByJob('github/1234/5678/1');

      // assess
      expect(listed.map((r) => r.id)).toEqual([mine[1], mine[0], mine[2]].map((r) => r?.id));
      expect(ids(await store.listByJob(other.jobKey))).toEqual([other.id]);
      expect(ids(await store.listByJob(longKey.jobKey))).toEqual([longKey.id]);
      expect(await store.listByJob('github/nobody')).toEqual([]);
    });

    it('are due for the sweeper when active past their end, or ended with a deny still to release past the session’s end, soonest first; nothing else', async () => {
      // prepare
      const { store } = await fresh();
      const due = {
        expired: exchange({ issued: -20 }),
        expiringNow: exchange({ issued: -15 }),
        denyToRelease: ended(exchange({ issued: -20, aws: session(-10, { denied: true }) }), 'webhook'),
      };
      const notDue = {
        running: exchange({ issued: -5 }),
        denyStillCovering: ended(exchange({ issued: -5, aws: session(10, { denied: true }) })),
        released: ended(exchange({ issued: -20, aws: session(-5, { denied: true, released: true }) })),
        endedNoDeny: ended(exchange({ issued: -20, aws: session(-5) })),
        endedVaultOnly: ended(exchange({ issued: -20 }), 'ttl'),
      };
      for (const record of [...Object.values(due), ...Object.values(notDue)])
        await store.putCredential(record, undefined);

      // act
      const listed = await store.listDue(NOW);

      // assess
      expect(listed.map((r) => r.id)).toEqual([due.denyToRelease.id, due.expired.id, due.expiringNow.id]);
      expect(ids(await store.listDue(new Date(at(-60))))).toEqual([]);
      expect(ids(await store.listDue(new Date(at(60))))).toEqual(
        ids([...Object.values(due), notDue.running, notDue.denyStillCovering]),
      );
    });

    it('leave the due listing once the sweeper releases the deny', async () => {
      const { store } = await fresh();
      const record = ended(exchange({ issued: -20, aws: session(-5, { denied: true }) }));
      const stored = await store.putCredential(record, undefined);

      const aws = { ...session(-5, { denied: true }), released: true };
      await store.putCredential({ ...record, aws }, stored.rev);

      expect(await store.listDue(NOW)).toEqual([]);
    });

    it('are unused while active with no use recorded, and leave that listing when it is recorded', async () => {
      // prepare
      const { store } = await fresh();
      const unused = exchange();
      const used = exchange({ usedRecorded: true });
      const endedUnused = ended(exchange());
      const stored = await store.putCredential(unused, undefined);
      for (const record of [used, endedUnused]) await store.putCredential(record, undefined);

      // act
      const before = await store.listUnused();
      await store.putCredential({ ...unused, usedRecorded: true }, stored.rev);
      const after = await store.listUnused();

      // assess
      expect(ids(before)).toEqual([unused.id]);
      expect(after).toEqual([]);
    });

    it('are listed as ended from a given time on, oldest end first; active ones and those ended before it are not', async () => {
      // prepare
      const { store } = await fresh();
      const endedAt = (record: CiCredentialRecord, minutes: number): CiCredentialRecord => ({
        ...record,
        state: 'ended',
        ended: { at: at(minutes), by: 'job' },
      });
      const long = endedAt(exchange({ issued: -60 * 24 * 8 }), -60 * 24 * 8);
      const atSince = endedAt(exchange(), -60);
      const later = endedAt(exchange(), -1);
      const sooner = endedAt(exchange({ aws: session(5, { denied: true }) }), -30);
      const active = exchange();
      const stored = await store.putCredential(active, undefined);
      for (const record of [long, later, atSince, sooner]) await store.putCredential(record, undefined);

      // act
      const before = await store.listEnded(new Date(at(-60)));
      await store.putCredential(endedAt(active, 0), stored.rev);
      const after = await store.listEnded(new Date(at(-60)));

      // assess
      expect(before.map((r) => r.id)).toEqual([atSince.id, sooner.id, later.id]);
      expect(after.map((r) => r.id)).toEqual([atSince.id, sooner.id, later.id, active.id]);
      expect(after.at(-1)?.ended).toEqual({ at: at(0), by: 'job' });
    });
  });

  describe('approvals', () => {
    it('are listed per digest, oldest first', async () => {
      // prepare
      const { ledger } = await fresh();
      const digest = digestOf();
      const sign = approval(digest, -30, { gate: 'sign' });
      const publish = approval(digest, -20, { gate: 'publish', approver: { kind: 'local', id: 'bob' } });
      const promote = approval(digest, -10, { gate: 'promote' });
      const elsewhere = approval(digestOf(), -25);

      // act
      for (const record of [promote, elsewhere, sign, publish]) await ledger.append(record);

      // assess
      expect(await ledger.listFor(digest)).toEqual([sign, publish, promote]);
      expect(await ledger.listFor(elsewhere.digest)).toEqual([elsewhere]);
      expect(await ledger.listFor(digestOf())).toEqual([]);
    });

    it('are append-only: the same approval again is accepted once more, other contents under its id are a ConflictError', async () => {
      // prepare
      const { ledger } = await fresh();
      const digest = digestOf();
      const record = approval(digest, -5);
      await ledger.append(record);

      // act
      const again = await failureOf(ledger.append(structuredClone(record)));
      const rewritten = await failureOf(ledger.append({ ...record, environment: 'staging' }));
      const resigned = await failureOf(
        ledger.append({ ...record, signature: randomBytes(64).toString('base64') }),
      );

      // assess
      expect(again).toBeUndefined();
      expect(rewritten).toBeInstanceOf(ConflictError);
      expect(resigned).toBeInstanceOf(ConflictError);
      expect(await ledger.listFor(digest)).toEqual([record]);
    });
  });

  describe('bad input', () => {
    it('is a ValidationError that says what was expected, never a DynamoDB error, and never echoes a token id', async () => {
      // prepare
      const { store, ledger } = await fresh();
      const keepUntil = new Date(Date.now() + 60_000);
      const bigJti = randomBytes(2_560).toString('hex'); // 5 KB

      // act
      const failures = {
        bigJti: await failureOf(store.spendJti('github', bigJti, keepUntil)),
        emptyJti: await failureOf(store.spendJti('github', '', keepUntil)),
        bigIssuer: await failureOf(store.spendJti('x'.repeat(5_000), randomUUID(), keepUntil)),
        badTime: await failureOf(store.spendJti('github', randomUUID(), new Date(Number.NaN))),
        badId: await failureOf(store.getCredential(`../${'x'.repeat(300)}`)),
        badRecord: await failureOf(store.putCredential({ ...exchange(), issuedAt: 'yesterday' }, undefined)),
        badDigest: await failureOf(ledger.listFor('sha256:short')),
        badApproval: await failureOf(ledger.append({ ...approval(digestOf(), 0), gate: 'ship' as 'sign' })),
      };

      // assess
      const says: Record<keyof typeof failures, RegExp> = {
        bigJti: /^expected a token jti of 1 to 256 characters, got 5120 characters$/,
        emptyJti: /^expected a token jti of 1 to 256 characters, got 0 characters$/,
        bigIssuer: /^expected a token issuer of 1 to 1024 characters, got 5000 characters$/,
        badTime: /^expected keepUntil to be a valid Date/,
        badId: /^expected a CI credential id of .*, got 303 characters$/,
        badRecord: /^CI credential record: issuedAt: /,
        badDigest: /expected an artifact digest as sha256:<64 lowercase hex digits>/,
        badApproval: /^approval record: gate: .*expected one of/,
      };
      for (const [what, failure] of Object.entries(failures)) {
        expect(failure, what).toBeInstanceOf(ValidationError);
        expect((failure as Error).message, what).toMatch(says[what as keyof typeof failures]);
      }
      expect(await store.spendJti('github', randomUUID(), keepUntil)).toBe(true);
    });
  });
});

describe('CI stores on the table', () => {
  let table: DynamoTable;
  let tableName: string;
  beforeAll(async () => {
    tableName = uniqueName('kw-ci-items');
    await ensureStateTable(client, tableName);
    table = new DynamoTable({ client, tableName });
  });

  it('keeps a spent jti under a hash of issuer and jti, with the TTL attribute at keepUntil (rounded up to the second)', async () => {
    // prepare
    const jti = randomUUID();
    const keepUntil = new Date(Date.now() + 10 * 60_000 + 1);

    // act
    await dynamoCiStore(table).spendJti('github', jti, keepUntil);

    // assess
    const items = (await scanAll()).filter((item) => item.jti === jti);
    expect(items).toHaveLength(1);
    expect(items[0]?.pk).toMatch(/^CI#JTI#[0-9a-f]{64}$/);
    expect(items[0]?.expiresAt).toBe(Math.ceil(keepUntil.getTime() / 1000));
  });

  it('gives a finished exchange a TTL of its end plus the retention, and none while it is active or its deny is on', async () => {
    // prepare
    const store = dynamoCiStore(table, { retentionDays: 7 });
    const active = exchange();
    const denied = ended(exchange({ aws: session(5, { denied: true }) }));
    const finished = ended(exchange());

    // act
    for (const record of [active, denied, finished]) await store.putCredential(record, undefined);

    // assess
    const ttlOf = async (id: string) => (await table.get({ pk: `CI#CRED#${id}`, sk: 'CRED' }))?.expiresAt;
    expect(await ttlOf(active.id)).toBeUndefined();
    expect(await ttlOf(denied.id)).toBeUndefined();
    expect(await ttlOf(finished.id)).toBe(Date.parse(at(0)) / 1000 + 7 * 86_400);
    expect((await store.getCredential(finished.id))?.expiresAt).toBe(finished.expiresAt);
  });

  it('lists an exchange in the sparse unused, ended and due indexes only while it belongs there', async () => {
    // prepare
    const store = dynamoCiStore(table);
    const active = exchange();
    const used = exchange({ usedRecorded: true });
    const denied = ended(exchange({ aws: session(5, { denied: true }) }));
    const finished = ended(exchange());

    // act
    for (const record of [active, used, denied, finished]) await store.putCredential(record, undefined);

    // assess
    const indexesOf = async (id: string) => {
      const item = await table.get({ pk: `CI#CRED#${id}`, sk: 'CRED' });
      return [item?.gsi2pk, item?.gsi4pk, item?.gsi4sk];
    };
    expect(await indexesOf(active.id)).toEqual(['CI#UNUSED', 'CI#DUE', `${active.expiresAt}#${active.id}`]);
    expect(await indexesOf(used.id)).toEqual([undefined, 'CI#DUE', `${used.expiresAt}#${used.id}`]);
    expect(await indexesOf(denied.id)).toEqual([
      'CI#ENDED',
      'CI#DUE',
      `${denied.aws?.expiresAt}#${denied.id}`,
    ]);
    expect(await indexesOf(finished.id)).toEqual(['CI#ENDED', undefined, undefined]);
    expect((await table.get({ pk: `CI#CRED#${finished.id}`, sk: 'CRED' }))?.gsi2sk).toBe(
      `${finished.ended?.at}#${finished.id}`,
    );
  });

  it('reads every listing with one Query and never a Scan', async () => {
    // prepare
    const commands: string[] = [];
    const counted = awsClients(testAws()).dynamodb;
    counted.middlewareStack.add(
      (next, context) => (args) => {
        commands.push(context.commandName as string);
        return next(args);
      },
      { step: 'initialize', name: 'countCommands' },
    );
    const store = dynamoCiStore(new DynamoTable({ client: counted, tableName }));
    const ledger = dynamoApprovalLedger(new DynamoTable({ client: counted, tableName }));

    // act
    await store.listByJob('github/1234/5678/1');
    await store.listDue(NOW);
    await store.listUnused();
    await store.listEnded(new Date(at(-7 * 24 * 60)));
    await ledger.listFor(digestOf());

    // assess
    expect(commands).toEqual([
      'QueryCommand',
      'QueryCommand',
      'QueryCommand',
      'QueryCommand',
      'QueryCommand',
    ]);
  });

  /** Every item of the table (a test's look at the layout; the stores never scan). */
  async function scanAll() {
    const { Items = [] } = await DynamoDBDocumentClient.from(client).send(
      new ScanCommand({ TableName: tableName }),
    );
    return Items;
  }
});
