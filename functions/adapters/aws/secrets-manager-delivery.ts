/**
 * Delivery of a live credential through a Secrets Manager secret, with the staging
 * labels of the Secrets Manager rotation protocol: a new value is staged as
 * `AWSPENDING` (the pipeline reads `AWSCURRENT` and does not see it), and promoted to
 * `AWSCURRENT` only after it passed its test; the version it replaces keeps
 * `AWSPREVIOUS` through the grace period. No value leaves this file in an error.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  type GetSecretValueCommandOutput,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { KeywardenError, NotFoundError, ValidationError } from '../../core/errors.ts';
import type { Delivery } from '../../core/identity.ts';
import type { DeliveredValue, DeliveryTarget, StageContext, StagedValue } from '../../core/ports.ts';
import { renamedFields } from '../../core/secret-shape.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { awsErrorName, awsFailure } from './clients.ts';
import { secretsWireOf } from './secrets-wire.ts';

/** The staging labels of the rotation protocol. */
export const AWSCURRENT = 'AWSCURRENT';
export const AWSPENDING = 'AWSPENDING';
export const AWSPREVIOUS = 'AWSPREVIOUS';

/** A Secrets Manager delivery target. */
export type SecretsManagerDeliverySpec = Extract<Delivery, { type: 'aws-secret' }>;

/** Options of {@link SecretsManagerDelivery}. */
export interface SecretsManagerDeliveryProps {
  secrets: SecretsManagerClient;
}

/**
 * Secrets Manager takes a version id as `ClientRequestToken`, which it accepts only
 * 32 to 64 characters long (a UUID is 36). Checked before any call, so a bad id fails
 * with what to change rather than with an AWS parameter error.
 */
export function assertSecretVersionId(versionId: string): void {
  if (!/^[\x21-\x7e]{32,64}$/.test(versionId)) {
    throw new ValidationError(
      `expected a Secrets Manager version id of 32 to 64 printable characters (a UUID fits), got ${JSON.stringify(versionId)}`,
    );
  }
}

/**
 * Compares two values in constant time. Both are hashed first, so the comparison runs
 * on equal-length buffers and does not even reveal whether the lengths differ.
 */
export function sameValue(a: string, b: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * The staging labels of every version of a secret (DescribeSecret `VersionIdsToStages`),
 * or undefined when the secret does not exist. AWS leaves unlabelled (deprecated)
 * versions out of the map and moto lists them with no labels: callers treat both alike.
 */
export async function readVersionStages(
  secrets: SecretsManagerClient,
  secretId: string,
): Promise<{ stages: Record<string, string[]>; deleted: boolean; lastAccessed?: Date } | undefined> {
  try {
    const described = await secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
    return {
      stages: described.VersionIdsToStages ?? {},
      deleted: described.DeletedDate !== undefined,
      ...(described.LastAccessedDate && { lastAccessed: described.LastAccessedDate }),
    };
  } catch (error) {
    if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
    throw awsFailure(`describing secret ${secretId}`, error);
  }
}

/** The version that carries `label`, if any. */
export const versionWithLabel = (stages: Record<string, string[]>, label: string): string | undefined =>
  Object.entries(stages).find(([, labels]) => labels.includes(label))?.[0];

/** A version's value as text: binary values are delivered base64-encoded, as discovery fingerprints them. */
function textOf(read: GetSecretValueCommandOutput): string | undefined {
  if (read.SecretString !== undefined) return read.SecretString;
  if (read.SecretBinary !== undefined) {
    const bytes = Buffer.from(
      read.SecretBinary.buffer,
      read.SecretBinary.byteOffset,
      read.SecretBinary.byteLength,
    );
    const text = bytes.toString('base64');
    bytes.fill(0);
    return text;
  }
  return undefined;
}

/**
 * One version of a secret, read by id: its value and labels, or undefined when the
 * secret or that version does not exist.
 */
export async function readSecretVersion(
  secrets: SecretsManagerClient,
  secretId: string,
  versionId: string,
): Promise<{ value: string | undefined; stages: string[] } | undefined> {
  try {
    const read = await secretsWireOf(secrets).send('GetSecretValue', {
      SecretId: secretId,
      VersionId: versionId,
    });
    return { value: textOf(read), stages: read.VersionStages ?? [] };
  } catch (error) {
    if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
    throw awsFailure(`reading version ${versionId} of secret ${secretId}`, error);
  }
}

const jsonObject = (text: string): Record<string, unknown> | undefined => {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
};

/**
 * `secret` as it is delivered over `current`: when both are JSON objects, the fields of
 * `secret` over those of `current`, so the fields it does not set are kept; else `secret`.
 */
function over(secretId: string, secret: SecretValue, current: SecretValue | undefined): SecretValue {
  const fields = jsonObject(secret.reveal());
  const before = current && jsonObject(current.reveal());
  if (!fields || !before) return secret;
  const renamed = renamedFields(before, fields);
  if (renamed) {
    throw new ValidationError(
      `secret ${secretId}: ${renamed}; move the pipeline to the new fields, or deliver to another secret`,
    );
  }
  return SecretValue.ofJson({ ...before, ...fields });
}

/**
 * What {@link SecretsManagerDelivery.readCurrent} found (`DeliveredValue.basis`): the secret,
 * and the version `AWSCURRENT` was on. The provider of a value that is its own delivery renders
 * over the value read with it instead of reading it again.
 */
export class SecretRead {
  constructor(
    readonly secretId: string,
    readonly currentVersionId: string | undefined,
    /** When that version was created (ISO), as the read answered. */
    readonly createdAt?: string,
  ) {}
}

/** `basis` as {@link SecretRead} of `secretId`, or undefined when it is anything else. */
export const secretReadOf = (basis: unknown, secretId: string): SecretRead | undefined =>
  basis instanceof SecretRead && basis.secretId === secretId ? basis : undefined;

/** What staging leaves for `promote` (`StagedValue.basis`): the version staged over, `AWSCURRENT` then. */
class SecretStaged {
  constructor(
    readonly secretId: string,
    readonly currentVersionId: string,
  ) {}
}

/**
 * Stages and promotes values of a Secrets Manager secret by the rotation protocol's
 * labels. Every method can run twice, or resume after a crash between its calls.
 *
 * A secret that does not exist yet is created by the first `stagePending`. Secrets
 * Manager makes the first version of every secret `AWSCURRENT` (CreateSecret and
 * PutSecretValue alike), so that first value is current at once rather than pending:
 * nothing was current before it, so no working credential is displaced, and
 * `promote` then finds it already current and does nothing. Only a secret named by
 * its name is created; one named by ARN must exist.
 */
export class SecretsManagerDelivery implements DeliveryTarget<SecretsManagerDeliverySpec> {
  readonly type = 'aws-secret' as const;
  readonly #secrets: SecretsManagerClient;

  constructor(props: SecretsManagerDeliveryProps) {
    this.#secrets = props.secrets;
  }

  /**
   * Stages `secret` as version `versionId` labelled `AWSPENDING` (which moves the label
   * off any older pending version, as Secrets Manager keeps each label on one version).
   * A repeat with the same id and value is harmless; the same id with another value is
   * refused, because a version's value never changes (AWS refuses it; moto would
   * overwrite a pending version, so this is checked here before writing).
   */
  async stagePending(
    delivery: SecretsManagerDeliverySpec,
    versionId: string,
    secret: SecretValue,
    known?: StageContext,
  ): Promise<StagedValue> {
    assertSecretVersionId(versionId);
    const { secretId } = delivery;
    // The current value as the run read it, if it was read from this secret; else read now.
    const readByRun = known && (known.current === undefined || secretReadOf(known.current.basis, secretId));
    const current = readByRun ? known.current : await this.readCurrent(delivery);
    // A JSON value goes over the current JSON: fields it does not set (a region beside an
    // access key) are kept. A version already staged was staged over the same current value.
    const value = over(secretId, secret, current?.secret);
    // A version id the run made itself has nothing staged under it: no read to find out.
    const existing =
      readByRun && known.fresh ? undefined : await readSecretVersion(this.#secrets, secretId, versionId);
    if (existing) {
      await this.#restage(secretId, versionId, value, existing);
      return { secret: value };
    }
    try {
      await secretsWireOf(this.#secrets).send('PutSecretValue', {
        SecretId: secretId,
        ClientRequestToken: versionId,
        SecretString: value.reveal(),
        VersionStages: [AWSPENDING],
      });
    } catch (error) {
      const name = awsErrorName(error);
      if (name === 'ResourceNotFoundException') await this.#create(secretId, versionId, value);
      // Another writer staged the same version between the read and the write.
      else if (name === 'ResourceExistsException') await this.#settleRace(secretId, versionId, value, error);
      else throw awsFailure(`staging version ${versionId} of secret ${secretId} as ${AWSPENDING}`, error);
      return { secret: value };
    }
    // Staged as AWSPENDING beside the version AWSCURRENT was on: promote moves the label from there.
    const from = current?.versionId;
    return from && from !== versionId
      ? { secret: value, basis: new SecretStaged(secretId, from) }
      : { secret: value };
  }

  /**
   * The value of version `versionId` while it is staged: labelled `AWSPENDING`, or
   * already `AWSCURRENT` (a resumed finish step reads it back). A version discarded
   * since, or never staged, reads as undefined.
   */
  async readPending(
    delivery: SecretsManagerDeliverySpec,
    versionId: string,
  ): Promise<SecretValue | undefined> {
    assertSecretVersionId(versionId);
    const version = await readSecretVersion(this.#secrets, delivery.secretId, versionId);
    if (!version || version.value === undefined || version.value === '') return undefined;
    if (!version.stages.includes(AWSPENDING) && !version.stages.includes(AWSCURRENT)) return undefined;
    return new SecretValue(version.value);
  }

  /**
   * finishSecret: moves `AWSCURRENT` to `versionId` (Secrets Manager then labels the
   * version it came from `AWSPREVIOUS`), then removes `AWSPENDING` from it. The second
   * step is explicit because moving `AWSCURRENT` leaves `AWSPENDING` where it was (in
   * moto always; AWS clears it only at the end of its own rotation run). Already current
   * → only the clean-up runs, so a repeat or a resumed run is a no-op.
   */
  async promote(
    delivery: SecretsManagerDeliverySpec,
    versionId: string,
    staged?: StagedValue,
  ): Promise<void> {
    assertSecretVersionId(versionId);
    const { secretId } = delivery;
    const basis = staged?.basis;
    if (basis instanceof SecretStaged && basis.secretId === secretId) {
      // The same run staged it as AWSPENDING beside the version then current: the move names
      // both, without reading the labels first. If they moved since (or the SDK retried a move
      // that landed), AWS refuses it and the labels are read as below.
      try {
        await secretsWireOf(this.#secrets).send('UpdateSecretVersionStage', {
          SecretId: secretId,
          VersionStage: AWSCURRENT,
          MoveToVersionId: versionId,
          RemoveFromVersionId: basis.currentVersionId,
        });
        await this.#removeLabel(secretId, versionId, AWSPENDING);
        return;
      } catch (error) {
        if (awsErrorName(error) !== 'InvalidParameterException') {
          throw awsFailure(`moving ${AWSCURRENT} of secret ${secretId} to version ${versionId}`, error);
        }
      }
    }
    const described = await readVersionStages(this.#secrets, secretId);
    if (!described) {
      throw new NotFoundError(
        `expected secret ${secretId} to exist to promote version ${versionId}, but Secrets Manager does not know it; stage the version first.`,
      );
    }
    const labels = described.stages[versionId] ?? [];
    const current = versionWithLabel(described.stages, AWSCURRENT);
    if (current !== versionId) {
      if (!labels.includes(AWSPENDING)) {
        throw new KeywardenError(
          `expected version ${versionId} of secret ${secretId} to be staged as ${AWSPENDING} before it is promoted, ` +
            `but it carries ${labels.length === 0 ? 'no label' : labels.join(', ')}; stage it again, or start a new rotation.`,
        );
      }
      await this.#updateStage(
        secretId,
        {
          VersionStage: AWSCURRENT,
          MoveToVersionId: versionId,
          ...(current === undefined ? {} : { RemoveFromVersionId: current }),
        },
        `moving ${AWSCURRENT} of secret ${secretId} to version ${versionId}`,
      );
    }
    if (labels.includes(AWSPENDING)) await this.#removeLabel(secretId, versionId, AWSPENDING);
  }

  /**
   * What the pipeline reads: the version labelled `AWSCURRENT`, always asked for by that
   * label (moto, unlike AWS, answers an unlabelled read with the version it created
   * last as current, which is wrong once labels were moved). Undefined when the secret
   * does not exist or holds no value.
   */
  async readCurrent(delivery: SecretsManagerDeliverySpec): Promise<DeliveredValue | undefined> {
    const { secretId } = delivery;
    let read: GetSecretValueCommandOutput;
    try {
      read = await secretsWireOf(this.#secrets).send('GetSecretValue', {
        SecretId: secretId,
        VersionStage: AWSCURRENT,
      });
    } catch (error) {
      if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
      throw awsFailure(`reading the ${AWSCURRENT} value of secret ${secretId}`, error);
    }
    const value = textOf(read);
    // An empty value is nothing a pipeline could use, and SecretValue refuses it.
    if (value === undefined || value === '') return undefined;
    return {
      ...(read.VersionId && { versionId: read.VersionId }),
      secret: new SecretValue(value),
      basis: new SecretRead(secretId, read.VersionId, read.CreatedDate?.toISOString()),
    };
  }

  /** Removes `AWSPENDING` from `versionId` if it carries it; a secret or version that is gone is already discarded. */
  async discardPending(delivery: SecretsManagerDeliverySpec, versionId: string): Promise<void> {
    assertSecretVersionId(versionId);
    const described = await readVersionStages(this.#secrets, delivery.secretId);
    if (!described?.stages[versionId]?.includes(AWSPENDING)) return;
    await this.#removeLabel(delivery.secretId, versionId, AWSPENDING);
  }

  /** The version exists already: the same value is a repeat, another value is refused. */
  async #restage(
    secretId: string,
    versionId: string,
    secret: SecretValue,
    existing: { value: string | undefined; stages: string[] },
  ): Promise<void> {
    if (existing.value === undefined || !sameValue(existing.value, secret.reveal())) {
      throw new KeywardenError(
        `expected version ${versionId} of secret ${secretId} to be new or to hold the value being staged, ` +
          'but it holds another value and a version never changes; stage the new value under a new version id.',
      );
    }
    if (existing.stages.includes(AWSPENDING) || existing.stages.includes(AWSCURRENT)) return;
    // Staged before and discarded since: staging it again labels it pending again.
    const described = await readVersionStages(this.#secrets, secretId);
    const pending = described && versionWithLabel(described.stages, AWSPENDING);
    await this.#updateStage(
      secretId,
      {
        VersionStage: AWSPENDING,
        MoveToVersionId: versionId,
        ...(pending === undefined ? {} : { RemoveFromVersionId: pending }),
      },
      `labelling version ${versionId} of secret ${secretId} ${AWSPENDING}`,
    );
  }

  /** The secret does not exist: create it with this value as its first (and so current) version. */
  async #create(secretId: string, versionId: string, secret: SecretValue): Promise<void> {
    if (secretId.startsWith('arn:')) {
      throw new NotFoundError(
        `expected secret ${secretId} to exist: keywarden creates a missing delivery secret only when it is named by name, not by ARN; create it or name it by name.`,
      );
    }
    try {
      await this.#secrets.send(
        new CreateSecretCommand({
          Name: secretId,
          ClientRequestToken: versionId,
          SecretString: secret.reveal(),
        }),
      );
    } catch (error) {
      if (awsErrorName(error) === 'ResourceExistsException') {
        return this.#settleRace(secretId, versionId, secret, error);
      }
      throw awsFailure(`creating secret ${secretId} with its first version ${versionId}`, error);
    }
  }

  /** A write answered "exists": fine when the version now holds this very value. */
  async #settleRace(secretId: string, versionId: string, secret: SecretValue, cause: unknown): Promise<void> {
    const existing = await readSecretVersion(this.#secrets, secretId, versionId);
    if (existing) return this.#restage(secretId, versionId, secret, existing);
    throw awsFailure(`staging version ${versionId} of secret ${secretId}`, cause);
  }

  async #removeLabel(secretId: string, versionId: string, label: string): Promise<void> {
    try {
      await secretsWireOf(this.#secrets).send('UpdateSecretVersionStage', {
        SecretId: secretId,
        VersionStage: label,
        RemoveFromVersionId: versionId,
      });
    } catch (error) {
      // The label left that version between the read and the write (a concurrent run): done.
      if (awsErrorName(error) === 'InvalidParameterException') {
        const described = await readVersionStages(this.#secrets, secretId);
        if (!described?.stages[versionId]?.includes(label)) return;
      }
      throw awsFailure(`removing ${label} from version ${versionId} of secret ${secretId}`, error);
    }
  }

  async #updateStage(
    secretId: string,
    move: { VersionStage: string; MoveToVersionId?: string; RemoveFromVersionId?: string },
    doing: string,
  ): Promise<void> {
    try {
      await secretsWireOf(this.#secrets).send('UpdateSecretVersionStage', { SecretId: secretId, ...move });
    } catch (error) {
      // The SDK retries a call whose answer was lost; the retry then finds the label already
      // moved and fails. If the label sits where we wanted it, the move did happen.
      if (move.MoveToVersionId && awsErrorName(error) === 'InvalidParameterException') {
        const after = await readVersionStages(this.#secrets, secretId).catch(() => undefined);
        if (after?.stages[move.MoveToVersionId]?.includes(move.VersionStage)) return;
      }
      throw awsFailure(doing, error);
    }
  }
}
