/**
 * The `aws-secret` provider: the credential is the value of a Secrets Manager secret
 * itself (a database password, a webhook token), so issuing one is generating a value,
 * and the version id of the rotation becomes the secret's version id when the engine
 * stages the value through the Secrets Manager delivery. Revoking a version takes its
 * staging labels away, so nothing reads it by label any more. No value leaves this file
 * in an error or a result other than `issue`.
 */
import { paginateListSecretVersionIds, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { VersionStage } from '../../core/credential-version.ts';
import { KeywardenError, VerificationError } from '../../core/errors.ts';
import type { RandomBytes } from '../../core/generator.ts';
import type { IdentityOfKind } from '../../core/identity.ts';
import type {
  CredentialProvider,
  IssueContext,
  IssuedCredential,
  ListedCredential,
  ListOptions,
} from '../../core/ports.ts';
import { renderValue, shapeProblems } from '../../core/secret-shape.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { awsErrorName, awsFailure } from './clients.ts';
import {
  AWSCURRENT,
  AWSPENDING,
  assertSecretVersionId,
  readSecretVersion,
  readVersionStages,
  sameValue,
  secretReadOf,
} from './secrets-manager-delivery.ts';
import { secretsWireOf } from './secrets-wire.ts';

type SecretIdentity = IdentityOfKind<'aws-secret'>;

/** A version's stage by its staging labels: no label is what revoking leaves. */
function stageOf(labels: readonly string[]): VersionStage {
  if (labels.includes(AWSCURRENT)) return 'current';
  if (labels.length === 0) return 'revoked';
  return labels.every((label) => label === AWSPENDING) ? 'pending' : 'previous';
}

/**
 * A first rotation's adoption (`options.delivered`): the version `AWSCURRENT` was on when the
 * rotation read this very secret, which its promotion has just made `AWSPREVIOUS`, named from
 * that read instead of listing every version. The promotion moved every other label of the
 * rotation protocol away: the `AWSPREVIOUS` before it is unlabelled now, a stale `AWSPENDING`
 * went to the staged version, then away, so a listing would find these same two labelled
 * versions. Only a version that a custom label alone keeps readable is left unadopted, as it was
 * before keywarden. Undefined (list as usual) when the read was not of this secret, found no
 * version, or named one the caller recorded already (`skip`).
 */
function replacedVersion(secretId: string, options: ListOptions): ListedCredential | undefined {
  const read = options.delivered && secretReadOf(options.delivered.basis, secretId);
  const versionId = read?.currentVersionId;
  if (!versionId || options.skip?.has(versionId)) return undefined;
  return {
    handle: versionId,
    versionId,
    status: 'active',
    stage: 'previous',
    ...(read.createdAt ? { createdAt: read.createdAt } : {}),
  };
}

/** Options of {@link AwsSecretProvider}. */
export interface AwsSecretProviderProps {
  secrets: SecretsManagerClient;
  /** Cryptographic randomness for new values (node:crypto `randomBytes` in production). */
  random: RandomBytes;
}

/**
 * Issues, verifies and revokes versions of a Secrets Manager secret: the one named by
 * the identity's scope (`scope.secretId`), which `deliveryOf` makes this kind's delivery
 * target, so the version the engine stages is the version verified here.
 */
export class AwsSecretProvider implements CredentialProvider<'aws-secret'> {
  readonly kind = 'aws-secret' as const;
  readonly #secrets: SecretsManagerClient;
  readonly #random: RandomBytes;

  constructor(props: AwsSecretProviderProps) {
    this.#secrets = props.secrets;
    this.#random = props.random;
  }

  /**
   * createSecret: the next value in the identity's declared shape (core/secret-shape.ts):
   * a plain random value by default; for a template, the `AWSCURRENT` JSON with only its
   * generated fields new. It creates nothing in AWS: the handle is the rotation's version
   * id, under which the engine stages the value as `AWSPENDING` through the delivery. The
   * `AWSCURRENT` value the rotation read through the delivery (this very secret) is rendered
   * over as it is; only without it is it read here.
   */
  async issue(identity: SecretIdentity, context: IssueContext): Promise<IssuedCredential> {
    assertSecretVersionId(context.versionId);
    const { secretId } = identity.scope;
    const read = context.current && secretReadOf(context.current.basis, secretId);
    const current = read ? context.current?.secret.reveal() : await this.#current(secretId);
    const next = renderValue(identity, current, this.#random);
    const text = typeof next === 'string' ? next : JSON.stringify(next);
    return {
      handle: context.versionId,
      secret: new SecretValue(text),
    };
  }

  /** The `AWSCURRENT` value as text (binary as base64), or undefined when the secret does not exist. */
  async #current(secretId: string): Promise<string | undefined> {
    try {
      const read = await secretsWireOf(this.#secrets).send('GetSecretValue', {
        SecretId: secretId,
        VersionStage: AWSCURRENT,
      });
      if (read.SecretString !== undefined) return read.SecretString;
      return read.SecretBinary ? Buffer.from(read.SecretBinary).toString('base64') : undefined;
    } catch (error) {
      if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
      throw awsFailure(
        `reading the ${AWSCURRENT} value of secret ${secretId} to keep its other fields`,
        error,
      );
    }
  }

  /**
   * testSecret: the version `handle` of the secret holds exactly the issued value.
   * Compared in constant time; the message names the secret and version, never a value.
   */
  async verify(identity: SecretIdentity, credential: { handle: string; secret: SecretValue }): Promise<void> {
    const { secretId } = identity.scope;
    assertSecretVersionId(credential.handle);
    const version = await readSecretVersion(this.#secrets, secretId, credential.handle);
    if (!version) {
      throw new VerificationError(
        `expected secret ${secretId} to hold version ${credential.handle}, but it has no such version; stage the value before testing it.`,
      );
    }
    if (version.value === undefined || !sameValue(version.value, credential.secret.reveal())) {
      throw new VerificationError(
        `expected version ${credential.handle} of secret ${secretId} to hold the issued value, but it holds another one ` +
          '(compared by digest; neither value is shown); the version stays uncurrent, so start a new rotation.',
      );
    }
    const problems = shapeProblems(identity, version.value);
    if (problems.length > 0) {
      throw new VerificationError(
        `expected version ${credential.handle} of secret ${secretId} to fit its declared template: ${problems.join('; ')}`,
      );
    }
  }

  /**
   * Takes every staging label off version `handle`, so no reader finds it by label
   * (`AWSPENDING`, `AWSPREVIOUS`, custom labels). Refuses the current version: revoking
   * it would leave the pipeline without a value, so rotate first. A version without
   * labels, a missing version or secret, and a secret scheduled for deletion (it
   * answers no reads) are `already-revoked`.
   */
  async revoke(identity: SecretIdentity, handle: string): Promise<'revoked' | 'already-revoked'> {
    const { secretId } = identity.scope;
    const described = await readVersionStages(this.#secrets, secretId);
    if (!described || described.deleted) return 'already-revoked';
    const labels = described.stages[handle] ?? [];
    if (labels.includes(AWSCURRENT)) {
      throw new KeywardenError(
        `will not revoke the current version ${handle} of secret ${secretId}: the pipeline reads it. ` +
          'Rotate the secret so another version becomes current, then revoke this one.',
      );
    }
    if (labels.length === 0) return 'already-revoked';
    for (const label of labels) {
      try {
        await secretsWireOf(this.#secrets).send('UpdateSecretVersionStage', {
          SecretId: secretId,
          VersionStage: label,
          RemoveFromVersionId: handle,
        });
      } catch (error) {
        // Removed by a concurrent run since the read: the goal is reached for that label.
        if (awsErrorName(error) === 'InvalidParameterException') continue;
        throw awsFailure(`removing ${label} from version ${handle} of secret ${secretId}`, error);
      }
    }
    return 'revoked';
  }

  /**
   * Every version of the secret, unlabelled (deprecated) ones included as inactive: a
   * version with any label can still be read by that label. Each carries its stage as its
   * labels say (`AWSCURRENT` current, `AWSPENDING` alone pending, any other label previous,
   * none revoked: what {@link revoke} leaves). A missing secret has none. A first rotation's
   * adoption names the version it replaced from its own read instead ({@link replacedVersion}).
   */
  async list(identity: SecretIdentity, options: ListOptions = {}): Promise<ListedCredential[]> {
    const { secretId } = identity.scope;
    if (options.grantingOnly) return this.#labelled(secretId);
    const replaced = replacedVersion(secretId, options);
    if (replaced) return [replaced];
    const listed: ListedCredential[] = [];
    try {
      for await (const page of paginateListSecretVersionIds(
        { client: this.#secrets },
        { SecretId: secretId, IncludeDeprecated: true },
      )) {
        for (const version of page.Versions ?? []) {
          if (!version.VersionId) continue;
          const labels = version.VersionStages ?? [];
          listed.push({
            handle: version.VersionId,
            versionId: version.VersionId,
            status: labels.length > 0 ? 'active' : 'inactive',
            stage: stageOf(labels),
            ...(version.CreatedDate && { createdAt: version.CreatedDate.toISOString() }),
          });
        }
      }
    } catch (error) {
      if (awsErrorName(error) === 'ResourceNotFoundException') return [];
      // moto answers ListSecretVersionIds for a missing secret with an internal error (HTTP 500):
      // asked whether the secret exists only then, so a listing is one request.
      if (!(await readVersionStages(this.#secrets, secretId))) return [];
      throw awsFailure(`listing the versions of secret ${secretId}`, error);
    }
    return listed;
  }

  /**
   * The versions that still carry a label, from one DescribeSecret (`VersionIdsToStages`): what
   * {@link list} gives but its unlabelled (`revoked`) versions and creation dates, read within
   * Secrets Manager's read quota (DescribeSecret and GetSecretValue share 10,000 a second, where
   * ListSecretVersionIds has 50). A missing secret, or one scheduled for deletion (it answers no
   * reads by label), has none.
   */
  async #labelled(secretId: string): Promise<ListedCredential[]> {
    const described = await readVersionStages(this.#secrets, secretId);
    if (!described || described.deleted) return [];
    return Object.entries(described.stages)
      .filter(([, labels]) => labels.length > 0)
      .map(([versionId, labels]) => ({
        handle: versionId,
        versionId,
        status: 'active' as const,
        stage: stageOf(labels),
      }));
  }

  /**
   * When the secret was last read. Secrets Manager records this per secret, not per
   * version, and to the day only; undefined when it was never read or is gone.
   */
  async lastUsed(identity: SecretIdentity, _handle: string): Promise<string | undefined> {
    return (await readVersionStages(this.#secrets, identity.scope.secretId))?.lastAccessed?.toISOString();
  }
}
