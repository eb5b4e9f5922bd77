import { randomUUID } from 'node:crypto';
import {
  type AuditEventInput,
  type AuditHead,
  type AuditRecord,
  AuditRecordSchema,
  type Digest,
  nextRecords,
} from '../../core/audit.ts';
import { KeywardenError } from '../../core/errors.ts';
import { AUDIT_CLOCK_SKEW_MS, type AuditLog, type Clock } from '../../core/ports.ts';
import { type DynamoTable, type Item, Keys } from './dynamodb-table.ts';

export interface DynamoAuditLogProps {
  clock: Clock;
  digest: Digest;
  /** How many times an audit append retries after losing the race for the head. @default 100 */
  maxAppendAttempts?: number;
}

/** Records in one audit block item at most. */
const AUDIT_BLOCK_RECORDS = 100;
/** Serialized events in one block at most (UTF-8 bytes), well below DynamoDB's 400 KB item limit (hashes and ids come on top). */
const AUDIT_BLOCK_BYTES = 256_000;

/** The records an `AUDIT` item holds: one (a flat record item) or a block's run. */
function recordsOf(
  { pk: _pk, sk: _sk, ...rest }: Item,
  keep: (raw: Item) => boolean = () => true,
): AuditRecord[] {
  const raw: Item[] = Array.isArray(rest.records) ? rest.records : [rest];
  return raw.filter(keep).map((record) => AuditRecordSchema.parse(record));
}

/** How many of the waiting events go in the next block: at least one, within both bounds. */
function blockLength(events: readonly AuditEventInput[]): number {
  let bytes = 0;
  let length = 0;
  for (const event of events.slice(0, AUDIT_BLOCK_RECORDS)) {
    bytes += Buffer.byteLength(JSON.stringify(event), 'utf8') + 400;
    if (length > 0 && bytes > AUDIT_BLOCK_BYTES) break;
    length += 1;
  }
  return Math.max(1, length);
}

/**
 * The hash-chained audit trail in the `AUDIT` partition: records (or blocks of records)
 * under `SEQ#<12-digit seq>`, and the head checkpoint under `HEAD`.
 */
export function dynamoAuditLog(table: DynamoTable, props: DynamoAuditLogProps): AuditLog {
  const maxAppendAttempts = props.maxAppendAttempts ?? 100;
  /** The last record this process appended or saw; a guess, checked by the conditional put. */
  let lastSeen: AuditHead | undefined;
  /** Events waiting for the next write, with their callers. */
  const waiting: {
    event: AuditEventInput;
    resolve: (record: AuditRecord) => void;
    reject: (error: unknown) => void;
  }[] = [];
  /** Whether a write of this process is under way; it takes the waiting events after it. */
  let flushing = false;

  /** The last record of the chain, read from the records themselves (the head may lag). */
  const last = async (): Promise<AuditHead | undefined> => {
    const item = await table.last('AUDIT', 'SEQ#');
    if (!item) return undefined;
    // A block item holds a run of records; the chain goes on after its last one.
    return item.records
      ? { seq: Number(item.lastSeq), hash: String(item.lastHash) }
      : { seq: Number(item.seq), hash: String(item.hash) };
  };

  const appendBlock = async (events: readonly AuditEventInput[]): Promise<AuditRecord[]> => {
    const first = events[0];
    if (!first) return [];
    for (let attempt = 1; ; attempt += 1) {
      // First try after the record we last saw; other writers make that guess fail, then read.
      const previous = attempt === 1 && lastSeen ? lastSeen : await last();
      const at = props.clock.now().toISOString();
      const records = nextRecords(previous, events, () => ({ id: randomUUID(), at }), props.digest);
      const head = records[0] as AuditRecord;
      const tail = records[records.length - 1] as AuditRecord;
      const key = Keys.audit(head.seq);
      // One record keeps the flat item of earlier versions; several go in one block item.
      const item =
        records.length === 1
          ? { ...key, ...head }
          : { ...key, lastSeq: tail.seq, lastHash: tail.hash, records };
      if (!(await table.putIf(item, { expression: 'attribute_not_exists(pk)' }))) {
        // Our own write, retried by the SDK after its answer was lost, is not a lost race.
        const stored = await table.get(key);
        const storedId = (stored?.records as { id?: unknown }[] | undefined)?.[0]?.id ?? stored?.id;
        if (storedId !== head.id) {
          lastSeen = undefined;
          if (attempt >= maxAppendAttempts) {
            throw new KeywardenError(
              `audit append for ${first.type} ${first.subject}${events.length > 1 ? ` and ${events.length - 1} more` : ''} lost the race for sequence numbers ${attempt} times; try again`,
              { retryable: true },
            );
          }
          if (attempt > 1)
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * Math.min(attempt, 10)));
          continue;
        }
      }
      lastSeen = { seq: tail.seq, hash: tail.hash };
      // While more events wait, only the last write of the burst moves the head: it is a
      // checkpoint that may lag, and the burst's final write brings it level with the chain.
      if (waiting.length > 0) return records;
      // False: a later append moved the head further already.
      await table.putIf(
        { ...Keys.auditHead, seq: tail.seq, hash: tail.hash },
        { expression: 'attribute_not_exists(pk) OR seq < :seq', values: { ':seq': tail.seq } },
      );
      return records;
    }
  };

  const flush = async (): Promise<void> => {
    flushing = true;
    try {
      while (waiting.length > 0) {
        const batch = waiting.splice(0, blockLength(waiting.map((w) => w.event)));
        try {
          const records = await appendBlock(batch.map((w) => w.event));
          for (const [i, each] of batch.entries()) each.resolve(records[i] as AuditRecord);
        } catch (error) {
          for (const each of batch) each.reject(error);
        }
      }
    } finally {
      flushing = false;
    }
  };

  return {
    /**
     * Appends one event as its own record of the chain. Appends of one process go one write
     * at a time: the events that arrive while a write is under way go together in the next
     * write, as one block item of consecutive records (at most {@link AUDIT_BLOCK_RECORDS},
     * and {@link AUDIT_BLOCK_BYTES} of events; a single larger event goes alone, as before).
     *
     * Each write is one conditional put keyed by the sequence number of its first record,
     * and always starts right after the last record of the chain (the end of a block), so
     * a writer that raced another finds that key taken and retries after reading the last
     * item: two writers can never fork the chain. No transaction: a lost race only retries,
     * and the head is a checkpoint that may lag an interrupted write but never runs ahead.
     * Every event stays its own record with its own sequence number and hash; `readAll`
     * returns the records, whichever items hold them.
     */
    append(event) {
      return new Promise<AuditRecord>((resolve, reject) => {
        waiting.push({ event, resolve, reject });
        if (!flushing) void flush();
      });
    },

    /**
     * Appends the events as consecutive records: queued together before any write starts, so
     * they go in one block item (several, past {@link AUDIT_BLOCK_RECORDS} or
     * {@link AUDIT_BLOCK_BYTES}) with one move of the head, beside whatever else of this
     * process waits.
     */
    appendMany(events) {
      const appended = events.map(
        (event) =>
          new Promise<AuditRecord>((resolve, reject) => {
            waiting.push({ event, resolve, reject });
          }),
      );
      if (!flushing && waiting.length > 0) void flush();
      return Promise.all(appended);
    },

    async readAll() {
      const items = await table.query('AUDIT', 'SEQ#');
      const records = items.flatMap((item) => recordsOf(item));
      const head = await table.get(Keys.auditHead);
      return { records, head: head ? { seq: Number(head.seq), hash: String(head.hash) } : undefined };
    },

    /**
     * Reads the `SEQ#` items a page at a time and keeps (and validates) only the records about
     * `subjects`: the memory of a long trail's read is theirs, not the trail's.
     */
    async recordsAbout(subjects) {
      const about: AuditRecord[] = [];
      const theirs = (raw: Item) => typeof raw.subject === 'string' && subjects.has(raw.subject);
      for await (const page of table.pages('AUDIT', 'SEQ#')) {
        for (const item of page) about.push(...recordsOf(item, theirs));
      }
      return about;
    },

    /**
     * Reads the `SEQ#` items backwards from the chain's end, a page at a time, and stops
     * at the first record older than `at` less the clock-skew margin: one Query for a
     * recent `at`, however long the trail.
     */
    async recordsSince(at) {
      const since = Date.parse(at) - AUDIT_CLOCK_SKEW_MS;
      if (Number.isNaN(since))
        throw new RangeError(`recordsSince: expected an ISO date-time, got ${JSON.stringify(at)}`);
      const newestFirst: AuditRecord[] = [];
      reading: for await (const item of table.queryBackwards('AUDIT', 'SEQ#')) {
        for (const record of recordsOf(item).reverse()) {
          if (Date.parse(record.at) < since) break reading;
          newestFirst.push(record);
        }
      }
      return newestFirst.reverse();
    },
  };
}
