/**
 * The kind registry: every fact about a credential kind that the code needs, in one
 * typed entry per kind. Adding a kind to `IdentityKindSchema` without an entry here is
 * a compile error (`satisfies KindRegistry`); see CONTRIBUTING.md, "Adding a credential kind".
 */
import type { Delivery, Identity, IdentityKind, IdentityOfKind } from './identity.ts';
import { trimSlashes } from './resource-key.ts';

/** The outside service a kind's calls go to; each has its own rate budget. */
export const PROVIDER_SERVICES = ['iam', 'secrets-manager', 'vault'] as const;
export type ProviderService = (typeof PROVIDER_SERVICES)[number];

/** Which discovery source finds what exists for a kind. */
export type DiscoverySide = 'aws' | 'vault';

/**
 * How a campaign ends a kind's credentials: one credential at a time, every session of a
 * role at once (a deny policy), or a whole lease path at once.
 */
export type RevocationMode = 'per-credential' | 'deny-sessions' | 'revoke-prefix';

/** What the code knows about one kind of credential. */
export interface KindFacts<K extends IdentityKind> {
  /** The service its calls go to, and so the rate budget a campaign draws from. */
  readonly service: ProviderService;
  /** The discovery source that lists what exists for it. */
  readonly discoveredBy: DiscoverySide;
  /** How discovery finds it, as a reader of a finding would want it said. */
  readonly discovery: string;
  /**
   * Rotated on a schedule by the four-step protocol. Kinds issued per grant or lease end
   * by their TTL instead and are never rotated.
   */
  readonly rotates: boolean;
  /** The provider can tag a credential with the rotation version that made it (Vault metadata). */
  readonly tagsVersions: boolean;
  /**
   * The current value cannot be taken away without putting another in its place (a secret
   * always has a current version): revoking it means replacing it first.
   */
  readonly replaceBeforeRevoke: boolean;
  /**
   * With `replaceBeforeRevoke`: the turns of its service's rate revoking a current value takes (the
   * replacing rotation's writes and the revoke's), where any other revocation takes one.
   */
  readonly replaceTurns?: number;
  /** Whether `policy.maxAge` applies to what discovery finds (sessions end by their own duration). */
  readonly maxAgeApplies: boolean;
  /** Whether a declared identity with nothing live is a `missing` finding (lease paths come and go). */
  readonly reportMissing: boolean;
  /**
   * The provider records each credential's last use (IAM does), so a credential with none was
   * never used, and one used after its successor was delivered is still in use somewhere.
   */
  readonly recordsLastUse: boolean;
  /** How a campaign revokes it. */
  readonly revocation: RevocationMode;
  /**
   * For a kind revoked as a whole (`deny-sessions`, `revoke-prefix`): the handle that names
   * its whole scope, the role ARN or the lease prefix. Selectors match it; campaigns revoke it.
   */
  wholeScope?(identity: IdentityOfKind<K>): string;
  /**
   * The resource key: one credential-bearing thing in a provider, in the same form whether it
   * comes from the inventory or from discovery, so the two reconcile by equality.
   */
  scopeKey(identity: IdentityOfKind<K>): string;
  /** The permission keywarden needs to revoke it, named as the provider names it (the report's hint). */
  revokePermission(handle: string, identity: IdentityOfKind<K> | undefined): string;
  /** The value store that is itself the delivery target (a secret, a KV path), for kinds that are one. */
  ownDelivery?(identity: IdentityOfKind<K>): Delivery;
  /**
   * Why this identity of a rotated kind cannot be rotated (its declaration gives keywarden no way
   * to issue a successor), or undefined when it can. Such an identity is still found, listed and
   * revoked; it is never rotated or re-issued.
   */
  notIssuable?(identity: IdentityOfKind<K>): string | undefined;
}

/** The name of an IAM role from its ARN: the last segment, after any path. */
export const roleNameOf = (roleArn: string): string =>
  roleArn.split(':role/')[1]?.split('/').at(-1) ?? roleArn;

/** The resource key of an IAM role, from its ARN; discovery keys roles by name the same way. */
export const roleKey = (roleArn: string): string => `aws-role:${roleNameOf(roleArn)}`;

/** One entry per kind; a kind without one does not compile. */
export type KindRegistry = { readonly [K in IdentityKind]: KindFacts<K> };

/** What the three rotated Vault kinds share: tagged by rotation, revoked one credential at a time. */
const ROTATED_VAULT_KIND = {
  service: 'vault',
  discoveredBy: 'vault',
  rotates: true,
  tagsVersions: true,
  replaceBeforeRevoke: false,
  maxAgeApplies: true,
  reportMissing: true,
  recordsLastUse: false,
  revocation: 'per-credential',
} as const;

export const KINDS = {
  'aws-iam-access-key': {
    service: 'iam',
    discoveredBy: 'aws',
    discovery: 'IAM ListUsers (under the discovery path prefix) and ListAccessKeys per user',
    rotates: true,
    tagsVersions: false,
    replaceBeforeRevoke: false,
    maxAgeApplies: true,
    reportMissing: true,
    recordsLastUse: true,
    revocation: 'per-credential',
    scopeKey: (identity) => `aws-iam-user:${identity.scope.userName}`,
    revokePermission: (_handle, identity) =>
      `iam:UpdateAccessKey and iam:DeleteAccessKey on IAM user ${identity ? identity.scope.userName : '(the key owner)'}`,
  },
  'aws-secret': {
    service: 'secrets-manager',
    discoveredBy: 'aws',
    discovery: 'Secrets Manager ListSecrets (under the discovery name prefix)',
    rotates: true,
    tagsVersions: true,
    replaceBeforeRevoke: true,
    // PutSecretValue and two UpdateSecretVersionStage (the replacing rotation), then the label removed.
    replaceTurns: 4,
    maxAgeApplies: true,
    reportMissing: true,
    recordsLastUse: false,
    revocation: 'per-credential',
    scopeKey: (identity) => `aws-secret:${identity.scope.secretId}`,
    revokePermission: (handle, identity) =>
      `secretsmanager:UpdateSecretVersionStage and secretsmanager:PutSecretValue on secret ${identity ? identity.scope.secretId : handle}`,
    ownDelivery: (identity) => ({ type: 'aws-secret', secretId: identity.scope.secretId }),
  },
  'aws-role-session': {
    service: 'iam',
    discoveredBy: 'aws',
    discovery: 'IAM ListRoles (under the discovery path prefix)',
    rotates: false,
    tagsVersions: false,
    replaceBeforeRevoke: false,
    maxAgeApplies: false,
    reportMissing: true,
    recordsLastUse: false,
    revocation: 'deny-sessions',
    wholeScope: (identity) => identity.scope.roleArn,
    scopeKey: (identity) => roleKey(identity.scope.roleArn),
    revokePermission: (handle) => `iam:PutRolePolicy on role ${handle}`,
  },
  'vault-token': {
    ...ROTATED_VAULT_KIND,
    discovery:
      'Vault auth/token/accessors and a lookup of each accessor; declared accessors are looked up directly',
    // A token belongs to its identity by meta (issued by keywarden), accessor, token role or
    // display-name prefix (core/declared-tokens.ts); discovery keys each token by that identity.
    scopeKey: (identity) => `vault-token:${identity.id}`,
    revokePermission: () => "the 'update' capability on auth/token/revoke-accessor",
    notIssuable: (identity) =>
      identity.scope.policies
        ? undefined
        : 'its tokens are declared by accessor, token role or display-name prefix without policies, so keywarden cannot issue their successor (add scope.policies to rotate it)',
  },
  'vault-approle-secret-id': {
    ...ROTATED_VAULT_KIND,
    discovery: "Vault AppRole roles on the configured mounts and each role's secret-id accessors",
    scopeKey: (identity) => `vault-approle:${trimSlashes(identity.scope.mount)}/${identity.scope.roleName}`,
    revokePermission: (_handle, identity) =>
      identity
        ? `the 'update' capability on auth/${identity.scope.mount}/role/${identity.scope.roleName}/secret-id-accessor/destroy`
        : "the 'update' capability on the AppRole's secret-id-accessor/destroy path",
  },
  'vault-kv': {
    ...ROTATED_VAULT_KIND,
    discovery: 'Vault KV v2 metadata listed under the configured prefixes',
    scopeKey: (identity) =>
      `vault-kv:${trimSlashes(identity.scope.mount)}/${trimSlashes(identity.scope.path)}`,
    revokePermission: (_handle, identity) =>
      identity
        ? `the 'update' capability on ${identity.scope.mount}/destroy/${identity.scope.path}`
        : "the 'update' capability on the KV mount's destroy path",
    ownDelivery: (identity) => ({ type: 'vault-kv', mount: identity.scope.mount, path: identity.scope.path }),
  },
  'vault-lease': {
    service: 'vault',
    discoveredBy: 'vault',
    discovery: 'Vault sys/leases/lookup under the declared lease prefixes',
    rotates: false,
    tagsVersions: false,
    replaceBeforeRevoke: false,
    maxAgeApplies: true,
    reportMissing: false,
    recordsLastUse: false,
    revocation: 'revoke-prefix',
    wholeScope: (identity) => trimSlashes(identity.scope.prefix),
    scopeKey: (identity) => `vault-lease:${trimSlashes(identity.scope.prefix)}`,
    revokePermission: (handle) =>
      `the 'update' and 'sudo' capabilities on sys/leases/revoke-prefix/${handle}`,
  },
} as const satisfies KindRegistry;

/** The facts of one kind. */
export const kindFacts = (kind: IdentityKind): KindFacts<IdentityKind> =>
  KINDS[kind] as KindFacts<IdentityKind>;

/**
 * The registry entry of an identity's kind, typed for that identity. The one place a kind's
 * entry meets an identity of that kind: TypeScript cannot correlate `KINDS[identity.kind]`
 * with `identity` by itself.
 */
function factsFor<K extends IdentityKind>(identity: IdentityOfKind<K>): KindFacts<K> {
  return KINDS[identity.kind as K] as unknown as KindFacts<K>;
}

/** The resource key of a declared identity (see `KindFacts.scopeKey`). */
export const scopeKey = (identity: Identity): string => factsFor(identity).scopeKey(identity);

/** The permission a revocation of this kind needs; names the identity's resource when it is known. */
export const revokePermission = (kind: IdentityKind, handle: string, identity?: Identity): string =>
  identity
    ? factsFor(identity).revokePermission(handle, identity)
    : kindFacts(kind).revokePermission(handle, undefined);

/** The handle naming the whole scope of a kind revoked as a whole; undefined for the others. */
export const wholeScope = (identity: Identity): string | undefined =>
  factsFor(identity).wholeScope?.(identity);

/** The kinds rotated on a schedule. */
export const ROTATABLE_KINDS: readonly IdentityKind[] = (Object.keys(KINDS) as IdentityKind[]).filter(
  (kind) => KINDS[kind].rotates,
);

/** The service a kind's calls go to. */
export const serviceOf = (kind: IdentityKind): ProviderService => KINDS[kind].service;

/** The delivery target of an identity: its own, or for the value-store kinds the store itself. */
export function deliveryOf(identity: Identity): Delivery | undefined {
  return identity.delivery ?? factsFor(identity).ownDelivery?.(identity);
}

/** Why an identity is never rotated or re-issued, or undefined when it can be. */
export function rotationBlocker(identity: Identity): string | undefined {
  if (!KINDS[identity.kind].rotates) {
    return `${identity.kind} credentials are issued per grant or lease and end by their TTL`;
  }
  if (!identity.policy.rotate) {
    return 'policy.rotate is false: keywarden tracks it (inventory, age, findings, incident revocation) but never rotates or re-issues it';
  }
  return factsFor(identity).notIssuable?.(identity);
}
