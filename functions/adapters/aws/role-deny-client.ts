/**
 * Deny policies on IAM roles, behind one narrow door. Putting an inline policy on a role is
 * the most powerful thing keywarden does in AWS (a wrong document could grant, not deny), so
 * in AWS exactly one function holds `iam:PutRolePolicy` (functions/handlers/role-deny.ts): it
 * takes a {@link RoleDenyRequest}, builds the policy itself, and refuses any role outside the
 * configured IAM paths. Every other function reaches it through {@link LambdaRoleDeny}
 * (a RequestResponse invocation, `lambda:InvokeFunction` on that function only, signed and sent
 * by lambda-invoke.ts rather than the SDK's Lambda client, ~70 kB lighter per bundle); the local
 * runtime and the CLI call IAM directly with {@link IamRoleDeny}, as before.
 *
 * The existing ports stay as they are: {@link RoleDenyGrantIssuer} is the `aws-role`
 * {@link GrantIssuer} whose revoke and release go through the door, {@link RoleDenySessionRevoker}
 * the campaign's {@link SessionRevoker}.
 */
import * as z from 'zod';
import { KeywardenError, ValidationError } from '../../core/errors.ts';
import { type BreakglassTarget, targetOfType } from '../../core/grant.ts';
import { IncidentSchema } from '../../core/incident.ts';
import type {
  GrantIssueRequest,
  GrantIssuer,
  IssuedGrantCredential,
  RevokeResult,
  SessionRevoker,
} from '../../core/ports.ts';
import type { IamCiSessionDeny } from './ci-role-deny.ts';
import type { InvokeAnswer, LambdaInvoke } from './lambda-invoke.ts';
import type { IamRoleSessionRevoker } from './role-session-revoker.ts';
import type { StsGrantIssuer } from './sts-grant-issuer.ts';

/** The variable that names the role-deny function to callers; unset locally (IAM is called directly). */
export const ROLE_DENY_FUNCTION_ENV = 'KEYWARDEN_ROLE_DENY_FUNCTION';

/** A role ARN: partition, 12-digit account, optional path, name (IAM's alphabet). */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role(\/(?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/;
/** A grant id as `newGrantId` makes it, valid as a SourceIdentity. */
const SOURCE_IDENTITY = /^[\w+=,.@-]{2,64}$/;
/** A CI job's correlation id (ci-policy.ts `jobOf`), the SourceIdentity of its sessions. */
const CI_SOURCE_IDENTITY = /^ci-[\w+=,.@-]{1,61}$/;
/** The CI form of a deny or release: its policy is `keywarden-ci-<sourceIdentity>` (ci-role-deny.ts). */
const CiSessionsSchema = z.strictObject({
  sourceIdentity: z.string().regex(CI_SOURCE_IDENTITY),
  purpose: z.literal('ci'),
});
type CiSessions = z.infer<typeof CiSessionsSchema>;
const isCi = (form: object): form is CiSessions => 'purpose' in form && form.purpose === 'ci';

const RoleArnSchema = z.string().max(2048).regex(ROLE_ARN, {
  error: 'expected an IAM role ARN such as arn:aws:iam::123456789012:role/breakglass/name',
});

/**
 * What the role-deny function does, and all it does:
 * - `deny` with `sourceIdentity`: deny everything to sessions with that SourceIdentity (a
 *   break-glass grant's early revocation; policy `keywarden-breakglass-<grant id>`);
 * - `deny` with `sessionsIssuedBefore`: deny everything to sessions issued before the cut-off
 *   (an incident campaign; policy `keywarden-revoke-<incident>`);
 * - `release` with `sourceIdentity`: remove a grant's deny once its sessions are all dead;
 * - `deny` / `release` with `sourceIdentity` and `purpose: 'ci'`: the same for a CI job's
 *   sessions (policy `keywarden-ci-<correlation id>`).
 */
export const RoleDenyRequestSchema = z.discriminatedUnion('action', [
  z.strictObject({
    action: z.literal('deny'),
    roleArn: RoleArnSchema,
    deny: z.union([
      z.strictObject({ sourceIdentity: z.string().regex(SOURCE_IDENTITY) }),
      CiSessionsSchema,
      z.strictObject({ sessionsIssuedBefore: z.iso.datetime({ offset: true }), incident: IncidentSchema }),
    ]),
  }),
  z.strictObject({
    action: z.literal('release'),
    roleArn: RoleArnSchema,
    release: z.union([
      z.strictObject({ sourceIdentity: z.string().regex(SOURCE_IDENTITY) }),
      CiSessionsSchema,
    ]),
  }),
]);
export type RoleDenyRequest = z.infer<typeof RoleDenyRequestSchema>;

/** The function's answer: what happened to the role (a campaign reports it per target). */
export const RoleDenyAnswerSchema = z.strictObject({
  result: z.enum(['revoked', 'already-revoked', 'released']),
  note: z.string().max(1000).optional(),
});
export type RoleDenyAnswer = z.infer<typeof RoleDenyAnswerSchema>;

/** The IAM path of a role ARN (`/breakglass/`), or `undefined` when it is not one. */
export function rolePathOf(roleArn: string): string | undefined {
  return ROLE_ARN.exec(roleArn)?.[1];
}

/**
 * A request checked for shape and for place: its role must sit under one of `allowedPaths`
 * (`/breakglass/`, `/ci/`). The role-deny function runs this before anything else.
 *
 * @throws ValidationError naming each bad field, or the path and the allowed ones.
 */
export function parseRoleDenyRequest(event: unknown, allowedPaths: readonly string[]): RoleDenyRequest {
  const parsed = RoleDenyRequestSchema.safeParse(event);
  if (!parsed.success) {
    throw new ValidationError(
      `expected a role-deny request {action: "deny", roleArn, deny: {sourceIdentity} | {sourceIdentity, purpose: "ci"} | {sessionsIssuedBefore, incident}} or {action: "release", roleArn, release: {sourceIdentity} | {sourceIdentity, purpose: "ci"}}, got ${parsed.error.issues
        .map((issue) => `${issue.path.join('.') || '(request)'}: ${issue.message}`)
        .join('; ')}`,
    );
  }
  const path = rolePathOf(parsed.data.roleArn) ?? '';
  if (!allowedPaths.some((allowed) => allowed !== '/' && path.startsWith(allowed))) {
    throw new ValidationError(
      `expected a role under ${allowedPaths.join(' or ')}, got one under ${JSON.stringify(path)}; keywarden puts deny policies on those roles only`,
    );
  }
  return parsed.data;
}

/** Runs role-deny requests: against IAM itself, or through the role-deny function. */
export interface RoleDenyClient {
  run(request: RoleDenyRequest): Promise<RoleDenyAnswer>;
}

/** What {@link IamRoleDeny} calls: the adapters that already build and put these policies. */
export interface IamRoleDenyProps {
  grants: Pick<StsGrantIssuer, 'revoke' | 'release'>;
  sessions: Pick<IamRoleSessionRevoker, 'denySessions'>;
  /**
   * CI jobs' denies (`purpose: 'ci'`).
   * @default none: a CI request is refused with a ValidationError saying so
   */
  ci?: Pick<IamCiSessionDeny, 'deny' | 'release'> | undefined;
}

const awsRole = (roleArn: string): BreakglassTarget => ({ type: 'aws-role', roleArn });

/** Calls IAM directly: inside the role-deny function, and in the local runtime and CLI. */
export class IamRoleDeny implements RoleDenyClient {
  readonly #grants: IamRoleDenyProps['grants'];
  readonly #sessions: IamRoleDenyProps['sessions'];
  readonly #ci: IamRoleDenyProps['ci'];

  constructor(props: IamRoleDenyProps) {
    this.#grants = props.grants;
    this.#sessions = props.sessions;
    this.#ci = props.ci;
  }

  async run(request: RoleDenyRequest): Promise<RoleDenyAnswer> {
    const target = awsRole(request.roleArn);
    const ci = request.action === 'release' ? request.release : request.deny;
    if (isCi(ci)) {
      if (!this.#ci) {
        throw new ValidationError(
          `expected a role-deny runner that ends CI sessions, got one built without (IamRoleDeny's ci); cannot ${request.action} ${ci.sourceIdentity} on ${request.roleArn}`,
        );
      }
      if (request.action === 'release') {
        await this.#ci.release(request.roleArn, ci.sourceIdentity);
        return { result: 'released' };
      }
      const { result, note } = await this.#ci.deny(request.roleArn, ci.sourceIdentity);
      return { result, ...(note ? { note } : {}) };
    }
    if (request.action === 'release') {
      await this.#grants.release({ grantId: request.release.sourceIdentity, target });
      return { result: 'released' };
    }
    if ('sourceIdentity' in request.deny) {
      await this.#grants.revoke({ grantId: request.deny.sourceIdentity, target, handles: [] });
      return { result: 'revoked' };
    }
    const { result, note } = await this.#sessions.denySessions(request.roleArn, {
      incident: request.deny.incident,
      issuedBefore: request.deny.sessionsIssuedBefore,
    });
    return { result, ...(note ? { note } : {}) };
  }
}

/** A failure the role-deny function reported; its message is the function's own (no secret in it). */
export class RoleDenyError extends KeywardenError {
  override readonly name = 'RoleDenyError';
}

export interface LambdaRoleDenyProps {
  /** Lambda's Invoke (RequestResponse): lambda-invoke.ts's `signedLambdaInvoke` in AWS. */
  invoke: LambdaInvoke;
  /** The role-deny function's name or ARN. */
  functionName: string;
}

/** Asks the role-deny function (a synchronous invocation) and returns its checked answer. */
export class LambdaRoleDeny implements RoleDenyClient {
  readonly #invoke: LambdaInvoke;
  readonly #functionName: string;

  constructor(props: LambdaRoleDenyProps) {
    this.#invoke = props.invoke;
    this.#functionName = props.functionName;
  }

  async run(request: RoleDenyRequest): Promise<RoleDenyAnswer> {
    const checked = RoleDenyRequestSchema.parse(request);
    let output: InvokeAnswer;
    try {
      output = await this.#invoke(this.#functionName, JSON.stringify(checked));
    } catch (error) {
      throw new RoleDenyError(
        `could not invoke the role-deny function ${this.#functionName} for ${checked.roleArn}: ${(error as Error).name}; the caller's role needs lambda:InvokeFunction on it`,
        { cause: error, retryable: true },
      );
    }
    const text = output.payload;
    if (output.functionError) {
      const reported = safeJson(text) as { errorType?: unknown; errorMessage?: unknown } | undefined;
      const type = typeof reported?.errorType === 'string' ? reported.errorType : output.functionError;
      const message = typeof reported?.errorMessage === 'string' ? reported.errorMessage : 'no message';
      throw new RoleDenyError(`the role-deny function refused or failed (${type}): ${message}`, {
        retryable: type !== 'ValidationError',
      });
    }
    const answer = RoleDenyAnswerSchema.safeParse(safeJson(text));
    if (!answer.success) {
      throw new RoleDenyError(
        `expected the role-deny function to answer {result, note?}, got something else for ${checked.roleArn}`,
      );
    }
    return answer.data;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The `aws-role` grant issuer of a caller without `iam:PutRolePolicy`: issues as `issuer` does
 * (STS AssumeRole), revokes and releases through the role-deny door.
 */
export class RoleDenyGrantIssuer implements GrantIssuer {
  readonly #issuer: GrantIssuer;
  readonly #deny: RoleDenyClient;

  constructor(props: { issuer: GrantIssuer; deny: RoleDenyClient }) {
    this.#issuer = props.issuer;
    this.#deny = props.deny;
  }

  issue(request: GrantIssueRequest): Promise<IssuedGrantCredential> {
    return this.#issuer.issue(request);
  }

  async revoke(request: { grantId: string; target: BreakglassTarget; handles: readonly string[] }) {
    const { roleArn } = targetOfType(request.target, 'aws-role', {
      issuer: 'RoleDenyGrantIssuer',
      doing: `revoking grant ${request.grantId}`,
    });
    await this.#deny.run({ action: 'deny', roleArn, deny: { sourceIdentity: request.grantId } });
  }

  async release(request: { grantId: string; target: BreakglassTarget }) {
    const { roleArn } = targetOfType(request.target, 'aws-role', {
      issuer: 'RoleDenyGrantIssuer',
      doing: `releasing grant ${request.grantId}`,
    });
    await this.#deny.run({ action: 'release', roleArn, release: { sourceIdentity: request.grantId } });
  }
}

/** The campaign's session revoker for a caller without `iam:PutRolePolicy`. */
export class RoleDenySessionRevoker implements SessionRevoker {
  readonly #deny: RoleDenyClient;

  constructor(props: { deny: RoleDenyClient }) {
    this.#deny = props.deny;
  }

  async denySessions(
    roleArn: string,
    options: { incident: string; issuedBefore: string },
  ): Promise<RevokeResult> {
    const { result, note } = await this.#deny.run({
      action: 'deny',
      roleArn,
      deny: {
        sessionsIssuedBefore: new Date(options.issuedBefore).toISOString(),
        incident: options.incident,
      },
    });
    if (result === 'released') {
      throw new RoleDenyError(
        `expected the role-deny function to deny sessions of ${roleArn}, it answered 'released'`,
      );
    }
    return { result, ...(note ? { note } : {}) };
  }
}
