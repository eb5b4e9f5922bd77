/**
 * The sweeper, the third guarantee of a break-glass grant's end, reading only what is due.
 *
 * Each grant says when the sweeper next has work on it ({@link sweepDueAt}): at its end while
 * approved or active; a minute after it ended while its credentials are not all ended (the
 * ender may still be at it); once nothing issued for it can be alive while an early
 * revocation's deny policy is still in place. Afterwards, nothing: the store keeps a grant
 * in its "due" listing only while it has a due time, so the sweeper's reads grow with the
 * grants in flight, never with the finished ones.
 */
import { type BreakglassDeps, expire, finishHalfWay, release } from './breakglass.ts';
import { credentialsDeadAt, type Grant } from './grant.ts';
import type { GrantPage, GrantPageRequest } from './ports.ts';

/** How long after a grant ended the sweeper takes over ending its credentials (the ender may still be at it). */
export const UNFINISHED_AFTER_MS = 60_000;

const ended = (grant: Grant) => grant.state === 'expired' || grant.state === 'revoked';

/**
 * When the sweeper next has work on `grant`, or undefined when it has none (a request, a
 * denial, or an ending finished to the last step). The steps come one after the other, so
 * a grant is at one of them at a time.
 */
export function sweepDueAt(grant: Grant): Date | undefined {
  if ((grant.state === 'approved' || grant.state === 'active') && grant.expiresAt)
    return new Date(grant.expiresAt);
  if (ended(grant) && !grant.credentialsEndedAt && grant.endedAt)
    return new Date(Date.parse(grant.endedAt) + UNFINISHED_AFTER_MS);
  if (grant.state === 'revoked' && grant.credentialsEndedAt && !grant.releasedAt)
    return credentialsDeadAt(grant);
  return undefined;
}

/** When the review of an ended grant is due, while nobody has reviewed it. */
export function reviewDueAt(grant: Grant): Date | undefined {
  if (!ended(grant) || !grant.review || grant.review.reviewedAt) return undefined;
  return new Date(grant.review.dueAt);
}

/** Every grant of a paginated listing, page by page as the caller iterates. */
export async function* eachGrant(
  page: (request: GrantPageRequest) => Promise<GrantPage>,
): AsyncGenerator<GrantPage['grants'][number]> {
  let nextToken: string | undefined;
  do {
    const answer = await page(nextToken ? { nextToken } : {});
    yield* answer.grants;
    nextToken = answer.nextToken;
  } while (nextToken);
}

/** What the sweeper did: grants it ended, deny policies it removed, grants it could not finish. */
export interface SweepResult {
  expired: string[];
  released: string[];
  failed: string[];
}

/**
 * The third guarantee, over the grants due now and only those ({@link sweepDueAt}): ends an
 * approved or active grant past its end that its schedule did not; finishes an ending whose
 * credentials could not all be ended at the time (IAM or Vault failed); removes an early
 * revocation's deny policy once none of the grant's sessions can be alive. A failure on one
 * grant does not stop the others; it is listed in `failed` and the grant stays due.
 */
export async function sweep(deps: BreakglassDeps): Promise<SweepResult> {
  const now = deps.clock.now();
  const config = await deps.config();
  const result: SweepResult = { expired: [], released: [], failed: [] };
  for await (const listed of eachGrant((page) => deps.grants.sweepDueGrants(now, page))) {
    const { grantId } = listed;
    try {
      if (listed.state === 'approved' || listed.state === 'active') {
        if ((await expire(deps, grantId, 'sweeper')) === 'expired') result.expired.push(grantId);
        continue;
      }
      // The listing is eventually consistent: act on the grant as it is now.
      const grant = await deps.grants.getGrant(grantId);
      const dueAt = grant && sweepDueAt(grant);
      const role = grant && config.roles.find((r) => r.id === grant.roleId);
      if (!grant || !dueAt || dueAt.getTime() > now.getTime() || !role) continue;
      if (!grant.credentialsEndedAt) await finishHalfWay(deps, grant, role);
      else if (await release(deps, grant, role, now)) result.released.push(grantId);
    } catch {
      result.failed.push(grantId);
    }
  }
  return result;
}
