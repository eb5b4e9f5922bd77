import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateQuery,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  type AuditEventInput,
  type AuditHead,
  type AuditRecord,
  AuditRecordSchema,
  type Digest,
  nextRecords,
} from '../../core/audit.ts';
import { type Campaign, CampaignSchema, type Target, TargetSchema } from '../../core/campaign.ts';
import { type ReissueRecord, ReissueRecordSchema } from '../../core/campaign-engine.ts';
import {
  type CredentialVersion,
  CredentialVersionSchema,
  type RotationState,
  RotationStateSchema,
} from '../../core/credential-version.ts';
import { ConflictError, KeywardenError } from '../../core/errors.ts';
import { type Finding, FindingSchema } from '../../core/findings.ts';
import { type Grant, GrantSchema, type GrantState } from '../../core/grant.ts';
import { IdentitySchema } from '../../core/identity.ts';
import type {
  AuditLog,
  CampaignStore,
  Clock,
  FindingStore,
  GrantStore,
  IdentityStore,
  RotationStore,
  StoredCampaign,
  StoredGrant,
  StoredIdentity,
  StoredRotation,
  StoredVersion,
} from '../../core/ports.ts';

/**
 * The single-table layout. Every item has `pk` and `sk`; the partition says what it is.
 *
 * | item            | pk                   | sk                 |
 * |-----------------|----------------------|--------------------|
 * | identity        | INVENTORY            | IDENTITY#<id>      |
 * | audit record    | AUDIT                | SEQ#<12-digit seq> |
 * | audit block     | AUDIT                | SEQ#<first seq>    |
 * | audit head      | AUDIT                | HEAD               |
 * | findings run    | FINDINGS#<runId>     | FINDING#<id>       |
 * | latest findings | FINDINGS             | LATEST             |
 * | credential ver. | IDENTITY#<id>        | VERSION#<versionId>|
 * | rotation state  | IDENTITY#<id>        | ROTATION           |
 * | rotation lock   | IDENTITY#<id>        | LOCK               |
 * | grant           | GRANT#<id>           | GRANT              |
 * | campaign        | CAMPAIGN#<id>        | CAMPAIGN           |
 * | campaign target | CAMPAIGN#<id>        | TARGET#<targetId>  |
 * | re-issue record | CAMPAIGN#<id>        | REISSUE#<identity> |
 *
 * An audit block item holds a run of consecutive records (`records`, `lastSeq`,
 * `lastHash`), written in one put; see `append`.
 *
 * Index `gsi1` lists grants: gsi1pk `GRANTS`, gsi1sk `<requestedAt>#<id>`; and
 * campaigns: gsi1pk `CAMPAIGNS`, gsi1sk `<createdAt>#<id>`.
 */
export const Keys = {
  identity: (id: string) => ({ pk: 'INVENTORY', sk: `IDENTITY#${id}` }),
  audit: (seq: number) => ({ pk: 'AUDIT', sk: `SEQ#${String(seq).padStart(12, '0')}` }),
  auditHead: { pk: 'AUDIT', sk: 'HEAD' },
  finding: (runId: string, id: string) => ({ pk: `FINDINGS#${runId}`, sk: `FINDING#${id}` }),
  latestFindings: { pk: 'FINDINGS', sk: 'LATEST' },
  version: (identityId: string, versionId: string) => ({
    pk: `IDENTITY#${identityId}`,
    sk: `VERSION#${versionId}`,
  }),
  rotation: (identityId: string) => ({ pk: `IDENTITY#${identityId}`, sk: 'ROTATION' }),
  lock: (identityId: string) => ({ pk: `IDENTITY#${identityId}`, sk: 'LOCK' }),
  grant: (grantId: string) => ({ pk: `GRANT#${grantId}`, sk: 'GRANT' }),
  campaign: (campaignId: string) => ({ pk: `CAMPAIGN#${campaignId}`, sk: 'CAMPAIGN' }),
  target: (campaignId: string, targetId: string) => ({
    pk: `CAMPAIGN#${campaignId}`,
    sk: `TARGET#${targetId}`,
  }),
  reissue: (campaignId: string, identityId: string) => ({
    pk: `CAMPAIGN#${campaignId}`,
    sk: `REISSUE#${identityId}`,
  }),
} as const;

export interface DynamoStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  clock: Clock;
  digest: Digest;
  /** How many times an audit append retries after losing the race for the head. */
  maxAppendAttempts?: number;
}

/** Records in one audit block item at most. */
const AUDIT_BLOCK_RECORDS = 100;
/** Serialized events in one block at most, well below DynamoDB's 400 KB item limit (hashes and ids come on top). */
const AUDIT_BLOCK_BYTES = 256_000;

/** How many of the waiting events go in the next block: at least one, within both bounds. */
function blockLength(events: readonly AuditEventInput[]): number {
  let bytes = 0;
  let length = 0;
  for (const event of events.slice(0, AUDIT_BLOCK_RECORDS)) {
    bytes += JSON.stringify(event).length + 400;
    if (length > 0 && bytes > AUDIT_BLOCK_BYTES) break;
    length += 1;
  }
  return Math.max(1, length);
}

const FINDINGS_RETENTION_SECONDS = 30 * 86_400;

/** The state store on one DynamoDB table: identities, audit chain and findings. */
export class DynamoStore
  implements IdentityStore, AuditLog, FindingStore, RotationStore, GrantStore, CampaignStore
{
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #clock: Clock;
  readonly #digest: Digest;
  readonly #maxAppendAttempts: number;

  constructor(options: DynamoStoreOptions) {
    if (!options.tableName) throw new RangeError('DynamoStore: expected a table name, got an empty string');
    this.#doc = DynamoDBDocumentClient.from(options.client, {
      marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    });
    this.#table = options.tableName;
    this.#clock = options.clock;
    this.#digest = options.digest;
    this.#maxAppendAttempts = options.maxAppendAttempts ?? 100;
  }

  async #query(pk: string, skPrefix?: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    const pages = paginateQuery(
      { client: this.#doc },
      {
        TableName: this.#table,
        KeyConditionExpression: skPrefix ? 'pk = :pk AND begins_with(sk, :sk)' : 'pk = :pk',
        ExpressionAttributeValues: skPrefix ? { ':pk': pk, ':sk': skPrefix } : { ':pk': pk },
        ConsistentRead: true,
      },
    );
    for await (const page of pages) items.push(...((page.Items ?? []) as Record<string, unknown>[]));
    return items;
  }

  // ---- identities -------------------------------------------------------------------------

  async getIdentity(id: string): Promise<StoredIdentity | undefined> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: Keys.identity(id), ConsistentRead: true }),
    );
    return Item ? toStoredIdentity(Item) : undefined;
  }

  async listIdentities(): Promise<StoredIdentity[]> {
    return (await this.#query('INVENTORY', 'IDENTITY#')).map(toStoredIdentity);
  }

  async putIdentity(
    record: Omit<StoredIdentity, 'rev'>,
    expectedRev: number | undefined,
  ): Promise<StoredIdentity> {
    return this.#putRevisioned(
      Keys.identity(record.identity.id),
      record,
      expectedRev,
      `identity ${record.identity.id}`,
    );
  }

  /** Puts an item only if its stored revision is still `expectedRev` (undefined: must not exist). */
  async #putRevisioned<T extends object>(
    key: { pk: string; sk: string },
    item: T,
    expectedRev: number | undefined,
    what: string,
  ): Promise<T & { rev: number }> {
    const rev = (expectedRev ?? 0) + 1;
    // Marks this write, so a retry of it can be told from someone else's write.
    const writeId = randomUUID();
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...key, ...item, rev, writeId },
          ConditionExpression: expectedRev === undefined ? 'attribute_not_exists(pk)' : 'rev = :rev',
          ...(expectedRev === undefined ? {} : { ExpressionAttributeValues: { ':rev': expectedRev } }),
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // The SDK retries a write whose answer was lost; the retry then fails its own
      // condition. If what is stored is exactly what we wrote, the write did happen.
      if (await this.#holds(key, writeId)) return { ...item, rev };
      throw new ConflictError(
        `${what} changed since it was read (expected revision ${expectedRev ?? 'none'}); read it again and retry`,
        { cause: error },
      );
    }
    return { ...item, rev };
  }

  async #holds(key: { pk: string; sk: string }, writeId: string): Promise<boolean> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: key, ConsistentRead: true }),
    );
    return Item?.writeId === writeId;
  }

  // ---- credential versions, rotation state, locks -----------------------------------------

  async listVersions(identityId: string): Promise<StoredVersion[]> {
    const items = await this.#query(`IDENTITY#${identityId}`, 'VERSION#');
    return items
      .map(({ pk: _pk, sk: _sk, rev, ...rest }) => ({
        ...CredentialVersionSchema.parse(rest),
        rev: Number(rev),
      }))
      .sort((a, b) => a.issuedAt.localeCompare(b.issuedAt) || a.versionId.localeCompare(b.versionId));
  }

  /** One version by its key: one GetItem, where `listVersions` queries the identity's partition. */
  async getVersion(identityId: string, versionId: string): Promise<StoredVersion | undefined> {
    const { Item } = await this.#doc.send(
      new GetCommand({
        TableName: this.#table,
        Key: Keys.version(identityId, versionId),
        ConsistentRead: true,
      }),
    );
    if (!Item) return undefined;
    const { pk: _pk, sk: _sk, rev, writeId: _w, ...rest } = Item;
    return { ...CredentialVersionSchema.parse(rest), rev: Number(rev) };
  }

  /**
   * Marks a version revoked in one conditional update, without reading it first (a
   * campaign does this for thousands of versions). Returns false when the version is
   * unknown or already revoked: nothing left to do. Bumps the revision, so a writer
   * holding the version as it was read sees a conflict and reads it again.
   */
  async markVersionRevoked(
    identityId: string,
    versionId: string,
    change: { at: string; note: string },
  ): Promise<boolean> {
    try {
      await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: Keys.version(identityId, versionId),
          UpdateExpression:
            'SET #stage = :revoked, retiredAt = :at, note = :note, rev = rev + :one, writeId = :w',
          ConditionExpression: 'attribute_exists(pk) AND #stage <> :revoked',
          ExpressionAttributeNames: { '#stage': 'stage' },
          ExpressionAttributeValues: {
            ':revoked': 'revoked',
            ':at': change.at,
            ':note': change.note,
            ':one': 1,
            ':w': randomUUID(),
          },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  putVersion(version: CredentialVersion, expectedRev: number | undefined): Promise<StoredVersion> {
    return this.#putRevisioned(
      Keys.version(version.identityId, version.versionId),
      CredentialVersionSchema.parse(version),
      expectedRev,
      `version ${version.versionId} of ${version.identityId}`,
    );
  }

  async getRotation(identityId: string): Promise<StoredRotation | undefined> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: Keys.rotation(identityId), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const { pk: _pk, sk: _sk, rev, ...rest } = Item;
    return { ...RotationStateSchema.parse(rest), rev: Number(rev) };
  }

  putRotation(state: RotationState, expectedRev: number | undefined): Promise<StoredRotation> {
    return this.#putRevisioned(
      Keys.rotation(state.identityId),
      RotationStateSchema.parse(state),
      expectedRev,
      `rotation of ${state.identityId}`,
    );
  }

  async acquireLock(identityId: string, owner: string, now: number, expiresAt: number): Promise<boolean> {
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          // `expiresAt` (seconds) is the table's TTL attribute: stale lock items clean themselves up in AWS.
          Item: {
            ...Keys.lock(identityId),
            owner,
            lockedUntil: expiresAt,
            expiresAt: Math.ceil(expiresAt / 1_000) + 3_600,
          },
          ConditionExpression: 'attribute_not_exists(pk) OR lockedUntil < :now OR #owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':now': now, ':owner': owner },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async releaseLock(identityId: string, owner: string): Promise<void> {
    try {
      await this.#doc.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: Keys.lock(identityId),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
        }),
      );
    } catch (error) {
      // Someone took over after our lock expired: it is theirs now, not ours to delete.
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  // ---- audit chain ------------------------------------------------------------------------

  async #head(): Promise<AuditHead | undefined> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: Keys.auditHead, ConsistentRead: true }),
    );
    return Item ? { seq: Number(Item.seq), hash: String(Item.hash) } : undefined;
  }

  /** The last record of the chain, read from the records themselves (the head may lag). */
  async #last(): Promise<AuditHead | undefined> {
    const { Items } = await this.#doc.send(
      new QueryCommand({
        TableName: this.#table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :sk)',
        ExpressionAttributeValues: { ':pk': 'AUDIT', ':sk': 'SEQ#' },
        ScanIndexForward: false,
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    const last = Items?.[0];
    if (!last) return undefined;
    // A block item holds a run of records; the chain goes on after its last one.
    return last.records
      ? { seq: Number(last.lastSeq), hash: String(last.lastHash) }
      : { seq: Number(last.seq), hash: String(last.hash) };
  }

  /** The last record this process appended or saw; a guess, checked by the conditional put. */
  #lastSeen: AuditHead | undefined;
  /** Events waiting for the next write, with their callers. */
  #waiting: {
    event: AuditEventInput;
    resolve: (record: AuditRecord) => void;
    reject: (error: unknown) => void;
  }[] = [];
  /** Whether a write of this process is under way; it takes the waiting events after it. */
  #flushing = false;

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
  append(event: AuditEventInput): Promise<AuditRecord> {
    return new Promise<AuditRecord>((resolve, reject) => {
      this.#waiting.push({ event, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, blockLength(this.#waiting.map((w) => w.event)));
        try {
          const records = await this.#appendBlock(batch.map((w) => w.event));
          for (const [i, waiting] of batch.entries()) waiting.resolve(records[i] as AuditRecord);
        } catch (error) {
          for (const waiting of batch) waiting.reject(error);
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #appendBlock(events: readonly AuditEventInput[]): Promise<AuditRecord[]> {
    const first = events[0];
    if (!first) return [];
    for (let attempt = 1; ; attempt += 1) {
      // First try after the record we last saw; other writers make that guess fail, then read.
      const last = attempt === 1 && this.#lastSeen ? this.#lastSeen : await this.#last();
      const at = this.#clock.now().toISOString();
      const records = nextRecords(last, events, () => ({ id: randomUUID(), at }), this.#digest);
      const head = records[0] as AuditRecord;
      const tail = records[records.length - 1] as AuditRecord;
      const key = Keys.audit(head.seq);
      // One record keeps the flat item of earlier versions; several go in one block item.
      const item =
        records.length === 1
          ? { ...key, ...head }
          : { ...key, lastSeq: tail.seq, lastHash: tail.hash, records };
      try {
        await this.#doc.send(
          new PutCommand({
            TableName: this.#table,
            Item: item,
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        );
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        // Our own write, retried by the SDK after its answer was lost, is not a lost race.
        const { Item } = await this.#doc.send(
          new GetCommand({ TableName: this.#table, Key: key, ConsistentRead: true }),
        );
        const storedId = (Item?.records as { id?: unknown }[] | undefined)?.[0]?.id ?? Item?.id;
        if (storedId !== head.id) {
          this.#lastSeen = undefined;
          if (attempt >= this.#maxAppendAttempts) {
            throw new KeywardenError(
              `audit append for ${first.type} ${first.subject}${events.length > 1 ? ` and ${events.length - 1} more` : ''} lost the race for sequence numbers ${attempt} times; try again`,
              { cause: error, retryable: true },
            );
          }
          if (attempt > 1)
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * Math.min(attempt, 10)));
          continue;
        }
      }
      this.#lastSeen = { seq: tail.seq, hash: tail.hash };
      // While more events wait, only the last write of the burst moves the head: it is a
      // checkpoint that may lag, and the burst's final write brings it level with the chain.
      if (this.#waiting.length > 0) return records;
      await this.#doc
        .send(
          new PutCommand({
            TableName: this.#table,
            Item: { ...Keys.auditHead, seq: tail.seq, hash: tail.hash },
            ConditionExpression: 'attribute_not_exists(pk) OR seq < :seq',
            ExpressionAttributeValues: { ':seq': tail.seq },
          }),
        )
        .catch((error: unknown) => {
          // A later append moved the head further already.
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
        });
      return records;
    }
  }

  async readAll(): Promise<{ records: AuditRecord[]; head: AuditHead | undefined }> {
    const items = await this.#query('AUDIT', 'SEQ#');
    const records = items.flatMap(({ pk: _pk, sk: _sk, ...rest }) =>
      Array.isArray(rest.records)
        ? rest.records.map((record: unknown) => AuditRecordSchema.parse(record))
        : [AuditRecordSchema.parse(rest)],
    );
    return { records, head: await this.#head() };
  }

  // ---- findings ---------------------------------------------------------------------------

  async saveFindings(run: { runId: string; at: string; findings: Finding[] }): Promise<void> {
    const expiresAt = Math.floor(Date.parse(run.at) / 1_000) + FINDINGS_RETENTION_SECONDS;
    for (let i = 0; i < run.findings.length; i += 25) {
      let pending = run.findings.slice(i, i + 25).map((finding) => ({
        PutRequest: { Item: { ...Keys.finding(run.runId, finding.id), ...finding, expiresAt } },
      }));
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        const result = await this.#doc.send(
          new BatchWriteCommand({ RequestItems: { [this.#table]: pending } }),
        );
        pending = (result.UnprocessedItems?.[this.#table] ?? []) as typeof pending;
        if (pending.length && attempt > 8)
          throw new KeywardenError('could not store findings: writes kept being throttled', {
            retryable: true,
          });
        if (pending.length) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
    // The pointer moves last, so readers never see a half-written run.
    await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        Item: { ...Keys.latestFindings, runId: run.runId, at: run.at, count: run.findings.length },
      }),
    );
  }

  async latestFindings(): Promise<{ runId: string; at: string; findings: Finding[] } | undefined> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: Keys.latestFindings, ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const runId = String(Item.runId);
    const findings = (await this.#query(`FINDINGS#${runId}`)).map(
      ({ pk: _pk, sk: _sk, expiresAt: _e, ...rest }) => FindingSchema.parse(rest),
    );
    return { runId, at: String(Item.at), findings };
  }

  // ---- break-glass grants ------------------------------------------------------------------

  async getGrant(grantId: string): Promise<StoredGrant | undefined> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: Keys.grant(grantId), ConsistentRead: true }),
    );
    if (!Item) return undefined;
    return { ...GrantSchema.parse(Item), rev: Number(Item.rev) };
  }

  putGrant(grant: Grant, expectedRev: number | undefined): Promise<StoredGrant> {
    const parsed = GrantSchema.parse(grant);
    return this.#putRevisioned(
      Keys.grant(grant.grantId),
      { ...parsed, gsi1pk: 'GRANTS', gsi1sk: `${parsed.requestedAt}#${parsed.grantId}` },
      expectedRev,
      `grant ${grant.grantId}`,
    ).then(({ gsi1pk: _p, gsi1sk: _s, ...stored }) => stored);
  }

  async listGrants(filter: { states?: readonly GrantState[] } = {}): Promise<StoredGrant[]> {
    const grants: StoredGrant[] = [];
    const pages = paginateQuery(
      { client: this.#doc },
      {
        TableName: this.#table,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': 'GRANTS' },
        ScanIndexForward: false,
      },
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) grants.push({ ...GrantSchema.parse(item), rev: Number(item.rev) });
    }
    return filter.states ? grants.filter((grant) => filter.states?.includes(grant.state)) : grants;
  }

  // ---- revocation campaigns ---------------------------------------------------------------

  async createCampaign(campaign: Campaign, targets: readonly Target[]): Promise<StoredCampaign> {
    const parsed = CampaignSchema.parse(campaign);
    if (await this.getCampaign(parsed.campaignId)) {
      throw new ConflictError(`campaign ${parsed.campaignId} exists already; plan it again under a new id`);
    }
    const items = targets.map((target) => ({
      ...Keys.target(parsed.campaignId, target.targetId),
      ...TargetSchema.parse(target),
    }));
    await this.#batchPut(items, `the targets of campaign ${parsed.campaignId}`);
    // The campaign goes in last, so a reader that finds it finds every target.
    return this.putCampaign(parsed, undefined);
  }

  async getCampaign(campaignId: string): Promise<StoredCampaign | undefined> {
    const { Item } = await this.#doc.send(
      new GetCommand({ TableName: this.#table, Key: Keys.campaign(campaignId), ConsistentRead: true }),
    );
    return Item ? toStoredCampaign(Item) : undefined;
  }

  async putCampaign(campaign: Campaign, expectedRev: number | undefined): Promise<StoredCampaign> {
    const parsed = CampaignSchema.parse(campaign);
    const {
      gsi1pk: _p,
      gsi1sk: _s,
      ...stored
    } = await this.#putRevisioned(
      Keys.campaign(parsed.campaignId),
      { ...parsed, gsi1pk: 'CAMPAIGNS', gsi1sk: `${parsed.createdAt}#${parsed.campaignId}` },
      expectedRev,
      `campaign ${parsed.campaignId}`,
    );
    return stored;
  }

  async listCampaigns(): Promise<StoredCampaign[]> {
    const campaigns: StoredCampaign[] = [];
    const pages = paginateQuery(
      { client: this.#doc },
      {
        TableName: this.#table,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :pk',
        ExpressionAttributeValues: { ':pk': 'CAMPAIGNS' },
        ScanIndexForward: false,
      },
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) campaigns.push(toStoredCampaign(item));
    }
    return campaigns;
  }

  async listTargets(campaignId: string): Promise<Target[]> {
    const items = await this.#query(`CAMPAIGN#${campaignId}`, 'TARGET#');
    return items.map(({ pk: _pk, sk: _sk, writeId: _w, ...rest }) => TargetSchema.parse(rest));
  }

  async putTarget(campaignId: string, target: Target, expectedAttempts: number): Promise<void> {
    const key = Keys.target(campaignId, target.targetId);
    // Marks this write, so the SDK's retry of it can be told from another run's write.
    const writeId = randomUUID();
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...key, ...TargetSchema.parse(target), writeId },
          ConditionExpression: '#attempts = :attempts AND (#outcome = :pending OR #outcome = :failed)',
          ExpressionAttributeNames: { '#attempts': 'attempts', '#outcome': 'outcome' },
          ExpressionAttributeValues: {
            ':attempts': expectedAttempts,
            ':pending': 'pending',
            ':failed': 'failed',
          },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      if (await this.#holds(key, writeId)) return;
      throw new ConflictError(
        `target ${target.targetId} of campaign ${campaignId} was settled or tried by another run (expected ${expectedAttempts} attempts and an open outcome); its record stands`,
        { cause: error },
      );
    }
  }

  async putReissue(campaignId: string, record: ReissueRecord): Promise<void> {
    await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        Item: { ...Keys.reissue(campaignId, record.identityId), ...ReissueRecordSchema.parse(record) },
      }),
    );
  }

  async listReissues(campaignId: string): Promise<ReissueRecord[]> {
    const items = await this.#query(`CAMPAIGN#${campaignId}`, 'REISSUE#');
    return items.map(({ pk: _pk, sk: _sk, ...rest }) => ReissueRecordSchema.parse(rest));
  }

  /** Puts items 25 at a time, trying unprocessed ones again with backoff. */
  async #batchPut(items: readonly Record<string, unknown>[], what: string): Promise<void> {
    for (let i = 0; i < items.length; i += 25) {
      let pending = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        const result = await this.#doc.send(
          new BatchWriteCommand({ RequestItems: { [this.#table]: pending } }),
        );
        pending = (result.UnprocessedItems?.[this.#table] ?? []) as typeof pending;
        if (pending.length && attempt > 8)
          throw new KeywardenError(`could not store ${what}: writes kept being throttled; try again`, {
            retryable: true,
          });
        if (pending.length) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
  }
}

/** The campaign fields of an item, without the table's own attributes. */
function toStoredCampaign(item: Record<string, unknown>): StoredCampaign {
  const { pk: _pk, sk: _sk, gsi1pk: _p, gsi1sk: _s, writeId: _w, rev, ...rest } = item;
  return { ...CampaignSchema.parse(rest), rev: Number(rev) };
}

function toStoredIdentity(item: Record<string, unknown>): StoredIdentity {
  const record: StoredIdentity = {
    identity: IdentitySchema.parse(item.identity),
    status: item.status === 'retired' ? 'retired' : 'active',
    declarationHash: String(item.declarationHash),
    rev: Number(item.rev),
    syncedAt: String(item.syncedAt),
  };
  if (typeof item.retiredAt === 'string') record.retiredAt = item.retiredAt;
  return record;
}
