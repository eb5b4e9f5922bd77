import type { AuditEventInput, AuditHead, AuditRecord } from './audit.ts';
import type { Campaign, Target } from './campaign.ts';
import type { ReissueRecord } from './campaign-engine.ts';
import type { CredentialVersion, RotationState } from './credential-version.ts';
import type { Finding } from './findings.ts';
import type { BreakglassConfig, BreakglassTarget, Grant, GrantState } from './grant.ts';
import type { Identity } from './identity.ts';
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
  /** Every record in sequence order, and the head pointer. */
  readAll(): Promise<{ records: AuditRecord[]; head: AuditHead | undefined }>;
}

/** The latest findings, replaced as a whole by each discovery run. */
export interface FindingStore {
  saveFindings(run: { runId: string; at: string; findings: Finding[] }): Promise<void>;
  latestFindings(): Promise<{ runId: string; at: string; findings: Finding[] } | undefined>;
}

/** A credential version with its optimistic-locking revision. */
export type StoredVersion = CredentialVersion & { rev: number };
/** A rotation's progress with its optimistic-locking revision. */
export type StoredRotation = RotationState & { rev: number };

/** Credential versions, rotation progress and per-identity locks. */
export interface RotationStore {
  listVersions(identityId: string): Promise<StoredVersion[]>;
  /** Conditional on `expectedRev` like putIdentity; throws ConflictError when someone else wrote first. */
  putVersion(version: CredentialVersion, expectedRev: number | undefined): Promise<StoredVersion>;
  getRotation(identityId: string): Promise<StoredRotation | undefined>;
  putRotation(state: RotationState, expectedRev: number | undefined): Promise<StoredRotation>;
  /**
   * Takes the identity's lock for `owner` until `expiresAt` (epoch ms), if it is free or
   * its holder's time ran out (a crashed run). Returns whether it was taken.
   */
  acquireLock(identityId: string, owner: string, now: number, expiresAt: number): Promise<boolean>;
  /** Gives the lock back, only if `owner` still holds it. */
  releaseLock(identityId: string, owner: string): Promise<void>;
}

/** A grant with its optimistic-locking revision. */
export type StoredGrant = Grant & { rev: number };

/** Break-glass grants; every transition is a conditional write on the revision read. */
export interface GrantStore {
  getGrant(grantId: string): Promise<StoredGrant | undefined>;
  putGrant(grant: Grant, expectedRev: number | undefined): Promise<StoredGrant>;
  /** All grants, newest first; `states` narrows the list. */
  listGrants(filter?: { states?: readonly GrantState[] }): Promise<StoredGrant[]>;
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

/** Issues and ends break-glass credentials, one implementation per target type. */
export interface GrantIssuer {
  /** Issues a credential for the grant that ends by itself at `expiresAt`. */
  issue(request: {
    grantId: string;
    target: BreakglassTarget;
    expiresAt: Date;
    now: Date;
  }): Promise<IssuedGrantCredential>;
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
  getCampaign(campaignId: string): Promise<StoredCampaign | undefined>;
  /** Conditional on `expectedRev` like putIdentity; throws ConflictError when someone else wrote first. */
  putCampaign(campaign: Campaign, expectedRev: number): Promise<StoredCampaign>;
  /** Every campaign, newest first. */
  listCampaigns(): Promise<StoredCampaign[]>;
  /** The campaign's targets, in targetId order. */
  listTargets(campaignId: string): Promise<Target[]>;
  /**
   * Checkpoints one target, only if the stored one still has `expectedAttempts` attempts
   * and is `pending` or `failed`: a settled target (revoked, already-revoked, skipped) is
   * never overwritten. Throws ConflictError otherwise.
   */
  putTarget(campaignId: string, target: Target, expectedAttempts: number): Promise<void>;
  /** Records what re-issuing one identity gave; the latest record per identity wins. */
  putReissue(campaignId: string, record: ReissueRecord): Promise<void>;
  listReissues(campaignId: string): Promise<ReissueRecord[]>;
}
