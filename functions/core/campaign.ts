/**
 * Incident revocation campaigns: the plan (which targets, and how each is revoked),
 * the per-target outcome record the engine checkpoints, and the figures the report
 * shows. Every target ends `revoked`, `already-revoked`, `skipped` (with a reason) or
 * `failed` (with the error): nothing selected is silently dropped.
 */
import * as z from 'zod';
import { assignBatches, TARGETS_PER_BATCH } from './campaign-batches.ts';
import type { LiveState, LiveSubject } from './campaign-live.ts';
import { type CredentialVersion, VersionStageSchema } from './credential-version.ts';
import { ValidationError } from './errors.ts';
import { type Identity, type IdentityKind, IdentityKindSchema } from './identity.ts';
import { IncidentSchema } from './incident.ts';
import { REPORTING, toProblems } from './inventory.ts';
import {
  deliveryOf,
  KINDS,
  PROVIDER_SERVICES,
  rotationBlocker,
  scopeKey,
  serviceOf,
  wholeScope,
} from './kinds.ts';
import { identityTermsOf, parseSelectors, select } from './selector.ts';

/**
 * How a target is revoked. `revoke`: one credential by its handle. `revoke-prefix`: every
 * lease under a Vault path (`sys/leases/revoke-prefix/<prefix>`). `deny-sessions`: a deny
 * policy on the role for sessions issued before the campaign ran (STS sessions cannot be
 * revoked one by one).
 */
export const TargetActionSchema = z.enum(['revoke', 'revoke-prefix', 'deny-sessions']);
export type TargetAction = z.infer<typeof TargetActionSchema>;

/** Where a target stands; all but `pending` are final, though a retryable `failed` may be tried again. */
export const TargetOutcomeSchema = z.enum(['pending', 'revoked', 'already-revoked', 'skipped', 'failed']);
export type TargetOutcome = z.infer<typeof TargetOutcomeSchema>;

/** One thing a campaign revokes, with its outcome; checkpointed by the engine after every attempt. */
export const TargetSchema = z
  .object({
    /** Stable across re-plans and resumes: `${identityId}:${handle}`, or `${identityId}:prefix:${prefix}`. */
    targetId: z.string().min(1),
    identityId: z.string().min(1),
    kind: IdentityKindSchema,
    /** Who to call about it, for residual exposure in the report. */
    owner: z.string().optional(),
    environment: z.string(),
    /** Access key id, accessor, secret version…; the lease prefix or role ARN for the whole-scope actions. */
    handle: z.string().min(1),
    /** The credential version this target ends, so the store can mark it revoked; absent for whole scopes. */
    versionId: z.string().optional(),
    /**
     * That version's stage when the campaign was planned. A version past `current` (previous,
     * disabled, revoked) is never current again, so the run need not look it up before revoking
     * a kind that must replace its current value first (`replaceBeforeRevoke`).
     */
    stage: VersionStageSchema.optional(),
    action: TargetActionSchema,
    /** Issue a fresh credential to the identity's delivery target once its old ones are revoked. */
    reissue: z.boolean(),
    outcome: TargetOutcomeSchema,
    /** Why it was skipped or failed, in words a responder can act on. */
    reason: z.string().optional(),
    /** The provider's error, for `failed`. Never holds a secret value. */
    error: z.string().optional(),
    /** For `failed`: whether trying again may help (throttling, 5xx, dropped connection). */
    retryable: z.boolean().optional(),
    attempts: z.int().min(0),
    /**
     * The batch it is leased, worked and checkpointed with (campaign-batches.ts), numbered when
     * the campaign is planned; absent for a target settled at planning.
     */
    batch: z.int().min(0).optional(),
    /**
     * Settled at planning and audited (`campaign.target`) by its planner as it stored it: a target of
     * a later part of a campaign planned in parts, which the campaign's start may not see. The
     * start audits the other settled targets.
     */
    auditedAtPlanning: z.literal(true).optional(),
    startedAt: z.iso.datetime().optional(),
    finishedAt: z.iso.datetime().optional(),
  })
  .superRefine((target, ctx) => {
    if (target.outcome === 'skipped' && !target.reason)
      ctx.addIssue({ code: 'custom', path: ['reason'], message: 'expected a reason for a skipped target' });
    if (target.outcome === 'failed' && !target.error)
      ctx.addIssue({ code: 'custom', path: ['error'], message: 'expected the error of a failed target' });
  });
export type Target = z.infer<typeof TargetSchema>;

/** The incident id, one schema for every channel (./incident.ts); re-exported for the campaign's callers. */
export { IncidentSchema };

const OutcomeCountsSchema = z.strictObject({
  pending: z.int().min(0),
  revoked: z.int().min(0),
  'already-revoked': z.int().min(0),
  skipped: z.int().min(0),
  failed: z.int().min(0),
});
export type OutcomeCounts = z.infer<typeof OutcomeCountsSchema>;

/** Targets by outcome, overall and per kind (only kinds that have targets appear). */
export const CampaignCountsSchema = z.strictObject({
  total: z.int().min(0),
  byOutcome: OutcomeCountsSchema,
  byKind: z.partialRecord(IdentityKindSchema, OutcomeCountsSchema.extend({ total: z.int().min(0) })),
});
export type CampaignCounts = z.infer<typeof CampaignCountsSchema>;

/**
 * `planned` → `running` → `completed` once no target is pending, even when some
 * failed (they are reported, each with its error); `failed` means the campaign itself
 * could not run to the end (plan or report could not be written).
 */
export const CampaignStatusSchema = z.enum(['planned', 'running', 'completed', 'failed']);
export type CampaignStatus = z.infer<typeof CampaignStatusSchema>;

/** One incident revocation campaign; its targets are stored beside it, one record each. */
export const CampaignSchema = z.object({
  campaignId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, {
    error: (issue) =>
      `expected a campaign id of letters, digits, '.', '_' or '-' (at most 128), got ${JSON.stringify(issue.input)}`,
  }),
  incident: IncidentSchema,
  /** As written by the responder; ORed. */
  selectors: z.array(z.string().min(1)).min(1),
  /** Who asked: `cli:alice`, `slack:U123`. */
  requestedBy: z.string().trim().min(1),
  createdAt: z.iso.datetime(),
  status: CampaignStatusSchema,
  reissue: z.boolean(),
  dryRun: z.boolean(),
  counts: CampaignCountsSchema,
  startedAt: z.iso.datetime().optional(),
  finishedAt: z.iso.datetime().optional(),
  /** Where the report was written: `s3://bucket/key` or a local path. */
  reportLocation: z.string().optional(),
  /**
   * Present while its planner still stores parts of it (a campaign planned in parts: the targets
   * of the provider service whose revocations take longest are stored and run while the others
   * are listed; campaign-launcher.ts): the services whose targets are all stored. Absent once
   * every part is stored. A campaign whose planning is open is never completed.
   */
  planning: z.strictObject({ stored: z.array(z.enum(PROVIDER_SERVICES)).min(1) }).optional(),
});
export type Campaign = z.infer<typeof CampaignSchema>;

/** What re-issuing one identity gave: a fresh credential, a failure, or why it was held back. */
export const ReissueRecordSchema = z.object({
  identityId: z.string().min(1),
  /** `withheld`: some of its old credentials could not be revoked, so a new one would add exposure. */
  status: z.enum(['reissued', 'failed', 'withheld']),
  /** The fresh credential version, for `reissued`. */
  versionId: z.string().optional(),
  reason: z.string().optional(),
  at: z.iso.datetime(),
});
export type ReissueRecord = z.infer<typeof ReissueRecordSchema>;

/** The reason given for a selected identity that has nothing recorded to revoke (its provider was not listed). */
export const NO_LIVE_CREDENTIAL = 'no live credential recorded';

/** The reason given for a selected identity whose provider lists nothing live, and that has nothing recorded live. */
export const NOTHING_LIVE = 'nothing live: its provider lists no credential and none is recorded';

/** The reason of the failed target of an identity whose provider could not be listed. */
export const listingFailedReason = (identity: Identity, retryable: boolean): string =>
  `its live credentials could not be listed in ${serviceOf(identity.kind)}, so those keywarden never recorded were not revoked; ${
    retryable
      ? 'the error is transient: plan the campaign again once the provider answers'
      : 'fix the cause (the error names it), then plan the campaign again'
  }`;

/**
 * Whether revoking an identity can be followed by issuing a clean credential: it has a
 * delivery target to place it in, and its kind is rotated (not per-grant or per-lease).
 */
export const canReissue = (identity: Identity): boolean =>
  deliveryOf(identity) !== undefined && rotationBlocker(identity) === undefined;

export interface PlanInput {
  campaignId: string;
  incident: string;
  /** Selector texts, one per `--selector`; ORed. */
  selectors: string[];
  requestedBy: string;
  /** The planning time (ISO date-time), from the caller's clock. */
  now: string;
  reissue: boolean;
  dryRun?: boolean;
  /** The number of the plan's first batch: a later part of a campaign planned in parts goes on after the earlier parts' batches. */
  firstBatch?: number;
  /**
   * The inventory with the versions recorded for each identity; where its provider was listed,
   * with what was found live too (see campaign-live.ts).
   */
  subjects: readonly LiveSubject[];
}

/** What the dry run prints: counts per kind, then the targets. */
export interface PlanSummary {
  counts: CampaignCounts;
  /** Sorted by kind, identity, handle. */
  targets: Target[];
  /** Identities that will get a fresh credential after revocation, sorted. */
  reissue: string[];
}

export interface Plan {
  campaign: Campaign;
  /** Sorted by kind, identity, handle: the order batches are cut in. */
  targets: Target[];
  summary: PlanSummary;
  /** Versions found live and not recorded that the plan revokes: to record (adopt) before it runs. */
  adopt: CredentialVersion[];
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byKindIdentityHandle = (a: Target, b: Target): number =>
  compareText(a.kind, b.kind) || compareText(a.identityId, b.identityId) || compareText(a.handle, b.handle);

/** The targets of one selected identity. */
function targetsOf(
  identity: Identity,
  selection: { whole: boolean; versions: CredentialVersion[] },
  reissue: boolean,
  live: LiveState | undefined,
): Target[] {
  const base = {
    identityId: identity.id,
    kind: identity.kind,
    ...(identity.owner === undefined ? {} : { owner: identity.owner }),
    environment: identity.pipeline.environment,
    reissue,
    outcome: 'pending' as const,
    attempts: 0,
  };
  const { revocation } = KINDS[identity.kind];
  const scope = wholeScope(identity);
  // A whole lease path goes in one call; leases picked one by one are revoked one by one.
  if (revocation === 'revoke-prefix' && selection.whole && scope !== undefined) {
    return [{ ...base, targetId: `${identity.id}:prefix:${scope}`, handle: scope, action: 'revoke-prefix' }];
  }
  // Sessions cannot be ended one by one: the deny policy ends every session of the role issued before it.
  if (revocation === 'deny-sessions' && scope !== undefined) {
    return [{ ...base, targetId: `${identity.id}:${scope}`, handle: scope, action: 'deny-sessions' }];
  }
  const key = scopeKey(identity);
  const whole = { ...base, targetId: `${identity.id}:${key}`, handle: key, action: 'revoke' as const };
  const versions = selection.versions.map((version) => ({
    ...base,
    targetId: `${identity.id}:${version.handle}`,
    handle: version.handle,
    versionId: version.versionId,
    stage: version.stage,
    action: 'revoke' as const,
  }));
  if (live?.status === 'unlisted') {
    // Whatever it holds beyond the recorded versions is unknown and still live: failed, with why.
    // Not retryable by the engine, which revokes handles and cannot list: planning again lists.
    const failed: Target = {
      ...whole,
      reissue: false,
      outcome: 'failed',
      reason: listingFailedReason(identity, live.retryable),
      error: live.error,
      retryable: false,
    };
    return [failed, ...versions];
  }
  if (versions.length === 0) {
    return [
      {
        ...whole,
        // Nothing is revoked, so nothing is re-issued: a fresh credential would not end an unrecorded one.
        reissue: false,
        outcome: 'skipped',
        reason: live?.status === 'listed' ? NOTHING_LIVE : NO_LIVE_CREDENTIAL,
      },
    ];
  }
  return versions;
}

/**
 * Plans a campaign: one target per live credential version (pending, current, previous,
 * disabled) of each selected identity, recorded or found live in its provider (to adopt);
 * one `revoke-prefix` target for a vault-lease identity selected whole; one `deny-sessions`
 * target for an aws-role-session identity; a `failed` target for a selected identity whose
 * provider could not be listed (beside its recorded versions); a `skipped` target for a
 * selected identity with nothing live. Targets are deduplicated by targetId (the first wins)
 * and sorted.
 *
 * @throws ValidationError for an invalid selector, incident, id, requester or time.
 */
export function planCampaign(input: PlanInput): Plan {
  const selectors = parseSelectors(input.selectors);
  const identityTerms = identityTermsOf(selectors);
  const seen = new Set<string>();
  const targets: Target[] = [];
  const adopt: CredentialVersion[] = [];
  for (const subject of input.subjects) {
    // Unlisted, version terms cannot be judged on what is live: the identity terms decide.
    const selection =
      select(selectors, subject) ??
      (subject.live?.status === 'unlisted' && select(identityTerms, { ...subject, versions: [] })
        ? { whole: false, versions: [] }
        : undefined);
    if (!selection) continue;
    const reissue = input.reissue && canReissue(subject.identity);
    const toAdopt = new Map((subject.adopted ?? []).map((version) => [version.versionId, version]));
    for (const target of targetsOf(subject.identity, selection, reissue, subject.live)) {
      if (seen.has(target.targetId)) continue;
      seen.add(target.targetId);
      targets.push(target);
      const adopted = target.versionId === undefined ? undefined : toAdopt.get(target.versionId);
      if (adopted) adopt.push(adopted);
    }
  }
  targets.sort(byKindIdentityHandle);
  const batched = assignBatches(targets, TARGETS_PER_BATCH, input.firstBatch);

  const candidate = {
    campaignId: input.campaignId,
    incident: input.incident,
    selectors: input.selectors.map((text) => text.trim()),
    requestedBy: input.requestedBy,
    createdAt: input.now,
    status: 'planned',
    reissue: input.reissue,
    dryRun: input.dryRun ?? false,
    counts: summarize(batched),
  };
  const parsed = CampaignSchema.safeParse(candidate, REPORTING);
  if (!parsed.success) {
    const problems = toProblems(parsed.error.issues).map((p) => `${p.path.join('.')}: ${p.message}`);
    throw new ValidationError(`campaign: ${problems.join('; ')}`);
  }
  return { campaign: parsed.data, targets: batched, summary: summaryOf(batched), adopt };
}

/** What a dry run prints of `targets` (one plan's, or the parts of one campaign planned in parts). */
export function summaryOf(targets: readonly Target[]): PlanSummary {
  const sorted = [...targets].sort(byKindIdentityHandle);
  const reissue = [...new Set(sorted.filter((t) => t.reissue).map((t) => t.identityId))].sort(compareText);
  return { counts: summarize(sorted), targets: sorted, reissue };
}

/** The number after the highest batch of `targets`: where a later part's batches begin. */
export const nextBatch = (targets: readonly Target[]): number =>
  targets.reduce((next, target) => (target.batch === undefined ? next : Math.max(next, target.batch + 1)), 0);

const zeroOutcomes = (): OutcomeCounts => ({
  pending: 0,
  revoked: 0,
  'already-revoked': 0,
  skipped: 0,
  failed: 0,
});

/** Counts targets by outcome, overall and per kind. */
/** The id of a target's identity: what precedes the first colon of the target's id (an identity id has none). */
export const identityIdOf = (targetId: string): string => targetId.split(':', 1)[0] ?? targetId;

export function summarize(targets: readonly Target[]): CampaignCounts {
  const byOutcome = zeroOutcomes();
  const byKind: Partial<Record<IdentityKind, OutcomeCounts & { total: number }>> = {};
  for (const target of targets) {
    byOutcome[target.outcome] += 1;
    const kind = byKind[target.kind] ?? { total: 0, ...zeroOutcomes() };
    byKind[target.kind] = kind;
    kind.total += 1;
    kind[target.outcome] += 1;
  }
  return { total: targets.length, byOutcome, byKind };
}

/** Whether every target has a final outcome (none pending). */
export const isFinished = (targets: readonly Target[]): boolean =>
  targets.every((target) => target.outcome !== 'pending');

/**
 * The next targets for the engine to work on, at most `limit`: pending ones first, then
 * failed ones that may succeed on another try and have attempts left, each in list order.
 */
export function nextTargets(
  targets: readonly Target[],
  limit: number,
  options: { maxAttempts?: number } = {},
): Target[] {
  if (limit <= 0) return [];
  const maxAttempts = options.maxAttempts ?? 5;
  const pending = targets.filter((target) => target.outcome === 'pending');
  const retry = targets.filter(
    (target) => target.outcome === 'failed' && target.retryable === true && target.attempts < maxAttempts,
  );
  return [...pending, ...retry].slice(0, limit);
}

/** Time from campaign start to each target's revocation, for the report. */
export interface TimeToRevoke {
  /** Targets measured: revoked or already-revoked, with a finish time. */
  count: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

/** The nearest-rank percentile of sorted values: always an observed value, never interpolated. */
const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;

/**
 * p50 / p95 / max of `finishedAt − campaignStartedAt` over revoked and already-revoked
 * targets (nearest-rank percentiles); undefined when none has finished.
 */
export function timeToRevoke(
  targets: readonly Target[],
  campaignStartedAt: string,
): TimeToRevoke | undefined {
  const start = Date.parse(campaignStartedAt);
  const durations = targets
    .filter((t) => (t.outcome === 'revoked' || t.outcome === 'already-revoked') && t.finishedAt !== undefined)
    .map((t) => Math.max(0, Date.parse(t.finishedAt ?? '') - start))
    .sort((a, b) => a - b);
  if (durations.length === 0) return undefined;
  return {
    count: durations.length,
    p50Ms: percentile(durations, 50),
    p95Ms: percentile(durations, 95),
    maxMs: durations.at(-1) ?? 0,
  };
}
