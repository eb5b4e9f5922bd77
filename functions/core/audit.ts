import * as z from 'zod';
import { canonicalJson } from './canonical-json.ts';
import { onFirstUse } from './on-first-use.ts';

/** Audit event types; each is recorded as its own event. */
export const AuditEventTypeSchema = z.enum([
  'inventory.synced',
  'identity.declared',
  'identity.changed',
  'identity.retired',
  'discovery.completed',
  'credential.issued',
  /** A credential keywarden did not issue, found live in its provider and recorded. */
  'credential.adopted',
  'credential.delivered',
  'credential.verified',
  'credential.activated',
  'credential.retired',
  'credential.revoked',
  'credential.disabled',
  'credential.used',
  'rotation.failed',
  'grant.requested',
  'grant.approved',
  'grant.denied',
  'grant.activated',
  'grant.expired',
  'grant.revoked',
  /** Ending a grant's credentials (or recording the end) failed; the reason, never a secret. The sweeper retries. */
  'grant.revoke-failed',
  /** The credentials of an ended grant were ended after an earlier failure (by the sweeper or a repeated revoke). */
  'grant.credentials-ended',
  'grant.reviewed',
  'grant.refused',
  'campaign.started',
  'campaign.target',
  'campaign.completed',
  /** A CI job's OIDC token was exchanged for credentials (details: grant, job ids, handles, never a value). */
  'ci.credentials.issued',
  /** A CI credential was seen in use (OpenBao's audit device, CloudTrail by SourceIdentity). */
  'ci.credentials.used',
  /** A CI job's credentials were ended: by the job, a webhook, or their TTL. */
  'ci.credentials.ended',
  /** An exchange was refused; the reason and the claim that did not match, never the token. */
  'ci.credentials.refused',
  /** An artifact digest was approved for a gate (the signed statement's id and key). */
  'ci.approval.recorded',
  'ci.approval.refused',
  /** A managed credential was found exposed (where, by which rule, its fingerprint; never the value). */
  'exposure.detected',
  /** The exposed credential was ended (revoked, disabled or replaced in its store). */
  'exposure.contained',
  /** A clean credential replaced it at its delivery target, through the rotation protocol. */
  'exposure.reissued',
]);
export type AuditEventType = z.infer<typeof AuditEventTypeSchema>;

/** What a caller records; sequence and hashes are the log's business. Never a secret value. */
export const AuditEventInputSchema = onFirstUse(() =>
  z.object({
    type: AuditEventTypeSchema,
    actor: z.string().min(1),
    subject: z.string().min(1),
    details: z.record(z.string(), z.unknown()).default({}),
  }),
);
export type AuditEventInput = z.input<typeof AuditEventInputSchema>;

export const AuditRecordSchema = onFirstUse(() =>
  z.object({
    seq: z.int().positive(),
    id: z.string(),
    at: z.iso.datetime(),
    type: AuditEventTypeSchema,
    actor: z.string(),
    subject: z.string(),
    details: z.record(z.string(), z.unknown()),
    prevHash: z.string(),
    hash: z.string(),
  }),
);
/** One link of the append-only, hash-chained audit log. */
export type AuditRecord = z.infer<typeof AuditRecordSchema>;

/** The log's head: the last sequence number and hash, written with every append. */
export interface AuditHead {
  seq: number;
  hash: string;
}

/** The `prevHash` of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

/** A hex digest function (SHA-256 in the adapters); injected so core stays free of I/O and SDKs. */
export type Digest = (text: string) => string;

/** The hash of a record: the digest of every field but `hash`, canonically serialized. */
export const hashRecord = (record: Omit<AuditRecord, 'hash'>, digest: Digest): string =>
  digest(
    canonicalJson({
      seq: record.seq,
      id: record.id,
      at: record.at,
      type: record.type,
      actor: record.actor,
      subject: record.subject,
      details: record.details,
      prevHash: record.prevHash,
    }),
  );

/** Builds the record that follows `head` in the chain. */
export function nextRecord(
  head: AuditHead | undefined,
  event: AuditEventInput,
  meta: { id: string; at: string },
  digest: Digest,
): AuditRecord {
  const input = AuditEventInputSchema.parse(event);
  const unhashed = {
    seq: (head?.seq ?? 0) + 1,
    id: meta.id,
    at: meta.at,
    type: input.type,
    actor: input.actor,
    subject: input.subject,
    details: input.details,
    prevHash: head?.hash ?? GENESIS_HASH,
  };
  return { ...unhashed, hash: hashRecord(unhashed, digest) };
}

/**
 * Builds the records that follow `head` for several events at once, each its own link:
 * the same records as calling `nextRecord` for each event in turn. A store writes such a
 * run of records in one item (one round trip) without changing what is chained.
 */
export function nextRecords(
  head: AuditHead | undefined,
  events: readonly AuditEventInput[],
  metaOf: (index: number) => { id: string; at: string },
  digest: Digest,
): AuditRecord[] {
  const records: AuditRecord[] = [];
  let last = head;
  for (const [index, event] of events.entries()) {
    const record = nextRecord(last, event, metaOf(index), digest);
    records.push(record);
    last = { seq: record.seq, hash: record.hash };
  }
  return records;
}

export type ChainProblem = 'altered' | 'inserted' | 'removed';

export type ChainVerdict =
  | { ok: true; checked: number }
  | { ok: false; checked: number; problem: ChainProblem; seq: number; id?: string; message: string };

/**
 * Walks the chain in sequence order and names the first record that was altered,
 * inserted or removed. `head` is the separately stored checkpoint of the last append,
 * so removing records from the end shows too. Limit: someone who can write the table
 * and recompute hashes can append a well-linked record after the head; anchoring the
 * head outside the table is what closes that.
 */
export function verifyChain(
  records: readonly AuditRecord[],
  head: AuditHead | undefined,
  digest: Digest,
): ChainVerdict {
  let prev: AuditHead = { seq: 0, hash: GENESIS_HASH };
  let checked = 0;
  for (const record of records) {
    const where = `record ${record.seq} (${record.type} ${record.subject}, id ${record.id})`;
    const fail = (problem: ChainProblem, seq: number, message: string): ChainVerdict => ({
      ok: false,
      checked,
      problem,
      seq,
      id: record.id,
      message,
    });
    if (!Number.isInteger(record.seq) || record.seq <= prev.seq) {
      return fail(
        'inserted',
        record.seq,
        `${where} was inserted: its sequence does not follow record ${prev.seq}`,
      );
    }
    if (record.seq > prev.seq + 1) {
      const missing =
        record.seq - 1 === prev.seq + 1 ? `${prev.seq + 1}` : `${prev.seq + 1}–${record.seq - 1}`;
      return fail(
        'removed',
        prev.seq + 1,
        `record ${missing} was removed: the chain jumps from ${prev.seq} to ${record.seq}`,
      );
    }
    if (hashRecord(record, digest) !== record.hash) {
      return fail('altered', record.seq, `${where} was altered: its content does not match its hash`);
    }
    if (record.prevHash !== prev.hash) {
      return fail(
        'inserted',
        record.seq,
        `${where} was inserted or rewritten: it does not link to record ${prev.seq}'s hash`,
      );
    }
    prev = { seq: record.seq, hash: record.hash };
    checked += 1;
  }
  const last = prev;
  // The head is a checkpoint written after each append: it may lag an interrupted append
  // (records after it that link correctly are fine) but must never point past the end.
  if (!head) return { ok: true, checked };
  if (head.seq > last.seq) {
    return {
      ok: false,
      checked,
      problem: 'removed',
      seq: last.seq + 1,
      message: `record ${last.seq + 1}${head.seq > last.seq + 1 ? `–${head.seq}` : ''} was removed: the head says the log reaches ${head.seq}`,
    };
  }
  const pointed = records.find((record) => record.seq === head.seq);
  if (pointed && pointed.hash !== head.hash) {
    return {
      ok: false,
      checked,
      problem: 'altered',
      seq: head.seq,
      id: pointed.id,
      message: `record ${head.seq} was rewritten: its hash is not the one the head recorded`,
    };
  }
  return { ok: true, checked };
}
