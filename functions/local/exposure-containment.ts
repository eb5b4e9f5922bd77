/**
 * Containment on a laptop: an incident campaign on exactly the exposed credential (its
 * fingerprint), with re-issue, planned, stored and run here by the local revocation runner —
 * what `keywarden scan --contain`, `keywarden findings` (allowedRunners with `contain`) and the
 * local runtime's job-log scanning use. In AWS the campaign runs in the revocation state machine.
 */
import { planContainment } from '../adapters/campaign-launcher.ts';
import type { Services } from '../adapters/wiring.ts';
import type { ContainmentResult, ExposureContainment } from '../core/ports.ts';
import { LocalRevocationRunner } from './revocation-runner.ts';

/**
 * Containment on the local runtime: an incident campaign on exactly the exposed credential
 * (`planContainment`: selector `identity=<id>,fingerprint=<fp>`), with re-issue, planned as the
 * deployed scanner plans one and run by the local revocation runner, which writes the report. Holding the value is the authority
 * to end it: no responder check (the deployed scanner contains without anyone, as the issue asks).
 */
export function localContainment(
  services: Services,
  actor: string,
  log: (line: string) => void = () => {},
): ExposureContainment {
  return {
    async contain({ incident, fingerprint, identityId }): Promise<ContainmentResult> {
      const { campaign } = await planContainment(services, { incident, fingerprint, identityId, actor });
      const { campaignId } = campaign;
      log(`containing ${identityId}: campaign ${campaignId}`);
      const run = await new LocalRevocationRunner({ services, actor }).run(campaignId);
      const ended = run.targets.filter((t) => t.outcome === 'revoked' || t.outcome === 'already-revoked');
      const failed = run.targets.filter((t) => t.outcome === 'failed' || t.outcome === 'pending');
      const reissue = run.reissues.find((r) => r.identityId === identityId);
      return {
        campaignId,
        outcome: failed.length === 0 && ended.length > 0 ? 'contained' : 'failed',
        revoked: ended.length,
        failures: failed.map((t) => `${t.kind} ${t.handle}: ${t.error ?? t.outcome}`),
        reissuedVersionId: reissue?.status === 'reissued' ? reissue.versionId : undefined,
        reissue: reissue ? `${reissue.status}${reissue.reason ? `: ${reissue.reason}` : ''}` : undefined,
        report: run.report?.html,
      };
    },
  };
}
