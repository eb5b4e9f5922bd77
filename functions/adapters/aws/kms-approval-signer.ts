/**
 * Artifact approvals signed with a KMS key: an {@link ApprovalSigner} over KMS `Sign` and
 * `Verify` (ECDSA P-256 with SHA-256, `MessageType: RAW`). The private key never leaves KMS;
 * whoever can read the ledger but not sign with the key cannot forge an approval.
 *
 * Signing goes through the configured key (an alias, by default `alias/keywarden-approvals`),
 * and a record keeps the key ARN KMS answers with, so approvals signed before the alias moved
 * to a new key still verify against the key that signed them. Verification only believes the
 * configured key and the `trustedKeyIds` listed (say, the key before a rotation): a record
 * naming any other key, one an attacker controls, is refused before KMS is asked.
 *
 * keywarden's role needs `kms:Sign`, `kms:Verify` and `kms:GetPublicKey` on the key (the last
 * resolves the alias to the key's ARN); the local stack (moto serves KMS sign/verify) creates
 * it with {@link ensureApprovalKey}.
 */
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  GetPublicKeyCommand,
  KMSClient,
  ScheduleKeyDeletionCommand,
  SignCommand,
  VerifyCommand,
} from '@aws-sdk/client-kms';
import { KeywardenError, NotFoundError, ValidationError } from '../../core/errors.ts';
import type { ApprovalSigner } from '../../core/ports.ts';
import { awsClientConfig, awsErrorName, awsFailure } from './clients.ts';
import type { AwsEndpoint } from './endpoint.ts';

/** The alias of keywarden's approval key, unless configured otherwise. */
export const APPROVAL_KEY_ALIAS = 'alias/keywarden-approvals';

/** KMS signs at most this many bytes with `MessageType: RAW`. */
export const KMS_RAW_MESSAGE_LIMIT = 4_096;

const SIGNING_ALGORITHM = 'ECDSA_SHA_256';

/** A KMS client configured like keywarden's other AWS clients (adaptive retry, the endpoint's region). */
export const kmsClient = (endpoint: AwsEndpoint): KMSClient => new KMSClient(awsClientConfig(endpoint));

/** What {@link KmsApprovalSigner} needs. */
export interface KmsApprovalSignerProps {
  kms: KMSClient;
  /**
   * The key approvals are signed with: an alias (`alias/…`), key id or key ARN.
   * @default APPROVAL_KEY_ALIAS
   */
  keyId?: string | undefined;
  /**
   * Further key ARNs whose approvals still verify (keys the alias pointed at before).
   * @default []
   */
  trustedKeyIds?: readonly string[] | undefined;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** Signs and verifies approval statements with a KMS asymmetric key. */
export class KmsApprovalSigner implements ApprovalSigner {
  readonly #kms: KMSClient;
  readonly #keyId: string;
  readonly #trusted: readonly string[];
  #current: Promise<string> | undefined;

  constructor(props: KmsApprovalSignerProps) {
    const keyId = props.keyId ?? APPROVAL_KEY_ALIAS;
    if (!keyId.trim())
      throw new ValidationError('KmsApprovalSigner: expected a KMS key id, alias or ARN, got ""');
    this.#kms = props.kms;
    this.#keyId = keyId;
    this.#trusted = props.trustedKeyIds ?? [];
  }

  async sign(payload: Uint8Array): Promise<{ signature: string; keyId: string }> {
    checkSize(payload);
    try {
      const answer = await this.#kms.send(
        new SignCommand({
          KeyId: this.#keyId,
          Message: payload,
          MessageType: 'RAW',
          SigningAlgorithm: SIGNING_ALGORITHM,
        }),
      );
      if (!answer.Signature || !answer.KeyId)
        throw new KeywardenError(`KMS answered Sign with key ${this.#keyId} without a signature or key id`);
      return { signature: b64(answer.Signature), keyId: answer.KeyId };
    } catch (error) {
      throw this.#failure(error, `signing an approval with KMS key ${this.#keyId}`, this.#keyId);
    }
  }

  /**
   * Whether `signature` is the trusted key's over `payload`. A signature that does not
   * verify is `false` (real KMS answers `KMSInvalidSignatureException`, moto
   * `SignatureValid: false`: both mean the same here).
   *
   * @throws ValidationError when `keyId` is not a key keywarden trusts for approvals.
   */
  async verify(payload: Uint8Array, signature: string, keyId: string): Promise<boolean> {
    checkSize(payload);
    const trusted = [await this.currentKeyArn(), ...this.#trusted];
    if (!trusted.some((one) => sameKey(one, keyId))) {
      throw new ValidationError(
        `expected an approval signed by keywarden's approval key (${trusted.join(' or ')}), got one naming key ${JSON.stringify(keyId.slice(0, 200))}`,
      );
    }
    const bytes = Buffer.from(signature, 'base64');
    if (bytes.length === 0) return false;
    try {
      const answer = await this.#kms.send(
        new VerifyCommand({
          KeyId: keyId,
          Message: payload,
          MessageType: 'RAW',
          Signature: bytes,
          SigningAlgorithm: SIGNING_ALGORITHM,
        }),
      );
      return answer.SignatureValid === true;
    } catch (error) {
      if (awsErrorName(error) === 'KMSInvalidSignatureException') return false;
      throw this.#failure(error, `verifying an approval with KMS key ${keyId}`, keyId);
    }
  }

  /** The ARN of the configured key (an alias resolved once per signer, by GetPublicKey's answer). */
  currentKeyArn(): Promise<string> {
    this.#current ??= this.#kms.send(new GetPublicKeyCommand({ KeyId: this.#keyId })).then(
      (answer) => {
        const arn = answer.KeyId;
        if (!arn)
          throw new KeywardenError(`KMS answered GetPublicKey of ${this.#keyId} without the key's ARN`);
        return arn;
      },
      (error: unknown) => {
        this.#current = undefined;
        throw this.#failure(error, `reading KMS key ${this.#keyId}`, this.#keyId);
      },
    );
    return this.#current;
  }

  #failure(error: unknown, doing: string, keyId: string): KeywardenError {
    if (error instanceof KeywardenError) return error;
    if (awsErrorName(error) === 'NotFoundException') {
      return new NotFoundError(
        `no KMS key ${JSON.stringify(keyId)} for approvals: create it (the stack's KMS key, or \`keywarden dev up\` locally) or configure the key keywarden signs with`,
        { cause: error },
      );
    }
    if (awsErrorName(error) === 'DisabledException' || awsErrorName(error) === 'KMSInvalidStateException') {
      return new KeywardenError(
        `KMS key ${JSON.stringify(keyId)} is disabled or pending deletion: enable it to sign and verify approvals`,
        { cause: error },
      );
    }
    return awsFailure(doing, error);
  }
}

/**
 * Whether two key references name one key: equal, or a key ARN and its bare key id. AWS's
 * GetPublicKey answers the ARN; moto's answers the bare id (Sign answers the ARN on both).
 */
function sameKey(a: string, b: string): boolean {
  if (a === b) return true;
  const [arn, bare] = a.startsWith('arn:') ? [a, b] : [b, a];
  return !bare.startsWith('arn:') && /^[0-9a-f-]{36}$/.test(bare) && arn.endsWith(`:key/${bare}`);
}

function checkSize(payload: Uint8Array): void {
  if (payload.length > KMS_RAW_MESSAGE_LIMIT) {
    throw new ValidationError(
      `expected an approval statement of at most ${KMS_RAW_MESSAGE_LIMIT} bytes (KMS signs no longer RAW message), got ${payload.length}: shorten the approver's name`,
    );
  }
}

/**
 * The approval key, created when missing (the local stack; in AWS the stack's construct owns
 * it): an ECC_NIST_P256 SIGN_VERIFY key under `alias`. Two callers racing both create a key;
 * the one whose alias loses schedules its key for deletion and uses the winner's.
 *
 * @returns the key's ARN.
 */
export async function ensureApprovalKey(kms: KMSClient, alias: string = APPROVAL_KEY_ALIAS): Promise<string> {
  if (!/^alias\/[A-Za-z0-9/_-]{1,250}$/.test(alias) || alias.startsWith('alias/aws/')) {
    throw new ValidationError(
      `expected a KMS alias such as ${APPROVAL_KEY_ALIAS} (not under alias/aws/), got ${JSON.stringify(alias)}`,
    );
  }
  const existing = await describe(kms, alias);
  if (existing) return existing;
  let created: string | undefined;
  try {
    const key = await kms.send(
      new CreateKeyCommand({
        KeySpec: 'ECC_NIST_P256',
        KeyUsage: 'SIGN_VERIFY',
        Description: 'keywarden: signs artifact approvals (in-toto statements, DSSE)',
      }),
    );
    created = key.KeyMetadata?.Arn;
    if (!created || !key.KeyMetadata?.KeyId) throw new KeywardenError('KMS created a key without an id');
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyMetadata.KeyId }));
    return created;
  } catch (error) {
    if (awsErrorName(error) === 'AlreadyExistsException' && created) {
      await kms
        .send(new ScheduleKeyDeletionCommand({ KeyId: created, PendingWindowInDays: 7 }))
        .catch(() => undefined);
      const winner = await describe(kms, alias);
      if (winner) return winner;
    }
    if (error instanceof KeywardenError) throw error;
    throw awsFailure(`creating the approval key ${alias}`, error);
  }
}

async function describe(kms: KMSClient, keyId: string): Promise<string | undefined> {
  try {
    const answer = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
    return answer.KeyMetadata?.Arn;
  } catch (error) {
    if (awsErrorName(error) === 'NotFoundException') return undefined;
    throw awsFailure(`describing KMS key ${keyId}`, error);
  }
}
