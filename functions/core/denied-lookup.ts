/**
 * A declared resource discovery was refused permission to look up (AccessDenied on GetUser,
 * GetRole, DescribeSecret…). It may exist or not: discovery cannot tell, so it must neither
 * call it missing nor fail the whole run. The source reports it as a `DiscoveredCredential`
 * marked with the permission that was refused; findings turn the mark into an `unreadable`
 * finding that names that permission.
 */
import type { DiscoveredCredential } from './discovery.ts';
import type { IdentityKind } from './identity.ts';

/** What a source knows of a declared resource whose lookup was refused. */
export interface DeniedLookup {
  /** The resource key of the declared identity (see resource-key.ts). */
  key: string;
  kind: IdentityKind;
  /** The name or ARN the resource is declared by. */
  handle: string;
  label: string;
  /** The permission that was refused, such as `iam:GetUser`. */
  permission: string;
  /** The provider's answer, such as `AccessDenied`: its name only, never a message that could echo input. */
  answer: string;
}

/**
 * The `DiscoveredCredential` standing for a refused lookup. Its status is `inactive`: nothing
 * is known to be live, so no age, use or reuse finding is drawn from it.
 */
export function deniedLookup(lookup: DeniedLookup): DiscoveredCredential {
  return {
    key: lookup.key,
    kind: lookup.kind,
    handle: lookup.handle,
    label: lookup.label,
    status: 'inactive',
    details: { lookupDenied: lookup.permission, lookupAnswer: lookup.answer },
  };
}

/** The refused permission and the provider's answer, when `credential` stands for a refused lookup. */
export function deniedLookupOf(
  credential: DiscoveredCredential,
): { permission: string; answer: string } | undefined {
  const { lookupDenied, lookupAnswer } = credential.details;
  if (typeof lookupDenied !== 'string') return undefined;
  return {
    permission: lookupDenied,
    answer: typeof lookupAnswer === 'string' ? lookupAnswer : 'AccessDenied',
  };
}
