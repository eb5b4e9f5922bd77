import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import { CredentialVersionSchema, RotationStateSchema } from '../../core/credential-version.ts';
import type {
  RotationStore,
  StoredRotation,
  StoredVersion,
  VersionShortcuts,
  VersionsOfMany,
} from '../../core/ports.ts';
import { type DynamoTable, type Item, Keys } from './dynamodb-table.ts';

/** Version items as versions, oldest first (ties by id), as every reader expects them. */
const versionsOf = (items: readonly Item[]): StoredVersion[] =>
  items
    .map(({ pk: _pk, sk: _sk, rev, writeId: _w, ...rest }) => ({
      ...CredentialVersionSchema.parse(rest),
      rev: Number(rev),
    }))
    .sort((a, b) => a.issuedAt.localeCompare(b.issuedAt) || a.versionId.localeCompare(b.versionId));

const rotationOf = (item: Item): StoredRotation => {
  const { pk: _pk, sk: _sk, rev, ...rest } = item;
  return { ...RotationStateSchema.parse(rest), rev: Number(rev) };
};

/** Most identities whose versions `listVersionsOf` reads with a Query each; more are read by one Scan. */
export const VERSIONS_BY_QUERY = 200;
/** Queries of `listVersionsOf` in flight at once: a few milliseconds each in DynamoDB. */
const QUERIES_AT_ONCE = 64;
/** Segments of `listVersionsOf`'s Scan, read at once: each reads up to 1 MB a request. */
const SCAN_SEGMENTS = 4;
/**
 * Items `listVersionsOf`'s Scan may read per identity asked for before it gives up for a Query
 * each: past ~8, the Scan reads more (in capacity and in time, at 1 MB a page against 64 Queries
 * in flight) than the Queries would — a table whose audit trail and campaigns outgrew its versions.
 */
const SCANNED_PER_IDENTITY = 8;

/**
 * Credential versions and rotation progress (which holds the identity's rotation lock), all in
 * the identity's partition (`IDENTITY#<id>`): versions under `VERSION#<versionId>`, then `ROTATION`.
 */
export function dynamoRotationStore(table: DynamoTable): RotationStore & VersionShortcuts & VersionsOfMany {
  return {
    async listVersions(identityId) {
      return versionsOf(await table.query(`IDENTITY#${identityId}`, 'VERSION#'));
    },

    /**
     * The versions of many identities, by identity (each oldest first, as `listVersions` orders
     * them; an identity without versions maps to none). Up to {@link VERSIONS_BY_QUERY}
     * identities: a Query each, {@link QUERIES_AT_ONCE} at a time. More: one parallel Scan of the
     * table's version items, a few requests instead of thousands (a campaign planned over a
     * whole fleet) — while the table is small beside them: the Scan reads the whole table, so
     * past {@link SCANNED_PER_IDENTITY} items read per identity it gives up for a Query each.
     */
    async listVersionsOf(identityIds) {
      const wanted = new Set(identityIds);
      const byIdentity = new Map<string, StoredVersion[]>(identityIds.map((id) => [id, []]));
      const items =
        wanted.size > VERSIONS_BY_QUERY
          ? await table.scanSortKeyPrefix('VERSION#', SCAN_SEGMENTS, wanted.size * SCANNED_PER_IDENTITY)
          : undefined;
      if (items === undefined) {
        const limit = pLimit(QUERIES_AT_ONCE);
        await Promise.all(
          [...wanted].map((id) =>
            limit(async () => {
              byIdentity.set(id, versionsOf(await table.query(`IDENTITY#${id}`, 'VERSION#')));
            }),
          ),
        );
        return byIdentity;
      }
      const grouped = new Map<string, Item[]>();
      for (const item of items) {
        const id = String(item.pk).slice('IDENTITY#'.length);
        if (!String(item.pk).startsWith('IDENTITY#') || !wanted.has(id)) continue;
        const mine = grouped.get(id);
        if (mine) mine.push(item);
        else grouped.set(id, [item]);
      }
      for (const [id, mine] of grouped) byIdentity.set(id, versionsOf(mine));
      return byIdentity;
    },

    /**
     * Versions not recorded yet, in batches: one BatchGetItem per 100 of their keys, then one
     * BatchWriteItem per 25 of those absent (revision 1, as `putVersion` creates them). A few
     * dozen requests for a plan's hundreds of adoptions, where a conditional put each took one
     * request apiece; what lands between the read and the write is overwritten (not conditional).
     */
    async createVersions(versions) {
      if (versions.length === 0) return [];
      const present = await table.batchGet(
        versions.map((version) => Keys.version(version.identityId, version.versionId)),
        `${versions.length} credential versions`,
      );
      const taken = new Set(present.map((item) => `${String(item.pk)}\n${String(item.sk)}`));
      const absent = versions.filter((version) => {
        const key = Keys.version(version.identityId, version.versionId);
        return !taken.has(`${key.pk}\n${key.sk}`);
      });
      await table.batchPut(
        absent.map((version) => ({
          ...Keys.version(version.identityId, version.versionId),
          ...CredentialVersionSchema.parse(version),
          rev: 1,
          writeId: randomUUID(),
        })),
        `${absent.length} adopted credential versions`,
      );
      return absent;
    },

    /** One Query of the whole partition: the versions, the progress (and the lock and declaration, left aside). */
    async loadRotation(identityId) {
      const items = await table.query(`IDENTITY#${identityId}`);
      const rotation = items.find((item) => item.sk === Keys.rotation(identityId).sk);
      return {
        state: rotation ? rotationOf(rotation) : undefined,
        versions: versionsOf(items.filter((item) => String(item.sk).startsWith('VERSION#'))),
      };
    },

    /** One version by its key: one GetItem, where `listVersions` queries the identity's partition. */
    async getVersion(identityId, versionId) {
      const item = await table.get(Keys.version(identityId, versionId));
      if (!item) return undefined;
      const { pk: _pk, sk: _sk, rev, writeId: _w, ...rest } = item;
      return { ...CredentialVersionSchema.parse(rest), rev: Number(rev) };
    },

    /**
     * Marks a version revoked in one conditional update, without reading it first (a
     * campaign does this for thousands of versions). Returns false when the version is
     * unknown or already revoked: nothing left to do. Bumps the revision, so a writer
     * holding the version as it was read sees a conflict and reads it again.
     */
    markVersionRevoked(identityId, versionId, change) {
      return table.updateIf(
        Keys.version(identityId, versionId),
        {
          expression: 'SET #stage = :revoked, retiredAt = :at, note = :note, rev = rev + :one, writeId = :w',
          names: { '#stage': 'stage' },
          values: {
            ':revoked': 'revoked',
            ':at': change.at,
            ':note': change.note,
            ':one': 1,
            ':w': randomUUID(),
          },
        },
        'attribute_exists(pk) AND #stage <> :revoked',
      );
    },

    /**
     * A campaign batch's versions marked revoked: one BatchGetItem of them, one BatchWriteItem
     * of those still not revoked (the revision bumped, so a writer holding one as read sees a
     * conflict). Not conditional: a write landing between the read and the put is overwritten
     * by the revoked version, which is what the credential now is.
     */
    async markVersionsRevoked(marks) {
      const items = await table.batchGet(
        marks.map((mark) => Keys.version(mark.identityId, mark.versionId)),
        `${marks.length} credential versions`,
      );
      const byKey = new Map(marks.map((mark) => [`${mark.identityId}\n${mark.versionId}`, mark]));
      const revoked = items.flatMap((item) => {
        const mark = byKey.get(`${item.identityId}\n${item.versionId}`);
        if (!mark || item.stage === 'revoked') return [];
        const { writeId: _w, ...rest } = item;
        return [
          {
            ...rest,
            pk: String(item.pk),
            sk: String(item.sk),
            stage: 'revoked',
            retiredAt: mark.at,
            note: mark.note,
            rev: Number(item.rev) + 1,
          },
        ];
      });
      await table.batchPut(revoked, `${revoked.length} credential versions marked revoked`);
    },

    putVersion(version, expectedRev) {
      return table.putRevisioned(
        Keys.version(version.identityId, version.versionId),
        CredentialVersionSchema.parse(version),
        expectedRev,
        `version ${version.versionId} of ${version.identityId}`,
      );
    },

    async getRotation(identityId) {
      const item = await table.get(Keys.rotation(identityId));
      return item ? rotationOf(item) : undefined;
    },

    putRotation(state, expectedRev) {
      return table.putRevisioned(
        Keys.rotation(state.identityId),
        RotationStateSchema.parse(state),
        expectedRev,
        `rotation of ${state.identityId}`,
      );
    },
  };
}
