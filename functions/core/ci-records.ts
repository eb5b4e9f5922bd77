/**
 * What keywarden keeps about CI job credentials and artifact approvals. Never a secret: a Vault
 * token is known by its accessor, an AWS session by its role and SourceIdentity.
 */
import * as z from 'zod';
import { DigestSchema, GateSchema } from './ci-policy.ts';
import { PrincipalSchema } from './grant.ts';
import { onFirstUse } from './on-first-use.ts';

/** How a job's credentials ended. */
export const CiEndingSchema = z.enum(['job', 'webhook', 'ttl']);
export type CiEnding = z.infer<typeof CiEndingSchema>;

/** The exchange id a job ends its credentials by (`DELETE /ci/credentials/{id}`). */
export const CiCredentialIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);

/** One exchange: the credentials one token bought for one grant. */
export const CiCredentialRecordSchema = onFirstUse(() =>
  z.object({
    id: CiCredentialIdSchema,
    grant: z.string(),
    issuer: z.string(),
    /** The job's key (ci-policy.ts `jobOf`): every credential of a job ends together. */
    jobKey: z.string(),
    /** Shared by every audit event of the job; also the AWS session's SourceIdentity. */
    correlationId: z.string(),
    actor: z.string().optional(),
    /** The job claims' values (run id, job id, project id…): ids, never secrets. */
    jobIds: z.record(z.string(), z.string()),
    digest: DigestSchema.optional(),
    issuedAt: z.iso.datetime(),
    /** When the last of its credentials ends by itself. */
    expiresAt: z.iso.datetime(),
    vault: z.object({ accessor: z.string(), expiresAt: z.iso.datetime() }).optional(),
    aws: z
      .object({
        roleArn: z.string(),
        sourceIdentity: z.string(),
        sessionName: z.string(),
        expiresAt: z.iso.datetime(),
        /** A deny on the SourceIdentity was put on the role (an early end) and must be removed once the session is dead. */
        denied: z.boolean().default(false),
        released: z.boolean().default(false),
      })
      .optional(),
    state: z.enum(['active', 'ended']),
    ended: z.object({ at: z.iso.datetime(), by: CiEndingSchema }).optional(),
    /** A `ci.credentials.used` event was recorded (one per exchange). */
    usedRecorded: z.boolean().default(false),
  }),
);
export type CiCredentialRecord = z.infer<typeof CiCredentialRecordSchema>;

/**
 * One approval of an artifact digest for a gate in an environment. `statement` is the signed
 * payload (an in-toto Statement v1, canonical JSON), `signature` the KMS signature over it
 * (base64), `keyId` the KMS key that made it. Append-only: an approval is never changed.
 */
export const ApprovalRecordSchema = onFirstUse(() =>
  z.object({
    id: z.string().min(1).max(128),
    digest: DigestSchema,
    gate: GateSchema,
    environment: z.string().min(1).max(64),
    approver: PrincipalSchema,
    approvedAt: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
    statement: z.string(),
    signature: z.string(),
    keyId: z.string(),
  }),
);
export type ApprovalRecord = z.infer<typeof ApprovalRecordSchema>;
