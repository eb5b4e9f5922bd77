import { z } from 'zod';
import { IdentityKindSchema } from './identity.ts';

/**
 * A credential that really exists in a provider, as discovery saw it. Carries an
 * HMAC fingerprint of the value where the value is readable; never the value.
 */
export const DiscoveredCredentialSchema = z.object({
  /** The resource key (see resource-key.ts) this credential belongs to. */
  key: z.string(),
  kind: IdentityKindSchema,
  /** The provider's own handle: access key id, accessor, secret ARN, KV path@version, lease id. */
  handle: z.string(),
  /** A short human label, such as `iam user ci-deploy`. */
  label: z.string(),
  status: z.enum(['active', 'inactive']),
  createdAt: z.iso.datetime().optional(),
  lastUsedAt: z.iso.datetime().optional(),
  expiresAt: z.iso.datetime().optional(),
  fingerprint: z.string().optional(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
});
export type DiscoveredCredential = z.infer<typeof DiscoveredCredentialSchema>;
