/**
 * The revocation state machine's steps as use cases (Step Functions in AWS, the local
 * runner on a laptop; functions/handlers/revocation.ts is their Lambda entry): the events
 * each step receives, which targets the plan step lists, and what a revoke-batch worker
 * answers for its batch.
 */
import * as z from 'zod';
import { summarize, type Target } from './campaign.ts';
import {
  type CampaignBookkeeping,
  type CampaignDeps,
  type RunCampaignOptions,
  runCampaign,
  startCampaign,
} from './campaign-engine.ts';
import { KeywardenError, NotFoundError, ValidationError } from './errors.ts';

const CampaignIdSchema = z.string().min(1).max(200);

/**
 * The state machine's input, passed on to the plan and report steps. `retryFailed` (a
 * resume) also gives the retryable failures of earlier runs a fresh budget of tries.
 */
export const CampaignEventSchema = z.object({
  campaignId: CampaignIdSchema,
  retryFailed: z.boolean().optional(),
});
export type CampaignEvent = z.infer<typeof CampaignEventSchema>;

/** One batch of the Distributed Map (ItemReader items, ItemBatcher `BatchInput`). */
export const RevokeBatchEventSchema = z.object({
  Items: z.array(z.object({ targetId: z.string().min(1) })).min(1),
  BatchInput: z.object({ campaignId: CampaignIdSchema, retryFailed: z.boolean().optional() }),
});
export type RevokeBatchEvent = z.infer<typeof RevokeBatchEventSchema>;

/** Where the plan step wrote the targets: what the Distributed Map's S3 item reader reads. */
export interface PlanResult {
  bucket: string;
  key: string;
  count: number;
  /** Passed on to every batch (the Map's BatchInput), so a resume retries retryable failures. */
  retryFailed: boolean;
}

/** The key of a campaign's target list in the report bucket. */
export const targetsKey = (campaignId: string): string => `campaigns/${campaignId}/targets.json`;

/** Thrown by a worker whose targets are still pending when it stops: Step Functions retries the batch. */
export class BatchUnfinishedError extends KeywardenError {
  override readonly name = 'BatchUnfinishedError';
  constructor(message: string) {
    super(message, { retryable: true });
  }
}

/**
 * The plan step: starts a planned campaign (so the workers, which read only their batch, find
 * it running) and lists the ids of its targets still to work on (pending, and with
 * `retryFailed` the retryable failures too), in the order of their batches (`Target.batch`).
 *
 * @throws NotFoundError for an unknown campaign, ValidationError for a dry run.
 */
export async function targetsToWork(
  book: CampaignBookkeeping,
  { campaignId, retryFailed = false }: CampaignEvent,
): Promise<{ targetId: string }[]> {
  const { campaigns } = book;
  const campaign = await campaigns.getCampaign(campaignId);
  if (!campaign) {
    throw new NotFoundError(
      `no campaign ${JSON.stringify(campaignId)}: plan it first with keywarden revoke, then start the state machine with its id`,
    );
  }
  if (campaign.dryRun) {
    throw new ValidationError(
      `campaign ${campaignId} is a dry run: there is nothing to revoke; plan it again without --dry-run`,
    );
  }
  const toWork = (target: Target) =>
    target.outcome === 'pending' || (retryFailed && target.outcome === 'failed' && target.retryable === true);
  // In batch order: on a first run the Map's cut of 25 is then the batches as planned, so each
  // worker leases one batch; targets planned before batches were stored follow, by identity.
  const order = (t: Target) => t.batch ?? Number.MAX_SAFE_INTEGER;
  const targets = await campaigns.listTargets(campaignId);
  if (campaign.status === 'planned') await startCampaign(book, campaignId, targets);
  return targets
    .filter(toWork)
    .sort((a, b) => order(a) - order(b) || a.identityId.localeCompare(b.identityId))
    .map(({ targetId }) => ({ targetId }));
}

/** What a worker reports for its batch; the campaign's own counts are in the store. */
export interface RevokeBatchResult {
  campaignId: string;
  /** Outcomes of this batch's targets, by outcome. */
  outcomes: Record<string, number>;
  /** Targets the whole run settled, this batch's and others'. */
  settled: number;
}

export interface RevokeBatchOptions extends Pick<RunCampaignOptions, 'limitFor' | 'onOutcome' | 'leaseMs'> {
  /** Stops claiming targets; those in flight finish and are checkpointed. */
  signal: AbortSignal;
}

/**
 * The revoke-batch worker: runs the campaign limited to its batch. The engine's batch leases
 * keep a retried or duplicated batch from ever working on one target twice.
 *
 * @throws BatchUnfinishedError when targets of the batch are still pending after the run stopped.
 */
export async function revokeBatch(
  deps: CampaignDeps,
  { Items, BatchInput }: RevokeBatchEvent,
  options: RevokeBatchOptions,
): Promise<RevokeBatchResult> {
  const targetIds = Items.map((item) => item.targetId);
  const run = await runCampaign(deps, BatchInput.campaignId, {
    limitFor: options.limitFor,
    targetIds,
    retryFailed: BatchInput.retryFailed ?? false,
    signal: options.signal,
    ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
  });
  const wanted = new Set(targetIds);
  const mine = run.targets.filter((target) => wanted.has(target.targetId));
  const counts = summarize(mine).byOutcome;
  if (counts.pending > 0) {
    throw new BatchUnfinishedError(
      `campaign ${BatchInput.campaignId}: ${counts.pending} of this batch's ${mine.length} targets are still pending after the run stopped; retrying the batch resumes them`,
    );
  }
  return { campaignId: BatchInput.campaignId, outcomes: counts, settled: run.settled };
}
