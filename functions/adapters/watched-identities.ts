/**
 * What the use monitor (functions/handlers/use-monitor.ts) watches, read from the state table and
 * kept between CloudTrail events.
 */
import type { Clock, IdentityStore, RotationStore, VersionsOfMany } from '../core/ports.ts';
import type { WatchedIdentities } from '../core/use-monitor.ts';
import { versionsOf } from './campaign-launcher.ts';

/** How long the watched identities are kept between events: an identity's runners change only at sync. */
export const WATCHED_CACHE_MS = 60_000;

/**
 * The identities whose access keys are watched (active, `aws-iam-access-key`, with
 * `allowedRunners`) and their kept versions, read at most once per {@link WATCHED_CACHE_MS}: the
 * store has no lookup of a version by its handle, and a stolen key's calls come in bursts.
 */
export function cachedWatch(
  store: Pick<IdentityStore, 'listIdentities'> &
    Pick<RotationStore, 'listVersions'> &
    Partial<Pick<VersionsOfMany, 'listVersionsOf'>>,
  clock: Clock,
  keepMs = WATCHED_CACHE_MS,
): () => Promise<WatchedIdentities> {
  let cached: { at: number; value: Promise<WatchedIdentities> } | undefined;
  const load = async (): Promise<WatchedIdentities> => {
    const identities = (await store.listIdentities())
      .filter(
        (s) => s.status === 'active' && s.identity.kind === 'aws-iam-access-key' && s.identity.allowedRunners,
      )
      .map((s) => s.identity);
    return { identities, versions: await versionsOf(store, identities) };
  };
  return () => {
    const now = clock.now().getTime();
    if (!cached || now - cached.at >= keepMs) {
      const value = load();
      cached = { at: now, value };
      // A failed read is not kept: the next event reads again.
      value.catch(() => {
        if (cached?.value === value) cached = undefined;
      });
    }
    return cached.value;
  };
}
