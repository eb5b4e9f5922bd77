import { isDeepStrictEqual } from 'node:util';
import { DigestSchema } from '../../core/ci-policy.ts';
import { type ApprovalRecord, ApprovalRecordSchema } from '../../core/ci-records.ts';
import { ConflictError, KeywardenError, ValidationError } from '../../core/errors.ts';
import { parseInput } from '../../core/grant.ts';
import type { ApprovalLedger } from '../../core/ports.ts';
import type { DynamoTable, Item } from './dynamodb-table.ts';

/**
 * The approvals of an artifact digest, all in one partition of the state table
 * (dynamodb-table.ts), so listing them is one consistent query:
 *
 * | item     | pk                        | sk              |
 * |----------|---------------------------|-----------------|
 * | approval | `CI#APPROVALS#<digest>`   | `APPROVAL#<id>` |
 *
 * The record sits under the item's `record` attribute. No TTL: an approval is evidence, kept
 * as long as the table. An id is unique within its digest (the statement it signs names the
 * digest too), and the conditional put on it is what makes the ledger append-only.
 */
const Keys = {
  digest: (digest: string) => `CI#APPROVALS#${digest}`,
  approval: (digest: string, id: string) => ({ pk: `CI#APPROVALS#${digest}`, sk: `APPROVAL#${id}` }),
} as const;

/** Checks a digest before it becomes part of a key; the error says what a digest looks like. */
export function checkDigest(digest: string): void {
  const parsed = DigestSchema.safeParse(digest);
  if (!parsed.success)
    throw new ValidationError(parsed.error.issues[0]?.message ?? 'expected an artifact digest');
}

/** Oldest first; the id orders approvals made in the same millisecond. */
export const byApprovedAt = (a: ApprovalRecord, b: ApprovalRecord): number =>
  Date.parse(a.approvedAt) - Date.parse(b.approvedAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The {@link ApprovalLedger} on the state table: conditional puts, never an update or a delete. */
export function dynamoApprovalLedger(table: DynamoTable): ApprovalLedger {
  const toRecord = (item: Item): ApprovalRecord => {
    const parsed = ApprovalRecordSchema.safeParse(item.record);
    if (!parsed.success)
      throw new KeywardenError(
        `stored approval ${String(item.sk)} of ${String(item.pk)} does not match its schema (${parsed.error.issues
          .map((issue) => `${issue.path.join('.') || 'record'}: ${issue.message}`)
          .join('; ')}); the item was written by something else or changed by hand`,
      );
    return parsed.data;
  };

  return {
    async append(record) {
      const parsed = parseInput(ApprovalRecordSchema, record, 'approval record');
      const key = Keys.approval(parsed.digest, parsed.id);
      if (await table.putIf({ ...key, record: parsed }, { expression: 'attribute_not_exists(pk)' })) return;
      // Taken: the same approval again (a retry, or the SDK's own retry of a write whose answer
      // was lost) is fine; anything else under that id would rewrite history.
      const stored = await table.get(key);
      if (stored && isDeepStrictEqual(toRecord(stored), parsed)) return;
      throw new ConflictError(
        `approval ${parsed.id} of ${parsed.digest} is already recorded with other contents; an approval is never changed: record a new one with a new id`,
      );
    },

    async listFor(digest) {
      checkDigest(digest);
      const items = await table.query(Keys.digest(digest), 'APPROVAL#');
      return items.map(toRecord).sort(byApprovedAt);
    },
  };
}
