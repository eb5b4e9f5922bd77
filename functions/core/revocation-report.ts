/**
 * The post-incident revocation report: what a campaign set out to revoke, what happened to
 * each target, how fast, what is still exposed and who owns it, the audit history of every
 * affected credential, and the controls the campaign evidences. Built from the campaign, its
 * targets, the inventory and the audit trail; rendered as JSON, Markdown and a self-contained
 * HTML page (inline CSS and SVG only: no script, no external asset, readable offline).
 *
 * No secret value ever appears: the inputs hold none, and audit details pass through an
 * allow-list of keys (a detail named `value`, `secret` or `token` is dropped, never printed).
 */
import { z } from 'zod';
import type { AuditRecord } from './audit.ts';
import {
  type Campaign,
  CampaignStatusSchema,
  IncidentSchema,
  summarize,
  type Target,
  TargetActionSchema,
  TargetOutcomeSchema,
  timeToRevoke,
} from './campaign.ts';
import type { Identity, IdentityKind } from './identity.ts';
import { IdentityKindSchema } from './identity.ts';

const Millis = z.int().min(0);
const Count = z.int().min(0);
const Time = z.iso.datetime();

/** Why a target failed, as far as its error tells; each cause has its own remediation. */
export const FailureCauseSchema = z.enum(['throttling', 'access-denied', 'not-found', 'transient', 'other']);
export type FailureCause = z.infer<typeof FailureCauseSchema>;

/** Whether this report shows a control outcome fully, in part, or not at all. */
export const ControlStatusSchema = z.enum(['evidenced', 'partial', 'not-evidenced']);
export type ControlStatus = z.infer<typeof ControlStatusSchema>;

/** The audit detail keys a report may print; every other key is dropped (defense in depth). */
export const PRINTED_DETAIL_KEYS = [
  'handle',
  'versionId',
  'outcome',
  'result',
  'reason',
  'kind',
  'fingerprint',
] as const;

/** How much of an HMAC fingerprint the report shows: enough to match, not the whole digest. */
export const FINGERPRINT_PREFIX_LENGTH = 12;

const EventDetailsSchema = z.strictObject({
  handle: z.string().optional(),
  versionId: z.string().optional(),
  outcome: z.string().optional(),
  result: z.string().optional(),
  reason: z.string().optional(),
  kind: z.string().optional(),
  /** The first {@link FINGERPRINT_PREFIX_LENGTH} characters of the HMAC fingerprint, then `…`. */
  fingerprint: z.string().optional(),
});

const KindOutcomeCountsSchema = z.strictObject({
  kind: IdentityKindSchema,
  total: Count,
  pending: Count,
  revoked: Count,
  'already-revoked': Count,
  skipped: Count,
  failed: Count,
});

const ReportTargetSchema = z.strictObject({
  targetId: z.string(),
  identityId: z.string(),
  kind: IdentityKindSchema,
  handle: z.string(),
  action: TargetActionSchema,
  outcome: TargetOutcomeSchema,
  attempts: Count,
  finishedAt: Time.optional(),
  /** Milliseconds from the campaign start to `finishedAt`. */
  sinceStartMs: Millis.optional(),
  reason: z.string().optional(),
  error: z.string().optional(),
});

/**
 * The report; its key order here is the key order of the JSON rendering. It is the single
 * source of the report's type.
 */
export const RevocationReportSchema = z.strictObject({
  reportVersion: z.literal(1),
  generatedAt: Time,
  incident: IncidentSchema,
  campaign: z.strictObject({
    campaignId: z.string(),
    status: CampaignStatusSchema,
    requestedBy: z.string(),
    createdAt: Time,
    startedAt: Time.optional(),
    finishedAt: Time.optional(),
    /** `finishedAt − startedAt`, when both are known. */
    durationMs: Millis.optional(),
    dryRun: z.boolean(),
  }),
  plan: z.strictObject({
    /** As written by the responder; ORed. */
    selectors: z.array(z.string()),
    reissue: z.boolean(),
    targets: Count,
    byKind: z.array(z.strictObject({ kind: IdentityKindSchema, targets: Count })),
    byAction: z.strictObject({ revoke: Count, 'revoke-prefix': Count, 'deny-sessions': Count }),
  }),
  outcomes: z.strictObject({
    total: Count,
    byOutcome: z.strictObject({
      pending: Count,
      revoked: Count,
      'already-revoked': Count,
      skipped: Count,
      failed: Count,
    }),
    byKind: z.array(KindOutcomeCountsSchema),
  }),
  /** Over revoked and already-revoked targets, from the campaign start; absent when none finished. */
  timeToRevoke: z.strictObject({ measured: Count, p50Ms: Millis, p95Ms: Millis, maxMs: Millis }).optional(),
  targets: z.array(ReportTargetSchema),
  failures: z.array(
    z.strictObject({
      targetId: z.string(),
      identityId: z.string(),
      kind: IdentityKindSchema,
      handle: z.string(),
      owner: z.string().optional(),
      environment: z.string(),
      error: z.string(),
      retryable: z.boolean().optional(),
      attempts: Count,
      cause: FailureCauseSchema,
      remediation: z.string(),
    }),
  ),
  /** What could not be revoked: failed, skipped and (campaign unfinished) pending targets. */
  residualExposure: z.array(
    z.strictObject({
      targetId: z.string(),
      identityId: z.string(),
      kind: IdentityKindSchema,
      handle: z.string(),
      outcome: z.enum(['pending', 'skipped', 'failed']),
      owner: z.string().optional(),
      environment: z.string(),
      purpose: z.string().optional(),
      why: z.string(),
    }),
  ),
  /** Issuance, use and revocation of each affected credential, grouped by identity and handle. */
  credentialHistory: z.array(
    z.strictObject({
      identityId: z.string(),
      kind: IdentityKindSchema.optional(),
      /** Absent for events about the identity as a whole. */
      handle: z.string().optional(),
      events: z.array(
        z.strictObject({
          seq: z.int().positive(),
          at: Time,
          type: z.string(),
          phase: z.enum(['issuance', 'use', 'revocation', 'other']),
          actor: z.string(),
          details: EventDetailsSchema,
          /** The record's chain hash, shortened: ties the line to the tamper-evident log. */
          hash: z.string(),
        }),
      ),
    }),
  ),
  reissued: z.array(
    z.strictObject({
      identityId: z.string(),
      kind: IdentityKindSchema.optional(),
      owner: z.string().optional(),
      environment: z.string().optional(),
      /** Where the fresh credential was placed: `aws-secret:<id>` or `vault-kv:<mount>/<path>`. */
      delivery: z.string().optional(),
    }),
  ),
  controls: z.array(
    z.strictObject({
      framework: z.enum(['OWASP Non-Human Identities Top 10 (2025)', 'NIST CSF 2.0']),
      id: z.string(),
      title: z.string(),
      status: ControlStatusSchema,
      /** What in this report shows the outcome, with its figures. */
      evidence: z.string(),
    }),
  ),
});
export type RevocationReport = z.infer<typeof RevocationReportSchema>;
export type ReportControl = RevocationReport['controls'][number];
export type ReportFailure = RevocationReport['failures'][number];

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

/** The three renderings, written side by side. */
export interface RenderedReport {
  json: string;
  markdown: string;
  html: string;
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const KIND_ORDER = IdentityKindSchema.options;
const byKindOrder = (a: IdentityKind, b: IdentityKind): number =>
  KIND_ORDER.indexOf(a) - KIND_ORDER.indexOf(b);

/** Spreads `{ [key]: value }` only when the value is defined (exactOptionalPropertyTypes). */
const maybe = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } =>
  (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };

// --- remediation -----------------------------------------------------------------------

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

/** The permission keywarden needs to revoke a credential of this kind, named as the provider names it. */
function revokePermission(kind: IdentityKind, handle: string, identity: Identity | undefined): string {
  switch (identity?.kind ?? kind) {
    case 'aws-iam-access-key':
      return `iam:UpdateAccessKey and iam:DeleteAccessKey on IAM user ${identity?.kind === 'aws-iam-access-key' ? identity.scope.userName : '(the key owner)'}`;
    case 'aws-secret':
      return `secretsmanager:UpdateSecretVersionStage and secretsmanager:PutSecretValue on secret ${identity?.kind === 'aws-secret' ? identity.scope.secretId : handle}`;
    case 'aws-role-session':
      return `iam:PutRolePolicy on role ${handle}`;
    case 'vault-token':
      return "the 'update' capability on auth/token/revoke-accessor";
    case 'vault-approle-secret-id':
      return identity?.kind === 'vault-approle-secret-id'
        ? `the 'update' capability on auth/${identity.scope.mount}/role/${identity.scope.roleName}/secret-id-accessor/destroy`
        : "the 'update' capability on the AppRole's secret-id-accessor/destroy path";
    case 'vault-kv':
      return identity?.kind === 'vault-kv'
        ? `the 'update' capability on ${identity.scope.mount}/destroy/${identity.scope.path}`
        : "the 'update' capability on the KV mount's destroy path";
    case 'vault-lease':
      return `the 'update' and 'sudo' capabilities on sys/leases/revoke-prefix/${handle}`;
  }
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

// --- history ---------------------------------------------------------------------------

const PHASES: Record<string, 'issuance' | 'use' | 'revocation'> = {
  'credential.issued': 'issuance',
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
export function printableDetails(
  details: Readonly<Record<string, unknown>>,
): z.infer<typeof EventDetailsSchema> {
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

// --- controls --------------------------------------------------------------------------

/** Milliseconds as a person reads them: `850 ms`, `12.4 s`, `3 min 05 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${String(seconds).padStart(2, '0')} s`;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * The controls a campaign evidences. Ids and titles as published:
 * - OWASP Top 10 Non-Human Identities Risks – 2025
 *   (owasp.org/www-project-non-human-identities-top-10/2025/top-10-2025):
 *   NHI2:2025 Secret Leakage, NHI3:2025 Vulnerable Third-Party NHI, NHI7:2025 Long-Lived Secrets.
 * - NIST Cybersecurity Framework 2.0 (NIST CSWP 29), subcategory outcomes as worded in the
 *   CSF 2.0 core (csf.tools/reference/nist-cybersecurity-framework/v2-0/): PR.AA-01, PR.AA-05,
 *   RS.MI-01, RS.MI-02, RS.AN-03, RS.AN-06.
 */
function controlsOf(report: Omit<RevocationReport, 'controls'>): ReportControl[] {
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
      status: ended === 0 ? 'not-evidenced' : residual === 0 ? 'evidenced' : 'partial',
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

// --- build -----------------------------------------------------------------------------

function deliveryText(identity: Identity | undefined): string | undefined {
  const delivery = identity?.delivery;
  if (!delivery) return undefined;
  return delivery.type === 'aws-secret'
    ? `aws-secret:${delivery.secretId}`
    : `vault-kv:${delivery.mount}/${delivery.path}`;
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
  const kinds = (Object.keys(counts.byKind) as IdentityKind[]).sort(byKindOrder);
  const byAction = { revoke: 0, 'revoke-prefix': 0, 'deny-sessions': 0 };
  for (const target of targets) byAction[target.action] += 1;
  const ttr = timeToRevoke(targets, start);
  const ownerOf = (target: Target): string | undefined =>
    target.owner ?? identities.get(target.identityId)?.owner;

  const report: Omit<RevocationReport, 'controls'> = {
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
      byKind: kinds.map((kind) => ({ kind, targets: counts.byKind[kind]?.total ?? 0 })),
      byAction,
    },
    outcomes: {
      total: counts.total,
      byOutcome: counts.byOutcome,
      byKind: kinds.map((kind) => {
        const c = counts.byKind[kind];
        return {
          kind,
          total: c?.total ?? 0,
          pending: c?.pending ?? 0,
          revoked: c?.revoked ?? 0,
          'already-revoked': c?.['already-revoked'] ?? 0,
          skipped: c?.skipped ?? 0,
          failed: c?.failed ?? 0,
        };
      }),
    },
    ...maybe(
      'timeToRevoke',
      ttr && { measured: ttr.count, p50Ms: ttr.p50Ms, p95Ms: ttr.p95Ms, maxMs: ttr.maxMs },
    ),
    targets: targets.map((t) => ({
      targetId: t.targetId,
      identityId: t.identityId,
      kind: t.kind,
      handle: t.handle,
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
        const identity = identities.get(t.identityId);
        return {
          targetId: t.targetId,
          identityId: t.identityId,
          kind: t.kind,
          handle: t.handle,
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
            ...maybe('identity', identity),
          }),
        };
      }),
    residualExposure: targets.flatMap((t) => {
      if (t.outcome !== 'failed' && t.outcome !== 'skipped' && t.outcome !== 'pending') return [];
      const why =
        t.outcome === 'failed'
          ? `failed: ${t.error ?? 'no error recorded'}`
          : t.outcome === 'skipped'
            ? `skipped: ${t.reason ?? 'no reason recorded'}`
            : `not attempted yet (campaign ${campaign.status})`;
      return [
        {
          targetId: t.targetId,
          identityId: t.identityId,
          kind: t.kind,
          handle: t.handle,
          outcome: t.outcome,
          ...maybe('owner', ownerOf(t)),
          environment: t.environment,
          ...maybe('purpose', identities.get(t.identityId)?.purpose),
          why,
        },
      ];
    }),
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

// --- JSON ------------------------------------------------------------------------------

/** The report as JSON, keys in schema order (validated again, so the order is the schema's). */
export const renderJson = (report: RevocationReport): string =>
  `${JSON.stringify(RevocationReportSchema.parse(report), null, 2)}\n`;

// --- Markdown --------------------------------------------------------------------------

/** Text safe in a Markdown table cell: no line breaks, no pipes, no markup, no raw HTML. */
export const markdownText = (value: string | number | boolean | undefined): string =>
  value === undefined || value === ''
    ? '—'
    : String(value)
        .replace(/\s*[\r\n]+\s*/g, ' ')
        .replace(/[\\`*_{}[\]<>|~&]/g, (c) => `\\${c}`);

/** Like {@link markdownText}, but the backtick-quoted commands of a hint stay code spans. */
const markdownWithCode = (text: string): string =>
  text
    .split('`')
    .map((part, i) => (i % 2 === 1 ? `\`${part.replace(/[`|\r\n]/g, '')}\`` : markdownText(part)))
    .join('');

/** A cell already in Markdown (built by {@link markdownWithCode}); anything else is escaped. */
class MarkdownCell {
  constructor(readonly text: string) {}
}
type Cell = string | number | boolean | undefined | MarkdownCell;
const mdCell = (value: Cell): string => (value instanceof MarkdownCell ? value.text : markdownText(value));
const mdRow = (cells: readonly Cell[]): string => `| ${cells.map(mdCell).join(' | ')} |`;
const mdTable = (head: readonly string[], rows: readonly (readonly Cell[])[]): string =>
  [mdRow(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(mdRow)].join('\n');

const OUTCOMES = ['revoked', 'already-revoked', 'skipped', 'failed', 'pending'] as const;

/** The report as Markdown: headings and tables, every value escaped. */
export function renderMarkdown(report: RevocationReport): string {
  const c = report.campaign;
  const t = report.timeToRevoke;
  const lines: string[] = [
    `# Revocation report ${markdownText(report.incident)} — campaign ${markdownText(c.campaignId)}`,
    '',
    `Generated ${markdownText(report.generatedAt)}. Status **${markdownText(c.status)}**${c.dryRun ? ' (dry run)' : ''}.`,
    '',
    '## Who ran it and when',
    '',
    mdTable(
      ['Field', 'Value'],
      [
        ['Requested by', c.requestedBy],
        ['Created', c.createdAt],
        ['Started', c.startedAt],
        ['Finished', c.finishedAt],
        ['Duration', c.durationMs === undefined ? undefined : formatDuration(c.durationMs)],
      ],
    ),
    '',
    '## Selectors and plan',
    '',
    ...report.plan.selectors.map((s) => `- ${markdownText(s)}`),
    '',
    `${report.plan.targets} targets; re-issue ${report.plan.reissue ? 'requested' : 'not requested'}; actions: ${report.plan.byAction.revoke} revoke, ${report.plan.byAction['revoke-prefix']} revoke-prefix, ${report.plan.byAction['deny-sessions']} deny-sessions.`,
    '',
    mdTable(
      ['Kind', 'Targets'],
      report.plan.byKind.map((k) => [k.kind, k.targets]),
    ),
    '',
    '## Outcomes',
    '',
    mdTable(
      ['Kind', 'Total', ...OUTCOMES],
      [
        ...report.outcomes.byKind.map((k) => [k.kind, k.total, ...OUTCOMES.map((o) => k[o])]),
        ['all', report.outcomes.total, ...OUTCOMES.map((o) => report.outcomes.byOutcome[o])],
      ],
    ),
    '',
    '## Time to revoke',
    '',
    t
      ? mdTable(
          ['Measured', 'p50', 'p95', 'max'],
          [[t.measured, formatDuration(t.p50Ms), formatDuration(t.p95Ms), formatDuration(t.maxMs)]],
        )
      : 'No target has been revoked yet.',
    '',
    '## Failures',
    '',
    report.failures.length === 0
      ? 'None.'
      : mdTable(
          ['Target', 'Kind', 'Owner', 'Error', 'Cause', 'Remediation'],
          report.failures.map((f) => [
            f.targetId,
            f.kind,
            f.owner ?? '(no owner)',
            f.error,
            f.cause,
            new MarkdownCell(markdownWithCode(f.remediation)),
          ]),
        ),
    '',
    '## Residual exposure',
    '',
    report.residualExposure.length === 0
      ? 'None: every selected credential is revoked.'
      : mdTable(
          ['Target', 'Kind', 'Outcome', 'Owner', 'Environment', 'Purpose', 'Why'],
          report.residualExposure.map((r) => [
            r.targetId,
            r.kind,
            r.outcome,
            r.owner ?? '(no owner)',
            r.environment,
            r.purpose,
            r.why,
          ]),
        ),
    '',
    '## Credential history',
    '',
  ];
  if (report.credentialHistory.length === 0) lines.push('No audit record of the affected identities.', '');
  for (const group of report.credentialHistory) {
    lines.push(
      `### ${markdownText(group.identityId)} · ${group.handle === undefined ? 'identity events' : markdownText(group.handle)}`,
      '',
      mdTable(
        ['Seq', 'Time', 'Phase', 'Type', 'Actor', 'Details', 'Hash'],
        group.events.map((e) => [e.seq, e.at, e.phase, e.type, e.actor, detailsText(e.details), e.hash]),
      ),
      '',
    );
  }
  lines.push(
    '## Re-issued identities',
    '',
    report.reissued.length === 0
      ? 'None.'
      : mdTable(
          ['Identity', 'Kind', 'Owner', 'Environment', 'Delivered to'],
          report.reissued.map((r) => [r.identityId, r.kind, r.owner, r.environment, r.delivery]),
        ),
    '',
    '## Controls evidenced',
    '',
    mdTable(
      ['Framework', 'Id', 'Title', 'Status', 'Evidence in this report'],
      report.controls.map((k) => [
        k.framework,
        k.id,
        k.title,
        k.status,
        new MarkdownCell(markdownWithCode(k.evidence)),
      ]),
    ),
    '',
  );
  return lines.join('\n');
}

const detailsText = (details: Readonly<Record<string, string | undefined>>): string =>
  Object.entries(details)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

// --- HTML ------------------------------------------------------------------------------

/** Markup that is already safe; anything else interpolated into {@link html} is escaped. */
class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** Escapes text for HTML element content and quoted attribute values. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const fragment = (value: unknown): string => {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(fragment).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(String(value));
};

/** Tagged template: every interpolation is escaped unless it is itself built by `html`. */
const html = (strings: TemplateStringsArray, ...values: unknown[]): SafeHtml =>
  new SafeHtml(
    strings.reduce((out, part, i) => out + part + (i < values.length ? fragment(values[i]) : ''), ''),
  );

const OUTCOME_COLOR: Record<(typeof OUTCOMES)[number], string> = {
  revoked: '#1a7f37',
  'already-revoked': '#0969da',
  skipped: '#6e7781',
  failed: '#cf222e',
  pending: '#9a6700',
};

/** One mark on the timeline: shape and colour both tell the outcome (readable in greyscale). */
function mark(outcome: (typeof OUTCOMES)[number], x: number, y: number, label: string): SafeHtml {
  const color = OUTCOME_COLOR[outcome];
  const title = html`<title>${label}</title>`;
  const px = x.toFixed(1);
  const py = y.toFixed(1);
  switch (outcome) {
    case 'revoked':
      return html`<circle cx="${px}" cy="${py}" r="4" fill="${color}">${title}</circle>`;
    case 'already-revoked':
      return html`<circle cx="${px}" cy="${py}" r="4" fill="none" stroke="${color}" stroke-width="1.5">${title}</circle>`;
    case 'failed':
      return html`<path d="M${(x - 4).toFixed(1)} ${(y - 4).toFixed(1)}l8 8m0 -8l-8 8" stroke="${color}" stroke-width="2">${title}</path>`;
    default:
      return html`<rect x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" fill="${color}">${title}</rect>`;
  }
}

/** Campaign start → each target's finish, one lane per kind, with p50 and p95 lines. */
function timelineSvg(report: RevocationReport): SafeHtml {
  const kinds = report.outcomes.byKind.map((k) => k.kind);
  const timed = report.targets.filter((t) => t.sinceStartMs !== undefined);
  const ttr = report.timeToRevoke;
  const maxMs = Math.max(1, ...timed.map((t) => t.sinceStartMs ?? 0), ttr?.maxMs ?? 0);
  const left = 190;
  const right = 30;
  const top = 34;
  const lane = 34;
  const width = 960;
  const plot = width - left - right;
  const height = top + Math.max(1, kinds.length) * lane + 56;
  const xOf = (ms: number): number => left + (ms / maxMs) * plot;
  const bottom = top + Math.max(1, kinds.length) * lane;

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const x = xOf(f * maxMs);
    return html`<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${bottom}" class="grid"/><text x="${x.toFixed(1)}" y="${bottom + 16}" text-anchor="middle" class="tick">${formatDuration(f * maxMs)}</text>`;
  });
  const lanes = kinds.map((kind, i) => {
    const y = top + i * lane + lane / 2;
    const marks = timed
      .filter((t) => t.kind === kind)
      .map((t, j) =>
        // A small deterministic jitter keeps marks finishing together from hiding each other.
        mark(
          t.outcome,
          xOf(t.sinceStartMs ?? 0),
          y + ((j % 5) - 2) * 3,
          `${t.targetId}: ${t.outcome} after ${formatDuration(t.sinceStartMs ?? 0)}`,
        ),
      );
    return html`<text x="${left - 10}" y="${(y + 4).toFixed(1)}" text-anchor="end" class="lane">${kind}</text><line x1="${left}" y1="${(y + lane / 2).toFixed(1)}" x2="${width - right}" y2="${(y + lane / 2).toFixed(1)}" class="sep"/>${marks}`;
  });
  const percentileLine = (name: string, ms: number, dy: number) => {
    const x = xOf(ms).toFixed(1);
    return html`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${bottom}" class="pct"/><text x="${x}" y="${top - 10 - dy}" text-anchor="middle" class="pct-label">${name} ${formatDuration(ms)}</text>`;
  };
  const legend = OUTCOMES.filter((o) => report.outcomes.byOutcome[o] > 0).map((o, i) => {
    const x = left + i * 150;
    return html`${mark(o, x, bottom + 38, o)}<text x="${x + 10}" y="${bottom + 42}" class="tick">${o}</text>`;
  });
  const summary = ttr
    ? `Time from campaign start to each target's end, per kind. p50 ${formatDuration(ttr.p50Ms)}, p95 ${formatDuration(ttr.p95Ms)}, max ${formatDuration(ttr.maxMs)}.`
    : 'No target has finished yet.';
  return html`<svg viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-labelledby="tl-title tl-desc">
<title id="tl-title">Revocation timeline</title><desc id="tl-desc">${summary}</desc>
${ticks}${lanes}${ttr ? [percentileLine('p50', ttr.p50Ms, 0), percentileLine('p95', ttr.p95Ms, ttr.p95Ms - ttr.p50Ms < maxMs * 0.08 ? 12 : 0)] : ''}${legend}
</svg>`;
}

const STYLE = `
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--band:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1100px;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px}
.muted{color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--band);font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--band);padding:1px 4px;border-radius:4px;word-break:break-all}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:140px}.card b{display:block;font-size:20px}
.status{font-weight:600;padding:1px 6px;border-radius:10px;font-size:12px;white-space:nowrap}
.evidenced{background:#dafbe1;color:#1a7f37}.partial{background:#fff8c5;color:#7d4e00}.not-evidenced{background:#ffebe9;color:#cf222e}
.revoked{color:#1a7f37}.already-revoked{color:#0969da}.skipped{color:#6e7781}.failed{color:#cf222e}.pending{color:#9a6700}
svg{border:1px solid var(--line);border-radius:6px;background:#fff}
svg .grid{stroke:#eaeef2}svg .sep{stroke:#eaeef2}svg .tick{font-size:11px;fill:#59636e}svg .lane{font-size:12px;fill:#1f2328}
svg .pct{stroke:#8250df;stroke-dasharray:4 3;stroke-width:1.5}svg .pct-label{font-size:11px;fill:#8250df;font-weight:600}
@media print{body{padding:0}h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
`;

const cell = (value: string | number | undefined, className?: string): SafeHtml =>
  className ? html`<td class="${className}">${value ?? '—'}</td>` : html`<td>${value ?? '—'}</td>`;

/** Inline code spans for the backtick-quoted commands of a remediation hint; the rest is escaped. */
const withCode = (text: string): SafeHtml =>
  new SafeHtml(
    text
      .split('`')
      .map((part, i) => (i % 2 === 1 ? `<code>${escapeHtml(part)}</code>` : escapeHtml(part)))
      .join(''),
  );

/**
 * The report as one self-contained HTML page: inline CSS, an inline SVG timeline, no script
 * and no external reference of any kind (a Content-Security-Policy forbids them too), every
 * interpolated string escaped.
 */
export function renderHtml(report: RevocationReport): string {
  const c = report.campaign;
  const t = report.timeToRevoke;
  const o = report.outcomes.byOutcome;
  const title = `Revocation report ${report.incident} — ${c.campaignId}`;
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${new SafeHtml(STYLE)}</style>
</head>
<body>
<header>
<h1>${title}</h1>
<p class="muted">Status <b>${c.status}</b>${c.dryRun ? ' (dry run)' : ''} · generated ${report.generatedAt} · no secret value appears in this report</p>
<div class="cards">
<div class="card"><span class="muted">Targets</span><b>${report.outcomes.total}</b></div>
<div class="card"><span class="muted">Revoked</span><b class="revoked">${o.revoked + o['already-revoked']}</b></div>
<div class="card"><span class="muted">Failed</span><b class="failed">${o.failed}</b></div>
<div class="card"><span class="muted">Skipped</span><b class="skipped">${o.skipped}</b></div>
<div class="card"><span class="muted">p95 to revoke</span><b>${t ? formatDuration(t.p95Ms) : '—'}</b></div>
</div>
</header>
<main>
<section><h2>Who ran it and when</h2>
<table><tbody>
<tr><th scope="row">Incident</th>${cell(report.incident)}</tr>
<tr><th scope="row">Requested by</th>${cell(c.requestedBy)}</tr>
<tr><th scope="row">Created</th>${cell(c.createdAt)}</tr>
<tr><th scope="row">Started</th>${cell(c.startedAt)}</tr>
<tr><th scope="row">Finished</th>${cell(c.finishedAt)}</tr>
<tr><th scope="row">Duration</th>${cell(c.durationMs === undefined ? undefined : formatDuration(c.durationMs))}</tr>
</tbody></table></section>

<section><h2>Selectors and plan</h2>
<ul>${report.plan.selectors.map((s) => html`<li><code>${s}</code></li>`)}</ul>
<p>${report.plan.targets} targets · re-issue ${report.plan.reissue ? 'requested' : 'not requested'} · actions: ${report.plan.byAction.revoke} revoke, ${report.plan.byAction['revoke-prefix']} revoke-prefix, ${report.plan.byAction['deny-sessions']} deny-sessions</p>
<table><thead><tr><th>Kind</th><th>Targets</th></tr></thead><tbody>
${report.plan.byKind.map((k) => html`<tr>${cell(k.kind)}${cell(k.targets, 'n')}</tr>`)}
</tbody></table></section>

<section><h2>Outcomes</h2>
<table><thead><tr><th>Kind</th><th>Total</th>${OUTCOMES.map((name) => html`<th class="${name}">${name}</th>`)}</tr></thead><tbody>
${report.outcomes.byKind.map((k) => html`<tr>${cell(k.kind)}${cell(k.total, 'n')}${OUTCOMES.map((name) => cell(k[name], 'n'))}</tr>`)}
<tr><th scope="row">all</th>${cell(report.outcomes.total, 'n')}${OUTCOMES.map((name) => cell(o[name], 'n'))}</tr>
</tbody></table></section>

<section><h2>Time to revoke</h2>
${
  t
    ? html`<table><thead><tr><th>Measured</th><th>p50</th><th>p95</th><th>max</th></tr></thead><tbody><tr>${cell(t.measured, 'n')}${cell(formatDuration(t.p50Ms), 'n')}${cell(formatDuration(t.p95Ms), 'n')}${cell(formatDuration(t.maxMs), 'n')}</tr></tbody></table>`
    : html`<p>No target has been revoked yet.</p>`
}
<figure>${timelineSvg(report)}<figcaption class="muted">Each mark is one target, placed at the time it ended after the campaign started; dashed lines are p50 and p95 of revoked and already-revoked targets.</figcaption></figure>
</section>

<section><h2>Failures</h2>
${
  report.failures.length === 0
    ? html`<p>None.</p>`
    : html`<table><thead><tr><th>Target</th><th>Kind</th><th>Owner</th><th>Error</th><th>Cause</th><th>Remediation</th></tr></thead><tbody>
${report.failures.map((f) => html`<tr><td><code>${f.targetId}</code></td>${cell(f.kind)}${cell(f.owner ?? '(no owner)')}${cell(f.error)}${cell(f.cause)}<td>${withCode(f.remediation)}</td></tr>`)}
</tbody></table>`
}
</section>

<section><h2>Residual exposure</h2>
${
  report.residualExposure.length === 0
    ? html`<p>None: every selected credential is revoked.</p>`
    : html`<p>What could not be revoked. Call the owner of each.</p><table><thead><tr><th>Target</th><th>Kind</th><th>Outcome</th><th>Owner</th><th>Environment</th><th>Purpose</th><th>Why</th></tr></thead><tbody>
${report.residualExposure.map((r) => html`<tr><td><code>${r.targetId}</code></td>${cell(r.kind)}${cell(r.outcome, r.outcome)}${cell(r.owner ?? '(no owner)')}${cell(r.environment)}${cell(r.purpose)}${cell(r.why)}</tr>`)}
</tbody></table>`
}
</section>

<section><h2>Credential history</h2>
${
  report.credentialHistory.length === 0
    ? html`<p>No audit record of the affected identities.</p>`
    : report.credentialHistory.map(
        (
          g,
        ) => html`<h3><code>${g.identityId}</code> · ${g.handle === undefined ? 'identity events' : html`<code>${g.handle}</code>`}${g.kind ? html` <span class="muted">(${g.kind})</span>` : ''}</h3>
<table><thead><tr><th>Seq</th><th>Time</th><th>Phase</th><th>Type</th><th>Actor</th><th>Details</th><th>Hash</th></tr></thead><tbody>
${g.events.map((e) => html`<tr>${cell(e.seq, 'n')}${cell(e.at)}${cell(e.phase)}${cell(e.type)}${cell(e.actor)}${cell(detailsText(e.details) || undefined)}<td><code>${e.hash}</code></td></tr>`)}
</tbody></table>`,
      )
}
</section>

<section><h2>Re-issued identities</h2>
${
  report.reissued.length === 0
    ? html`<p>None.</p>`
    : html`<table><thead><tr><th>Identity</th><th>Kind</th><th>Owner</th><th>Environment</th><th>Delivered to</th></tr></thead><tbody>
${report.reissued.map((r) => html`<tr><td><code>${r.identityId}</code></td>${cell(r.kind)}${cell(r.owner)}${cell(r.environment)}${cell(r.delivery)}</tr>`)}
</tbody></table>`
}
</section>

<section><h2>Controls evidenced</h2>
<table><thead><tr><th>Framework</th><th>Id</th><th>Title</th><th>Status</th><th>Evidence in this report</th></tr></thead><tbody>
${report.controls.map((k) => html`<tr>${cell(k.framework)}<td><b>${k.id}</b></td>${cell(k.title)}<td><span class="status ${k.status}">${k.status}</span></td><td>${withCode(k.evidence)}</td></tr>`)}
</tbody></table></section>
</main>
</body>
</html>
`;
  return page.text;
}

/** All three renderings of a report. */
export const renderReport = (report: RevocationReport): RenderedReport => ({
  json: renderJson(report),
  markdown: renderMarkdown(report),
  html: renderHtml(report),
});
