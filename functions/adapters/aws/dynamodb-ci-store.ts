import { createHash, randomUUID } from 'node:crypto';
import type * as z from 'zod';
import {
  CiCredentialIdSchema,
  type CiCredentialRecord,
  CiCredentialRecordSchema,
} from '../../core/ci-records.ts';
import { KeywardenError, ValidationError } from '../../core/errors.ts';
import { parseInput } from '../../core/grant.ts';
import type { CiCredentialStore, StoredCiCredential } from '../../core/ports.ts';
import type { DynamoTable, Item, StateIndex } from './dynamodb-table.ts';

/**
 * Where CI exchanges and spent token ids are kept, on the state table (dynamodb-table.ts):
 *
 * | item      | pk                                 | sk     | TTL (`expiresAt`)           |
 * |-----------|------------------------------------|--------|-----------------------------|
 * | spent jti | `CI#JTI#<sha256 of [issuer, jti]>` | `JTI`  | keepUntil                   |
 * | exchange  | `CI#CRED#<id>`                     | `CRED` | once finished: end + retention |
 *
 * An exchange's record sits under its item's `record` attribute, beside `rev` and the index
 * attributes, so the table's TTL attribute (`expiresAt`, epoch seconds) stays free for the
 * item's own retention rather than colliding with the record's `expiresAt` (an ISO time).
 * Its listings are each a query on one partition of an index (GSI reads are eventually
 * consistent: an exchange made milliseconds ago may be missing from them):
 *
 * | listing             | index | partition                   | sort key          | present while             |
 * |---------------------|-------|-----------------------------|-------------------|---------------------------|
 * | by job              | gsi3  | `CI#JOB#<sha256 of jobKey>` | `<issuedAt>#<id>` | always                    |
 * | unused              | gsi2  | `CI#UNUSED`                 | `<issuedAt>#<id>` | active, use not recorded  |
 * | ended               | gsi2  | `CI#ENDED`                  | `<ended at>#<id>` | ended (until its TTL)     |
 * | due for the sweeper | gsi4  | `CI#DUE`                    | `<dueAt>#<id>`    | {@link ciDueAt} is defined |
 *
 * gsi2 and gsi4 are sparse and every write is a whole-item put, so the write that records the
 * use, ends the exchange or releases its deny takes it out of the listing. An exchange is in at
 * most one of gsi2's partitions: unused ones are active, ended ones are not.
 */

/** The longest `jti` accepted (GitHub's and GitLab's are UUIDs, 36 characters). */
export const MAX_JTI_LENGTH = 256;
/** The longest issuer accepted (an inventory issuer name or URL). */
export const MAX_ISSUER_LENGTH = 1_024;

/** How long a finished exchange is kept before the table's TTL removes it, by default. */
export const DEFAULT_CI_RETENTION_DAYS = 90;

/**
 * Checks a spend request's untrusted parts: `issuer` and `jti` non-empty and bounded,
 * `keepUntil` a real time.
 *
 * @throws ValidationError saying what was expected and what came (a length, never the value).
 */
export function checkSpend(issuer: string, jti: string, keepUntil: Date): void {
  const bounded = (what: string, value: unknown, max: number) => {
    if (typeof value !== 'string' || value.length === 0 || value.length > max)
      throw new ValidationError(
        `expected a token ${what} of 1 to ${max} characters, got ${
          typeof value === 'string' ? `${value.length} characters` : typeof value
        }`,
      );
  };
  bounded('jti', jti, MAX_JTI_LENGTH);
  bounded('issuer', issuer, MAX_ISSUER_LENGTH);
  if (!(keepUntil instanceof Date) || Number.isNaN(keepUntil.getTime()))
    throw new ValidationError(`expected keepUntil to be a valid Date, got ${String(keepUntil)}`);
}

/** Checks an exchange id taken from a request before it becomes part of a key. */
export function checkCiCredentialId(id: string): void {
  if (!CiCredentialIdSchema.safeParse(id).success)
    throw new ValidationError(
      `expected a CI credential id of letters, digits, '.', '_' or '-' (at most 128), got ${
        typeof id === 'string' ? `${id.length} characters` : typeof id
      }`,
    );
}

/** When the sweeper has work on an exchange: its end while active, its deny's release once ended. */
export function ciDueAt(record: CiCredentialRecord): Date | undefined {
  if (record.state === 'active') return new Date(record.expiresAt);
  if (record.aws?.denied && !record.aws.released) return new Date(record.aws.expiresAt);
  return undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const iso = (time: string | Date) => new Date(time).toISOString();

const Keys = {
  // Hashed: an issuer and a jti are untrusted text of any content; JSON keeps the pair unambiguous.
  jti: (issuer: string, jti: string) => ({
    pk: `CI#JTI#${sha256(JSON.stringify([issuer, jti]))}`,
    sk: 'JTI',
  }),
  credential: (id: string) => ({ pk: `CI#CRED#${id}`, sk: 'CRED' }),
} as const;

const Index = {
  job: { index: 'gsi3', partition: (jobKey: string) => `CI#JOB#${sha256(jobKey)}` },
  unused: { index: 'gsi2', partition: () => 'CI#UNUSED' },
  ended: { index: 'gsi2', partition: () => 'CI#ENDED' },
  due: { index: 'gsi4', partition: () => 'CI#DUE' },
} as const satisfies Record<string, { index: StateIndex; partition: (...args: never[]) => string }>;

/** The index attributes of an exchange's item; gsi2's and gsi4's only while it is listed there. */
function indexAttributes(record: CiCredentialRecord): Item {
  const issued = `${iso(record.issuedAt)}#${record.id}`;
  const due = ciDueAt(record);
  return {
    gsi3pk: Index.job.partition(record.jobKey),
    gsi3sk: issued,
    ...(record.state === 'active' && !record.usedRecorded
      ? { gsi2pk: Index.unused.partition(), gsi2sk: issued }
      : {}),
    ...(record.state === 'ended' && record.ended
      ? { gsi2pk: Index.ended.partition(), gsi2sk: `${iso(record.ended.at)}#${record.id}` }
      : {}),
    ...(due ? { gsi4pk: Index.due.partition(), gsi4sk: `${due.toISOString()}#${record.id}` } : {}),
  };
}

export interface DynamoCiStoreOptions {
  /**
   * Days a finished exchange (ended, with no deny left to release) is kept before the table's
   * TTL removes it; its audit events stay in the audit log.
   * @default 90
   */
  retentionDays?: number;
}

/** Pages read per request when a listing reads a whole index partition. */
const LISTING_PAGE = 500;

/**
 * The {@link CiCredentialStore} on the state table: spent token ids as TTL'd conditional puts,
 * exchanges as revisioned items listed through sparse indexes (never a scan).
 */
export function dynamoCiStore(table: DynamoTable, options: DynamoCiStoreOptions = {}): CiCredentialStore {
  const retentionDays = options.retentionDays ?? DEFAULT_CI_RETENTION_DAYS;
  if (!Number.isInteger(retentionDays) || retentionDays < 1)
    throw new RangeError(
      `dynamoCiStore: expected retentionDays to be a whole number ≥ 1, got ${retentionDays}`,
    );

  const toStored = (item: Item): StoredCiCredential => {
    const parsed = CiCredentialRecordSchema.safeParse(item.record);
    if (!parsed.success)
      throw new KeywardenError(
        `stored CI credential ${String(item.pk)} does not match its schema (${schemaIssues(parsed.error)}); the item was written by something else or changed by hand`,
      );
    return { ...parsed.data, rev: Number(item.rev) };
  };

  /** Every item of one partition of `index` (with sort key ≤ `upTo`), oldest first. */
  async function listing(index: StateIndex, partition: string, upTo?: Date): Promise<Item[]> {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const page = await table.queryIndexPage(index, partition, {
        limit: LISTING_PAGE,
        startKey,
        // '$' sorts after '#': every `<time>#<id>` at `upTo` itself is included.
        ...(upTo ? { skBelow: `${upTo.toISOString()}$` } : {}),
      });
      items.push(...page.items);
      startKey = page.lastKey;
    } while (startKey);
    return items.reverse();
  }

  /**
   * The items of one partition of `index` whose sort key is `<time>#<id>` with the time at or
   * after `since`, oldest first: read newest first, page by page, until a page reaches before
   * `since` (the table layer bounds sort keys from above only).
   */
  async function listingSince(index: StateIndex, partition: string, since: Date): Promise<Item[]> {
    const from = since.toISOString();
    const sortKey = `${index}sk`;
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const page = await table.queryIndexPage(index, partition, { limit: LISTING_PAGE, startKey });
      const recent = page.items.filter((item) => String(item[sortKey]) >= from);
      items.push(...recent);
      startKey = recent.length === page.items.length ? page.lastKey : undefined;
    } while (startKey);
    return items.reverse();
  }

  return {
    async spendJti(issuer, jti, keepUntil) {
      checkSpend(issuer, jti, keepUntil);
      const key = Keys.jti(issuer, jti);
      const writeId = randomUUID();
      // Only `attribute_not_exists`, not "or its TTL has passed" (as the delivery ledger does):
      // keepUntil is the token's expiry plus the verifier's skew, so a token whose jti item is
      // past it is refused as expired before it gets here, and a false for it costs nothing.
      // DynamoDB removes expired items lazily (dynalite never), which this does not rely on.
      const stored = await table.putIf(
        {
          ...key,
          issuer,
          jti,
          expiresAt: Math.ceil(keepUntil.getTime() / 1000),
          writeId,
        },
        { expression: 'attribute_not_exists(pk)' },
      );
      if (stored) return true;
      // The SDK retries a write whose answer was lost; the retry then fails its condition on
      // our own item. The writeId tells that apart from another exchange's spend.
      return (await table.get(key))?.writeId === writeId;
    },

    async putCredential(record, expectedRev) {
      const parsed = parseInput(CiCredentialRecordSchema, record, 'CI credential record');
      // Finished: ended, with no deny left to release (an active exchange is always due).
      const finished = ciDueAt(parsed) === undefined;
      const endedAt = parsed.ended ? new Date(parsed.ended.at) : new Date(parsed.expiresAt);
      const { rev } = await table.putRevisioned(
        Keys.credential(parsed.id),
        {
          record: parsed,
          ...indexAttributes(parsed),
          ...(finished ? { expiresAt: Math.ceil(endedAt.getTime() / 1000) + retentionDays * 86_400 } : {}),
        },
        expectedRev,
        `CI credential ${parsed.id}`,
      );
      return { ...parsed, rev };
    },

    async getCredential(id) {
      checkCiCredentialId(id);
      const item = await table.get(Keys.credential(id));
      return item ? toStored(item) : undefined;
    },

    async listByJob(jobKey) {
      if (typeof jobKey !== 'string' || jobKey.length === 0)
        throw new ValidationError(
          `expected a job key, got ${typeof jobKey === 'string' ? 'an empty string' : typeof jobKey}`,
        );
      const items = await listing(Index.job.index, Index.job.partition(jobKey));
      return items.map(toStored).filter((record) => record.jobKey === jobKey);
    },

    async listDue(now) {
      if (!(now instanceof Date) || Number.isNaN(now.getTime()))
        throw new ValidationError(`expected now to be a valid Date, got ${String(now)}`);
      const items = await listing(Index.due.index, Index.due.partition(), now);
      // The index says when; the record says so too (an item written in an older layout would not).
      return items.map(toStored).filter((record) => {
        const due = ciDueAt(record);
        return due !== undefined && due.getTime() <= now.getTime();
      });
    },

    async listUnused() {
      const items = await listing(Index.unused.index, Index.unused.partition());
      return items.map(toStored).filter((record) => record.state === 'active' && !record.usedRecorded);
    },

    async listEnded(since) {
      if (!(since instanceof Date) || Number.isNaN(since.getTime()))
        throw new ValidationError(`expected since to be a valid Date, got ${String(since)}`);
      const items = await listingSince(Index.ended.index, Index.ended.partition(), since);
      return items
        .map(toStored)
        .filter((record) => record.ended !== undefined && Date.parse(record.ended.at) >= since.getTime());
    },
  };
}

/** A schema failure in a line, paths and messages only (never the stored values). */
function schemaIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || 'record'}: ${issue.message}`).join('; ');
}
