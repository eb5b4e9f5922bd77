/**
 * The local runtime of the revocation state machine: what Step Functions does in AWS, done
 * in process against the local stack, calling the very same three handlers
 * (functions/handlers/revocation.ts):
 *
 * 1. plan: the target list goes to a bucket in moto (`keywarden-local-reports` unless
 *    told otherwise, created on first use), as the Distributed Map's S3 item reader expects;
 * 2. the list is read back and cut into batches of {@link REVOKE_BATCH_SIZE}, run at most
 *    {@link batchConcurrency} at once (the same derivation as the CDK construct), each
 *    through the revoke-batch worker; a batch whose worker throws `BatchUnfinishedError` is
 *    retried as the state machine's Retry would ({@link BATCH_RETRY}: bounded, backing off);
 *    any other error fails the run, as a failed item fails the Distributed Map;
 * 3. report: a campaign no batch had to work on (zero items) is closed, then the
 *    post-incident report (locally to `./reports`, or `KEYWARDEN_REPORTS_DIR`).
 *
 * In AWS each worker gets its share of the account budget in its own Lambda; here the
 * workers share one set of per-provider limiters holding the whole budget, the same total.
 */
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import * as z from 'zod';
import { awsFailure } from '../adapters/aws/clients.ts';
import { continuePlanning, type PlannedPart, partsAfter } from '../adapters/campaign-launcher.ts';
import { providerLimiters, type RateLimits, rateLimitsFromEnv } from '../adapters/rate-limits.ts';
import type { ReportLocations } from '../adapters/report-writer.ts';
import type { Services } from '../adapters/wiring.ts';
import type { ReissueRecord, Target } from '../core/campaign.ts';
import { KeywardenError, NotFoundError } from '../core/errors.ts';
import type { StoredCampaign } from '../core/ports.ts';
import {
  BATCH_RETRY,
  type BatchRetryPolicy,
  batchConcurrency,
  batchRetryDelayMs,
  REVOKE_BATCH_SIZE,
} from '../core/revocation-batching.ts';
import { BatchUnfinishedError, type PlanResult } from '../core/revocation-steps.ts';
import { makePlanHandler, makeReportHandler, makeRevokeBatchHandler } from '../handlers/revocation.ts';

/** The moto bucket the local plan step writes target lists to. */
export const LOCAL_REPORT_BUCKET = 'keywarden-local-reports';

/** What the Distributed Map's item reader reads: the plan step's JSON array. */
const ItemsSchema = z.array(z.object({ targetId: z.string().min(1) }));

export interface RevocationRunnerOptions {
  services: Services;
  /** Who runs the campaign, in the audit trail (`cli:alice`, `slack:U123`). */
  actor: string;
  /** The bucket the plan step writes to. @default {@link LOCAL_REPORT_BUCKET} */
  bucket?: string;
  /** The account-wide budget per provider service. @default rateLimitsFromEnv() */
  limits?: RateLimits;
  /** Retries of an unfinished batch. @default {@link BATCH_RETRY} */
  retry?: BatchRetryPolicy;
  /** Waits between retries; injected so tests need not wait Step Functions' seconds. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * How long a batch lease lasts unless renewed: what a resume after a hard kill waits for
   * the dead run's batches at most. Shorter costs a renewal per half of it a batch takes.
   * @default the engine's (30 s)
   */
  leaseMs?: number;
}

export interface RunOptions {
  /** A resume: retryable failures of earlier runs get a fresh budget of tries. */
  retryFailed?: boolean;
  /** Aborting stops the run after the targets in flight; no batch is retried, no report written. */
  signal?: AbortSignal;
  /** Called as each target settles, with the campaign's progress. */
  onOutcome?: (target: Target, progress: { done: number; total: number }) => void;
  /**
   * The second part of a campaign this process is still planning (planAndStoreCampaign's
   * `inParts`), each part's `next` the one after it: the run works the first part's targets at
   * once and each later part's as soon as it is stored, and reports once all are settled. When a
   * part rejects, the parts before it are still run to the end, no report is written and the run
   * throws its error (`keywarden revoke resume` plans the rest). Without it, a campaign whose planning is open (its planner died) is planned
   * to the end first.
   */
  rest?: Promise<PlannedPart>;
}

/** What one run did, and the campaign as the store has it afterwards. */
export interface RevocationRunResult {
  campaign: StoredCampaign;
  targets: Target[];
  reissues: ReissueRecord[];
  /** Where the plan step wrote the targets. */
  plan: PlanResult;
  /** Batches the targets were cut into. */
  batches: number;
  /** Batch retries after `BatchUnfinishedError`. */
  retries: number;
  /** Workers at once. */
  maxConcurrency: number;
  /** Where the report went; absent when the run stopped before the end. */
  report?: ReportLocations;
  /** Whether the run stopped (signal) with targets still pending. */
  stopped: boolean;
}

/** A failure of one batch that the runner does not retry: the run (the "execution") fails. */
export class RevocationRunError extends KeywardenError {
  override readonly name = 'RevocationRunError';
}

/** Drives plan → revoke batches → report for stored campaigns, on the local stack. */
export class LocalRevocationRunner {
  readonly #services: Services;
  readonly #actor: string;
  readonly #bucket: string;
  readonly #limits: RateLimits;
  readonly #retry: BatchRetryPolicy;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #leaseMs: number | undefined;
  #bucketReady: Promise<void> | undefined;

  constructor(options: RevocationRunnerOptions) {
    this.#services = options.services;
    this.#actor = options.actor;
    this.#bucket = options.bucket ?? LOCAL_REPORT_BUCKET;
    this.#limits = options.limits ?? rateLimitsFromEnv();
    this.#retry = options.retry ?? BATCH_RETRY;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#leaseMs = options.leaseMs;
  }

  /** Workers at once for this runner's budget: what the CDK construct derives for the same budget. */
  get maxConcurrency(): number {
    const limits = this.#limits;
    return batchConcurrency([limits.iam, limits['secrets-manager'], limits.vault]);
  }

  /**
   * Runs (or resumes) a stored campaign to the end, or until `signal` aborts.
   *
   * @throws NotFoundError for an unknown campaign; ValidationError for a dry run;
   *   RevocationRunError when a batch fails for another reason than being unfinished, or
   *   stays unfinished after every retry (the campaign can be resumed).
   */
  async run(campaignId: string, options: RunOptions = {}): Promise<RevocationRunResult> {
    const services = this.#services;
    const { store } = services;
    const retryFailed = options.retryFailed ?? false;
    await this.#ensureBucket();

    const stored = await store.getCampaign(campaignId);
    if (!stored) {
      throw new NotFoundError(
        `no campaign ${JSON.stringify(campaignId)}; see keywarden revoke status for the campaigns`,
      );
    }
    if (stored.planning && !options.rest) {
      await continuePlanning({ ...services, campaigns: store }, stored, this.#actor);
    }
    // The campaign's progress across all batches: targets settled before this run count as done.
    const before = await store.listTargets(campaignId);
    const open = new Set(before.filter((t) => t.outcome === 'pending').map((t) => t.targetId));
    const progress = { done: before.length - open.size, total: before.length };
    const counted = new Set(before.map((t) => t.targetId));
    /** Counts in the progress the targets of a part stored since `before` was read (a campaign planned in parts). */
    const count = (ids: Iterable<string>) => {
      for (const id of ids) {
        if (counted.has(id)) continue;
        counted.add(id);
        open.add(id);
        progress.total += 1;
      }
    };

    // 1. plan
    const planStep = makePlanHandler({
      book: { campaigns: store, audit: store, clock: services.clock, actor: this.#actor },
      putObject: services.putObject,
      bucket: this.#bucket,
    });
    const plan = await planStep({ campaignId, retryFailed });
    const items = await this.#readItems(plan);
    count(items.map((item) => item.targetId));

    // 2. the Distributed Map
    const maxConcurrency = this.maxConcurrency;
    const { limitFor } = providerLimiters(this.#limits);
    const failed = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, failed.signal]) : failed.signal;
    const worker = makeRevokeBatchHandler({
      campaign: services.campaignDeps(this.#actor),
      limitFor,
      signal,
      ...(this.#leaseMs === undefined ? {} : { leaseMs: this.#leaseMs }),
      onOutcome: (target) => {
        if (open.delete(target.targetId)) progress.done += 1;
        options.onOutcome?.(target, { ...progress });
      },
    });
    const batches: { targetId: string }[][] = [];
    const cut = (list: readonly { targetId: string }[]) => {
      const cuts: { targetId: string }[][] = [];
      for (let at = 0; at < list.length; at += REVOKE_BATCH_SIZE)
        cuts.push(list.slice(at, at + REVOKE_BATCH_SIZE));
      batches.push(...cuts);
      return cuts;
    };
    let retries = 0;
    let stopped = false;
    const slots = pLimit(maxConcurrency);
    const runBatch = async (batch: { targetId: string }[], index: number): Promise<void> => {
      for (let attempt = 0; ; attempt += 1) {
        if (signal.aborted) {
          stopped = true;
          return;
        }
        try {
          await worker({ Items: batch, BatchInput: { campaignId, retryFailed } });
          return;
        } catch (error) {
          if (!(error instanceof BatchUnfinishedError)) throw error;
          // Stopped by the caller (or by another batch's failure): not something a retry fixes.
          if (signal.aborted) {
            stopped = true;
            return;
          }
          if (attempt >= this.#retry.maxAttempts) {
            throw new RevocationRunError(
              `batch ${index + 1} of ${batches.length} of campaign ${campaignId} is still unfinished after ${attempt + 1} tries (${error.message}); continue with keywarden revoke resume ${campaignId}`,
              { cause: error, retryable: true },
            );
          }
          retries += 1;
          await this.#sleep(batchRetryDelayMs(attempt + 1, this.#retry));
        }
      }
    };
    const runAll = (list: readonly { targetId: string }[]) =>
      Promise.allSettled(
        cut(list).map((batch) =>
          slots(() =>
            runBatch(batch, batches.indexOf(batch)).catch((error: unknown) => {
              // As a failed item fails the Distributed Map: the other batches stop after their targets in flight.
              failed.abort();
              throw error;
            }),
          ),
        ),
      );
    let planningFailure: unknown;
    const given = new Set(items.map((item) => item.targetId));
    const [results, later] = await Promise.all([
      runAll(items),
      options.rest
        ? this.#followParts(
            options.rest,
            async ({ settled }) => {
              // The plan step again, over the whole campaign now: its targets in batch order, less those given.
              const more = (await this.#readItems(await planStep({ campaignId, retryFailed }))).filter(
                (item) => !given.has(item.targetId),
              );
              for (const item of more) given.add(item.targetId);
              count(more.map((item) => item.targetId));
              progress.done += settled;
              progress.total += settled;
              return more;
            },
            runAll,
            (error) => {
              planningFailure = error;
            },
          )
        : [],
    ]);
    const failure = [...results, ...later].find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) {
      const error = failure.reason as unknown;
      if (error instanceof KeywardenError) throw error;
      throw new RevocationRunError(
        `a revoke batch of campaign ${campaignId} failed: ${error instanceof Error ? error.message : String(error)}; fix the cause, then keywarden revoke resume ${campaignId}`,
        { cause: error },
      );
    }

    if (planningFailure !== undefined) {
      throw new RevocationRunError(
        `campaign ${campaignId}: its first part ran, but the rest of it could not be planned (${planningFailure instanceof Error ? planningFailure.message : String(planningFailure)}); keywarden revoke resume ${campaignId} plans and runs the rest`,
        { cause: planningFailure, retryable: true },
      );
    }

    // 3. report, once nothing is pending (a stopped run leaves it to the resume): every batch
    // that was not stopped returned with all its targets settled, and every pending target was in one.
    const report = stopped
      ? undefined
      : await makeReportHandler({ services, actor: this.#actor })({ campaignId });

    const [campaign, targets, reissues] = await Promise.all([
      store.getCampaign(campaignId),
      store.listTargets(campaignId),
      store.listReissues(campaignId),
    ]);
    if (!campaign)
      throw new NotFoundError(`campaign ${campaignId} disappeared from the store during its run`);
    return {
      campaign,
      targets,
      reissues,
      plan,
      batches: batches.length,
      retries,
      maxConcurrency,
      ...(report ? { report } : {}),
      stopped,
    };
  }

  /**
   * Works each later part of a campaign this process plans in parts as it is stored (`part.next`
   * after `part`), beside the parts before it; a part that could not be planned ends the chain
   * (`failed`), the parts before it run to the end.
   */
  async #followParts(
    rest: Promise<PlannedPart>,
    itemsOf: (part: PlannedPart) => Promise<{ targetId: string }[]>,
    runAll: (items: readonly { targetId: string }[]) => Promise<PromiseSettledResult<void>[]>,
    failed: (error: unknown) => void,
  ): Promise<PromiseSettledResult<void>[]> {
    const running: Promise<PromiseSettledResult<void>[]>[] = [];
    try {
      for await (const part of partsAfter(rest)) running.push(runAll(await itemsOf(part)));
    } catch (error) {
      failed(error);
    }
    return (await Promise.all(running)).flat();
  }

  /** The plan step's bucket exists in moto: created on first use (moto forgets it on restart). */
  #ensureBucket(): Promise<void> {
    this.#bucketReady ??= ensureBucket(this.#services.aws.s3, this.#bucket).catch((error: unknown) => {
      this.#bucketReady = undefined;
      throw error;
    });
    return this.#bucketReady;
  }

  async #readItems(plan: PlanResult): Promise<{ targetId: string }[]> {
    try {
      const object = await this.#services.aws.s3.send(
        new GetObjectCommand({ Bucket: plan.bucket, Key: plan.key }),
      );
      return ItemsSchema.parse(JSON.parse((await object.Body?.transformToString()) ?? '[]'));
    } catch (error) {
      if (error instanceof z.ZodError || error instanceof SyntaxError) {
        throw new RevocationRunError(
          `s3://${plan.bucket}/${plan.key}: expected the plan step's JSON array of {targetId}, got something else (${error.message})`,
        );
      }
      throw awsFailure(`reading the target list s3://${plan.bucket}/${plan.key}`, error);
    }
  }
}

/** Creates `bucket` unless it exists. */
export async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return;
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== 404) throw awsFailure(`looking for the local bucket ${bucket}`, error);
  }
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    const name = (error as { name?: string }).name;
    // Another process created it first.
    if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return;
    throw awsFailure(`creating the local bucket ${bucket}`, error);
  }
}
