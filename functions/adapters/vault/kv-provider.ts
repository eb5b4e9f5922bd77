/**
 * `vault-kv`: the credential is the value of a KV v2 secret itself (a database
 * password a pipeline reads, for instance), in the shape its template declares
 * (core/secret-shape.ts). Issuing only renders the next value;
 * the rotation engine stages and promotes it through {@link VaultKvDelivery}
 * at the identity's own path, which records which KV version holds which
 * rotation version. This provider reads those records to verify, retire and
 * list versions.
 *
 * Retiring a version destroys it (`<mount>/destroy/<path>`): the data is wiped
 * for good, while the metadata keeps a tombstone that shows it existed.
 */
import { NotFoundError, VerificationError } from '../../core/errors.ts';
import type { RandomBytes } from '../../core/generator.ts';
import type { IdentityOfKind } from '../../core/identity.ts';
import type {
  CredentialProvider,
  IssueContext,
  IssuedCredential,
  ListedCredential,
} from '../../core/ports.ts';
import { renderValue, shapeProblems } from '../../core/secret-shape.ts';
import { SecretValue } from '../../core/secret-value.ts';
import type { VaultClient } from './client.ts';
import {
  isVersionId,
  type KvState,
  kvApiPath,
  kvDataOf,
  kvReadOf,
  kvVersionIn,
  pendingPathOf,
  promotedKvState,
  readKvState,
  readKvVersion,
  readPendingValue,
  sameKvData,
} from './kv-delivery.ts';

type KvIdentity = IdentityOfKind<'vault-kv'>;

/** A KV version keywarden did not write (or whose record is gone) is handled as `kv-v<n>`. */
const UNRECORDED_HANDLE = /^kv-v(\d+)$/;

/** What {@link VaultKvProvider} needs. */
export interface VaultKvProviderOptions {
  client: VaultClient;
  /** A cryptographic source (node:crypto `randomBytes` in production). */
  random: RandomBytes;
}

/** {@link CredentialProvider} for KV v2 values; see the module comment. */
export class VaultKvProvider implements CredentialProvider<'vault-kv'> {
  readonly kind = 'vault-kv' as const;
  readonly #client: VaultClient;
  readonly #random: RandomBytes;

  constructor(options: VaultKvProviderOptions) {
    this.#client = options.client;
    this.#random = options.random;
  }

  /**
   * The next value: the fields the identity's template generates (by default one random
   * `value`) written over the newest KV version, every other field kept as it is. Nothing
   * is written to Vault here (the delivery stages it); a secret whose fields do not fit
   * the template is refused with what to declare. The newest version the rotation read
   * through the delivery (this very secret) is rendered over as it is; only without it is
   * it read here.
   */
  async issue(identity: KvIdentity, context: IssueContext): Promise<IssuedCredential> {
    const { mount, path } = identity.scope;
    const read = kvReadOf(context.current?.basis, mount, path);
    const current = read ? read.data : await this.#newest(mount, path);
    const next = renderValue(identity, current, this.#random);
    return {
      handle: context.versionId,
      secret: typeof next === 'string' ? new SecretValue(next) : SecretValue.ofJson(next),
    };
  }

  /** The data of the newest version of `<mount>/<path>`, or undefined when there is none. */
  async #newest(mount: string, path: string): Promise<Record<string, unknown> | undefined> {
    const state = await readKvState(this.#client, mount, path);
    return state && state.currentVersion > 0
      ? readKvVersion(this.#client, mount, path, state.currentVersion)
      : undefined;
  }

  /**
   * Proves that KV holds exactly this value for this version: the KV version
   * recorded for it once promoted, or else its staged sidecar (testSecret runs
   * before the value is promoted).
   */
  async verify(identity: KvIdentity, credential: { handle: string; secret: SecretValue }): Promise<void> {
    const { mount, path } = identity.scope;
    let stored: Record<string, unknown> | undefined;
    let where = `the pending value of ${mount}/${path}`;
    // testSecret comes before the promotion: the staged sidecar is read first, and the
    // metadata (which KV version a promoted one became) only when there is none.
    const pending = isVersionId(credential.handle)
      ? await readPendingValue(this.#client, { mount, path }, credential.handle)
      : undefined;
    if (pending) stored = kvDataOf(pending).data;
    else {
      const version = resolveVersion(await readKvState(this.#client, mount, path), credential.handle);
      where = version === undefined ? `${mount}/${path}` : `version ${version} of ${mount}/${path}`;
      if (version !== undefined) stored = await readKvVersion(this.#client, mount, path, version);
    }
    if (!stored) {
      throw new VerificationError(
        `vault-kv ${identity.id}: expected version ${credential.handle} in KV (promoted or staged), found neither readable; it was never delivered, or was destroyed`,
      );
    }
    if (!sameKvData(stored, kvDataOf(credential.secret).data)) {
      throw new VerificationError(
        `vault-kv ${identity.id}: ${where} does not hold the value issued for version ${credential.handle}; someone else wrote it — rotate again`,
      );
    }
    const problems = shapeProblems(identity, stored);
    if (problems.length > 0) {
      throw new VerificationError(
        `vault-kv ${identity.id}: ${where} does not fit its declared template: ${problems.join('; ')}`,
      );
    }
  }

  /**
   * Destroys the KV version of `handle`. A version never promoted has its staged
   * sidecar deleted instead, so a pending value can be revoked too.
   */
  async revoke(identity: KvIdentity, handle: string): Promise<'revoked' | 'already-revoked'> {
    const { mount, path } = identity.scope;
    // What a promotion left is forgotten: this may destroy a version of it.
    promotedKvState(this.#client, mount, path, { take: true });
    const state = await readKvState(this.#client, mount, path);
    const version = resolveVersion(state, handle);
    if (version === undefined) {
      if (!isVersionId(handle) || !(await readPendingValue(this.#client, { mount, path }, handle))) {
        return 'already-revoked';
      }
      await this.#client.delete(kvApiPath(mount, 'metadata', pendingPathOf(path, handle)));
      return 'revoked';
    }
    // KV answers 204 to destroying a destroyed or unknown version, so the metadata decides.
    const info = state?.versions.get(version);
    if (!info || info.destroyed) return 'already-revoked';
    await this.#client.write(kvApiPath(mount, 'destroy', path), { versions: [version] });
    return 'revoked';
  }

  /**
   * At finishSecret `handle` becomes the previous version: every version older
   * than it is destroyed, so only current and previous stay readable.
   */
  async supersede(identity: KvIdentity, handle: string): Promise<void> {
    const { mount, path } = identity.scope;
    // Right after the promotion: the metadata it left, else read.
    const state =
      promotedKvState(this.#client, mount, path, { take: true }) ??
      (await readKvState(this.#client, mount, path));
    const version = resolveVersion(state, handle);
    if (state === undefined || version === undefined) {
      // Without the anchor, "older than" means nothing; destroying by guess could hit the live value.
      throw new NotFoundError(
        `vault-kv ${identity.id}: version ${handle} is not recorded at ${mount}/${path}; expected the version being superseded to be a promoted KV version — nothing was destroyed`,
      );
    }
    const older = [...state.versions]
      .filter(([number, info]) => number < version && !info.destroyed)
      .map(([number]) => number)
      .sort((a, b) => a - b);
    if (older.length === 0) return;
    await this.#client.write(kvApiPath(mount, 'destroy', path), { versions: older });
  }

  /**
   * The versions KV still keeps and has not destroyed; soft-deleted ones are listed inactive
   * (they can be undeleted). The newest readable one is listed `current`, the others `previous`.
   */
  async list(identity: KvIdentity): Promise<ListedCredential[]> {
    const { mount, path } = identity.scope;
    // A first rotation lists right after its promotion, to adopt what it replaced: the metadata it left.
    const state =
      promotedKvState(this.#client, mount, path) ?? (await readKvState(this.#client, mount, path));
    if (!state) return [];
    const now = Date.now();
    return [...state.versions]
      .filter(([, info]) => !info.destroyed)
      .sort(([a], [b]) => a - b)
      .map(([version, info]): ListedCredential => {
        const versionId = state.versionIds.get(version);
        const deleted = info.deletedAt !== undefined && Date.parse(info.deletedAt) <= now;
        return {
          handle: versionId ?? `kv-v${version}`,
          status: deleted ? 'inactive' : 'active',
          ...(deleted ? {} : { stage: version === state.currentVersion ? 'current' : 'previous' }),
          ...(info.createdAt ? { createdAt: info.createdAt } : {}),
          ...(versionId ? { versionId } : {}),
        };
      });
  }
}

/** The KV version behind a handle: a recorded versionId, or `kv-v<n>` from {@link VaultKvProvider.list}. */
function resolveVersion(state: KvState | undefined, handle: string): number | undefined {
  const recorded = kvVersionIn(state, handle);
  if (recorded !== undefined) return recorded;
  const match = UNRECORDED_HANDLE.exec(handle);
  return match ? Number(match[1]) : undefined;
}
