/**
 * In-memory implementations of the CI ports (functions/core/ports.ts: CiCredentialStore,
 * ApprovalLedger), for unit specs of the exchange and approval use cases. They keep the same
 * contracts as the DynamoDB adapters (test/integration/ci-store.test.ts runs one spec against
 * both): a jti is spent once, revisioned writes throw ConflictError on a stale revision, an
 * approval is never overwritten, bad input is a ValidationError. Every read returns a copy and
 * every write stores one.
 */
import { isDeepStrictEqual } from 'node:util';
import { byApprovedAt, checkDigest } from '../../functions/adapters/aws/dynamodb-approval-ledger.ts';
import { checkCiCredentialId, checkSpend } from '../../functions/adapters/aws/dynamodb-ci-store.ts';
import {
  type ApprovalRecord,
  ApprovalRecordSchema,
  type CiCredentialRecord,
  CiCredentialRecordSchema,
} from '../../functions/core/ci-records.ts';
import { ConflictError, ValidationError } from '../../functions/core/errors.ts';
import { parseInput } from '../../functions/core/grant.ts';
import type { ApprovalLedger, CiCredentialStore, StoredCiCredential } from '../../functions/core/ports.ts';

const copy = <T>(value: T): T => structuredClone(value);
const byIssuedAt = (a: CiCredentialRecord, b: CiCredentialRecord) =>
  Date.parse(a.issuedAt) - Date.parse(b.issuedAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Exchanges and spent token ids in maps; listings filter every record. */
export class MemoryCiStore implements CiCredentialStore {
  readonly #spent = new Map<string, Date>();
  readonly #credentials = new Map<string, StoredCiCredential>();

  /** Spent jtis, for specs that look (the DynamoDB store's items carry the same keepUntil as their TTL). */
  get spentCount(): number {
    return this.#spent.size;
  }

  async spendJti(issuer: string, jti: string, keepUntil: Date): Promise<boolean> {
    checkSpend(issuer, jti, keepUntil);
    const key = JSON.stringify([issuer, jti]);
    // Like the DynamoDB store, a spent jti stays spent past keepUntil: its token has expired by then.
    if (this.#spent.has(key)) return false;
    this.#spent.set(key, new Date(keepUntil));
    return true;
  }

  async putCredential(
    record: CiCredentialRecord,
    expectedRev: number | undefined,
  ): Promise<StoredCiCredential> {
    const parsed = parseInput(CiCredentialRecordSchema, copy(record), 'CI credential record');
    const stored = this.#credentials.get(parsed.id);
    if (stored?.rev !== expectedRev)
      throw new ConflictError(
        `CI credential ${parsed.id} changed since it was read (expected revision ${expectedRev ?? 'none'}, stored ${stored?.rev ?? 'none'}); read it again and retry`,
      );
    const next = { ...parsed, rev: (expectedRev ?? 0) + 1 };
    this.#credentials.set(parsed.id, next);
    return copy(next);
  }

  async getCredential(id: string): Promise<StoredCiCredential | undefined> {
    checkCiCredentialId(id);
    return copy(this.#credentials.get(id));
  }

  async listByJob(jobKey: string): Promise<StoredCiCredential[]> {
    if (typeof jobKey !== 'string' || jobKey.length === 0)
      throw new ValidationError(
        `expected a job key, got ${typeof jobKey === 'string' ? 'an empty string' : typeof jobKey}`,
      );
    return this.#list((record) => record.jobKey === jobKey);
  }

  async listDue(now: Date): Promise<StoredCiCredential[]> {
    if (!(now instanceof Date) || Number.isNaN(now.getTime()))
      throw new ValidationError(`expected now to be a valid Date, got ${String(now)}`);
    const dueAt = (record: CiCredentialRecord) =>
      record.state === 'active'
        ? record.expiresAt
        : record.aws?.denied && !record.aws.released
          ? record.aws.expiresAt
          : undefined;
    // Soonest due first, as the DynamoDB store's index orders them.
    return [...this.#credentials.values()]
      .flatMap((record) => {
        const due = dueAt(record);
        return due !== undefined && Date.parse(due) <= now.getTime()
          ? [[Date.parse(due), record] as const]
          : [];
      })
      .sort(([a, x], [b, y]) => a - b || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))
      .map(([, record]) => copy(record));
  }

  async listUnused(): Promise<StoredCiCredential[]> {
    return this.#list((record) => record.state === 'active' && !record.usedRecorded);
  }

  async listEnded(since: Date): Promise<StoredCiCredential[]> {
    if (!(since instanceof Date) || Number.isNaN(since.getTime()))
      throw new ValidationError(`expected since to be a valid Date, got ${String(since)}`);
    const endedAt = (record: CiCredentialRecord) => Date.parse(record.ended?.at ?? '');
    // Oldest end first, as the DynamoDB store's index orders them.
    return [...this.#credentials.values()]
      .filter((record) => record.state === 'ended' && endedAt(record) >= since.getTime())
      .sort((a, b) => endedAt(a) - endedAt(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(copy);
  }

  #list(keep: (record: StoredCiCredential) => boolean): StoredCiCredential[] {
    return [...this.#credentials.values()].filter(keep).sort(byIssuedAt).map(copy);
  }
}

/** Approvals by digest; an id is taken for good once appended. */
export class MemoryApprovalLedger implements ApprovalLedger {
  readonly #byDigest = new Map<string, Map<string, ApprovalRecord>>();

  async append(record: ApprovalRecord): Promise<void> {
    const parsed = parseInput(ApprovalRecordSchema, copy(record), 'approval record');
    const approvals = this.#byDigest.get(parsed.digest) ?? new Map<string, ApprovalRecord>();
    const stored = approvals.get(parsed.id);
    if (stored && isDeepStrictEqual(stored, parsed)) return;
    if (stored)
      throw new ConflictError(
        `approval ${parsed.id} of ${parsed.digest} is already recorded with other contents; an approval is never changed: record a new one with a new id`,
      );
    approvals.set(parsed.id, parsed);
    this.#byDigest.set(parsed.digest, approvals);
  }

  async listFor(digest: string): Promise<ApprovalRecord[]> {
    checkDigest(digest);
    return [...(this.#byDigest.get(digest)?.values() ?? [])].sort(byApprovedAt).map(copy);
  }
}
