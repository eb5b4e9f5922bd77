import * as z from 'zod';
import { IdentityKindSchema } from './identity.ts';
import { onFirstUse } from './on-first-use.ts';

/**
 * Where a credential version stands. `pending` is issued and staged but not yet in
 * force; `current` is what the pipeline reads; `previous` was superseded and lives out
 * its grace period; `disabled` is kept inactive (IAM key used after its successor was
 * delivered); `revoked` is gone for good.
 */
export const VersionStageSchema = z.enum(['pending', 'current', 'previous', 'disabled', 'revoked']);
export type VersionStage = z.infer<typeof VersionStageSchema>;

/** One credential keywarden issued or adopted for an identity. Never holds the value. */
export const CredentialVersionSchema = onFirstUse(() =>
  z.object({
    identityId: z.string(),
    versionId: z.string(),
    kind: IdentityKindSchema,
    stage: VersionStageSchema,
    /** The provider's handle: access key id, token accessor, secret-id accessor, secret version, KV version. */
    handle: z.string(),
    /** HMAC of the value, when keywarden saw the value (issued or adopted). */
    fingerprint: z.string().optional(),
    /** Issued by keywarden, or found in the provider on the first rotation. */
    origin: z.enum(['issued', 'adopted']),
    issuedAt: z.iso.datetime(),
    expiresAt: z.iso.datetime().optional(),
    deliveredAt: z.iso.datetime().optional(),
    verifiedAt: z.iso.datetime().optional(),
    activatedAt: z.iso.datetime().optional(),
    supersededAt: z.iso.datetime().optional(),
    retiredAt: z.iso.datetime().optional(),
    /**
     * Set before a `previous` version is revoked at the end of its grace period: a run that
     * finds it set knows an earlier run may have revoked it and written `credential.retired`.
     */
    retiringAt: z.iso.datetime().optional(),
    lastUsedAt: z.iso.datetime().optional(),
    /** Why a version ended as it did (retired unused, kept disabled because used, failed test…). */
    note: z.string().optional(),
  }),
);
export type CredentialVersion = z.infer<typeof CredentialVersionSchema>;

/** The steps of one rotation, in order (the Secrets Manager rotation protocol). */
export const RotationStepSchema = z.enum([
  'createSecret',
  'setSecret',
  'testSecret',
  'finishSecret',
  'finished',
  'failed',
]);
export type RotationStep = z.infer<typeof RotationStepSchema>;

/** Progress of the latest rotation of an identity, stored so any run can resume it. */
export const RotationStateSchema = onFirstUse(() =>
  z.object({
    identityId: z.string(),
    rotationId: z.string(),
    /** The version this attempt issues; a new create attempt gets a new one. */
    versionId: z.string(),
    step: RotationStepSchema,
    startedAt: z.iso.datetime(),
    /** When the current create attempt began: provider credentials created after it and unknown to the store are this attempt's orphans. */
    attemptStartedAt: z.iso.datetime(),
    attempts: z.int().min(1),
    updatedAt: z.iso.datetime(),
    reason: z.string().optional(),
    /**
     * The audit events this rotation has appended, as {@link recordedKey}s, saved with the
     * progress after each step. An event missing here may still be in the trail (the run
     * died between the append and the save): a resumed step looks it up there.
     */
    recorded: z.array(z.string()).optional(),
    /**
     * The run rotating the identity now, and until when (epoch ms). Kept in the progress so that
     * taking it is the write that starts or continues a rotation (conditional on the revision
     * read) and giving it back is the write that finishes it; a holder whose time ran out (a run
     * that died) is taken over.
     */
    lock: z.object({ owner: z.string(), until: z.number() }).optional(),
  }),
);
export type RotationState = z.infer<typeof RotationStateSchema>;
/** Who holds an identity's rotation lock, and until when (epoch ms). */
export type RotationLock = NonNullable<RotationState['lock']>;

/** How {@link RotationState.recorded} names one audit event of a rotation: `<type>:<versionId>`. */
export const recordedKey = (type: string, versionId: string): string => `${type}:${versionId}`;

/**
 * The audit event types a rotation recorded for the version it issues, in the order it
 * recorded them (`status` shows them). Undefined for a rotation stored before events were
 * recorded in its state.
 */
export function recordedEvents(state: Pick<RotationState, 'versionId' | 'recorded'>): string[] | undefined {
  const suffix = `:${state.versionId}`;
  return state.recorded?.filter((key) => key.endsWith(suffix)).map((key) => key.slice(0, -suffix.length));
}
