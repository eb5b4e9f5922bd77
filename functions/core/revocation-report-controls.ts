/**
 * The security controls a revocation campaign evidences, assessed from the rest of its report,
 * each with the figures that show it.
 */
import type { ControlStatus, ReportControl, ReportFacts } from './revocation-report-model.ts';
import { formatDuration, plural } from './revocation-report-text.ts';

/**
 * The controls a campaign evidences. Ids and titles as published:
 * - OWASP Top 10 Non-Human Identities Risks – 2025
 *   (owasp.org/www-project-non-human-identities-top-10/2025/top-10-2025):
 *   NHI2:2025 Secret Leakage, NHI3:2025 Vulnerable Third-Party NHI, NHI7:2025 Long-Lived Secrets.
 * - NIST Cybersecurity Framework 2.0 (NIST CSWP 29), subcategory outcomes as worded in the
 *   CSF 2.0 core (csf.tools/reference/nist-cybersecurity-framework/v2-0/): PR.AA-01, PR.AA-05,
 *   RS.MI-01, RS.MI-02, RS.AN-03, RS.AN-06.
 */
export function controlsOf(report: ReportFacts): ReportControl[] {
  const { byOutcome, total } = report.outcomes;
  const ended = byOutcome.revoked + byOutcome['already-revoked'];
  const residual = report.residualExposure.length;
  const identities = new Set(report.targets.map((t) => t.identityId)).size;
  const ttr = report.timeToRevoke;
  const speed = ttr
    ? `, p95 ${formatDuration(ttr.p95Ms)} and max ${formatDuration(ttr.maxMs)} after the campaign started`
    : '';
  const endedText = `${ended} of ${plural(total, 'target')} revoked (${byOutcome.revoked} revoked, ${byOutcome['already-revoked']} already revoked)${speed}`;
  const residualText =
    residual === 0
      ? 'nothing is left exposed'
      : `${plural(residual, 'target')} could not be revoked and ${residual === 1 ? 'is' : 'are'} listed under residual exposure with ${residual === 1 ? 'its owner' : 'their owners'}`;
  const containment: ControlStatus = ended === 0 ? 'not-evidenced' : residual === 0 ? 'evidenced' : 'partial';
  const reissued = report.reissued.length;
  const credentials = report.credentialHistory.filter((g) => g.handle !== undefined).length;
  const records = report.credentialHistory.reduce((sum, g) => sum + g.events.length, 0);
  const campaignRecords = report.credentialHistory.reduce(
    (sum, g) =>
      sum + g.events.filter((e) => e.type.startsWith('campaign.') || e.phase === 'revocation').length,
    0,
  );
  const seqs = report.credentialHistory.flatMap((g) => g.events.map((e) => e.seq));
  const seqRange = seqs.length === 0 ? '' : ` (audit sequence ${Math.min(...seqs)}–${Math.max(...seqs)})`;
  const owasp = 'OWASP Non-Human Identities Top 10 (2025)' as const;
  const nist = 'NIST CSF 2.0' as const;

  return [
    {
      framework: owasp,
      id: 'NHI3:2025',
      title: 'Vulnerable Third-Party NHI',
      status: containment,
      evidence: `Incident ${report.incident}: every pipeline credential the selectors reached across ${plural(identities, 'identity', 'identities')} was targeted; ${endedText}; ${residualText}.`,
    },
    {
      framework: owasp,
      id: 'NHI2:2025',
      title: 'Secret Leakage',
      status: containment,
      evidence: `A leaked copy of any of the ${ended} revoked credentials no longer authenticates; this report names credentials by handle and fingerprint prefix only, never by value.`,
    },
    {
      framework: owasp,
      id: 'NHI7:2025',
      title: 'Long-Lived Secrets',
      status: ended === 0 ? 'not-evidenced' : reissued > 0 && residual === 0 ? 'evidenced' : 'partial',
      evidence: `${ended} credentials were ended at once rather than left to their expiry; ${plural(reissued, 'identity', 'identities')} received a fresh credential${reissued === 0 ? ' (none re-issued)' : ''}.`,
    },
    {
      framework: nist,
      id: 'PR.AA-01',
      title:
        'Identities and credentials for authorized users, services, and hardware are managed by the organization',
      status: ended === 0 ? 'not-evidenced' : 'evidenced',
      evidence: `Credentials of ${plural(identities, 'inventoried identity', 'inventoried identities')} were revoked by handle (${endedText}) and ${plural(reissued, 'identity', 'identities')} re-issued through the rotation providers.`,
    },
    {
      framework: nist,
      id: 'PR.AA-05',
      title:
        'Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and reviewed, and incorporate the principles of least privilege and separation of duties',
      status: containment,
      evidence: `Access no longer needed was rescinded promptly on request of ${report.campaign.requestedBy}: ${endedText}; ${residualText}.`,
    },
    {
      framework: nist,
      id: 'RS.MI-01',
      title: 'Incidents are contained',
      status: containment,
      evidence: `${endedText}; ${residualText}.`,
    },
    {
      framework: nist,
      id: 'RS.MI-02',
      title: 'Incidents are eradicated',
      status: containment,
      evidence: `${residual === 0 ? 'No affected credential is left live' : `${plural(residual, 'affected credential')} may still be live`}; ${plural(reissued, 'identity', 'identities')} now ${reissued === 1 ? 'runs' : 'run'} on a clean credential issued after revocation.`,
    },
    {
      framework: nist,
      id: 'RS.AN-03',
      title:
        'Analysis is performed to establish what has taken place during an incident and the root cause of the incident',
      status: records === 0 ? 'not-evidenced' : 'evidenced',
      evidence:
        records === 0
          ? 'No audit record of the affected identities was supplied, so their history is not shown.'
          : `Issuance, use and revocation history of ${plural(credentials, 'credential')} of the affected identities, from ${plural(records, 'audit record')}${seqRange}.`,
    },
    {
      framework: nist,
      id: 'RS.AN-06',
      title:
        "Actions performed during an investigation are recorded, and the records' integrity and provenance are preserved",
      status: campaignRecords === 0 ? 'partial' : 'evidenced',
      evidence: `Each revocation is recorded as its own hash-chained audit event with its actor and time (${plural(campaignRecords, 'revocation record')} shown, each with its chain hash; check the chain with \`keywarden audit verify\`).`,
    },
  ];
}
