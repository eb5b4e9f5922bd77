/**
 * `vault-approle-secret-id`: a new AppRole secret-id per rotation version,
 * delivered with the role's role-id as `{"role_id": …, "secret_id": …}`.
 *
 * The secret-id carries its own end (`ttl`, `num_uses`) and metadata naming the
 * identity and the rotation version, so it can be found again through its
 * accessor; the secret-id itself is never stored. The previous secret-id stays
 * valid through the grace period and is destroyed by accessor when it retires.
 *
 * Verifying must not spend what it proves: a secret-id with limited uses is
 * checked through a lookup (which consumes nothing), one with unlimited uses
 * through a real login whose token is revoked at once.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import pLimit from 'p-limit';
import * as z from 'zod';
import { toSeconds } from '../../core/duration.ts';
import { NotFoundError, VerificationError } from '../../core/errors.ts';
import type { Identity, IdentityOfKind } from '../../core/identity.ts';
import type {
  CredentialProvider,
  IssuedCredential,
  ListedCredential,
  ListOptions,
} from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { wholeNumberOption } from '../options.ts';
import { parseVaultAnswer, type VaultClient, VaultError } from './client.ts';
import { VERSION_META_KEY } from './token-provider.ts';
import { IDENTITY_META_KEY } from './vault-discovery.ts';

type ApproleIdentity = IdentityOfKind<'vault-approle-secret-id'>;

/** `auth/<mount>/role/<role>/secret-id` (write). */
const CreatedSecretIdSchema = z.object({
  secret_id: z.string().min(1),
  secret_id_accessor: z.string().min(1),
  /** Seconds; 0 when the secret-id never expires. */
  secret_id_ttl: z.number(),
});

/** `…/secret-id/lookup` and `…/secret-id-accessor/lookup`. */
const SecretIdLookupSchema = z.object({
  secret_id_accessor: z.string(),
  /** RFC 3339. */
  creation_time: z.string(),
  /** RFC 3339; Go's zero time when the secret-id never expires. */
  expiration_time: z.string(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  /** Uses left; 0 means unlimited. */
  secret_id_num_uses: z.number(),
});

/** The `auth` block of an AppRole login. `client_token` is a live token: revoked right after, never kept. */
const LoginSchema = z.object({
  client_token: z.string().min(1),
  /** Empty for a batch token, which cannot be revoked (it lives out its TTL). */
  accessor: z.string(),
});

/** `auth/<mount>/role/<role>/role-id` (read). */
const RoleIdSchema = z.object({ role_id: z.string().min(1) });

/** What is delivered to the pipeline. */
const DeliveredSchema = z.object({ role_id: z.string().min(1), secret_id: z.string().min(1) });

/** What {@link VaultApproleProvider} needs. */
export interface VaultApproleProviderOptions {
  client: VaultClient;
  /** Most secret-id lookups in flight at once while listing; default 8. */
  concurrency?: number;
}

/** {@link CredentialProvider} for AppRole secret-ids; see the module comment. */
export class VaultApproleProvider implements CredentialProvider<'vault-approle-secret-id'> {
  readonly kind = 'vault-approle-secret-id' as const;
  readonly #client: VaultClient;
  readonly #concurrency: number;

  constructor(options: VaultApproleProviderOptions) {
    const concurrency = wholeNumberOption(
      { owner: 'VaultApproleProvider', option: 'concurrency' },
      options.concurrency,
      8,
    );
    this.#client = options.client;
    this.#concurrency = concurrency;
  }

  /** A new secret-id beside the existing ones, which keep working. */
  async issue(identity: ApproleIdentity, context: { versionId: string }): Promise<IssuedCredential> {
    const { scope } = identity;
    // The role-id first: a missing role then fails before anything is created.
    const roleId = await this.#roleId(identity);
    const path = `${rolePath(identity)}/secret-id`;
    const answer = await this.#client.write(path, {
      // Seconds: Vault's own duration parser has no `d` or `w` unit.
      ttl: `${toSeconds(scope.secretIdTtl)}s`,
      num_uses: scope.numUses,
      // AppRole takes metadata as a JSON string of string values.
      metadata: JSON.stringify({ [IDENTITY_META_KEY]: identity.id, [VERSION_META_KEY]: context.versionId }),
    });
    const created = parseVaultAnswer(CreatedSecretIdSchema, answer.data, 'write', path);
    return {
      handle: created.secret_id_accessor,
      secret: SecretValue.ofJson({ role_id: roleId, secret_id: created.secret_id }),
      // The TTL Vault granted, which the role's own secret_id_ttl may have capped.
      ...(created.secret_id_ttl > 0
        ? { expiresAt: new Date(Date.now() + created.secret_id_ttl * 1_000).toISOString() }
        : {}),
    };
  }

  /**
   * The secret-id must exist under the role with accessor `handle`, and the
   * role-id must be the role's. With unlimited uses a real login proves the
   * pair works end to end; its token is revoked at once so verification leaves
   * nothing behind. With limited uses a login would spend one, so the lookup
   * and the role-id check stand in for it.
   */
  async verify(
    identity: ApproleIdentity,
    credential: { handle: string; secret: SecretValue },
  ): Promise<void> {
    const delivered = DeliveredSchema.safeParse(parseJson(credential.secret.reveal()));
    if (!delivered.success) {
      throw new VerificationError(
        `vault-approle ${identity.id}: expected the credential as JSON {"role_id", "secret_id"}, got another shape`,
      );
    }
    const { role_id: roleId, secret_id: secretId } = delivered.data;

    const lookupPath = `${rolePath(identity)}/secret-id/lookup`;
    // An unknown secret-id is a 204 without a body.
    const answer = await this.#client.write(lookupPath, { secret_id: secretId });
    if (!answer.data) {
      throw new VerificationError(
        `vault-approle ${identity.id}: the secret-id of accessor ${credential.handle} is unknown to role ${scopeLabel(identity)}; it was destroyed, used up or expired — rotate again`,
      );
    }
    const found = parseVaultAnswer(SecretIdLookupSchema, answer.data, 'write', lookupPath);
    if (found.secret_id_accessor !== credential.handle) {
      throw new VerificationError(
        `vault-approle ${identity.id}: expected the secret-id of accessor ${credential.handle}, got the one of accessor ${found.secret_id_accessor}; the delivered value belongs to another secret-id`,
      );
    }
    const expiresAt = isoTime(found.expiration_time);
    if (expiresAt !== undefined && Date.parse(expiresAt) <= Date.now()) {
      throw new VerificationError(
        `vault-approle ${identity.id}: the secret-id of accessor ${credential.handle} expired at ${expiresAt}; rotate again`,
      );
    }

    if (found.secret_id_num_uses > 0) {
      if (!sameText(roleId, await this.#roleId(identity))) {
        throw new VerificationError(
          `vault-approle ${identity.id}: the delivered role_id is not the role-id of ${scopeLabel(identity)}; expected the role's current role-id`,
        );
      }
      return;
    }
    await this.#login(identity, roleId, secretId);
  }

  /** Destroys the secret-id by accessor. */
  async revoke(identity: ApproleIdentity, handle: string): Promise<'revoked' | 'already-revoked'> {
    try {
      await this.#client.write(`${rolePath(identity)}/secret-id-accessor/destroy`, {
        secret_id_accessor: handle,
      });
      return 'revoked';
    } catch (error) {
      // OpenBao answers an unknown accessor with HTTP 500 "failed to find accessor entry";
      // a deleted role took its secret-ids with it.
      if (isGone(error)) return 'already-revoked';
      throw error;
    }
  }

  /**
   * Every secret-id of the role, except those whose metadata names another
   * identity (a role shared by two identities). An expired secret-id lingers
   * until Vault's tidy and is listed inactive, at stage `revoked`: Vault refuses it.
   */
  async list(identity: ApproleIdentity, options: ListOptions = {}): Promise<ListedCredential[]> {
    let accessors: string[];
    try {
      accessors = await this.#client.list(`${rolePath(identity)}/secret-id`);
    } catch (error) {
      if (isGone(error)) return [];
      throw error;
    }
    const limit = pLimit(this.#concurrency);
    const lookupPath = `${rolePath(identity)}/secret-id-accessor/lookup`;
    // What the caller has recorded (the secret-id a rotation just issued) is not looked up.
    const found = await Promise.all(
      accessors
        .filter((accessor) => !options.skip?.has(accessor))
        .map((accessor) =>
          limit(async (): Promise<ListedCredential | undefined> => {
            let answer: Awaited<ReturnType<VaultClient['write']>>;
            try {
              answer = await this.#client.write(lookupPath, { secret_id_accessor: accessor });
            } catch (error) {
              // Destroyed between LIST and lookup: 404 "failed to find accessor entry".
              if (error instanceof VaultError && error.status === 404) return undefined;
              if (isGone(error)) return undefined;
              throw error;
            }
            const secretId = parseVaultAnswer(SecretIdLookupSchema, answer.data, 'write', lookupPath);
            const owner = secretId.metadata?.[IDENTITY_META_KEY];
            if (owner !== undefined && owner !== identity.id) return undefined;
            const versionId = owner === undefined ? undefined : secretId.metadata?.[VERSION_META_KEY];
            const createdAt = isoTime(secretId.creation_time);
            const expiresAt = isoTime(secretId.expiration_time);
            const expired = expiresAt !== undefined && Date.parse(expiresAt) <= Date.now();
            return {
              handle: accessor,
              status: expired ? 'inactive' : 'active',
              ...(expired ? { stage: 'revoked' as const } : {}),
              ...(createdAt ? { createdAt } : {}),
              ...(versionId ? { versionId } : {}),
            };
          }),
        ),
    );
    return found
      .filter((credential) => credential !== undefined)
      .sort(
        (a, b) => (a.createdAt ?? '').localeCompare(b.createdAt ?? '') || a.handle.localeCompare(b.handle),
      );
  }

  async #roleId(identity: ApproleIdentity): Promise<string> {
    const path = `${rolePath(identity)}/role-id`;
    // A missing role is a 404 without an error: nothing here.
    const answer = await this.#client.read(path);
    if (!answer) {
      throw new NotFoundError(
        `vault-approle ${identity.id}: role ${scopeLabel(identity)} does not exist; expected the role declared in scope.roleName — create it or fix the inventory`,
      );
    }
    return parseVaultAnswer(RoleIdSchema, answer.data, 'read', path).role_id;
  }

  /**
   * Logs in as the pipeline would. A plain write, so keywarden's client keeps its
   * own token; the login token is revoked at once (its lease goes with it).
   */
  async #login(identity: ApproleIdentity, roleId: string, secretId: string): Promise<void> {
    const path = `auth/${encodePath(identity.scope.mount)}/login`;
    let auth: z.infer<typeof LoginSchema>;
    try {
      const answer = await this.#client.write(path, { role_id: roleId, secret_id: secretId });
      auth = parseVaultAnswer(LoginSchema, answer.auth, 'write', path);
    } catch (error) {
      // 400 "invalid role or secret ID": the pair does not log in.
      if (error instanceof VaultError && error.status === 400) {
        throw new VerificationError(
          `vault-approle ${identity.id}: login to ${scopeLabel(identity)} with the new secret-id was refused (${error.errors.join('; ') || 'HTTP 400'}); rotate again`,
          { cause: error },
        );
      }
      throw error;
    }
    // A batch token has no accessor and cannot be revoked; it ends with the role's token TTL.
    if (auth.accessor) await this.#client.revokeAccessor(auth.accessor);
  }
}

const rolePath = (identity: ApproleIdentity): string =>
  `auth/${encodePath(identity.scope.mount)}/role/${encodeURIComponent(identity.scope.roleName)}`;

const scopeLabel = (identity: ApproleIdentity): string =>
  `${identity.scope.mount}/${identity.scope.roleName}`;

/** What AppRole says about an accessor or role that no longer exists. */
const isGone = (error: unknown): boolean =>
  error instanceof VaultError &&
  error.errors.some((text) => /failed to find accessor entry|role "[^"]*" does not exist/i.test(text));

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Constant-time string equality (digests, so lengths never leak either). */
function sameText(a: string, b: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** Vault decodes percent-escapes in paths; a mount may be nested (`ci/approle`). */
const encodePath = (path: string): string =>
  path
    .replace(/^\/+|\/+$/g, '')
    .split('/')
    .map(encodeURIComponent)
    .join('/');

/** RFC 3339 (nanoseconds) to ISO with milliseconds; empty and Go's zero time mean "none". */
function isoTime(text: string | null | undefined): string | undefined {
  if (!text || text.startsWith('0001-01-01')) return undefined;
  const millis = Date.parse(text);
  return Number.isNaN(millis) ? undefined : new Date(millis).toISOString();
}

/**
 * The role-id of an AppRole identity's role (not a secret), or undefined when the role does not
 * exist: exposure matching pairs it with a found secret-id, as the delivered value does.
 */
export async function approleRoleId(client: VaultClient, identity: Identity): Promise<string | undefined> {
  if (identity.kind !== 'vault-approle-secret-id') return undefined;
  const answer = await client.read(`${rolePath(identity)}/role-id`);
  return answer ? (answer.data as { role_id?: string } | undefined)?.role_id : undefined;
}
