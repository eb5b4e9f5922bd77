import { z } from 'zod';
import { DurationSchema } from '../core/duration.ts';

/**
 * Everything the adapters need to reach the outside world. Built from a file by the
 * local runtime and from environment variables by the Lambda handlers.
 */
export const RuntimeConfigSchema = z.object({
  aws: z.object({
    region: z.string().min(1),
    endpoint: z.url().optional(),
    credentials: z.object({ accessKeyId: z.string(), secretAccessKey: z.string() }).optional(),
  }),
  tableName: z.string().min(3),
  reportBucket: z.string().optional(),
  /** Key of the HMAC that fingerprints credential values. */
  fingerprintKey: z.string().min(32),
  staleAfter: DurationSchema.default('90d'),
  /** Vault / OpenBao; without it, Vault kinds are neither discovered nor rotated. */
  vault: z
    .object({
      addr: z.url(),
      token: z.string().min(1),
      approleMounts: z.array(z.string()).default(['approle']),
      kvPrefixes: z.array(z.string()).default(['secret/ci/']),
    })
    .optional(),
  discovery: z.object({
    iamPathPrefix: z.string().startsWith('/').default('/'),
    secretNamePrefix: z.string().default('ci/'),
  }),
  /** Identities rotated at once by one run. */
  rotationConcurrency: z.coerce.number().int().min(1).max(64).default(8),
});
export type RuntimeConfig = z.infer<typeof RuntimeConfigSchema>;
export type RuntimeConfigInput = z.input<typeof RuntimeConfigSchema>;
