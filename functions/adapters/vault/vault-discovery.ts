/**
 * Discovery on the Vault / OpenBao side: every AppRole secret-id, token, KV v2
 * secret and lease in scope, keyed exactly as `core/resource-key.ts` keys the
 * inventory, so the two reconcile by equality.
 *
 * Secret values are never kept: secret-ids and tokens are not readable at all
 * (they are seen through their accessors), and a KV value is fingerprinted the
 * moment it is read and then dropped.
 *
 * Declared resources are looked up directly too (DiscoveryHints): a token by its
 * declared accessor, an AppRole role by reading it, a KV path by its metadata, so a
 * declared resource outside the configured mounts and prefixes is never called missing.
 * A token is keyed by the identity that declares it (core/declared-tokens.ts).
 *
 * Listing and lookup race with the pipelines that create and revoke
 * credentials. Something that vanishes between LIST and lookup is skipped (it
 * no longer exists); any other failure fails the run, because a partial
 * inventory would report declared credentials as missing and hide undeclared ones.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import * as z from 'zod';
import { declaringIdentity, type TokenSeen } from '../../core/declared-tokens.ts';
import { deniedLookup } from '../../core/denied-lookup.ts';
import type { DiscoveredCredential, DiscoveryHints } from '../../core/discovery.ts';
import { ValidationError } from '../../core/errors.ts';
import { declaredAccessors, type Identity } from '../../core/identity.ts';
import { scopeKey } from '../../core/kinds.ts';
import type { DiscoverySource } from '../../core/ports.ts';
import { trimSlashes } from '../../core/resource-key.ts';
import { credentialPart } from '../../core/secret-shape.ts';
import type { Fingerprinter } from '../crypto.ts';
import { wholeNumberOption } from '../options.ts';
import {
  KvMetadataSchema,
  parseVaultAnswer,
  type TokenLookup,
  type VaultClient,
  VaultError,
  type VaultResponse,
} from './client.ts';
import { PENDING_FOLDER } from './kv-delivery.ts';
import { GRANT_META_KEY } from './vault-grant-issuer.ts';

/** What {@link VaultDiscovery} looks at. */
export interface VaultDiscoveryOptions {
  client: VaultClient;
  /** AppRole auth mounts to walk; default `['approle']`. */
  approleMounts?: string[];
  /**
   * KV v2 folders to walk, as `<mount>/<path prefix>`: `secret/ci/` is mount
   * `secret`, everything under `ci/`. The first segment is the mount.
   */
  kvPrefixes?: string[];
  fingerprinter: Fingerprinter;
  /** Most Vault requests in flight at once; default 8. */
  concurrency?: number;
}

/** `auth/<mount>/role/<role>/secret-id-accessor/lookup`. */
const SecretIdSchema = z.object({
  /** RFC 3339. */
  creation_time: z.string(),
  /** RFC 3339; the zero time `0001-01-01T00:00:00Z` when the secret-id has no TTL. */
  expiration_time: z.string(),
  secret_id_num_uses: z.number(),
});

/** `sys/leases/lookup`. */
const LeaseSchema = z.object({
  id: z.string(),
  issue_time: z.string(),
  expire_time: z.string().nullable(),
  renewable: z.boolean(),
  ttl: z.number(),
});

/** Lookups of tokens by this meta key name the identity that declares them. */
export const IDENTITY_META_KEY = 'keywarden-identity';

/** What a token lookup says about the identity a token belongs to (see core/declared-tokens.ts). */
export function tokenSeen(token: TokenLookup): TokenSeen {
  const identity = token.meta?.[IDENTITY_META_KEY];
  const grant = token.meta?.[GRANT_META_KEY];
  return {
    accessor: token.accessor,
    // A break-glass token is keywarden's too: no identity's token role or prefix claims it.
    issuedFor: identity ?? (grant === undefined ? undefined : `breakglass-grant:${grant}`),
    path: token.path,
    displayName: token.display_name,
  };
}

/** Finds what exists in Vault / OpenBao; see the module comment. */
export class VaultDiscovery implements DiscoverySource {
  readonly name = 'vault';
  readonly #client: VaultClient;
  readonly #approleMounts: string[];
  readonly #kvPrefixes: string[];
  readonly #fingerprinter: Fingerprinter;
  /** Bounds requests, not tasks: only leaf calls take a slot, so nested walks cannot deadlock. */
  readonly #limit: LimitFunction;

  constructor(options: VaultDiscoveryOptions) {
    const concurrency = wholeNumberOption(
      { owner: 'VaultDiscovery', option: 'concurrency' },
      options.concurrency,
      8,
    );
    const approleMounts = (options.approleMounts ?? ['approle']).map(trimSlashes);
    const kvPrefixes = (options.kvPrefixes ?? []).map(trimSlashes);
    for (const [what, list] of [
      ['approleMounts', approleMounts],
      ['kvPrefixes', kvPrefixes],
    ] as const) {
      if (list.some((entry) => entry === '')) {
        throw new ValidationError(
          `VaultDiscovery: expected ${what} without empty entries, got ${JSON.stringify(list)}`,
        );
      }
    }
    this.#client = options.client;
    this.#approleMounts = [...new Set(approleMounts)];
    this.#kvPrefixes = [...new Set(kvPrefixes)];
    this.#fingerprinter = options.fingerprinter;
    this.#limit = pLimit(concurrency);
  }

  /**
   * Everything in scope, then every declared AppRole role and KV path the listing did not
   * find, looked up directly; sorted by key then handle so runs compare line by line.
   */
  async discover(hints: DiscoveryHints): Promise<DiscoveredCredential[]> {
    const leasePrefixes = [...new Set(hints.leasePrefixes.map(trimSlashes).filter(Boolean))];
    const listed = (
      await Promise.all([
        ...this.#approleMounts.map((mount) => this.#approle(mount)),
        this.#tokens(hints.identities),
        ...this.#kvPrefixes.map((prefix) => this.#kv(prefix, hints.identities)),
        ...leasePrefixes.map((prefix) => this.#leases(prefix)),
      ])
    ).flat();
    const seen = new Set(listed.map((credential) => credential.key));
    const direct = await Promise.all(
      hints.identities
        .filter((identity) => !seen.has(scopeKey(identity)))
        .map((identity) => this.#declared(identity)),
    );
    return [...listed, ...direct.flat()].sort(
      (a, b) => a.key.localeCompare(b.key) || a.handle.localeCompare(b.handle),
    );
  }

  /**
   * A declared AppRole role or KV path, looked up directly; other kinds are found by listing.
   * A lookup Vault refuses (403) is reported as such, never as missing, and fails nothing else.
   */
  async #declared(identity: Identity): Promise<DiscoveredCredential[]> {
    try {
      return await this.#lookUp(identity);
    } catch (error) {
      if (!(error instanceof VaultError) || error.status !== 403) throw error;
      return [
        deniedLookup({
          key: scopeKey(identity),
          kind: identity.kind,
          handle: error.path,
          label: `${identity.kind} ${identity.id}`,
          permission: `the 'read' capability on ${error.path}`,
          answer: 'permission denied',
        }),
      ];
    }
  }

  async #lookUp(identity: Identity): Promise<DiscoveredCredential[]> {
    if (identity.kind === 'vault-approle-secret-id') {
      const mount = trimSlashes(identity.scope.mount);
      const rolePath = `auth/${encodePath(mount)}/role/${encodeURIComponent(identity.scope.roleName)}`;
      // The role's own read: a LIST of secret-ids answers an empty list for a role that does not exist.
      const role = await this.#call((vault) => vault.read(rolePath));
      return role ? this.#approleRole(mount, identity.scope.roleName) : [];
    }
    if (identity.kind === 'vault-kv') {
      const credential = await this.#kvSecret(
        trimSlashes(identity.scope.mount),
        trimSlashes(identity.scope.path),
        identity,
      );
      return credential ? [credential] : [];
    }
    return [];
  }

  #call<T>(request: (client: VaultClient) => Promise<T>): Promise<T> {
    return this.#limit(() => request(this.#client));
  }

  async #approle(mount: string): Promise<DiscoveredCredential[]> {
    const roles = await this.#call((vault) => vault.list(`auth/${encodePath(mount)}/role`));
    const perRole = await Promise.all(roles.map((role) => this.#approleRole(mount, role)));
    return perRole.flat();
  }

  /** The secret-ids of one AppRole role that exists (listed, or read directly). */
  async #approleRole(mount: string, role: string): Promise<DiscoveredCredential[]> {
    const rolePath = `auth/${encodePath(mount)}/role/${encodeURIComponent(role)}`;
    let accessors: string[];
    try {
      accessors = await this.#call((vault) => vault.list(`${rolePath}/secret-id`));
    } catch (error) {
      // Deleted between the two LISTs: the role no longer exists.
      if (isGone(error, /does not exist/)) return [];
      throw error;
    }
    const key = `vault-approle:${mount}/${role}`;
    const found = await Promise.all(
      accessors.map(async (accessor): Promise<DiscoveredCredential | undefined> => {
        const lookupPath = `${rolePath}/secret-id-accessor/lookup`;
        let answer: VaultResponse;
        try {
          answer = await this.#call((vault) => vault.write(lookupPath, { secret_id_accessor: accessor }));
        } catch (error) {
          // Destroyed between LIST and lookup (AppRole answers 404 "failed to find accessor entry").
          if (isGone(error)) return undefined;
          throw error;
        }
        const secretId = parseVaultAnswer(SecretIdSchema, answer.data, 'write', lookupPath);
        const expiresAt = isoTime(secretId.expiration_time);
        const createdAt = isoTime(secretId.creation_time);
        return {
          key,
          kind: 'vault-approle-secret-id',
          handle: accessor,
          label: `approle ${mount}/${role} secret-id ${accessor.slice(0, 8)}…`,
          // An expired secret-id lingers in LIST until the tidy runs, but cannot log in.
          status: expiresAt !== undefined && Date.parse(expiresAt) <= Date.now() ? 'inactive' : 'active',
          ...(createdAt ? { createdAt } : {}),
          ...(expiresAt ? { expiresAt } : {}),
          details: { mount, role, secretIdNumUses: secretId.secret_id_num_uses },
        };
      }),
    );
    const live = found.filter((credential) => credential !== undefined);
    if (live.length > 0) return live;
    // A role without secret-ids still exists (a declared identity is not "missing"),
    // but nobody can log in with it yet.
    return [
      {
        key,
        kind: 'vault-approle-secret-id',
        handle: `${mount}/${role}`,
        label: `approle ${mount}/${role} (no secret-ids)`,
        status: 'inactive',
        details: { mount, role },
      },
    ];
  }

  /**
   * Every token of the token store, and every accessor an identity declares (looked up
   * directly, whatever created it), keyed by the identity that declares it.
   */
  async #tokens(identities: readonly Identity[]): Promise<DiscoveredCredential[]> {
    const [self, listed] = await Promise.all([
      this.#call((vault) => vault.lookupSelf()),
      this.#call((vault) => vault.list('auth/token/accessors')),
    ]);
    const declared = identities.flatMap((identity) =>
      identity.kind === 'vault-token' ? declaredAccessors(identity.scope) : [],
    );
    const accessors = [...new Set([...listed, ...declared])]
      // keywarden's own token is the instrument, not an inventory item.
      .filter((accessor) => accessor !== self.accessor);
    const found = await Promise.all(
      accessors.map(async (accessor): Promise<DiscoveredCredential | undefined> => {
        // undefined: revoked or expired (between LIST and lookup, or a declared accessor that is gone).
        const token = await this.#call((vault) => vault.lookupAccessor(accessor));
        if (!token) return undefined;
        const seen = tokenSeen(token);
        const owner = declaringIdentity(identities, seen);
        // A token from a login to another auth method (`auth/approle/login`, …) belongs
        // to that method's identity and shows up as its lease, unless declared by accessor.
        if (!owner && !token.path.startsWith('auth/token/')) return undefined;
        const issuedFor = token.meta?.[IDENTITY_META_KEY];
        const expiresAt = isoTime(token.expire_time);
        const policies = token.policies.join(',');
        return {
          key: owner
            ? scopeKey(owner)
            : issuedFor
              ? `vault-token:${issuedFor}`
              : `vault-token:undeclared/${token.display_name}/${accessor.slice(0, 8)}`,
          kind: 'vault-token',
          handle: accessor,
          label: `token ${token.display_name} (${policies})`,
          status: 'active',
          createdAt: new Date(token.creation_time * 1000).toISOString(),
          ...(expiresAt ? { expiresAt } : {}),
          details: {
            displayName: token.display_name,
            policies,
            orphan: token.orphan,
            renewable: token.renewable,
            ttl: token.ttl,
          },
        };
      }),
    );
    return found.filter((credential) => credential !== undefined);
  }

  async #kv(prefix: string, identities: readonly Identity[]): Promise<DiscoveredCredential[]> {
    const [mount = '', ...rest] = prefix.split('/');
    const found: DiscoveredCredential[] = [];
    const walk = async (folder: string): Promise<void> => {
      const keys = await this.#call((vault) =>
        vault.list(`${encodePath(mount)}/metadata/${encodePath(folder)}`),
      );
      await Promise.all(
        keys.map(async (name) => {
          // keywarden's own staging area holds pending values, not pipeline credentials.
          if (folder === '' && name === `${PENDING_FOLDER}/`) return;
          if (name.endsWith('/')) return walk(`${folder}${name}`);
          const path = `${folder}${name}`;
          const key = `vault-kv:${mount}/${path}`;
          const credential = await this.#kvSecret(
            mount,
            path,
            identities.find((identity) => identity.kind === 'vault-kv' && scopeKey(identity) === key),
          );
          if (credential) found.push(credential);
        }),
      );
    };
    await walk(rest.length ? `${rest.join('/')}/` : '');
    return found;
  }

  /** One KV secret; a declared one (`identity`) is fingerprinted by the part of its value that is the credential. */
  async #kvSecret(
    mount: string,
    path: string,
    identity: Identity | undefined,
  ): Promise<DiscoveredCredential | undefined> {
    const metadataPath = `${encodePath(mount)}/metadata/${encodePath(path)}`;
    const metadataAnswer = await this.#call((vault) => vault.read(metadataPath));
    // Its metadata deleted between LIST and read: the secret is gone with all versions.
    if (!metadataAnswer) return undefined;
    const metadata = parseVaultAnswer(KvMetadataSchema, metadataAnswer.data, 'read', metadataPath);
    const version = metadata.current_version;
    const current = metadata.versions[String(version)];
    // Metadata written without any version yet: nothing to find.
    if (!current) return undefined;

    const deletedAt = isoTime(current.deletion_time);
    let live = !current.destroyed && (deletedAt === undefined || Date.parse(deletedAt) > Date.now());
    let fingerprint: string | undefined;
    if (live) {
      // Pinned to the version the metadata named, so the fingerprint belongs to the handle.
      const dataAnswer = await this.#call((vault) =>
        vault.read(`${encodePath(mount)}/data/${encodePath(path)}?version=${version}`),
      );
      const value = dataAnswer?.data?.data;
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        fingerprint = this.#fingerprinter.of(credentialPart(identity, value as Record<string, unknown>));
      } else {
        // 404 (deleted between the two reads) or no data: nothing live to fingerprint.
        live = false;
      }
      // `value` goes out of scope here: only its fingerprint leaves this function.
    }
    const createdAt = isoTime(current.created_time);
    return {
      key: `vault-kv:${mount}/${path}`,
      kind: 'vault-kv',
      handle: `${mount}/${path}@v${version}`,
      label: `kv ${mount}/${path}`,
      status: live ? 'active' : 'inactive',
      ...(createdAt ? { createdAt } : {}),
      // A live version with a deletion time (`delete_version_after`) ends by itself then.
      ...(live && deletedAt ? { expiresAt: deletedAt } : {}),
      ...(fingerprint ? { fingerprint } : {}),
      details: { version },
    };
  }

  async #leases(prefix: string): Promise<DiscoveredCredential[]> {
    const found: DiscoveredCredential[] = [];
    const walk = async (folder: string): Promise<void> => {
      const keys = await this.#call((vault) =>
        vault.list(`sys/leases/lookup/${encodePath(prefix)}/${encodePath(folder)}`),
      );
      await Promise.all(
        keys.map(async (name) => {
          if (name.endsWith('/')) return walk(`${folder}${name}`);
          const leaseId = `${prefix}/${folder}${name}`;
          let answer: VaultResponse;
          try {
            answer = await this.#call((vault) => vault.write('sys/leases/lookup', { lease_id: leaseId }));
          } catch (error) {
            // Revoked or expired between LIST and lookup: 400 "invalid lease".
            if (isGone(error, /invalid lease/)) return;
            throw error;
          }
          const lease = parseVaultAnswer(LeaseSchema, answer.data, 'write', 'sys/leases/lookup');
          const createdAt = isoTime(lease.issue_time);
          const expiresAt = isoTime(lease.expire_time);
          found.push({
            key: `vault-lease:${prefix}`,
            kind: 'vault-lease',
            handle: lease.id,
            label: `lease ${prefix}/${folder}${name.length > 12 ? `${name.slice(0, 9)}…` : name}`,
            status: 'active',
            ...(createdAt ? { createdAt } : {}),
            ...(expiresAt ? { expiresAt } : {}),
            details: { renewable: lease.renewable, ttl: lease.ttl },
          });
        }),
      );
    };
    await walk('');
    return found;
  }
}

/** Vault decodes percent-escapes in paths; names from LIST may hold spaces, `?` or `#`. */
const encodePath = (path: string): string => path.split('/').map(encodeURIComponent).join('/');

/** A 404, or a 400 whose message matches: what Vault says about something that no longer exists. */
const isGone = (error: unknown, message?: RegExp): boolean =>
  error instanceof VaultError &&
  (error.status === 404 ||
    (error.status === 400 && message !== undefined && error.errors.some((e) => message.test(e))));

/** RFC 3339 (nanoseconds) to ISO with milliseconds; Go's zero time and empty mean "none". */
function isoTime(text: string | null | undefined): string | undefined {
  if (!text || text.startsWith('0001-01-01')) return undefined;
  const millis = Date.parse(text);
  return Number.isNaN(millis) ? undefined : new Date(millis).toISOString();
}
