/**
 * Break-glass, as use cases over the grant lifecycle (./grant.ts): each loads the grant,
 * applies one transition, stores it with a conditional write on the revision it read,
 * and audits it. A refused attempt (self-approval, a non-approver, a stranger asking for
 * credentials…) is audited as `grant.refused` before the refusal reaches the caller.
 *
 * Expiry is guaranteed three times over: every credential carries the grant's end as its
 * own TTL; a one-time schedule calls {@link expire} at the end; and the sweeper
 * (./grant-sweep.ts `sweep`) ends anything overdue that the schedule missed.
 */
import { ConflictError, NotFoundError, ValidationError } from './errors.ts';
import {
  activateGrant,
  approveGrant,
  assertIncidentResponder,
  assertIssuable,
  assertMayRevoke,
  type BreakglassConfig,
  type BreakglassRole,
  credentialsDeadAt,
  denyGrant,
  expireGrant,
  type Grant,
  GrantDenyInputSchema,
  GrantRequestInputSchema,
  GrantReviewInputSchema,
  isOverdue,
  type Principal,
  parseInput,
  RefusalError,
  requestGrant,
  reviewGrant,
  revokeGrant,
} from './grant.ts';
import type {
  AuditLog,
  Clock,
  GrantExpiryScheduler,
  GrantIssuer,
  GrantStore,
  IssuedGrantCredential,
  StoredGrant,
} from './ports.ts';
import { quote } from './quote.ts';

export interface BreakglassDeps {
  grants: GrantStore;
  audit: AuditLog;
  clock: Clock;
  /** The roles and the people directory, as last synced from the inventory. */
  config: () => Promise<BreakglassConfig>;
  /** The issuer for a role's target type; throws when that provider is not configured. */
  issuer: (type: BreakglassRole['target']['type']) => GrantIssuer;
  scheduler: GrantExpiryScheduler;
  newGrantId: () => string;
}

/** How many times a transition is re-applied when a concurrent writer changed the grant first. */
const CONFLICT_ATTEMPTS = 5;

const who = (p: Principal) => `${p.kind}:${p.id}`;

/** Text from a caller clipped for an audit record: a refusal's subject or reason never makes the record large. */
const clip = (text: string, max: number): string =>
  text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;

/** A failure as the audit trail tells it: the error's name and message (keywarden's errors hold no secret), clipped. */
function failureOf(error: unknown): { error: string; reason: string; retryable: boolean } {
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  const retryable = (error as { retryable?: unknown } | undefined)?.retryable === true;
  return { error: name, reason: clip(message, 1_000), retryable };
}

/** A break-glass role by id, or a refusal naming the roles there are. */
export function roleById(config: BreakglassConfig, roleId: string): BreakglassRole {
  const role = config.roles.find((r) => r.id === roleId);
  if (!role) {
    const known = config.roles.map((r) => r.id).join(', ') || '(none: declare them under breakglass.roles)';
    throw new NotFoundError(`no break-glass role ${JSON.stringify(roleId)}; the roles are: ${known}`);
  }
  return role;
}

async function loadGrant(deps: BreakglassDeps, grantId: string): Promise<StoredGrant> {
  const grant = await deps.grants.getGrant(grantId);
  if (!grant) throw new NotFoundError(`no grant ${quote(grantId)}; \`keywarden breakglass list\` shows them`);
  return grant;
}

/** Records a refused attempt, then lets the refusal go on to the caller. */
async function refused(
  deps: Pick<BreakglassDeps, 'audit'>,
  action: string,
  principal: Principal | string,
  subject: string,
  error: unknown,
): Promise<never> {
  if (error instanceof RefusalError || error instanceof NotFoundError || error instanceof ValidationError) {
    await deps.audit.append({
      type: 'grant.refused',
      actor: clip(typeof principal === 'string' ? principal : who(principal), 2_100),
      subject: clip(subject, 200),
      details: { action, reason: clip(error.message, 1_000) },
    });
  }
  throw error;
}

/**
 * Whether `principal` may start an incident revocation campaign (grant.ts
 * `assertIncidentResponder`, over the inventory's `breakglass` section as last synced). Every
 * channel asks before it plans: the API's `POST /campaigns`, Slack `/revoke` and the CLI. A
 * refusal is audited (`grant.refused`, action `start-campaign`, subject the incident) before
 * it reaches the caller.
 *
 * @throws RefusalError when the principal is not an incident responder.
 */
export async function authorizeCampaignStart(
  deps: Pick<BreakglassDeps, 'config' | 'audit'>,
  principal: Principal,
  incident: string,
): Promise<void> {
  try {
    assertIncidentResponder(await deps.config(), principal);
  } catch (error) {
    await refused(deps, 'start-campaign', principal, incident, error);
  }
}

/**
 * Loads the grant, applies `transition`, and stores the result conditionally; on a lost
 * race it re-reads and re-applies, so two approvers at once both count.
 */
async function transition(
  deps: BreakglassDeps,
  grantId: string,
  apply: (grant: StoredGrant, config: BreakglassConfig, role: BreakglassRole) => Grant,
): Promise<{ before: StoredGrant; after: StoredGrant; role: BreakglassRole; config: BreakglassConfig }> {
  const config = await deps.config();
  for (let attempt = 1; ; attempt++) {
    const before = await loadGrant(deps, grantId);
    const role = roleById(config, before.roleId);
    const next = apply(before, config, role);
    try {
      const after = await deps.grants.putGrant(next, before.rev);
      return { before, after, role, config };
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= CONFLICT_ATTEMPTS) throw error;
    }
  }
}

/** A new request; the approvers are told by the caller (Slack message, CLI output). */
export async function request(
  deps: BreakglassDeps,
  requester: Principal,
  input: { roleId: string; duration: string; reason: string; incident?: string | undefined },
): Promise<StoredGrant> {
  const grantId = deps.newGrantId();
  try {
    // The one check of every channel's input (lengths, incident format) before anything is looked up.
    const checked = parseInput(GrantRequestInputSchema, input, 'break-glass request');
    const config = await deps.config();
    const role = roleById(config, checked.roleId);
    const grant = requestGrant({ grantId, role, requester, ...checked, now: deps.clock.now() });
    const stored = await deps.grants.putGrant(grant, undefined);
    await deps.audit.append({
      type: 'grant.requested',
      actor: who(requester),
      subject: grantId,
      details: {
        roleId: role.id,
        duration: grant.duration,
        reason: grant.reason,
        ...(grant.incident ? { incident: grant.incident } : {}),
      },
    });
    return stored;
  } catch (error) {
    return refused(deps, 'request', requester, `role:${input.roleId}`, error);
  }
}

/** One approval; the one that completes the count starts the window and schedules its end. */
export async function approve(
  deps: BreakglassDeps,
  approver: Principal,
  grantId: string,
): Promise<StoredGrant> {
  let result: Awaited<ReturnType<typeof transition>>;
  try {
    result = await transition(deps, grantId, (grant, config, role) =>
      approveGrant(grant, role, approver, deps.clock.now(), config),
    );
  } catch (error) {
    return refused(deps, 'approve', approver, grantId, error);
  }
  const { after, role } = result;
  let schedule = 'not needed yet';
  if (after.state === 'approved' && after.expiresAt) {
    // The sweeper ends the grant on time even if this schedule cannot be created.
    schedule = await deps.scheduler.scheduleExpiry(grantId, new Date(after.expiresAt)).then(
      () => 'scheduled',
      (error: unknown) => `failed (${(error as Error).name}); the sweeper ends the grant`,
    );
  }
  await deps.audit.append({
    type: 'grant.approved',
    actor: who(approver),
    subject: grantId,
    details: {
      roleId: role.id,
      approvals: after.approvals.length,
      required: role.approvalsRequired,
      state: after.state,
      ...(after.expiresAt ? { expiresAt: after.expiresAt, expirySchedule: schedule } : {}),
    },
  });
  return after;
}

export async function deny(
  deps: BreakglassDeps,
  approver: Principal,
  grantId: string,
  reason?: string,
): Promise<StoredGrant> {
  try {
    // Bounded before anything is read: an oversized reason is a 400 whatever the grant.
    parseInput(GrantDenyInputSchema, reason === undefined ? {} : { reason }, 'denial');
    const { after, role } = await transition(deps, grantId, (grant, config, role) =>
      denyGrant(grant, role, approver, deps.clock.now(), reason, config),
    );
    await deps.audit.append({
      type: 'grant.denied',
      actor: who(approver),
      subject: grantId,
      details: { roleId: role.id, ...(after.denialReason ? { reason: after.denialReason } : {}) },
    });
    return after;
  } catch (error) {
    return refused(deps, 'deny', approver, grantId, error);
  }
}

/**
 * Issues a credential to the requester of an approved grant, ending at the grant's end.
 * The credential goes back to the caller only; the grant and the audit trail record its
 * handle. If the grant cannot be recorded, the credential is revoked before answering.
 */
export async function issueCredentials(
  deps: BreakglassDeps,
  principal: Principal,
  grantId: string,
): Promise<{ grant: StoredGrant; credential: IssuedGrantCredential }> {
  const config = await deps.config();
  let grant: StoredGrant;
  let role: BreakglassRole;
  try {
    grant = await loadGrant(deps, grantId);
    role = roleById(config, grant.roleId);
    assertIssuable(grant, principal, deps.clock.now(), config);
  } catch (error) {
    return refused(deps, 'credentials', principal, grantId, error);
  }
  const issuer = deps.issuer(role.target.type);
  const credential = await issuer.issue({
    grantId,
    target: role.target,
    expiresAt: new Date(grant.expiresAt as string),
    now: deps.clock.now(),
  });
  const record = { type: credential.type, handle: credential.handle, expiresAt: credential.expiresAt };
  try {
    const { after } = await transition(deps, grantId, (current) => {
      assertIssuable(current, principal, deps.clock.now(), config);
      return activateGrant(current, record, deps.clock.now());
    });
    await deps.audit.append({
      type: 'grant.activated',
      actor: who(principal),
      subject: grantId,
      details: { roleId: role.id, credential: record },
    });
    return { grant: after, credential };
  } catch (error) {
    // An unrecorded credential must not stay alive: nobody would know to end it early. A Vault
    // token is revoked by its accessor; an AWS session never left keywarden and ends at the
    // grant's end by its session policy (a deny on the grant's SourceIdentity would also end
    // the sessions the grant legitimately holds).
    if (credential.type === 'vault-wrapped-token') {
      await issuer.revoke({ grantId, target: role.target, handles: [credential.handle] }).catch(() => {});
    }
    return refused(deps, 'credentials', principal, grantId, error);
  }
}

/**
 * Ends a grant early; its requester or one of the role's approvers. Other grants of the role go on.
 *
 * Nothing can block it (principle 2, and the hardening issue #11): the credentials are ended
 * first, before any write, so a failing store cannot keep them alive; then the end is recorded
 * with one small conditional write (the grant item is bounded: ./grant.ts `TEXT_LIMITS`,
 * `MAX_CREDENTIAL_FETCHES`). Every outcome is audited: `grant.revoked`, `grant.refused`, or
 * `grant.revoke-failed` with the reason. A grant recorded as revoked whose credentials could
 * not all be ended (IAM or Vault failed) has no `credentialsEndedAt`: the sweeper, or the same
 * revoke again, finishes it.
 *
 * @returns the grant as stored; `credentialsEndedAt` absent means the ending is still being retried.
 */
export async function revoke(deps: BreakglassDeps, by: Principal, grantId: string): Promise<StoredGrant> {
  let grant: StoredGrant;
  let role: BreakglassRole;
  try {
    const config = await deps.config();
    grant = await loadGrant(deps, grantId);
    role = roleById(config, grant.roleId);
    assertMayRevoke(grant, role, by, config);
    // Revoked before, its credentials not all ended: this revoke finishes the ending.
    if (grant.state === 'revoked' && !grant.credentialsEndedAt) {
      return await finishEnding(deps, grant, role, 'revoked', { actor: who(by) }).catch(() => grant);
    }
    revokeGrant(grant, role, by, deps.clock.now(), config);
  } catch (error) {
    return refused(deps, 'revoke', by, grantId, error);
  }

  // 1. End every credential the grant handed out (for AWS, a deny on its SourceIdentity).
  const endedFirst = grant.credentials.map((c) => c.handle);
  const credentialsEnded = await endIssued(deps, grant, role, 'revoked').then(
    () => true,
    async (error: unknown) => {
      await auditEndFailure(deps, who(by), grant, 'end-credentials', error);
      return false;
    },
  );

  // 2. Record the end: one small conditional write; from here no credential is issued for it.
  let after: StoredGrant;
  try {
    ({ after } = await transition(deps, grantId, (current, config, currentRole) =>
      revokeGrant(current, currentRole, by, deps.clock.now(), config),
    ));
  } catch (error) {
    if (!(error instanceof RefusalError)) await auditEndFailure(deps, who(by), grant, 'record', error);
    // A refusal here: someone ended the grant between our read and write; that ending finishes it.
    return refused(deps, 'revoke', by, grantId, error);
  }
  await deps.audit.append({
    type: 'grant.revoked',
    actor: who(by),
    subject: grantId,
    details: {
      roleId: role.id,
      handles: after.credentials.map((c) => c.handle),
      credentialsEnded,
    },
  });
  if (!credentialsEnded) return after;

  // 3. Credentials issued between the read and the write are ended too, then the ending is recorded.
  return finishEnding(deps, after, role, 'revoked', {
    actor: who(by),
    late: false,
    alreadyEnded: { handles: new Set(endedFirst), denied: true },
  }).catch(async () => (await deps.grants.getGrant(grantId)) ?? after);
}

/** Audits a failed ending (`grant.revoke-failed`): which step, the error's name and message; never a secret. */
async function auditEndFailure(
  deps: BreakglassDeps,
  actor: string,
  grant: Grant,
  step: 'end-credentials' | 'record' | 'finish',
  error: unknown,
): Promise<void> {
  await deps.audit
    .append({
      type: 'grant.revoke-failed',
      actor,
      subject: grant.grantId,
      details: {
        roleId: grant.roleId,
        state: grant.state,
        step,
        ...failureOf(error),
        next:
          step === 'record'
            ? 'the grant is not recorded as ended; revoke it again'
            : 'the sweeper (or revoking again) retries until every credential is ended',
      },
    })
    // The audit trail failing too must not hide the first failure from the caller.
    .catch(() => {});
}

/** How {@link finishEnding} was called: by whom, whether after a failure, and what was ended moments ago. */
interface FinishOptions {
  /** Who finishes, for the audit trail; the sweeper unless told. */
  actor?: string;
  /** Whether an earlier ending failed (a repeated revoke, the sweeper): its success is audited then. */
  late?: boolean;
  /** What the revoke ended just before recording the end: these handles, and the AWS deny. */
  alreadyEnded?: { handles: ReadonlySet<string>; denied: boolean };
}

/**
 * Ends the credentials of an ended grant and records that they are (`credentialsEndedAt`), so
 * the sweeper retries a failure. A failure is audited (`grant.revoke-failed`) and thrown; a
 * late success is audited too (`grant.credentials-ended`).
 */
async function finishEnding(
  deps: BreakglassDeps,
  grant: StoredGrant,
  role: BreakglassRole,
  how: 'revoked' | 'expired',
  options: FinishOptions = {},
): Promise<StoredGrant> {
  const { actor = 'sweeper:grant-expiry', late = true, alreadyEnded } = options;
  try {
    const rest = alreadyEnded
      ? { ...grant, credentials: grant.credentials.filter((c) => !alreadyEnded.handles.has(c.handle)) }
      : grant;
    await endIssued(deps, rest, role, how, alreadyEnded?.denied ?? false);
    // The one-time schedule has nothing left to do; a failure to delete it is retried with the rest.
    if (how === 'revoked') await deps.scheduler.cancelExpiry(grant.grantId);
    const { after } = await transition(deps, grant.grantId, (current) => ({
      ...current,
      credentialsEndedAt: deps.clock.now().toISOString(),
    }));
    if (late) {
      await deps.audit.append({
        type: 'grant.credentials-ended',
        actor,
        subject: grant.grantId,
        details: { roleId: role.id, state: after.state, handles: after.credentials.map((c) => c.handle) },
      });
    }
    return after;
  } catch (error) {
    await auditEndFailure(deps, actor, grant, 'finish', error);
    throw error;
  }
}

/**
 * Ends what a grant issued. Early (`revoked`): every credential, and for AWS a deny on the
 * grant's SourceIdentity even before a session exists. On time (`expired`): the credentials
 * ended by themselves; Vault tokens are revoked too (belt and braces), while AWS sessions need
 * nothing (their session policy denies everything after the end), which keeps the role's
 * inline policies, limited to 10 KB in all, for early revocations. `denied` says the AWS deny
 * is already on the role (a second pass after the revoke's first).
 */
async function endIssued(
  deps: BreakglassDeps,
  grant: Grant,
  role: BreakglassRole,
  how: 'revoked' | 'expired',
  denied = false,
): Promise<void> {
  const handles = grant.credentials.map((c) => c.handle);
  const aws = role.target.type === 'aws-role';
  const needed = aws ? how === 'revoked' && !denied : handles.length > 0;
  if (needed) {
    await deps.issuer(role.target.type).revoke({ grantId: grant.grantId, target: role.target, handles });
  }
}

export type ExpiryOutcome = 'expired' | 'not-due' | 'already-ended';

/**
 * Ends a grant that reached its end: called by its one-time schedule and by the sweeper.
 * Its credentials end by themselves at that time; revoking them too is belt and braces.
 */
export async function expire(
  deps: BreakglassDeps,
  grantId: string,
  by: 'schedule' | 'sweeper',
): Promise<ExpiryOutcome> {
  const grant = await deps.grants.getGrant(grantId);
  if (!grant) throw new NotFoundError(`no grant ${JSON.stringify(grantId)} to expire`);
  if (grant.state !== 'approved' && grant.state !== 'active') return 'already-ended';
  if (!isOverdue(grant, deps.clock.now())) return 'not-due';
  let result: Awaited<ReturnType<typeof transition>>;
  try {
    result = await transition(deps, grantId, (current) => expireGrant(current, deps.clock.now(), by));
  } catch (error) {
    // Someone else (the other guarantee, or a revoke) ended it between our read and write.
    if (error instanceof RefusalError) return 'already-ended';
    throw error;
  }
  const { after, role } = result;
  await deps.audit.append({
    type: 'grant.expired',
    actor: `${by}:grant-expiry`,
    subject: grantId,
    details: {
      roleId: role.id,
      expiresAt: after.expiresAt,
      endedAt: after.endedAt,
      handles: after.credentials.map((c) => c.handle),
    },
  });
  await finishEnding(deps, after, role, 'expired', { actor: `${by}:grant-expiry`, late: false });
  return 'expired';
}

/**
 * Removes the deny policy of a grant revoked early once none of its sessions can be alive
 * (the policies would otherwise fill the role's 10 KB of inline policies), and records it
 * (`releasedAt`). Called by the sweeper (grant-sweep.ts) for the grants due. Returns whether
 * it released the grant now.
 */
export async function release(
  deps: BreakglassDeps,
  grant: StoredGrant,
  role: BreakglassRole,
  now: Date,
): Promise<boolean> {
  const deadAt = credentialsDeadAt(grant);
  if (grant.state !== 'revoked' || grant.releasedAt || !grant.credentialsEndedAt || !deadAt) return false;
  if (deadAt.getTime() > now.getTime()) return false;
  const issuer = deps.issuer(role.target.type);
  if (issuer.release) await issuer.release({ grantId: grant.grantId, target: role.target });
  await transition(deps, grant.grantId, (current) => ({ ...current, releasedAt: now.toISOString() }));
  return true;
}

/**
 * Finishes the ending of an ended grant whose credentials could not all be ended at the time
 * (IAM or Vault failed): the sweeper (grant-sweep.ts) calls it a minute after the end.
 */
export async function finishHalfWay(
  deps: BreakglassDeps,
  grant: StoredGrant,
  role: BreakglassRole,
): Promise<StoredGrant> {
  return finishEnding(deps, grant, role, grant.state === 'revoked' ? 'revoked' : 'expired');
}

/** The review after the grant ended, by someone other than the requester. */
export async function review(
  deps: BreakglassDeps,
  reviewer: Principal,
  grantId: string,
  notes: string,
): Promise<StoredGrant> {
  try {
    parseInput(GrantReviewInputSchema, { notes }, 'review');
    const { after } = await transition(deps, grantId, (grant, config, role) =>
      reviewGrant(grant, role, reviewer, notes, deps.clock.now(), config),
    );
    await deps.audit.append({
      type: 'grant.reviewed',
      actor: who(reviewer),
      subject: grantId,
      details: { notes: after.review?.notes },
    });
    return after;
  } catch (error) {
    return refused(deps, 'review', reviewer, grantId, error);
  }
}
