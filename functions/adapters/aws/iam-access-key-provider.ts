/**
 * The `aws-iam-access-key` provider: access keys of one IAM user. IAM allows two keys
 * per user, which is exactly enough for a rotation (the current key and its successor);
 * the engine retires the previous key before it issues a new one, and this provider
 * never deletes a key it was not asked to. A secret access key appears only in what
 * `issue` returns, never in an error or a log line.
 */
import {
  type AccessKeyMetadata,
  CreateAccessKeyCommand,
  DeleteAccessKeyCommand,
  GetAccessKeyLastUsedCommand,
  type IAMClient,
  paginateListAccessKeys,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import { KeywardenError, NotFoundError, VerificationError } from '../../core/errors.ts';
import type { IdentityOfKind } from '../../core/identity.ts';
import type { CredentialProvider, IssuedCredential, ListedCredential } from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { awsErrorName, awsFailure } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';
import { signedGetCallerIdentity } from './sts-caller-identity.ts';

type KeyIdentity = IdentityOfKind<'aws-iam-access-key'>;

/** IAM's quota of access keys per user; not adjustable. */
export const IAM_KEYS_PER_USER = 2;

/** How long verify waits by default for IAM to accept a new key everywhere. */
export const DEFAULT_VERIFY_TIMEOUT_MS = 30_000;

/** Answers of STS to a key IAM has not propagated yet (AWS documents seconds of delay). */
const NOT_YET_PROPAGATED = new Set([
  'InvalidClientTokenId',
  'InvalidClientTokenIdException',
  'SignatureDoesNotMatch',
  'SignatureDoesNotMatchException',
]);

const NO_SUCH_ENTITY = 'NoSuchEntityException';

/** How long the listing of a key test stands for the rotation's next listing of that user. */
const TESTED_LISTING_MS = 60_000;

/** Whether `arn` is the ARN of IAM user `userName`, under any path: `arn:<partition>:iam::<account>:user/[<path>/]<userName>`. */
const isUserArn = (arn: string, userName: string): boolean =>
  /^arn:[\w-]+:iam::\d{12}:user\//.test(arn) && arn.split('/').at(-1) === userName;

/** Options of {@link IamAccessKeyProvider}. */
export interface IamAccessKeyProviderProps {
  iam: IAMClient;
  /** Where STS is reached when a new key is tested (region, and moto's endpoint locally); its credentials are not used. */
  endpoint: AwsEndpoint;
  /** How long verify keeps retrying while IAM propagates a new key (default 30 s). */
  verifyTimeoutMs?: number;
  /** Waits between verify attempts; injectable so tests need not wait. */
  sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((wake) => setTimeout(wake, ms));

/** The access key pair `issue` delivers, as `SecretValue.ofJson` made it. */
function keyPairOf(secret: SecretValue): { accessKeyId: string; secretAccessKey: string } | undefined {
  try {
    const { accessKeyId, secretAccessKey } = secret.revealJson();
    if (typeof accessKeyId === 'string' && typeof secretAccessKey === 'string') {
      return { accessKeyId, secretAccessKey };
    }
  } catch {
    // Not JSON: reported below as not a key pair, without quoting the value.
  }
  return undefined;
}

/** Issues, verifies, deactivates and deletes the access keys of the IAM user `scope.userName`. */
export class IamAccessKeyProvider implements CredentialProvider<'aws-iam-access-key'> {
  readonly kind = 'aws-iam-access-key' as const;
  readonly #iam: IAMClient;
  readonly #endpoint: AwsEndpoint;
  readonly #verifyTimeoutMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  /** The listing of each user's keys its last key test made, for the rotation's adoption ({@link #takeTested}). */
  readonly #tested = new Map<string, { keys: AccessKeyMetadata[]; at: number }>();

  constructor(props: IamAccessKeyProviderProps) {
    this.#iam = props.iam;
    this.#endpoint = props.endpoint;
    this.#verifyTimeoutMs = props.verifyTimeoutMs ?? DEFAULT_VERIFY_TIMEOUT_MS;
    this.#sleep = props.sleep ?? realSleep;
  }

  /**
   * createSecret: a new access key beside the current one. With two keys already there
   * is no room, and choosing which to delete is the engine's decision (it retires the
   * previous key after its grace period), so this refuses rather than make room.
   */
  async issue(identity: KeyIdentity, _context: { versionId: string }): Promise<IssuedCredential> {
    const { userName } = identity.scope;
    let created: { AccessKeyId?: string | undefined; SecretAccessKey?: string | undefined } | undefined;
    try {
      // Asked straight away: IAM's answer says whether the user exists and has a free slot,
      // and the keys are listed only to name them when it has none.
      created = (await this.#iam.send(new CreateAccessKeyCommand({ UserName: userName }))).AccessKey;
    } catch (error) {
      if (awsErrorName(error) === NO_SUCH_ENTITY) {
        throw new NotFoundError(
          `expected IAM user ${userName} to exist to issue an access key for it, but IAM does not know it; create the user or fix scope.userName.`,
          { cause: error },
        );
      }
      if (awsErrorName(error) === 'LimitExceededException') {
        throw tooManyKeys(
          userName,
          (await this.#keys(userName, `listing the access keys of IAM user ${userName}`)) ?? [],
          error,
        );
      }
      throw awsFailure(`creating an access key for IAM user ${userName}`, error);
    }
    if (!created?.AccessKeyId || !created.SecretAccessKey) {
      throw new KeywardenError(
        `expected IAM to return the id and secret of the access key it created for user ${userName}, but it did not; ` +
          'list the user’s keys and delete the one nobody received.',
      );
    }
    return {
      handle: created.AccessKeyId,
      secret: SecretValue.ofJson({
        accessKeyId: created.AccessKeyId,
        secretAccessKey: created.SecretAccessKey,
      }),
    };
  }

  /**
   * testSecret: signs STS GetCallerIdentity with the new key, and checks that the caller
   * is exactly the identity's user (IAM GetUser's ARN, path included) and that IAM lists
   * the key as Active. The status comes from IAM, not from the call succeeding: a new key
   * takes seconds to propagate, and moto lets an inactive key authenticate. Answers of
   * "unknown key" are retried with backoff for up to `verifyTimeoutMs`.
   */
  async verify(identity: KeyIdentity, credential: { handle: string; secret: SecretValue }): Promise<void> {
    const { userName } = identity.scope;
    const pair = keyPairOf(credential.secret);
    if (!pair) {
      throw new VerificationError(
        `expected access key ${credential.handle} of IAM user ${userName} to be delivered as a JSON pair of accessKeyId and secretAccessKey, but it is not.`,
      );
    }
    if (pair.accessKeyId !== credential.handle) {
      throw new VerificationError(
        `expected the delivered access key to be ${credential.handle} of IAM user ${userName}, but it is ${pair.accessKeyId}.`,
      );
    }
    const callerArn = await this.#callerArn(userName, pair);
    // A user name is unique in its account, and a key belongs to the account it was made in:
    // the caller is the user when its ARN names it (whatever its path), without reading the user.
    if (!isUserArn(callerArn, userName)) {
      throw new VerificationError(
        `expected access key ${credential.handle} to sign as IAM user ${userName}, but STS says it is ${callerArn}.`,
      );
    }
    const keys = await this.#keys(
      userName,
      `listing the access keys of IAM user ${userName} to test key ${credential.handle}`,
    );
    // The finishing step's listing (adoption) takes this one: nothing but the delivery happens in between.
    if (keys) this.#tested.set(userName, { keys, at: Date.now() });
    const key = keys?.find((listed) => listed.AccessKeyId === credential.handle);
    if (!key) {
      throw new VerificationError(
        `expected IAM user ${userName} to own access key ${credential.handle}, but IAM does not list it among the user's keys.`,
      );
    }
    if (key.Status !== 'Active') {
      throw new VerificationError(
        `expected access key ${credential.handle} of IAM user ${userName} to be Active, but IAM lists it as ${key.Status}.`,
      );
    }
  }

  /** finishSecret, for the key being replaced: deactivated, kept for the grace period. */
  async supersede(identity: KeyIdentity, handle: string): Promise<void> {
    await this.#deactivate(identity.scope.userName, handle);
  }

  /** Deactivates the key (an inactive key can be reactivated; a deleted one cannot). */
  async disable(identity: KeyIdentity, handle: string): Promise<void> {
    await this.#deactivate(identity.scope.userName, handle);
  }

  /**
   * Deactivates, then deletes the key. Deactivating first means a failed delete still
   * leaves the key unusable. A key (or user) IAM does not know is `already-revoked`.
   */
  async revoke(identity: KeyIdentity, handle: string): Promise<'revoked' | 'already-revoked'> {
    const { userName } = identity.scope;
    if (!(await this.#deactivate(userName, handle))) return 'already-revoked';
    try {
      await this.#iam.send(new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: handle }));
    } catch (error) {
      // Deleted by a concurrent run between the two calls.
      if (awsErrorName(error) === NO_SUCH_ENTITY) return 'already-revoked';
      throw awsFailure(`deleting access key ${handle} of IAM user ${userName}`, error);
    }
    return 'revoked';
  }

  /** The user's keys with IAM's status; a user IAM does not know has none. */
  async list(identity: KeyIdentity): Promise<ListedCredential[]> {
    const { userName } = identity.scope;
    const keys =
      this.#takeTested(userName) ??
      (await this.#keys(userName, `listing the access keys of IAM user ${userName}`)) ??
      [];
    return keys
      .filter((key) => key.AccessKeyId)
      .map((key) => ({
        handle: key.AccessKeyId ?? '',
        status: key.Status === 'Active' ? 'active' : 'inactive',
        ...(key.CreateDate && { createdAt: key.CreateDate.toISOString() }),
      }));
  }

  /** When IAM last saw a request signed with the key; undefined if never, or if the key is gone. */
  async lastUsed(identity: KeyIdentity, handle: string): Promise<string | undefined> {
    try {
      const { AccessKeyLastUsed } = await this.#iam.send(
        new GetAccessKeyLastUsedCommand({ AccessKeyId: handle }),
      );
      return AccessKeyLastUsed?.LastUsedDate?.toISOString();
    } catch (error) {
      if (awsErrorName(error) === NO_SUCH_ENTITY) return undefined;
      throw awsFailure(
        `reading when access key ${handle} of IAM user ${identity.scope.userName} was last used`,
        error,
      );
    }
  }

  /** Sets the key Inactive; false when IAM does not know the key or the user (nothing left to deactivate). */
  async #deactivate(userName: string, handle: string): Promise<boolean> {
    try {
      await this.#iam.send(
        new UpdateAccessKeyCommand({ UserName: userName, AccessKeyId: handle, Status: 'Inactive' }),
      );
      return true;
    } catch (error) {
      if (awsErrorName(error) === NO_SUCH_ENTITY) return false;
      throw awsFailure(`deactivating access key ${handle} of IAM user ${userName}`, error);
    }
  }

  /**
   * The listing a test of a new key just made, taken once: the rotation that tested the key
   * lists the user's keys again only to adopt what it replaces, right after promoting it
   * (within {@link TESTED_LISTING_MS}). Any other listing, or a later one, asks IAM.
   */
  #takeTested(userName: string): AccessKeyMetadata[] | undefined {
    const tested = this.#tested.get(userName);
    this.#tested.delete(userName);
    return tested && Date.now() - tested.at <= TESTED_LISTING_MS ? tested.keys : undefined;
  }

  /** Every key of the user, or undefined when the user does not exist. */
  async #keys(userName: string, doing: string): Promise<AccessKeyMetadata[] | undefined> {
    const keys: AccessKeyMetadata[] = [];
    try {
      for await (const page of paginateListAccessKeys({ client: this.#iam }, { UserName: userName })) {
        keys.push(...(page.AccessKeyMetadata ?? []));
      }
    } catch (error) {
      if (awsErrorName(error) === NO_SUCH_ENTITY) return undefined;
      throw awsFailure(doing, error);
    }
    return keys;
  }

  /**
   * The ARN STS reports for a call signed with `pair`. While IAM propagates a new key,
   * STS answers InvalidClientTokenId (or SignatureDoesNotMatch): wait and try again,
   * doubling the wait from 0.5 s up to 5 s, until `verifyTimeoutMs` of waiting is spent.
   */
  async #callerArn(
    userName: string,
    pair: { accessKeyId: string; secretAccessKey: string },
  ): Promise<string> {
    const getCallerIdentity = signedGetCallerIdentity(this.#endpoint);
    let waited = 0;
    let delay = 500;
    for (;;) {
      try {
        const { arn: Arn } = await getCallerIdentity(pair);
        if (!Arn) {
          throw new VerificationError(
            `expected STS to name the caller of access key ${pair.accessKeyId}, but it did not.`,
          );
        }
        return Arn;
      } catch (error) {
        if (error instanceof VerificationError) throw error;
        const name = awsErrorName(error);
        if (name === undefined || !NOT_YET_PROPAGATED.has(name)) {
          throw awsFailure(
            `testing access key ${pair.accessKeyId} of IAM user ${userName} with STS GetCallerIdentity`,
            error,
          );
        }
        if (waited >= this.#verifyTimeoutMs) {
          throw new VerificationError(
            `expected STS to accept access key ${pair.accessKeyId} of IAM user ${userName} within ${this.#verifyTimeoutMs} ms, ` +
              `but it still answers ${name}; the key is not usable, so the current key stays in force.`,
            { cause: error },
          );
        }
        const wait = Math.min(delay, this.#verifyTimeoutMs - waited);
        await this.#sleep(wait);
        waited += wait;
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }
}

/** The clear refusal when the user has no free key slot. */
function tooManyKeys(userName: string, keys: AccessKeyMetadata[], cause?: unknown): KeywardenError {
  const listed = keys.map((key) => `${key.AccessKeyId} (${key.Status})`).join(' and ');
  return new KeywardenError(
    `expected IAM user ${userName} to have a free access key slot, but IAM allows ${IAM_KEYS_PER_USER} access keys per user ` +
      `and it has ${listed || `${IAM_KEYS_PER_USER} already`}; the previous key must be retired (deleted) first, ` +
      'which the rotation engine does after its grace period. keywarden deletes no key it was not asked to.',
    { ...(cause === undefined ? {} : { cause }), retryable: false },
  );
}
