/**
 * Use from where it should not be: a managed credential used from outside its identity's
 * `allowedRunners`, or a CI job's credential used after its job ended.
 *
 * Trails (the OpenBao audit device, CloudTrail) say which handle was used, when and from which
 * address; this module attributes each use to its identity by handle (a token accessor, an
 * access key id, a job's SourceIdentity) and judges it. Never a value: handles only.
 */
import type { CiCredentialRecord } from './ci-records.ts';
import { reissuedEvent, UNEXPECTED_USE_INCIDENT_PREFIX } from './containment-reissue.ts';
import type { CredentialVersion } from './credential-version.ts';
import type { DiscoveredCredential } from './discovery.ts';
import { deliverAlert } from './exposure-alert.ts';
import type { Finding } from './findings.ts';
import { type AllowedRunners, declaredAccessors, type Identity } from './identity.ts';
import { scopeKey } from './kinds.ts';
import type { AuditLog, ContainmentResult, ExposureAlerts, ExposureContainment } from './ports.ts';

/**
 * What kind of handle a trail can match: what the audit device or CloudTrail records of a
 * caller. `vault-approle-role` is an AppRole role as `<mount>/<role name>`: the device names the
 * role of a login and of its token's requests, never which secret-id logged in.
 */
export type HandleKind =
  | 'vault-accessor'
  | 'vault-approle-role'
  | 'aws-access-key-id'
  | 'aws-source-identity';

/** A handle to look for, with its kind. */
export interface WatchedHandle {
  handle: string;
  kind: HandleKind;
}

/** One use of a credential as a trail records it. */
export interface HandleUse {
  /** The handle that made the request: token accessor, access key id, SourceIdentity. */
  handle: string;
  /** When (ISO 8601, as the trail wrote it). */
  at: string;
  /** The caller's address, when the trail records one (a service name in CloudTrail is not an address). */
  from?: string | undefined;
  /** The runner's label, when the trail knows it (neither OpenBao nor CloudTrail does). */
  runner?: string | undefined;
  /** What was done, e.g. `read secret/data/app`. */
  action?: string | undefined;
  /** The trail: `openbao-audit`, `cloudtrail`. */
  source: string;
}

/** A use attributed to the identity whose credential made it. */
export interface ObservedUse extends HandleUse {
  identityId: string;
}

/** A reader of uses: the requests made with the given handles (only of the kinds it reads). */
export interface UseTrail {
  readonly name: string;
  readonly reads: readonly HandleKind[];
  usesOf(handles: readonly WatchedHandle[]): Promise<HandleUse[]>;
}

/**
 * Whether an address lies in one of the CIDR ranges; `undefined` when `address` is not an IP
 * address (CloudTrail writes a service's name when a service called). Node's `net.BlockList` in
 * the adapters: core holds no address arithmetic.
 */
export interface AddressRanges {
  contains(cidrs: readonly string[], address: string): boolean | undefined;
}

/** What watching use takes: the trails, the range check, and the CI job credentials to check for use after their end. */
export interface UseWatch {
  trails: readonly UseTrail[];
  ranges: AddressRanges;
  /** CI job credentials (ended ones matter); absent, no `used-after-job-end` findings. */
  ciRecords?: () => Promise<readonly CiCredentialRecord[]>;
}

/** The handle kind an identity's credentials are known by in a trail, for the kinds a trail can attribute. */
const HANDLE_KIND: Partial<Record<Identity['kind'], HandleKind>> = {
  // The token's accessor is what the audit device records (HMAC'd) for every request it makes.
  'vault-token': 'vault-accessor',
  // The role's logins and its tokens' requests; which secret-id logged in, the device does not tell.
  'vault-approle-secret-id': 'vault-approle-role',
  // CloudTrail's userIdentity.accessKeyId of a call signed with the key.
  'aws-iam-access-key': 'aws-access-key-id',
};

/**
 * How long after a version's `verifiedAt` a use is still taken for keywarden's own test of it
 * (rotation's testSecret uses the new credential, from wherever keywarden runs, just before it
 * records `verifiedAt`): the clocks of keywarden and of the trail may differ by this much.
 */
export const OWN_TEST_SKEW_MS = 2_000;

/** The handles one identity's credentials are known by in a trail. */
function handlesOf(
  identity: Identity,
  versions: readonly CredentialVersion[],
  discovered: readonly DiscoveredCredential[],
): string[] {
  if (identity.kind === 'vault-approle-secret-id') {
    return [`${identity.scope.mount.replace(/^\/+|\/+$/g, '')}/${identity.scope.roleName}`];
  }
  const key = scopeKey(identity);
  return [
    ...versions.filter((v) => v.stage !== 'revoked').map((v) => v.handle),
    ...discovered.filter((c) => c.key === key && c.status === 'active').map((c) => c.handle),
    ...(identity.kind === 'vault-token' ? declaredAccessors(identity.scope) : []),
  ];
}

/**
 * The handles to watch: for each identity with `allowedRunners` whose kind a trail can
 * attribute, the handles of its live credentials (kept versions not revoked, what discovery
 * found under its scope, accessors it declares; an AppRole identity's role), mapped to the
 * identity, with the time up to which a use is keywarden's own test of a version it verified.
 */
export function watchedHandles(
  identities: readonly Identity[],
  versions: ReadonlyMap<string, readonly CredentialVersion[]>,
  discovered: readonly DiscoveredCredential[],
): Map<string, { identityId: string; kind: HandleKind; ownTestUntil?: number }> {
  const watched = new Map<string, { identityId: string; kind: HandleKind; ownTestUntil?: number }>();
  for (const identity of identities) {
    const kind = HANDLE_KIND[identity.kind];
    if (!identity.allowedRunners || !kind) continue;
    const kept = versions.get(identity.id) ?? [];
    for (const handle of handlesOf(identity, kept, discovered)) {
      const verifiedAt = kept.find((v) => v.handle === handle)?.verifiedAt;
      watched.set(handle, {
        identityId: identity.id,
        kind,
        ...(verifiedAt ? { ownTestUntil: Date.parse(verifiedAt) + OWN_TEST_SKEW_MS } : {}),
      });
    }
  }
  return watched;
}

/** Whether one use is allowed, outside, or cannot be judged (no address or label the rules speak of). */
export function judgeUse(
  allowed: AllowedRunners,
  use: Pick<HandleUse, 'from' | 'runner'>,
  ranges: AddressRanges,
): 'allowed' | 'outside' | 'unknown' {
  const byAddress = allowed.cidrs && use.from ? ranges.contains(allowed.cidrs, use.from) : undefined;
  const byLabel = allowed.labels && use.runner ? allowed.labels.includes(use.runner) : undefined;
  if (byAddress || byLabel) return 'allowed';
  if (byAddress === false || byLabel === false) return 'outside';
  return 'unknown';
}

const describeAllowed = (allowed: AllowedRunners): string =>
  [
    allowed.cidrs ? `cidrs ${allowed.cidrs.join(', ')}` : '',
    allowed.labels ? `labels ${allowed.labels.join(', ')}` : '',
  ]
    .filter(Boolean)
    .join('; ');

/**
 * `used-from-unexpected-runner` (high): one finding per identity and handle used from outside
 * its `allowedRunners`, saying from where, when (first and last) and what. An identity without
 * `allowedRunners` is not checked; a use with no address or label the rules speak of is not judged.
 */
export function unexpectedRunnerFindings(
  identities: readonly Identity[],
  uses: readonly ObservedUse[],
  ranges: AddressRanges,
): Finding[] {
  const byId = new Map(identities.map((identity) => [identity.id, identity]));
  const outside = new Map<string, { identity: Identity; handle: string; uses: ObservedUse[] }>();
  for (const use of uses) {
    const identity = byId.get(use.identityId);
    if (!identity?.allowedRunners) continue;
    if (judgeUse(identity.allowedRunners, use, ranges) !== 'outside') continue;
    const key = `${identity.id}\u0000${use.handle}`;
    const entry = outside.get(key) ?? { identity, handle: use.handle, uses: [] };
    entry.uses.push(use);
    outside.set(key, entry);
  }
  return [...outside.values()].map(({ identity, handle, uses: seen }) => {
    const sorted = [...seen].sort((a, b) => a.at.localeCompare(b.at));
    const first = sorted[0] as ObservedUse;
    const last = sorted[sorted.length - 1] as ObservedUse;
    const where = [...new Set(sorted.map((use) => use.from ?? `runner ${use.runner}`))].join(', ');
    const when =
      sorted.length === 1 ? `at ${first.at}` : `${sorted.length} times from ${first.at} to ${last.at}`;
    return {
      id: `used-from-unexpected-runner:${identity.id}:${handle}`,
      type: 'used-from-unexpected-runner' as const,
      severity: 'high' as const,
      subject: identity.id,
      identityIds: [identity.id],
      handles: [handle],
      message: `${identity.id}: ${handle} was used from ${where} ${when} (${first.source}${first.action ? `: ${first.action}` : ''}), outside its allowedRunners (${describeAllowed(identity.allowedRunners as AllowedRunners)})${identity.policy.onUnexpectedUse === 'contain' ? '; policy.onUnexpectedUse is contain' : ''}`,
    };
  });
}

/**
 * `used-after-job-end` (high): a CI job credential (its token's accessor, its session's
 * SourceIdentity) used after its job ended. A denied attempt counts: someone still held it.
 */
export function afterJobEndFindings(
  records: readonly CiCredentialRecord[],
  uses: readonly HandleUse[],
): Finding[] {
  const findings: Finding[] = [];
  for (const record of records) {
    if (!record.ended) continue;
    const ended = Date.parse(record.ended.at);
    for (const handle of [record.vault?.accessor, record.aws?.sourceIdentity]) {
      if (!handle) continue;
      const after = uses
        .filter((use) => use.handle === handle && Date.parse(use.at) > ended)
        .sort((a, b) => a.at.localeCompare(b.at));
      const first = after[0];
      if (!first) continue;
      const where = [...new Set(after.map((use) => use.from ?? 'an unknown address'))].join(', ');
      findings.push({
        id: `used-after-job-end:ci:${record.id}:${handle}`,
        type: 'used-after-job-end',
        severity: 'high',
        subject: `ci:${record.id}`,
        identityIds: [],
        handles: [handle],
        message: `CI job ${record.jobKey} (grant ${record.grant}, exchange ${record.id}): ${handle} was used ${after.length === 1 ? 'once' : `${after.length} times`} after its credentials ended at ${record.ended.at} (by ${record.ended.by}), first at ${first.at} from ${where} (${first.source}${first.action ? `: ${first.action}` : ''})`,
      });
    }
  }
  return findings;
}

/**
 * Reads the trails for the watched credentials and the CI job credentials, and returns both
 * kinds of finding. Each trail is asked only for the handle kinds it reads.
 */
export async function findUnexpectedUse(
  watch: UseWatch,
  input: {
    identities: readonly Identity[];
    versions: ReadonlyMap<string, readonly CredentialVersion[]>;
    discovered: readonly DiscoveredCredential[];
  },
): Promise<Finding[]> {
  const watched = watchedHandles(input.identities, input.versions, input.discovered);
  const ci = (await watch.ciRecords?.()) ?? [];
  const ciHandles = new Map<string, HandleKind>();
  for (const record of ci.filter((r) => r.ended)) {
    if (record.vault) ciHandles.set(record.vault.accessor, 'vault-accessor');
    if (record.aws) ciHandles.set(record.aws.sourceIdentity, 'aws-source-identity');
  }
  const observed: ObservedUse[] = [];
  const ciUses: HandleUse[] = [];
  for (const trail of watch.trails) {
    const reads = new Set(trail.reads);
    const mine = [...watched].map(([handle, w]) => ({ handle, kind: w.kind }));
    const jobs = [...ciHandles].map(([handle, kind]) => ({ handle, kind }));
    const asked = [...mine, ...jobs].filter((w) => reads.has(w.kind));
    if (asked.length === 0) continue;
    for (const use of await trail.usesOf(asked)) {
      const owner = watched.get(use.handle);
      // keywarden's own test of a version it issued is no runner's use.
      const ownTest = owner?.ownTestUntil !== undefined && Date.parse(use.at) <= owner.ownTestUntil;
      if (owner && !ownTest) observed.push({ ...use, identityId: owner.identityId });
      if (ciHandles.has(use.handle)) ciUses.push(use);
    }
  }
  return [
    ...unexpectedRunnerFindings(input.identities, observed, watch.ranges),
    ...afterJobEndFindings(ci, ciUses),
  ];
}

/** A credential to contain: the handle an unexpected use was seen on, with its fingerprint when kept. */
export interface ContainRequest {
  findingId: string;
  identityId: string;
  handle: string;
  /** The HMAC fingerprint of the value (containment is idempotent by it), when keywarden kept one. */
  fingerprint?: string | undefined;
  /** The identity's declared owner, whom an alert names. */
  owner?: string | undefined;
  /** Where and when the key was first used from outside (`203.0.113.9 at 2026-…`), as an alert says it. */
  where: string;
}

/** `203.0.113.9 at 2026-…`: where and when the first of `uses` came from. */
const firstUse = (uses: readonly HandleUse[]): string | undefined => {
  const first = [...uses].sort((a, b) => a.at.localeCompare(b.at))[0];
  return first && `${first.from ?? `runner ${first.runner}`} at ${first.at}`;
};

/**
 * The credentials `policy.onUnexpectedUse: contain` asks to end: one per
 * `used-from-unexpected-runner` finding on such an identity, with its owner and where it was
 * first used from (among `uses`, when the caller has them; else the finding's message says it).
 * Identities set to `report` (the default) yield nothing: the finding is the whole answer.
 */
export function credentialsToContain(
  findings: readonly Finding[],
  identities: readonly Identity[],
  versions: ReadonlyMap<string, readonly CredentialVersion[]>,
  uses: readonly HandleUse[] = [],
): ContainRequest[] {
  const byId = new Map(identities.map((identity) => [identity.id, identity]));
  const requests: ContainRequest[] = [];
  for (const finding of findings) {
    if (finding.type !== 'used-from-unexpected-runner') continue;
    const identityId = finding.identityIds[0];
    const identity = identityId ? byId.get(identityId) : undefined;
    if (identity?.policy.onUnexpectedUse !== 'contain') continue;
    for (const handle of finding.handles) {
      const fingerprint = versions.get(identity.id)?.find((v) => v.handle === handle)?.fingerprint;
      const where = firstUse(uses.filter((use) => use.handle === handle)) ?? finding.message;
      requests.push({
        findingId: finding.id,
        identityId: identity.id,
        handle,
        fingerprint,
        owner: identity.owner,
        where,
      });
    }
  }
  return requests;
}

/** The incident a containment of unexpected use answers: `UNEXPECTED-USE-<first 12 hex of the fingerprint>`. */
export function unexpectedUseIncident(fingerprint: string): string {
  return `${UNEXPECTED_USE_INCIDENT_PREFIX}${fingerprint.replace(/^[a-z0-9-]+:/, '').slice(0, 12)}`;
}

/** What containing one credential used from where it should not be came to. */
export interface UseContainment {
  identityId: string;
  handle: string;
  findingId: string;
  /** `skipped`: keywarden keeps no fingerprint of it, so no campaign can name exactly it (see `reason`). */
  status: 'contained' | 'started' | 'failed' | 'skipped';
  incident?: string | undefined;
  campaignId?: string | undefined;
  reissuedVersionId?: string | undefined;
  report?: string | undefined;
  reason?: string | undefined;
  /** Whether its owner was alerted (absent: no alerting, or skipped); `false` with `alertError` when sending failed. */
  alerted?: boolean | undefined;
  alertError?: string | undefined;
}

/** What {@link containUnexpectedUse} takes. */
export interface UseContainDeps {
  containment: ExposureContainment;
  /** Where a re-issue made here is audited (`exposure.reissued`). */
  audit: Pick<AuditLog, 'appendMany'>;
  /** Who contains, in the audit trail. */
  actor: string;
  /** Where each containment attempted (contained or failed) is told to its owner; absent, nobody is. */
  alerts?: ExposureAlerts | undefined;
}

/**
 * Ends each credential `policy.onUnexpectedUse: contain` asks to, through the exposure
 * containment (an incident campaign on exactly that fingerprint, with re-issue). Once revoked,
 * its version is `revoked` and no longer watched, so the next run neither finds nor contains it
 * again. A credential with no fingerprint (a token declared by accessor, an AppRole role) is
 * skipped, saying how to end it. A re-issue the containment made itself (the local runtime's; the
 * state machine's comes later and its revocation report step audits it) is audited
 * `exposure.reissued`, as containHits does. With `deps.alerts`, each containment attempted is
 * alerted to its owner; an alert that cannot be sent is said on the result, never thrown.
 */
export async function containUnexpectedUse(
  deps: UseContainDeps,
  requests: readonly ContainRequest[],
): Promise<UseContainment[]> {
  const results: UseContainment[] = [];
  for (const request of requests) {
    const result = await containOne(deps.containment, request);
    const { fingerprint } = request;
    if (result.reissuedVersionId && fingerprint) {
      await deps.audit.appendMany([
        reissuedEvent(deps.actor, result.identityId, {
          campaignId: result.campaignId,
          incident: result.incident,
          versionId: result.reissuedVersionId,
          fingerprint,
        }),
      ]);
    }
    if (!deps.alerts || result.status === 'skipped' || !fingerprint) {
      results.push(result);
      continue;
    }
    const sent = await deliverAlert(deps.alerts, 'unexpected-use', result.status, {
      ...result,
      owner: request.owner,
      incident: result.incident ?? unexpectedUseIncident(fingerprint),
      where: request.where,
      fingerprint,
      failures: result.reason ? [result.reason] : [],
    });
    results.push({ ...result, ...sent });
  }
  return results;
}

async function containOne(
  containment: ExposureContainment,
  request: ContainRequest,
): Promise<UseContainment> {
  const { identityId, handle, findingId, fingerprint } = request;
  if (!fingerprint) {
    return {
      identityId,
      handle,
      findingId,
      status: 'skipped',
      reason: `keywarden keeps no fingerprint of ${handle} (it did not issue or adopt it): end it with keywarden revoke --incident INC-… --selector "identity=${identityId},handle=${handle}" --reissue`,
    };
  }
  const incident = unexpectedUseIncident(fingerprint);
  let result: ContainmentResult;
  try {
    result = await containment.contain({ incident, fingerprint, identityId });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { identityId, handle, findingId, status: 'failed', incident, reason };
  }
  return {
    identityId,
    handle,
    findingId,
    status: result.outcome,
    incident,
    campaignId: result.campaignId,
    reissuedVersionId: result.reissuedVersionId,
    report: result.report,
    ...(result.failures.length ? { reason: result.failures.join('; ') } : {}),
  };
}
