/**
 * How the revocation state machine splits a campaign: targets per batch, batches at once,
 * and how a batch whose worker stopped early is tried again. One definition shared by the
 * CDK construct (infra/constructs/revocation.ts: the Distributed Map and its Retry) and the
 * local runtime (functions/local/revocation-runner.ts), so a laptop runs a campaign in the
 * same shape as AWS does.
 */
import { ValidationError } from './errors.ts';

/** Targets one revoke-batch worker is handed at once (the ItemBatcher's MaxItemsPerBatch). */
export const REVOKE_BATCH_SIZE = 25;

/** How an unfinished batch is tried again: Step Functions' Retry fields. */
export interface BatchRetryPolicy {
  /** Wait before the first retry. */
  readonly intervalSeconds: number;
  /** Tries after the first one. */
  readonly maxAttempts: number;
  /** Each wait is the previous one times this. */
  readonly backoffRate: number;
}

/** The Retry of a batch whose worker threw `BatchUnfinishedError` (Step Functions semantics). */
export const BATCH_RETRY: BatchRetryPolicy & { readonly error: 'BatchUnfinishedError' } = Object.freeze({
  /** The error name the retry matches. */
  error: 'BatchUnfinishedError',
  /** Wait before the first retry. */
  intervalSeconds: 5,
  /** Tries after the first one. */
  maxAttempts: 10,
  /** Each wait is the previous one times this. */
  backoffRate: 1.5,
});

/** The wait before retry `n` (1-based) of a batch, as Step Functions computes it. */
export const batchRetryDelayMs = (retry: number, policy: BatchRetryPolicy = BATCH_RETRY): number =>
  Math.round(policy.intervalSeconds * 1_000 * policy.backoffRate ** (retry - 1));

/** One provider service's budget: revocations in flight, and started per second. */
export interface ServiceBudget {
  readonly concurrency: number;
  readonly perSecond: number;
}

/**
 * Revoke-batch workers at once (the Distributed Map's MaxConcurrency) for an account-wide
 * budget. Each worker gets an equal share of every service's budget, so the total stays
 * inside it; hence at most the smallest concurrency or per-second figure, so every worker
 * gets at least one of each. Without `requested`: the smallest concurrency of the budget.
 *
 * @throws ValidationError when a concurrency is not a whole number ≥ 1 or a rate is below 1, or
 *   `requested` is outside 1 … the smallest figure.
 */
export function batchConcurrency(budgets: readonly ServiceBudget[], requested?: number): number {
  const valid = budgets.every(
    (b) =>
      Number.isInteger(b.concurrency) &&
      b.concurrency >= 1 &&
      Number.isFinite(b.perSecond) &&
      b.perSecond >= 1,
  );
  if (budgets.length === 0 || !valid) {
    throw new ValidationError(
      `rateLimits must hold a whole number ≥ 1 for every concurrency and a number ≥ 1 for every perSecond; received ${JSON.stringify(budgets)}.`,
    );
  }
  const ceiling = Math.min(...budgets.flatMap((b) => [b.concurrency, Math.floor(b.perSecond)]));
  const chosen = requested ?? Math.min(...budgets.map((b) => b.concurrency));
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > ceiling) {
    throw new ValidationError(
      `maxConcurrency must be a whole number from 1 to ${ceiling} (the smallest concurrency or per-second figure of rateLimits, so each worker gets a share of every budget); received ${String(chosen)}.`,
    );
  }
  return chosen;
}

/** One worker's share of a service's budget when `workers` run at once (a rate to a tenth, rounded down). */
export const workerShare = (budget: ServiceBudget, workers: number): ServiceBudget => ({
  concurrency: Math.floor(budget.concurrency / workers),
  perSecond: Math.floor((budget.perSecond * 10) / workers) / 10,
});
