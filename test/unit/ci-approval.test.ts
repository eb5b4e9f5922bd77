import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseApproveCommand } from '../../functions/adapters/slack/commands.ts';
import type { SlackMessage } from '../../functions/adapters/slack/messages.ts';
import { signSlackRequest } from '../../functions/adapters/slack/verify.ts';
import { CI_APPROVAL_ROUTES } from '../../functions/api/ci-approvals.ts';
import type { DeferredJob } from '../../functions/api/deferred-jobs.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { type ApiEvent, errorResult } from '../../functions/api/responses.ts';
import { runDeferred, slackCommand, slackInteraction } from '../../functions/api/slack.ts';
import { canonicalJson } from '../../functions/core/canonical-json.ts';
import {
  APPROVAL_PREDICATE_TYPE,
  type ApprovalDeps,
  ApprovalRefusalError,
  approvalGate,
  approvalStatement,
  approvalVerifier,
  approve,
  DSSE_PAYLOAD_TYPE,
  envelopeOf,
  gateCheck,
  IN_TOTO_STATEMENT_TYPE,
  preAuthEncoding,
  signedBytes,
  statementOf,
  verifyChain,
} from '../../functions/core/ci-approval.ts';
import { type GateApprovers, GateApproversSchema } from '../../functions/core/ci-policy.ts';
import type { ApprovalRecord } from '../../functions/core/ci-records.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import type { Directory, Principal } from '../../functions/core/grant.ts';
import type { ApprovalLedger, ApprovalSigner, Clock } from '../../functions/core/ports.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { MemoryAuditLog } from '../support/memory-stores.ts';
import { rejection } from '../support/rejection.ts';

/** ECDSA P-256 over SHA-256, as KMS signs: keywarden's port, with a key made for the run. */
class LocalSigner implements ApprovalSigner {
  readonly #keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly keyId = 'local-test-key';
  async sign(payload: Uint8Array) {
    return {
      signature: sign('sha256', payload, this.#keys.privateKey).toString('base64'),
      keyId: this.keyId,
    };
  }
  async verify(payload: Uint8Array, signature: string, keyId: string) {
    if (keyId !== this.keyId) throw new Error(`unknown key ${keyId}`);
    return verify('sha256', payload, this.#keys.publicKey, Buffer.from(signature, 'base64'));
  }
}

/** The ledger's contract in a map: append-only, oldest first. */
class TinyLedger implements ApprovalLedger {
  readonly records: ApprovalRecord[] = [];
  async append(record: ApprovalRecord) {
    if (this.records.some((r) => r.id === record.id)) throw new Error(`approval ${record.id} exists`);
    this.records.push(structuredClone(record));
  }
  async listFor(digest: string) {
    return this.records.filter((r) => r.digest === digest).map((r) => structuredClone(r));
  }
}

class SettableClock implements Clock {
  constructor(public at: Date) {}
  now() {
    return new Date(this.at);
  }
  advance(ms: number) {
    this.at = new Date(this.at.getTime() + ms);
  }
}

const digest = `sha256:${randomBytes(32).toString('hex')}`;
const otherDigest = `sha256:${randomBytes(32).toString('hex')}`;
const alice: Principal = { kind: 'local', id: 'alice' };
const aliceOnSlack: Principal = { kind: 'slack', id: 'U0ALICE' };
const bob: Principal = { kind: 'local', id: 'bob' };
const carol: Principal = { kind: 'slack', id: 'U0CAROL' };
const dave: Principal = { kind: 'aws', id: 'arn:aws:iam::123456789012:user/dave' };
const mallory: Principal = { kind: 'local', id: 'mallory' };

const gatesFor = (environment: string): GateApprovers[] =>
  (['sign', 'publish', 'promote'] as const).map((gate) =>
    GateApproversSchema.parse({
      gate,
      environment,
      localUsers: ['alice', 'bob'],
      slackUsers: ['U0ALICE', 'U0CAROL'],
      awsPrincipals: ['arn:aws:iam::123456789012:user/dave'],
      validFor: gate === 'promote' ? '1h' : '24h',
    }),
  );

const people: Directory = {
  people: [
    {
      name: 'Alice',
      localUsers: ['alice'],
      slackUsers: ['U0ALICE'],
      awsPrincipals: [],
      ciUsers: ['alice-gh'],
    },
    { name: 'Bob', localUsers: ['bob'], slackUsers: [], awsPrincipals: [] },
    { name: 'Carol', localUsers: [], slackUsers: ['U0CAROL'], awsPrincipals: [] },
    { name: 'Dave', localUsers: [], slackUsers: [], awsPrincipals: ['arn:aws:iam::123456789012:user/dave'] },
  ],
};

let clock: SettableClock;
let ledger: TinyLedger;
let signer: LocalSigner;
let audit: MemoryAuditLog;
let directory: Directory;
let ids: number;

const deps = (): ApprovalDeps => ({
  ledger,
  signer,
  audit,
  clock,
  gates: async () => [...gatesFor('prod'), ...gatesFor('staging')],
  directory: async () => directory,
  newApprovalId: () => `apr-${++ids}`,
});

beforeEach(() => {
  clock = new SettableClock(new Date('2026-12-05T08:00:00Z'));
  ledger = new TinyLedger();
  signer = new LocalSigner();
  audit = new MemoryAuditLog(clock);
  directory = people;
  ids = 0;
});

const at = (gate: string, environment = 'prod', d = digest) => ({ digest: d, gate, environment });

/** sign by alice, publish by bob, promote by carol: a whole chain. */
async function wholeChain(): Promise<ApprovalRecord[]> {
  return [
    await approve(deps(), alice, at('sign')),
    await approve(deps(), bob, at('publish')),
    await approve(deps(), carol, at('promote')),
  ];
}

const refusedEvents = () =>
  audit
    .of(`${digest} sign/prod`)
    .concat(audit.of(`${digest} publish/prod`), audit.of(`${digest} promote/prod`));

describe('ci approvals: the statement', () => {
  it('is an in-toto Statement v1 about the digest, in canonical JSON, with the approval as predicate', async () => {
    // prepare
    clock.at = new Date('2026-12-05T08:00:00.000Z');

    // act
    const record = await approve(deps(), alice, at('sign'));

    // assess
    const statement = JSON.parse(record.statement);
    expect(record.statement).toBe(canonicalJson(statement));
    expect(statement).toEqual({
      _type: IN_TOTO_STATEMENT_TYPE,
      subject: [{ name: digest, digest: { sha256: digest.slice('sha256:'.length) } }],
      predicateType: APPROVAL_PREDICATE_TYPE,
      predicate: {
        approvalId: 'apr-1',
        gate: 'sign',
        environment: 'prod',
        approver: alice,
        approvedAt: '2026-12-05T08:00:00.000Z',
        expiresAt: '2026-12-06T08:00:00.000Z',
      },
    });
    expect(record).toMatchObject({
      id: 'apr-1',
      digest,
      gate: 'sign',
      environment: 'prod',
      approver: alice,
      keyId: signer.keyId,
    });
  });

  it('names the approval of the gate before it', async () => {
    // prepare
    const sign = await approve(deps(), alice, at('sign'));

    // act
    const publish = await approve(deps(), bob, at('publish'));

    // assess
    expect(statementOf(publish)?.predicate.previous).toEqual({
      gate: 'sign',
      approvalId: sign.id,
      approver: alice,
    });
  });

  it('is signed over the DSSE pre-authentication encoding, and travels as a DSSE envelope', async () => {
    // prepare
    const record = await approve(deps(), alice, at('sign'));

    // act
    const envelope = envelopeOf(record);

    // assess
    expect(envelope).toEqual({
      payloadType: 'application/vnd.in-toto+json',
      payload: Buffer.from(record.statement).toString('base64'),
      signatures: [{ keyid: signer.keyId, sig: record.signature }],
    });
    const pae = Buffer.from(signedBytes(record.statement)).toString();
    expect(pae).toBe(
      `DSSEv1 ${DSSE_PAYLOAD_TYPE.length} ${DSSE_PAYLOAD_TYPE} ${Buffer.byteLength(record.statement)} ${record.statement}`,
    );
    expect(await signer.verify(signedBytes(record.statement), record.signature, record.keyId)).toBe(true);
    // The bare statement is not what was signed.
    expect(await signer.verify(Buffer.from(record.statement), record.signature, record.keyId)).toBe(false);
  });

  it('encodes PAE as the DSSE specification does (byte lengths, not characters)', () => {
    // act
    const hello = Buffer.from(preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world')));
    const accented = Buffer.from(preAuthEncoding('t', Buffer.from('é')));

    // assess
    expect(hello.toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    expect(accented.toString()).toBe('DSSEv1 1 t 2 é');
  });

  it('keeps base64 exact for every padding length', async () => {
    for (const name of ['A', 'Al', 'Ali', 'Alic', 'Ünïcødé']) {
      // prepare
      const record = await approve(deps(), { kind: 'local', id: 'alice', name }, at('sign', 'staging'));

      // act
      const { payload } = envelopeOf(record);

      // assess
      expect(payload).toBe(Buffer.from(record.statement).toString('base64'));
    }
  });
});

describe('ci approvals: approve', () => {
  it('records the approval, signed, and audits it', async () => {
    // act
    const record = await approve(deps(), alice, at('sign'));

    // assess
    expect(await ledger.listFor(digest)).toEqual([record]);
    const [event] = audit.of(digest);
    expect(event).toMatchObject({
      type: 'ci.approval.recorded',
      actor: 'local:alice',
      details: { approvalId: record.id, gate: 'sign', environment: 'prod', keyId: signer.keyId },
    });
  });

  it('counts an approval for as long as the gate says (validFor)', async () => {
    // prepare
    await approve(deps(), alice, at('sign'));
    await approve(deps(), bob, at('publish'));

    // act
    const promote = await approve(deps(), carol, at('promote'));

    // assess
    expect(Date.parse(promote.expiresAt) - Date.parse(promote.approvedAt)).toBe(3_600_000);
  });

  it('refuses someone who is not an approver of the gate, and audits it', async () => {
    // act
    const error = await rejection(approve(deps(), mallory, at('sign')));

    // assess
    expect(error).toBeInstanceOf(ApprovalRefusalError);
    expect(error).toMatchObject({ reason: 'not-an-approver' });
    expect(error.message).toContain('local:mallory is not an approver of gate sign in prod');
    expect(await ledger.listFor(digest)).toEqual([]);
    expect(audit.of(`${digest} sign/prod`)).toEqual([
      expect.objectContaining({
        type: 'ci.approval.refused',
        actor: 'local:mallory',
        details: expect.objectContaining({ code: 'not-an-approver' }),
      }),
    ]);
  });

  it('refuses a gate with no approvers declared for the environment', async () => {
    // act
    const error = await rejection(approve(deps(), alice, at('sign', 'moon')));

    // assess
    expect(error).toMatchObject({ reason: 'no-gate' });
    expect(error.message).toContain('no approvers are declared for gate sign in moon');
  });

  it('refuses publish before sign, and promote before publish', async () => {
    // act
    const publish = await rejection(approve(deps(), bob, at('publish')));
    await approve(deps(), alice, at('sign'));
    const promote = await rejection(approve(deps(), bob, at('promote')));

    // assess
    expect(publish).toMatchObject({ reason: 'out-of-order' });
    expect(publish.message).toContain('needs a valid, unexpired sign approval first');
    expect(promote).toMatchObject({ reason: 'out-of-order' });
    expect(promote.message).toContain('needs a valid, unexpired publish approval first');
  });

  it('does not take a sign approval of another environment, another digest, or one expired', async () => {
    // prepare
    await approve(deps(), alice, at('sign', 'staging'));
    await approve(deps(), alice, at('sign', 'prod', otherDigest));

    // act
    const elsewhere = await rejection(approve(deps(), bob, at('publish')));
    await approve(deps(), alice, at('sign'));
    clock.advance(24 * 3_600_000 + 1);
    const expired = await rejection(approve(deps(), bob, at('publish')));

    // assess
    expect(elsewhere).toMatchObject({ reason: 'out-of-order' });
    expect(expired).toMatchObject({ reason: 'out-of-order' });
  });

  it('does not take a sign approval whose signature does not verify', async () => {
    // prepare
    await approve(deps(), alice, at('sign'));
    const [sign] = ledger.records;
    if (sign) sign.signature = Buffer.from('forged').toString('base64');

    // act
    const error = await rejection(approve(deps(), bob, at('publish')));

    // assess
    expect(error).toMatchObject({ reason: 'out-of-order' });
  });

  it('refuses the approver of the previous gate, under any of their names', async () => {
    // prepare
    await approve(deps(), alice, at('sign'));

    // act
    const sameChannel = await rejection(approve(deps(), alice, at('publish')));
    const otherChannel = await rejection(approve(deps(), aliceOnSlack, at('publish')));

    // assess
    for (const error of [sameChannel, otherChannel]) {
      expect(error).toMatchObject({ reason: 'same-approver' });
      expect(error.message).toContain('consecutive gates need two people');
    }
    expect(refusedEvents()).toHaveLength(2);
  });

  it('refuses the approver of the next gate approving the one before it again', async () => {
    // prepare
    await approve(deps(), alice, at('sign'));
    await approve(deps(), bob, at('publish'));

    // act
    const error = await rejection(approve(deps(), bob, at('sign')));

    // assess
    expect(error).toMatchObject({ reason: 'same-approver' });
  });

  it('lets one person approve two gates that are not consecutive', async () => {
    // prepare
    await approve(deps(), alice, at('sign'));
    await approve(deps(), bob, at('publish'));

    // act
    const promote = await approve(deps(), alice, at('promote'));

    // assess
    expect(promote.gate).toBe('promote');
  });

  it('refuses an approver missing from the directory, who could be anyone under another name', async () => {
    // prepare
    directory = { people: people.people.filter((p) => p.name !== 'Bob') };

    // act
    const error = await rejection(approve(deps(), bob, at('sign')));

    // assess
    expect(error).toMatchObject({ reason: 'not-in-directory' });
  });

  it('refuses a malformed digest, gate or environment with what it expected', async () => {
    // act
    const badDigest = await rejection(approve(deps(), alice, at('sign', 'prod', 'sha256:abc')));
    const badGate = await rejection(approve(deps(), alice, at('deploy')));
    const badEnvironment = await rejection(approve(deps(), alice, at('sign', 'prod env')));

    // assess
    expect(badDigest).toBeInstanceOf(ValidationError);
    expect(badDigest.message).toContain('expected an artifact digest as sha256:<64 lowercase hex digits>');
    expect(badGate.message).toMatch(/gate: .*sign.*publish.*promote/);
    expect(badEnvironment.message).toContain('expected an environment name');
    expect((await audit.readAll()).records.map((r) => r.type)).toEqual([
      'ci.approval.refused',
      'ci.approval.refused',
      'ci.approval.refused',
    ]);
  });
});

describe('ci approvals: gateCheck', () => {
  const check = (actor: string | undefined, options: { directory?: Directory } = {}) =>
    ledger.listFor(digest).then((approvals) =>
      gateCheck(
        approvals,
        { gate: 'promote', environment: 'prod' },
        {
          actor,
          now: clock.now(),
          verify: approvalVerifier(signer),
          directory: options.directory ?? directory,
        },
      ),
    );

  it('lets a job through on a valid approval by someone else', async () => {
    // prepare
    const [, , promote] = await wholeChain();

    // act
    const verdict = await check('someone-else');

    // assess
    expect(verdict).toEqual({ ok: true, approval: promote });
  });

  it('says no-approval when the gate has none for the digest', async () => {
    // prepare
    await approve(deps(), alice, at('sign'));
    await approve(deps(), bob, at('publish'));

    // act
    const verdict = await check('someone-else');

    // assess
    expect(verdict).toMatchObject({ ok: false, reason: 'no-approval' });
  });

  it('says no-approval for another environment', async () => {
    // prepare
    await wholeChain();

    // act
    const verdict = await gateCheck(
      await ledger.listFor(digest),
      { gate: 'promote', environment: 'staging' },
      { actor: 'x', now: clock.now(), verify: approvalVerifier(signer) },
    );

    // assess
    expect(verdict).toMatchObject({ ok: false, reason: 'no-approval' });
  });

  it('says expired once the approval is past its validFor', async () => {
    // prepare
    await wholeChain();
    clock.advance(3_600_000);

    // act
    const verdict = await check('someone-else');

    // assess
    expect(verdict).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('says bad-signature for an altered signature, statement or record', async () => {
    for (const alter of [
      (r: ApprovalRecord) => {
        r.signature = Buffer.from(randomBytes(64)).toString('base64');
      },
      (r: ApprovalRecord) => {
        r.statement = r.statement.replace('"prod"', '"prod2"');
      },
      (r: ApprovalRecord) => {
        r.approver = dave;
      },
    ]) {
      // prepare
      ledger.records.length = 0;
      await wholeChain();
      const promote = ledger.records.find((r) => r.gate === 'promote');
      if (promote) alter(promote);

      // act
      const verdict = await check('someone-else');

      // assess
      expect(verdict).toMatchObject({ ok: false, reason: 'bad-signature' });
    }
  });

  it("says actor when the job's actor approved it: their login, or a CI login of the same person", async () => {
    // prepare
    await approve(deps(), alice, at('sign'));
    await approve(deps(), carol, at('publish'));
    await approve(deps(), bob, at('promote'));
    const promoteByAliceOnSlack = async () => {
      ledger.records.length = 0;
      await approve(deps(), bob, at('sign'));
      await approve(deps(), carol, at('publish'));
      await approve(deps(), aliceOnSlack, at('promote'));
    };

    // act
    const byLogin = await check('Bob');
    const unknown = await check(undefined);
    await promoteByAliceOnSlack();
    const byCiLogin = await check('alice-gh');
    const byPersonName = await check('alice');

    // assess
    for (const verdict of [byLogin, byCiLogin, byPersonName])
      expect(verdict).toMatchObject({
        ok: false,
        reason: 'actor',
        message: expect.stringContaining("the job's actor"),
      });
    expect(unknown).toMatchObject({
      ok: false,
      reason: 'actor',
      message: expect.stringContaining('names no actor'),
    });
  });

  it('says same-approver when one person approved publish and promote under two names', async () => {
    // prepare: approved while the directory did not know that U0ALICE is bob's too
    directory = { people: [] };
    await approve(deps(), alice, at('sign'));
    await approve(deps(), bob, at('publish'));
    await approve(deps(), aliceOnSlack, at('promote'));

    // act
    const verdict = await check('someone-else', {
      directory: {
        people: [{ name: 'Bob', localUsers: ['bob'], slackUsers: ['U0ALICE'], awsPrincipals: [] }],
      },
    });

    // assess
    expect(verdict).toMatchObject({ ok: false, reason: 'same-approver' });
  });

  it('takes the approval that holds when an older one does not', async () => {
    // prepare
    await wholeChain();
    clock.advance(30 * 60_000);
    const [first] = ledger.records.filter((r) => r.gate === 'promote');
    if (first) first.signature = Buffer.from(randomBytes(64)).toString('base64');
    const again = await approve(deps(), dave, at('promote'));

    // act
    const verdict = await check('someone-else');

    // assess
    expect(verdict).toEqual({ ok: true, approval: again });
  });

  it("serves the exchange's gate port (approval id, or the reason)", async () => {
    // prepare
    await wholeChain();
    const gate = approvalGate({ ledger, signer, directory: async () => directory, clock });

    // act
    const ok = await gate({ gate: 'promote', environment: 'prod' }, digest, 'someone-else');
    const other = await gate({ gate: 'promote', environment: 'prod' }, otherDigest, 'someone-else');
    const self = await gate({ gate: 'promote', environment: 'prod' }, digest, 'carol');

    // assess
    expect(ok).toEqual({ ok: true, approvalId: 'apr-3' });
    expect(other).toEqual({
      ok: false,
      reason: `no promote approval of ${otherDigest} in prod is recorded; an approver of the gate runs \`keywarden approve --digest ${otherDigest} --gate promote --environment prod\``,
    });
    expect(self).toMatchObject({ ok: false, reason: expect.stringContaining("the job's actor") });
  });
});

describe('ci approvals: verifyChain', () => {
  const verifyDeps = () => ({ ledger, signer, directory: async () => directory, clock });

  it('finds a whole chain valid, approval by approval', async () => {
    // prepare
    await wholeChain();

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('valid');
    expect(report.approvals.map((a) => [a.gate, a.signatureValid, a.problems])).toEqual([
      ['sign', true, []],
      ['publish', true, []],
      ['promote', true, []],
    ]);
  });

  it('calls a digest with no approvals empty', async () => {
    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report).toEqual({ digest, verdict: 'empty', approvals: [] });
  });

  it('reports expiry without breaking the chain', async () => {
    // prepare
    await wholeChain();
    clock.advance(2 * 3_600_000);

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('valid');
    expect(report.approvals.map((a) => a.expired)).toEqual([false, false, true]);
  });

  it('detects a tampered statement: the signature no longer verifies', async () => {
    // prepare
    await wholeChain();
    const publish = ledger.records[1];
    if (publish) {
      publish.statement = publish.statement.replace('"approver":{"id":"bob"', '"approver":{"id":"eve"');
      publish.approver = { kind: 'local', id: 'eve' };
    }

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('broken');
    expect(report.approvals[1]).toMatchObject({ signatureValid: false });
    expect(report.approvals[1]?.problems[0]).toContain('does not verify');
  });

  it('detects a tampered signature', async () => {
    // prepare
    await wholeChain();
    const sign = ledger.records[0];
    if (sign) sign.signature = (await signer.sign(new Uint8Array([1, 2, 3]))).signature;

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('broken');
    expect(report.approvals[0]?.signatureValid).toBe(false);
  });

  it('detects a record that says something else than its signed statement', async () => {
    // prepare
    await wholeChain();
    const promote = ledger.records[2];
    if (promote) promote.expiresAt = '2099-01-01T00:00:00.000Z';

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('broken');
    expect(report.approvals[2]?.signatureValid).toBe(true);
    expect(report.approvals[2]?.problems).toEqual([
      'expiresAt is "2099-01-01T00:00:00.000Z" in the record but "2026-12-05T09:00:00.000Z" signed',
    ]);
  });

  it('detects one person behind two consecutive gates', async () => {
    // prepare: approved while the directory did not know U0ALICE was bob's
    directory = { people: [] };
    await approve(deps(), alice, at('sign'));
    await approve(deps(), bob, at('publish'));
    await approve(deps(), aliceOnSlack, at('promote'));
    directory = {
      people: [{ name: 'Bob', localUsers: ['bob'], slackUsers: ['U0ALICE'], awsPrincipals: [] }],
    };

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('broken');
    expect(report.approvals[2]?.problems).toEqual([
      'slack:U0ALICE approved both gate publish and gate promote: consecutive gates need two people',
    ]);
  });

  it('detects an approval whose previous gate is gone from the ledger', async () => {
    // prepare
    await wholeChain();
    ledger.records.splice(0, 1);

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('broken');
    expect(report.approvals[0]?.problems).toEqual(['its previous approval apr-1 is not in the ledger']);
  });

  it('detects an approval that names a previous gate already expired when it was given', async () => {
    // prepare: a publish statement signed by keywarden's key, linking a sign approval past its expiry
    // (approve itself refuses to; only a writer holding the key could record it)
    const sign = await approve(deps(), alice, at('sign'));
    clock.advance(25 * 3_600_000);
    const approvedAt = clock.now().toISOString();
    const predicate = {
      approvalId: 'apr-late',
      gate: 'publish' as const,
      environment: 'prod',
      approver: bob,
      approvedAt,
      expiresAt: new Date(clock.now().getTime() + 3_600_000).toISOString(),
      previous: { gate: 'sign' as const, approvalId: sign.id, approver: alice },
    };
    const statement = canonicalJson(approvalStatement(digest, predicate));
    const { signature, keyId } = await signer.sign(signedBytes(statement));
    await ledger.append({
      id: 'apr-late',
      digest,
      gate: 'publish',
      environment: 'prod',
      approver: bob,
      approvedAt,
      expiresAt: predicate.expiresAt,
      statement,
      signature,
      keyId,
    });

    // act
    const report = await verifyChain(verifyDeps(), digest);

    // assess
    expect(report.verdict).toBe('broken');
    expect(report.approvals[1]?.problems).toEqual([
      `its previous approval ${sign.id} had expired (${sign.expiresAt}) when it was given`,
    ]);
  });

  it('refuses a malformed digest', async () => {
    // act
    const error = await rejection(verifyChain(verifyDeps(), 'md5:abc'));

    // assess
    expect(error).toBeInstanceOf(ValidationError);
  });
});

/** The API's dependencies for these routes and Slack: the approvals, and what Slack's gate reads. */
function apiDeps(capture: { jobs: DeferredJob[]; posted: { url: string; message: SlackMessage }[] }) {
  const seen = new Set<string>();
  return {
    breakglass: { audit, clock },
    acceptLocalPrincipals: true,
    region: 'eu-west-1',
    approvals: deps(),
    slack: {
      signingSecret,
      ledger: { firstDelivery: async (key: string) => !seen.has(key) && Boolean(seen.add(key)) },
      respond: async (url: string, message: SlackMessage) => void capture.posted.push({ url, message }),
      defer: async (job: DeferredJob) => void capture.jobs.push(job),
    },
  } as unknown as ApiDeps;
}

const signingSecret = new SecretValue(randomBytes(16).toString('hex'));

/** A request as the router hands it to a route. */
const event = (over: Partial<ApiEvent> = {}): ApiEvent =>
  ({
    rawPath: '/',
    headers: {},
    requestContext: { http: { method: 'GET' }, requestId: 'r-1' },
    ...over,
  }) as unknown as ApiEvent;

/** Runs one of CI_APPROVAL_ROUTES as the router would, errors mapped to their status. */
async function call(method: string, path: string, caller: Principal, over: Partial<ApiEvent> = {}) {
  const route = CI_APPROVAL_ROUTES.find((r) => r.method === method && r.path === path);
  if (route?.auth !== 'signed') throw new Error(`no signed route ${method} ${path}`);
  const result = await route
    .run(apiDeps({ jobs: [], posted: [] }))(event(over), {}, caller)
    .catch((error: unknown) => errorResult(error, 'r-1', () => {}));
  return { status: result.statusCode, body: JSON.parse(result.body) };
}

describe('ci approvals: the API routes', () => {
  it('records an approval for the caller and answers it with its DSSE envelope', async () => {
    // act
    const answer = await call('POST', '/ci/approvals', alice, {
      body: JSON.stringify(at('sign')),
    });

    // assess
    expect(answer.status).toBe(201);
    expect(answer.body.approval).toMatchObject({ digest, gate: 'sign', approver: alice });
    expect(answer.body.approval.envelope.payloadType).toBe(DSSE_PAYLOAD_TYPE);
  });

  it('answers 400 naming what was expected for a bad body, and 403 for a refusal', async () => {
    // act
    const extra = await call('POST', '/ci/approvals', alice, {
      body: JSON.stringify({ ...at('sign'), note: 'x' }),
    });
    const badDigest = await call('POST', '/ci/approvals', alice, {
      body: JSON.stringify(at('sign', 'prod', 'sha256:nope')),
    });
    const stranger = await call('POST', '/ci/approvals', mallory, { body: JSON.stringify(at('sign')) });

    // assess
    expect(extra).toMatchObject({ status: 400, body: { error: { code: 'bad-request' } } });
    expect(extra.body.error.message).toContain('note');
    expect(badDigest.status).toBe(400);
    expect(badDigest.body.error.message).toContain('expected an artifact digest as sha256:');
    expect(stranger).toMatchObject({ status: 403, body: { error: { code: 'refused' } } });
  });

  it("lists a digest's approvals and verifies their chain", async () => {
    // prepare
    await wholeChain();
    const query = { queryStringParameters: { digest } };

    // act
    const list = await call('GET', '/ci/approvals', bob, query);
    const verdict = await call('GET', '/ci/approvals/verify', bob, query);

    // assess
    expect(list.body.approvals.map((a: ApprovalRecord) => a.gate)).toEqual(['sign', 'publish', 'promote']);
    expect(verdict.body.verdict).toBe('valid');
  });

  it('answers 400 for a missing, malformed or unknown query parameter', async () => {
    // act
    const missing = await call('GET', '/ci/approvals', bob);
    const malformed = await call('GET', '/ci/approvals/verify', bob, {
      queryStringParameters: { digest: 'sha256:ABC' },
    });
    const unknown = await call('GET', '/ci/approvals', bob, {
      queryStringParameters: { digest, gate: 'sign' },
    });

    // assess
    expect(missing.body.error.message).toContain('expected the query parameter digest=sha256:');
    expect(malformed.body.error.message).toContain('digest: expected an artifact digest');
    expect(unknown.body.error.message).toBe('expected only the query parameter digest, got "gate"');
    expect([missing.status, malformed.status, unknown.status]).toEqual([400, 400, 400]);
  });

  it('answers 404 where the deployment serves no approvals', async () => {
    // prepare
    const route = CI_APPROVAL_ROUTES.find((r) => r.method === 'GET' && r.path === '/ci/approvals');
    if (route?.auth !== 'signed') throw new Error('GET /ci/approvals is a signed route');

    // act
    const error = await rejection(
      route.run({ ...apiDeps({ jobs: [], posted: [] }), approvals: undefined })(event(), {}, bob),
    );

    // assess
    expect(errorResult(error, 'r-1', () => {}).statusCode).toBe(404);
    expect(error.message).toBe('artifact approvals are not served by this deployment');
  });
});

describe('ci approvals: Slack', () => {
  const slackEvent = (path: string, body: string, signed = true): ApiEvent => {
    const timestamp = String(Math.floor(clock.now().getTime() / 1000));
    return event({
      rawPath: path,
      body,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': timestamp,
        'x-slack-signature': signed
          ? signSlackRequest(signingSecret, timestamp, body)
          : `v0=${'0'.repeat(64)}`,
      },
      requestContext: { http: { method: 'POST' }, requestId: 'r-1' } as ApiEvent['requestContext'],
    });
  };
  const command = (text: string, user = 'U0CAROL') =>
    new URLSearchParams({
      command: '/approve',
      text,
      user_id: user,
      team_id: 'T1',
      channel_id: 'C1',
      response_url: 'https://hooks.slack.com/commands/T1/1/abc',
    }).toString();
  const click = (user: string, value: string) =>
    `payload=${encodeURIComponent(
      JSON.stringify({
        type: 'block_actions',
        user: { id: user },
        actions: [{ action_id: 'ci.approve', value }],
        response_url: 'https://hooks.slack.com/actions/T1/1/abc',
      }),
    )}`;

  it('parses /approve DIGEST GATE ENVIRONMENT, with the usage on a mistake', () => {
    // act
    const parsed = parseApproveCommand(`${digest} promote prod`);
    const wrong = () => parseApproveCommand(`${digest} deploy`);

    // assess
    expect(parsed).toEqual({ digest, gate: 'promote', environment: 'prod' });
    expect(wrong).toThrow(
      /expected a digest, a gate and an environment, got 2 word\(s\)\. Usage: \/approve DIGEST GATE ENVIRONMENT/,
    );
  });

  it('posts the request with an Approve button, and approves nothing yet', async () => {
    // prepare
    const capture = { jobs: [], posted: [] };

    // act
    const answer = await slackCommand(
      apiDeps(capture),
      slackEvent('/slack/commands', command(`${digest} sign prod`)),
    );

    // assess
    const message = JSON.parse(answer.body) as SlackMessage;
    expect(answer.statusCode).toBe(200);
    expect(message.response_type).toBe('in_channel');
    expect(JSON.stringify(message.blocks)).toContain(
      `"action_id":"ci.approve","text":{"type":"plain_text","text":"Approve","emoji":true},"value":"${digest} sign prod"`,
    );
    expect(await ledger.listFor(digest)).toEqual([]);
  });

  it('says at once when the gate has no approvers in that environment', async () => {
    // act
    const answer = await slackCommand(
      apiDeps({ jobs: [], posted: [] }),
      slackEvent('/slack/commands', command(`${digest} sign moon`)),
    );

    // assess
    expect(JSON.parse(answer.body).text).toContain('no approvers are declared for gate sign in moon');
  });

  it("records a gate approver's click after the answer, through the same use case", async () => {
    // prepare
    await approve(deps(), alice, at('sign'));
    await approve(deps(), bob, at('publish'));
    const capture = { jobs: [] as DeferredJob[], posted: [] as { url: string; message: SlackMessage }[] };
    const api = apiDeps(capture);

    // act
    const answer = await slackInteraction(
      api,
      slackEvent('/slack/interactions', click('U0CAROL', `${digest} promote prod`)),
    );
    const recordedBeforeJob = (await ledger.listFor(digest)).length;
    for (const job of capture.jobs) await runDeferred(api, job);

    // assess
    expect([answer.statusCode, answer.body]).toEqual([200, '']);
    expect(recordedBeforeJob).toBe(2);
    const promote = (await ledger.listFor(digest)).find((a) => a.gate === 'promote');
    expect(promote?.approver).toEqual({ kind: 'slack', id: 'U0CAROL' });
    expect(capture.posted).toHaveLength(1);
    expect(capture.posted[0]?.message).toMatchObject({ replace_original: true });
    expect(capture.posted[0]?.message.text).toBe(`Approved: ${digest} for promote in prod`);
  });

  it('refuses a click by someone who is not an approver of the gate, audited', async () => {
    // prepare
    const capture = { jobs: [] as DeferredJob[], posted: [] as { url: string; message: SlackMessage }[] };
    const api = apiDeps(capture);

    // act
    await slackInteraction(api, slackEvent('/slack/interactions', click('U0MALLORY', `${digest} sign prod`)));
    for (const job of capture.jobs) await runDeferred(api, job);

    // assess
    expect(await ledger.listFor(digest)).toEqual([]);
    expect(capture.posted[0]?.message.text).toContain(
      'slack:U0MALLORY is not an approver of gate sign in prod',
    );
    expect(audit.of(`${digest} sign/prod`).map((r) => [r.type, r.actor])).toEqual([
      ['ci.approval.refused', 'slack:U0MALLORY'],
    ]);
  });

  it('drops an unsigned click before reading it', async () => {
    // prepare
    const capture = { jobs: [] as DeferredJob[], posted: [] };

    // act
    const answer = await slackInteraction(
      apiDeps(capture),
      slackEvent('/slack/interactions', click('U0CAROL', `${digest} sign prod`), false),
    );

    // assess
    expect(answer.statusCode).toBe(401);
    expect(capture.jobs).toEqual([]);
  });
});
