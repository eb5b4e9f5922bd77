import * as z from 'zod';
import { type Identity, IdentityKindSchema } from './identity.ts';

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

/**
 * What discovery is told about the inventory, beyond its own prefixes. Each source lists what
 * its prefixes cover and, in addition, looks up directly every declared resource the listing
 * did not find (GetUser, GetRole, DescribeSecret, lookup-accessor, an AppRole role, a KV path),
 * so a declared resource outside the prefixes is never called missing.
 */
export interface DiscoveryHints {
  /** The prefixes declared by vault-lease identities: Vault lists leases only under a prefix. */
  leasePrefixes: string[];
  /** The active declared identities. */
  identities: readonly Identity[];
  /** The IAM roles break-glass roles assume (`breakglass.roles`, aws-role targets), by ARN. */
  breakglassRoleArns: string[];
}
