/**
 * The model of the post-incident revocation report: its zod schema, the single source of its
 * types. The builder (`revocation-report.ts`) fills it; the renderers
 * (`revocation-report-render.ts`, `-markdown.ts`, `-html.ts`) only read it.
 *
 * No secret value ever appears: audit details pass through an allow-list of keys
 * ({@link PRINTED_DETAIL_KEYS}); a detail named `value`, `secret` or `token` is dropped.
 */
import * as z from 'zod';
import {
  CampaignCountsSchema,
  CampaignStatusSchema,
  IncidentSchema,
  TargetActionSchema,
  TargetOutcomeSchema,
} from './campaign.ts';
import { IdentityKindSchema } from './identity.ts';

const Millis = z.int().min(0);
const Count = z.int().min(0);
const Time = z.iso.datetime();

/** Targets by outcome (the campaign's own counting, in its key order). */
const OutcomeCountsSchema = CampaignCountsSchema.shape.byOutcome;

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
/** The printable details of an audit record (see {@link PRINTED_DETAIL_KEYS}). */
export type EventDetails = z.infer<typeof EventDetailsSchema>;

const KindOutcomeCountsSchema = z.strictObject({
  kind: IdentityKindSchema,
  total: Count,
  ...OutcomeCountsSchema.shape,
});

/** The fields that name a campaign target; every list of targets in the report starts with them. */
const TargetRefShape = {
  targetId: z.string(),
  identityId: z.string(),
  kind: IdentityKindSchema,
  handle: z.string(),
};

const ReportTargetSchema = z.strictObject({
  ...TargetRefShape,
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
    byOutcome: OutcomeCountsSchema,
    byKind: z.array(KindOutcomeCountsSchema),
  }),
  /** Over revoked and already-revoked targets, from the campaign start; absent when none finished. */
  timeToRevoke: z.strictObject({ measured: Count, p50Ms: Millis, p95Ms: Millis, maxMs: Millis }).optional(),
  targets: z.array(ReportTargetSchema),
  failures: z.array(
    z.strictObject({
      ...TargetRefShape,
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
      ...TargetRefShape,
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
/** The report before its controls are assessed (they are derived from the rest). */
export type ReportFacts = Omit<RevocationReport, 'controls'>;
