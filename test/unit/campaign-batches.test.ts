/**
 * How a campaign's pending targets are cut into batches at planning (core/campaign-batches.ts):
 * the unit a run leases and checkpoints, and what the Distributed Map hands one worker.
 */
import { describe, expect, it } from 'vitest';
import { assignBatches, TARGETS_PER_BATCH } from '../../functions/core/campaign-batches.ts';
import type { IdentityKind } from '../../functions/core/identity.ts';
import { serviceOf } from '../../functions/core/kinds.ts';

interface Planned {
  targetId: string;
  kind: IdentityKind;
  outcome: string;
  batch?: number | undefined;
}

const targets = (kind: IdentityKind, count: number, outcome = 'pending'): Planned[] =>
  Array.from({ length: count }, (_, i) => ({ targetId: `${kind}-${i}`, kind, outcome }));

describe('campaign batches: assignBatches', () => {
  it('cuts full batches of one service each and pools what is left of the services: every batch full but the last', () => {
    // prepare: Vault 257, IAM 16, Secrets Manager 13 pending targets, and two settled at planning
    const planned = [
      ...targets('vault-token', 200),
      ...targets('vault-kv', 57),
      ...targets('aws-iam-access-key', 16),
      ...targets('aws-secret', 13),
      ...targets('vault-token', 2, 'skipped').map((t) => ({ ...t, targetId: `skipped-${t.targetId}` })),
    ];

    // act
    const batched = assignBatches(planned);

    // assess: settled targets have no batch; the pending ones in batch order, cut every 25, are the batches
    expect(batched.filter((t) => t.outcome !== 'pending').every((t) => t.batch === undefined)).toBe(true);
    const pending = batched.filter((t) => t.outcome === 'pending');
    const sizes = new Map<number, number>();
    for (const t of pending) sizes.set(t.batch as number, (sizes.get(t.batch as number) ?? 0) + 1);
    const numbers = [...sizes.keys()].sort((a, b) => a - b);
    expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(numbers.slice(0, -1).every((n) => sizes.get(n) === TARGETS_PER_BATCH)).toBe(true);
    expect(sizes.get(numbers.length - 1)).toBe(286 % TARGETS_PER_BATCH);
    // …the smaller services' targets go first, pooled and topped up from the largest service
    // (Secrets Manager's 13, IAM's 16 and 21 of Vault's: two batches), so a slow service's few
    // targets never wait for the end of the run; then Vault's own full batches, its leftover last
    const serviceOfBatch = (n: number) => [
      ...new Set(pending.filter((t) => t.batch === n).map((t) => serviceOf(t.kind))),
    ];
    expect(pending.filter((t) => t.kind === 'aws-secret').every((t) => t.batch === 0)).toBe(true);
    expect(pending.filter((t) => t.kind === 'aws-iam-access-key').every((t) => (t.batch ?? 99) <= 1)).toBe(
      true,
    );
    for (const n of numbers.slice(2)) expect(serviceOfBatch(n), `batch ${n}`).toEqual(['vault']);
    const vault = pending.filter((t) => t.kind === 'vault-token');
    expect(vault.map((t) => t.batch)).toEqual(
      [...vault.map((t) => t.batch)].sort((a, b) => (a ?? 0) - (b ?? 0)),
    );
  });
});

describe('campaign batches: a later part of a campaign planned in parts', () => {
  it('numbers its batches on from the first part, so no batch of the two parts shares a number', () => {
    // prepare: the first part's IAM targets, cut first
    const first = assignBatches(targets('aws-iam-access-key', 30));
    const next = Math.max(...first.map((t) => t.batch as number)) + 1;

    // act
    const later = assignBatches(targets('vault-token', 60), TARGETS_PER_BATCH, next);

    // assess
    expect(new Set(first.map((t) => t.batch))).toEqual(new Set([0, 1]));
    expect(new Set(later.map((t) => t.batch))).toEqual(new Set([2, 3, 4]));
  });
});
