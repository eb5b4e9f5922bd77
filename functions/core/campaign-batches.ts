/**
 * How a campaign's targets are cut into batches: the unit a run leases, works and checkpoints
 * at once (campaign-engine.ts), and the unit the revocation state machine hands a worker
 * (revocation-steps.ts). The cut is made once, when the campaign is planned, and stored on
 * each target (`Target.batch`): every run, whatever its version, leases the same batches, so
 * two runs can never both hold one target.
 */
import { groupBy } from './group-by.ts';
import type { IdentityKind } from './identity.ts';
import { serviceOf } from './kinds.ts';

/** What cutting batches reads of a target (campaign.ts `Target`). */
interface Batchable {
  targetId: string;
  kind: IdentityKind;
  outcome: string;
  batch?: number | undefined;
}

/**
 * Targets per batch: DynamoDB's BatchWriteItem limit, so a batch's outcomes go in one request,
 * and the Distributed Map's MaxItemsPerBatch (revocation-batching.ts).
 */
export const TARGETS_PER_BATCH = 25;

/**
 * Numbers the pending targets' batches: targets of one provider service side by side (in the
 * order given, so one identity's targets stay together), cut every {@link TARGETS_PER_BATCH};
 * the full batches of each service spread evenly over the numbering, so workers taking batches
 * in order keep every service's limiter busy at once. Every batch but the last is full, so a
 * first run's cut of the targets in batch order (the Distributed Map's 25) is exactly the
 * planned batches and no two workers share one: what the smaller services leave after their
 * full batches is pooled (each target still goes through its own kind's limiter), topped up
 * from the largest service to whole batches, and numbered first, so a slow service's few
 * targets (IAM's) never wait for the end of the run; the largest service's own leftover is the
 * last batch. Settled targets (skipped, failed at planning) get no batch: no run works on them.
 */
export function assignBatches<T extends Batchable>(
  targets: readonly T[],
  size = TARGETS_PER_BATCH,
  /** The first batch's number (a later part of a campaign planned in parts numbers on from its earlier parts). */
  first = 0,
): T[] {
  const pending = targets.filter((target) => target.outcome === 'pending');
  const byService = groupBy(pending, (target) => serviceOf(target.kind));
  // The largest service last: it tops the pool up and keeps the one batch that is not full.
  const services = [...byService]
    .map(([service, of]): [string, string[]] => [service, of.map((target) => target.targetId)])
    .sort(([a, x], [b, y]) => x.length - y.length || a.localeCompare(b));
  const pool: string[] = [];
  const full: { service: string; at: number; of: number; ids: string[] }[] = [];
  let partial: string[] = [];
  for (const [index, [service, all]] of services.entries()) {
    let ids = all;
    if (index === services.length - 1) {
      const topUp = (size - (pool.length % size)) % size;
      // Too few to top the pool up: all of it goes in, the pool's last batch is the partial one.
      const taken = Math.min(ids.length, topUp);
      pool.push(...ids.slice(0, taken));
      ids = ids.slice(taken);
    }
    const of = Math.floor(ids.length / size);
    for (let i = 0; i < of; i += 1)
      full.push({ service, at: i, of, ids: ids.slice(i * size, (i + 1) * size) });
    const left = ids.slice(of * size);
    if (index < services.length - 1) pool.push(...left);
    else partial = left;
  }
  // Chunk i of n sits at (i + ½) / n of the way: each service's batches evenly spread.
  full.sort((a, b) => (a.at + 0.5) / a.of - (b.at + 0.5) / b.of || a.service.localeCompare(b.service));
  const chunks: string[][] = [];
  for (let i = 0; i < pool.length; i += size) chunks.push(pool.slice(i, i + size));
  chunks.push(...full.map((chunk) => chunk.ids));
  if (partial.length > 0) chunks.push(partial);
  const batchOf = new Map<string, number>();
  for (const [number, ids] of chunks.entries()) for (const id of ids) batchOf.set(id, first + number);
  return targets.map((target) => {
    const batch = batchOf.get(target.targetId);
    return batch === undefined ? target : { ...target, batch };
  });
}

/**
 * The lease key of a target's batch: its stored number, or, for a target planned before
 * batches were stored, its own id (a batch of one: correct, only dearer).
 */
export const batchKeyOf = (target: Batchable): string =>
  target.batch === undefined ? `target:${target.targetId}` : String(target.batch);

/** Targets grouped by batch key, each group in the order given, groups by their first target's place. */
export const groupByBatch = <T extends Batchable>(targets: readonly T[]): Map<string, T[]> =>
  groupBy(targets, batchKeyOf);
