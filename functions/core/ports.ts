/**
 * The ports: every interface through which core logic reaches the outside (stores,
 * providers, delivery targets, revokers, launchers, the clock). Adapters implement them;
 * use cases ask for the few they call. This module imports domain modules only, and
 * none of those imports it back.
 */
import type { ListedCredential } from './adoption.ts';
import type { AuditEventInput, AuditHead, AuditRecord } from './audit.ts';
import type { Campaign, ReissueRecord, Target } from './campaign.ts';
import type { CiAwsIssue, CiConfig, CiIssuer, CiJob, CiVaultIssue, Claims } from './ci-policy.ts';
import type { ApprovalRecord, CiCredentialRecord } from './ci-records.ts';
import type { CredentialVersion, RotationState } from './credential-version.ts';
import type { DiscoveredCredential, DiscoveryHints } from './discovery.ts';
import type { ContainmentOutcome, ExposureRecord } from './exposure-record.ts';
import type { DetectedSecret } from './exposure-types.ts';
import type { Finding } from './findings.ts';
import type { BreakglassConfig, BreakglassTarget, Grant, GrantState, Principal } from './grant.ts';
import type { GrantUsage } from './grant-report.ts';
import type { Delivery, Identity, IdentityKind, IdentityOfKind } from './identity.ts';
import type { SecretValue } from './secret-value.ts';

/** The time, injected so core logic never reads the system clock. */
export interface Clock {
  now(): Date;
}

/** An identity as the store keeps it: the declaration plus its lifecycle. */
export interface StoredIdentity {
  identity: Identity;
  status: 'active' | 'retired';
  /** Digest of the canonical declaration, to tell a changed declaration from an unchanged one. */
  declarationHash: string;
  /** Optimistic-locking revision: every write must name the revision it read. */
  rev: number;
  syncedAt: string;
  retiredAt?: string;
}

export interface IdentityStore {
  getIdentity(id: string): Promise<StoredIdentity | undefined>;
  /** The identities of `ids` that exist, read by key (DynamoDB: one BatchGetItem per 100), in no set order. */
  getIdentities(ids: readonly string[]): Promise<StoredIdentity[]>;
  listIdentities(): Promise<StoredIdentity[]>;
  /**
   * Writes `record` only if the stored revision is still `expectedRev` (undefined: the item
   * must not exist yet); otherwise throws ConflictError. Returns the record with its new rev.
   */
  putIdentity(record: Omit<StoredIdentity, 'rev'>, expectedRev: number | undefined): Promise<StoredIdentity>;
}

export interface AuditLog {
  /** Appends one event at the head of the chain; safe under concurrent appenders. */
  append(event: AuditEventInput): Promise<AuditRecord>;
  /**
   * Appends several events, in order, as consecutive records of the chain, with one move of
   * the head (DynamoDB: one block item and the head, whatever the number); safe under
   * concurrent appenders like `append`.
   */
  appendMany(events: readonly AuditEventInput[]): Promise<AuditRecord[]>;
  /** Every record in sequence order, and the head pointer. */
  readAll(): Promise<{ records: AuditRecord[]; head: AuditHead | undefined }>;
  /**
   * Every record about one of `subjects`, in sequence order: the whole trail is read, but only
   * theirs is kept (a report's history holds the records of its identities, not the trail's).
   */
  recordsAbout(subjects: ReadonlySet<string>): Promise<AuditRecord[]>;
  /**
   * The recent tail of the chain, in sequence order: every record whose `at` is at or after
   * `at` less {@link AUDIT_CLOCK_SKEW_MS} (writers' clocks differ), read backwards from the
   * chain's end and stopping at the first older one. Never reads the whole trail.
   */
  recordsSince(at: string): Promise<AuditRecord[]>;
}

/** How far apart the clocks of two writers of the audit trail may be; {@link AuditLog.recordsSince} reads this much further back. */
export const AUDIT_CLOCK_SKEW_MS = 60_000;

/** The latest findings, replaced as a whole by each discovery run. */
export interface FindingStore {
  saveFindings(run: { runId: string; at: string; findings: Finding[] }): Promise<void>;
  latestFindings(): Promise<{ runId: string; at: string; findings: Finding[] } | undefined>;
  /**
   * Claims the finding `id` until `until`, for whoever acts on it (audits, contains, alerts):
   * true for exactly one caller while the claim holds, however many ask at once (a stolen key
   * calls in bursts) and whatever discovery does to the latest findings meanwhile. A claim past
   * its `until` (as of `now`) may be claimed again.
   */
  claimFinding(id: string, until: Date, now: Date): Promise<boolean>;
  /**
   * Keeps a claim this caller won until `until`: the claim is first taken for a short lease (a
   * caller that dies holding it leaves it to a later call), then kept once the action is done.
   */
  holdFinding(id: string, until: Date): Promise<void>;
  /** Gives up a claim taken by {@link claimFinding} whose action failed, so a retry may act. */
  releaseFinding(id: string): Promise<void>;
}

/** A credential version with its optimistic-locking revision. */
export type StoredVersion = CredentialVersion & { rev: number };
/** A rotation's progress with its optimistic-locking revision. */
export type StoredRotation = RotationState & { rev: number };

/** Credential versions and rotation progress (with each identity's rotation lock). */
export interface RotationStore {
  listVersions(identityId: string): Promise<StoredVersion[]>;
  /** Conditional on `expectedRev` like putIdentity; throws ConflictError when someone else wrote first. */
  putVersion(version: CredentialVersion, expectedRev: number | undefined): Promise<StoredVersion>;
  getRotation(identityId: string): Promise<StoredRotation | undefined>;
  /**
   * An identity's rotation progress and its versions (as `listVersions` orders them) in one
   * read, as a rotation run starts: the store keeps them together (DynamoDB: one Query of the
   * identity's partition).
   */
  loadRotation(identityId: string): Promise<{ state: StoredRotation | undefined; versions: StoredVersion[] }>;
  /**
   * Conditional on `expectedRev` like putIdentity. The identity's rotation lock is part of the
   * progress (`RotationState.lock`): a run takes it with the write that starts or continues a
   * rotation and gives it back with the one that finishes it.
   */
  putRotation(state: RotationState, expectedRev: number | undefined): Promise<StoredRotation>;
}

/** A grant with its optimistic-locking revision. */
export type StoredGrant = Grant & { rev: number };

/** Grants a page holds when the caller does not say ({@link GrantPageRequest.limit}). */
export const DEFAULT_GRANT_PAGE = 50;
/** The most grants one page holds. */
export const MAX_GRANT_PAGE = 100;

/** Which page of a listing: at most `limit` grants, after the page that answered `nextToken`. */
export interface GrantPageRequest {
  /** 1 to {@link MAX_GRANT_PAGE}; {@link DEFAULT_GRANT_PAGE} when absent. */
  limit?: number | undefined;
  /** The `nextToken` of the previous page of the same listing. */
  nextToken?: string | undefined;
}

/** Which grants to list, newest first: all of them, those in one state, one requester's, or both. */
export interface GrantQuery extends GrantPageRequest {
  state?: GrantState | undefined;
  /** The requester exactly as recorded (kind and id). */
  requester?: Principal | undefined;
}

/**
 * One page of a listing. `nextToken` is opaque and present when more may follow; a page may
 * hold fewer than `limit` grants (a listing by requester and state), so follow it until absent.
 */
export interface GrantPage {
  grants: StoredGrant[];
  nextToken?: string;
}

/**
 * Break-glass grants; every transition is a conditional write on the revision read. Every
 * listing is a query on an index, paginated: none reads the grants it does not answer with.
 *
 * @throws ValidationError from a listing, for a `nextToken` it did not hand out for that listing.
 */
export interface GrantStore {
  getGrant(grantId: string): Promise<StoredGrant | undefined>;
  putGrant(grant: Grant, expectedRev: number | undefined): Promise<StoredGrant>;
  /** Grants newest first, narrowed by state and/or requester. */
  queryGrants(query?: GrantQuery): Promise<GrantPage>;
  /**
   * Grants the sweeper has work on at `now` (grant-sweep.ts `sweepDueAt`): approved or active
   * ones past their end, ended ones whose credentials are not all ended, revoked ones whose
   * deny policy can go. A finished grant is never read.
   */
  sweepDueGrants(now: Date, page?: GrantPageRequest): Promise<GrantPage>;
  /** Ended grants whose review is overdue at `now` (grant.ts `isReviewOverdue`). */
  reviewDueGrants(now: Date, page?: GrantPageRequest): Promise<GrantPage>;
}

/**
 * A credential issued for a break-glass grant. It ends by itself at `expiresAt` (the grant's
 * end) whatever keywarden does afterwards. The clear values are SecretValues: they reach the
 * requester over the authenticated API only, never a log, an audit record or a chat message.
 */
export type IssuedGrantCredential =
  | {
      type: 'aws-session';
      /** The STS session name (the grant id), recorded on the grant. */
      handle: string;
      expiresAt: string;
      /** `SecretValue.ofJson({ accessKeyId, secretAccessKey, sessionToken })`. */
      credentials: SecretValue;
    }
  | {
      type: 'vault-wrapped-token';
      /** The accessor of the wrapped token (not of the wrapping token), recorded on the grant. */
      handle: string;
      expiresAt: string;
      /** A single-use response-wrapping token; unwrapping it once yields the grant's Vault token. */
      wrappingToken: SecretValue;
      wrapExpiresAt: string;
    };

/** What a grant issuer is asked for: a credential of the grant's target that ends at `expiresAt`. */
export interface GrantIssueRequest {
  grantId: string;
  target: BreakglassTarget;
  expiresAt: Date;
  now: Date;
}

/** Issues and ends break-glass credentials, one implementation per target type. */
export interface GrantIssuer {
  /** Issues a credential for the grant that ends by itself at `expiresAt`. */
  issue(request: GrantIssueRequest): Promise<IssuedGrantCredential>;
  /**
   * Ends the grant's live credentials before their time: the AWS sessions whose
   * SourceIdentity is the grant id, the Vault tokens with these accessors. Idempotent:
   * a credential already gone counts as ended.
   */
  revoke(request: { grantId: string; target: BreakglassTarget; handles: readonly string[] }): Promise<void>;
  /**
   * Removes what an early revocation left behind (the AWS deny policy) once none of the
   * grant's credentials can be alive any more. Absent where revocation leaves nothing.
   */
  release?(request: { grantId: string; target: BreakglassTarget }): Promise<void>;
}

/** The one-time schedule that calls the grant-expiry handler at a grant's end (EventBridge Scheduler). */
export interface GrantExpiryScheduler {
  /** Creates the grant's one-time schedule at `at`; an existing one for the grant is kept. */
  scheduleExpiry(grantId: string, at: Date): Promise<void>;
  /** Deletes the grant's schedule (it ended early); a missing schedule is fine. */
  cancelExpiry(grantId: string): Promise<void>;
}

/** The inventory's `breakglass` section as last synced, for the functions that enforce it. */
export interface BreakglassConfigStore {
  /** Replaces the stored roles and people as a whole. */
  putBreakglassConfig(config: BreakglassConfig): Promise<void>;
  /** The stored section; no roles and no people when none was ever synced. */
  getBreakglassConfig(): Promise<BreakglassConfig>;
}

/** Remembers deliveries already handled (Slack retries the same request), for a while. */
export interface DeliveryLedger {
  /** Records `key`; false when it was recorded before (a duplicate delivery). */
  firstDelivery(key: string, keepSeconds: number): Promise<boolean>;
}

/** A campaign with its optimistic-locking revision. */
export type StoredCampaign = Campaign & { rev: number };

/** One batch's checkpoint (CampaignStore.settleBatch): what its lease holder found and did. */
export interface SettleBatchRequest {
  batch: string;
  holder: string;
  /** Targets the holder worked, with their outcomes. */
  outcomes: readonly Target[];
  /** Ids found settled already. */
  done: readonly string[];
  /** Ids counted a try on the lease and never tried. */
  untried: readonly string[];
}

/**
 * Incident revocation campaigns: the campaign record, its targets as separate records
 * (a campaign of thousands stays far below DynamoDB's 400 KB item limit), and the
 * identities it re-issued. Target writes are conditional, so a resumed or concurrent
 * run never overwrites an outcome someone else recorded.
 */
export interface CampaignStore {
  /**
   * Stores a planned campaign with all its targets, the targets first: a reader that
   * finds the campaign finds every target. Throws ConflictError if the id is taken.
   */
  createCampaign(campaign: Campaign, targets: readonly Target[]): Promise<StoredCampaign>;
  /**
   * Stores the targets of a later part of a campaign planned in parts (its `planning` still
   * open), before its planner updates the campaign's counts (putCampaign): a reader that
   * finds the counts finds the targets. Throws NotFoundError for an unknown campaign.
   */
  addTargets(campaignId: string, targets: readonly Target[]): Promise<void>;
  getCampaign(campaignId: string): Promise<StoredCampaign | undefined>;
  /** Conditional on `expectedRev` like putIdentity; throws ConflictError when someone else wrote first. */
  putCampaign(campaign: Campaign, expectedRev: number): Promise<StoredCampaign>;
  /** Every campaign, newest first. */
  listCampaigns(): Promise<StoredCampaign[]>;
  /** The campaign's targets, in targetId order. */
  listTargets(campaignId: string): Promise<Target[]>;
  /**
   * The targets of `targetIds` that exist, read by key (DynamoDB: one BatchGetItem per 100), in
   * no set order: what a revoke-batch worker reads of a campaign of any size.
   */
  getTargets(campaignId: string, targetIds: readonly string[]): Promise<Target[]>;
  /**
   * One identity's targets (a target's id starts with its identity's id and a colon,
   * campaign.ts): what deciding its re-issue reads when its targets span batches.
   */
  listTargetsOf(campaignId: string, identityId: string): Promise<Target[]>;
  /**
   * Takes the lease of one batch of targets (`Target.batch`) for `holder`, if it is free, its
   * holder's time ran out (a dead run) or `holder` has it already, until `expiresAt`; counts
   * one try for each of `tryIds`. One conditional write, then one read of the batch's targets.
   */
  leaseBatch(campaignId: string, request: BatchLeaseRequest): Promise<BatchLease>;
  /**
   * Renews `holder`'s lease until `expiresAt`, counting one more try of `tried` if given.
   * False when `holder` no longer has it (it ran out and another run took it).
   */
  renewBatch(
    campaignId: string,
    request: { batch: string; holder: string; expiresAt: number; tried?: string },
  ): Promise<boolean>;
  /**
   * The lease holder's one checkpoint of its batch: writes `outcomes` together (unconditionally:
   * only the holder writes the batch's targets, and it wrote only what it found open), then
   * gives the lease back, dropping the tries counted for `outcomes` and for `done` (found
   * settled) and one for each of `untried` (counted, never made).
   */
  settleBatch(campaignId: string, request: SettleBatchRequest): Promise<void>;
  /** The batches whose lease is held or holds tries not yet checkpointed (a run died): what is in flight. */
  listBatchLeases(campaignId: string): Promise<BatchLeaseRecord[]>;
  /** Records what re-issuing one identity gave; the latest record per identity wins. */
  putReissue(campaignId: string, record: ReissueRecord): Promise<void>;
  listReissues(campaignId: string): Promise<ReissueRecord[]>;
}

/**
 * What a campaign store may offer beyond the port, to save round trips (DynamoStore does): what
 * a revoke-batch worker reads before its lease — the campaign, its targets and their
 * identities — in one read (DynamoDB: one BatchGetItem).
 */
export interface CampaignShortcuts {
  readBatchWork(
    campaignId: string,
    targetIds: readonly string[],
    identityIds: readonly string[],
  ): Promise<{ campaign: StoredCampaign | undefined; targets: Target[]; identities: StoredIdentity[] }>;
}

/** Starts the revocation state machine over a stored campaign. */
export interface CampaignLauncher {
  /**
   * Starts the run of a stored campaign and returns once it is started (not finished).
   * `retryFailed` (a resume) gives retryable failures of earlier runs a fresh budget.
   *
   * @throws ConflictError when the campaign was already started (and is not a resume).
   */
  launch(campaignId: string, options?: { retryFailed?: boolean }): Promise<void>;
}

/** What {@link CampaignStore.leaseBatch} is asked: a batch, its taker, and the tries it starts. */
export interface BatchLeaseRequest {
  /** The batch (`Target.batch`). */
  batch: string;
  /** Who takes it: one id per run. */
  holder: string;
  /** Epoch ms on the taker's clock: a lease whose `expiresAt` is before this is free. */
  now: number;
  /** Epoch ms: when the lease is free again unless renewed. */
  expiresAt: number;
  /** The targets the taker means to try: one try is counted for each before it is made. */
  tryIds: readonly string[];
}

/**
 * A lease asked for: taken, with the batch's targets as stored now and the tries counted on
 * the lease per target (this taker's included, and those of a holder that died before its
 * checkpoint); or held by another run until `expiresAt`.
 */
export type BatchLease =
  | { taken: true; targets: Target[]; tries: Record<string, number> }
  | { taken: false; holder: string; expiresAt: number };

/** A batch's lease as stored. */
export interface BatchLeaseRecord {
  batch: string;
  holder?: string;
  expiresAt?: number;
  /** Tries counted and not yet checkpointed, per target id. */
  tries: Record<string, number>;
}

/**
 * What a rotation store may offer beyond the port, to save round trips at scale
 * (DynamoStore offers both): one version read by its key, and a version marked revoked in
 * one conditional update without reading it first (false: unknown or revoked already).
 */
export interface VersionShortcuts {
  getVersion(identityId: string, versionId: string): Promise<StoredVersion | undefined>;
  markVersionRevoked(
    identityId: string,
    versionId: string,
    change: { at: string; note: string },
  ): Promise<boolean>;
  /**
   * Marks many versions revoked at once (a campaign's batch): one read and one write of them
   * all (DynamoDB: BatchGetItem, BatchWriteItem); unknown and already revoked ones are left.
   */
  markVersionsRevoked(
    marks: readonly { identityId: string; versionId: string; at: string; note: string }[],
  ): Promise<void>;
}

/** Reading the versions of many identities at once (a campaign planned over a fleet), in fewer requests than one each. */
export interface VersionsOfMany {
  /** Each identity's versions, as `listVersions` orders them; an identity without versions maps to none. */
  listVersionsOf(identityIds: readonly string[]): Promise<Map<string, StoredVersion[]>>;
  /**
   * Records versions not recorded yet (a plan's adoptions) in batches: each whose key holds
   * nothing when read is written, and those written are returned. A batch write is not
   * conditional per item: a version recorded between that read and the write (milliseconds) is
   * overwritten, where `putVersion` would leave it.
   */
  createVersions(versions: readonly CredentialVersion[]): Promise<CredentialVersion[]>;
}

/** Runs `work` with at most a bounded number in flight (p-limit in the adapters). */
/**
 * Runs `work` within a limit. `turns`: how many of a rate's starts the work counts as (a revocation
 * that makes several writes), 1 by default; a limit without a rate ignores it.
 */
export type Limit = <T>(work: () => Promise<T>, turns?: number) => Promise<T>;

/** What a revoker did; `note` says anything the report must tell (such as when it takes effect). */
export interface RevokeResult {
  result: 'revoked' | 'already-revoked';
  note?: string;
}

/** Ends Vault leases that have no per-credential handle in the inventory. */
export interface LeaseRevoker {
  /** Every lease under `prefix` (`sys/leases/revoke-prefix/<prefix>`); none left is `already-revoked`. */
  revokePrefix(prefix: string): Promise<RevokeResult>;
  /** One lease by id; an unknown lease is `already-revoked`. */
  revokeLease(leaseId: string): Promise<RevokeResult>;
}

/** Ends the live STS sessions of a role, which cannot be revoked one by one. */
export interface SessionRevoker {
  /**
   * Denies every action to sessions of `roleArn` issued before `issuedBefore`, with an
   * inline policy named for the incident. Sessions issued later work as before.
   */
  denySessions(roleArn: string, options: { incident: string; issuedBefore: string }): Promise<RevokeResult>;
}

/** What one discovery run needs from a provider side (AWS or Vault). */
export interface DiscoverySource {
  readonly name: string;
  /** Everything that exists in scope, and every declared resource the hints name (see DiscoveryHints). */
  discover(hints: DiscoveryHints): Promise<DiscoveredCredential[]>;
}

/** What a provider issued: the handle to find it again, and the value to deliver. */
export interface IssuedCredential {
  handle: string;
  secret: SecretValue;
  expiresAt?: string;
}

/** What a rotation tells a provider issuing its credential. */
export interface IssueContext {
  versionId: string;
  /** What the delivery target holds now, read once by the rotation; absent when it was not read. */
  current?: DeliveredValue | undefined;
}

/** What a delivery target holds, as one read found it. */
export interface DeliveredValue {
  versionId?: string;
  secret: SecretValue;
  /**
   * The target's own record of what it read (the KV version number and metadata, the Secrets
   * Manager version), opaque to core: handed back to the target by the same run, so that it
   * need not read it again. A target checks that it is its own and reads afresh otherwise.
   */
  basis?: unknown;
}

/** A value as staged: what `readPending` would answer, and what staging learned of the target (`basis`). */
export interface StagedValue {
  secret: SecretValue;
  basis?: unknown;
}

/** What the run that stages a value knows already, so staging need not ask the target again. */
export interface StageContext {
  /** What the target holds now, as {@link DeliveryTarget.readCurrent} answered this run (undefined: nothing). */
  current: DeliveredValue | undefined;
  /** The version id is new: this run made it, so nothing can be staged under it yet (no check for an earlier staging). */
  fresh: boolean;
}

/** A credential as the provider lists it for one identity (defined beside adoption, which records it). */
export type { ListedCredential } from './adoption.ts';

/**
 * One kind of credential (a port; one adapter per kind). Every method is idempotent
 * where the protocol may call it twice after a crash.
 */
export interface CredentialProvider<K extends IdentityKind = IdentityKind> {
  readonly kind: K;
  /**
   * Creates a new credential beside the current one, which it must leave working. `current` is
   * what the identity's delivery target holds now, as the rotation read it: a kind whose value
   * is its own delivery (`ownDelivery`) renders over it instead of reading it again.
   */
  issue(identity: IdentityOfKind<K>, context: IssueContext): Promise<IssuedCredential>;
  /** Applies a pending credential where the provider needs it (setSecret); most need nothing. */
  set?(identity: IdentityOfKind<K>, credential: { handle: string; secret: SecretValue }): Promise<void>;
  /** Proves the credential works, against the provider itself; throws VerificationError otherwise. */
  verify(identity: IdentityOfKind<K>, credential: { handle: string; secret: SecretValue }): Promise<void>;
  /** Called at finishSecret for the version being replaced (IAM: deactivate the old key). */
  supersede?(identity: IdentityOfKind<K>, handle: string): Promise<void>;
  /** Makes a credential unusable without destroying it, where the provider can. */
  disable?(identity: IdentityOfKind<K>, handle: string): Promise<void>;
  /** Ends a credential for good; a credential already gone is `already-revoked`. */
  revoke(identity: IdentityOfKind<K>, handle: string): Promise<'revoked' | 'already-revoked'>;
  /**
   * What exists in the provider for this identity now (to adopt on first rotation, and to find
   * orphans). `skip`: handles the caller has recorded and does not need; a provider that reads
   * each credential on its own (a lookup per secret-id) may leave them out.
   */
  list(identity: IdentityOfKind<K>, options?: ListOptions): Promise<ListedCredential[]>;
  /** When the credential was last used, where the provider records it. */
  lastUsed?(identity: IdentityOfKind<K>, handle: string): Promise<string | undefined>;
}

/**
 * Where the live credential is placed for the pipeline: a Secrets Manager secret or
 * a Vault KV path. A pending value is staged where the pipeline does not read it,
 * and promoted only after it passed its test.
 */
export interface DeliveryTarget<D extends Delivery = Delivery> {
  readonly type: D['type'];
  /**
   * Stages `secret` as the pending value of version `versionId`; running it twice is harmless.
   * Returns the value as staged, which `readPending` would answer (a JSON value goes over the
   * fields already delivered), so the run that staged it need not read it back, with what
   * staging learned of the target for `promote`. `known`: what the run read already.
   */
  stagePending(
    delivery: D,
    versionId: string,
    secret: SecretValue,
    known?: StageContext,
  ): Promise<StagedValue>;
  /** The pending value of `versionId`, or undefined when none is staged. */
  readPending(delivery: D, versionId: string): Promise<SecretValue | undefined>;
  /**
   * Makes version `versionId` the one the pipeline reads; a no-op when it already is. `staged`:
   * what `stagePending` answered the same run, so the target need not read again what it
   * learned then (every write stays conditional on it; a target that finds it stale reads afresh).
   */
  promote(delivery: D, versionId: string, staged?: StagedValue): Promise<void>;
  /** What the pipeline reads now. */
  readCurrent(delivery: D): Promise<DeliveredValue | undefined>;
  /** Drops a staged value that failed its test or was orphaned. */
  discardPending(delivery: D, versionId: string): Promise<void>;
}

/**
 * A credential provider with its identity already bound: what the engines call. The
 * methods are those of {@link CredentialProvider}, without the identity argument; an
 * optional method is absent when the provider has none.
 */
export interface BoundProvider {
  readonly kind: IdentityKind;
  issue(context: IssueContext): Promise<IssuedCredential>;
  set?(credential: { handle: string; secret: SecretValue }): Promise<void>;
  verify(credential: { handle: string; secret: SecretValue }): Promise<void>;
  supersede?(handle: string): Promise<void>;
  disable?(handle: string): Promise<void>;
  revoke(handle: string): Promise<'revoked' | 'already-revoked'>;
  list(options?: ListOptions): Promise<ListedCredential[]>;
  lastUsed?(handle: string): Promise<string | undefined>;
}

/** What a caller of `list` may leave out: see {@link CredentialProvider.list}. */
export interface ListOptions {
  skip?: ReadonlySet<string>;
  /**
   * The credential the delivery held before this rotation promoted its new one, as the run read
   * it (a first rotation adopts what it replaced). A provider that can name a credential from its
   * value (a Vault token's lookup) may answer with that one and those the scope names instead of
   * listing everything; it lists as usual when the value names nothing of this identity's.
   */
  replaced?: SecretValue;
  /**
   * The same read as `replaced`, whole: the value as the delivery held it and the target's record
   * of the read (`basis`). A kind whose value is its own delivery (a Secrets Manager secret) names
   * the version it replaced from it, and one delivered as several fields (an AppRole role-id and
   * secret-id) finds its credential among them: each may answer with that one instead of listing.
   */
  delivered?: DeliveredValue;
  /**
   * Only credentials that still grant something are wanted (a campaign's planning: any stage but
   * `revoked`). A provider with a cheaper read of those may use it and leave out what it would
   * list as `revoked`, and creation times it does not show (Secrets Manager: DescribeSecret's
   * labelled versions, a read of its high read quota, not ListSecretVersionIds at 50 a second).
   */
  grantingOnly?: boolean;
  /**
   * Handles the caller's store records live as credentials keywarden issued (for whichever
   * identity), so their provider-side marks name their identity already: a provider that looks
   * each credential up to tell whose it is (a Vault token's meta) need not look these up. Each
   * is this identity's only when `skip` holds it; another identity reaches one only by naming it
   * (a declared accessor), which the provider looks up as it would anyway.
   */
  issuedByKeywarden?: ReadonlySet<string>;
}

/**
 * The provider of an identity's kind, bound to it.
 *
 * @throws KeywardenError when no provider is configured for the kind (a Vault kind without a Vault address).
 */
export type ProviderFor = (identity: Identity) => BoundProvider;

/** A delivery target with its delivery (the secret, the KV path) already bound. */
export interface BoundDelivery {
  readonly type: Delivery['type'];
  stagePending(versionId: string, secret: SecretValue, known?: StageContext): Promise<StagedValue>;
  readPending(versionId: string): Promise<SecretValue | undefined>;
  promote(versionId: string, staged?: StagedValue): Promise<void>;
  readCurrent(): Promise<DeliveredValue | undefined>;
  discardPending(versionId: string): Promise<void>;
}

/**
 * The delivery target of a delivery's type, bound to it.
 *
 * @throws KeywardenError when no target is configured for the type (Vault KV without a Vault address).
 */
export type DeliveryFor = (delivery: Delivery) => BoundDelivery;

/** A provider's audit trail, read for the uses of a grant's Vault tokens (OpenBao's audit device locally). */
export interface GrantUsageTrail {
  /** The requests made with the tokens of these accessors, oldest first. */
  usage(accessors: readonly string[]): Promise<GrantUsage[]>;
}

// ---- CI job credentials (ci-policy.ts, ci-exchange.ts) ----

/** A CI OIDC token that verified against one trusted issuer. */
export interface VerifiedCiToken {
  issuer: CiIssuer;
  claims: Claims;
  /** The token's `jti`: it is exchanged once. */
  jti: string;
  issuedAt: Date;
  expiresAt: Date;
}

/** Verifies a job's OIDC token (signature, iss, aud, alg, exp/nbf/iat with skew, maximum age). */
export interface CiTokenVerifier {
  /**
   * @throws CiRefusalError naming what failed (`issuer-untrusted`, `audience`, `expired`…), never echoing the token.
   */
  verify(token: string, issuers: readonly CiIssuer[]): Promise<VerifiedCiToken>;
}

/** The inventory's `ci` section as last synced (`keywarden inventory sync`). */
export interface CiConfigStore {
  putCiConfig(config: CiConfig): Promise<void>;
  /** Undefined when no `ci` section was ever synced (CI credentials are off). */
  getCiConfig(): Promise<CiConfig | undefined>;
}

/** A stored exchange, with the revision its next conditional write expects. */
export type StoredCiCredential = CiCredentialRecord & { rev: number };

/** Where exchanges and spent token ids are kept. */
export interface CiCredentialStore {
  /**
   * Records a token's `jti` as spent, kept until `keepUntil` (its expiry plus the skew): true the
   * first time, false when it was spent before (a conditional write, so two racing exchanges of
   * one token see exactly one true).
   */
  spendJti(issuer: string, jti: string, keepUntil: Date): Promise<boolean>;
  putCredential(record: CiCredentialRecord, expectedRev: number | undefined): Promise<StoredCiCredential>;
  getCredential(id: string): Promise<StoredCiCredential | undefined>;
  /** Every exchange of one job (ci-policy.ts `jobOf(...).key`). */
  listByJob(jobKey: string): Promise<StoredCiCredential[]>;
  /** Exchanges the sweeper must look at: active ones past `now`, and ended AWS ones whose deny is still on the role. */
  listDue(now: Date): Promise<StoredCiCredential[]>;
  /** Active exchanges whose use is not recorded yet (for `ci.credentials.used`). */
  listUnused(): Promise<StoredCiCredential[]>;
  /**
   * Exchanges ended at or after `since`, oldest end first: those whose credentials, used after
   * their end, betray a copy kept beyond the job (`used-after-job-end`). `since` bounds the read
   * to a watch window.
   */
  listEnded(since: Date): Promise<StoredCiCredential[]>;
}

/** Issues and ends a job's Vault/OpenBao token. */
export interface CiVaultIssuer {
  issue(request: {
    exchangeId: string;
    grant: string;
    vault: CiVaultIssue;
    job: CiJob;
    now: Date;
  }): Promise<{ token: SecretValue; accessor: string; expiresAt: string }>;
  /** Revokes by accessor; a token already gone is `already-revoked`. */
  revoke(accessor: string): Promise<'revoked' | 'already-revoked'>;
}

/** Issues and ends a job's AWS role session. */
export interface CiAwsIssuer {
  /** AssumeRole with SourceIdentity = the job's correlation id, a session name naming the job, the grant's session policy. */
  issue(request: {
    exchangeId: string;
    grant: string;
    aws: CiAwsIssue;
    job: CiJob;
    now: Date;
  }): Promise<{ credentials: SecretValue; expiresAt: string; sourceIdentity: string; sessionName: string }>;
  /** Denies everything to the role's sessions with this SourceIdentity (live sessions die). */
  end(request: { roleArn: string; sourceIdentity: string }): Promise<void>;
  /** Removes that deny once the sessions it covers are dead. */
  release(request: { roleArn: string; sourceIdentity: string }): Promise<void>;
}

/** The append-only record of artifact approvals. */
export interface ApprovalLedger {
  /** Adds an approval; never overwrites (a conditional write on its id). */
  append(record: ApprovalRecord): Promise<void>;
  /** Every approval of a digest, oldest first. */
  listFor(digest: string): Promise<ApprovalRecord[]>;
}

/** Signs and verifies approval statements with a key keywarden holds (KMS in AWS and on moto). */
export interface ApprovalSigner {
  sign(payload: Uint8Array): Promise<{ signature: string; keyId: string }>;
  verify(payload: Uint8Array, signature: string, keyId: string): Promise<boolean>;
}

// ---- Exposure scanning (exposure-types.ts) ----

/** Finds credential-looking values in a text: an established engine's rules and keywarden's own. */
export interface SecretDetector {
  detect(text: string): Promise<DetectedSecret[]>;
}

/** Exposed managed credentials, one record per fingerprint (exposure-record.ts). */
export interface ExposureStore {
  /** Records a first sighting: true the first time, false when the fingerprint is recorded already (a conditional write). */
  recordExposure(record: ExposureRecord): Promise<boolean>;
  getExposure(fingerprint: string): Promise<ExposureRecord | undefined>;
  /**
   * Takes the right to contain it until `claim.until` (a conditional update): the record as
   * claimed, or undefined when a containment ended it already (`contained`, `started`) or another
   * scanner holds an unexpired claim. Two scanners that see one leak at once: one contains it.
   */
  claimContainment(
    fingerprint: string,
    claim: { at: string; until: string },
  ): Promise<ExposureRecord | undefined>;
  /** Gives the claim up after a failed attempt, noting when a containment of it first failed. */
  releaseContainment(fingerprint: string, failedAt: string): Promise<void>;
  /** Records how its containment ended, and gives the claim up (a `failed` one notes when it first failed). */
  markContained(
    fingerprint: string,
    result: { campaignId: string; outcome: ContainmentOutcome; containedAt: string },
  ): Promise<void>;
}

/** What ending one exposed credential came to. */
export interface ContainmentResult {
  campaignId: string;
  outcome: ContainmentOutcome;
  /** Targets revoked (or found already revoked; 0 when only `started`), and failed, with their errors. */
  revoked: number;
  failures: string[];
  /** The fresh version at the delivery target, when one was re-issued; otherwise why not. */
  reissuedVersionId?: string | undefined;
  reissue?: string | undefined;
  /** Where the incident report was written. */
  report?: string | undefined;
}

/**
 * Ends exactly one exposed credential and re-issues its identity: an incident revocation
 * campaign with selector `fingerprint=<fp>` and re-issue, run locally or in the deployed
 * state machine.
 */
export interface ExposureContainment {
  contain(request: { incident: string; fingerprint: string; identityId: string }): Promise<ContainmentResult>;
}

/**
 * What the owner of an exposed (or unexpectedly used) managed credential is told once keywarden
 * has acted: which identity, where it was seen, what ended it and what replaced it. Handles,
 * places and a short fingerprint only: never a value.
 */
export interface ExposureAlert {
  /** `exposure`: found in a text; `unexpected-use`: used from outside its allowedRunners. */
  cause: 'exposure' | 'unexpected-use';
  identityId: string;
  /** The identity's declared owner, when it has one. */
  owner: string | undefined;
  incident: string;
  /**
   * `contained`: ended (and re-issued when it could be); `started`: its campaign was handed to
   * the revocation state machine, which ends and re-issues it; `failed`: not fully ended (see failures).
   */
  status: 'contained' | 'started' | 'failed';
  /** Where it was seen (`file build.log:12`) or used from (`203.0.113.9 at …`). */
  where: string;
  /** The first characters of the keyed fingerprint, to match the audit trail. */
  fingerprint: string;
  campaignId?: string | undefined;
  reissuedVersionId?: string | undefined;
  reissue?: string | undefined;
  report?: string | undefined;
  failures: string[];
}

/** Tells owners and responders (the alert topic, Slack) that keywarden contained a credential. */
export interface ExposureAlerts {
  /** Resolves once every configured channel took the alert; rejects naming the channels that did not. */
  alert(alert: ExposureAlert): Promise<void>;
}
