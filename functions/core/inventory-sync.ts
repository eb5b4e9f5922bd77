import type { Digest } from './audit.ts';
import { canonicalJson } from './canonical-json.ts';
import type { Identity } from './identity.ts';
import type { AuditLog, Clock, IdentityStore, StoredIdentity } from './ports.ts';

export interface SyncPlan {
  declared: Identity[];
  changed: { before: StoredIdentity; after: Identity }[];
  unchanged: string[];
  retired: StoredIdentity[];
}

export const declarationHash = (identity: Identity, digest: Digest): string =>
  digest(canonicalJson(identity));

/**
 * What a sync of `declared` onto `stored` would do. Re-declaring a retired identity
 * revives it; an identity missing from the file is retired, never deleted.
 */
export function planSync(
  stored: readonly StoredIdentity[],
  declared: readonly Identity[],
  digest: Digest,
): SyncPlan {
  const byId = new Map(stored.map((record) => [record.identity.id, record]));
  const plan: SyncPlan = { declared: [], changed: [], unchanged: [], retired: [] };
  for (const identity of declared) {
    const before = byId.get(identity.id);
    if (!before) plan.declared.push(identity);
    else if (before.status === 'retired' || before.declarationHash !== declarationHash(identity, digest)) {
      plan.changed.push({ before, after: identity });
    } else plan.unchanged.push(identity.id);
  }
  const declaredIds = new Set(declared.map((identity) => identity.id));
  plan.retired = stored.filter(
    (record) => record.status === 'active' && !declaredIds.has(record.identity.id),
  );
  return plan;
}

export interface SyncDeps {
  store: Pick<IdentityStore, 'listIdentities' | 'putIdentity'>;
  audit: Pick<AuditLog, 'append'>;
  clock: Clock;
  digest: Digest;
}

export interface SyncSummary {
  declared: number;
  changed: number;
  unchanged: number;
  retired: number;
}

/**
 * Stores the declared inventory idempotently: re-running with the same file
 * writes nothing and records nothing. Each write is conditional on the revision read.
 */
export async function syncInventory(
  deps: SyncDeps,
  declared: readonly Identity[],
  actor: string,
): Promise<SyncSummary> {
  const plan = planSync(await deps.store.listIdentities(), declared, deps.digest);
  const at = deps.clock.now().toISOString();
  for (const identity of plan.declared) {
    await deps.store.putIdentity(
      { identity, status: 'active', declarationHash: declarationHash(identity, deps.digest), syncedAt: at },
      undefined,
    );
    await deps.audit.append({
      type: 'identity.declared',
      actor,
      subject: identity.id,
      details: { kind: identity.kind },
    });
  }
  for (const { before, after } of plan.changed) {
    await deps.store.putIdentity(
      {
        identity: after,
        status: 'active',
        declarationHash: declarationHash(after, deps.digest),
        syncedAt: at,
      },
      before.rev,
    );
    await deps.audit.append({
      type: 'identity.changed',
      actor,
      subject: after.id,
      details: { revived: before.status === 'retired' },
    });
  }
  for (const before of plan.retired) {
    const { rev: _rev, ...rest } = before;
    await deps.store.putIdentity({ ...rest, status: 'retired', retiredAt: at }, before.rev);
    await deps.audit.append({ type: 'identity.retired', actor, subject: before.identity.id, details: {} });
  }
  const summary = {
    declared: plan.declared.length,
    changed: plan.changed.length,
    unchanged: plan.unchanged.length,
    retired: plan.retired.length,
  };
  if (summary.declared + summary.changed + summary.retired > 0) {
    await deps.audit.append({
      type: 'inventory.synced',
      actor,
      subject: 'inventory',
      details: { ...summary },
    });
  }
  return summary;
}
