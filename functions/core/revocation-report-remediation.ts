/**
 * Why a campaign target failed, read from its provider error, and what the responder should
 * do about it. The permission a revocation needs comes from the kind registry.
 */
import type { Identity, IdentityKind } from './identity.ts';
import { revokePermission } from './kinds.ts';
import type { FailureCause } from './revocation-report-model.ts';

const THROTTLING = /throttl|rate ?exceeded|too many requests|slow ?down|request ?limit|\b429\b/i;
const ACCESS_DENIED =
  /access ?denied|not ?authori[sz]ed|unauthori[sz]ed|forbidden|permission denied|\b403\b/i;
const NOT_FOUND =
  /not ?found|no ?such|does not exist|unknown (accessor|lease|token)|invalid accessor|\b404\b/i;
const TRANSIENT =
  /timed? ?out|timeout|econnreset|econnrefused|socket hang up|service ?unavailable|internal ?(server )?error|\b50[0234]\b/i;

/** Classifies a provider error by its text. */
export function failureCause(error: string): FailureCause {
  if (THROTTLING.test(error)) return 'throttling';
  if (ACCESS_DENIED.test(error)) return 'access-denied';
  if (NOT_FOUND.test(error)) return 'not-found';
  if (TRANSIENT.test(error)) return 'transient';
  return 'other';
}

/** What the responder should do about a failed target, derived from its error. */
export function remediationHint(
  cause: FailureCause,
  context: { campaignId: string; kind: IdentityKind; handle: string; identity?: Identity },
): string {
  const resume = `\`keywarden revoke resume ${context.campaignId}\``;
  switch (cause) {
    case 'throttling':
      return `re-run ${resume}; the rate limit backs off`;
    case 'access-denied':
      return `grant keywarden the permission to revoke it (${revokePermission(context.kind, context.handle, context.identity)}), then re-run ${resume}`;
    case 'not-found':
      return 'already gone; verify in the provider that the credential no longer exists, and record it';
    case 'transient':
      return `transient provider fault; re-run ${resume}, which retries only what is not done`;
    case 'other':
      return `read the error, fix its cause, then re-run ${resume}; if it still cannot be revoked, disable the credential by hand in the provider and record who did it`;
  }
}
