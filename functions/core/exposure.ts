/**
 * Exposure scanning's use cases (issue #14): find credentials in a text, tell the ones
 * keywarden manages from the others by keyed fingerprint, contain each managed one once (an
 * incident campaign on exactly that credential, with re-issue, through {@link ExposureContainment}),
 * and turn the others into `exposed-unmanaged` findings. Shared by `keywarden scan` and the
 * deployed scanner; no value ever leaves this module except as a fingerprint or a redacted prefix.
 */
import type { AuditEventInput } from './audit.ts';
import { EXPOSURE_INCIDENT_PREFIX, reissuedEvent } from './containment-reissue.ts';
import { type AlertDelivery, deliverAlert } from './exposure-alert.ts';
import {
  buildManagedIndex,
  type FingerprintText,
  ManagedMatcher,
  type ManagedRef,
  type ManagedSubject,
  redactedPrefix,
} from './exposure-match.ts';
import { isHandled } from './exposure-record.ts';
import type { DetectedSecret, Encoding, ExposureSource } from './exposure-types.ts';
import type { Finding, Severity } from './findings.ts';
import type { Identity } from './identity.ts';
import type {
  AuditLog,
  Clock,
  ContainmentResult,
  ExposureAlert,
  ExposureAlerts,
  ExposureContainment,
  ExposureStore,
  FindingStore,
  IdentityStore,
  RotationStore,
  SecretDetector,
} from './ports.ts';
import { SHORT_FINGERPRINT } from './short-fingerprint.ts';

/** The rule of a hit no detector rule found, only the managed-value matcher. */
export const MANAGED_VALUE_RULE = 'keywarden:managed-value';

/** How long a fingerprint a hit prints; defined in short-fingerprint.ts (alerts print it too), named here for the scan's readers. */
export { SHORT_FINGERPRINT };

/** One credential found in a text; never its value. */
export interface ExposureHit {
  source: ExposureSource;
  line: number;
  column: number;
  rule: string;
  encoding: Encoding;
  /** At most 4 characters of its start (an AWS pair: its key id's). */
  prefix: string;
  fingerprint: string;
  status: 'managed' | 'unmanaged';
  /** `critical`: a live managed credential; `high`: an unmanaged one; `low`: a managed one already revoked. */
  severity: Extract<Severity, 'critical' | 'high' | 'low'>;
  /** The managed version it is. */
  managed?: ManagedRef;
  /** Why an unmanaged hit looks like a managed one (an AWS key id of a managed key, another secret). */
  note?: string;
}

/** What loading the index of managed credentials reads. */
export interface ManagedIndexDeps {
  identities: Pick<IdentityStore, 'listIdentities'>;
  versions: Pick<RotationStore, 'listVersions'>;
  fingerprint: FingerprintText;
  /** An AppRole's role-id (not a secret: its delivered value pairs it with the secret-id). */
  roleIdOf?: ((identity: Identity) => Promise<string | undefined>) | undefined;
}

/** Identities whose versions are read at once. */
const READ_CONCURRENCY = 16;

/** The matcher over every live version of every active identity, built once per scan. */
export async function loadMatcher(deps: ManagedIndexDeps): Promise<ManagedMatcher> {
  const active = (await deps.identities.listIdentities()).filter((r) => r.status === 'active');
  const subjects: ManagedSubject[] = [];
  for (let i = 0; i < active.length; i += READ_CONCURRENCY) {
    subjects.push(
      ...(await Promise.all(
        active.slice(i, i + READ_CONCURRENCY).map(async ({ identity }) => ({
          identity,
          versions: await deps.versions.listVersions(identity.id),
          roleId:
            identity.kind === 'vault-approle-secret-id'
              ? await deps.roleIdOf?.(identity).catch(() => undefined)
              : undefined,
        })),
      )),
    );
  }
  return new ManagedMatcher(buildManagedIndex(subjects), deps.fingerprint);
}

const managedHit = (
  source: ExposureSource,
  at: { line: number; column: number; encoding: Encoding },
  rule: string,
  prefix: string,
  ref: ManagedRef,
): ExposureHit => ({
  source,
  // Only where: a candidate also carries its text, which must never reach a hit.
  line: at.line,
  column: at.column,
  encoding: at.encoding,
  rule,
  prefix,
  fingerprint: ref.fingerprint,
  status: 'managed',
  severity: ref.versionStage === 'revoked' ? 'low' : 'critical',
  managed: ref,
});

/**
 * Every credential in `text`: what the detector finds (managed or not) and every managed
 * value the matcher finds whether a rule knows it or not, one hit per place and fingerprint.
 */
export async function scanText(
  matcher: ManagedMatcher,
  detector: SecretDetector | undefined,
  fingerprint: FingerprintText,
  text: string,
  source: ExposureSource,
): Promise<ExposureHit[]> {
  const hits = new Map<string, ExposureHit>();
  const add = (hit: ExposureHit) => {
    const key = `${hit.line}\u0000${hit.fingerprint}`;
    if (!hits.has(key)) hits.set(key, hit);
  };
  const detected: DetectedSecret[] = detector ? await detector.detect(text) : [];
  for (const secret of detected) {
    const value = secret.value.reveal();
    const prefix = redactedPrefix(value, secret.accessKeyId);
    const { ref, keyIdOf } = matcher.matchDetected(secret);
    if (ref) {
      add(managedHit(source, secret, secret.rule, prefix, ref));
      continue;
    }
    add({
      source,
      line: secret.line,
      column: secret.column,
      rule: secret.rule,
      encoding: secret.encoding,
      prefix,
      fingerprint: fingerprint(value),
      status: 'unmanaged',
      severity: 'high',
      ...(keyIdOf
        ? {
            note: `access key id ${secret.accessKeyId} is ${keyIdOf.identityId}'s (version ${keyIdOf.versionId}), but the secret beside it is not that key's: not keywarden's credential`,
          }
        : {}),
    });
  }
  for (const { candidate, ref } of matcher.scan(text)) {
    add(managedHit(source, candidate, MANAGED_VALUE_RULE, redactedPrefix(candidate.text), ref));
  }
  // A place a rule named and the matcher found too keeps the rule's name (added first).
  return [...hits.values()].sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Whether a hit is at or above a severity. */
export const atOrAbove = (hit: ExposureHit, threshold: Severity): boolean =>
  SEVERITY_ORDER.indexOf(hit.severity) >= SEVERITY_ORDER.indexOf(threshold);
const SEVERITY_ORDER: readonly Severity[] = ['info', 'low', 'medium', 'high', 'critical'];

/** `file build.log:12`, `git repo@3fa2c1d:deploy.sh:4`: where a hit is, for people. */
export function placeOf(hit: Pick<ExposureHit, 'source' | 'line'>): string {
  const { source } = hit;
  const commit = source.commit ? `@${source.commit.slice(0, 12)}` : '';
  return `${source.kind} ${source.location}${commit}:${hit.line}`;
}

/** The incident a containment answers: `EXPOSURE-<first 12 hex of the fingerprint>`. */
export function exposureIncident(fingerprint: string): string {
  const hex = fingerprint.replace(/^[a-z0-9-]+:/, '');
  return `${EXPOSURE_INCIDENT_PREFIX}${hex.slice(0, 12)}`;
}

/**
 * How long one scanner holds the right to contain a fingerprint: longer than any scanner runs
 * (the deployed one stops after 2 minutes, a Lambda function after 15 at most), so a live holder
 * keeps it, and one that died holding it leaves the credential to the next sighting after this.
 */
export const CONTAINMENT_LEASE_MS = 15 * 60_000;

/** What containing managed hits reads and writes. */
export interface ContainDeps {
  exposures: ExposureStore;
  containment: ExposureContainment;
  audit: Pick<AuditLog, 'append'>;
  clock: Clock;
  /** Who acts, in the audit trail (`cli:alice`, `scanner`). */
  actor: string;
  /** Tells the owner of each credential whose containment was attempted; absent, nobody is told. */
  alerts?: ExposureAlerts | undefined;
}

/** What happened to one exposed managed credential. */
export interface Containment {
  fingerprint: string;
  identityId: string;
  owner: string | undefined;
  incident: string;
  /**
   * `contained` now; `started`: its campaign handed to the revocation state machine (in AWS);
   * `already-contained` by an earlier sighting; `in-progress`: another scanner is containing it
   * at this moment (nothing done here, nobody alerted); `failed` (see failures).
   */
  status: 'contained' | 'started' | 'already-contained' | 'in-progress' | 'failed';
  campaignId?: string | undefined;
  reissuedVersionId?: string | undefined;
  reissue?: string | undefined;
  report?: string | undefined;
  failures: string[];
  /** Where it was first seen. */
  firstSeen: string;
  /**
   * Whether its owner was alerted (absent: no alerts configured, contained or being contained
   * elsewhere, or a failure its owner was told of before); `false` with `alertError` when sending
   * failed, which never fails the containment.
   */
  alerted?: boolean | undefined;
  alertError?: string | undefined;
}

/**
 * Contains each managed credential among `hits` once: the first sighting of a fingerprint is
 * recorded (a conditional write) and audited `exposure.detected`; whoever then claims it (a
 * conditional claim with a lease of {@link CONTAINMENT_LEASE_MS}) ends and re-issues it through
 * {@link ExposureContainment}, audited `exposure.contained` and `exposure.reissued`. A
 * fingerprint contained (or started) before is `already-contained`; one another scanner holds
 * the claim of is `in-progress` (nothing done, nobody alerted); one whose earlier containment
 * failed, or did not finish (a crash between record and campaign, once its lease ran out), is
 * contained again. Its owner is alerted through `deps.alerts` of each containment that ended or
 * started, and of a failure only the first time one failed: a retried batch (Lambda retries a
 * failed one twice) or a later sighting that fails again alerts nobody, one that succeeds
 * alerts `contained`. An alert that cannot be sent is said on the result, never thrown.
 */
export async function containHits(deps: ContainDeps, hits: readonly ExposureHit[]): Promise<Containment[]> {
  const first = new Map<string, ExposureHit & { managed: ManagedRef }>();
  const dead = new Map<string, ManagedRef>();
  for (const hit of hits) {
    if (!hit.managed) continue;
    // A revoked version is dead already: nothing to contain (said below if an exposure ended it).
    if (hit.managed.versionStage === 'revoked') dead.set(hit.fingerprint, hit.managed);
    else if (!first.has(hit.fingerprint)) first.set(hit.fingerprint, { ...hit, managed: hit.managed });
  }
  const results: Containment[] = [];
  for (const [fingerprint, ref] of dead) {
    const known = await deps.exposures.getExposure(fingerprint);
    if (!known?.containedAt) continue;
    results.push({
      fingerprint,
      identityId: ref.identityId,
      owner: ref.owner,
      incident: exposureIncident(fingerprint),
      status: 'already-contained',
      campaignId: known.campaignId,
      failures: [],
      firstSeen: placeOf(known),
    });
  }
  for (const [fingerprint, hit] of first) {
    const ref = hit.managed;
    const incident = exposureIncident(fingerprint);
    const recorded = await deps.exposures.recordExposure({
      fingerprint,
      identityId: ref.identityId,
      kind: ref.kind,
      versionId: ref.versionId,
      handle: ref.handle,
      source: hit.source,
      line: hit.line,
      rule: hit.rule,
      detectedAt: deps.clock.now().toISOString(),
    });
    const known = recorded ? undefined : await deps.exposures.getExposure(fingerprint);
    const base = {
      fingerprint,
      identityId: ref.identityId,
      owner: ref.owner,
      incident,
      failures: [] as string[],
      firstSeen: known ? placeOf(known) : placeOf(hit),
    };
    if (known && isHandled(known.outcome)) {
      results.push({ ...base, status: 'already-contained', campaignId: known.campaignId });
      continue;
    }
    const now = deps.clock.now();
    const claimed = await deps.exposures.claimContainment(fingerprint, {
      at: now.toISOString(),
      until: new Date(now.getTime() + CONTAINMENT_LEASE_MS).toISOString(),
    });
    if (!claimed) {
      // Another scanner saw it at the same moment and contains it (or just did): not twice.
      const after = await deps.exposures.getExposure(fingerprint);
      const done = after !== undefined && isHandled(after.outcome);
      results.push({
        ...base,
        status: done ? 'already-contained' : 'in-progress',
        campaignId: after?.campaignId,
      });
      continue;
    }
    // Read under the claim: a failure is alerted by the first attempt that fails, not by retries.
    const failureAlerted = claimed.failedAt !== undefined;
    if (recorded) await deps.audit.append(detectedEvent(deps.actor, hit, ref, incident));
    let result: ContainmentResult;
    try {
      result = await deps.containment.contain({ incident, fingerprint, identityId: ref.identityId });
    } catch (error) {
      // Not marked contained: a retry or the next sighting tries again.
      await deps.exposures.releaseContainment(fingerprint, deps.clock.now().toISOString());
      const message = error instanceof Error ? error.message : String(error);
      const failed: Containment = { ...base, status: 'failed', failures: [message] };
      results.push(failureAlerted ? failed : { ...failed, ...(await alertOwner(deps, failed, 'failed')) });
      continue;
    }
    await deps.audit.append({
      type: 'exposure.contained',
      actor: deps.actor,
      subject: ref.identityId,
      details: {
        campaignId: result.campaignId,
        incident,
        outcome: result.outcome,
        fingerprint,
        handle: ref.handle,
        versionId: ref.versionId,
        revoked: result.revoked,
        ...reasonOf(result),
      },
    });
    if (result.reissuedVersionId) {
      await deps.audit.append(
        reissuedEvent(deps.actor, ref.identityId, {
          campaignId: result.campaignId,
          incident,
          versionId: result.reissuedVersionId,
          fingerprint,
        }),
      );
    }
    await deps.exposures.markContained(fingerprint, {
      campaignId: result.campaignId,
      outcome: result.outcome,
      containedAt: deps.clock.now().toISOString(),
    });
    const ended: Containment = {
      ...base,
      status: result.outcome,
      campaignId: result.campaignId,
      reissuedVersionId: result.reissuedVersionId,
      reissue: result.reissue,
      report: result.report,
      failures: result.failures,
    };
    results.push(
      result.outcome === 'failed' && failureAlerted
        ? ended
        : { ...ended, ...(await alertOwner(deps, ended, result.outcome)) },
    );
  }
  return results;
}

/** The `reason` an `exposure.contained` event reads with: only started, or what failed. */
function reasonOf(result: ContainmentResult): { reason?: string } {
  if (result.outcome === 'started') return { reason: `containment started (campaign ${result.campaignId})` };
  return result.failures.length ? { reason: result.failures.join('; ') } : {};
}

/** Tells the owner of one attempted containment, placed where it was first seen. */
const alertOwner = (
  deps: Pick<ContainDeps, 'alerts'>,
  c: Containment,
  status: ExposureAlert['status'],
): Promise<AlertDelivery> => deliverAlert(deps.alerts, 'exposure', status, { ...c, where: c.firstSeen });

/** `exposure.detected`: where, by which rule, the fingerprint and the version; its `reason` reads in the report's history. */
function detectedEvent(actor: string, hit: ExposureHit, ref: ManagedRef, incident: string): AuditEventInput {
  return {
    type: 'exposure.detected',
    actor,
    subject: ref.identityId,
    details: {
      source: hit.source.kind,
      location: hit.source.location,
      ...(hit.source.commit ? { commit: hit.source.commit } : {}),
      line: hit.line,
      rule: hit.rule,
      encoding: hit.encoding,
      fingerprint: ref.fingerprint,
      identity: ref.identityId,
      versionId: ref.versionId,
      handle: ref.handle,
      incident,
      reason: `exposed in ${placeOf(hit)} (rule ${hit.rule}); contained as ${incident}`,
    },
  };
}

/** An `exposed-unmanaged` finding per unmanaged fingerprint, naming every place it was seen. */
export function unmanagedFindings(hits: readonly ExposureHit[]): Finding[] {
  const byFingerprint = new Map<string, ExposureHit[]>();
  for (const hit of hits) {
    if (hit.status !== 'unmanaged') continue;
    byFingerprint.set(hit.fingerprint, [...(byFingerprint.get(hit.fingerprint) ?? []), hit]);
  }
  return [...byFingerprint].map(([fingerprint, seen]) => {
    const [hit] = seen as [ExposureHit, ...ExposureHit[]];
    const places = seen.map(placeOf);
    return {
      id: `exposed-unmanaged:${fingerprint}`,
      type: 'exposed-unmanaged',
      severity: 'high',
      subject: `${hit.source.kind}:${hit.source.location}`,
      identityIds: [],
      handles: [],
      message: `a credential keywarden does not manage (rule ${hit.rule}, ${hit.prefix}, fingerprint ${fingerprint.slice(0, SHORT_FINGERPRINT)}…) is exposed in ${places.slice(0, 5).join(', ')}${places.length > 5 ? ` and ${places.length - 5} more places` : ''}${hit.note ? `; ${hit.note}` : ''}: revoke it where it was issued, remove it from the text, and declare it in the inventory so keywarden rotates it`,
    };
  });
}

/**
 * Saves unmanaged findings with the latest findings (a new run holding the previous run's
 * findings and these, one per id), so `keywarden findings` shows them beside discovery's.
 */
export async function saveUnmanagedFindings(
  deps: { findings: FindingStore; clock: Clock },
  findings: readonly Finding[],
): Promise<void> {
  if (findings.length === 0) return;
  const now = deps.clock.now();
  const latest = await deps.findings.latestFindings();
  const ids = new Set(findings.map((f) => f.id));
  await deps.findings.saveFindings({
    runId: `scan-${now.toISOString().replace(/[-:.]/g, '')}`,
    at: now.toISOString(),
    findings: [...(latest?.findings ?? []).filter((f) => !ids.has(f.id)), ...findings],
  });
}

/** What a scan runs on, apart from the detector and the containment: wiring's `exposure` part. */
export type ExposureDeps = ManagedIndexDeps & {
  exposures: ExposureStore;
  audit: Pick<AuditLog, 'append'>;
  findings: FindingStore;
  clock: Clock;
};
