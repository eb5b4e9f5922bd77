/**
 * Approval gates bound to an artifact digest. An approval says "this person approved
 * `sha256:…` for gate G in environment E until T"; keywarden writes it as an in-toto
 * Statement v1 (canonical JSON), signs its DSSE pre-authentication encoding with a key it
 * holds (KMS), and appends it to a ledger that never changes an entry.
 *
 * The gates go in order (sign → publish → promote) for one digest and environment, and two
 * consecutive gates of one digest always have two different people behind them; a job grant
 * behind a gate issues only on an approval that verifies, has not expired, and was given by
 * neither the job's actor nor the approver of the gate before it ({@link gateCheck}).
 * `keywarden approvals verify` replays every rule over the ledger ({@link verifyChain}).
 *
 * People are people across channels: the break-glass directory (grant.ts `Directory`) makes a
 * Slack user and an IAM principal of one person the same approver, and its `ciUsers` name
 * their CI logins, so an approval by the job's actor is recognised whichever channel gave it.
 */
import * as z from 'zod';
import { canonicalJson } from './canonical-json.ts';
import { DigestSchema, GATE_ORDER, type Gate, type GateApprovers, GateSchema } from './ci-policy.ts';
import type { ApprovalRecord } from './ci-records.ts';
import { toMillis } from './duration.ts';
import { NotFoundError, ValidationError } from './errors.ts';
import {
  type Directory,
  listed,
  type Principal,
  PrincipalSchema,
  parseInput,
  personOf,
  RefusalError,
  samePerson,
} from './grant.ts';
import { onFirstUse } from './on-first-use.ts';
import type { ApprovalLedger, ApprovalSigner, AuditLog, Clock } from './ports.ts';

/** in-toto's statement type (v1). */
export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** What keywarden's approval predicate is, for any verifier reading the statement. */
export const APPROVAL_PREDICATE_TYPE = 'https://keywarden.dev/attestations/approval/v1';
/** The DSSE payload type of an in-toto statement. */
export const DSSE_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/** The link an approval keeps to the gate before it (absent for `sign`, the first gate). */
export const PreviousApprovalSchema = onFirstUse(() =>
  z.strictObject({
    gate: GateSchema,
    approvalId: z.string().min(1).max(128),
    approver: PrincipalSchema,
  }),
);
export type PreviousApproval = z.infer<typeof PreviousApprovalSchema>;

/** keywarden's approval predicate. */
export const ApprovalPredicateSchema = onFirstUse(() =>
  z.strictObject({
    /** The ledger id, signed too, so a record cannot be filed under another id. */
    approvalId: z.string().min(1).max(128),
    gate: GateSchema,
    environment: z.string().min(1).max(64),
    approver: PrincipalSchema,
    approvedAt: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
    previous: PreviousApprovalSchema.optional(),
  }),
);
export type ApprovalPredicate = z.infer<typeof ApprovalPredicateSchema>;

/** An approval as an in-toto Statement v1: the artifact is the subject, the approval the predicate. */
export const ApprovalStatementSchema = onFirstUse(() =>
  z.strictObject({
    _type: z.literal(IN_TOTO_STATEMENT_TYPE),
    subject: z
      .array(z.strictObject({ name: z.string().min(1), digest: z.strictObject({ sha256: Hex64 }) }))
      .length(1),
    predicateType: z.literal(APPROVAL_PREDICATE_TYPE),
    predicate: ApprovalPredicateSchema,
  }),
);
export type ApprovalStatement = z.infer<typeof ApprovalStatementSchema>;

/** The statement of one approval of `digest` (the subject's name is the digest: the artifact has no other). */
export function approvalStatement(digest: string, predicate: ApprovalPredicate): ApprovalStatement {
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: digest, digest: { sha256: digest.replace(/^sha256:/, '') } }],
    predicateType: APPROVAL_PREDICATE_TYPE,
    predicate,
  };
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/**
 * DSSE's pre-authentication encoding, what is signed: `DSSEv1 SP LEN(type) SP type SP
 * LEN(body) SP body`, lengths as decimal byte counts. Signing it rather than the bare payload
 * binds the payload type, so the signature cannot be replayed as another kind of document.
 */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Uint8Array {
  const head = utf8(`DSSEv1 ${utf8(payloadType).length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** The bytes a record's signature covers: the PAE of its statement as stored. */
export const signedBytes = (statement: string): Uint8Array =>
  preAuthEncoding(DSSE_PAYLOAD_TYPE, utf8(statement));

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 with padding (core has no Buffer). */
function base64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const [a = 0, b = 0, c = 0] = [bytes[i], bytes[i + 1], bytes[i + 2]];
    const n = (a << 16) | (b << 8) | c;
    out += BASE64[(n >> 18) & 63] ?? '';
    out += BASE64[(n >> 12) & 63] ?? '';
    out += i + 1 < bytes.length ? (BASE64[(n >> 6) & 63] ?? '') : '=';
    out += i + 2 < bytes.length ? (BASE64[n & 63] ?? '') : '=';
  }
  return out;
}

/** A DSSE envelope: what an outside verifier (cosign, in-toto tooling) reads. */
export interface DsseEnvelope {
  payloadType: typeof DSSE_PAYLOAD_TYPE;
  /** The statement, base64. */
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

/** A recorded approval as a DSSE envelope. */
export const envelopeOf = (record: ApprovalRecord): DsseEnvelope => ({
  payloadType: DSSE_PAYLOAD_TYPE,
  payload: base64(utf8(record.statement)),
  signatures: [{ keyid: record.keyId, sig: record.signature }],
});

/** What every channel sends to approve (API body, CLI options, Slack `/approve`). */
export const ApproveInputSchema = onFirstUse(() =>
  z.strictObject({
    digest: DigestSchema,
    gate: GateSchema,
    environment: z
      .string({ error: 'expected an environment name such as prod' })
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
        error: (issue) =>
          `expected an environment name (letters, digits, '.', '_' or '-', at most 64), got ${JSON.stringify(issue.input)}`,
      }),
  }),
);
export type ApproveInput = z.infer<typeof ApproveInputSchema>;

/** Why an approval was refused, for the audit trail and callers that tell the cases apart. */
export type ApprovalRefusalReason =
  | 'no-gate'
  | 'not-an-approver'
  | 'not-in-directory'
  | 'out-of-order'
  | 'same-approver';

/** An approval keywarden refuses (403 on the API); the message says why and what to do. */
export class ApprovalRefusalError extends RefusalError {
  override readonly name: string = 'ApprovalRefusalError';
  constructor(
    readonly reason: ApprovalRefusalReason,
    message: string,
  ) {
    super(message);
  }
}

/** What the approval use cases run on. */
export interface ApprovalDeps {
  ledger: ApprovalLedger;
  signer: ApprovalSigner;
  audit: Pick<AuditLog, 'append'>;
  clock: Clock;
  /** Who may approve each gate in each environment (the inventory's `ci.gates`, as last synced). */
  gates: () => Promise<readonly GateApprovers[]>;
  /** Who is who across channels (the inventory's `breakglass` people, as last synced). */
  directory: () => Promise<Directory>;
  newApprovalId: () => string;
}

const who = (p: Principal) => `${p.kind}:${p.id}`;

/** The gate an artifact passes before `gate`, if any. */
export function previousGate(gate: Gate): Gate | undefined {
  const at = GATE_ORDER.indexOf(gate);
  return at > 0 ? GATE_ORDER[at - 1] : undefined;
}

/** The gate after `gate`, if any. */
export function nextGate(gate: Gate): Gate | undefined {
  return GATE_ORDER[GATE_ORDER.indexOf(gate) + 1];
}

/** The declared approvers of a gate in an environment, or a refusal naming where to declare them. */
export function gateApprovers(
  gates: readonly GateApprovers[],
  gate: Gate,
  environment: string,
): GateApprovers {
  const found = gates.find((g) => g.gate === gate && g.environment === environment);
  if (!found) {
    const declared = gates.map((g) => `${g.gate}/${g.environment}`).join(', ') || 'none';
    throw new ApprovalRefusalError(
      'no-gate',
      `no approvers are declared for gate ${gate} in ${environment} (ci.gates declares: ${declared}); add them to the inventory`,
    );
  }
  return found;
}

/**
 * Whether an approval by `approver` is an approval by the job's actor: the same login (a
 * local user named like the GitHub actor), or a person of the directory whose name or
 * `ciUsers` is the actor. Logins compare case-insensitively, as GitHub's and GitLab's do.
 */
export function isJobActor(directory: Directory, approver: Principal, actor: string): boolean {
  const login = actor.toLowerCase();
  if (approver.kind !== 'aws' && approver.id.toLowerCase() === login) return true;
  const key = personOf(directory, approver);
  const person = directory.people.find((p) => `person:${p.name}` === key);
  if (!person) return false;
  return [person.name, ...(person.ciUsers ?? [])].some((name) => name.toLowerCase() === login);
}

/** The statement a record carries, when it is one of keywarden's approvals. */
export function statementOf(record: ApprovalRecord): ApprovalStatement | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(record.statement);
  } catch {
    return undefined;
  }
  const checked = ApprovalStatementSchema.safeParse(parsed);
  return checked.success ? checked.data : undefined;
}

/**
 * Where a record and the statement it carries disagree (the record's fields are what the
 * ledger is queried by; the statement is what was signed): empty when they agree.
 */
export function recordMismatches(record: ApprovalRecord): string[] {
  const statement = statementOf(record);
  if (!statement) return ['its statement is not an in-toto approval statement of keywarden'];
  if (canonicalJson(statement) !== record.statement) return ['its statement is not in canonical form'];
  const p = statement.predicate;
  const problems: string[] = [];
  const differs = (field: string, signed: unknown, stored: unknown) => {
    if (canonicalJson(signed) !== canonicalJson(stored))
      problems.push(
        `${field} is ${JSON.stringify(stored)} in the record but ${JSON.stringify(signed)} signed`,
      );
  };
  differs('id', p.approvalId, record.id);
  differs('digest', statement.subject[0]?.name, record.digest);
  differs('digest', `sha256:${statement.subject[0]?.digest.sha256}`, record.digest);
  differs('gate', p.gate, record.gate);
  differs('environment', p.environment, record.environment);
  differs('approver', p.approver, record.approver);
  differs('approvedAt', p.approvedAt, record.approvedAt);
  differs('expiresAt', p.expiresAt, record.expiresAt);
  return problems;
}

/** Verifies a record's signature (through the signer) over its statement's PAE. */
export const approvalVerifier =
  (signer: Pick<ApprovalSigner, 'verify'>) =>
  (record: ApprovalRecord): Promise<boolean> =>
    signer.verify(signedBytes(record.statement), record.signature, record.keyId).catch(() => false);

/** Whether a record verifies: its signature holds and the record says what was signed. */
async function intact(
  record: ApprovalRecord,
  verify: (record: ApprovalRecord) => Promise<boolean>,
): Promise<boolean> {
  return recordMismatches(record).length === 0 && (await verify(record));
}

/** Records a refused approval, then lets the refusal go on to the caller. */
async function refused(
  deps: Pick<ApprovalDeps, 'audit'>,
  caller: Principal,
  subject: string,
  error: unknown,
): Promise<never> {
  if (error instanceof RefusalError || error instanceof ValidationError || error instanceof NotFoundError) {
    await deps.audit.append({
      type: 'ci.approval.refused',
      actor: who(caller).slice(0, 2_100),
      subject: subject.slice(0, 200),
      details: {
        reason: error.message.slice(0, 1_000),
        ...(error instanceof ApprovalRefusalError ? { code: error.reason } : {}),
      },
    });
  }
  throw error;
}

/**
 * Approves an artifact digest for a gate in an environment, on behalf of `caller`. The
 * caller must be a declared approver of that gate and environment (and, with a directory,
 * in it); `publish` needs a valid `sign` approval of the digest in the same environment, and
 * `promote` a `publish` one; nobody approves two consecutive gates of one digest. Then the
 * statement is signed and appended, and `ci.approval.recorded` audited. Every refusal is
 * audited as `ci.approval.refused` before it reaches the caller.
 *
 * @throws ValidationError for a malformed digest, gate or environment.
 * @throws ApprovalRefusalError saying which rule refused it.
 */
export async function approve(
  deps: ApprovalDeps,
  caller: Principal,
  input: { digest: string; gate: string; environment: string },
): Promise<ApprovalRecord> {
  const subject = `${String(input.digest).slice(0, 80)} ${String(input.gate).slice(0, 16)}/${String(input.environment).slice(0, 64)}`;
  let record: ApprovalRecord;
  try {
    const { digest, gate, environment } = parseInput(ApproveInputSchema, input, 'approval');
    parseInput(PrincipalSchema, caller, 'approver');
    const approvers = gateApprovers(await deps.gates(), gate, environment);
    if (!listed(approvers, caller)) {
      throw new ApprovalRefusalError(
        'not-an-approver',
        `${who(caller)} is not an approver of gate ${gate} in ${environment} (ci.gates); ask one of them, or have ${who(caller)} added there`,
      );
    }
    const directory = await deps.directory();
    if (directory.people.length > 0 && !personOf(directory, caller).startsWith('person:')) {
      throw new ApprovalRefusalError(
        'not-in-directory',
        `${who(caller)} is not in breakglass.people (or is an assumed-role session whose name AWS does not vouch for), so keywarden cannot tell them from the approver of another gate; add them to the directory to approve`,
      );
    }
    const now = deps.clock.now();
    const verify = approvalVerifier(deps.signer);
    const existing = (await deps.ledger.listFor(digest)).filter((a) => a.environment === environment);
    const neighbours = [previousGate(gate), nextGate(gate)].filter((g) => g !== undefined);
    const mine = existing.find(
      (a) => neighbours.includes(a.gate) && samePerson(directory, a.approver, caller),
    );
    if (mine) {
      throw new ApprovalRefusalError(
        'same-approver',
        `${who(caller)} approved gate ${mine.gate} of ${digest} in ${environment} (approval ${mine.id}), so may not approve gate ${gate} too: consecutive gates need two people`,
      );
    }
    let previous: PreviousApproval | undefined;
    const before = previousGate(gate);
    if (before) {
      const candidates = existing
        .filter((a) => a.gate === before && Date.parse(a.expiresAt) > now.getTime())
        .sort((a, b) => b.approvedAt.localeCompare(a.approvedAt));
      let found: ApprovalRecord | undefined;
      for (const candidate of candidates) {
        if (await intact(candidate, verify)) {
          found = candidate;
          break;
        }
      }
      if (!found) {
        throw new ApprovalRefusalError(
          'out-of-order',
          `gate ${gate} of ${digest} in ${environment} needs a valid, unexpired ${before} approval first (gates go ${GATE_ORDER.join(' → ')}); run \`keywarden approvals verify --digest ${digest}\` to see the chain`,
        );
      }
      previous = { gate: before, approvalId: found.id, approver: found.approver };
    }
    const id = deps.newApprovalId();
    const approvedAt = now.toISOString();
    const expiresAt = new Date(now.getTime() + toMillis(approvers.validFor)).toISOString();
    const statement = canonicalJson(
      approvalStatement(digest, {
        approvalId: id,
        gate,
        environment,
        approver: caller,
        approvedAt,
        expiresAt,
        ...(previous ? { previous } : {}),
      }),
    );
    const { signature, keyId } = await deps.signer.sign(signedBytes(statement));
    record = {
      id,
      digest,
      gate,
      environment,
      approver: caller,
      approvedAt,
      expiresAt,
      statement,
      signature,
      keyId,
    };
    await deps.ledger.append(record);
  } catch (error) {
    return refused(deps, caller, subject, error);
  }
  const previous = statementOf(record)?.predicate.previous;
  await deps.audit.append({
    type: 'ci.approval.recorded',
    actor: who(caller),
    subject: record.digest,
    details: {
      approvalId: record.id,
      gate: record.gate,
      environment: record.environment,
      expiresAt: record.expiresAt,
      keyId: record.keyId,
      ...(previous ? { previousApprovalId: previous.approvalId } : {}),
    },
  });
  return record;
}

/** Why a gate does not let a job's grant issue. */
export type GateRefusalReason = 'no-approval' | 'expired' | 'bad-signature' | 'actor' | 'same-approver';

/** What {@link gateCheck} decides: the approval that lets the grant issue, or why none does. */
export type GateVerdict =
  | { ok: true; approval: ApprovalRecord }
  | { ok: false; reason: GateRefusalReason; message: string };

/**
 * Whether a job's request may pass `requirement` for the artifact `approvals` are of (the
 * ledger's approvals of the request's digest): one approval of the gate in the environment
 * that verifies, has not expired, was not given by the job's actor, and whose previous gate
 * (signed into it) was approved by someone else and verifies too. When none fits, the reason
 * is that of the most recent candidate (or `no-approval`), with a message naming it.
 * A job whose token names no actor is refused (`actor`): the rule cannot be checked.
 */
export async function gateCheck(
  approvals: readonly ApprovalRecord[],
  requirement: { gate: Gate; environment: string; digest?: string | undefined },
  options: {
    actor: string | undefined;
    now: Date;
    verify: (record: ApprovalRecord) => Promise<boolean>;
    directory?: Directory | undefined;
  },
): Promise<GateVerdict> {
  const { gate, environment } = requirement;
  const directory = options.directory ?? { people: [] };
  const candidates = approvals
    .filter((a) => a.gate === gate && a.environment === environment)
    .sort((a, b) => b.approvedAt.localeCompare(a.approvedAt));
  const digest = requirement.digest ?? approvals[0]?.digest ?? 'the digest';
  if (candidates.length === 0) {
    return {
      ok: false,
      reason: 'no-approval',
      message: `no ${gate} approval of ${digest} in ${environment} is recorded; an approver of the gate runs \`keywarden approve --digest ${digest} --gate ${gate} --environment ${environment}\``,
    };
  }
  let first: GateVerdict | undefined;
  for (const candidate of candidates) {
    const verdict = await judge(candidate);
    if (verdict.ok) return verdict;
    first ??= verdict;
  }
  return first as GateVerdict;

  async function judge(approval: ApprovalRecord): Promise<GateVerdict> {
    const refuse = (reason: GateRefusalReason, why: string): GateVerdict => ({
      ok: false,
      reason,
      message: `the ${gate} approval ${approval.id} of ${approval.digest} in ${environment} ${why}`,
    });
    if (!(await intact(approval, options.verify)))
      return refuse('bad-signature', 'does not verify (its signature or record was altered)');
    if (Date.parse(approval.expiresAt) <= options.now.getTime())
      return refuse('expired', `expired at ${approval.expiresAt}; approve the digest again`);
    if (options.actor === undefined)
      return refuse('actor', "cannot count: the job's token names no actor to tell the approver from");
    if (isJobActor(directory, approval.approver, options.actor))
      return refuse(
        'actor',
        `was given by ${who(approval.approver)}, the job's actor: someone else must approve`,
      );
    const previous = statementOf(approval)?.predicate.previous;
    if (previousGate(gate) !== undefined) {
      const linked = approvals.find((a) => a.id === previous?.approvalId);
      if (
        !previous ||
        !linked ||
        linked.gate !== previous.gate ||
        linked.environment !== environment ||
        !(await intact(linked, options.verify))
      )
        return refuse('bad-signature', `names no verifiable ${previousGate(gate)} approval before it`);
      if (samePerson(directory, linked.approver, approval.approver))
        return refuse(
          'same-approver',
          `was given by ${who(approval.approver)}, who also approved gate ${linked.gate}: consecutive gates need two people`,
        );
    }
    return { ok: true, approval };
  }
}

/** One approval as `keywarden approvals verify` reports it. */
export interface ApprovalCheck {
  id: string;
  gate: Gate;
  environment: string;
  approver: Principal;
  approvedAt: string;
  expiresAt: string;
  /** Past its expiry (not a break of the chain: it simply no longer counts). */
  expired: boolean;
  signatureValid: boolean;
  /** Empty when the approval holds every rule. */
  problems: string[];
}

/** The verdict over a digest's approvals: `valid`, `broken` (a problem in any), or `empty`. */
export interface ChainReport {
  digest: string;
  verdict: 'valid' | 'broken' | 'empty';
  approvals: ApprovalCheck[];
}

/**
 * Checks every approval of `digest`: its signature (through the signer), its record against
 * its signed statement, and the chain's rules: a `sign` approval names no previous gate, a
 * later one names an approval of the gate before it, of the same digest and environment,
 * given no later than itself and still valid then, by the approver it names, who is another
 * person.
 */
export async function verifyChain(
  deps: {
    ledger: Pick<ApprovalLedger, 'listFor'>;
    signer: Pick<ApprovalSigner, 'verify'>;
  } & Pick<ApprovalDeps, 'directory' | 'clock'>,
  digest: string,
): Promise<ChainReport> {
  const checked = parseInput(z.strictObject({ digest: DigestSchema }), { digest }, 'approvals verify');
  const approvals = await deps.ledger.listFor(checked.digest);
  const directory = await deps.directory();
  const now = deps.clock.now();
  const verify = approvalVerifier(deps.signer);
  const byId = new Map(approvals.map((a) => [a.id, a]));
  const reports: ApprovalCheck[] = [];
  for (const approval of approvals) {
    const problems: string[] = [];
    const signatureValid = await verify(approval);
    if (!signatureValid)
      problems.push(`the signature by key ${approval.keyId} does not verify the statement`);
    problems.push(...recordMismatches(approval));
    if (approval.digest !== checked.digest)
      problems.push(`it is filed under ${checked.digest} but approves ${approval.digest}`);
    const previous = statementOf(approval)?.predicate.previous;
    const before = previousGate(approval.gate);
    if (!before && previous)
      problems.push(`gate ${approval.gate} comes first, yet it names a previous approval`);
    if (before && !previous)
      problems.push(`gate ${approval.gate} needs a ${before} approval, and it names none`);
    if (before && previous) {
      const linked = byId.get(previous.approvalId);
      if (!linked) problems.push(`its previous approval ${previous.approvalId} is not in the ledger`);
      else {
        if (previous.gate !== before || linked.gate !== before)
          problems.push(`its previous approval ${linked.id} is of gate ${linked.gate}, not ${before}`);
        if (linked.environment !== approval.environment)
          problems.push(
            `its previous approval ${linked.id} is for ${linked.environment}, not ${approval.environment}`,
          );
        if (linked.approvedAt > approval.approvedAt)
          problems.push(`its previous approval ${linked.id} was given after it (${linked.approvedAt})`);
        else if (linked.expiresAt <= approval.approvedAt)
          problems.push(
            `its previous approval ${linked.id} had expired (${linked.expiresAt}) when it was given`,
          );
        if (canonicalJson(linked.approver) !== canonicalJson(previous.approver))
          problems.push(
            `its previous approval ${linked.id} was given by ${who(linked.approver)}, not ${who(previous.approver)} as it says`,
          );
        if (samePerson(directory, linked.approver, approval.approver))
          problems.push(
            `${who(approval.approver)} approved both gate ${linked.gate} and gate ${approval.gate}: consecutive gates need two people`,
          );
      }
    }
    reports.push({
      id: approval.id,
      gate: approval.gate,
      environment: approval.environment,
      approver: approval.approver,
      approvedAt: approval.approvedAt,
      expiresAt: approval.expiresAt,
      expired: Date.parse(approval.expiresAt) <= now.getTime(),
      signatureValid,
      problems,
    });
  }
  const verdict =
    reports.length === 0 ? 'empty' : reports.some((r) => r.problems.length > 0) ? 'broken' : 'valid';
  return { digest: checked.digest, verdict, approvals: reports };
}

/**
 * The exchange's gate (ci-exchange.ts `CiExchangeDeps.gate`) over the ledger and the signer:
 * {@link gateCheck} on the digest's approvals, with the directory as last synced.
 */
export const approvalGate =
  (deps: {
    ledger: Pick<ApprovalLedger, 'listFor'>;
    signer: Pick<ApprovalSigner, 'verify'>;
    directory: () => Promise<Directory>;
    clock: Clock;
  }) =>
  async (
    requirement: { gate: Gate; environment: string },
    digest: string,
    actor: string | undefined,
  ): Promise<{ ok: true; approvalId: string } | { ok: false; reason: string }> => {
    const verdict = await gateCheck(
      await deps.ledger.listFor(digest),
      { ...requirement, digest },
      {
        actor,
        now: deps.clock.now(),
        verify: approvalVerifier(deps.signer),
        directory: await deps.directory(),
      },
    );
    return verdict.ok
      ? { ok: true, approvalId: verdict.approval.id }
      : { ok: false, reason: verdict.message };
  };
