/**
 * The three steps of the revocation state machine (Step Functions: plan → Distributed Map of
 * revoke batches → report), over a campaign the CLI or the API has already planned and stored.
 * The local runtime (functions/local/revocation-runner.ts) drives the very same three; their
 * logic is in functions/core/revocation-steps.ts. Each step is its own Lambda function with its
 * own entry file (revocation-plan.ts, revocation-batch.ts, revocation-report.ts), so that each
 * bundle holds only its step's clients: S3 for the plan and the report, the providers' clients
 * and the role-deny door for the worker.
 *
 * - The plan step writes the ids of the campaign's targets still to work on to the report
 *   bucket (`campaigns/<id>/targets.json`, a JSON array of `{ targetId }`), which the
 *   Distributed Map reads as its items.
 * - The revoke-batch step is the Map's worker: it runs the campaign limited to its batch. A
 *   worker that stops (its Lambda is about to time out) with targets of its batch pending
 *   throws `BatchUnfinishedError`, which the state machine retries.
 * - The report step closes a campaign no batch had to work on (every target settled at
 *   planning: the Map ran zero items, so nothing moved it from `planned`), audits the
 *   re-issues of a containment campaign (`exposure.reissued`, in AWS), then publishes the
 *   post-incident report of the campaign as it stands.
 */

import type { PutObject } from '../adapters/aws/s3-put-object.ts';
import { type CampaignReportDeps, publishCampaignReport } from '../adapters/campaign-report.ts';
import type { ReportLocations } from '../adapters/report-writer.ts';
import type { Target } from '../core/campaign.ts';
import {
  type CampaignBookkeeping,
  type CampaignDeps,
  closeCampaign,
  type RunCampaignOptions,
} from '../core/campaign-engine.ts';
import { exposureReissuedEvents, isContainmentIncident } from '../core/containment-reissue.ts';
import { ValidationError } from '../core/errors.ts';
import type { AuditLog, CampaignStore } from '../core/ports.ts';
import {
  CampaignEventSchema,
  type PlanResult,
  RevokeBatchEventSchema,
  type RevokeBatchResult,
  revokeBatch,
  targetsKey,
  targetsToWork,
} from '../core/revocation-steps.ts';
import { wrap } from './wrap.ts';

/** Who runs the campaign, in the audit trail. */
export const ACTOR = 'stepfunctions:revocation';

/** How long before the Lambda timeout a worker stops claiming targets, so in-flight ones checkpoint. */
const STOP_BEFORE_TIMEOUT_MS = 60_000;

export interface PlanDeps {
  /** The campaign's store, audit log, clock and actor: the plan step starts a planned campaign. */
  book: CampaignBookkeeping;
  /** S3 PutObject (a signed `fetch`: no S3 client in the plan's bundle). */
  putObject: PutObject;
  /** The report bucket; the plan is written under `campaigns/`. */
  bucket: string;
}

/** The plan step with its dependencies given, so tests pass real adapters on the local stack. */
export function makePlanHandler(deps: PlanDeps) {
  return wrap(
    { event: CampaignEventSchema, expected: 'a campaign event {campaignId, retryFailed?}' },
    async (event): Promise<PlanResult> => {
      const pending = await targetsToWork(deps.book, event);
      const key = targetsKey(event.campaignId);
      // No encryption header: the bucket's default (its own KMS key) applies.
      await deps.putObject({
        bucket: deps.bucket,
        key,
        body: JSON.stringify(pending),
        contentType: 'application/json',
        cacheControl: 'no-store',
        what: "the campaign's targets",
      });
      return { bucket: deps.bucket, key, count: pending.length, retryFailed: event.retryFailed ?? false };
    },
  );
}

export interface RevokeBatchDeps {
  campaign: CampaignDeps;
  limitFor: RunCampaignOptions['limitFor'];
  /** The local runtime's stop (Ctrl-C): in-flight targets finish and are checkpointed. */
  signal?: AbortSignal;
  /** The local runtime's live progress: called as each target of the batch settles. */
  onOutcome?: (target: Target) => void;
  /** How long a batch lease lasts unless renewed (the engine's `leaseMs`). */
  leaseMs?: number;
}

/** The revoke-batch worker with its dependencies given; it stops a minute before the Lambda timeout. */
export function makeRevokeBatchHandler(deps: RevokeBatchDeps) {
  return wrap(
    {
      event: RevokeBatchEventSchema,
      expected: 'a Distributed Map batch {Items: [{targetId}], BatchInput: {campaignId}}',
    },
    async (event, context): Promise<RevokeBatchResult> => {
      const stop = new AbortController();
      const remaining = context?.getRemainingTimeInMillis?.();
      const timer =
        remaining === undefined
          ? undefined
          : setTimeout(() => stop.abort(), Math.max(0, remaining - STOP_BEFORE_TIMEOUT_MS));
      try {
        return await revokeBatch(deps.campaign, event, {
          limitFor: deps.limitFor,
          signal: deps.signal ? AbortSignal.any([stop.signal, deps.signal]) : stop.signal,
          ...(deps.onOutcome ? { onOutcome: deps.onOutcome } : {}),
          ...(deps.leaseMs === undefined ? {} : { leaseMs: deps.leaseMs }),
        });
      } finally {
        clearTimeout(timer);
      }
    },
  );
}

export interface ReportDeps {
  services: CampaignReportDeps & {
    store: Pick<CampaignStore, 'getCampaign' | 'listTargets' | 'listReissues' | 'putCampaign'> &
      Pick<AuditLog, 'append' | 'appendMany' | 'recordsSince'>;
  };
  /** Who closes a campaign that had nothing left to run, in the audit trail. */
  actor: string;
  /**
   * Audits `exposure.reissued` for each identity a containment campaign re-issued (the deployed
   * state machine: the scanner that started the campaign has returned long before). The local
   * runner leaves it off: its containment waits for the run and audits the re-issue itself.
   * @default false
   */
  auditExposureReissues?: boolean | undefined;
}

/**
 * The report step with its dependencies given: never revoking; a campaign whose targets
 * were all settled at planning is closed first (core `closeCampaign`), then reported.
 */
export function makeReportHandler(deps: ReportDeps) {
  return wrap(
    { event: CampaignEventSchema, expected: 'a campaign event {campaignId}' },
    async ({ campaignId }): Promise<ReportLocations> => {
      const { store, clock } = deps.services;
      // Read once: closing (NotFoundError for an unknown campaign) and the report share them.
      const [targets, reissues] = await Promise.all([
        store.listTargets(campaignId),
        store.listReissues(campaignId),
      ]);
      const campaign = await closeCampaign(
        { campaigns: store, audit: store, clock, actor: deps.actor },
        campaignId,
        { targets, reissues },
      );
      if (campaign.planning) {
        // Its other services' targets are not planned yet: a report now would leave them out.
        throw new ValidationError(
          `campaign ${campaignId}: its planning is still open (only ${campaign.planning.stored.join(', ')} planned); expected a campaign planned to the end — keywarden revoke resume ${campaignId} plans the rest`,
        );
      }
      const stopped = targets.some((target) => target.outcome === 'pending');
      if (deps.auditExposureReissues && isContainmentIncident(campaign.incident)) {
        // Before the report, which shows the trail; read back to the campaign's start, so a
        // step run twice audits each re-issue once.
        const audited = await store.recordsSince(campaign.createdAt);
        const events = exposureReissuedEvents(campaign, reissues, audited);
        if (events.length > 0) await store.appendMany(events);
      }
      return publishCampaignReport(deps.services, { campaign, targets, reissues, settled: 0, stopped });
    },
  );
}
