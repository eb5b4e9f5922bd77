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
import { type Campaign, isFinished, type ReissueRecord, summarize, type Target } from './campaign.ts';
import { ConflictError, KeywardenError, NotFoundError, ValidationError } from './errors.ts';
import { groupBy } from './group-by.ts';
import type { Identity, IdentityKind } from './identity.ts';
import { KINDS, rotationBlocker } from './kinds.ts';
import type {
  AuditLog,
  CampaignStore,
  Clock,
  IdentityStore,
  LeaseRevoker,
  Limit,
  RevokeResult,
  RotationStore,
  SessionRevoker,
  StoredCampaign,
  StoredVersion,
  VersionShortcuts,
} from './ports.ts';
import { type RotationDeps, rotateIdentity } from './rotation.ts';

export interface CampaignDeps {
  campaigns: CampaignStore;
  /** `listIdentities`, when given, reads a large campaign's identities in one listing. */
  identities: Pick<IdentityStore, 'getIdentity'> & Partial<Pick<IdentityStore, 'listIdentities'>>;
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
   * Work only on these targets (a revoke-batch worker's batch); the others are left to
   * other runs. The campaign still completes when this run finds every target of it
   * settled, and an identity is still re-issued only once all its targets are. Ids the
   * campaign does not have are refused before anything is tried.
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

const DEFAULTS = { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 10_000 };

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

  /** The version is revoked now: whatever was read of it is stale. */
  revoked(versionId: string): void {
    this.#known.delete(versionId);
    this.#listed = false;
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

/** Thrown inside a run when the store refuses a claim: another run holds that target. */
class LostClaim extends Error {}

/** A campaign as one process holds it while moving its status: the record, its targets, its re-issues. */
class Ledger {
  readonly reissues: Map<string, ReissueRecord>;

  constructor(
    readonly book: CampaignBookkeeping,
    public campaign: StoredCampaign,
    readonly targets: Map<string, Target>,
    reissues: readonly ReissueRecord[],
  ) {
    this.reissues = new Map(reissues.map((r) => [r.identityId, r]));
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
  /** Target ids by identity, all of the campaign's. */
  readonly ofIdentity: Map<string, string[]>;
  /** Identities whose re-issue waits for targets outside `targetIds` (other runs'). */
  readonly awaitingOthers = new Set<string>();
  /** Identities read from the inventory, once per run. */
  readonly identities = new Map<string, Promise<Identity | undefined>>();

  constructor(
    readonly deps: CampaignDeps,
    campaign: StoredCampaign,
    targets: Map<string, Target>,
    reissues: readonly ReissueRecord[],
    readonly options: RunCampaignOptions,
  ) {
    const { audit, clock, actor } = deps.rotation;
    super({ campaigns: deps.campaigns, audit, clock, actor }, campaign, targets, reissues);
    this.maxAttempts = options.maxAttempts ?? DEFAULTS.maxAttempts;
    this.scope = new Set(options.targetIds ?? targets.keys());
    this.total = this.scope.size;
    this.done = [...this.scope].filter((id) => targets.get(id)?.outcome !== 'pending').length;
    this.ofIdentity = new Map(
      [...groupBy(targets.values(), (t) => t.identityId)].map(([id, group]) => [
        id,
        group.map((t) => t.targetId),
      ]),
    );
    if (options.signal?.aborted) this.stop.abort();
    else options.signal?.addEventListener('abort', () => this.stop.abort(), { once: true });
  }

  get stopped(): boolean {
    return this.stop.signal.aborted;
  }

  /** Reads the identities of `ids` in one listing of the inventory, where the store can. */
  async prefetch(ids: readonly string[]): Promise<void> {
    const list = this.deps.identities.listIdentities;
    if (!list || ids.length < LIST_IDENTITIES_FROM) return;
    const stored = new Map(
      (await list.call(this.deps.identities)).map((record) => [record.identity.id, record.identity]),
    );
    for (const id of ids) this.identities.set(id, Promise.resolve(stored.get(id)));
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
  const campaign = await deps.campaigns.getCampaign(campaignId);
  if (!campaign) {
    throw new NotFoundError(
      `no campaign ${JSON.stringify(campaignId)}; see keywarden revoke status for the campaigns`,
    );
  }
  if (campaign.dryRun)
    throw new ValidationError(`campaign ${campaignId} is a dry run: there is nothing to run`);
  const targets = await deps.campaigns.listTargets(campaignId);
  if (options.targetIds) {
    const known = new Set(targets.map((t) => t.targetId));
    const unknown = options.targetIds.filter((id) => !known.has(id));
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
    await deps.campaigns.listReissues(campaignId),
    options,
  );

  if (campaign.status === 'planned') await start(run);
  const retryFailed = options.retryFailed ?? false;
  const inScope = [...run.targets.values()].filter((t) => run.scope.has(t.targetId));
  const byIdentity = groupBy(inScope, (target) => target.identityId);
  await run.prefetch(
    [...byIdentity]
      .filter(([, group]) =>
        group.some((t) => ['pending', 'failed'].includes(t.outcome) && t.action === 'revoke'),
      )
      .map(([identityId]) => identityId),
  );
  const results = await Promise.allSettled(
    [...byIdentity].map(([identityId, group]) => runIdentity(run, identityId, group, retryFailed)),
  );
  let failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (!failure && run.scope.size < run.targets.size) {
    // Other runs work on the rest: what they settled since this run read the targets
    // decides whether the campaign is complete and which identities can be re-issued now.
    failure = await catchUp(run);
  }

  const final = [...run.targets.values()];
  const scopeFinished = [...run.scope].every((id) => run.targets.get(id)?.outcome !== 'pending');
  if (failure) {
    // Keep the counts as far as they got; the store's own failure is the one to report.
    await saveCampaign(run, (current) => ({ ...current, counts: summarize(final) })).catch(() => undefined);
    throw failure.reason;
  }
  // A run of a finished campaign that found nothing to do leaves its record as it was.
  if (!(campaign.status === 'completed' && run.settled === 0)) await finish(run);
  return {
    campaign: run.campaign,
    targets: final,
    reissues: [...run.reissues.values()],
    settled: run.settled,
    stopped: !scopeFinished,
  };
}

/**
 * After a run limited to `targetIds`: re-reads the targets the other runs settled in the
 * meantime and re-issues the identities of this run whose targets are now all settled.
 * Returns the store's failure, if any, for the caller to report.
 */
async function catchUp(run: Run): Promise<PromiseRejectedResult | undefined> {
  try {
    const outside = [...run.targets.values()].some(
      (t) => !run.scope.has(t.targetId) && t.outcome === 'pending',
    );
    if (!outside) return undefined;
    for (const target of await run.deps.campaigns.listTargets(run.campaign.campaignId)) {
      run.targets.set(target.targetId, target);
    }
    if (run.stopped || run.awaitingOthers.size === 0) return undefined;
    for (const record of await run.deps.campaigns.listReissues(run.campaign.campaignId)) {
      run.reissues.set(record.identityId, record);
    }
    for (const identityId of run.awaitingOthers) {
      await reissue(run, identityId, targetsOf(run, identityId));
    }
    return undefined;
  } catch (reason) {
    return { status: 'rejected', reason };
  }
}

/**
 * Closes a campaign that no run has left to work on: once no target is pending, a campaign
 * still `planned` (every target settled at planning, so no revoke batch ran: a Distributed
 * Map of zero items) is started and completed like any other, with its `campaign.started`,
 * `campaign.target` (each skipped target) and `campaign.completed` events and its timings;
 * one still `running` or `failed` whose targets all settled is completed. The report step
 * calls it before reporting, on every channel. Safe to call twice; a campaign with pending
 * targets, a completed one and a dry run are returned as they are.
 *
 * @throws NotFoundError for an unknown campaign; the store's error when it cannot be written.
 */
export async function closeCampaign(book: CampaignBookkeeping, campaignId: string): Promise<StoredCampaign> {
  const campaign = await book.campaigns.getCampaign(campaignId);
  if (!campaign) throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)} to close`);
  if (campaign.dryRun || campaign.status === 'completed') return campaign;
  const targets = await book.campaigns.listTargets(campaignId);
  if (!isFinished(targets)) return campaign;
  const ledger = new Ledger(
    book,
    campaign,
    new Map(targets.map((t) => [t.targetId, t])),
    await book.campaigns.listReissues(campaignId),
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
  const finished = isFinished(final);
  let completedHere = false;
  await saveCampaign(ledger, (current) => {
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
  });
  // Audited before the status moves: a crash here repeats these events rather than losing them.
  for (const target of run.targets.values()) {
    if (target.outcome === 'skipped') await auditTarget(run, target);
  }
  await saveCampaign(run, (current) => ({
    ...current,
    status: 'running',
    startedAt: current.startedAt ?? run.now,
  }));
}

/** Writes the campaign, re-reading it when another run wrote first. */
async function saveCampaign(run: Ledger, change: (current: Campaign) => Campaign): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      run.campaign = await run.book.campaigns.putCampaign(change(stripRev(run.campaign)), run.campaign.rev);
      return;
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= 5) throw error;
      const fresh = await run.book.campaigns.getCampaign(run.campaign.campaignId);
      if (!fresh) throw error;
      run.campaign = fresh;
    }
  }
}

async function runIdentity(run: Run, identityId: string, group: Target[], retryFailed: boolean) {
  const versions = new Versions(run.deps.rotation.store, identityId);
  try {
    for (const planned of group) {
      const budget = budgetOf(run, planned, retryFailed);
      if (budget === undefined || run.stopped) continue;
      const settled = await settle(run, planned, budget, versions);
      if (!settled) continue;
      run.targets.set(settled.targetId, settled);
      run.settled += 1;
      // A failed target tried again was counted done already.
      if (planned.outcome === 'pending') run.done += 1;
      run.options.onOutcome?.(settled, { done: run.done, total: run.total });
    }
    // Every target of the identity, this run's and (when limited to `targetIds`) the others'.
    const current = targetsOf(run, identityId);
    if (current.some((t) => !run.scope.has(t.targetId) && t.outcome === 'pending')) {
      run.awaitingOthers.add(identityId);
    } else if (!run.stopped) await reissue(run, identityId, current);
  } catch (error) {
    // The store could not record progress: stop claiming, let the others finish, resume later.
    run.stop.abort();
    throw error;
  }
}

/**
 * Works one target to an outcome. Returns it settled, or undefined when the run stopped
 * before trying it or another run holds it.
 */
async function settle(
  run: Run,
  planned: Target,
  budget: number,
  versions: Versions,
): Promise<Target | undefined> {
  const { campaigns } = run.deps;
  const campaignId = run.campaign.campaignId;
  const limit = run.options.limitFor(planned.kind);
  let target = planned;
  for (;;) {
    if (run.stopped) return undefined;
    let claimed: Target | undefined;
    const tried = await limit(async () => {
      if (run.stopped) return undefined;
      const { error: _e, retryable: _r, reason: _reason, finishedAt: _f, ...rest } = target;
      const claim: Target = {
        ...rest,
        outcome: 'pending',
        attempts: target.attempts + 1,
        startedAt: target.startedAt ?? run.now,
      };
      try {
        await campaigns.putTarget(campaignId, claim, target.attempts);
      } catch (error) {
        if (error instanceof ConflictError) throw new LostClaim();
        throw error;
      }
      claimed = claim;
      try {
        return { ok: await act(run, claim, versions) };
      } catch (error) {
        return { error };
      }
    }).catch((error: unknown) => {
      if (error instanceof LostClaim) return 'lost' as const;
      throw error;
    });
    if (tried === 'lost' || tried === undefined || claimed === undefined) return undefined;
    target = claimed;

    let outcome: Target;
    if ('ok' in tried) {
      await markVersionRevoked(run, target, versions);
      outcome = {
        ...target,
        outcome: tried.ok.result,
        ...(tried.ok.note ? { reason: tried.ok.note } : {}),
        finishedAt: run.now,
      };
    } else {
      const retryable = isRetryable(tried.error);
      if (retryable && target.attempts < budget) {
        await run.deps.sleep(run.delay(target.attempts));
        continue;
      }
      outcome = {
        ...target,
        outcome: 'failed',
        error: messageOf(tried.error),
        retryable,
        finishedAt: run.now,
      };
    }
    await auditTarget(run, outcome);
    try {
      await campaigns.putTarget(campaignId, outcome, target.attempts);
    } catch (error) {
      // Another run settled it in the meantime: its record stands.
      if (error instanceof ConflictError) return undefined;
      throw error;
    }
    return outcome;
  }
}

const auditTarget = (run: Ledger, target: Target) =>
  run.audit('campaign.target', target.identityId, {
    targetId: target.targetId,
    kind: target.kind,
    action: target.action,
    handle: target.handle,
    ...(target.versionId ? { versionId: target.versionId } : {}),
    outcome: target.outcome,
    attempts: target.attempts,
    ...(target.reason ? { reason: target.reason } : {}),
    ...(target.error ? { error: target.error } : {}),
  });

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
  if (!KINDS[identity.kind].replaceBeforeRevoke || !target.versionId) return undefined;
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

/** Marks the target's credential version revoked, with a note naming the incident. */
async function markVersionRevoked(run: Run, target: Target, versions: Versions): Promise<void> {
  if (!target.versionId) return;
  const note = `revoked by campaign ${run.campaign.campaignId} for incident ${run.campaign.incident}`;
  const { store } = run.deps.rotation;
  if (canMarkRevoked(store)) {
    // One conditional update; false means unknown or revoked already, both fine.
    await store.markVersionRevoked(target.identityId, target.versionId, { at: run.now, note });
    versions.revoked(target.versionId);
    return;
  }
  for (let attempt = 1; ; attempt += 1) {
    const version = await versions.find(target.versionId);
    if (!version || version.stage === 'revoked') return;
    try {
      await versions.put(
        {
          ...stripRev(version),
          stage: 'revoked',
          retiredAt: run.now,
          note,
        },
        version.rev,
      );
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
