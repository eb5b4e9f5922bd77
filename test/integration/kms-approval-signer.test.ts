/**
 * Approval signatures with a KMS key on the local stack's moto server (KMS Sign/Verify,
 * ECDSA P-256): the round trip, a changed payload or signature, keys keywarden does not
 * know, and the approval use cases end to end over the real signer.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { GetPublicKeyCommand } from '@aws-sdk/client-kms';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ensureApprovalKey,
  KMS_RAW_MESSAGE_LIMIT,
  KmsApprovalSigner,
  kmsClient,
} from '../../functions/adapters/aws/kms-approval-signer.ts';
import { approve, signedBytes, verifyChain } from '../../functions/core/ci-approval.ts';
import { GateApproversSchema } from '../../functions/core/ci-policy.ts';
import type { ApprovalRecord } from '../../functions/core/ci-records.ts';
import { NotFoundError, ValidationError } from '../../functions/core/errors.ts';
import type { ApprovalLedger } from '../../functions/core/ports.ts';
import { MemoryAuditLog } from '../support/memory-stores.ts';
import { rejection } from '../support/rejection.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const kms = kmsClient(testAws());
let alias: string;
let keyArn: string;

beforeAll(async () => {
  alias = `alias/${uniqueName('keywarden-approvals')}`;
  keyArn = await ensureApprovalKey(kms, alias);
});

const payload = () => new Uint8Array(randomBytes(200));

describe('kms approval signer: the key', () => {
  it('is created once under its alias, then found again', async () => {
    // act
    const again = await ensureApprovalKey(kms, alias);

    // assess
    expect(keyArn).toMatch(/^arn:aws:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]+$/);
    expect(again).toBe(keyArn);
  });

  it('refuses an alias that is not one', async () => {
    // act
    const error = await rejection(ensureApprovalKey(kms, 'keywarden-approvals'));

    // assess
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain('expected a KMS alias such as alias/keywarden-approvals');
  });
});

describe('kms approval signer: sign and verify', () => {
  it('verifies what it signed, naming the key ARN that signed it', async () => {
    // prepare
    const signer = new KmsApprovalSigner({ kms, keyId: alias });
    const message = payload();

    // act
    const { signature, keyId } = await signer.sign(message);
    const valid = await signer.verify(message, signature, keyId);

    // assess
    expect(keyId).toBe(keyArn);
    expect(valid).toBe(true);
  });

  it("signs the bytes themselves: the key's public half verifies outside KMS", async () => {
    // prepare
    const signer = new KmsApprovalSigner({ kms, keyId: alias });
    const message = payload();
    const { signature } = await signer.sign(message);

    // act
    const { PublicKey } = await kms.send(new GetPublicKeyCommand({ KeyId: alias }));
    const publicKey = createPublicKey({ key: Buffer.from(PublicKey ?? []), format: 'der', type: 'spki' });

    // assess
    expect(verify('sha256', message, publicKey, Buffer.from(signature, 'base64'))).toBe(true);
  });

  it('does not verify a changed payload, or a changed signature', async () => {
    // prepare
    const signer = new KmsApprovalSigner({ kms, keyId: alias });
    const message = payload();
    const { signature, keyId } = await signer.sign(message);
    const changed = Uint8Array.from(message);
    changed[0] = (changed[0] ?? 0) ^ 1;
    const other = await signer.sign(payload());

    // act
    const changedPayload = await signer.verify(changed, signature, keyId);
    const changedSignature = await signer.verify(message, other.signature, keyId);
    const noSignature = await signer.verify(message, '', keyId);

    // assess
    expect([changedPayload, changedSignature, noSignature]).toEqual([false, false, false]);
  });

  it('says clearly when the key does not exist', async () => {
    // prepare
    const signer = new KmsApprovalSigner({ kms, keyId: `alias/${uniqueName('missing')}` });

    // act
    const signing = await rejection(signer.sign(payload()));
    const verifying = await rejection(signer.verify(payload(), 'AAAA', keyArn));

    // assess
    for (const error of [signing, verifying]) {
      expect(error).toBeInstanceOf(NotFoundError);
      expect(error.message).toMatch(/^no KMS key "alias\/missing-[0-9a-f]+" for approvals: create it/);
    }
  });

  it('believes no key but its own (and those listed as trusted)', async () => {
    // prepare
    const otherAlias = `alias/${uniqueName('not-keywarden')}`;
    const otherArn = await ensureApprovalKey(kms, otherAlias);
    const forger = new KmsApprovalSigner({ kms, keyId: otherAlias });
    const message = payload();
    const forged = await forger.sign(message);

    // act
    const refused = await rejection(
      new KmsApprovalSigner({ kms, keyId: alias }).verify(message, forged.signature, forged.keyId),
    );
    const trusted = await new KmsApprovalSigner({ kms, keyId: alias, trustedKeyIds: [otherArn] }).verify(
      message,
      forged.signature,
      forged.keyId,
    );

    // assess
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused.message).toMatch(
      /^expected an approval signed by keywarden's approval key \(.+\), got one naming key "arn:aws:kms:/,
    );
    expect(refused.message).toContain(keyArn.split('/').at(-1));
    expect(trusted).toBe(true);
  });

  it('refuses a payload longer than KMS signs raw, before asking KMS', async () => {
    // prepare
    const signer = new KmsApprovalSigner({ kms, keyId: alias });

    // act
    const error = await rejection(signer.sign(new Uint8Array(KMS_RAW_MESSAGE_LIMIT + 1)));

    // assess
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain(`at most ${KMS_RAW_MESSAGE_LIMIT} bytes`);
  });
});

describe('kms approval signer: approvals over it', () => {
  it('signs a chain that verifies, and catches a record altered afterwards', async () => {
    // prepare
    const records: ApprovalRecord[] = [];
    const ledger: ApprovalLedger = {
      append: async (record) => {
        records.push(structuredClone(record));
      },
      listFor: async (digest) => records.filter((r) => r.digest === digest).map((r) => structuredClone(r)),
    };
    const clock = { now: () => new Date() };
    const deps = {
      ledger,
      signer: new KmsApprovalSigner({ kms, keyId: alias }),
      audit: new MemoryAuditLog(clock),
      clock,
      gates: async () =>
        (['sign', 'publish', 'promote'] as const).map((gate) =>
          GateApproversSchema.parse({ gate, environment: 'prod', localUsers: ['alice', 'bob'] }),
        ),
      directory: async () => ({ people: [] }),
      newApprovalId: () => uniqueName('apr'),
    };
    const digest = `sha256:${randomBytes(32).toString('hex')}`;
    await approve(deps, { kind: 'local', id: 'alice' }, { digest, gate: 'sign', environment: 'prod' });
    await approve(deps, { kind: 'local', id: 'bob' }, { digest, gate: 'publish', environment: 'prod' });

    // act
    const before = await verifyChain(deps, digest);
    const [sign] = records;
    if (sign) sign.statement = sign.statement.replace('"alice"', '"mallory"');
    const after = await verifyChain(deps, digest);

    // assess
    expect(before.verdict).toBe('valid');
    expect(records.map((r) => r.keyId)).toEqual([keyArn, keyArn]);
    expect(signedBytes(records[1]?.statement ?? '').length).toBeLessThan(KMS_RAW_MESSAGE_LIMIT);
    expect(after.verdict).toBe('broken');
    expect(after.approvals[0]?.signatureValid).toBe(false);
  });
});
