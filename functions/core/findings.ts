import * as z from 'zod';
import type { CredentialVersion } from './credential-version.ts';
import { deniedLookupOf } from './denied-lookup.ts';
import type { DiscoveredCredential } from './discovery.ts';
import { formatAge, toMillis } from './duration.ts';
import { type BreakglassRole, type Grant, isReviewOverdue } from './grant.ts';
import { groupBy } from './group-by.ts';
import { type Identity, PRIVILEGED_STAGES, stagesOf } from './identity.ts';
import { KINDS, roleKey, scopeKey } from './kinds.ts';
import { onFirstUse } from './on-first-use.ts';
import { deliveryKey } from './resource-key.ts';

export const SeveritySchema = z.enum(['info', 'low', 'medium', 'high', 'critical']);
export type Severity = z.infer<typeof SeveritySchema>;
export const severityRank = (severity: Severity): number => SeveritySchema.options.indexOf(severity);

export const FindingTypeSchema = z.enum([
  'undeclared',
  'missing',
  'unreadable',
  'no-owner',
  'over-max-age',
  'stale',
  'reused-across-environments',
  'separation-of-duties',
  'used-after-rotation',
  'breakglass-review-overdue',
  /** A credential keywarden does not manage, found exposed (a log, a repository, a CI variable). */
  'exposed-unmanaged',
  /** A managed credential used from an address or runner outside its identity's `allowedRunners`. */
  'used-from-unexpected-runner',
  /** A CI job credential used after its job ended. */
  'used-after-job-end',
]);
export type FindingType = z.infer<typeof FindingTypeSchema>;

export const FindingSchema = onFirstUse(() =>
  z.object({
    /** Stable across runs for the same problem on the same thing. */
    id: z.string(),
    type: FindingTypeSchema,
    severity: SeveritySchema,
    /** The declared identity concerned, or the resource key of an undeclared credential. */
    subject: z.string(),
    identityIds: z.array(z.string()),
    handles: z.array(z.string()),
    message: z.string(),
  }),
);
export type Finding = z.infer<typeof FindingSchema>;

const SEVERITY: Record<FindingType, Severity> = {
  'reused-across-environments': 'critical',
  undeclared: 'high',
  'over-max-age': 'high',
  'separation-of-duties': 'high',
  missing: 'medium',
  unreadable: 'medium',
  'no-owner': 'medium',
  stale: 'medium',
  'used-after-rotation': 'high',
  'breakglass-review-overdue': 'high',
  'exposed-unmanaged': 'high',
  'used-from-unexpected-runner': 'high',
  'used-after-job-end': 'high',
};

/**
 * Break-glass grants that ended without the review due from someone other than the
 * requester: elevated access nobody has looked at afterwards.
 */
export function grantFindings(grants: readonly Grant[], now: Date): Finding[] {
  return grants
    .filter((grant) => isReviewOverdue(grant, now))
    .map((grant) => ({
      id: `breakglass-review-overdue:${grant.grantId}`,
      type: 'breakglass-review-overdue' as const,
      severity: SEVERITY['breakglass-review-overdue'],
      subject: `grant:${grant.grantId}`,
      identityIds: [],
      handles: grant.credentials.map((c) => c.handle),
      message: `break-glass grant ${grant.grantId} (${grant.roleId}, requested by ${grant.requester.kind}:${grant.requester.id}) ended ${grant.endedAt} and its review was due ${grant.review?.dueAt}: run \`keywarden breakglass review ${grant.grantId} --notes …\` (someone other than the requester)`,
    }));
}

export interface AssessOptions {
  now: Date;
  /** Credential versions keywarden keeps per identity (rotation results), when known. */
  versions?: ReadonlyMap<string, readonly CredentialVersion[]>;
  /** A credential not used for this long (or never used and this old) is stale. */
  staleAfter: string;
  /**
   * The break-glass roles of the inventory (`breakglass.roles`). The IAM role an aws-role
   * target assumes is declared by it: never undeclared, and missing when it does not exist.
   */
  breakglassRoles?: readonly BreakglassRole[];
}

/**
 * Reconciles the declared inventory with what discovery found and returns the
 * findings, most severe first. Pure: the same input gives the same findings.
 */
export function assessFindings(
  identities: readonly Identity[],
  discovered: readonly DiscoveredCredential[],
  options: AssessOptions,
): Finding[] {
  const findings: Finding[] = [];
  const add = (
    type: FindingType,
    subject: string,
    identityIds: string[],
    handles: string[],
    message: string,
  ) =>
    findings.push({
      id: `${type}:${subject}${handles.length === 1 ? `:${handles[0]}` : ''}`,
      type,
      severity: SEVERITY[type],
      subject,
      identityIds,
      handles,
      message,
    });
  const now = options.now.getTime();
  const staleAfter = toMillis(options.staleAfter);
  const byKey = groupBy(discovered, (credential) => credential.key);
  /** Which identity each resource key belongs to: its own scope, or the delivery target it writes to. */
  const owners = new Map<string, Identity[]>();
  const claim = (key: string, identity: Identity) => owners.set(key, [...(owners.get(key) ?? []), identity]);

  for (const identity of identities) {
    const key = scopeKey(identity);
    claim(key, identity);
    if (identity.delivery) claim(deliveryKey(identity.delivery), identity);
    if (!identity.owner) {
      add('no-owner', identity.id, [identity.id], [], `${identity.id} has no owner: nobody answers for it`);
    }
    const privileged = stagesOf(identity).filter((stage) => PRIVILEGED_STAGES.includes(stage));
    if (privileged.length > 1) {
      add(
        'separation-of-duties',
        identity.id,
        [identity.id],
        [],
        `${identity.id} serves ${privileged.join(' and ')}: sign, publish and deploy must use separate identities`,
      );
    }
    const found = (byKey.get(key) ?? []).filter((credential) => credential.status === 'active');
    // A lease prefix with no live lease is normal: dynamic secrets come and go.
    if (!byKey.has(key) && KINDS[identity.kind].reportMissing) {
      add('missing', identity.id, [identity.id], [], `${identity.id} is declared but ${key} does not exist`);
    }
    const denied = deniedOf(byKey.get(key));
    if (denied) {
      add(
        'unreadable',
        identity.id,
        [identity.id],
        [],
        `${identity.id} is declared but ${unreadable(key, denied)}`,
      );
    }
    for (const credential of found) {
      if (credential.createdAt) {
        const age = now - Date.parse(credential.createdAt);
        if (KINDS[identity.kind].maxAgeApplies && age > toMillis(identity.policy.maxAge)) {
          add(
            'over-max-age',
            identity.id,
            [identity.id],
            [credential.handle],
            `${identity.id}: ${credential.label} is ${formatAge(age)} old, over its max age of ${identity.policy.maxAge}${
              identity.policy.rotate
                ? ''
                : ' (policy.rotate is false: keywarden does not rotate it; replace it where it is issued)'
            }`,
          );
        }
      }
      const idle = idleFor(credential, now);
      if (idle !== undefined && idle.millis > staleAfter) {
        add(
          'stale',
          identity.id,
          [identity.id],
          [credential.handle],
          `${identity.id}: ${credential.label} ${idle.neverUsed ? 'was never used' : 'was last used'} ${formatAge(idle.millis)} ago${idle.neverUsed ? ' (created)' : ''}, over ${options.staleAfter}`,
        );
      }
    }
  }

  // A break-glass role's IAM role is declared by the role: an incident would need it to exist.
  const breakglassKeys = new Set<string>();
  for (const role of options.breakglassRoles ?? []) {
    if (role.target.type !== 'aws-role') continue;
    const key = roleKey(role.target.roleArn);
    breakglassKeys.add(key);
    if (!byKey.has(key)) {
      add(
        'missing',
        `breakglass:${role.id}`,
        [],
        [],
        `break-glass role ${role.id} is declared but ${key} (${role.target.roleArn}) does not exist: a request for it would fail`,
      );
    }
    const denied = deniedOf(byKey.get(key));
    if (denied) {
      add(
        'unreadable',
        `breakglass:${role.id}`,
        [],
        [],
        `break-glass role ${role.id} is declared but ${unreadable(key, denied)}`,
      );
    }
  }

  // A retired IAM key that was still used after its successor was delivered: kept inactive, someone must look.
  for (const identity of identities) {
    for (const version of options.versions?.get(identity.id) ?? []) {
      if (version.stage !== 'disabled') continue;
      add(
        'used-after-rotation',
        identity.id,
        [identity.id],
        [version.handle],
        `${identity.id}: ${version.handle} ${version.note ?? 'was kept inactive'}`,
      );
    }
  }

  // Two declared identities on one credential: if they sit in different privileged stages, duties are shared.
  for (const [key, claimants] of owners) {
    const byStage = new Set(
      claimants.flatMap((identity) =>
        stagesOf(identity).filter((stage) => PRIVILEGED_STAGES.includes(stage)),
      ),
    );
    const ids = [...new Set(claimants.map((identity) => identity.id))];
    if (ids.length > 1 && byStage.size > 1) {
      add(
        'separation-of-duties',
        key,
        ids,
        [],
        `${key} is shared by ${ids.join(', ')} across ${[...byStage].join(' and ')}: one credential serves several privileged stages`,
      );
    }
  }

  for (const [key, credentials] of byKey) {
    if (owners.has(key) || breakglassKeys.has(key)) continue;
    const active = credentials.filter((credential) => credential.status === 'active');
    const described = credentials.map((credential) => credential.label).join(', ');
    add(
      'undeclared',
      key,
      [],
      credentials.map((credential) => credential.handle),
      `${described} exists but no identity declares it (${active.length} active)`,
    );
  }

  // The same value in more than one environment, compared by fingerprint only.
  const byFingerprint = groupBy(
    discovered.filter((credential) => credential.fingerprint && credential.status === 'active'),
    (credential) => credential.fingerprint as string,
  );
  for (const [fingerprint, credentials] of byFingerprint) {
    const users = credentials.map((credential) => ({
      credential,
      identities: owners.get(credential.key) ?? [],
    }));
    const environments = new Set(
      users.flatMap((use) => use.identities.map((identity) => identity.pipeline.environment)),
    );
    const undeclared = users.filter((use) => use.identities.length === 0);
    const places = new Set(credentials.map((credential) => credential.key));
    if (environments.size + (undeclared.length > 0 ? 1 : 0) > 1 && places.size > 1) {
      const ids = [...new Set(users.flatMap((use) => use.identities.map((identity) => identity.id)))].sort();
      add(
        'reused-across-environments',
        `fingerprint:${fingerprint.replace(/^hmac-sha256:/, '').slice(0, 12)}`,
        ids,
        credentials.map((credential) => credential.handle),
        `one credential value is used in ${[...environments].sort().join(', ')}${undeclared.length ? ' and undeclared places' : ''}: ${[...places].sort().join(', ')}`,
      );
    }
  }

  return findings.sort(
    (a, b) =>
      severityRank(b.severity) - severityRank(a.severity) ||
      a.type.localeCompare(b.type) ||
      a.id.localeCompare(b.id),
  );
}

/** The first refused lookup among the credentials found under one key, if any. */
function deniedOf(
  credentials: readonly DiscoveredCredential[] | undefined,
): { permission: string; answer: string } | undefined {
  for (const credential of credentials ?? []) {
    const denied = deniedLookupOf(credential);
    if (denied) return denied;
  }
  return undefined;
}

/** Why a declared resource could not be checked, and what would let discovery check it. */
function unreadable(key: string, denied: { permission: string; answer: string }): string {
  return `discovery was refused ${denied.permission} on ${key} (${denied.answer}), so it cannot tell whether it exists: grant the discovery role ${denied.permission} on it`;
}

function idleFor(
  credential: DiscoveredCredential,
  now: number,
): { millis: number; neverUsed: boolean } | undefined {
  if (credential.lastUsedAt) return { millis: now - Date.parse(credential.lastUsedAt), neverUsed: false };
  if (credential.createdAt && KINDS[credential.kind].recordsLastUse) {
    // IAM reports last use; a key with none was never used. Other kinds do not report use.
    return { millis: now - Date.parse(credential.createdAt), neverUsed: true };
  }
  return undefined;
}
