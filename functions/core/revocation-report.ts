/**
 * The post-incident revocation report's builder: what a campaign set out to revoke, what
 * happened to each target, how fast, what is still exposed and who owns it, the audit history
 * of every affected credential, and the controls the campaign evidences. Built from the
 * campaign, its targets, the inventory and the audit trail, into the model of
 * `revocation-report-model.ts`; rendered by `revocation-report-render.ts`.
 *
 * No secret value ever appears: the inputs hold none, and audit details pass through an
 * allow-list of keys (a detail named `value`, `secret` or `token` is dropped, never printed).
 */
import type { AuditRecord } from './audit.ts';
import { type Campaign, type CampaignCounts, summarize, type Target, timeToRevoke } from './campaign.ts';
import type { Identity, IdentityKind } from './identity.ts';
import { IdentityKindSchema } from './identity.ts';
import { controlsOf } from './revocation-report-controls.ts';
import {
  type EventDetails,
  FINGERPRINT_PREFIX_LENGTH,
  PRINTED_DETAIL_KEYS,
  type ReportFacts,
  type RevocationReport,
  RevocationReportSchema,
} from './revocation-report-model.ts';
import { failureCause, remediationHint } from './revocation-report-remediation.ts';
import { leavesExposure } from './target-exposure.ts';

/** What a report is built from; none of it holds a secret value. */
export interface RevocationReportInput {
  campaign: Campaign;
  targets: readonly Target[];
  /** The inventory entries of the affected identities (others are ignored). */
  identities: readonly Identity[];
  /** Audit records whose subject is an affected identity; records of other subjects are ignored. */
  history: readonly AuditRecord[];
  /** Identities that received a fresh credential after revocation. */
  reissued: readonly string[];
  /** When the report is generated (ISO date-time), from the caller's clock. */
  generatedAt: string;
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const KIND_ORDER = IdentityKindSchema.options;
const byKindOrder = (a: IdentityKind, b: IdentityKind): number =>
  KIND_ORDER.indexOf(a) - KIND_ORDER.indexOf(b);

/** Spreads `{ [key]: value }` only when the value is defined (exactOptionalPropertyTypes). */
const maybe = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } =>
  (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };

// --- history ---------------------------------------------------------------------------

const PHASES: Record<string, 'issuance' | 'use' | 'revocation'> = {
  'credential.issued': 'issuance',
  'credential.adopted': 'issuance',
  'credential.delivered': 'issuance',
  'credential.verified': 'issuance',
  'credential.activated': 'issuance',
  'grant.activated': 'issuance',
  'credential.used': 'use',
  'credential.revoked': 'revocation',
  'credential.disabled': 'revocation',
  'credential.retired': 'revocation',
  'grant.revoked': 'revocation',
  'grant.expired': 'revocation',
  'campaign.target': 'revocation',
};

/** Keeps only the allow-listed detail keys with scalar values; shortens the fingerprint. */
export function printableDetails(details: Readonly<Record<string, unknown>>): EventDetails {
  const printed: Record<string, string> = {};
  for (const key of PRINTED_DETAIL_KEYS) {
    const value = details[key];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') continue;
    const text = String(value);
    printed[key] =
      key === 'fingerprint' && text.length > FINGERPRINT_PREFIX_LENGTH
        ? `${text.slice(0, FINGERPRINT_PREFIX_LENGTH)}…`
        : text;
  }
  return printed;
}

function credentialHistory(
  history: readonly AuditRecord[],
  affected: ReadonlySet<string>,
  identities: ReadonlyMap<string, Identity>,
): RevocationReport['credentialHistory'] {
  const groups = new Map<string, RevocationReport['credentialHistory'][number]>();
  for (const record of history) {
    if (!affected.has(record.subject)) continue;
    const details = printableDetails(record.details);
    const key = `${record.subject}\u0000${details.handle ?? ''}`;
    let group = groups.get(key);
    if (!group) {
      group = {
        identityId: record.subject,
        ...maybe('kind', identities.get(record.subject)?.kind),
        ...maybe('handle', details.handle),
        events: [],
      };
      groups.set(key, group);
    }
    group.events.push({
      seq: record.seq,
      at: record.at,
      type: record.type,
      phase: PHASES[record.type] ?? 'other',
      actor: record.actor,
      details,
      hash: record.hash.slice(0, 16),
    });
  }
  const sorted = [...groups.values()].sort(
    (a, b) => compareText(a.identityId, b.identityId) || compareText(a.handle ?? '', b.handle ?? ''),
  );
  for (const group of sorted) group.events.sort((a, b) => a.seq - b.seq);
  return sorted;
}

// --- build -----------------------------------------------------------------------------

type KindCounts = NonNullable<CampaignCounts['byKind'][IdentityKind]>;

/** Where a declared delivery places the fresh credential: `aws-secret:<id>` or `vault-kv:<mount>/<path>`. */
function deliveryText(identity: Identity | undefined): string | undefined {
  const delivery = identity?.delivery;
  if (!delivery) return undefined;
  return delivery.type === 'aws-secret'
    ? `aws-secret:${delivery.secretId}`
    : `vault-kv:${delivery.mount}/${delivery.path}`;
}

/** The fields that name a target, first in every list of targets. */
const targetRef = (t: Target): Pick<Target, 'targetId' | 'identityId' | 'kind' | 'handle'> => ({
  targetId: t.targetId,
  identityId: t.identityId,
  kind: t.kind,
  handle: t.handle,
});

/** Why a target that is not revoked is still exposed. */
function exposure(target: Target, campaign: Campaign): string {
  if (target.outcome === 'failed') return `failed: ${target.error ?? 'no error recorded'}`;
  if (target.outcome === 'skipped') return `skipped: ${target.reason ?? 'no reason recorded'}`;
  return `not attempted yet (campaign ${campaign.status})`;
}

/**
 * What is still exposed after a campaign, with who owns it: every target whose credential may
 * still be alive (target-exposure.ts `leavesExposure`), in the order of the targets given. The
 * report's section and `keywarden revoke`'s list of what is still live.
 */
export function residualExposure(input: {
  campaign: Campaign;
  targets: readonly Target[];
  /** The inventory entries of the affected identities, for owners and purposes. */
  identities: readonly Identity[];
}): RevocationReport['residualExposure'] {
  const { campaign } = input;
  const identities = new Map(input.identities.map((identity) => [identity.id, identity]));
  return input.targets.flatMap((t) =>
    t.outcome !== 'revoked' && t.outcome !== 'already-revoked' && leavesExposure(t)
      ? [
          {
            ...targetRef(t),
            outcome: t.outcome,
            ...maybe('owner', t.owner ?? identities.get(t.identityId)?.owner),
            environment: t.environment,
            ...maybe('purpose', identities.get(t.identityId)?.purpose),
            why: exposure(t, campaign),
          },
        ]
      : [],
  );
}

/**
 * Builds the report of a campaign. Pure: the time comes in as `generatedAt`, figures are
 * computed from the targets (not the campaign's cached counts), lists are sorted, and the
 * result is validated against {@link RevocationReportSchema}.
 */
export function buildRevocationReport(input: RevocationReportInput): RevocationReport {
  const { campaign } = input;
  const identities = new Map(input.identities.map((identity) => [identity.id, identity]));
  const targets = [...input.targets].sort(
    (a, b) =>
      byKindOrder(a.kind, b.kind) ||
      compareText(a.identityId, b.identityId) ||
      compareText(a.handle, b.handle),
  );
  const start = campaign.startedAt ?? campaign.createdAt;
  const startMs = Date.parse(start);
  const counts = summarize(targets);
  const byKind = (Object.entries(counts.byKind) as [IdentityKind, KindCounts][]).sort(([a], [b]) =>
    byKindOrder(a, b),
  );
  const byAction = { revoke: 0, 'revoke-prefix': 0, 'deny-sessions': 0 };
  for (const target of targets) byAction[target.action] += 1;
  const ttr = timeToRevoke(targets, start);
  const ownerOf = (target: Target): string | undefined =>
    target.owner ?? identities.get(target.identityId)?.owner;

  const report: ReportFacts = {
    reportVersion: 1,
    generatedAt: input.generatedAt,
    incident: campaign.incident,
    campaign: {
      campaignId: campaign.campaignId,
      status: campaign.status,
      requestedBy: campaign.requestedBy,
      createdAt: campaign.createdAt,
      ...maybe('startedAt', campaign.startedAt),
      ...maybe('finishedAt', campaign.finishedAt),
      ...maybe(
        'durationMs',
        campaign.startedAt && campaign.finishedAt
          ? Math.max(0, Date.parse(campaign.finishedAt) - Date.parse(campaign.startedAt))
          : undefined,
      ),
      dryRun: campaign.dryRun,
    },
    plan: {
      selectors: [...campaign.selectors],
      reissue: campaign.reissue,
      targets: counts.total,
      byKind: byKind.map(([kind, c]) => ({ kind, targets: c.total })),
      byAction,
    },
    outcomes: {
      total: counts.total,
      byOutcome: counts.byOutcome,
      byKind: byKind.map(([kind, c]) => ({ kind, ...c })),
    },
    ...maybe(
      'timeToRevoke',
      ttr && { measured: ttr.count, p50Ms: ttr.p50Ms, p95Ms: ttr.p95Ms, maxMs: ttr.maxMs },
    ),
    targets: targets.map((t) => ({
      ...targetRef(t),
      action: t.action,
      outcome: t.outcome,
      attempts: t.attempts,
      ...maybe('finishedAt', t.finishedAt),
      ...maybe(
        'sinceStartMs',
        t.finishedAt === undefined ? undefined : Math.max(0, Date.parse(t.finishedAt) - startMs),
      ),
      ...maybe('reason', t.reason),
      ...maybe('error', t.error),
    })),
    failures: targets
      .filter((t) => t.outcome === 'failed')
      .map((t) => {
        const error = t.error ?? 'no error recorded';
        const cause = failureCause(error);
        return {
          ...targetRef(t),
          ...maybe('owner', ownerOf(t)),
          environment: t.environment,
          error,
          ...maybe('retryable', t.retryable),
          attempts: t.attempts,
          cause,
          remediation: remediationHint(cause, {
            campaignId: campaign.campaignId,
            kind: t.kind,
            handle: t.handle,
            ...maybe('identity', identities.get(t.identityId)),
          }),
        };
      }),
    residualExposure: residualExposure({ campaign, targets, identities: input.identities }),
    credentialHistory: credentialHistory(
      input.history,
      new Set(targets.map((t) => t.identityId)),
      identities,
    ),
    reissued: [...new Set(input.reissued)].sort(compareText).map((identityId) => {
      const identity = identities.get(identityId);
      return {
        identityId,
        ...maybe('kind', identity?.kind),
        ...maybe('owner', identity?.owner),
        ...maybe('environment', identity?.pipeline.environment),
        ...maybe('delivery', deliveryText(identity)),
      };
    }),
  };
  return RevocationReportSchema.parse({ ...report, controls: controlsOf(report) });
}
