import { beforeEach, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { VERSIONS_BY_QUERY } from '../../functions/adapters/aws/dynamodb-rotation-store.ts';
import { type DynamoStore, dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { credentialVersion, FixedClock, identity } from '../support/fixtures.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const client = awsClients(testAws()).dynamodb;
const clock = new FixedClock(new Date('2026-11-01T00:00:00Z'));
/** The DynamoDB commands the store sent, by name, in order. */
const sent: string[] = [];
client.middlewareStack.add(
  (next, context) => (args) => {
    sent.push(context.commandName as string);
    return next(args);
  },
  { step: 'initialize', name: 'countVersionsCommands' },
);
let store: DynamoStore;

beforeEach(async () => {
  const tableName = uniqueName('kw-versions');
  await ensureStateTable(client, tableName);
  store = dynamoStore({ client, tableName, clock, digest: sha256Hex });
  sent.length = 0;
});

const count = (command: string) => sent.filter((name) => name === command).length;

/** `count` identities, each with two versions recorded (one revoked), and an unrelated item beside them. */
async function recordFleet(count: number) {
  const owners = Array.from({ length: count }, (_, i) => identity({ id: `app-${i}`, kind: 'vault-token' }));
  await store.createVersions(
    owners.flatMap((owner) => [
      credentialVersion(owner, {
        handle: `${owner.id}-old`,
        stage: 'revoked',
        issuedAt: '2026-10-01T00:00:00.000Z',
      }),
      credentialVersion(owner, { handle: `${owner.id}-new` }),
    ]),
  );
  return owners;
}

describe('state store: the versions of many identities (campaign planning)', () => {
  it('reads a few identities with a Query each, oldest first, an identity without versions as none', async () => {
    const owners = await recordFleet(3);

    const read = await store.listVersionsOf(['app-0', 'app-2', 'nobody']);

    expect([...read.keys()]).toEqual(['app-0', 'app-2', 'nobody']);
    expect(read.get('app-0')?.map((v) => [v.handle, v.stage, v.rev])).toEqual([
      ['app-0-old', 'revoked', 1],
      ['app-0-new', 'current', 1],
    ]);
    expect(read.get('nobody')).toEqual([]);
    expect(read.get('app-2')).toEqual(await store.listVersions(owners[2]?.id ?? ''));
  });

  it(`reads more than ${VERSIONS_BY_QUERY} identities in one Scan, with what a Query each would read`, async () => {
    const owners = await recordFleet(VERSIONS_BY_QUERY + 10);
    const ids = owners.map((owner) => owner.id).filter((id) => id !== 'app-5');

    sent.length = 0;

    const read = await store.listVersionsOf(ids);

    expect(count('ScanCommand')).toBeLessThanOrEqual(8);
    expect(count('QueryCommand')).toBe(0);
    expect(read.size).toBe(ids.length);
    expect(read.has('app-5')).toBe(false);
    for (const id of ['app-0', 'app-100', `app-${VERSIONS_BY_QUERY + 9}`]) {
      expect(read.get(id)).toEqual(await store.listVersions(id));
    }
  });

  it('gives the Scan up for a Query each when the table holds far more than the versions asked for', async () => {
    const owners = await recordFleet(VERSIONS_BY_QUERY + 10);
    // A long audit trail: ten times the versions, in the same table.
    const auditor = identity({ id: 'audited', kind: 'vault-token' });
    await store.createVersions(
      Array.from({ length: 20 * owners.length }, (_, i) =>
        credentialVersion(auditor, { handle: `audited-${i}`, stage: 'revoked' }),
      ),
    );
    const ids = owners.map((owner) => owner.id);
    sent.length = 0;

    const read = await store.listVersionsOf(ids);

    expect(count('QueryCommand')).toBe(ids.length);
    expect(read.get('app-7')).toEqual(await store.listVersions('app-7'));
    expect(read.get('audited')).toBeUndefined();
  });

  it('records only versions not recorded yet, leaving one recorded meanwhile as it is', async () => {
    const owner = identity({ id: 'app-build', kind: 'vault-token' });
    const meanwhile = await store.putVersion(
      credentialVersion(owner, { handle: 'tok-1', stage: 'previous' }),
      undefined,
    );

    const written = await store.createVersions([
      credentialVersion(owner, { handle: 'tok-1', origin: 'adopted' }),
      credentialVersion(owner, { handle: 'tok-2', origin: 'adopted' }),
    ]);

    expect(written.map((v) => v.handle)).toEqual(['tok-2']);
    expect(await store.getVersion(owner.id, 'v-tok-1')).toEqual(meanwhile);
    expect((await store.getVersion(owner.id, 'v-tok-2'))?.rev).toBe(1);
    // A version it created is revisioned like one putVersion created: the next write expects revision 1.
    await expect(
      store.putVersion(credentialVersion(owner, { handle: 'tok-2', stage: 'revoked' }), 1),
    ).resolves.toMatchObject({ rev: 2 });
  });
});
