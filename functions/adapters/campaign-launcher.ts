/**
 * Starting an incident revocation campaign, shared by the CLI and the HTTP API (Slack
 * `/revoke`): plan it over the inventory and what is live in the providers, record what
 * was found live and never recorded, and store it ({@link planAndStoreCampaign}), then
 * hand it to a {@link CampaignLauncher}, which starts the revocation state machine:
 *
 * - {@link StepFunctionsCampaignLauncher}: in AWS, one Step Functions execution named after
 *   the campaign, so a second start of the same campaign is refused as a duplicate;
 * - {@link LocalCampaignLauncher}: on a laptop, the local runtime's runner
 *   (functions/local/revocation-runner.ts) in the background of the process that serves
 *   the API, recording on the campaign when its run fails.
 */
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import { listedStage } from '../core/adoption.ts';
import {
  nextBatch,
  type Plan,
  type PlanSummary,
  planCampaign,
  summarize,
  summaryOf,
  type Target,
} from '../core/campaign.ts';
import { campaignTargetEvent } from '../core/campaign-engine.ts';
import { type Listing, type LiveSubject, needsListing, resolveLive } from '../core/campaign-live.ts';
import type { CredentialVersion } from '../core/credential-version.ts';
import { ConflictError, KeywardenError, NotFoundError, ValidationError } from '../core/errors.ts';
import { SHORT_FINGERPRINT } from '../core/exposure.ts';
import type { Identity, IdentityKind } from '../core/identity.ts';
import { kindFacts, type ProviderService, serviceOf } from '../core/kinds.ts';
import type {
  CampaignLauncher,
  CampaignStore,
  Clock,
  ExposureContainment,
  IdentityStore,
  Limit,
  ListedCredential,
  RotationStore,
  StoredCampaign,
  VersionsOfMany,
} from '../core/ports.ts';
import type { RotationDeps } from '../core/rotation.ts';
import { identityTermsOf, parseSelectors, select } from '../core/selector.ts';
import { awsFailure } from './aws/clients.ts';
import type { AwsEndpoint } from './aws/endpoint.ts';
import {
  type ExecutionStatus,
  isExecutionAlreadyExists,
  type SfnExecutions,
  signedSfnExecutions,
} from './aws/sfn-executions.ts';
import { DEFAULT_LISTING_LIMITS, DEFAULT_RATE_LIMITS, providerLimiters } from './rate-limits.ts';

/** What a responder asks for: which incident, which credentials, whether to re-issue. */
export interface CampaignRequest {
  incident: string;
  /** Selector texts, ORed (`stage=deploy,env=prod`). */
  selectors: string[];
  reissue: boolean;
  /** Who asks, as the audit trail names them: `cli:alice`, `slack:U123`. */
  actor: string;
  /** Plan only: nothing is stored or changed. */
  dryRun: boolean;
}

/** What planning (and storing) a campaign came to. */
export type PlannedCampaign =
  | { status: 'dry-run'; summary: PlanSummary }
  /** The selectors match nothing in the inventory: nothing stored. */
  | { status: 'nothing-matches'; summary: PlanSummary }
  /** `confirm` answered no: nothing stored. */
  | { status: 'declined'; summary: PlanSummary }
  | { status: 'stored'; summary: PlanSummary; campaign: StoredCampaign };

export interface PlanAndStoreOptions {
  /**
   * Asked before storing a campaign with credentials to revoke (the CLI's prompt); the
   * campaign is stored only when it resolves true. Without it, the request is the consent
   * (the API checks the approver before calling).
   */
  confirm?: (summary: PlanSummary, toRevoke: number) => Promise<boolean>;
  /**
   * Plans and stores the campaign in parts, one per provider service, so that its slowest
   * revocations start while the rest is listed (a responder's `keywarden revoke --yes` on the local
   * stack): the identities of the service whose revocations take longest (IAM's mutating calls, at
   * ~15 a second per account) are listed first, alone, and their targets stored as the campaign,
   * its `planning` open; `onFirstPart` gets them at once to run. The other identities are listed
   * meanwhile, and each service's targets stored as a part as soon as they are (Secrets Manager's,
   * then Vault's); `rest` resolves with the second part, each part's `next` with the one after it,
   * and the last closes the planning. A part that cannot be planned rejects, and no part follows
   * it (the campaign stays open: {@link continuePlanning}, which `keywarden revoke resume` calls,
   * plans the rest). Not with `confirm`: the consent comes before
   * any part is stored. A dry run, a campaign of one service, and one with nothing of the first
   * service to revoke are planned whole, as without it.
   */
  inParts?: {
    /** What storing a campaign in parts writes besides the plan: the later parts, the planning closed. */
    campaigns: PartsStore;
    /**
     * Gets the first part to run at once. What it returns, when a promise, is the first part's run
     * under way (its first revocation dispatched): the later listings start only then (or after
     * {@link HEAD_START_MAX_MS} at most), so their thousands of requests do not hold the first
     * part's run back from its start; returning nothing starts them at once.
     */
    onFirstPart: (first: PlannedPart, rest: Promise<PlannedPart>) => unknown;
  };
}

/** What storing a campaign in parts reads and writes of the campaign store, beyond storing a plan. */
export type PartsStore = Pick<
  CampaignStore,
  'addTargets' | 'getCampaign' | 'putCampaign' | 'listTargets' | 'leaseBatch' | 'renewBatch' | 'settleBatch'
>;

/** One stored part of a campaign planned in parts: the campaign as stored then, and the part's targets to revoke. */
export interface PlannedPart {
  campaign: StoredCampaign;
  /** Ids of the part's pending targets. */
  pending: string[];
  /** How many of its targets were settled at planning (skipped, or failed to be listed). */
  settled: number;
  /** The part after it, while the planning stays open (one part per provider service). */
  next?: Promise<PlannedPart>;
}

/** `INC-42-20261121T101500Z-3fa2`: sorts by time within an incident, unique per run. */
export const campaignIdFor = (incident: string, now: Date): string =>
  `${incident}-${now.toISOString().replace(/[-:]|\.\d+/g, '')}-${randomBytes(2).toString('hex')}`;

/** What planning and storing a campaign reads and writes. */
export interface CampaignPlanningDeps {
  store: Pick<IdentityStore, 'listIdentities'> &
    Pick<RotationStore, 'listVersions' | 'putVersion'> &
    Pick<CampaignStore, 'createCampaign'> &
    /** Where the store has it, the versions of every selectable identity are read at once. */
    Partial<VersionsOfMany>;
  clock: Clock;
  /**
   * The providers that list what is live (`providerFor`), the audit log an adoption is recorded
   * in, acting as `actor`, and where given the deliveries that read the value an identity's own
   * store holds now (`deliveryFor`), whose `fingerprint` an adopted current version is recorded
   * with (wiring's `rotationDeps`). A value a planner may not read (a delivery it is not given:
   * the Lambda planners', composition.ts `liveListing`) is not read, and what it adopts there is
   * recorded without a fingerprint.
   */
  rotationDeps: (actor: string) => LiveListing;
  /**
   * The limiter of the service behind a kind, which the listings go through.
   * @default the listing limits (rate-limits.ts `DEFAULT_LISTING_LIMITS`: within the services' read
   * quotas, not the revocation's write limits, which paced IAM listings at 5–7 a second)
   */
  limitFor?: (kind: IdentityKind) => Limit;
}

/** What planning takes of rotation's dependencies (see {@link CampaignPlanningDeps.rotationDeps}). */
export type LiveListing = Pick<RotationDeps, 'providerFor' | 'deliveryFor' | 'fingerprint' | 'audit'>;

/**
 * Most identities whose versions are read from the store at once, by a store that reads them one
 * identity at a time: one Query each, a few milliseconds in DynamoDB, whose on-demand reads allow
 * thousands a second.
 */
const VERSIONS_CONCURRENCY = 64;

/** Most adopted versions recorded at once by a store without batches: each a conditional put, a request each. */
const ADOPT_CONCURRENCY = 32;

/** The message and retryability of a listing error; never a value (errors hold none). */
const failureOf = (error: unknown) => ({
  error: error instanceof Error ? error.message : String(error),
  retryable: (error as { retryable?: unknown } | undefined)?.retryable === true,
});

/**
 * What the provider of `identity` shows live: every credential it lists, and for a kind whose
 * own store is the credential (a secret, a KV path) the fingerprint of the value it holds now.
 * A provider that cannot be listed (permission, outage, not configured) is a failure with its
 * reason; a value that cannot be read only leaves the fingerprint out.
 */
async function listLive(
  deps: Omit<LiveListing, 'audit'>,
  identity: Identity,
  recorded: readonly CredentialVersion[],
  issuedByKeywarden: ReadonlySet<string>,
): Promise<Listing> {
  const own = kindFacts(identity.kind).ownDelivery?.(identity);
  const readOwn = async () => {
    if (!own) return undefined;
    try {
      // A delivery this planner is not given (LiveListing) throws at once: no value is read, and
      // what it adopts has no fingerprint.
      return await deps.deliveryFor(own).readCurrent();
    } catch {
      return undefined;
    }
  };
  // What is recorded live is revoked as recorded whether listed or not: a provider that looks
  // each credential up on its own (an AppRole secret-id) may leave it out.
  const skip = new Set(recorded.filter((v) => v.stage !== 'revoked').map((v) => v.handle));
  // The delivered value is read only for the fingerprint of what is adopted; one that cannot be
  // read only loses it: what is live was listed. With no current version recorded it most likely
  // is adopted, so it is read beside the listing (one round trip's wait, not two); with one
  // recorded it most likely is that one, so it is read only once the listing shows one to adopt.
  const beside = recorded.some((v) => v.stage === 'current') ? undefined : readOwn();
  let listed: ListedCredential[];
  try {
    // Only what still grants is adopted (resolveLive), so a provider may list just that, cheaper.
    listed = await deps.providerFor(identity).list({ skip, grantingOnly: true, issuedByKeywarden });
  } catch (error) {
    return { failure: failureOf(error) };
  }
  const toAdopt = listed.some(
    (credential) => listedStage(credential) !== 'revoked' && !skip.has(credential.handle),
  );
  if (!own || !toAdopt) return { listed };
  const current = await (beside ?? readOwn());
  if (!current) return { listed };
  return {
    listed,
    current: {
      ...(current.versionId === undefined ? {} : { versionId: current.versionId }),
      fingerprint: deps.fingerprint(current.secret, identity),
    },
  };
}

/**
 * Every stored identity still in the inventory, and how each is resolved: those the selectors may
 * select with their credential versions (one the identity terms exclude cannot be selected
 * whatever its versions: they are not read), and those of kinds revoked one credential at a time
 * against what their provider lists live now, each listing under its service's listing limiter.
 * The versions are read first, all at once where the store can (`listVersionsOf`: a fleet's in a
 * few requests, not one each); each provider may leave out what is recorded (a lookup fewer per
 * recorded AppRole secret-id), and listings that start together share what they can (one accessor
 * LIST for every token identity).
 */
async function inventoryOf(
  services: CampaignPlanningDeps,
  request: Pick<CampaignRequest, 'selectors' | 'actor'>,
  at: string,
  /** Whether an identity is planned already (of a service a campaign planned in parts has stored). */
  planned: (identity: Identity) => boolean = () => false,
) {
  // Parsed before anything is read: a bad selector is refused naming its term.
  const identityTerms = identityTermsOf(parseSelectors(request.selectors));
  const live = services.rotationDeps(request.actor);
  const limitFor =
    services.limitFor ?? providerLimiters(DEFAULT_LISTING_LIMITS, { startFull: true }).limitFor;
  const active = (await services.store.listIdentities())
    .filter((r) => r.status === 'active' && !planned(r.identity))
    .map(({ identity }) => identity);
  const selectable = active.filter(
    (identity) => select(identityTerms, { identity, versions: [] }) !== undefined,
  );
  const versions = await versionsOf(services.store, selectable);
  const issued = issuedByKeywarden(versions.values());
  const resolve = async (identity: Identity): Promise<LiveSubject> => {
    const recorded = versions.get(identity.id);
    if (!recorded) return { identity, versions: [] };
    if (!needsListing(identityTerms, identity)) return { identity, versions: recorded };
    const listing = await limitFor(identity.kind)(() => listLive(live, identity, recorded, issued));
    return resolveLive(identity, recorded, listing, at);
  };
  return { active, selectable, resolve };
}

/**
 * Resolves `identities` (see {@link inventoryOf}), their listings started together, slowest
 * service first (the AWS reads, then Vault's many: those take longest, and a thousand Vault
 * listings sent first would keep them waiting); answered in the order given.
 */
function resolveAll(
  identities: readonly Identity[],
  resolve: (identity: Identity) => Promise<LiveSubject>,
): Promise<LiveSubject[]> {
  const started = startAll(identities, resolve);
  return Promise.all(identities.map((identity) => started.get(identity.id) as Promise<LiveSubject>));
}

/** Starts resolving every identity, slowest service first; each one's answer by its id. */
function startAll(
  identities: readonly Identity[],
  resolve: (identity: Identity) => Promise<LiveSubject>,
): Map<string, Promise<LiveSubject>> {
  const started = new Map<string, Promise<LiveSubject>>();
  for (const identity of [...identities].sort((a, b) => startRank(a) - startRank(b))) {
    const resolving = resolve(identity);
    // Awaited by its part; marked handled so a part that fails first leaves no unhandled rejection.
    resolving.catch(() => undefined);
    started.set(identity.id, resolving);
  }
  return started;
}

/** When a service's listings start: by its listing rate, lowest first. */
const serviceRank = (service: ProviderService): number => DEFAULT_LISTING_LIMITS[service].perSecond;
const startRank = (identity: Identity): number => serviceRank(serviceOf(identity.kind));

/**
 * The Vault tokens recorded live as keywarden's own (issued by a rotation, so their meta names the
 * identity that records them): the token listings need not look these up to tell whose they are.
 */
function issuedByKeywarden(versions: Iterable<readonly CredentialVersion[]>): ReadonlySet<string> {
  const issued = new Set<string>();
  for (const recorded of versions) {
    for (const version of recorded) {
      if (version.kind === 'vault-token' && version.origin === 'issued' && version.stage !== 'revoked') {
        issued.add(version.handle);
      }
    }
  }
  return issued;
}

/** The versions of `identities`, by id: in one read of them all where the store has one, else a Query each. */
export async function versionsOf(
  store: Pick<RotationStore, 'listVersions'> & Partial<Pick<VersionsOfMany, 'listVersionsOf'>>,
  identities: readonly Identity[],
): Promise<Map<string, readonly CredentialVersion[]>> {
  const ids = identities.map((identity) => identity.id);
  if (store.listVersionsOf) return store.listVersionsOf(ids);
  const limit = pLimit(VERSIONS_CONCURRENCY);
  return new Map(
    await Promise.all(ids.map(async (id) => [id, await limit(() => store.listVersions(id))] as const)),
  );
}

/**
 * Records the versions the plan found live and never recorded (adopted), then their
 * `credential.adopted` audit events in one append, before the campaign that revokes them is
 * stored: in batches where the store has them (`createVersions`: a read of their keys, then a
 * write of the absent ones), else a conditional put each. One recorded meanwhile (by a
 * concurrent plan or rotation) is left as it is, and its event is not appended.
 */
async function adopt(services: CampaignPlanningDeps, plan: Plan, actor: string): Promise<void> {
  const { audit } = services.rotationDeps(actor);
  const { campaignId, incident } = plan.campaign;
  const { store } = services;
  const recorded = store.createVersions
    ? await store.createVersions(plan.adopt)
    : await putEach(store, plan.adopt);
  await audit.appendMany(
    recorded.map((version) => ({
      type: 'credential.adopted',
      actor,
      subject: version.identityId,
      details: {
        versionId: version.versionId,
        handle: version.handle,
        stage: version.stage,
        ...(version.fingerprint === undefined ? {} : { fingerprint: version.fingerprint }),
        campaignId,
        incident,
        reason: 'found live in the provider, never recorded by keywarden; recorded before it is revoked',
      },
    })),
  );
}

/** Each version recorded by a conditional put, never over one recorded meanwhile; those written. */
async function putEach(
  store: CampaignPlanningDeps['store'],
  versions: readonly CredentialVersion[],
): Promise<CredentialVersion[]> {
  const limit = pLimit(ADOPT_CONCURRENCY);
  const written = await Promise.all(
    versions.map((version) =>
      limit(async () => {
        try {
          await store.putVersion(version, undefined);
          return version;
        } catch (error) {
          if (error instanceof ConflictError) return undefined;
          throw error;
        }
      }),
    ),
  );
  return written.filter((version) => version !== undefined);
}

/**
 * Plans a campaign over the inventory and what is live in the providers (a dry run shows the
 * same plan) and, unless it is a dry run, matches nothing or is not confirmed, records what
 * it found live and never recorded, then stores it (status `planned`) for a launcher to run;
 * with `inParts`, in parts (see {@link PlanAndStoreOptions.inParts}).
 *
 * @throws ValidationError for an invalid incident or selector, naming the bad term.
 */
export async function planAndStoreCampaign(
  services: CampaignPlanningDeps,
  request: CampaignRequest,
  options: PlanAndStoreOptions = {},
): Promise<PlannedCampaign> {
  if (options.confirm && options.inParts) {
    throw new ValidationError(
      'a campaign planned in parts starts before its plan is whole: expected either a confirmation or parts, not both',
    );
  }
  const now = services.clock.now();
  const at = now.toISOString();
  const base = {
    campaignId: campaignIdFor(request.incident, now),
    incident: request.incident,
    selectors: request.selectors,
    requestedBy: request.actor,
    now: at,
    reissue: request.reissue,
    dryRun: request.dryRun,
  };
  const { active, selectable, resolve } = await inventoryOf(services, request, at);
  const { inParts } = options;
  const first = inParts && !request.dryRun ? slowestService(selectable) : undefined;
  let resolved: LiveSubject[] = [];
  let rest = active;
  if (first && inParts) {
    // The first service's listings alone: they end soonest so, and its revocations start meanwhile.
    resolved = await resolveAll(
      active.filter((identity) => serviceOf(identity.kind) === first),
      resolve,
    );
    rest = active.filter((identity) => serviceOf(identity.kind) !== first);
    const head = planCampaign({ ...base, subjects: resolved });
    // Nothing of it to revoke: no part worth starting early, so the campaign is planned whole.
    if (head.summary.counts.byOutcome.pending > 0) {
      return storeInParts(services, inParts, request, { head, first, rest, resolve });
    }
  }
  const plan = planCampaign({ ...base, subjects: [...resolved, ...(await resolveAll(rest, resolve))] });
  if (request.dryRun) return { status: 'dry-run', summary: plan.summary };
  if (plan.targets.length === 0) return { status: 'nothing-matches', summary: plan.summary };
  const toRevoke = plan.summary.counts.byOutcome.pending;
  if (options.confirm && toRevoke > 0 && !(await options.confirm(plan.summary, toRevoke))) {
    return { status: 'declined', summary: plan.summary };
  }
  await adopt(services, plan, request.actor);
  const campaign = await services.store.createCampaign(plan.campaign, plan.targets);
  return { status: 'stored', summary: plan.summary, campaign };
}

/**
 * The provider service whose revocations take longest among `identities` (the lowest revocation
 * rate: IAM's mutating calls, then Secrets Manager's writes), when they span more than one.
 */
function slowestService(identities: readonly Identity[]): ProviderService | undefined {
  const services = [...new Set(identities.map((identity) => serviceOf(identity.kind)))];
  if (services.length < 2) return undefined;
  return services.sort((a, b) => DEFAULT_RATE_LIMITS[a].perSecond - DEFAULT_RATE_LIMITS[b].perSecond)[0];
}

/** Pending targets' ids: what a part gives its run. */
const pendingOf = (targets: readonly Target[]): string[] =>
  targets.filter((target) => target.outcome === 'pending').map((target) => target.targetId);

/**
 * Stores `head` (the first service's targets) as the campaign with its planning open, hands it to
 * `onFirstPart`, then plans the other services' identities and stores each service's as a part,
 * the last closing the planning; it holds the campaign's planning lease throughout, so no resume
 * plans it meanwhile.
 */
async function storeInParts(
  services: CampaignPlanningDeps,
  { campaigns, onFirstPart }: NonNullable<PlanAndStoreOptions['inParts']>,
  request: CampaignRequest,
  parts: {
    head: Plan;
    first: ProviderService;
    rest: readonly Identity[];
    resolve: (identity: Identity) => Promise<LiveSubject>;
  },
): Promise<PlannedCampaign> {
  const { head, first, rest, resolve } = parts;
  const lease = await PlanningLease.take({ ...services, campaigns }, head.campaign.campaignId);
  let campaign: StoredCampaign;
  try {
    await adopt(services, head, request.actor);
    campaign = await services.store.createCampaign(
      { ...head.campaign, planning: { stored: [first] } },
      head.targets,
    );
  } catch (error) {
    await lease.giveUp();
    throw error;
  }
  // The other services' listings all start once the first part's run is under way, slowest service
  // first; each service's part is stored as soon as it is listed (and the parts before it are
  // stored), the last one closing the planning.
  const order = [...new Set(rest.map((identity) => serviceOf(identity.kind)))].sort(
    (a, b) => serviceRank(a) - serviceRank(b),
  );
  let started = new Map<string, Promise<LiveSubject>>();
  const listOf = (index: number): Promise<LiveSubject[]> =>
    Promise.all(
      rest
        .filter((identity) => serviceOf(identity.kind) === order[index])
        .map((identity) => started.get(identity.id) as Promise<LiveSubject>),
    );
  let stored: readonly Target[] = head.targets;
  const storeFrom = async (index: number, listing: Promise<LiveSubject[]>): Promise<PlannedPart> => {
    const service = order[index];
    const last = index >= order.length - 1;
    try {
      const subjects = await listing;
      const nextListing = last ? undefined : listOf(index + 1);
      nextListing?.catch(() => undefined);
      const plan = planLaterPart(campaign, subjects, stored);
      const { part, fresh } = await storePart(
        { ...services, campaigns },
        lease,
        plan,
        stored,
        request.actor,
        last ? undefined : service,
      );
      stored = [...stored, ...fresh];
      if (!nextListing) return part;
      const next = storeFrom(index + 1, nextListing);
      // Its taker awaits it; marked handled here so a failure is not also an unhandled rejection.
      next.catch(() => undefined);
      return { ...part, next };
    } catch (error) {
      await lease.giveUp();
      throw error;
    }
  };
  let begin!: () => void;
  const begun = new Promise<void>((resolve) => {
    begin = resolve;
  });
  const restPart = begun.then(() => {
    started = startAll(rest, resolve);
    return storeFrom(0, listOf(0));
  });
  restPart.catch(() => undefined);
  await headStart(onFirstPart({ campaign, pending: pendingOf(head.targets), settled: 0 }, restPart));
  begin();
  let part = await restPart;
  while (part.next) part = await part.next;
  return { status: 'stored', summary: summaryOf(stored), campaign: part.campaign };
}

/**
 * Longest the later listings wait for the first part's run to be under way: a run that never says
 * so (or takes longer to start) holds the rest of the planning back no further.
 */
const HEAD_START_MAX_MS = 1_000;

/** Waits for `underWay` (the first part's run started), {@link HEAD_START_MAX_MS} at most; its failure is its run's to report. */
async function headStart(underWay: unknown): Promise<void> {
  if (typeof (underWay as PromiseLike<unknown> | undefined)?.then !== 'function') return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.resolve(underWay).catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, HEAD_START_MAX_MS);
    }),
  ]);
  clearTimeout(timer);
}

/** A later part's plan: the stored campaign's terms over `subjects`, its batches numbered after `stored`'s. */
const planLaterPart = (campaign: StoredCampaign, subjects: LiveSubject[], stored: readonly Target[]): Plan =>
  planCampaign({
    campaignId: campaign.campaignId,
    incident: campaign.incident,
    selectors: campaign.selectors,
    requestedBy: campaign.requestedBy,
    now: campaign.createdAt,
    reissue: campaign.reissue,
    subjects,
    firstBatch: nextBatch(stored),
  });

/** The parts after the first of a campaign planned in parts, each as it is stored (`rest`, then each `next`). */
export async function* partsAfter(rest: Promise<PlannedPart>): AsyncGenerator<PlannedPart> {
  for (let next: Promise<PlannedPart> | undefined = rest; next; ) {
    const part: PlannedPart = await next;
    yield part;
    next = part.next;
  }
}

/** How long a campaign's planner holds its planning unless it renews it: a dead planner's resume waits this long at most. */
const PLANNING_LEASE_MS = 60_000;

/** The lease name of a campaign's planning, beside its batches' numbers. */
const PLANNING_LEASE = 'planning';

/**
 * The planning lease of a campaign planned in parts (the campaign store's batch lease named
 * `planning`): its one planner holds it from before the first part is stored until the planning
 * closes, renewing it while it lists, so a resume meanwhile (`keywarden revoke resume`, the API's)
 * is refused instead of planning the rest a second time, and a planner that lost it (it stalled
 * past its lease and a resume took over) stores nothing more.
 */
class PlanningLease {
  readonly #services: Pick<CampaignPlanningDeps, 'clock'> & { campaigns: PartsStore };
  readonly #holder: string;
  readonly #renewal: ReturnType<typeof setInterval>;
  #lost = false;

  private constructor(
    services: Pick<CampaignPlanningDeps, 'clock'> & { campaigns: PartsStore },
    readonly campaignId: string,
    holder: string,
  ) {
    this.#services = services;
    this.#holder = holder;
    this.#renewal = setInterval(() => void this.renew().catch(() => undefined), PLANNING_LEASE_MS / 3);
    this.#renewal.unref();
  }

  /** @throws ConflictError while another planner holds the campaign's planning. */
  static async take(
    services: Pick<CampaignPlanningDeps, 'clock'> & { campaigns: PartsStore },
    campaignId: string,
  ): Promise<PlanningLease> {
    const holder = `plan:${randomBytes(6).toString('hex')}`;
    const now = services.clock.now().getTime();
    const lease = await services.campaigns.leaseBatch(campaignId, {
      batch: PLANNING_LEASE,
      holder,
      now,
      expiresAt: now + PLANNING_LEASE_MS,
      tryIds: [],
    });
    if (!lease.taken) {
      throw new ConflictError(
        `campaign ${campaignId} is being planned by another process (its lease runs until ${new Date(lease.expiresAt).toISOString()}); follow it with keywarden revoke status ${campaignId}, and resume it only once that process has stopped`,
      );
    }
    return new PlanningLease(services, campaignId, holder);
  }

  /** Renews the lease; false (and from then on) once another planner has taken it. */
  async renew(): Promise<boolean> {
    if (this.#lost) return false;
    const kept = await this.#services.campaigns.renewBatch(this.campaignId, {
      batch: PLANNING_LEASE,
      holder: this.#holder,
      expiresAt: this.#services.clock.now().getTime() + PLANNING_LEASE_MS,
    });
    if (!kept) this.#lost = true;
    return kept;
  }

  /** @throws ConflictError when another planner took over: this one must store nothing more. */
  async check(): Promise<void> {
    if (!(await this.renew())) {
      throw new ConflictError(
        `campaign ${this.campaignId}: another process took over its planning while this one was listing; its plan stands, this one stored nothing more`,
      );
    }
  }

  /** Gives the lease back once the planning is closed. */
  async release(): Promise<void> {
    this.stop();
    await this.#services.campaigns.settleBatch(this.campaignId, {
      batch: PLANNING_LEASE,
      holder: this.#holder,
      outcomes: [],
      done: [],
      untried: [],
    });
  }

  /**
   * Gives the lease back after a failure, so a resume may plan the rest at once; if that fails too
   * (the store is down), the lease runs out by itself.
   */
  async giveUp(): Promise<void> {
    await this.release().catch(() => undefined);
  }

  stop(): void {
    clearInterval(this.#renewal);
  }
}

/**
 * Records what a later part adopts, audits its targets settled at planning (the campaign's start
 * may not see them) and stores its targets (those not stored already: a planner that died may
 * have stored some); then adds `service` to the services the campaign's planning has stored, or,
 * for the last part (no `service`), closes the planning with the whole plan's counts and gives the
 * lease back. Each write is made only while `lease` is held. Returns the part and its new targets.
 */
async function storePart(
  services: CampaignPlanningDeps & { campaigns: PartsStore },
  lease: PlanningLease,
  plan: Plan,
  stored: readonly Target[],
  actor: string,
  service?: ProviderService,
): Promise<{ part: PlannedPart; fresh: Target[] }> {
  const { campaignId } = lease;
  const store = services.campaigns;
  const known = new Set(stored.map((target) => target.targetId));
  const fresh = plan.targets
    .filter((target) => !known.has(target.targetId))
    .map(
      (target): Target => (target.outcome === 'skipped' ? { ...target, auditedAtPlanning: true } : target),
    );
  await lease.check();
  await adopt(services, plan, actor);
  const settled = fresh.filter((target) => target.auditedAtPlanning);
  if (settled.length > 0) {
    await services
      .rotationDeps(actor)
      .audit.appendMany(settled.map((target) => campaignTargetEvent(plan.campaign, actor, target)));
  }
  if (fresh.length > 0) {
    await lease.check();
    await store.addTargets(campaignId, fresh);
  }
  const counts = summarize([...stored, ...fresh]);
  const pending = pendingOf(fresh);
  for (let attempt = 1; ; attempt += 1) {
    const current = await store.getCampaign(campaignId);
    if (!current)
      throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)} to store the planning of`);
    const { rev, planning, ...rest } = current;
    const stillOpen = service && planning ? { planning: { stored: [...planning.stored, service] } } : {};
    try {
      const campaign = await store.putCampaign({ ...rest, ...stillOpen, counts }, rev);
      if (!service) await lease.release();
      return { part: { campaign, pending, settled: fresh.length - pending.length }, fresh };
    } catch (error) {
      // A run started it meanwhile: read it again.
      if (!(error instanceof ConflictError) || attempt >= 5) throw error;
    }
  }
}

/**
 * Finishes the planning of a campaign planned in parts whose planner stopped before its last part
 * (killed, or a provider's listing failed): under the campaign's planning lease (refused while its
 * planner still holds it), plans the identities of the services not stored yet over the
 * campaign's selectors, stores their targets and closes the planning. What the first part stored
 * is not planned again. A campaign whose planning is closed is returned as it is.
 *
 * @throws ConflictError while another process plans the campaign.
 */
export async function continuePlanning(
  services: CampaignPlanningDeps & { campaigns: PartsStore },
  campaign: StoredCampaign,
  actor: string,
): Promise<StoredCampaign> {
  if (!campaign.planning) return campaign;
  const lease = await PlanningLease.take(services, campaign.campaignId);
  try {
    const done = new Set<ProviderService>(campaign.planning.stored);
    const at = services.clock.now().toISOString();
    const { active, resolve } = await inventoryOf(
      services,
      { selectors: campaign.selectors, actor },
      at,
      (identity) => done.has(serviceOf(identity.kind)),
    );
    const stored = await services.campaigns.listTargets(campaign.campaignId);
    const plan = planLaterPart(campaign, await resolveAll(active, resolve), stored);
    return (await storePart(services, lease, plan, stored, actor)).part.campaign;
  } catch (error) {
    await lease.giveUp();
    throw error;
  }
}

/** Containing one exposed credential: the incident it answers, its fingerprint, its identity, who contains. */
export interface ContainmentRequest {
  /** `EXPOSURE-<fp>` or `UNEXPECTED-USE-<fp>`. */
  incident: string;
  /** The exposed value's keyed fingerprint (`hmac-sha256:…`). */
  fingerprint: string;
  identityId: string;
  /** Who contains, as the audit trail names them (`keywarden:exposure-scanner`). */
  actor: string;
}

/**
 * Plans and stores the campaign that contains one exposed credential: an incident campaign on
 * exactly that credential (selector `identity=<id>,fingerprint=<fp>`), with re-issue, for the
 * deployed scanner's state machine or the local runner to run. Holding the value is the authority
 * to end it: no confirmation is asked. The identity term keeps planning to that one identity (no
 * listing of every other identity's provider).
 *
 * @throws KeywardenError when the plan holds nothing to revoke (the fingerprint matches no
 *   recorded version of the identity): nothing is stored.
 */
export async function planContainment(
  services: CampaignPlanningDeps,
  { incident, fingerprint, identityId, actor }: ContainmentRequest,
): Promise<{ campaign: StoredCampaign; summary: PlanSummary }> {
  const planned = await planAndStoreCampaign(services, {
    incident,
    selectors: [`identity=${identityId},fingerprint=${fingerprint}`],
    reissue: true,
    actor,
    dryRun: false,
  });
  if (planned.status !== 'stored') {
    throw new KeywardenError(
      `containing ${identityId}'s exposed credential: the campaign on fingerprint ${fingerprint.slice(0, SHORT_FINGERPRINT)}… planned nothing (${planned.status}); check keywarden status ${identityId}`,
    );
  }
  return { campaign: planned.campaign, summary: planned.summary };
}

/**
 * Containment in AWS: an incident campaign on exactly the exposed credential (its identity and
 * fingerprint), with re-issue, planned and stored here and run by the revocation state machine,
 * which revokes, re-issues to the delivery target and writes the incident report. Returns once the
 * execution is started, as `started` with nothing revoked yet: what the execution then ends is its
 * own record (`keywarden revoke status`), and its failures are the revocation alarms' to raise.
 * Holding the value is the authority to end it, so no responder is asked.
 */
export function stateMachineContainment(
  planning: CampaignPlanningDeps,
  launcher: CampaignLauncher,
  actor: string,
): ExposureContainment {
  return {
    async contain({ incident, fingerprint, identityId }) {
      const { campaign } = await planContainment(planning, {
        incident,
        fingerprint,
        identityId,
        actor,
      });
      const { campaignId } = campaign;
      await launcher.launch(campaignId);
      return {
        campaignId,
        outcome: 'started',
        revoked: 0,
        failures: [],
        reissue: `by the revocation state machine (campaign ${campaignId})`,
      };
    },
  };
}

export type { ExecutionStatus } from './aws/sfn-executions.ts';

/** Execution names: at most 80 of letters, digits, `-` and `_`. */
const executionName = (campaignId: string, resume: string | undefined): string => {
  const base = campaignId.replace(/[^A-Za-z0-9_-]/g, '_');
  return resume ? `${base.slice(0, 80 - resume.length - 1)}-${resume}` : base.slice(0, 80);
};

/**
 * The launcher of the state machine `stateMachineArn`, over Step Functions at `aws` (a signed
 * `fetch` per call, aws/sfn-executions.ts: no SDK client in the functions that launch).
 */
export const stepFunctionsLauncher = (
  aws: AwsEndpoint,
  stateMachineArn: string,
): StepFunctionsCampaignLauncher =>
  new StepFunctionsCampaignLauncher({ executions: signedSfnExecutions(aws), stateMachineArn });

export interface StepFunctionsCampaignLauncherOptions {
  /** Step Functions' StartExecution and DescribeExecution. */
  executions: SfnExecutions;
  /** The Revocation construct's state machine (stack output `RevocationStateMachineArn`). */
  stateMachineArn: string;
  /** Tells resumes apart; injected for tests. @default the time, to the second */
  resumeSuffix?: () => string;
}

/**
 * Starts one execution of the revocation state machine per campaign, named after it: Step
 * Functions refuses a second execution of a name that has run (`ExecutionAlreadyExists`),
 * so a campaign cannot be started twice, by two responders or a retried request. A resume
 * is a new execution, named `<campaign id>-resume-<time>`.
 */
export class StepFunctionsCampaignLauncher implements CampaignLauncher {
  readonly #executions: SfnExecutions;
  readonly #stateMachineArn: string;
  readonly #resumeSuffix: () => string;

  constructor(options: StepFunctionsCampaignLauncherOptions) {
    if (!/^arn:aws[\w-]*:states:[\w-]+:\d{12}:stateMachine:[\w-]+$/.test(options.stateMachineArn)) {
      throw new KeywardenError(
        `expected the ARN of the revocation state machine (arn:aws:states:<region>:<account>:stateMachine:<name>, the stack output RevocationStateMachineArn), got ${JSON.stringify(options.stateMachineArn)}`,
      );
    }
    this.#executions = options.executions;
    this.#stateMachineArn = options.stateMachineArn;
    this.#resumeSuffix =
      options.resumeSuffix ?? (() => `resume-${new Date().toISOString().replace(/[-:]|\.\d+/g, '')}`);
  }

  async launch(campaignId: string, options: { retryFailed?: boolean } = {}): Promise<void> {
    await this.start(campaignId, options);
  }

  /** {@link launch}, returning the execution's ARN to follow it by. */
  async start(
    campaignId: string,
    options: { retryFailed?: boolean } = {},
  ): Promise<{ executionArn: string }> {
    const retryFailed = options.retryFailed ?? false;
    const name = executionName(campaignId, retryFailed ? this.#resumeSuffix() : undefined);
    try {
      const { executionArn } = await this.#executions.start({
        stateMachineArn: this.#stateMachineArn,
        name,
        input: JSON.stringify({ campaignId, retryFailed }),
      });
      return { executionArn };
    } catch (error) {
      if (isExecutionAlreadyExists(error)) {
        throw new ConflictError(
          `campaign ${campaignId} was already started (Step Functions execution ${name} exists); follow it with keywarden revoke status ${campaignId}, or continue it with keywarden revoke resume ${campaignId}`,
          { cause: error },
        );
      }
      throw awsFailure(`starting the revocation state machine for campaign ${campaignId}`, error);
    }
  }

  /** How an execution stands, and its error and cause when it failed. */
  async describe(executionArn: string): Promise<{ status: ExecutionStatus; error?: string; cause?: string }> {
    try {
      const described = await this.#executions.describe(executionArn);
      return {
        status: described.status,
        ...(described.error ? { error: described.error } : {}),
        ...(described.cause ? { cause: described.cause } : {}),
      };
    } catch (error) {
      throw awsFailure(`reading the revocation execution ${executionArn}`, error);
    }
  }
}

/** The part of the local runner a launcher drives. */
export interface CampaignRunner {
  run(campaignId: string, options?: { retryFailed?: boolean }): Promise<unknown>;
}

export interface LocalCampaignLauncherOptions {
  runner: CampaignRunner;
  /** Where a failed run is recorded (status `failed`). */
  campaigns: Pick<CampaignStore, 'getCampaign' | 'putCampaign'>;
  /** Where the reason of a failed run goes (the local runtime's log). Never given a secret: errors hold none. */
  log: (line: string) => void;
}

/**
 * Runs campaigns in the background of the local runtime's process, one run per campaign
 * at a time (a second launch while it runs is refused, as Step Functions refuses a
 * duplicate execution). A run that throws marks the campaign `failed` and logs why;
 * `keywarden revoke resume` continues it.
 */
export class LocalCampaignLauncher implements CampaignLauncher {
  readonly #options: LocalCampaignLauncherOptions;
  readonly #running = new Map<string, Promise<void>>();

  constructor(options: LocalCampaignLauncherOptions) {
    this.#options = options;
  }

  async launch(campaignId: string, options: { retryFailed?: boolean } = {}): Promise<void> {
    if (this.#running.has(campaignId)) {
      throw new ConflictError(
        `campaign ${campaignId} is already running in this local runtime; follow it with keywarden revoke status ${campaignId}`,
      );
    }
    const run = this.#options.runner
      .run(campaignId, options)
      .then(
        () => undefined,
        (error: unknown) => this.#recordFailure(campaignId, error),
      )
      .finally(() => this.#running.delete(campaignId));
    this.#running.set(campaignId, run);
  }

  /** Resolves once every run started so far has ended (for a clean shutdown, and for tests). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running.values()]);
  }

  async #recordFailure(campaignId: string, error: unknown): Promise<void> {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.#options.log(
      `campaign ${campaignId}: the revocation run failed (${reason}); continue it with keywarden revoke resume ${campaignId}`,
    );
    const { campaigns } = this.#options;
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      try {
        const campaign = await campaigns.getCampaign(campaignId);
        if (!campaign) return;
        const { rev, ...rest } = campaign;
        await campaigns.putCampaign({ ...rest, status: 'failed' }, rev);
        return;
      } catch (recordError) {
        if (!(recordError instanceof ConflictError) || attempt === 5) {
          this.#options.log(
            `campaign ${campaignId}: could not record the failure on the campaign (${recordError instanceof Error ? recordError.message : String(recordError)})`,
          );
          return;
        }
      }
    }
  }
}
