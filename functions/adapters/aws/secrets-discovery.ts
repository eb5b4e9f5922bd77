/**
 * Discovery of Secrets Manager secrets under one name prefix, and of declared secrets
 * outside it (DescribeSecret; one Secrets Manager refuses to describe is reported as a
 * refused lookup naming the permission, never as missing). Each current value
 * is read only to compute its HMAC fingerprint (so reuse across environments can
 * be found) and is dropped right there: no value leaves this file, in a result,
 * a log line or an error.
 */
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  paginateListSecrets,
  type SecretListEntry,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import pLimit, { type LimitFunction } from 'p-limit';
import { deniedLookup } from '../../core/denied-lookup.ts';
import type { DiscoveredCredential } from '../../core/discovery.ts';
import { ValidationError } from '../../core/errors.ts';
import type { Identity, IdentityOfKind } from '../../core/identity.ts';
import { credentialPart } from '../../core/secret-shape.ts';
import type { Fingerprinter } from '../crypto.ts';
import { isAccessDenied } from './access-denied.ts';
import { awsErrorName, awsFailure } from './clients.ts';

/** Options of {@link SecretsDiscovery}. */
export interface SecretsDiscoveryProps {
  secrets: SecretsManagerClient;
  /** Secret name prefix owned by keywarden's scope, such as `ci/`; empty means every secret. */
  namePrefix: string;
  /** Keyed HMAC used to fingerprint each current value. */
  fingerprinter: Fingerprinter;
  /** Secrets Manager calls in flight at once for this source (default 8). */
  concurrency?: number;
}

/** Default bound on concurrent Secrets Manager calls. */
export const DEFAULT_SECRETS_CONCURRENCY = 8;

/**
 * Answers to GetSecretValue that mean "this value cannot be read by keywarden",
 * not "Secrets Manager is failing": no permission, no KMS decrypt, no AWSCURRENT
 * version (or the secret went away since it was listed), marked for deletion.
 * Such a secret is still reported, without a fingerprint.
 */
const UNREADABLE = new Set([
  'AccessDeniedException',
  'DecryptionFailure',
  'ResourceNotFoundException',
  'InvalidRequestException',
]);

/** Secret names are made of these; a leading `!` in a ListSecrets filter value would negate it. */
const SECRET_NAME_PREFIX = /^[A-Za-z0-9/_+=.@-]*$/;

type ValueRead = { fingerprint: string } | { unreadable: string };

/** Lists the secrets under a name prefix and fingerprints each current value. */
export class SecretsDiscovery {
  readonly #secrets: SecretsManagerClient;
  readonly #namePrefix: string;
  readonly #fingerprinter: Fingerprinter;
  readonly #limit: LimitFunction;

  constructor(props: SecretsDiscoveryProps) {
    if (!SECRET_NAME_PREFIX.test(props.namePrefix)) {
      throw new ValidationError(
        `expected a secret name prefix of letters, digits and /_+=.@- such as 'ci/', got ${JSON.stringify(props.namePrefix)}`,
      );
    }
    const concurrency = props.concurrency ?? DEFAULT_SECRETS_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ValidationError(`expected a Secrets Manager concurrency of at least 1, got ${concurrency}`);
    }
    this.#secrets = props.secrets;
    this.#namePrefix = props.namePrefix;
    this.#fingerprinter = props.fingerprinter;
    this.#limit = pLimit(concurrency);
  }

  /**
   * Every secret under the prefix, including those scheduled for deletion (inactive), then each
   * declared secret (name or ARN) the listing did not find, looked up directly; sorted by key.
   * A declared secret is fingerprinted by the part of its value that is the credential (its
   * template's generated fields), so a password shared by two database credentials is one.
   */
  async discover(
    declared: { secrets?: readonly IdentityOfKind<'aws-secret'>[] } = {},
  ): Promise<DiscoveredCredential[]> {
    const identities = declared.secrets ?? [];
    const identityOf = (secret: SecretListEntry) =>
      identities.find(({ scope }) => scope.secretId === secret.Name || scope.secretId === secret.ARN);
    const listed = await this.#list();
    const described = await Promise.all(listed.map((secret) => this.#describe(secret, identityOf(secret))));
    const seen = new Set(described.map((credential) => credential.key));
    const direct = await Promise.all(
      identities
        .filter(
          (identity, i) =>
            identities.findIndex((other) => other.scope.secretId === identity.scope.secretId) === i,
        )
        .filter((identity) => !seen.has(`aws-secret:${identity.scope.secretId}`))
        .map((identity) => this.#declared(identity)),
    );
    return [...described, ...direct.filter((credential) => credential !== undefined)].sort(
      (a, b) => a.key.localeCompare(b.key) || a.handle.localeCompare(b.handle),
    );
  }

  /**
   * A declared secret, wherever its name: DescribeSecret, keyed by the id it was declared by
   * (a name or an ARN) so it reconciles with its identity; undefined when it does not exist; a
   * refused lookup when Secrets Manager refuses to describe it (it may well exist).
   */
  async #declared(identity: IdentityOfKind<'aws-secret'>): Promise<DiscoveredCredential | undefined> {
    const { secretId } = identity.scope;
    let secret: SecretListEntry;
    try {
      secret = await this.#limit(() => this.#secrets.send(new DescribeSecretCommand({ SecretId: secretId })));
    } catch (error) {
      if (awsErrorName(error) === 'ResourceNotFoundException') return undefined;
      if (isAccessDenied(error)) {
        return deniedLookup({
          key: `aws-secret:${secretId}`,
          kind: 'aws-secret',
          handle: secretId,
          label: `secret ${secretId}`,
          permission: 'secretsmanager:DescribeSecret',
          answer: awsErrorName(error) ?? 'AccessDeniedException',
        });
      }
      throw awsFailure(`describing declared secret ${secretId}`, error);
    }
    return { ...(await this.#describe(secret, identity)), key: `aws-secret:${secretId}` };
  }

  async #list(): Promise<SecretListEntry[]> {
    const found: SecretListEntry[] = [];
    try {
      const pages = paginateListSecrets(
        { client: this.#secrets },
        {
          // A secret scheduled for deletion can still be restored, so it still exists.
          IncludePlannedDeletion: true,
          ...(this.#namePrefix === '' ? {} : { Filters: [{ Key: 'name', Values: [this.#namePrefix] }] }),
        },
      );
      for await (const page of pages) found.push(...(page.SecretList ?? []));
    } catch (error) {
      throw awsFailure(`listing Secrets Manager secrets named ${this.#namePrefix}*`, error);
    }
    // The `name` filter is a prefix match in AWS and moto alike; checking again costs nothing
    // and keeps the scope exact should the filter ever match more loosely.
    return found.filter((secret) => secret.Name?.startsWith(this.#namePrefix));
  }

  async #describe(secret: SecretListEntry, identity: Identity | undefined): Promise<DiscoveredCredential> {
    const name = secret.Name ?? '';
    const deleted = secret.DeletedDate !== undefined;
    // A secret marked for deletion refuses reads, and an inactive value cannot be reused anywhere.
    const read = deleted ? undefined : await this.#read(secret, identity);
    const createdAt = secret.LastRotatedDate ?? secret.CreatedDate;
    return {
      key: `aws-secret:${name}`,
      kind: 'aws-secret',
      handle: secret.ARN ?? name,
      label: `secret ${name}`,
      status: deleted ? 'inactive' : 'active',
      ...(createdAt && { createdAt: createdAt.toISOString() }),
      ...(secret.LastAccessedDate && { lastUsedAt: secret.LastAccessedDate.toISOString() }),
      ...(read && 'fingerprint' in read && { fingerprint: read.fingerprint }),
      details: {
        name,
        rotationEnabled: secret.RotationEnabled ?? false,
        ...(read && 'unreadable' in read && { unreadable: true, unreadableReason: read.unreadable }),
      },
    };
  }

  /**
   * Reads the AWSCURRENT value and returns only its fingerprint. The stage is always
   * named: moto (unlike AWS) may otherwise answer with a version that is not current.
   */
  async #read(secret: SecretListEntry, identity: Identity | undefined): Promise<ValueRead> {
    const secretId = secret.ARN ?? secret.Name ?? '';
    try {
      return await this.#limit(async (): Promise<ValueRead> => {
        const { SecretString, SecretBinary } = await this.#secrets.send(
          new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
        );
        if (SecretString !== undefined) {
          return { fingerprint: this.#fingerprinter.of(credentialPart(identity, SecretString)) };
        }
        if (SecretBinary !== undefined) {
          const bytes = Buffer.from(SecretBinary.buffer, SecretBinary.byteOffset, SecretBinary.byteLength);
          const fingerprint = this.#fingerprinter.of(bytes.toString('base64'));
          // Strings cannot be wiped in JavaScript, bytes can: do not leave them to the GC.
          bytes.fill(0);
          return { fingerprint };
        }
        return { unreadable: 'NoValue' };
      });
    } catch (error) {
      const name = awsErrorName(error);
      if (name !== undefined && UNREADABLE.has(name)) return { unreadable: name };
      throw awsFailure(`reading the current value of secret ${secret.Name} to fingerprint it`, error);
    }
  }
}
