/**
 * What keywarden keeps about an exposed managed credential: one record per fingerprint, with
 * where it was first seen and how its containment ended. It makes containment idempotent: the
 * same leaked value seen again (another file, another run, another log) is not contained twice.
 */
import * as z from 'zod';
import { ExposureSourceSchema } from './exposure-types.ts';
import { IdentityKindSchema } from './identity.ts';
import { onFirstUse } from './on-first-use.ts';

/**
 * How a containment ended: every target ended (`contained`), some could not be (`failed`), or
 * its campaign was handed to the revocation state machine (`started`: the deployed scanner
 * returns once the execution starts; the state machine's failures are the revocation alarms').
 */
export const ContainmentOutcomeSchema = z.enum(['contained', 'started', 'failed']);
export type ContainmentOutcome = z.infer<typeof ContainmentOutcomeSchema>;

export const ExposureRecordSchema = onFirstUse(() =>
  z.strictObject({
    /** The exposed version's keyed fingerprint (never the value). */
    fingerprint: z.string().min(1),
    identityId: z.string().min(1),
    kind: IdentityKindSchema,
    versionId: z.string().min(1),
    handle: z.string(),
    /** Where it was first seen. */
    source: ExposureSourceSchema,
    line: z.int().min(1),
    rule: z.string().min(1),
    detectedAt: z.iso.datetime(),
    /** Set once containment ran: the campaign, its outcome and when. */
    campaignId: z.string().optional(),
    outcome: ContainmentOutcomeSchema.optional(),
    containedAt: z.iso.datetime().optional(),
    /**
     * Until when one scanner holds the right to contain it (a lease: a scanner that dies holding it
     * leaves it to the next sighting after this time); removed when its attempt fails.
     */
    claimedUntil: z.iso.datetime().optional(),
    /** When a containment of it first failed: its owner was alerted then, and is not again for a failure. */
    failedAt: z.iso.datetime().optional(),
  }),
);
export type ExposureRecord = z.infer<typeof ExposureRecordSchema>;

/** Whether an outcome ends the matter: a later sighting does not contain it again (a `failed` one is). */
export const isHandled = (outcome: ContainmentOutcome | undefined): boolean =>
  outcome === 'contained' || outcome === 'started';
