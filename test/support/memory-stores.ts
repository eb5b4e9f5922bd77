/**
 * In-memory implementations of keywarden's own store ports (functions/core/ports.ts), for
 * unit specs of the engines that run without a server. They keep the ports' documented
 * contracts, not DynamoDB's: revisioned writes throw ConflictError on a stale revision,
 * locks expire, a settled campaign target is never overwritten, and the audit log is a
 * real hash chain built with the core's own chain functions.
 *
 * Every read returns a copy and every write stores one, so a caller can no more change
 * stored state by holding on to an object than it could in a database. Each operation is
 * atomic (one conditional write), as the real store's are.
 *
 * Crash points: a store spec can throw from `beforeWrite`/`afterWrite` (for example a
 * `SimulatedCrash` from core/rotation.ts) to stand for a process that died just before
 * or just after a write reached the store.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  type AuditEventInput,
  type AuditHead,
  type AuditRecord,
  type ChainVerdict,
  type Digest,
  nextRecord,
  nextRecords,
  verifyChain,
} from '../../functions/core/audit.ts';
import {
  type Campaign,
  CampaignSchema,
  type ReissueRecord,
  ReissueRecordSchema,
  type Target,
  TargetSchema,
} from '../../functions/core/campaign.ts';
import {
  type CredentialVersion,
  CredentialVersionSchema,
  type RotationState,
  RotationStateSchema,
} from '../../functions/core/credential-version.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../functions/core/errors.ts';
import type { ExposureRecord } from '../../functions/core/exposure-record.ts';
import type { Finding } from '../../functions/core/findings.ts';
import { type Grant, GrantSchema, isReviewOverdue } from '../../functions/core/grant.ts';
import { sweepDueAt } from '../../functions/core/grant-sweep.ts';
import {
  AUDIT_CLOCK_SKEW_MS,
  type AuditLog,
  type BatchLease,
  type BatchLeaseRecord,
  type BatchLeaseRequest,
  type CampaignStore,
  type Clock,
  DEFAULT_GRANT_PAGE,
  type ExposureStore,
  type FindingStore,
  type GrantPage,
  type GrantPageRequest,
  type GrantQuery,
  type GrantStore,
  type IdentityStore,
  MAX_GRANT_PAGE,
  type RotationStore,
  type SettleBatchRequest,
  type StoredCampaign,
  type StoredGrant,
  type StoredIdentity,
  type StoredRotation,
  type StoredVersion,
} from '../../functions/core/ports.ts';

/** One write a store is about to make or has made, for fault injection. */
export type StoreWrite =
  | { op: 'putIdentity'; record: Omit<StoredIdentity, 'rev'> }
  | { op: 'putVersion'; version: CredentialVersion }
  | { op: 'putRotation'; state: RotationState }
  | { op: 'putCampaign'; campaign: Campaign }
  | { op: 'leaseBatch'; campaignId: string; batch: string; holder: string; tryIds: readonly string[] }
  | { op: 'settleBatch'; campaignId: string; batch: string; outcomes: Target[] }
  | { op: 'putReissue'; campaignId: string; record: ReissueRecord };

/**
 * Called around every write: throwing from `beforeWrite` stands for a process that died
 * before the write reached the store, from `afterWrite` for one that died right after it.
 */
export interface WriteHooks {
  beforeWrite?: (write: StoreWrite) => void;
  afterWrite?: (write: StoreWrite) => void;
}

/** SHA-256 in hex, the digest the adapters chain the audit log with. */
export const sha256: Digest = (text) => createHash('sha256').update(text).digest('hex');

const copy = <T>(value: T): T => structuredClone(value);

/** A revisioned write: the stored revision must still be `expectedRev` (undefined: nothing stored). */
function checkRevision(what: string, stored: { rev: number } | undefined, expectedRev: number | undefined) {
  if (stored?.rev === expectedRev) return;
  throw new ConflictError(
    `${what} changed since it was read (expected revision ${expectedRev ?? 'none'}, stored ${stored?.rev ?? 'none'}); read it again and retry`,
  );
}

abstract class HookedStore {
  hooks: WriteHooks = {};

  protected write<T>(write: StoreWrite, apply: () => T): T {
    this.hooks.beforeWrite?.(write);
    const result = apply();
    this.hooks.afterWrite?.(write);
    return result;
  }
}

/** The inventory as synced: identities with their lifecycle and revision. */
export class MemoryIdentityStore extends HookedStore implements IdentityStore {
  readonly #identities = new Map<string, StoredIdentity>();

  async getIdentity(id: string): Promise<StoredIdentity | undefined> {
    return copy(this.#identities.get(id));
  }

  async getIdentities(ids: readonly string[]): Promise<StoredIdentity[]> {
    return ids.flatMap((id) => {
      const found = this.#identities.get(id);
      return found ? [copy(found)] : [];
    });
  }

  async listIdentities(): Promise<StoredIdentity[]> {
    return [...this.#identities.values()]
      .map(copy)
      .sort((a, b) => a.identity.id.localeCompare(b.identity.id));
  }

  async putIdentity(
    record: Omit<StoredIdentity, 'rev'>,
    expectedRev: number | undefined,
  ): Promise<StoredIdentity> {
    const id = record.identity.id;
    return this.write({ op: 'putIdentity', record: copy(record) }, () => {
      checkRevision(`identity ${id}`, this.#identities.get(id), expectedRev);
      const stored = { ...copy(record), rev: (expectedRev ?? 0) + 1 };
      this.#identities.set(id, stored);
      return copy(stored);
    });
  }
}

/**
 * Break-glass grants, listed as the DynamoDB store's queries list them (newest, or soonest
 * due, by sort key; pages of `limit`; a `nextToken` only for the listing that handed it out,
 * anything else a ValidationError), by filtering every grant in memory.
 */
export class MemoryGrantStore implements GrantStore {
  readonly #grants = new Map<string, StoredGrant>();

  async getGrant(grantId: string): Promise<StoredGrant | undefined> {
    return copy(this.#grants.get(grantId));
  }

  async putGrant(grant: Grant, expectedRev: number | undefined): Promise<StoredGrant> {
    checkRevision(`grant ${grant.grantId}`, this.#grants.get(grant.grantId), expectedRev);
    const stored = { ...GrantSchema.parse(copy(grant)), rev: (expectedRev ?? 0) + 1 };
    this.#grants.set(grant.grantId, stored);
    return copy(stored);
  }

  async queryGrants(query: GrantQuery = {}): Promise<GrantPage> {
    const { state, requester } = query;
    const listing = `grants:${state ?? ''}:${requester ? `${requester.kind}:${requester.id}` : ''}`;
    const entries = [...this.#grants.values()]
      .filter((g) => !state || g.state === state)
      .filter((g) => !requester || (g.requester.kind === requester.kind && g.requester.id === requester.id))
      .map((g) => [`${new Date(g.requestedAt).toISOString()}#${g.grantId}`, g] as const);
    return this.#page(listing, entries, query);
  }

  async sweepDueGrants(now: Date, request: GrantPageRequest = {}): Promise<GrantPage> {
    const entries = [...this.#grants.values()].flatMap((g) => {
      const due = sweepDueAt(g);
      return due && due.getTime() <= now.getTime() ? [[`${due.toISOString()}#${g.grantId}`, g] as const] : [];
    });
    return this.#page('sweep', entries, request);
  }

  async reviewDueGrants(now: Date, request: GrantPageRequest = {}): Promise<GrantPage> {
    const entries = [...this.#grants.values()]
      .filter((g) => isReviewOverdue(g, now))
      .map((g) => [`${g.review?.dueAt}#${g.grantId}`, g] as const);
    return this.#page('review', entries, request);
  }

  #page(listing: string, entries: (readonly [string, StoredGrant])[], request: GrantPageRequest): GrantPage {
    const limit = request.limit ?? DEFAULT_GRANT_PAGE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_GRANT_PAGE)
      throw new ValidationError(
        `expected limit to be a whole number from 1 to ${MAX_GRANT_PAGE}, got ${limit}`,
      );
    let after: string | undefined;
    if (request.nextToken) {
      const token = (() => {
        try {
          return JSON.parse(Buffer.from(request.nextToken, 'base64url').toString('utf8')) as unknown;
        } catch {
          return undefined;
        }
      })() as { listing?: unknown; after?: unknown } | undefined;
      if (token?.listing !== listing || typeof token.after !== 'string')
        throw new ValidationError(
          'expected nextToken to be the nextToken of the previous page of the same listing',
        );
      after = token.after;
    }
    const sorted = entries
      .filter(([key]) => after === undefined || key < after)
      .sort(([a], [b]) => (a < b ? 1 : a > b ? -1 : 0));
    const page = sorted.slice(0, limit);
    const last = page.at(-1)?.[0];
    return {
      grants: page.map(([, g]) => copy(g)),
      ...(sorted.length > limit && last
        ? { nextToken: Buffer.from(JSON.stringify({ listing, after: last })).toString('base64url') }
        : {}),
    };
  }
}

/** Credential versions and rotation progress (which holds each identity's rotation lock). */
export class MemoryRotationStore extends HookedStore implements RotationStore {
  readonly #versions = new Map<string, Map<string, StoredVersion>>();
  readonly #rotations = new Map<string, StoredRotation>();

  async listVersions(identityId: string): Promise<StoredVersion[]> {
    // As the real store lists them: by issue time, then version id.
    return [...(this.#versions.get(identityId)?.values() ?? [])]
      .map(copy)
      .sort((a, b) => a.issuedAt.localeCompare(b.issuedAt) || a.versionId.localeCompare(b.versionId));
  }

  async putVersion(version: CredentialVersion, expectedRev: number | undefined): Promise<StoredVersion> {
    const parsed = CredentialVersionSchema.parse(version);
    return this.write({ op: 'putVersion', version: copy(parsed) }, () => {
      const versions = this.#versions.get(parsed.identityId) ?? new Map<string, StoredVersion>();
      checkRevision(
        `version ${parsed.versionId} of ${parsed.identityId}`,
        versions.get(parsed.versionId),
        expectedRev,
      );
      const stored = { ...parsed, rev: (expectedRev ?? 0) + 1 };
      versions.set(parsed.versionId, stored);
      this.#versions.set(parsed.identityId, versions);
      return copy(stored);
    });
  }

  /** The shortcut of VersionShortcuts a campaign's batch uses: every mark in one go. */
  async markVersionsRevoked(
    marks: readonly { identityId: string; versionId: string; at: string; note: string }[],
  ): Promise<void> {
    for (const mark of marks) {
      const stored = this.#versions.get(mark.identityId)?.get(mark.versionId);
      if (!stored || stored.stage === 'revoked') continue;
      const { rev, ...version } = stored;
      const revoked = { ...version, stage: 'revoked' as const, retiredAt: mark.at, note: mark.note };
      this.write({ op: 'putVersion', version: copy(revoked) }, () => {
        this.#versions.get(mark.identityId)?.set(mark.versionId, { ...revoked, rev: rev + 1 });
      });
    }
  }

  async getRotation(identityId: string): Promise<StoredRotation | undefined> {
    return copy(this.#rotations.get(identityId));
  }

  async loadRotation(identityId: string) {
    return { state: await this.getRotation(identityId), versions: await this.listVersions(identityId) };
  }

  async putRotation(state: RotationState, expectedRev: number | undefined): Promise<StoredRotation> {
    const parsed = RotationStateSchema.parse(state);
    return this.write({ op: 'putRotation', state: copy(parsed) }, () => {
      checkRevision(`rotation of ${parsed.identityId}`, this.#rotations.get(parsed.identityId), expectedRev);
      const stored = { ...parsed, rev: (expectedRev ?? 0) + 1 };
      this.#rotations.set(parsed.identityId, stored);
      return copy(stored);
    });
  }

  /**
   * Stands for a run that took the identity's lock and is still at work (or died holding it):
   * the lock is written into the stored progress, as a run takes it; with no progress stored
   * yet, into the progress of a finished placeholder rotation.
   */
  holdLock(identityId: string, owner: string, until: number): void {
    const at = new Date(0).toISOString();
    const held = this.#rotations.get(identityId) ?? {
      identityId,
      rotationId: 'held',
      versionId: 'held',
      step: 'finished' as const,
      startedAt: at,
      attemptStartedAt: at,
      attempts: 1,
      updatedAt: at,
      rev: 0,
    };
    this.#rotations.set(identityId, { ...held, lock: { owner, until }, rev: held.rev + 1 });
  }

  /** Who holds the identity's lock and until when (epoch ms), for specs to assess. */
  lockOf(identityId: string): Readonly<{ owner: string; until: number }> | undefined {
    return copy(this.#rotations.get(identityId)?.lock);
  }
}

/** Campaigns, their targets (written by the holder of their batch's lease) and re-issue records. */
export class MemoryCampaignStore extends HookedStore implements CampaignStore {
  readonly #campaigns = new Map<string, StoredCampaign>();
  readonly #targets = new Map<string, Map<string, Target>>();
  readonly #reissues = new Map<string, Map<string, ReissueRecord>>();
  readonly #leases = new Map<string, Map<string, Omit<BatchLeaseRecord, 'batch'>>>();

  async createCampaign(campaign: Campaign, targets: readonly Target[]): Promise<StoredCampaign> {
    const parsed = CampaignSchema.parse(campaign);
    if (this.#campaigns.has(parsed.campaignId)) {
      throw new ConflictError(`campaign ${parsed.campaignId} exists already; plan it again under a new id`);
    }
    // The targets first: a reader that finds the campaign finds every target.
    this.#targets.set(
      parsed.campaignId,
      new Map(targets.map((target) => [target.targetId, TargetSchema.parse(copy(target))])),
    );
    const stored = { ...parsed, rev: 1 };
    this.#campaigns.set(parsed.campaignId, stored);
    return copy(stored);
  }

  async addTargets(campaignId: string, targets: readonly Target[]): Promise<void> {
    const stored = this.#targets.get(campaignId);
    if (!stored || !this.#campaigns.has(campaignId)) {
      throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)} to add targets to`);
    }
    for (const target of targets) stored.set(target.targetId, TargetSchema.parse(copy(target)));
  }

  async getCampaign(campaignId: string): Promise<StoredCampaign | undefined> {
    return copy(this.#campaigns.get(campaignId));
  }

  async putCampaign(campaign: Campaign, expectedRev: number): Promise<StoredCampaign> {
    const parsed = CampaignSchema.parse(campaign);
    return this.write({ op: 'putCampaign', campaign: copy(parsed) }, () => {
      checkRevision(`campaign ${parsed.campaignId}`, this.#campaigns.get(parsed.campaignId), expectedRev);
      const stored = { ...parsed, rev: expectedRev + 1 };
      this.#campaigns.set(parsed.campaignId, stored);
      return copy(stored);
    });
  }

  async listCampaigns(): Promise<StoredCampaign[]> {
    return [...this.#campaigns.values()]
      .map(copy)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.campaignId.localeCompare(a.campaignId));
  }

  async listTargets(campaignId: string): Promise<Target[]> {
    return [...(this.#targets.get(campaignId)?.values() ?? [])]
      .map(copy)
      .sort((a, b) => (a.targetId < b.targetId ? -1 : a.targetId > b.targetId ? 1 : 0));
  }

  async getTargets(campaignId: string, targetIds: readonly string[]): Promise<Target[]> {
    const targets = this.#targets.get(campaignId);
    return targetIds.flatMap((id) => {
      const target = targets?.get(id);
      return target ? [copy(target)] : [];
    });
  }

  async listTargetsOf(campaignId: string, identityId: string): Promise<Target[]> {
    return (await this.listTargets(campaignId)).filter((target) => target.identityId === identityId);
  }

  async leaseBatch(campaignId: string, request: BatchLeaseRequest): Promise<BatchLease> {
    const { batch, holder, now, expiresAt, tryIds } = request;
    return this.write({ op: 'leaseBatch', campaignId, batch, holder, tryIds: [...tryIds] }, () => {
      const lease = this.#lease(campaignId, batch);
      // Free, or its holder's time ran out, or the taker holds it already.
      if (lease.holder !== undefined && (lease.expiresAt ?? 0) >= now && lease.holder !== holder) {
        return { taken: false as const, holder: lease.holder, expiresAt: lease.expiresAt ?? 0 };
      }
      lease.holder = holder;
      lease.expiresAt = expiresAt;
      for (const id of tryIds) lease.tries[id] = (lease.tries[id] ?? 0) + 1;
      const targets = this.#targets.get(campaignId);
      return {
        taken: true as const,
        targets: tryIds.flatMap((id) => {
          const target = targets?.get(id);
          return target ? [copy(target)] : [];
        }),
        tries: { ...lease.tries },
      };
    });
  }

  async renewBatch(
    campaignId: string,
    request: { batch: string; holder: string; expiresAt: number; tried?: string },
  ): Promise<boolean> {
    const lease = this.#lease(campaignId, request.batch);
    if (lease.holder !== request.holder) return false;
    lease.expiresAt = request.expiresAt;
    if (request.tried !== undefined) lease.tries[request.tried] = (lease.tries[request.tried] ?? 0) + 1;
    return true;
  }

  async settleBatch(campaignId: string, request: SettleBatchRequest): Promise<void> {
    const outcomes = request.outcomes.map((target) => TargetSchema.parse(target));
    this.write({ op: 'settleBatch', campaignId, batch: request.batch, outcomes: copy(outcomes) }, () => {
      const targets = this.#targets.get(campaignId);
      for (const target of outcomes) targets?.set(target.targetId, copy(target));
    });
    const lease = this.#lease(campaignId, request.batch);
    // The lease ran out and another run took it: what that run does with the batch stands.
    if (lease.holder !== request.holder) return;
    delete lease.holder;
    delete lease.expiresAt;
    for (const id of [...outcomes.map((t) => t.targetId), ...request.done]) delete lease.tries[id];
    for (const id of request.untried) lease.tries[id] = (lease.tries[id] ?? 1) - 1;
  }

  async listBatchLeases(campaignId: string): Promise<BatchLeaseRecord[]> {
    return [...(this.#leases.get(campaignId)?.entries() ?? [])]
      .map(([batch, lease]) => ({ batch, ...copy(lease) }))
      .filter((lease) => lease.holder !== undefined || Object.values(lease.tries).some((n) => n > 0));
  }

  /** Lets a lease run out now, as if its holder died `ms` ago: for specs of a dead run. */
  expireLeases(campaignId: string): void {
    for (const lease of this.#leases.get(campaignId)?.values() ?? []) {
      if (lease.holder !== undefined) lease.expiresAt = 0;
    }
  }

  #lease(campaignId: string, batch: string): Omit<BatchLeaseRecord, 'batch'> {
    const leases = this.#leases.get(campaignId) ?? new Map<string, Omit<BatchLeaseRecord, 'batch'>>();
    this.#leases.set(campaignId, leases);
    const lease = leases.get(batch) ?? { tries: {} };
    leases.set(batch, lease);
    return lease;
  }

  async putReissue(campaignId: string, record: ReissueRecord): Promise<void> {
    const parsed = ReissueRecordSchema.parse(record);
    this.write({ op: 'putReissue', campaignId, record: copy(parsed) }, () => {
      const records = this.#reissues.get(campaignId) ?? new Map<string, ReissueRecord>();
      records.set(parsed.identityId, parsed);
      this.#reissues.set(campaignId, records);
    });
  }

  async listReissues(campaignId: string): Promise<ReissueRecord[]> {
    return [...(this.#reissues.get(campaignId)?.values() ?? [])]
      .map(copy)
      .sort((a, b) => a.identityId.localeCompare(b.identityId));
  }
}

/** The append-only audit log, hash-chained with the core's own `nextRecord`. */
export class MemoryAuditLog implements AuditLog {
  readonly #records: AuditRecord[] = [];
  #head: AuditHead | undefined;

  constructor(
    readonly clock: Clock,
    readonly digest: Digest = sha256,
  ) {}

  async append(event: AuditEventInput): Promise<AuditRecord> {
    const record = nextRecord(
      this.#head,
      event,
      { id: randomUUID(), at: this.clock.now().toISOString() },
      this.digest,
    );
    this.#records.push(record);
    this.#head = { seq: record.seq, hash: record.hash };
    return copy(record);
  }

  async appendMany(events: readonly AuditEventInput[]): Promise<AuditRecord[]> {
    const records = nextRecords(
      this.#head,
      events,
      () => ({ id: randomUUID(), at: this.clock.now().toISOString() }),
      this.digest,
    );
    this.#records.push(...records);
    const last = records.at(-1);
    if (last) this.#head = { seq: last.seq, hash: last.hash };
    return records.map(copy);
  }

  async readAll(): Promise<{ records: AuditRecord[]; head: AuditHead | undefined }> {
    return { records: this.#records.map(copy), head: copy(this.#head) };
  }

  async recordsAbout(subjects: ReadonlySet<string>): Promise<AuditRecord[]> {
    return this.#records.filter((record) => subjects.has(record.subject)).map(copy);
  }

  /** The port's tail read: newest first until the first record older than `at` less the skew margin. */
  async recordsSince(at: string): Promise<AuditRecord[]> {
    const since = Date.parse(at) - AUDIT_CLOCK_SKEW_MS;
    const newestFirst: AuditRecord[] = [];
    for (const record of this.#records.toReversed()) {
      if (Date.parse(record.at) < since) break;
      newestFirst.push(copy(record));
    }
    this.tailReads += 1;
    return newestFirst.reverse();
  }

  /** How many tail reads ({@link recordsSince}) were made, for specs that count requests. */
  tailReads = 0;

  /** The records about one subject, in order (synchronous, for assessing). */
  of(subject: string): AuditRecord[] {
    return this.#records.filter((record) => record.subject === subject).map(copy);
  }

  /** Whether the chain is whole, by the core's own verifier. */
  verify(): ChainVerdict {
    return verifyChain(this.#records, this.#head, this.digest);
  }
}

/** Exposures in memory, with the DynamoDB store's conditional first write. */
export class MemoryExposureStore implements ExposureStore {
  readonly records = new Map<string, ExposureRecord>();
  async recordExposure(record: ExposureRecord) {
    if (this.records.has(record.fingerprint)) return false;
    this.records.set(record.fingerprint, { ...record });
    return true;
  }
  async getExposure(fingerprint: string) {
    return this.records.get(fingerprint);
  }
  /** As DynamoDB's conditional update: not ended by an earlier containment, and no live claim. */
  async claimContainment(fingerprint: string, claim: { at: string; until: string }) {
    const record = this.records.get(fingerprint);
    if (!record || record.outcome === 'contained' || record.outcome === 'started') return undefined;
    if (record.claimedUntil && record.claimedUntil >= claim.at) return undefined;
    const claimed = { ...record, claimedUntil: claim.until };
    this.records.set(fingerprint, claimed);
    return { ...claimed };
  }
  async releaseContainment(fingerprint: string, failedAt: string) {
    const record = this.records.get(fingerprint);
    if (!record) return;
    const { claimedUntil: _claim, ...rest } = record;
    this.records.set(fingerprint, { ...rest, failedAt: record.failedAt ?? failedAt });
  }
  async markContained(
    fingerprint: string,
    result: { campaignId: string; outcome: NonNullable<ExposureRecord['outcome']>; containedAt: string },
  ) {
    const record = this.records.get(fingerprint);
    if (!record) return;
    const { claimedUntil: _claim, ...rest } = record;
    const failedAt = result.outcome === 'failed' ? (record.failedAt ?? result.containedAt) : record.failedAt;
    this.records.set(fingerprint, { ...rest, ...result, ...(failedAt ? { failedAt } : {}) });
  }
}

/** The latest findings run in memory, counting its saves. */
export class MemoryFindings implements FindingStore {
  latest: { runId: string; at: string; findings: Finding[] } | undefined;
  saves = 0;
  async saveFindings(run: { runId: string; at: string; findings: Finding[] }) {
    this.saves += 1;
    this.latest = run;
  }
  async latestFindings() {
    return this.latest;
  }
  /** Each claimed finding id and until when (epoch ms). */
  readonly claims = new Map<string, number>();
  async claimFinding(id: string, until: Date, now: Date) {
    const held = this.claims.get(id);
    if (held !== undefined && held >= now.getTime()) return false;
    this.claims.set(id, until.getTime());
    return true;
  }
  async holdFinding(id: string, until: Date) {
    this.claims.set(id, until.getTime());
  }
  async releaseFinding(id: string) {
    this.claims.delete(id);
  }
}
