/**
 * How the revocation state machine hands a campaign to the revoke-batch handler
 * (`revocation-batch.ts`, over `revocation.ts`): targets per batch, batches at once, and the Retry of a
 * batch whose worker stopped early. The facts live in functions/core/revocation-batching.ts; this
 * is the entry path through which infra/constructs/revocation.ts reads them, as infra may import
 * nothing from functions/ but handler modules (.dependency-cruiser.cjs).
 */
export {
  BATCH_RETRY,
  type BatchRetryPolicy,
  batchConcurrency,
  REVOKE_BATCH_SIZE,
  type ServiceBudget,
  workerShare,
} from '../core/revocation-batching.ts';
