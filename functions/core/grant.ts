/**
 * Break-glass grants: temporary elevated access, requested by one principal, approved
 * by others, ending by itself. The lifecycle is a small state machine:
 *
 *   requested ──approve×N──▶ approved ──activate──▶ active ──▶ expired | revoked
 *        └──────deny──────▶ denied
 *
 * Every transition is a pure function that returns the next grant or throws a
 * RefusalError saying why; the caller audits both.
 */
import * as z from 'zod';
import { DurationSchema, toMillis } from './duration.ts';
import { KeywardenError, ValidationError } from './errors.ts';
import { IncidentSchema } from './incident.ts';
import { onFirstUse } from './on-first-use.ts';
import { quote } from './quote.ts';

/**
 * The most a grant keeps of what people type, in characters (UTF-16 code units, so at
 * most three bytes each in DynamoDB): with every field at its limit and every credential
 * fetched, a grant item stays under 40 KB, a tenth of DynamoDB's 400 KB item limit.
 */
export const TEXT_LIMITS = {
  /** Why the access is asked for. */
  reason: 2_000,
  /** Why a request was denied. */
  denialReason: 1_000,
  /** The after-the-fact review. */
  reviewNotes: 4_000,
  /** A principal's display name (a Slack user name). */
  principalName: 256,
  /** A principal id: an IAM ARN is at most 2,048 characters. */
  principalId: 2_048,
} as const;

/**
 * How many credentials one grant hands out at most. A 12-hour AWS grant needs one session
 * an hour (STS limits a chained session to one hour), so twice that leaves room for a
 * lost terminal or two; beyond it the requester asks for a new grant. The grant keeps the
 * handle of every credential it issued, so the cap is what bounds its item, and an early
 * revoke always knows every credential to end.
 */
export const MAX_CREDENTIAL_FETCHES = 24;

/** Free text of at most `max` characters; the message names the limit and the length received. */
const boundedText = (max: number) =>
  z.string({ error: 'expected text' }).max(max, {
    error: (issue) =>
      `expected at most ${max} characters, got ${(issue.input as string).length}; shorten it (keep the details in the incident ticket)`,
  });

/** A break-glass role id: lowercase letters, digits, `.`, `_` or `-`, at most 64. */
export const RoleIdSchema = onFirstUse(() =>
  z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, {
    error: (issue) =>
      `expected a role id of lowercase letters, digits, '.', '_' or '-', got ${quote(issue.input)}`,
  }),
);

/**
 * A break-glass request as every channel sends it (API body, CLI options, Slack
 * `/breakglass`), checked by the one schema: lengths bounded, the incident in the incident
 * format (never blank). The duration's form and the role's rules are checked against the
 * role afterwards ({@link requestGrant}).
 */
export const GrantRequestInputSchema = onFirstUse(() =>
  z.strictObject({
    roleId: RoleIdSchema,
    duration: z
      .string()
      .min(1, { error: 'expected a duration such as 30m or 2h' })
      .max(16, {
        error: (issue) => `expected a duration such as 30m or 2h, got ${quote(issue.input)}`,
      }),
    reason: boundedText(TEXT_LIMITS.reason),
    incident: IncidentSchema.optional(),
  }),
);
export type GrantRequestInput = z.infer<typeof GrantRequestInputSchema>;

/** A denial's optional reason, on every channel. */
export const GrantDenyInputSchema = onFirstUse(() =>
  z.strictObject({
    reason: boundedText(TEXT_LIMITS.denialReason).optional(),
  }),
);

/** A review's notes, on every channel. */
export const GrantReviewInputSchema = onFirstUse(() =>
  z.strictObject({ notes: boundedText(TEXT_LIMITS.reviewNotes) }),
);

/**
 * Checks `value` against one of the input schemas above.
 *
 * @throws ValidationError naming each bad field and what it expected, e.g.
 *   `break-glass request: reason: expected at most 2000 characters, got 400000; …`.
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`);
  throw new ValidationError(`${what}: ${issues.join('; ')}`);
}

/** Who acts: an AWS principal (SigV4), a Slack user, or a local development user. */
export const PrincipalSchema = onFirstUse(() =>
  z.object({
    kind: z.enum(['aws', 'slack', 'local']),
    /** An IAM ARN, a Slack user id (U…), or a local user name. */
    id: z.string().min(1).max(TEXT_LIMITS.principalId),
    /** A human-readable name for reports, when known. */
    name: boundedText(TEXT_LIMITS.principalName).optional(),
  }),
);
export type Principal = z.infer<typeof PrincipalSchema>;

/** What a break-glass role grants: an AWS role to assume, or a set of Vault policies. */
export const BreakglassTargetSchema = onFirstUse(() =>
  z.discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('aws-role'),
      roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, {
        error: (issue) => `expected an IAM role ARN, got ${JSON.stringify(issue.input)}`,
      }),
    }),
    z.strictObject({ type: z.literal('vault-policies'), policies: z.array(z.string().min(1)).min(1) }),
  ]),
);
export type BreakglassTarget = z.infer<typeof BreakglassTargetSchema>;

/**
 * Narrows a target to the type an issuer serves: a target routed to the wrong issuer is a
 * ValidationError naming the issuer, what it was doing, and the type it got.
 */
export function targetOfType<T extends BreakglassTarget['type']>(
  target: BreakglassTarget,
  type: T,
  context: { issuer: string; doing: string },
): Extract<BreakglassTarget, { type: T }> {
  if (target.type !== type) {
    throw new ValidationError(
      `${context.issuer}: expected a target of type ${type} while ${context.doing}, got a ${target.type} target; route it to the issuer of that type`,
    );
  }
  return target as Extract<BreakglassTarget, { type: T }>;
}

/** A break-glass role as declared in the inventory's `breakglass.roles`. */
export const BreakglassRoleSchema = onFirstUse(() =>
  z
    .strictObject({
      id: RoleIdSchema,
      description: z.string().min(1),
      target: BreakglassTargetSchema,
      maxDuration: DurationSchema,
      approvers: z
        .strictObject({
          /** IAM principal ARNs allowed to approve; `*` matches any run of characters. */
          awsPrincipals: z.array(z.string().min(1)).default([]),
          /** Slack user ids allowed to approve. */
          slackUsers: z
            .array(
              z.string().regex(/^[UW][A-Z0-9]+$/, { error: 'expected a Slack user id such as U024BE7LH' }),
            )
            .default([]),
          /** Local development users (the local runtime only). */
          localUsers: z.array(z.string().min(1)).default([]),
        })
        .refine((a) => a.awsPrincipals.length + a.slackUsers.length + a.localUsers.length > 0, {
          error: 'expected at least one approver (awsPrincipals, slackUsers or localUsers)',
        }),
      approvalsRequired: z.int().min(1).max(5).default(1),
      requireIncident: z.boolean().default(true),
    })
    .superRefine((role, ctx) => {
      if (toMillis(role.maxDuration) > 12 * 3_600_000) {
        ctx.addIssue({
          code: 'custom',
          path: ['maxDuration'],
          message: `expected a maxDuration of at most 12h (break-glass is for emergencies), got ${role.maxDuration}`,
        });
      }
    }),
);
export type BreakglassRole = z.infer<typeof BreakglassRoleSchema>;

/**
 * One human and every principal they act as. Without it, someone could request from
 * Slack and approve from the CLI: the directory makes both the same person, so the
 * requester-is-not-approver rule holds across channels.
 */
export const PersonSchema = onFirstUse(() =>
  z.strictObject({
    name: z.string().min(1),
    /** IAM principal ARNs (`*` matches any run of characters), e.g. their assumed-role sessions. */
    awsPrincipals: z.array(z.string().min(1)).default([]),
    slackUsers: z
      .array(z.string().regex(/^[UW][A-Z0-9]+$/, { error: 'expected a Slack user id such as U024BE7LH' }))
      .default([]),
    localUsers: z.array(z.string().min(1)).default([]),
    /**
     * Their logins on CI platforms (GitHub `actor`, GitLab `user_login`): an artifact approval by
     * them never counts for a job they started (ci-approval.ts).
     */
    ciUsers: z.array(z.string().min(1)).optional(),
  }),
);
export type Person = z.infer<typeof PersonSchema>;

/** The `breakglass` section of the inventory: the roles, and who is who. */
export const BreakglassConfigSchema = onFirstUse(() =>
  z.strictObject({
    roles: z.array(BreakglassRoleSchema).default([]),
    people: z.array(PersonSchema).default([]),
    /**
     * IAM roles whose session names are pinned to the person who assumes them (a trust
     * policy with `sts:RoleSessionName` = `${aws:username}`, say), so `assumed-role/R/alice`
     * is alice. IAM Identity Center roles (`AWSReservedSSO_*`) always are. For any other
     * role, every session counts as one principal: whoever can assume it.
     */
    pinnedSessionRoles: z.array(z.string().min(1)).default([]),
    /**
     * Who may start an incident revocation campaign, on every channel (API `POST /campaigns`,
     * the CLI, Slack `/revoke`): principals by channel, and people of the directory by name
     * (every principal of theirs counts). When absent, the approvers of the break-glass roles may.
     */
    incidentResponders: z
      .strictObject({
        /** IAM principal ARNs (`*` matches any run of characters within one ARN segment). */
        awsPrincipals: z.array(z.string().min(1)).default([]),
        slackUsers: z.array(z.string().min(1)).default([]),
        /** Local development users (the local stack only). */
        localUsers: z.array(z.string().min(1)).default([]),
        /** Names of `breakglass.people`: each of their principals is a responder. */
        people: z.array(z.string().min(1)).default([]),
      })
      .optional(),
  }),
);
export type BreakglassConfig = z.infer<typeof BreakglassConfigSchema>;

export const GrantStateSchema = z.enum(['requested', 'approved', 'active', 'expired', 'revoked', 'denied']);
export type GrantState = z.infer<typeof GrantStateSchema>;

export const GrantSchema = onFirstUse(() =>
  z.object({
    grantId: z.string(),
    roleId: z.string(),
    requester: PrincipalSchema,
    reason: z.string().min(1),
    incident: z.string().optional(),
    /** Asked-for duration, at most the role's maxDuration. */
    duration: DurationSchema,
    state: GrantStateSchema,
    requestedAt: z.iso.datetime(),
    approvals: z.array(z.object({ approver: PrincipalSchema, at: z.iso.datetime() })),
    deniedBy: PrincipalSchema.optional(),
    denialReason: z.string().optional(),
    /** When enough approvals arrived; the grant's window runs from here. */
    approvedAt: z.iso.datetime().optional(),
    /** The end of the grant's window, fixed at approval: every credential issued for it ends here. */
    expiresAt: z.iso.datetime().optional(),
    /** When the first credential was issued. */
    activatedAt: z.iso.datetime().optional(),
    endedAt: z.iso.datetime().optional(),
    /** Who ended it early, or what ended it on time (`schedule` / `sweeper`). */
    revokedBy: PrincipalSchema.optional(),
    endedBy: z.enum(['schedule', 'sweeper', 'principal']).optional(),
    /** The credentials issued for the grant, by handle (STS session name / Vault token accessor); never a value. */
    credentials: z
      .array(
        z.object({
          type: z.enum(['aws-session', 'vault-wrapped-token']),
          handle: z.string(),
          issuedAt: z.iso.datetime(),
          expiresAt: z.iso.datetime(),
        }),
      )
      .default([]),
    /** When every credential of the ended grant was ended (the sweeper retries until it is set). */
    credentialsEndedAt: z.iso.datetime().optional(),
    /** When what the early revocation left behind (an AWS deny policy) was removed. */
    releasedAt: z.iso.datetime().optional(),
    review: z
      .object({
        dueAt: z.iso.datetime(),
        reviewer: PrincipalSchema.optional(),
        notes: z.string().optional(),
        reviewedAt: z.iso.datetime().optional(),
      })
      .optional(),
  }),
);
export type Grant = z.infer<typeof GrantSchema>;

/** An action a principal may not take on a grant; the message says why. */
export class RefusalError extends KeywardenError {
  override readonly name: string = 'RefusalError';
}

/**
 * The grant already handed out {@link MAX_CREDENTIAL_FETCHES} credentials. A refusal like
 * any other (403 `refused`, audited as `grant.refused`); its own class so a caller can tell.
 */
export class FetchLimitError extends RefusalError {
  override readonly name: string = 'FetchLimitError';
}

/** How long after a grant ends its review is due. */
export const REVIEW_WINDOW_MS = 2 * 86_400_000;

const describe = (p: Principal) => `${p.kind}:${p.id}`;

/** Whether `principal` is one of the principals listed (AWS ARN patterns, `*` within one ARN segment). */
export function listed(
  lists: { awsPrincipals: readonly string[]; slackUsers: readonly string[]; localUsers: readonly string[] },
  principal: Principal,
): boolean {
  if (principal.kind === 'slack') return lists.slackUsers.includes(principal.id);
  if (principal.kind === 'local') return lists.localUsers.includes(principal.id);
  return lists.awsPrincipals.some((pattern) => globMatch(pattern, principal.id));
}

/** Whether `principal` is one of the role's approvers. */
export const isApprover = (role: BreakglassRole, principal: Principal): boolean =>
  listed(role.approvers, principal);

/** The incident responders a configuration declares: `incidentResponders`, else the roles' approvers. */
export function incidentResponders(config: BreakglassConfig): {
  awsPrincipals: string[];
  slackUsers: string[];
  localUsers: string[];
  people: string[];
} {
  if (config.incidentResponders) return config.incidentResponders;
  const all = (pick: (role: BreakglassRole) => readonly string[]) => [...new Set(config.roles.flatMap(pick))];
  return {
    awsPrincipals: all((r) => r.approvers.awsPrincipals),
    slackUsers: all((r) => r.approvers.slackUsers),
    localUsers: all((r) => r.approvers.localUsers),
    people: [],
  };
}

/**
 * Whether `principal` may start an incident revocation campaign: listed among the incident
 * responders for its channel, or one of the responder people of the directory (as far as AWS
 * vouches for an assumed-role session). The one check every channel (API, CLI, Slack) makes.
 *
 * @throws RefusalError saying who was refused and where the responders are declared.
 */
export function assertIncidentResponder(config: BreakglassConfig, principal: Principal): void {
  const responders = incidentResponders(config);
  if (listed(responders, principal)) return;
  const person = personOf(config, principal);
  if (responders.people.some((name) => person === `person:${name}`)) return;
  const where = config.incidentResponders
    ? 'breakglass.incidentResponders'
    : 'breakglass.incidentResponders (absent, so the approvers of breakglass.roles)';
  throw new RefusalError(
    `${describe(principal)} may not start a revocation campaign: campaigns are started by incident responders only, declared in the inventory under ${where}; ask a responder, or have ${describe(principal)} added there`,
  );
}

/** Who is who: the people directory, and the roles whose session names AWS vouches for. */
export interface Directory {
  people: readonly Person[];
  /** Roles whose session name is pinned to the person (besides IAM Identity Center's `AWSReservedSSO_*`). */
  pinnedSessionRoles?: readonly string[] | undefined;
}

const NO_DIRECTORY: Directory = { people: [] };
const ASSUMED_ROLE = /^(arn:aws[a-z-]*:sts::\d{12}:assumed-role\/([^/]+))\/(.+)$/;

/**
 * The principal as far as AWS vouches for it. The session name of an assumed role is
 * chosen by whoever assumes it, so `…:assumed-role/oncall/alice` says only "someone in
 * oncall", unless the role pins session names to people (Identity Center does, with the
 * user name). Comparing by what is vouched for means a second session of one role is
 * never a second approver, nor someone else than the requester.
 */
function vouchedKey(directory: Directory, principal: Principal): string {
  if (principal.kind !== 'aws') return describe(principal);
  const match = ASSUMED_ROLE.exec(principal.id);
  if (!match) return describe(principal);
  const roleName = match[2] ?? '';
  const pinned = roleName.startsWith('AWSReservedSSO_') || directory.pinnedSessionRoles?.includes(roleName);
  return pinned ? describe(principal) : `aws:${match[1]}/*`;
}

/** The person a principal belongs to in the directory, or what AWS vouches for when unlisted. */
export function personOf(directory: Directory, principal: Principal): string {
  const key = vouchedKey(directory, principal);
  // An unpinned session name proves nothing: such a principal is never matched to a person.
  if (principal.kind === 'aws' && key !== describe(principal)) return key;
  const person = directory.people.find((p) => listed(p, principal));
  return person ? `person:${person.name}` : key;
}

/** Whether two principals are the same human (or cannot be told apart). */
export const samePerson = (directory: Directory, a: Principal, b: Principal): boolean =>
  personOf(directory, a) === personOf(directory, b);

/**
 * With a people directory, everyone who approves or reviews, and the requester, must be in
 * it: an unlisted principal could be the requester under another channel's name.
 */
function assertListed(directory: Directory, principal: Principal, doing: string): void {
  if (directory.people.length === 0) return;
  if (!personOf(directory, principal).startsWith('person:')) {
    throw new RefusalError(
      `${describe(principal)} is not in breakglass.people (or is an assumed-role session whose name AWS does not vouch for), so keywarden cannot tell them from the requester; add them to the directory to ${doing}`,
    );
  }
}

function globMatch(pattern: string, value: string): boolean {
  const regex = new RegExp(
    `^${pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/:]*')}$`,
  );
  return regex.test(value);
}

/**
 * Whether a principal (as the caller's authentication names it) fits in a grant: ids and
 * display names are bounded like every other field.
 *
 * @throws ValidationError naming the field and the limit.
 */
export function assertPrincipalFits(principal: Principal, role: string): void {
  parseInput(PrincipalSchema, principal, role);
}

/** A new grant request, checked against its role: the input's bounds and formats, then the role's rules. */
export function requestGrant(input: {
  grantId: string;
  role: BreakglassRole;
  requester: Principal;
  reason: string;
  incident?: string | undefined;
  duration: string;
  now: Date;
}): Grant {
  const { role } = input;
  parseInput(
    GrantRequestInputSchema,
    {
      roleId: role.id,
      duration: input.duration,
      reason: input.reason,
      ...(input.incident === undefined ? {} : { incident: input.incident }),
    },
    'break-glass request',
  );
  assertPrincipalFits(input.requester, 'requester');
  if (!input.reason.trim()) throw new RefusalError('expected a reason for the break-glass request, got none');
  if (role.requireIncident && input.incident === undefined) {
    throw new RefusalError(`role ${role.id} requires an incident reference (--incident INC-42)`);
  }
  const duration = DurationSchema.safeParse(input.duration);
  if (!duration.success)
    throw new RefusalError(`expected a duration such as 30m or 2h, got ${quote(input.duration)}`);
  if (toMillis(input.duration) > toMillis(role.maxDuration)) {
    throw new RefusalError(`role ${role.id} allows at most ${role.maxDuration}, got ${input.duration}`);
  }
  return {
    grantId: input.grantId,
    roleId: role.id,
    requester: input.requester,
    reason: input.reason.trim(),
    ...(input.incident === undefined ? {} : { incident: input.incident }),
    duration: input.duration,
    state: 'requested',
    requestedAt: input.now.toISOString(),
    approvals: [],
    credentials: [],
  };
}

/**
 * One approval. The requester can never approve their own grant, only the role's
 * approvers count, and each approver counts once; enough approvals make it approved.
 */
export function approveGrant(
  grant: Grant,
  role: BreakglassRole,
  approver: Principal,
  now: Date,
  directory: Directory = NO_DIRECTORY,
): Grant {
  if (grant.state !== 'requested')
    throw new RefusalError(`grant ${grant.grantId} is ${grant.state}, not awaiting approval`);
  if (samePerson(directory, grant.requester, approver)) {
    throw new RefusalError(
      `${describe(approver)} requested grant ${grant.grantId} and cannot approve it: someone else must`,
    );
  }
  if (!isApprover(role, approver)) {
    throw new RefusalError(`${describe(approver)} is not an approver of role ${role.id}`);
  }
  assertPrincipalFits(approver, 'approver');
  assertListed(directory, approver, 'approve');
  assertListed(directory, grant.requester, 'approve requests of theirs');
  if (grant.approvals.some((a) => samePerson(directory, a.approver, approver))) {
    throw new RefusalError(
      `${describe(approver)} already approved grant ${grant.grantId}; another approver is needed`,
    );
  }
  const approvals = [...grant.approvals, { approver, at: now.toISOString() }];
  if (approvals.length < role.approvalsRequired) return { ...grant, approvals };
  return {
    ...grant,
    approvals,
    state: 'approved',
    approvedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + toMillis(grant.duration)).toISOString(),
  };
}

/**
 * A denial ends the request. Like approving, it is for the role's approvers other than the
 * requester, on every channel and under every name of theirs (the directory): the
 * requester can simply let their request lapse.
 */
export function denyGrant(
  grant: Grant,
  role: BreakglassRole,
  approver: Principal,
  now: Date,
  reason?: string,
  directory: Directory = NO_DIRECTORY,
): Grant {
  parseInput(GrantDenyInputSchema, reason === undefined ? {} : { reason }, 'denial');
  if (grant.state !== 'requested')
    throw new RefusalError(`grant ${grant.grantId} is ${grant.state}, not awaiting approval`);
  if (samePerson(directory, grant.requester, approver)) {
    throw new RefusalError(
      `${describe(approver)} requested grant ${grant.grantId} and cannot deny it: an approver decides, or the request lapses`,
    );
  }
  if (!isApprover(role, approver))
    throw new RefusalError(`${describe(approver)} is not an approver of role ${role.id}`);
  assertPrincipalFits(approver, 'approver');
  assertListed(directory, approver, 'deny');
  assertListed(directory, grant.requester, 'deny requests of theirs');
  return {
    ...grant,
    state: 'denied',
    deniedBy: approver,
    ...(reason?.trim() ? { denialReason: reason.trim() } : {}),
    endedAt: now.toISOString(),
  };
}

/** A credential issued for the grant, recorded by handle; the first one makes the grant active. */
export interface IssuedCredentialRecord {
  type: 'aws-session' | 'vault-wrapped-token';
  handle: string;
  expiresAt: string;
}

/**
 * Whether the requester may be issued a credential now: only the requester, only while
 * the approved window runs. Called before issuing, so nothing is issued that would be refused.
 */
export function assertIssuable(
  grant: Grant,
  principal: Principal,
  now: Date,
  directory: Directory = NO_DIRECTORY,
): void {
  if (!samePerson(directory, grant.requester, principal)) {
    throw new RefusalError(
      `${describe(principal)} did not request grant ${grant.grantId}: only its requester receives its credentials`,
    );
  }
  if (grant.state !== 'approved' && grant.state !== 'active') {
    throw new RefusalError(
      `grant ${grant.grantId} is ${grant.state}; credentials are issued for an approved grant only`,
    );
  }
  if (isOverdue(grant, now)) throw new RefusalError(`grant ${grant.grantId} ended at ${grant.expiresAt}`);
  if (grant.credentials.length >= MAX_CREDENTIAL_FETCHES) {
    throw new FetchLimitError(
      `grant ${grant.grantId} has handed out ${grant.credentials.length} credentials, the most one grant may (${MAX_CREDENTIAL_FETCHES}); use the ones fetched, or request a new grant`,
    );
  }
}

/** Issuance happened: the credential is recorded and the grant is active until its fixed end. */
export function activateGrant(grant: Grant, issued: IssuedCredentialRecord, now: Date): Grant {
  if (grant.state !== 'approved' && grant.state !== 'active')
    throw new RefusalError(`grant ${grant.grantId} is ${grant.state}; only an approved grant is activated`);
  if (grant.credentials.length >= MAX_CREDENTIAL_FETCHES) {
    throw new FetchLimitError(
      `grant ${grant.grantId} already records ${MAX_CREDENTIAL_FETCHES} credentials, the most one grant may`,
    );
  }
  return {
    ...grant,
    state: 'active',
    activatedAt: grant.activatedAt ?? now.toISOString(),
    credentials: [...grant.credentials, { ...issued, issuedAt: now.toISOString() }],
  };
}

function ended(
  grant: Grant,
  state: 'expired' | 'revoked',
  now: Date,
  endedBy: NonNullable<Grant['endedBy']>,
  by?: Principal,
): Grant {
  return {
    ...grant,
    state,
    endedAt: now.toISOString(),
    endedBy,
    ...(by ? { revokedBy: by } : {}),
    review: { dueAt: new Date(now.getTime() + REVIEW_WINDOW_MS).toISOString() },
  };
}

/**
 * Whether an approved or active grant is past its end; the one-time schedule and the
 * sweeper both ask. An approved grant whose credentials were never fetched lapses too.
 */
export const isOverdue = (grant: Grant, now: Date): boolean =>
  (grant.state === 'active' || grant.state === 'approved') &&
  grant.expiresAt !== undefined &&
  Date.parse(grant.expiresAt) <= now.getTime();

/** The grant reached its end time; `by` says which of the guarantees noticed it. */
export function expireGrant(grant: Grant, now: Date, by: 'schedule' | 'sweeper' = 'schedule'): Grant {
  if (!isOverdue(grant, now))
    throw new RefusalError(`grant ${grant.grantId} is ${grant.state} and not past its end`);
  return ended(grant, 'expired', now, by);
}

/**
 * Whether `by` may end the grant early: its requester, or one of the role's approvers.
 *
 * @throws RefusalError naming who may.
 */
export function assertMayRevoke(
  grant: Grant,
  role: BreakglassRole,
  by: Principal,
  directory: Directory = NO_DIRECTORY,
): void {
  if (!samePerson(directory, grant.requester, by) && !isApprover(role, by)) {
    throw new RefusalError(
      `${describe(by)} may not revoke grant ${grant.grantId}: only its requester or an approver of role ${role.id} can`,
    );
  }
  assertPrincipalFits(by, 'revoker');
}

/** Ended early, by the requester or one of the role's approvers. */
export function revokeGrant(
  grant: Grant,
  role: BreakglassRole,
  by: Principal,
  now: Date,
  directory: Directory = NO_DIRECTORY,
): Grant {
  if (grant.state !== 'active' && grant.state !== 'approved') {
    throw new RefusalError(
      `grant ${grant.grantId} is ${grant.state}; only an approved or active grant can be revoked`,
    );
  }
  assertMayRevoke(grant, role, by, directory);
  return ended(grant, 'revoked', now, 'principal', by);
}

/** The after-the-fact review, by someone other than the requester. */
export function reviewGrant(
  grant: Grant,
  role: BreakglassRole,
  reviewer: Principal,
  notes: string,
  now: Date,
  directory: Directory = NO_DIRECTORY,
): Grant {
  if (grant.state !== 'expired' && grant.state !== 'revoked') {
    throw new RefusalError(`grant ${grant.grantId} is ${grant.state}; it is reviewed once it has ended`);
  }
  if (samePerson(directory, grant.requester, reviewer)) {
    throw new RefusalError(
      `${describe(reviewer)} used grant ${grant.grantId} and cannot review it: someone else must`,
    );
  }
  if (!isApprover(role, reviewer)) {
    throw new RefusalError(
      `${describe(reviewer)} may not review grant ${grant.grantId}: reviews are for the approvers of role ${role.id}`,
    );
  }
  assertListed(directory, reviewer, 'review');
  assertPrincipalFits(reviewer, 'reviewer');
  parseInput(GrantReviewInputSchema, { notes }, 'review');
  if (!notes.trim()) throw new RefusalError('expected review notes (--notes "what was done and why")');
  if (grant.review?.reviewedAt) throw new RefusalError(`grant ${grant.grantId} was already reviewed`);
  return {
    ...grant,
    review: {
      dueAt: grant.review?.dueAt ?? now.toISOString(),
      reviewer,
      notes: notes.trim(),
      reviewedAt: now.toISOString(),
    },
  };
}

/** STS issues sessions of at least 15 minutes; a session of the grant may live that long after issue. */
const STS_MIN_SESSION_MS = 15 * 60_000;

/**
 * When nothing issued for an ended grant can be alive any more: its end, or 15 minutes
 * after its last AWS session was issued if that is later.
 */
export function credentialsDeadAt(grant: Grant): Date | undefined {
  const end = grant.expiresAt ?? grant.endedAt;
  if (!end) return undefined;
  const times = [
    Date.parse(end),
    ...grant.credentials.map((c) => Date.parse(c.issuedAt) + STS_MIN_SESSION_MS),
  ];
  return new Date(Math.max(...times));
}

/** Whether a grant's review is overdue (a finding). */
export const isReviewOverdue = (grant: Grant, now: Date): boolean =>
  grant.review !== undefined && !grant.review.reviewedAt && Date.parse(grant.review.dueAt) < now.getTime();
