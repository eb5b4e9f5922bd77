/**
 * The use monitor: one API call as a trail delivers it (CloudTrail through EventBridge, in AWS),
 * judged as it happens rather than when discovery next reads a trail. A call of a CI job's
 * session after its exchange ended is `used-after-job-end`; a call signed with a managed access
 * key from outside its identity's `allowedRunners` is `used-from-unexpected-runner`, contained
 * when the identity's `policy.onUnexpectedUse` is `contain`. Each finding is acted on (contained,
 * audited, alerted) once per {@link FINDING_CLAIM_MS}: by whoever wins its claim in the finding
 * store (a lease of {@link FINDING_LEASE_MS} while it acts); it is also saved with the latest
 * findings, for `keywarden findings`.
 */
import type { AuditEventInput } from './audit.ts';
import type { CiCredentialRecord } from './ci-records.ts';
import type { CredentialVersion } from './credential-version.ts';
import type { DiscoveredCredential } from './discovery.ts';
import { KeywardenError } from './errors.ts';
import { saveUnmanagedFindings } from './exposure.ts';
import type { Finding } from './findings.ts';
import type { Identity } from './identity.ts';
import { scopeKey } from './kinds.ts';
import type {
  AuditLog,
  CiCredentialStore,
  Clock,
  ExposureAlerts,
  ExposureContainment,
  FindingStore,
} from './ports.ts';
import {
  type AddressRanges,
  afterJobEndFindings,
  containUnexpectedUse,
  credentialsToContain,
  type HandleKind,
  type HandleUse,
  type ObservedUse,
  type UseContainment,
  unexpectedRunnerFindings,
  watchedHandles,
} from './unexpected-use.ts';

/**
 * How long before a call its job's exchange may have ended and its session still be alive to
 * make it: a CI session is a chained role session, which AWS ends within one hour. The ended
 * listing is read over this window only.
 */
export const MAX_SESSION_MS = 60 * 60 * 1000;

/**
 * How long a finding, once acted on, is not acted on again: a stolen key calls in bursts, and
 * the campaign the first call started revokes it within minutes; a use still seen after this is
 * news again.
 */
export const FINDING_CLAIM_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * How long a finding's claim holds while its caller acts: longer than the monitor runs (60 s),
 * short enough that a call after a caller died holding it (a timeout mid-containment) acts.
 */
export const FINDING_LEASE_MS = 5 * 60 * 1000;

/** Who the use monitor is in the audit trail and on the containment campaigns it starts. */
export const USE_MONITOR_ACTOR = 'keywarden:use-monitor';

/** One call as the trail recorded it, by the handle that made it. */
export type MonitoredUse = HandleUse & {
  kind: HandleKind;
  /** The IAM user that signed it (CloudTrail's `userIdentity.userName`), to attribute a key keywarden never recorded. */
  userName?: string | undefined;
};

/** The identities whose access keys are watched (those with `allowedRunners`), with their kept versions. */
export interface WatchedIdentities {
  identities: readonly Identity[];
  versions: ReadonlyMap<string, readonly CredentialVersion[]>;
}

/** What judging one use takes. */
export interface UseMonitorDeps {
  ci: Pick<CiCredentialStore, 'listEnded' | 'listByJob'>;
  /** The watched identities; the caller may cache them (an identity's runners change only at sync). */
  watched: () => Promise<WatchedIdentities>;
  ranges: AddressRanges;
  findings: FindingStore;
  audit: Pick<AuditLog, 'appendMany'>;
  clock: Clock;
  /** How a used key is ended; absent, `contain` identities are reported only. */
  containment?: ExposureContainment | undefined;
  /** Where the owner of a key it contained is told (each containment attempted); absent, nobody is. */
  alerts?: ExposureAlerts | undefined;
}

/** What one use came to: the findings it made (acted on here or already) and what was contained. */
export interface UseJudgment {
  findings: Finding[];
  /** Findings whose claim this call won: contained, audited and saved by it. */
  fresh: number;
  contained: UseContainment[];
}

/**
 * The exchanges whose session made this call after they had ended. Every session of one job
 * carries the job's SourceIdentity, so a call is not judged while another exchange of that job
 * with the same SourceIdentity was live when it was made (that session may have made it).
 */
async function endedSessionFindings(deps: UseMonitorDeps, use: MonitoredUse): Promise<Finding[]> {
  const at = Date.parse(use.at);
  if (Number.isNaN(at)) return [];
  const endedBefore = (record: CiCredentialRecord) =>
    record.ended !== undefined && Date.parse(record.ended.at) < at;
  // A session past its expiry made no call: its exchange is not the one that did.
  const ended = (await deps.ci.listEnded(new Date(at - MAX_SESSION_MS))).filter(
    (record) =>
      record.aws?.sourceIdentity === use.handle &&
      Date.parse(record.aws.expiresAt) >= at &&
      endedBefore(record),
  );
  for (const jobKey of new Set(ended.map((record) => record.jobKey))) {
    const live = (await deps.ci.listByJob(jobKey)).some(
      (record) =>
        record.aws?.sourceIdentity === use.handle &&
        Date.parse(record.issuedAt) <= at &&
        !endedBefore(record),
    );
    if (live) return [];
  }
  return afterJobEndFindings(ended, [use]);
}

/**
 * The access key's identity: a version keywarden keeps, or, for a key it never recorded, the
 * identity whose IAM user signed the call (as discovery would have found the key under it). A
 * kept version's key is judged by that version alone: once revoked it is no longer watched, so a
 * contained key that keeps trying starts no second campaign.
 */
function keyUse(watched: WatchedIdentities, use: MonitoredUse): ObservedUse[] {
  const kept = [...watched.versions.values()].some((vs) => vs.some((v) => v.handle === use.handle));
  const discovered: DiscoveredCredential[] =
    use.userName && !kept
      ? watched.identities
          .filter(
            (identity) => identity.kind === 'aws-iam-access-key' && identity.scope.userName === use.userName,
          )
          .map((identity) => ({
            key: scopeKey(identity),
            kind: identity.kind,
            handle: use.handle,
            label: `iam user ${use.userName}`,
            status: 'active' as const,
            details: {},
          }))
      : [];
  const owner = watchedHandles(watched.identities, watched.versions, discovered).get(use.handle);
  // keywarden's own test of a version it just verified is no runner's use.
  const ownTest = owner?.ownTestUntil !== undefined && Date.parse(use.at) <= owner.ownTestUntil;
  return owner && !ownTest ? [{ ...use, identityId: owner.identityId }] : [];
}

/** The audit event of a finding this call made: the handle, when, from where, what; never a value. */
function auditOf(finding: Finding, use: MonitoredUse): AuditEventInput {
  const details = {
    finding: finding.id,
    findingType: finding.type,
    handle: use.handle,
    at: use.at,
    ...(use.from ? { from: use.from } : {}),
    ...(use.action ? { action: use.action } : {}),
    source: use.source,
  };
  return finding.type === 'used-after-job-end'
    ? {
        type: 'ci.credentials.used',
        actor: USE_MONITOR_ACTOR,
        subject: use.handle,
        details: { ...details, exchangeId: finding.subject.replace(/^ci:/, ''), afterEnd: true },
      }
    : {
        type: 'credential.used',
        actor: USE_MONITOR_ACTOR,
        subject: finding.subject,
        details: { ...details, outsideAllowedRunners: true },
      };
}

/**
 * Judges one use: a CI session's call after its exchange ended, or a watched access key's call
 * from outside its `allowedRunners` (a call with no address the rules speak of is not judged).
 * Each finding is claimed in the finding store first, for a short lease; only the caller that
 * wins the claim acts: on a `contain` identity its key is handed to containment, then the finding
 * is audited and saved with the latest findings, and the claim is kept for
 * {@link FINDING_CLAIM_MS} (the done-marker last). A stolen key makes many calls at once, and the
 * first containment's campaign is already under way for the rest.
 *
 * @throws KeywardenError (retryable) when a containment failed, after giving the claim back, so
 *   the event is retried and the key contained then.
 */
export async function judgeMonitoredUse(deps: UseMonitorDeps, use: MonitoredUse): Promise<UseJudgment> {
  let findings: Finding[] = [];
  let watched: WatchedIdentities | undefined;
  if (use.kind === 'aws-source-identity') {
    findings = await endedSessionFindings(deps, use);
  } else if (use.kind === 'aws-access-key-id') {
    watched = await deps.watched();
    findings = unexpectedRunnerFindings(watched.identities, keyUse(watched, use), deps.ranges);
  }
  if (findings.length === 0) return { findings, fresh: 0, contained: [] };
  const now = deps.clock.now();
  const lease = new Date(now.getTime() + FINDING_LEASE_MS);
  const claimed: Finding[] = [];
  for (const finding of findings) {
    if (await deps.findings.claimFinding(finding.id, lease, now)) claimed.push(finding);
  }
  if (claimed.length === 0) return { findings, fresh: 0, contained: [] };
  const release = () => Promise.all(claimed.map((f) => deps.findings.releaseFinding(f.id)));
  const requests = watched ? credentialsToContain(claimed, watched.identities, watched.versions, [use]) : [];
  let contained: UseContainment[] = [];
  try {
    if (requests.length > 0 && deps.containment) {
      contained = await containUnexpectedUse(
        { containment: deps.containment, audit: deps.audit, actor: USE_MONITOR_ACTOR, alerts: deps.alerts },
        requests,
      );
    }
  } catch (error) {
    await release();
    throw error;
  }
  const failed = contained.filter((c) => c.status === 'failed');
  if (failed.length > 0) {
    await release();
    throw new KeywardenError(
      `containing ${failed.length} key(s) used from outside their allowedRunners failed (the event is retried): ${failed
        .map((c) => `${c.identityId} ${c.handle}: ${c.reason ?? 'failed'}`)
        .join(', ')}`,
      { retryable: true },
    );
  }
  try {
    await deps.audit.appendMany(claimed.map((f) => auditOf(f, use)));
  } catch (error) {
    // Nothing done yet but the claim: given back, so the retry audits. After a containment the
    // claim is kept: a second campaign would re-issue the key twice (the campaign is audited).
    if (contained.every((c) => c.status === 'skipped')) await release();
    throw error;
  }
  await saveUnmanagedFindings(deps, claimed);
  // Done: the claim is kept for long, so the key's further calls are not acted on again.
  const kept = new Date(now.getTime() + FINDING_CLAIM_MS);
  await Promise.all(claimed.map((f) => deps.findings.holdFinding(f.id, kept)));
  return { findings, fresh: claimed.length, contained };
}
