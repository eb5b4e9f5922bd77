/**
 * Delivery to a Vault / OpenBao KV v2 secret: the pipeline reads the latest
 * version of `<mount>/data/<path>`, so that path must only ever show a value
 * that passed its test.
 *
 * Layout (a deployment must grant keywarden both, and the pipelines only the first):
 * - `<mount>/data/<path>` — what the pipeline reads. Each promoted version is
 *   recorded in the secret's `custom_metadata` as `kw-<kv version>: <versionId>`
 *   (plus `kw-<kv version>-format: text` for a value that is not a JSON object),
 *   so a KV version can be traced back to the rotation that wrote it.
 * - `<mount>/data/keywarden-pending/<path>/<versionId>` — a keywarden-owned
 *   sidecar holding a staged value until it is promoted. Staging it beside the
 *   live secret instead of as a new version of it is what keeps it invisible:
 *   a KV v2 read without `?version=` always returns the newest version.
 *
 * Every step is idempotent, including after a crash between the KV write and
 * the metadata update of `promote`: the latest version is compared with the
 * staged value before anything is written again. The same holds for a write
 * whose answer was lost: the client tries it again (./retry.ts), and the
 * check-and-set that then fails is met by re-reading what landed (see `promote`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as z from 'zod';
import { canonicalJson } from '../../core/canonical-json.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.ts';
import type { Delivery } from '../../core/identity.ts';
import type { DeliveredValue, DeliveryTarget, StageContext, StagedValue } from '../../core/ports.ts';
import { trimSlashes } from '../../core/resource-key.ts';
import { renamedFields } from '../../core/secret-shape.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { KvMetadataSchema, parseVaultAnswer, type VaultClient, VaultError } from './client.ts';

/** A Vault KV delivery target as declared in the inventory. */
export type VaultKvDeliveryTarget = Extract<Delivery, { type: 'vault-kv' }>;

/** The folder, under the same mount, where staged values wait for promotion. */
export const PENDING_FOLDER = 'keywarden-pending';

/** KV v2 allows at most 64 `custom_metadata` keys per secret. */
const MAX_CUSTOM_METADATA_KEYS = 64;

/** `kw-<n>` → versionId, `kw-<n>-format` → `text`. */
const MAPPING_KEY = /^kw-(\d+)(-format)?$/;

/** One KV version as the metadata describes it. */
export interface KvVersionInfo {
  createdAt: string | undefined;
  /** When it was (or will be) soft-deleted; undefined while live. */
  deletedAt: string | undefined;
  destroyed: boolean;
}

/** What keywarden needs from the metadata of one KV v2 secret. */
export interface KvState {
  /** 0 when the secret has metadata but no version yet. */
  currentVersion: number;
  /** OpenBao's metadata revision, when the server reports one (Vault does not). */
  metadataVersion: number | undefined;
  customMetadata: Record<string, string>;
  /** The versions KV still keeps (at most `max_versions`); destroyed ones included. */
  versions: Map<number, KvVersionInfo>;
  /** KV version → the keywarden versionId that promoted it. */
  versionIds: Map<number, string>;
}

/** What a KV v2 data write answers: the version it made. Built once, not per write. */
const WrittenVersionSchema = z.object({ version: z.number() });

/** A KV v2 path: mount, then `data`, `metadata` or `destroy`, then the secret path, each segment encoded. */
export const kvApiPath = (mount: string, endpoint: 'data' | 'metadata' | 'destroy', path: string): string =>
  `${encodePath(mount)}/${endpoint}/${encodePath(path)}`;

/** The secret path of the sidecar holding the staged value of `versionId`. */
export const pendingPathOf = (path: string, versionId: string): string =>
  `${PENDING_FOLDER}/${trimSlashes(path)}/${versionId}`;

/** The metadata of the secret at `<mount>/<path>`, or undefined when it does not exist. */
export async function readKvState(
  client: VaultClient,
  mount: string,
  path: string,
): Promise<KvState | undefined> {
  const metadataPath = kvApiPath(mount, 'metadata', path);
  const answer = await client.read(metadataPath);
  if (!answer) return undefined;
  const metadata = parseVaultAnswer(KvMetadataSchema, answer.data, 'read', metadataPath);
  const customMetadata = metadata.custom_metadata ?? {};
  const versions = new Map<number, KvVersionInfo>();
  for (const [key, info] of Object.entries(metadata.versions)) {
    versions.set(Number(key), {
      createdAt: isoTime(info.created_time),
      deletedAt: isoTime(info.deletion_time),
      destroyed: info.destroyed,
    });
  }
  return {
    currentVersion: metadata.current_version,
    metadataVersion: metadata.current_metadata_version,
    customMetadata,
    versions,
    versionIds: versionIdsOf(customMetadata),
  };
}

/** KV version → versionId, from the `kw-<n>` records of custom_metadata. */
function versionIdsOf(customMetadata: Record<string, string>): Map<number, string> {
  const versionIds = new Map<number, string>();
  for (const [key, value] of Object.entries(customMetadata)) {
    const match = MAPPING_KEY.exec(key);
    if (match && !match[2]) versionIds.set(Number(match[1]), value);
  }
  return versionIds;
}

/** How long the metadata a promotion left stands for the rotation's next reads of it. */
const PROMOTED_STATE_MS = 60_000;

/**
 * The metadata of each secret as a promotion through a client left it, where the promotion
 * knows it exactly: its record was written check-and-set on the revision staging read (OpenBao),
 * so the metadata is that revision with the new version and the record added. The rotation's
 * finishing step reads it right after the promotion (adoption lists it, supersede anchors on it):
 * they take this instead of reading it again. Kept by client, per `<mount>/<path>`.
 */
const promotedStates = new WeakMap<VaultClient, Map<string, { state: KvState; at: number }>>();

const promotedKey = (mount: string, path: string) => `${mount}\n${trimSlashes(path)}`;

/**
 * The metadata a promotion through `client` left at `<mount>/<path>` within the last minute,
 * if it knows it; `take` forgets it (supersede, the finishing step's last read of it).
 */
export function promotedKvState(
  client: VaultClient,
  mount: string,
  path: string,
  options: { take?: boolean } = {},
): KvState | undefined {
  const states = promotedStates.get(client);
  const key = promotedKey(mount, path);
  const known = states?.get(key);
  if (options.take) states?.delete(key);
  if (!known || Date.now() - known.at > PROMOTED_STATE_MS) return undefined;
  return known.state;
}

function rememberPromoted(
  client: VaultClient,
  mount: string,
  path: string,
  state: KvState | undefined,
): void {
  let states = promotedStates.get(client);
  if (!states) {
    states = new Map();
    promotedStates.set(client, states);
  }
  if (state) states.set(promotedKey(mount, path), { state, at: Date.now() });
  else states.delete(promotedKey(mount, path));
}

/** The KV version that `promote` recorded for `versionId` in `state`, if any. */
export function kvVersionIn(state: KvState | undefined, versionId: string): number | undefined {
  for (const [version, id] of state?.versionIds ?? []) if (id === versionId) return version;
  return undefined;
}

/**
 * The KV version of `<mount>/<path>` that holds rotation version `versionId`,
 * as recorded by {@link VaultKvDelivery.promote}; undefined when it was never promoted
 * there (or its record was pruned because the version was destroyed).
 */
export async function kvVersionOf(
  client: VaultClient,
  mount: string,
  path: string,
  versionId: string,
): Promise<number | undefined> {
  return kvVersionIn(await readKvState(client, mount, path), versionId);
}

/**
 * The data of one KV version; undefined when it is soft-deleted, destroyed, or
 * never existed (KV answers all three with a 404 and no error).
 */
export async function readKvVersion(
  client: VaultClient,
  mount: string,
  path: string,
  version: number,
): Promise<Record<string, unknown> | undefined> {
  const answer = await client.read(`${kvApiPath(mount, 'data', path)}?version=${version}`);
  const data = answer?.data?.data;
  return isPlainObject(data) ? data : undefined;
}

/**
 * The KV data a secret is written as: a JSON object as its own fields, anything
 * else (a token, a password) as `{ <field>: … }` (`value` unless the delivery names
 * another), so the pipeline reads a field either way.
 */
export function kvDataOf(
  secret: SecretValue,
  field = 'value',
): { data: Record<string, unknown>; format: 'json' | 'text' } {
  const text = secret.reveal();
  try {
    const parsed: unknown = JSON.parse(text);
    if (isPlainObject(parsed)) return { data: parsed, format: 'json' };
  } catch {
    // Not JSON: a plain value.
  }
  return { data: { [field]: text }, format: 'text' };
}

/**
 * Whether two KV data objects are equal, compared as canonical JSON in constant
 * time (through their SHA-256 digests, which always have the same length).
 */
export function sameKvData(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const digest = (value: Record<string, unknown>) =>
    createHash('sha256').update(canonicalJson(value)).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * What {@link VaultKvDelivery.readCurrent} found (`DeliveredValue.basis`), and what staging
 * staged over (`StagedValue.basis`): the secret's metadata and its newest version's data. The
 * provider of a value that is its own delivery renders over it, staging checks its fields
 * against it, and promotion writes over it, check-and-set on its version, without reading again.
 */
export class KvRead {
  constructor(
    readonly mount: string,
    readonly path: string,
    readonly state: KvState,
    readonly data: Record<string, unknown>,
  ) {}
}

/** `basis` as the {@link KvRead} of `<mount>/<path>`, or undefined when it is anything else. */
export const kvReadOf = (basis: unknown, mount: string, path: string): KvRead | undefined =>
  basis instanceof KvRead && basis.mount === mount && basis.path === path ? basis : undefined;

/** The newest readable version of `<mount>/<path>` with the metadata, or undefined when there is none. */
async function readNewest(client: VaultClient, mount: string, path: string): Promise<KvRead | undefined> {
  const state = await readKvState(client, mount, path);
  if (!state || state.currentVersion === 0) return undefined;
  const data = await readKvVersion(client, mount, path, state.currentVersion);
  return data ? new KvRead(mount, path, state, data) : undefined;
}

/** The value staged for `versionId` at the sidecar, or undefined when none is. */
export async function readPendingValue(
  client: VaultClient,
  delivery: { mount: string; path: string },
  versionId: string,
): Promise<SecretValue | undefined> {
  const answer = await client.read(
    kvApiPath(delivery.mount, 'data', pendingPathOf(delivery.path, versionId)),
  );
  const value = answer?.data?.data;
  // The sidecar holds the exact string that was staged, so the round trip is byte for byte.
  if (!isPlainObject(value) || typeof value.value !== 'string' || value.value === '') return undefined;
  return new SecretValue(value.value);
}

/**
 * {@link DeliveryTarget} for a KV v2 secret; see the module comment for the
 * layout. `readCurrent` returns a JSON value with its keys in the order Vault
 * answers them (sorted), so compare values as canonical JSON, not as strings.
 */
export class VaultKvDelivery implements DeliveryTarget<VaultKvDeliveryTarget> {
  readonly type = 'vault-kv' as const;
  readonly #client: VaultClient;

  constructor(options: { client: VaultClient }) {
    this.#client = options.client;
  }

  /**
   * Writes the sidecar. The same value again is a no-op (no new sidecar version);
   * a different value for the same version id is refused, as Secrets Manager
   * refuses it for one ClientRequestToken: one version, one value.
   */
  async stagePending(
    delivery: VaultKvDeliveryTarget,
    versionId: string,
    secret: SecretValue,
    known?: StageContext,
  ): Promise<StagedValue> {
    checkVersionId(versionId);
    const { mount, path } = delivery;
    // The newest version as the run read it, if it read this secret; else read now.
    const readByRun =
      known && (known.current === undefined || kvReadOf(known.current.basis, mount, path) !== undefined);
    const newest = readByRun
      ? kvReadOf(known.current?.basis, mount, path)
      : await readNewest(this.#client, mount, path);
    this.#checkFields(delivery, secret, newest?.data);
    const sidecar = kvApiPath(delivery.mount, 'data', pendingPathOf(delivery.path, versionId));
    try {
      // Check-and-set 0: written only if no sidecar exists, so a first staging reads nothing back.
      await this.#client.write(sidecar, { options: { cas: 0 }, data: { value: secret.reveal() } });
    } catch (error) {
      if (!isCasMismatch(error)) throw error;
      // Staged before (a repeat, a resumed run, or our own write answered too late): one version, one value.
      const staged = await readPendingValue(this.#client, delivery, versionId);
      if (!staged) {
        // A sidecar whose value is gone (deleted version): staged again over it.
        await this.#client.write(sidecar, { data: { value: secret.reveal() } });
      } else if (!sameText(staged.reveal(), secret.reveal())) {
        throw new ValidationError(
          `vault-kv delivery: version ${versionId} of ${delivery.mount}/${delivery.path} already has a different pending value staged; expected the same value again, or a new version id for a new value`,
        );
      }
    }
    // The sidecar holds the value as given; promotion lays its fields over the live ones.
    return newest ? { secret, basis: newest } : { secret };
  }

  /** Refuses a value whose fields share none with the secret's newest version (see `renamedFields`). */
  #checkFields(
    delivery: VaultKvDeliveryTarget,
    secret: SecretValue,
    current: Record<string, unknown> | undefined,
  ): void {
    const { mount, path } = delivery;
    if (!current) return;
    const renamed = renamedFields(current, kvDataOf(secret, delivery.field).data);
    if (renamed) {
      throw new ValidationError(
        `vault-kv delivery: ${mount}/${path}: ${renamed}; name the field the pipeline reads (delivery.field for a plain credential), or move the pipeline to the new fields`,
      );
    }
  }

  async readPending(delivery: VaultKvDeliveryTarget, versionId: string): Promise<SecretValue | undefined> {
    checkVersionId(versionId);
    return readPendingValue(this.#client, delivery, versionId);
  }

  /** Deletes the sidecar with all its versions (KV answers 204 even when there is none). */
  async discardPending(delivery: VaultKvDeliveryTarget, versionId: string): Promise<void> {
    checkVersionId(versionId);
    await this.#client.delete(kvApiPath(delivery.mount, 'metadata', pendingPathOf(delivery.path, versionId)));
  }

  /**
   * Writes the staged value as the newest version of the secret (its fields over
   * those of the version it replaces, so fields it does not set are kept), records
   * the mapping, and drops the sidecar. Safe to run again at any point:
   * - already recorded → only the (leftover) sidecar is dropped;
   * - written but not recorded (crash in between) → the newest version already
   *   holds the staged value, so it is recorded instead of written twice.
   * The write is check-and-set on the version read first: a pipeline or person
   * writing at the same moment makes it fail with a {@link ConflictError}
   * rather than be silently buried under our version. A write (or metadata
   * record) that landed but whose answer was lost is retried by the client and
   * fails its check-and-set against itself; that is recognised by re-reading —
   * our data is the newest version, or our record is there — and counts as done.
   */
  async promote(delivery: VaultKvDeliveryTarget, versionId: string, staged?: StagedValue): Promise<void> {
    checkVersionId(versionId);
    const { mount, path } = delivery;
    const basis = staged && kvReadOf(staged.basis, mount, path);
    if (staged && basis) {
      // The same run staged this value over `basis` moments ago: no record of it can exist yet,
      // and the newest version then was someone's, not ours. The write is check-and-set on that
      // version and the record on that metadata revision; if either moved since, the slow way
      // below reads afresh (a write of ours answered too late is recognised there as before).
      const { data, format } = kvDataOf(staged.secret, delivery.field);
      let version: number | undefined;
      try {
        version = await this.#write(delivery, { ...basis.data, ...data }, basis.state.currentVersion);
      } catch (error) {
        // Someone else wrote since staging: the slow way lays the value over theirs.
        if (!(error instanceof ConflictError)) throw error;
      }
      if (version !== undefined && (await this.#record(delivery, version, versionId, format, basis.state))) {
        await this.discardPending(delivery, versionId);
        return;
      }
    }
    const before = await readKvState(this.#client, mount, path);
    if (kvVersionIn(before, versionId) !== undefined) {
      await this.discardPending(delivery, versionId);
      return;
    }
    const pending = await readPendingValue(this.#client, delivery, versionId);
    if (!pending) {
      throw new NotFoundError(
        `vault-kv delivery: no pending value staged for version ${versionId} of ${mount}/${path} (expected one at ${mount}/${pendingPathOf(path, versionId)}); stage it before promoting`,
      );
    }
    const { data: fields, format } = kvDataOf(pending, delivery.field);
    // The staged fields over those of `version`: a field the pipeline reads beside the
    // credential (an address, a username) is kept as it is.
    const over = async (version: number): Promise<Record<string, unknown>> => ({
      ...(version > 0 ? await readKvVersion(this.#client, mount, path, version) : undefined),
      ...fields,
    });

    const current = before?.currentVersion ?? 0;
    // An unrecorded newest version equal to ours (written over the one before it) is our
    // own write from a run that stopped before recording it.
    const unrecorded = before !== undefined && current > 0 && !before.versionIds.has(current);
    const written =
      unrecorded && (await this.#isOwnWrite(delivery, before, current, await over(current - 1)))
        ? current
        : undefined;
    const version = written ?? (await this.#write(delivery, await over(current), current));
    await this.#record(delivery, version, versionId, format);
    await this.discardPending(delivery, versionId);
  }

  async readCurrent(delivery: VaultKvDeliveryTarget): Promise<DeliveredValue | undefined> {
    // Pinned to the version the metadata named, so the versionId belongs to the value.
    const newest = await readNewest(this.#client, delivery.mount, delivery.path);
    if (!newest) return undefined;
    const { state, data } = newest;
    const version = state.currentVersion;
    const versionId = state.versionIds.get(version);
    const plain = data[delivery.field ?? 'value'];
    const text = state.customMetadata[`kw-${version}-format`] === 'text' && typeof plain === 'string';
    const secret = text ? new SecretValue(plain) : new SecretValue(JSON.stringify(data));
    return { ...(versionId === undefined ? {} : { versionId }), secret, basis: newest };
  }

  /**
   * Whether KV `version` of the secret is our own write of `data`: it exists, no
   * rotation recorded it, and it holds exactly `data` (compared in constant time).
   */
  async #isOwnWrite(
    delivery: VaultKvDeliveryTarget,
    state: KvState | undefined,
    version: number,
    data: Record<string, unknown>,
  ): Promise<boolean> {
    if (!state || version < 1 || state.currentVersion !== version || state.versionIds.has(version)) {
      return false;
    }
    const held = await readKvVersion(this.#client, delivery.mount, delivery.path, version);
    return held !== undefined && sameKvData(held, data);
  }

  /**
   * Writes `data` as a new version if the newest is still `expected`; returns the new
   * version number. A check-and-set mismatch is either someone else's write (a
   * {@link ConflictError}) or our own: when the answer to a write that landed is lost,
   * the client sends it again and the second try fails its check against the first.
   * The write can only have made version `expected + 1`, so that being the newest,
   * unrecorded and holding exactly `data` means the write is done.
   */
  async #write(
    delivery: VaultKvDeliveryTarget,
    data: Record<string, unknown>,
    expected: number,
  ): Promise<number> {
    const dataPath = kvApiPath(delivery.mount, 'data', delivery.path);
    try {
      const answer = await this.#client.write(dataPath, { options: { cas: expected }, data });
      return parseVaultAnswer(WrittenVersionSchema, answer.data, 'write', dataPath).version;
    } catch (error) {
      if (isCasMismatch(error)) {
        const after = await readKvState(this.#client, delivery.mount, delivery.path);
        if (await this.#isOwnWrite(delivery, after, expected + 1, data)) return expected + 1;
        throw new ConflictError(
          `vault-kv delivery: ${delivery.mount}/${delivery.path} changed while promoting (expected newest version ${expected}); someone else wrote it — promote again to re-check`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  /**
   * Records `kw-<version>: versionId` in the secret's custom_metadata, keeping
   * other keys, dropping records of versions KV no longer keeps or destroyed,
   * and the oldest records when the 64-key limit would be passed. On OpenBao the
   * write is check-and-set on the metadata revision, so two writers cannot
   * silently drop each other's records. A mismatch whose fresh metadata holds our
   * record is our own write answered too late (the client's retry met it): done.
   *
   * `known`: the metadata as staging read it (a data write leaves OpenBao's metadata revision
   * as it was), taken instead of reading it again where the revision guards the write; then a
   * mismatch answers false, and the caller promotes the slow way, reading afresh.
   */
  async #record(
    delivery: VaultKvDeliveryTarget,
    version: number,
    versionId: string,
    format: 'json' | 'text',
    known?: KvState,
  ): Promise<boolean> {
    const { mount, path } = delivery;
    const guarded = known?.metadataVersion !== undefined ? known : undefined;
    const state = guarded ?? (await readKvState(this.#client, mount, path));
    if (!state) {
      throw new NotFoundError(
        `vault-kv delivery: ${mount}/${path} vanished while promoting version ${versionId}; its metadata was deleted — check who deleted it, then rotate again`,
      );
    }
    if (kvVersionIn(state, versionId) !== undefined) return true;

    const others: Record<string, string> = {};
    const records = new Map<number, Record<string, string>>();
    for (const [key, value] of Object.entries(state.customMetadata)) {
      const match = MAPPING_KEY.exec(key);
      if (!match) {
        others[key] = value;
        continue;
      }
      const recorded = Number(match[1]);
      const info = state.versions.get(recorded);
      if (!info || info.destroyed) continue;
      records.set(recorded, { ...records.get(recorded), [key]: value });
    }
    records.set(version, {
      [`kw-${version}`]: versionId,
      ...(format === 'text' ? { [`kw-${version}-format`]: 'text' } : {}),
    });
    // Newest first, so the limit drops the oldest records (never the one just made).
    const kept: Record<string, string> = { ...others };
    for (const [, entries] of [...records].sort(([a], [b]) => b - a)) {
      if (Object.keys(kept).length + Object.keys(entries).length > MAX_CUSTOM_METADATA_KEYS) break;
      Object.assign(kept, entries);
    }

    const metadataPath = kvApiPath(mount, 'metadata', path);
    try {
      await this.#client.write(metadataPath, {
        custom_metadata: kept,
        // Only OpenBao knows `metadata_cas`; Vault would ignore it with a warning.
        ...(state.metadataVersion === undefined ? {} : { metadata_cas: state.metadataVersion }),
      });
      // Written on the revision staging read: the metadata now is that one with our version and record.
      rememberPromoted(
        this.#client,
        mount,
        path,
        guarded && {
          currentVersion: Math.max(guarded.currentVersion, version),
          metadataVersion: (guarded.metadataVersion ?? 0) + 1,
          customMetadata: kept,
          versions: new Map(guarded.versions).set(version, {
            // Vault's own stamp is a moment earlier; only versions keywarden did not write are dated by it.
            createdAt: new Date().toISOString(),
            deletedAt: undefined,
            destroyed: false,
          }),
          versionIds: versionIdsOf(kept),
        },
      );
    } catch (error) {
      if (isMetadataCasMismatch(error)) {
        if (guarded) return false;
        if (kvVersionIn(await readKvState(this.#client, mount, path), versionId) === version) return true;
        throw new ConflictError(
          `vault-kv delivery: the metadata of ${mount}/${path} changed while recording version ${versionId}; promote again to re-check`,
          { cause: error },
        );
      }
      throw error;
    }
    return true;
  }
}

/** Whether `text` can name a sidecar: one path segment, not `.` or `..`. */
export const isVersionId = (text: string): boolean =>
  /^[A-Za-z0-9._-]{1,128}$/.test(text) && !/^\.+$/.test(text);

/**
 * Version ids become a path segment of the sidecar: refuse what would change the
 * path's meaning instead of encoding it into something surprising.
 */
function checkVersionId(versionId: string): void {
  if (!isVersionId(versionId)) {
    throw new ValidationError(
      `vault-kv delivery: expected a version id of letters, digits, '.', '_' or '-' (at most 128), got ${JSON.stringify(versionId)}`,
    );
  }
}

const isCasMismatch = (error: unknown): boolean =>
  error instanceof VaultError &&
  error.status === 400 &&
  error.errors.some((text) => /check-and-set parameter did not match/i.test(text));

/** OpenBao's refusal of a metadata write whose `metadata_cas` is not the current revision. */
const isMetadataCasMismatch = (error: unknown): boolean =>
  error instanceof VaultError && error.errors.some((text) => /metadata check-and-set/i.test(text));

/** Constant-time string equality (digests, so lengths never leak either). */
function sameText(a: string, b: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Vault decodes percent-escapes in paths; a segment may hold a space, `?` or `#`. */
const encodePath = (path: string): string => trimSlashes(path).split('/').map(encodeURIComponent).join('/');

/** RFC 3339 (nanoseconds) to ISO with milliseconds; empty and Go's zero time mean "none". */
function isoTime(text: string | null | undefined): string | undefined {
  if (!text || text.startsWith('0001-01-01')) return undefined;
  const millis = Date.parse(text);
  return Number.isNaN(millis) ? undefined : new Date(millis).toISOString();
}
