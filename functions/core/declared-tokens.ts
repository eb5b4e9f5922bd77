/**
 * Which declared `vault-token` identity a live Vault token belongs to. Pure: the Vault
 * adapters (discovery, the token provider) look tokens up and ask here, so a token is
 * attributed the same way by findings, `status`, rotation and campaigns.
 */
import { declaredAccessors, type Identity, type IdentityOfKind, type VaultTokenScope } from './identity.ts';

type TokenIdentity = IdentityOfKind<'vault-token'>;

/** What a token lookup says about a token, as far as naming its identity goes. */
export interface TokenSeen {
  accessor: string;
  /**
   * What keywarden issued it for, from its meta: an identity id, or any other marker for a
   * token keywarden issued otherwise (a break-glass grant). Absent: made outside keywarden.
   */
  issuedFor?: string | undefined;
  /** The endpoint that created it: `auth/token/create/<role>[/<suffix>]` for a token role. */
  path: string;
  /** As Vault stores it: `token-<name given at creation>` for tokens of the token store. */
  displayName: string;
}

/** How an identity names a token, strongest first. */
export type TokenMatch = 'accessor' | 'issued' | 'token-role' | 'display-name';
const STRENGTH: readonly TokenMatch[] = ['accessor', 'issued', 'token-role', 'display-name'];

/**
 * How `identity` names `token`, or undefined when it does not. An accessor named in the
 * scope always counts; a token keywarden issued counts for its own identity only; token
 * role and display-name prefix count for tokens of the token store made outside keywarden
 * (a login token of another auth method is that method's, and shows up as its lease).
 */
export function tokenMatch(identity: TokenIdentity, token: TokenSeen): TokenMatch | undefined {
  const scope = identity.scope;
  if (declaredAccessors(scope).includes(token.accessor)) return 'accessor';
  if (token.issuedFor !== undefined) return token.issuedFor === identity.id ? 'issued' : undefined;
  if (!token.path.startsWith('auth/token/')) return undefined;
  const role = scope.tokenRole;
  if (
    role &&
    (token.path === `auth/token/create/${role}` || token.path.startsWith(`auth/token/create/${role}/`))
  )
    return 'token-role';
  const prefix = scope.displayNamePrefix;
  if (prefix && (token.displayName.startsWith(prefix) || token.displayName.startsWith(`token-${prefix}`)))
    return 'display-name';
  return undefined;
}

/**
 * The declared identity a token belongs to: the one that names it most strongly (see
 * {@link TokenMatch}), the first by id on a tie, so every run attributes it alike.
 */
export function declaringIdentity(
  identities: readonly Identity[],
  token: TokenSeen,
): TokenIdentity | undefined {
  let best: { identity: TokenIdentity; strength: number } | undefined;
  for (const identity of identities) {
    if (identity.kind !== 'vault-token') continue;
    const match = tokenMatch(identity, token);
    if (match === undefined) continue;
    const strength = STRENGTH.indexOf(match);
    if (
      !best ||
      strength < best.strength ||
      (strength === best.strength && identity.id.localeCompare(best.identity.id) < 0)
    ) {
      best = { identity, strength };
    }
  }
  return best?.identity;
}

/**
 * Whether finding a scope's tokens takes looking up every token (Vault cannot filter by meta,
 * role or display name), or only the accessors it names.
 */
export const needsEveryToken = (scope: VaultTokenScope): boolean =>
  scope.policies !== undefined || scope.tokenRole !== undefined || scope.displayNamePrefix !== undefined;
