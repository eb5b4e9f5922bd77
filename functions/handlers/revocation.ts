/**
 * The three steps of the revocation state machine (Step Functions: plan → Distributed Map of
 * revoke batches → report), over a campaign the CLI or the API has already planned and stored.
 * The local runtime (functions/local/revocation-runner.ts) drives the very same three.
 *
 * - `planHandler` writes the ids of the campaign's targets still to work on (pending, and
 *   with `retryFailed` the retryable failures too) to the report bucket
 *   (`campaigns/<id>/targets.json`, a JSON array of `{ targetId }`, the targets of one
 *   identity side by side), which the Distributed Map reads as its items.
 * - `revokeBatchHandler` is the Map's worker: it runs the campaign limited to its batch
 *   (`targetIds`). The engine's per-target conditional claims keep a retried or duplicated
 *   batch from ever working on one target twice. A worker that stops (its Lambda is about to
 *   time out) with targets of its batch pending throws `BatchUnfinishedError`, which the
 *   state machine retries.
 * - `reportHandler` publishes the post-incident report of the campaign as it stands.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { publishCampaignReport } from '../adapters/campaign-report.ts';
import { providerLimiters, rateLimitsFromEnv } from '../adapters/rate-limits.ts';
import type { ReportLocations } from '../adapters/report-writer.ts';
import { type Services, wire } from '../adapters/wiring.ts';
import { summarize, type Target } from '../core/campaign.ts';
import { type CampaignDeps, type RunCampaignOptions, runCampaign } from '../core/campaign-engine.ts';
import { KeywardenError, NotFoundError, ValidationError } from '../core/errors.ts';
import type { CampaignStore } from '../core/ports.ts';
import { coldStart, loadLambdaConfig } from './lambda-config.ts';

/** Who runs the campaign, in the audit trail. */
const ACTOR = 'stepfunctions:revocation';

/** How long before the Lambda timeout a worker stops claiming targets, so in-flight ones checkpoint. */
const STOP_BEFORE_TIMEOUT_MS = 60_000;

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

/** An event checked against its schema; a wrong one names each bad field and what was expected. */
function parseEvent<S extends z.ZodType>(schema: S, event: unknown, expected: string): z.infer<S> {
  const parsed = schema.safeParse(event);
  if (parsed.success) return parsed.data;
  throw new ValidationError(
    `expected ${expected}, got ${parsed.error.issues
      .map((issue) => `${issue.path.join('.') || '(event)'}: ${issue.message}`)
      .join('; ')}`,
  );
}

export interface PlanDeps {
  campaigns: Pick<CampaignStore, 'getCampaign' | 'listTargets'>;
  s3: S3Client;
  /** The report bucket; the plan is written under `campaigns/`. */
  bucket: string;
}

/** The plan step with its dependencies given, so tests pass real adapters on the local stack. */
export function makePlanHandler(deps: PlanDeps) {
  return async (event: unknown): Promise<PlanResult> => {
    const { campaignId, retryFailed = false } = parseEvent(
      CampaignEventSchema,
      event,
      'a campaign event {campaignId, retryFailed?}',
    );
    const campaign = await deps.campaigns.getCampaign(campaignId);
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
      target.outcome === 'pending' ||
      (retryFailed && target.outcome === 'failed' && target.retryable === true);
    // The targets of one identity side by side, so a batch boundary splits as few identities as it can.
    const pending = (await deps.campaigns.listTargets(campaignId))
      .filter(toWork)
      .sort((a, b) => a.identityId.localeCompare(b.identityId))
      .map(({ targetId }) => ({ targetId }));
    const key = targetsKey(campaignId);
    // No ServerSideEncryption header: the bucket's default (its own KMS key) applies.
    await deps.s3.send(
      new PutObjectCommand({
        Bucket: deps.bucket,
        Key: key,
        Body: JSON.stringify(pending),
        ContentType: 'application/json',
        CacheControl: 'no-store',
      }),
    );
    return { bucket: deps.bucket, key, count: pending.length, retryFailed };
  };
}

export interface RevokeBatchDeps {
  campaign: CampaignDeps;
  limitFor: RunCampaignOptions['limitFor'];
  /** The local runtime's stop (Ctrl-C): in-flight targets finish and are checkpointed. */
  signal?: AbortSignal;
  /** The local runtime's live progress: called as each target of the batch settles. */
  onOutcome?: (target: Target) => void;
}

/** What a worker reports for its batch; the campaign's own counts are in the store. */
export interface RevokeBatchResult {
  campaignId: string;
  /** Outcomes of this batch's targets, by outcome. */
  outcomes: Record<string, number>;
  /** Targets the whole run settled, this batch's and others'. */
  settled: number;
}

/** The revoke-batch worker with its dependencies given. */
export function makeRevokeBatchHandler(deps: RevokeBatchDeps) {
  return async (
    event: unknown,
    context?: Pick<Context, 'getRemainingTimeInMillis'>,
  ): Promise<RevokeBatchResult> => {
    const { Items, BatchInput } = parseEvent(
      RevokeBatchEventSchema,
      event,
      'a Distributed Map batch {Items: [{targetId}], BatchInput: {campaignId}}',
    );
    const stop = new AbortController();
    const remaining = context?.getRemainingTimeInMillis();
    const timer =
      remaining === undefined
        ? undefined
        : setTimeout(() => stop.abort(), Math.max(0, remaining - STOP_BEFORE_TIMEOUT_MS));
    try {
      const targetIds = Items.map((item) => item.targetId);
      const run = await runCampaign(deps.campaign, BatchInput.campaignId, {
        limitFor: deps.limitFor,
        targetIds,
        retryFailed: BatchInput.retryFailed ?? false,
        signal: deps.signal ? AbortSignal.any([stop.signal, deps.signal]) : stop.signal,
        ...(deps.onOutcome ? { onOutcome: deps.onOutcome } : {}),
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
    } finally {
      clearTimeout(timer);
    }
  };
}

export interface ReportDeps {
  services: Services;
}

/** The report step with its dependencies given. */
export function makeReportHandler(deps: ReportDeps) {
  return async (event: unknown): Promise<ReportLocations> => {
    const { campaignId } = parseEvent(CampaignEventSchema, event, 'a campaign event {campaignId}');
    const { store } = deps.services;
    const campaign = await store.getCampaign(campaignId);
    if (!campaign) throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)} to report on`);
    // The campaign as the store has it: the report step never revokes anything itself.
    const [targets, reissues] = await Promise.all([
      store.listTargets(campaignId),
      store.listReissues(campaignId),
    ]);
    return publishCampaignReport(deps.services, {
      campaign,
      targets,
      reissues,
      settled: 0,
      stopped: targets.some((target) => target.outcome === 'pending'),
    });
  };
}

const services = coldStart(async () => wire(await loadLambdaConfig()));

const readyPlan = coldStart(async () => {
  const wired = await services();
  const bucket = wired.config.reportBucket;
  if (!bucket) {
    throw new KeywardenError(
      'environment variable KEYWARDEN_REPORT_BUCKET is not set; the plan step writes the targets to the report bucket the CDK stack (infra/) gives this function',
    );
  }
  return makePlanHandler({ campaigns: wired.store, s3: wired.aws.s3, bucket });
});

const readyRevokeBatch = coldStart(async () => {
  const wired = await services();
  return makeRevokeBatchHandler({
    campaign: wired.campaignDeps(ACTOR),
    limitFor: providerLimiters(rateLimitsFromEnv()).limitFor,
  });
});

const readyReport = coldStart(async () => makeReportHandler({ services: await services() }));

/** The Lambda entry point of the plan step. */
export const planHandler = async (event: unknown): Promise<PlanResult> => (await readyPlan())(event);

/** The Lambda entry point of the Distributed Map's worker. */
export const revokeBatchHandler = async (event: unknown, context: Context): Promise<RevokeBatchResult> =>
  (await readyRevokeBatch())(event, context);

/** The Lambda entry point of the report step. */
export const reportHandler = async (event: unknown): Promise<ReportLocations> => (await readyReport())(event);
