/**
 * The revocation engine: runs a stored campaign until every target has an outcome.
 *
 * Per target: claim it (a conditional write that counts the attempt), revoke it under
 * its provider's limiter, mark its credential version revoked, audit it, then
 * checkpoint the outcome (the commit point). A retryable failure (throttling, 5xx, a
 * lost connection: `error.retryable`) is tried again with exponential backoff and full
 * jitter up to `maxAttempts`; any other failure ends the target `failed` at once.
 *
 * Resumable: a run that stops (its signal aborts) or dies leaves every target either
 * settled in the store or `pending`; the next run picks up exactly the pending ones. A
 * target whose revoke went through but whose checkpoint did not is revoked again on
 * resume, which the providers answer `already-revoked`: the credential is never missed
 * and never revoked twice in effect. Two runs at once cannot both work on one target:
 * the claim is conditional on the attempt count it read.
 *
 * Targets of one identity run one after another (they share its versions and its
 * rotation lock); identities run side by side, bounded only by the per-kind limiters.
 * Once all targets of an identity are settled and none failed, an identity planned for
 * re-issue gets a fresh credential through the rotation protocol.
 */
import type { AuditEventInput } from './audit.ts';
import {
  type Campaign,
  identityIdOf,
  isFinished,
  type ReissueRecord,
  summarize,
  type Target,
} from './campaign.ts';
import { batchKeyOf, groupByBatch, TARGETS_PER_BATCH } from './campaign-batches.ts';
import { ConflictError, KeywardenError, NotFoundError, ValidationError } from './errors.ts';
import { groupBy } from './group-by.ts';
import type { Identity, IdentityKind } from './identity.ts';
import { KINDS, kindFacts, type ProviderService, rotationBlocker, serviceOf } from './kinds.ts';
import type {
  AuditLog,
  CampaignShortcuts,
  CampaignStore,
  Clock,
  IdentityStore,
  LeaseRevoker,
  Limit,
  RevokeResult,
  RotationStore,
  SessionRevoker,
  StoredCampaign,
  StoredIdentity,
  StoredVersion,
  VersionShortcuts,
} from './ports.ts';
import { type RotationDeps, rotateIdentity } from './rotation.ts';

export interface CampaignDeps {
  campaigns: CampaignStore;
  /**
   * `listIdentities`, when given, reads a large campaign's identities in one listing;
   * `getIdentities` a batch's by key in one read.
   */
  identities: Pick<IdentityStore, 'getIdentity'> &
    Partial<Pick<IdentityStore, 'listIdentities' | 'getIdentities'>>;
  /** Providers, credential versions, audit, clock and actor; also what re-issue rotates with. */
  rotation: RotationDeps;
  /** Absent when Vault is not configured: lease targets then fail, saying so. */
  leases?: LeaseRevoker;
  sessions?: SessionRevoker;
  /** Waits between tries; injected so the core reads no timers. */
  sleep: (ms: number) => Promise<void>;
  /** In [0, 1), for backoff jitter. */
  random: () => number;
}

/**
 * What moving a campaign through its statuses takes: its store, the audit log, the clock and
 * who acts. A run gets it from {@link CampaignDeps}; {@link closeCampaign} needs nothing more.
 */
export interface CampaignBookkeeping {
  campaigns: Pick<CampaignStore, 'getCampaign' | 'putCampaign' | 'listTargets' | 'listReissues'>;
  audit: Pick<AuditLog, 'append'>;
  clock: Clock;
  /** Who acts, for the audit trail: `stepfunctions:revocation`, `cli:alice`. */
  actor: string;
}

export interface RunCampaignOptions {
  /** The limiter (concurrency and rate) of the provider behind a kind. */
  limitFor: (kind: IdentityKind) => Limit;
  /** Tries per target over the whole campaign, the first included (default 5). */
  maxAttempts?: number;
  /** Upper bound of the first retry's wait, doubling with each retry (default 200 ms). */
  baseDelayMs?: number;
  /** Cap of any one wait (default 10 s). */
  maxDelayMs?: number;
  /** Give retryable failures of earlier runs a fresh budget of `maxAttempts` tries (resume). */
  retryFailed?: boolean;
  /** Aborting stops claiming new targets; those in flight finish and are checkpointed. */
  signal?: AbortSignal;
  /**
   * How long a batch's lease lasts unless renewed (default 30 s). Renewed while half of it
   * is left; a run killed outright holds its batches this long, then a resume takes them.
   */
  leaseMs?: number;
  /**
   * Work only on these targets (a revoke-batch worker's batch); the others are left to
   * other runs. Such a run reads only what its targets need (the campaign, its targets and
   * their identities by key), leaves the campaign's counts and completion to whoever closes
   * it ({@link closeCampaign}: the report step), and re-issues an identity once it finds all
   * that identity's targets settled (read then, for an identity planned for re-issue: of two
   * runs settling its last targets, the later reader sees them all). Ids the campaign does
   * not have are refused before anything is tried.
   */
  targetIds?: readonly string[];
  /**
   * Called as each target settles in this run, with the progress of the targets this run
   * works on (the whole campaign, or `targetIds`).
   */
  onOutcome?: (target: Target, progress: { done: number; total: number }) => void;
}

export interface CampaignRun {
  campaign: StoredCampaign;
  targets: Target[];
  reissues: ReissueRecord[];
  /** Targets this run settled (claimed, tried and checkpointed). */
  settled: number;
  /** Whether the run stopped (signal) with targets still pending (of `targetIds`, when given). */
  stopped: boolean;
}

const DEFAULTS = { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 10_000, leaseMs: 30_000 };

/** Batches of one provider service a run works at once, at most. */
const BATCHES_IN_FLIGHT = 8;
/** The first wait for a batch another run holds, doubling up to the second. */
const LEASE_POLL_MS = 250;
const LEASE_POLL_MAX_MS = 5_000;

/** From this many identities to work on, one inventory listing is cheaper than a read for each. */
const LIST_IDENTITIES_FROM = 50;

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const isRetryable = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === true;
const stripRev = <T extends { rev: number }>(item: T): Omit<T, 'rev'> => {
  const { rev: _rev, ...rest } = item;
  return rest;
};

const canGetVersion = (store: object): store is Pick<VersionShortcuts, 'getVersion'> =>
  typeof (store as Partial<VersionShortcuts>).getVersion === 'function';
const canMarkRevoked = (store: object): store is Pick<VersionShortcuts, 'markVersionRevoked'> =>
  typeof (store as Partial<VersionShortcuts>).markVersionRevoked === 'function';
/**
 * Appends a batch's events in one go where the log can (`appendMany`: the audit log of every
 * store adapter), else one by one: the rotation deps the engine gets name only `append`.
 */
const appendAll = (audit: Pick<AuditLog, 'append'>, events: readonly AuditEventInput[]) =>
  typeof (audit as Partial<AuditLog>).appendMany === 'function'
    ? (audit as unknown as Pick<AuditLog, 'appendMany'>).appendMany(events)
    : Promise.all(events.map((event) => audit.append(event)));
const canMarkMany = (store: object): store is Pick<VersionShortcuts, 'markVersionsRevoked'> =>
  typeof (store as Partial<VersionShortcuts>).markVersionsRevoked === 'function';

/**
 * One identity's credential versions as this run needs them, kept up to date as this run
 * writes them; forgotten when something else (a rotation) may have changed them. Read
 * one by one where the store can (a target needs only its own version), else listed once.
 */
class Versions {
  #known = new Map<string, StoredVersion | undefined>();
  #listed = false;

  constructor(
    readonly store: Pick<RotationStore, 'listVersions' | 'putVersion'>,
    readonly identityId: string,
  ) {}

  async find(versionId: string): Promise<StoredVersion | undefined> {
    if (this.#known.has(versionId) || this.#listed) return this.#known.get(versionId);
    if (canGetVersion(this.store)) {
      const found = await this.store.getVersion(this.identityId, versionId);
      this.#known.set(versionId, found);
      return found;
    }
    for (const version of await this.store.listVersions(this.identityId)) {
      this.#known.set(version.versionId, version);
    }
    this.#listed = true;
    return this.#known.get(versionId);
  }

  async put(version: Omit<StoredVersion, 'rev'>, expectedRev: number): Promise<void> {
    const saved = await this.store.putVersion(version, expectedRev);
    this.#known.set(saved.versionId, saved);
  }

  forget(): void {
    this.#known.clear();
    this.#listed = false;
  }
}

/** A campaign as one process holds it while moving its status: the record, its targets, its re-issues. */
class Ledger {
  readonly reissues: Map<string, ReissueRecord>;
  /** Whether `reissues` holds what the store had when this process started (else read when needed). */
  reissuesRead: boolean;

  constructor(
    readonly book: CampaignBookkeeping,
    public campaign: StoredCampaign,
    readonly targets: Map<string, Target>,
    reissues: readonly ReissueRecord[] | undefined,
  ) {
    this.reissues = new Map((reissues ?? []).map((r) => [r.identityId, r]));
    this.reissuesRead = reissues !== undefined;
  }

  /** Reads the re-issue records once, keeping those this process wrote since. */
  async readReissues(): Promise<void> {
    if (this.reissuesRead) return;
    for (const record of await this.book.campaigns.listReissues(this.campaign.campaignId)) {
      if (!this.reissues.has(record.identityId)) this.reissues.set(record.identityId, record);
    }
    this.reissuesRead = true;
  }

  get now(): string {
    return this.book.clock.now().toISOString();
  }

  /**
   * Appends one event to the audit chain. Targets settle side by side and each calls this
   * on its own: the log orders one process's appends and writes those that arrive
   * together in one round trip (DynamoStore: one block item), each still its own record.
   */
  async audit(
    type: 'campaign.started' | 'campaign.target' | 'campaign.completed',
    subject: string,
    details: object,
  ): Promise<void> {
    await this.book.audit.append({
      type,
      actor: this.book.actor,
      subject,
      details: { campaignId: this.campaign.campaignId, incident: this.campaign.incident, ...details },
    });
  }
}

class Run extends Ledger {
  readonly maxAttempts: number;
  /** The targets this run works on: `targetIds`, or all. */
  readonly scope: ReadonlySet<string>;
  readonly total: number;
  done: number;
  settled = 0;
  /** Aborted by the caller's signal, or by this run when bookkeeping fails. */
  readonly stop = new AbortController();
  /** Target ids by identity, of the targets this run read. */
  readonly ofIdentity: Map<string, string[]>;
  /** Whether this run works on some targets only (`targetIds`) and read only those. */
  readonly scoped: boolean;
  /** Identities all of whose targets this run read: all, unless scoped. */
  readonly whole = new Set<string>();
  /** Identities read from the inventory, once per run. */
  readonly identities = new Map<string, Promise<Identity | undefined>>();
  /** Who holds this run's batch leases. */
  readonly holder: string;
  readonly leaseMs: number;
  readonly retryFailed: boolean;
  /** The first bookkeeping failure: it stops the run and is what the run throws. */
  failure: PromiseRejectedResult | undefined;
  /** Targets waiting for their service's limiter, and who wants to know when that falls. */
  readonly #waiting = new Map<ProviderService, number>();
  readonly #listeners = new Map<ProviderService, () => void>();

  constructor(
    readonly deps: CampaignDeps,
    campaign: StoredCampaign,
    targets: Map<string, Target>,
    reissues: readonly ReissueRecord[] | undefined,
    readonly options: RunCampaignOptions,
  ) {
    const { audit, clock, actor } = deps.rotation;
    super({ campaigns: deps.campaigns, audit, clock, actor }, campaign, targets, reissues);
    this.maxAttempts = options.maxAttempts ?? DEFAULTS.maxAttempts;
    this.holder = `run:${deps.rotation.newId()}`;
    this.leaseMs = options.leaseMs ?? DEFAULTS.leaseMs;
    this.retryFailed = options.retryFailed ?? false;
    this.scope = new Set(options.targetIds ?? targets.keys());
    this.total = this.scope.size;
    this.done = [...this.scope].filter((id) => targets.get(id)?.outcome !== 'pending').length;
    this.ofIdentity = new Map(
      [...groupBy(targets.values(), (t) => t.identityId)].map(([id, group]) => [
        id,
        group.map((t) => t.targetId),
      ]),
    );
    this.scoped = options.targetIds !== undefined;
    if (!this.scoped) for (const id of this.ofIdentity.keys()) this.whole.add(id);
    if (options.signal?.aborted) this.stop.abort();
    else options.signal?.addEventListener('abort', () => this.stop.abort(), { once: true });
  }

  get stopped(): boolean {
    return this.stop.signal.aborted;
  }

  waiting(service: ProviderService): number {
    return this.#waiting.get(service) ?? 0;
  }

  /** A target of `service` joined (+1) or left (-1) its limiter's queue. */
  queued(service: ProviderService, change: 1 | -1): void {
    this.#waiting.set(service, this.waiting(service) + change);
    if (change < 0) {
      this.#listeners.get(service)?.();
      this.#listeners.delete(service);
    }
  }

  /** Resolves when a target of `service` next leaves its limiter's queue. */
  changed(service: ProviderService): Promise<void> {
    return new Promise((resolve) => {
      const before = this.#listeners.get(service);
      this.#listeners.set(service, () => {
        before?.();
        resolve();
      });
    });
  }

  /**
   * Reads the identities of `ids` at once where the store can: many in one listing of the
   * inventory, few by key in one read.
   */
  async prefetch(all: readonly string[]): Promise<void> {
    const ids = all.filter((id) => !this.identities.has(id));
    const { listIdentities, getIdentities } = this.deps.identities;
    let records: StoredIdentity[];
    if (listIdentities && ids.length >= LIST_IDENTITIES_FROM) {
      records = await listIdentities.call(this.deps.identities);
    } else if (getIdentities && ids.length > 1) {
      records = await getIdentities.call(this.deps.identities, ids);
    } else return;
    const stored = new Map(records.map((record) => [record.identity.id, record.identity]));
    for (const id of ids) this.identities.set(id, Promise.resolve(stored.get(id)));
  }

  /**
   * Reads the rest of an identity's targets when this run read only some of them: again at each
   * call (after each of this run's checkpoints) until the other runs' are all settled, so that of
   * the runs settling its last targets the one that checkpoints last sees them all.
   */
  async readWhole(identityId: string): Promise<void> {
    if (this.whole.has(identityId)) return;
    const ids = new Set(this.ofIdentity.get(identityId) ?? []);
    for (const target of await this.deps.campaigns.listTargetsOf(this.campaign.campaignId, identityId)) {
      // This run's own targets are as it left them (settled, or not yet checkpointed).
      if (this.scope.has(target.targetId)) continue;
      this.targets.set(target.targetId, target);
      ids.add(target.targetId);
    }
    this.ofIdentity.set(identityId, [...ids]);
    const others = [...ids].filter((id) => !this.scope.has(id));
    if (others.every((id) => this.targets.get(id)?.outcome !== 'pending')) this.whole.add(identityId);
  }

  identity(identityId: string): Promise<Identity | undefined> {
    let found = this.identities.get(identityId);
    if (!found) {
      found = this.deps.identities.getIdentity(identityId).then((stored) => stored?.identity);
      this.identities.set(identityId, found);
    }
    return found;
  }

  /** The backoff before try `attempt + 1`: full jitter over an exponentially growing cap. */
  delay(attempt: number): number {
    const base = this.options.baseDelayMs ?? DEFAULTS.baseDelayMs;
    const cap = Math.min(this.options.maxDelayMs ?? DEFAULTS.maxDelayMs, base * 2 ** (attempt - 1));
    return Math.floor(this.deps.random() * cap);
  }
}

/** The identity's targets as this run knows them. */
const targetsOf = (run: Run, identityId: string): Target[] =>
  (run.ofIdentity.get(identityId) ?? []).flatMap((id) => {
    const target = run.targets.get(id);
    return target ? [target] : [];
  });

/** Whether this run should work on a target, and how many tries it may use in all. */
function budgetOf(run: Run, target: Target, retryFailed: boolean): number | undefined {
  if (target.outcome === 'pending') return run.maxAttempts;
  if (target.outcome !== 'failed' || target.retryable !== true) return undefined;
  if (retryFailed) return target.attempts + run.maxAttempts;
  return target.attempts < run.maxAttempts ? run.maxAttempts : undefined;
}

/**
 * Runs (or resumes) a stored campaign until no target is pending, or until `signal`
 * aborts. Running a finished campaign again changes nothing.
 *
 * @throws NotFoundError for an unknown campaign; ValidationError for a dry run; the
 *   store's error when a checkpoint cannot be written (the campaign can be resumed).
 */
export async function runCampaign(
  deps: CampaignDeps,
  campaignId: string,
  options: RunCampaignOptions,
): Promise<CampaignRun> {
  const { targetIds } = options;
  const { campaign, targets, identities } = await readWork(deps, campaignId, targetIds);
  if (!campaign) {
    throw new NotFoundError(
      `no campaign ${JSON.stringify(campaignId)}; see keywarden revoke status for the campaigns`,
    );
  }
  if (campaign.dryRun)
    throw new ValidationError(`campaign ${campaignId} is a dry run: there is nothing to run`);
  if (targetIds) {
    const known = new Set(targets.map((t) => t.targetId));
    const unknown = targetIds.filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new ValidationError(
        `campaign ${campaignId} has no targets ${unknown.map((id) => JSON.stringify(id)).join(', ')}; expected ids from its plan (keywarden revoke status ${campaignId} lists them)`,
      );
    }
  }
  const run = new Run(
    deps,
    campaign,
    new Map(targets.map((t) => [t.targetId, t])),
    targetIds ? undefined : await deps.campaigns.listReissues(campaignId),
    options,
  );
  for (const [id, identity] of identities ?? []) run.identities.set(id, Promise.resolve(identity));

  if (campaign.status === 'planned') {
    // A worker started before its campaign (the plan step starts it): the start needs every target.
    if (run.scoped) run.campaign = await startCampaign(run.book, campaignId);
    else await start(run);
  }
  const toWork = [...run.targets.values()].filter(
    (t) => run.scope.has(t.targetId) && budgetOf(run, t, run.retryFailed) !== undefined,
  );
  await run.prefetch([...new Set(toWork.filter((t) => t.action === 'revoke').map((t) => t.identityId))]);
  await runBatches(run, [...groupByBatch(toWork).values()]);
  let failure = run.failure;
  if (!failure) {
    // Identities with nothing left to work in this run (settled before it) may still await re-issue.
    for (const identityId of new Set([...run.scope].map((id) => run.targets.get(id)?.identityId))) {
      if (identityId === undefined || toWork.some((t) => t.identityId === identityId)) continue;
      try {
        await afterIdentity(run, identityId);
      } catch (reason) {
        failure = { status: 'rejected', reason };
        break;
      }
    }
  }

  const final = [...run.targets.values()];
  const scopeFinished = [...run.scope].every((id) => run.targets.get(id)?.outcome !== 'pending');
  if (failure) {
    // Keep the counts as far as they got; the store's own failure is the one to report.
    if (!run.scoped) {
      await saveCampaign(run, (current) =>
        current.planning !== undefined ? current : { ...current, counts: summarize(final) },
      ).catch(() => undefined);
    }
    throw failure.reason;
  }
  // A run of a finished campaign that found nothing to do leaves its record as it was; a run of
  // some targets knows only those: the counts and the completion are its closer's.
  if (!run.scoped && !(campaign.status === 'completed' && run.settled === 0)) await finish(run);
  return {
    campaign: run.campaign,
    targets: final,
    reissues: [...run.reissues.values()],
    settled: run.settled,
    stopped: !scopeFinished,
  };
}

const canReadBatchWork = (store: object): store is CampaignShortcuts =>
  typeof (store as Partial<CampaignShortcuts>).readBatchWork === 'function';

/**
 * What a run reads first: the campaign and its targets — for a run of some targets (a batch
 * worker) only those, by key, whatever the campaign's size, with their identities in the same
 * read where the store can.
 */
async function readWork(deps: CampaignDeps, campaignId: string, targetIds: readonly string[] | undefined) {
  const { campaigns } = deps;
  if (!targetIds) {
    const campaign = await campaigns.getCampaign(campaignId);
    return { campaign, targets: campaign ? await campaigns.listTargets(campaignId) : [] };
  }
  const ids = [...new Set(targetIds)];
  if (!canReadBatchWork(campaigns)) {
    const campaign = await campaigns.getCampaign(campaignId);
    return { campaign, targets: campaign ? await campaigns.getTargets(campaignId, ids) : [] };
  }
  const identityIds = [...new Set(ids.map(identityIdOf))];
  const read = await campaigns.readBatchWork(campaignId, ids, identityIds);
  const found = new Map(read.identities.map((record) => [record.identity.id, record.identity]));
  return {
    campaign: read.campaign,
    targets: read.targets,
    identities: new Map(identityIds.map((id) => [id, found.get(id)])),
  };
}

/**
 * Starts a planned campaign (planned → running, auditing its start and the targets the plan
 * settled): the revocation state machine's plan step, before any worker. Safe to call twice;
 * a campaign past `planned` is returned as it is.
 *
 * @throws NotFoundError for an unknown campaign; the store's error when it cannot be written.
 */
export async function startCampaign(
  book: CampaignBookkeeping,
  campaignId: string,
  /** Its targets, when the caller has just read them all. */
  read?: readonly Target[],
): Promise<StoredCampaign> {
  const campaign = await book.campaigns.getCampaign(campaignId);
  if (!campaign) throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)} to start`);
  if (campaign.dryRun || campaign.status !== 'planned') return campaign;
  const targets = read ?? (await book.campaigns.listTargets(campaignId));
  const ledger = new Ledger(book, campaign, new Map(targets.map((t) => [t.targetId, t])), []);
  await start(ledger);
  return ledger.campaign;
}

/**
 * Closes a campaign that no run has left to work on: once no target is pending, a campaign
 * still `planned` (every target settled at planning, so no revoke batch ran: a Distributed
 * Map of zero items) is started and completed like any other, with its `campaign.started`,
 * `campaign.target` (each skipped target) and `campaign.completed` events and its timings;
 * one still `running` or `failed` whose targets all settled is completed. The report step
 * calls it before reporting, on every channel. Safe to call twice; a campaign with pending
 * targets, one whose plan is still open (its planner stores more), a completed one and a dry run
 * are returned as they are.
 *
 * @throws NotFoundError for an unknown campaign; the store's error when it cannot be written.
 */
export async function closeCampaign(
  book: CampaignBookkeeping,
  campaignId: string,
  /** Its targets and re-issue records, when the caller has just read them (the report step). */
  read?: { targets: readonly Target[]; reissues: readonly ReissueRecord[] },
): Promise<StoredCampaign> {
  const campaign = await book.campaigns.getCampaign(campaignId);
  if (!campaign) throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)} to close or report on`);
  if (campaign.dryRun || campaign.status === 'completed') return campaign;
  if (campaign.planning !== undefined) return campaign;
  const targets = read?.targets ?? (await book.campaigns.listTargets(campaignId));
  if (!isFinished(targets)) return campaign;
  const ledger = new Ledger(
    book,
    campaign,
    new Map(targets.map((t) => [t.targetId, t])),
    read?.reissues ?? (await book.campaigns.listReissues(campaignId)),
  );
  if (campaign.status === 'planned') await start(ledger);
  await finish(ledger);
  return ledger.campaign;
}

/**
 * Records the counts and, once no target is pending, `completed` with its finish time;
 * the one writer that sets the finish time audits `campaign.completed`.
 */
async function finish(ledger: Ledger): Promise<void> {
  const final = [...ledger.targets.values()];
  let completedHere = false;
  await saveCampaign(ledger, (current) => {
    // While its planner still stores parts, the targets read are not all there are: the planner's
    // counts stand, and the campaign is not completed.
    if (current.planning !== undefined) return current;
    const finished = isFinished(final);
    // Of several runs finishing at once, the one whose write sets finishedAt audits it.
    completedHere = finished && !current.finishedAt;
    return {
      ...current,
      counts: summarize(final),
      ...(finished ? { status: 'completed', finishedAt: current.finishedAt ?? ledger.now } : {}),
    };
  });
  if (completedHere) {
    await ledger.audit('campaign.completed', ledger.campaign.campaignId, {
      counts: ledger.campaign.counts.byOutcome,
      reissued: [...ledger.reissues.values()].filter((r) => r.status === 'reissued').map((r) => r.identityId),
    });
  }
}

/** planned → running: audit the start and the targets the plan already settled (skipped). */
async function start(run: Ledger): Promise<void> {
  const { campaign } = run;
  await run.audit('campaign.started', campaign.campaignId, {
    selectors: campaign.selectors,
    reissue: campaign.reissue,
    counts: campaign.counts.byOutcome,
    requestedBy: campaign.requestedBy,
    // Planned in parts and started on the first: the counts are those of the parts stored so far.
    ...(campaign.planning ? { planning: campaign.planning } : {}),
  });
  // Audited before the status moves: a crash here repeats these events rather than losing them.
  for (const target of run.targets.values()) {
    if (target.outcome === 'skipped' && !target.auditedAtPlanning) await auditTarget(run, target);
  }
  await saveCampaign(run, (current) => ({
    ...current,
    status: 'running',
    startedAt: current.startedAt ?? run.now,
  }));
}

/**
 * Writes the campaign, re-reading it when another run wrote first; a `change` that returns the
 * campaign it was given (nothing to change) writes nothing.
 */
async function saveCampaign(run: Ledger, change: (current: Campaign) => Campaign): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const current = stripRev(run.campaign);
    const changed = change(current);
    if (changed === current) return;
    try {
      run.campaign = await run.book.campaigns.putCampaign(changed, run.campaign.rev);
      return;
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= 5) throw error;
      const fresh = await run.book.campaigns.getCampaign(run.campaign.campaignId);
      if (!fresh) throw error;
      run.campaign = fresh;
    }
  }
}

/**
 * Works the batches of a run. Each provider service takes its batches in order, starting
 * the next while its limiter has less than a batch of targets waiting (so the limiter never
 * runs dry) and at most {@link BATCHES_IN_FLIGHT} at once (so a killed run leaves few batches
 * in flight). A batch that fails its bookkeeping stops the run; the others finish theirs.
 */
async function runBatches(run: Run, batches: readonly (readonly Target[])[]): Promise<void> {
  const byService = groupBy(batches, (batch) => serviceOf((batch[0] as Target).kind));
  await Promise.all(
    [...byService].map(async ([service, queue]) => {
      const inFlight = new Set<Promise<void>>();
      for (const batch of queue) {
        while (
          inFlight.size >= BATCHES_IN_FLIGHT ||
          (inFlight.size > 0 && run.waiting(service) >= TARGETS_PER_BATCH)
        ) {
          await Promise.race([...inFlight, run.changed(service)]);
        }
        if (run.stopped) break;
        const working: Promise<void> = workBatch(run, batch).then(
          () => void inFlight.delete(working),
          (error: unknown) => {
            inFlight.delete(working);
            // The store could not record progress: stop claiming, let the others finish, resume later.
            run.failure ??= { status: 'rejected', reason: error };
            run.stop.abort();
          },
        );
        inFlight.add(working);
      }
      await Promise.all(inFlight);
    }),
  );
}

/** A batch as its lease holder works it. */
interface Held {
  readonly key: string;
  expiresAt: number;
  lost: boolean;
}

/**
 * Takes the batch's lease, waiting (polling, backing off) while another run holds it, for at
 * most twice a lease's length: a dead holder's lease runs out by then, a live one's batch is
 * its own. Undefined when the run stopped or the wait ran out (the batch stays as it is).
 */
async function takeLease(run: Run, key: string, tryIds: readonly string[]) {
  let waited = 0;
  for (let poll = LEASE_POLL_MS; ; poll = Math.min(poll * 2, LEASE_POLL_MAX_MS)) {
    if (run.stopped) return undefined;
    const now = run.deps.rotation.clock.now().getTime();
    const expiresAt = now + run.leaseMs;
    const lease = await run.deps.campaigns.leaseBatch(run.campaign.campaignId, {
      batch: key,
      holder: run.holder,
      now,
      expiresAt,
      tryIds,
    });
    if (lease.taken) return { lease, held: { key, expiresAt, lost: false } satisfies Held };
    if (waited >= 2 * run.leaseMs) return undefined;
    const wait = Math.max(1, Math.min(poll, lease.expiresAt - now + 1));
    waited += wait;
    await run.deps.sleep(wait);
  }
}

/** Renews the lease when less than half its length is left; false when it was lost. */
async function keepLease(run: Run, held: Held, tried?: string): Promise<boolean> {
  if (held.lost) return false;
  const now = run.deps.rotation.clock.now().getTime();
  if (tried === undefined && held.expiresAt - now > run.leaseMs / 2) return true;
  const expiresAt = now + run.leaseMs;
  const kept = await run.deps.campaigns.renewBatch(run.campaign.campaignId, {
    batch: held.key,
    holder: run.holder,
    expiresAt,
    ...(tried === undefined ? {} : { tried }),
  });
  if (kept) held.expiresAt = expiresAt;
  else held.lost = true;
  return kept;
}

/**
 * One batch: lease it (one write counting a try of each target, one read of them as stored
 * now), work each target still open under its provider's limiter (one identity's targets one
 * after another), then the batch's bookkeeping at once: the versions marked revoked, one
 * audit record per outcome in one append, the outcomes in one write that also gives the
 * lease back. A run killed before that write leaves the batch's targets as they were, with
 * their tries counted on the lease: the next run to lease it tries them again.
 */
async function workBatch(run: Run, planned: readonly Target[]): Promise<void> {
  const key = batchKeyOf(planned[0] as Target);
  const taken = await takeLease(
    run,
    key,
    planned.map((t) => t.targetId),
  );
  if (!taken) return;
  const { lease, held } = taken;
  const fresh = new Map(lease.targets.map((t) => [t.targetId, t]));
  const done: string[] = [];
  const work: { target: Target; attempt: number; budget: number }[] = [];
  for (const { targetId } of planned) {
    const target = fresh.get(targetId);
    const budget = target && budgetOf(run, target, run.retryFailed);
    if (!target || budget === undefined) {
      // Settled by another run since this one read it: its record stands.
      if (target) run.targets.set(targetId, target);
      done.push(targetId);
      continue;
    }
    work.push({ target, attempt: target.attempts + (lease.tries[targetId] ?? 1), budget });
  }
  const outcomes: Target[] = [];
  const untried: string[] = [];
  await Promise.all(
    [...groupBy(work, (w) => w.target.identityId)].map(async ([identityId, group]) => {
      const versions = new Versions(run.deps.rotation.store, identityId);
      for (const each of replacedFirst(group)) {
        const outcome = await tryTarget(run, held, each, versions);
        if (outcome === 'untried') untried.push(each.target.targetId);
        else if (outcome) outcomes.push(outcome);
      }
    }),
  );
  if (outcomes.length === 0 && untried.length === 0 && done.length === 0) return;
  // Both before the checkpoint, neither waiting for the other.
  await Promise.all([
    markVersionsRevoked(run, outcomes),
    appendAll(
      run.deps.rotation.audit,
      outcomes.map((target) => targetEvent(run, target)),
    ),
  ]);
  // The outcomes go in unconditionally: only the holder of a live lease may write them.
  if (!(await keepLease(run, held))) return;
  await run.deps.campaigns.settleBatch(run.campaign.campaignId, {
    batch: key,
    holder: run.holder,
    outcomes,
    done,
    untried,
  });
  for (const outcome of outcomes) {
    const before = run.targets.get(outcome.targetId);
    run.targets.set(outcome.targetId, outcome);
    run.settled += 1;
    // A failed target tried again was counted done already.
    if (before?.outcome === 'pending') run.done += 1;
    run.options.onOutcome?.(outcome, { done: run.done, total: run.total });
  }
  for (const identityId of new Set(planned.map((t) => t.identityId))) await afterIdentity(run, identityId);
}

/**
 * One identity's targets in the order they are worked: a current value to be replaced first (a
 * secret's AWSCURRENT), the others after it in plan order. Replacing it moves the label of the
 * version before it (AWSPREVIOUS) onto it, so an older version planned too is then found
 * unlabelled (already revoked, a read) rather than unlabelled by a write of its own.
 */
const replacedFirst = <T extends { target: Target }>(group: readonly T[]): T[] =>
  [...group].sort((a, b) => Number(!toReplace(a.target)) - Number(!toReplace(b.target)));

/** Whether a target is a current value its kind replaces before revoking it (planned current). */
const toReplace = (target: Target): boolean =>
  KINDS[target.kind].replaceBeforeRevoke && target.stage === 'current';

/**
 * Whether replaceCurrent may have to replace a target's version first: its kind always keeps a
 * current value and the version was not planned past current (a version past current is never
 * current again, so it need not be looked up).
 */
const mayBeReplaced = (target: Target): boolean =>
  KINDS[target.kind].replaceBeforeRevoke &&
  target.versionId !== undefined &&
  (target.stage === undefined || target.stage === 'current' || target.stage === 'pending');

/** The turns of its service's rate a target takes: its kind's `replaceTurns` where it may be replaced first, else one. */
const turnsOf = (target: Target): number =>
  mayBeReplaced(target) ? (kindFacts(target.kind).replaceTurns ?? 1) : 1;

/**
 * Re-issues an identity once every one of its targets is settled; one whose pending targets
 * are other runs' (`targetIds`) waits for the catch-up at the end of the run.
 */
async function afterIdentity(run: Run, identityId: string): Promise<void> {
  if (run.stopped || !targetsOf(run, identityId).some((t) => t.reissue)) return;
  if (targetsOf(run, identityId).some((t) => t.outcome === 'pending' && run.scope.has(t.targetId))) return;
  // Its other targets are other runs': settled by now, or the last of those runs re-issues it.
  await run.readWhole(identityId);
  const current = targetsOf(run, identityId);
  if (current.every((t) => t.outcome !== 'pending')) await reissue(run, identityId, current);
}

/**
 * Works one target to an outcome: tries it, and a retryable failure again after a backoff
 * while its budget lasts, counting each further try on the lease before it is made.
 * `untried` when the run stopped before its first try (its counted try is given back);
 * undefined when it stopped (or lost the lease) between tries: its tries stay counted.
 */
async function tryTarget(
  run: Run,
  held: Held,
  work: { target: Target; attempt: number; budget: number },
  versions: Versions,
): Promise<Target | 'untried' | undefined> {
  const limit = run.options.limitFor(work.target.kind);
  const service = serviceOf(work.target.kind);
  const { error: _e, retryable: _r, reason: _reason, finishedAt: _f, ...rest } = work.target;
  const target: Target = {
    ...rest,
    outcome: 'pending',
    attempts: work.attempt,
    startedAt: work.target.startedAt ?? run.now,
  };
  let first = true;
  for (;;) {
    if (run.stopped || held.lost) return first ? 'untried' : undefined;
    run.queued(service, 1);
    const tried = await limit(async () => {
      run.queued(service, -1);
      if (run.stopped || held.lost || !(await keepLease(run, held))) return undefined;
      try {
        return { ok: await act(run, target, versions) };
      } catch (error) {
        return { error };
      }
    }, turnsOf(target));
    if (tried === undefined) return first ? 'untried' : undefined;
    first = false;
    if ('ok' in tried) {
      return {
        ...target,
        outcome: tried.ok.result,
        ...(tried.ok.note ? { reason: tried.ok.note } : {}),
        finishedAt: run.now,
      };
    }
    const retryable = isRetryable(tried.error);
    if (retryable && target.attempts < work.budget) {
      await run.deps.sleep(run.delay(target.attempts));
      if (run.stopped || !(await keepLease(run, held, target.targetId))) return undefined;
      target.attempts += 1;
      continue;
    }
    return { ...target, outcome: 'failed', error: messageOf(tried.error), retryable, finishedAt: run.now };
  }
}

/** The `campaign.target` audit event of a target's outcome. */
const targetEvent = (run: Ledger, target: Target): AuditEventInput =>
  campaignTargetEvent(run.campaign, run.book.actor, target);

/** The `campaign.target` event of a target's outcome, as `actor` records it. */
export const campaignTargetEvent = (
  campaign: Pick<Campaign, 'campaignId' | 'incident'>,
  actor: string,
  target: Target,
): AuditEventInput => ({
  type: 'campaign.target',
  actor,
  subject: target.identityId,
  details: {
    campaignId: campaign.campaignId,
    incident: campaign.incident,
    targetId: target.targetId,
    kind: target.kind,
    action: target.action,
    handle: target.handle,
    ...(target.versionId ? { versionId: target.versionId } : {}),
    outcome: target.outcome,
    attempts: target.attempts,
    ...(target.reason ? { reason: target.reason } : {}),
    ...(target.error ? { error: target.error } : {}),
  },
});

const auditTarget = (run: Ledger, target: Target) => run.book.audit.append(targetEvent(run, target));

/** One try at revoking a target, by its action. */
async function act(run: Run, target: Target, versions: Versions): Promise<RevokeResult> {
  const { leases, sessions } = run.deps;
  const missing = (what: string) =>
    new KeywardenError(
      `${target.kind} targets need ${what}, which is not configured; configure it and resume`,
    );
  // A lease picked one by one is revoked by its id, through the same revoker as its prefix.
  const leaseKind = KINDS[target.kind].revocation === 'revoke-prefix';
  if (target.action === 'revoke-prefix' || (target.action === 'revoke' && leaseKind)) {
    if (!leases) throw missing('a Vault address and token');
    return target.action === 'revoke-prefix'
      ? leases.revokePrefix(target.handle)
      : leases.revokeLease(target.handle);
  }
  if (target.action === 'deny-sessions') {
    if (!sessions) throw missing('AWS IAM');
    return sessions.denySessions(target.handle, {
      incident: run.campaign.incident,
      // The campaign's start, fixed once: every try and every resume writes the same policy.
      issuedBefore: run.campaign.startedAt ?? run.now,
    });
  }
  const identity = await run.identity(target.identityId);
  if (!identity) {
    throw new NotFoundError(
      `identity ${target.identityId} is no longer in the inventory, so its provider settings are unknown; revoke ${target.handle} by hand`,
    );
  }
  const note = await replaceCurrent(run, identity, target, versions);
  const result = await run.deps.rotation.providerFor(identity).revoke(target.handle);
  return note ? { result, note } : { result };
}

/**
 * For a kind that always keeps a current value (`replaceBeforeRevoke`: Secrets Manager always
 * keeps an AWSCURRENT version), a target that is the current version is first replaced by a
 * fresh one through the rotation protocol (DESIGN: "rotate immediately"), so the old one can
 * then be revoked like any other. Returns a note for the report.
 */
async function replaceCurrent(
  run: Run,
  identity: Identity,
  target: Target,
  versions: Versions,
): Promise<string | undefined> {
  if (!mayBeReplaced(target) || !target.versionId) return undefined;
  if ((await versions.find(target.versionId))?.stage !== 'current') return undefined;
  const blocker = rotationBlocker(identity);
  if (blocker) {
    // Permanent: trying again cannot help, the value has to be replaced where it is issued.
    throw new KeywardenError(
      `${identity.id} always keeps a current value and keywarden cannot replace it (${blocker}), so it was not revoked: replace it where it is issued, then revoke the old value`,
    );
  }
  // The rotation rewrites this identity's versions.
  versions.forget();
  const outcome = await rotateIdentity(run.deps.rotation, identity, {
    owner: `campaign:${run.campaign.campaignId}`,
    force: true,
  });
  if (outcome.status !== 'rotated') {
    // Another run holding the lock, or a provider in trouble: both may pass.
    throw new KeywardenError(
      `could not replace the current value of ${identity.id} before revoking it: ${outcome.reason ?? outcome.status}`,
      { retryable: true },
    );
  }
  const note = `${identity.kind} always keeps a current value: replaced by a fresh version ${outcome.versionId} first, then this one was revoked`;
  if (target.reissue && outcome.versionId) {
    await recordReissue(run, {
      identityId: identity.id,
      status: 'reissued',
      versionId: outcome.versionId,
      reason: 'issued while revoking the compromised current value',
      at: run.now,
    });
  }
  return note;
}

/**
 * Marks the credential versions of a batch's revoked targets revoked, with a note naming the
 * incident: in one go where the store can (VersionShortcuts), else one by one.
 */
async function markVersionsRevoked(run: Run, outcomes: readonly Target[]): Promise<void> {
  const revoked = outcomes.filter(
    (t) => t.versionId !== undefined && (t.outcome === 'revoked' || t.outcome === 'already-revoked'),
  );
  if (revoked.length === 0) return;
  const at = run.now;
  const note = `revoked by campaign ${run.campaign.campaignId} for incident ${run.campaign.incident}`;
  const { store } = run.deps.rotation;
  if (canMarkMany(store)) {
    await store.markVersionsRevoked(
      revoked.map((t) => ({ identityId: t.identityId, versionId: t.versionId as string, at, note })),
    );
    return;
  }
  for (const target of revoked)
    await markVersionRevoked(run, target, new Versions(store, target.identityId), note);
}

/** One version marked revoked: one conditional update where the store can, else read and written back. */
async function markVersionRevoked(run: Run, target: Target, versions: Versions, note: string): Promise<void> {
  if (!target.versionId) return;
  const { store } = run.deps.rotation;
  if (canMarkRevoked(store)) {
    // One conditional update; false means unknown or revoked already, both fine.
    await store.markVersionRevoked(target.identityId, target.versionId, { at: run.now, note });
    return;
  }
  for (let attempt = 1; ; attempt += 1) {
    const version = await versions.find(target.versionId);
    if (!version || version.stage === 'revoked') return;
    try {
      await versions.put({ ...stripRev(version), stage: 'revoked', retiredAt: run.now, note }, version.rev);
      return;
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= 5) throw error;
      versions.forget();
    }
  }
}

async function recordReissue(run: Run, record: ReissueRecord): Promise<void> {
  await run.deps.campaigns.putReissue(run.campaign.campaignId, record);
  run.reissues.set(record.identityId, record);
}

/**
 * Re-issue: once every target of an identity is settled, a fresh credential goes to its
 * delivery target through the rotation protocol, unless one of its old credentials
 * could not be revoked (then it is withheld, saying why).
 */
async function reissue(run: Run, identityId: string, targets: readonly Target[]): Promise<void> {
  if (!targets.some((t) => t.reissue) || targets.some((t) => t.outcome === 'pending')) return;
  await run.readReissues();
  if (run.reissues.get(identityId)?.status === 'reissued') return;
  const failed = targets.filter((t) => t.outcome === 'failed');
  if (failed.length > 0) {
    await recordReissue(run, {
      identityId,
      status: 'withheld',
      reason: `${failed.length} of its credentials could not be revoked (${failed.map((t) => t.handle).join(', ')}); re-issue after they are, by resuming the campaign`,
      at: run.now,
    });
    return;
  }
  const identity = await run.identity(identityId);
  if (!identity) {
    await recordReissue(run, {
      identityId,
      status: 'failed',
      reason: 'the identity is no longer in the inventory',
      at: run.now,
    });
    return;
  }
  const kind = targets[0]?.kind ?? identity.kind;
  const outcome = await run.options
    .limitFor(kind)(() =>
      rotateIdentity(run.deps.rotation, identity, {
        owner: `campaign:${run.campaign.campaignId}`,
        force: true,
      }),
    )
    .catch((error: unknown) => ({
      status: 'failed' as const,
      reason: messageOf(error),
      versionId: undefined,
    }));
  await recordReissue(run, {
    identityId,
    status: outcome.status === 'rotated' ? 'reissued' : 'failed',
    ...(outcome.status === 'rotated' && outcome.versionId ? { versionId: outcome.versionId } : {}),
    ...(outcome.status !== 'rotated' || outcome.reason
      ? { reason: outcome.reason ?? `rotation ${outcome.status}` }
      : {}),
    at: run.now,
  });
}
