import type { DiscoveredCredential, DiscoveryHints } from './discovery.ts';
import { KeywardenError } from './errors.ts';
import {
  assessFindings,
  type Finding,
  grantFindings,
  type Severity,
  SeveritySchema,
  severityRank,
} from './findings.ts';
import type { Grant } from './grant.ts';
import { eachGrant } from './grant-sweep.ts';
import { KINDS, wholeScope } from './kinds.ts';
import type {
  AuditLog,
  BreakglassConfigStore,
  Clock,
  DiscoverySource,
  FindingStore,
  GrantStore,
  IdentityStore,
  RotationStore,
} from './ports.ts';
import {
  type ContainRequest,
  credentialsToContain,
  findUnexpectedUse,
  type UseWatch,
} from './unexpected-use.ts';

export interface DiscoveryDeps {
  sources: readonly DiscoverySource[];
  store: Pick<IdentityStore, 'listIdentities'> &
    Pick<FindingStore, 'saveFindings'> &
    Pick<RotationStore, 'listVersions'>;
  audit: Pick<AuditLog, 'append'>;
  clock: Clock;
  newId: () => string;
  /** Break-glass grants, for overdue reviews (only those are read); absent, no grant findings. */
  grants?: Pick<GrantStore, 'reviewDueGrants'>;
  /**
   * The stored `breakglass` section: the IAM roles its roles assume are declared, so they are
   * looked up directly and never reported undeclared. Absent, no role is declared that way.
   */
  breakglass?: Pick<BreakglassConfigStore, 'getBreakglassConfig'>;
  /**
   * Where use is read (the OpenBao audit device…): the identities with `allowedRunners` are
   * checked against it, and ended CI job credentials for use after their end. Absent, neither is.
   */
  usage?: UseWatch;
}

/** The ended grants whose review is overdue at `now`, every page of the store's review-due query. */
async function reviewsDue(grants: DiscoveryDeps['grants'], now: Date): Promise<Grant[]> {
  const due: Grant[] = [];
  if (grants)
    for await (const grant of eachGrant((page) => grants.reviewDueGrants(now, page))) due.push(grant);
  return due;
}

export interface DiscoveryRun {
  runId: string;
  at: string;
  identities: number;
  discovered: number;
  findings: Finding[];
  counts: Record<Severity, number>;
  /** The credentials used from where they should not be whose identity's `policy.onUnexpectedUse` is `contain`. */
  contain: ContainRequest[];
}

/**
 * One discovery run: list what exists, reconcile it with the active inventory,
 * store the findings and audit the run. A source that fails fails the run:
 * half a picture would report live credentials as missing.
 */
export async function runDiscovery(
  deps: DiscoveryDeps,
  options: { staleAfter: string; actor: string },
): Promise<DiscoveryRun> {
  const identities = (await deps.store.listIdentities())
    .filter((record) => record.status === 'active')
    .map((record) => record.identity);
  const leasePrefixes = identities
    .filter((identity) => KINDS[identity.kind].revocation === 'revoke-prefix')
    .flatMap((identity) => wholeScope(identity) ?? []);
  const breakglassRoles = deps.breakglass ? (await deps.breakglass.getBreakglassConfig()).roles : [];
  const hints: DiscoveryHints = {
    leasePrefixes,
    identities,
    breakglassRoleArns: breakglassRoles.flatMap((role) =>
      role.target.type === 'aws-role' ? [role.target.roleArn] : [],
    ),
  };
  const discovered: DiscoveredCredential[] = [];
  const results = await Promise.allSettled(deps.sources.map((source) => source.discover(hints)));
  results.forEach((result, index) => {
    if (result.status === 'fulfilled') discovered.push(...result.value);
    else {
      throw new KeywardenError(
        `discovery in ${deps.sources[index]?.name ?? 'a source'} failed: ${(result.reason as Error).message}`,
        { cause: result.reason, retryable: (result.reason as { retryable?: boolean }).retryable ?? false },
      );
    }
  });
  const now = deps.clock.now();
  const versions = new Map(
    await Promise.all(
      identities.map(async (identity) => [identity.id, await deps.store.listVersions(identity.id)] as const),
    ),
  );
  const findings = [
    ...assessFindings(identities, discovered, {
      now,
      staleAfter: options.staleAfter,
      versions,
      breakglassRoles,
    }),
    ...grantFindings(await reviewsDue(deps.grants, now), now),
    ...(deps.usage ? await findUnexpectedUse(deps.usage, { identities, versions, discovered }) : []),
  ].sort((a, b) => severityRank(b.severity) - severityRank(a.severity));
  const run = { runId: deps.newId(), at: now.toISOString(), findings };
  await deps.store.saveFindings(run);
  const counts = Object.fromEntries(
    SeveritySchema.options.map((severity) => [
      severity,
      findings.filter((f) => f.severity === severity).length,
    ]),
  ) as Record<Severity, number>;
  await deps.audit.append({
    type: 'discovery.completed',
    actor: options.actor,
    subject: `discovery/${run.runId}`,
    details: { identities: identities.length, discovered: discovered.length, ...counts },
  });
  return {
    ...run,
    identities: identities.length,
    discovered: discovered.length,
    counts,
    contain: credentialsToContain(findings, identities, versions),
  };
}
