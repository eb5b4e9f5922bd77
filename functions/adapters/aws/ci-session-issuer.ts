/**
 * A CI job's AWS role session: the {@link CiAwsIssuer} of the exchange.
 *
 * issue: STS AssumeRole on the grant's role with SourceIdentity = the job's correlation id
 * (ci-policy.ts `jobOf`), a session name naming the exchange and the job, 900 s (STS's
 * shortest session, which is also the cap for a job step), and a session policy: the grant's
 * own, or everything the role allows, plus deny statements that stop the session from
 * outliving the job (see {@link CI_NO_ESCAPE_ACTIONS}). SourceIdentity cannot be changed by the
 * session holder, so it names the job on every CloudTrail event (./cloudtrail-event.ts).
 *
 * end / release: STS sessions cannot be revoked one by one. Ending puts a deny-everything
 * policy for the job's SourceIdentity on the role (ci-role-deny.ts), through the role-deny
 * door ({@link RoleDenyClient}): the one function that may put role policies, and only on
 * roles under the CI path. The deny covers every session of the job on that role, so a job
 * that exchanged twice for one role loses both, which is what "the job ended" means.
 *
 * keywarden's role needs, on each CI role: sts:AssumeRole and sts:SetSourceIdentity (and the
 * role's trust policy must allow both to keywarden), and iam:GetRole for the up-front check
 * (skipped when denied, leaving STS's AccessDenied as the answer).
 */
import { GetRoleCommand, type IAMClient } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, type AssumeRoleCommandOutput, type STSClient } from '@aws-sdk/client-sts';
import { CI_AWS_SESSION_SECONDS, type CiAwsIssue, type CiJob } from '../../core/ci-policy.ts';
import { ValidationError } from '../../core/errors.ts';
import type { CiAwsIssuer } from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { RoleDenyCiSessions } from './ci-session-deny.ts';
import { awsErrorName, awsFailure } from './clients.ts';
import { type RoleDenyClient, rolePathOf } from './role-deny-client.ts';
import { roleNameOf } from './role-session-revoker.ts';
import { NO_ESCAPE_ACTIONS } from './sts-grant-issuer.ts';

/** The IAM paths CI roles sit under unless told otherwise: the role-deny door's CI path. */
export const DEFAULT_CI_ROLE_PATHS: readonly string[] = ['/ci/'];

/** The longest session policy STS takes: 2,048 characters of packed (whitespace-free) JSON. */
export const STS_SESSION_POLICY_MAX_CHARS = 2_048;

/**
 * What a job's session may never do. Each is a way to keep acting after the job ends:
 * - `sts:AssumeRole`: the deny that ends a job sits on the grant's role only. A session
 *   chained from it into another role carries the SourceIdentity (CloudTrail still names the
 *   job) but not the deny, and a chained session may last up to an hour whatever is left of
 *   this one. A job that must act as another role (a deploy role in another account) gets a
 *   grant for that role, which keywarden issues and ends like this one.
 * - minting long-lived IAM credentials (access keys, users, login profiles, service-specific
 *   credentials);
 * - removing the end: changing the role's inline or attached policies (the deny is one), or
 *   its trust policy; or granting a user policies.
 * Passing the role to a service (`iam:PassRole`) is left to the role's own policies: deploy
 * jobs need it, and what they pass is the role designer's choice.
 */
export const CI_NO_ESCAPE_ACTIONS: readonly string[] = NO_ESCAPE_ACTIONS;

const NO_ESCAPE = {
  Sid: 'KeywardenCiNoEscape',
  Effect: 'Deny',
  Action: CI_NO_ESCAPE_ACTIONS,
  Resource: '*',
} as const;

/**
 * The session policy of a job's session, packed: the grant's statements (or everything the
 * role allows: a session policy only narrows the role's) and {@link NO_ESCAPE}.
 *
 * @throws ValidationError for a document without statements, a Sid of keywarden's own, or one
 *   longer than STS takes once keywarden's deny is added (saying how much room the grant has).
 */
export function ciSessionPolicy(grant: string, sessionPolicy: Record<string, unknown> | undefined): string {
  const { Statement, Version, ...rest } = sessionPolicy ?? {};
  let statements: unknown[];
  if (sessionPolicy === undefined) {
    statements = [{ Sid: 'KeywardenRoleAsIs', Effect: 'Allow', Action: '*', Resource: '*' }];
  } else if (Array.isArray(Statement) && Statement.length > 0) {
    statements = Statement;
  } else if (typeof Statement === 'object' && Statement !== null && !Array.isArray(Statement)) {
    statements = [Statement];
  } else {
    throw new ValidationError(
      `CI grant ${grant}: expected aws.sessionPolicy to be an IAM policy document with a Statement (an object or a non-empty list), got ${Statement === undefined ? 'none' : JSON.stringify(Statement)}`,
    );
  }
  const taken = (sessionPolicy === undefined ? [] : statements).find(
    (statement) =>
      typeof statement === 'object' &&
      statement !== null &&
      'Sid' in statement &&
      typeof statement.Sid === 'string' &&
      statement.Sid.startsWith('Keywarden'),
  ) as { Sid: string } | undefined;
  if (taken) {
    throw new ValidationError(
      `CI grant ${grant}: expected aws.sessionPolicy's statement ids not to start with "Keywarden" (keywarden adds its own), got ${JSON.stringify(taken.Sid)}`,
    );
  }
  const packed = JSON.stringify({
    Version: Version ?? '2012-10-17',
    ...rest,
    Statement: [...statements, NO_ESCAPE],
  });
  if (packed.length > STS_SESSION_POLICY_MAX_CHARS) {
    const room = STS_SESSION_POLICY_MAX_CHARS - (packed.length - JSON.stringify(sessionPolicy).length);
    throw new ValidationError(
      `CI grant ${grant}: expected a session policy STS takes (at most ${STS_SESSION_POLICY_MAX_CHARS} characters packed, keywarden's deny included), got ${packed.length}; shorten aws.sessionPolicy to at most ${room} characters of packed JSON`,
    );
  }
  return packed;
}

/**
 * The session name: the exchange id (up to 32 characters), `@`, and as much of the job's
 * correlation id as fits, from its end (the most specific ids, the job's, come last). STS
 * takes 2 to 64 characters of `[\w+=,.@-]`; CloudTrail shows it in the session's ARN.
 */
export function ciSessionName(exchangeId: string, correlationId: string): string {
  const exchange = exchangeId.replace(/[^\w+=,.@-]/g, '_').slice(0, 32);
  const job = correlationId.replace(/[^\w+=,.@-]/g, '_');
  return `${exchange}@${job.slice(-(63 - exchange.length))}`;
}

/** A SourceIdentity STS takes: 2 to 64 characters of `[\w+=,.@-]`, not starting `aws:`. */
const SOURCE_IDENTITY = /^[\w+=,.@-]{2,64}$/;

const isAccessDenied = (error: unknown): boolean =>
  awsErrorName(error) === 'AccessDenied' || awsErrorName(error) === 'AccessDeniedException';

/** What {@link StsCiSessionIssuer} needs; the clients come from `awsClients` (adaptive retry). */
export interface StsCiSessionIssuerProps {
  sts: STSClient;
  /** Reads the role before assuming it (iam:GetRole). */
  iam: IAMClient;
  /** Puts and removes the job's deny: `IamRoleDeny` locally, `LambdaRoleDeny` in AWS. */
  deny: RoleDenyClient;
  /**
   * IAM paths a CI role must sit under (the role-deny door's, which refuses others).
   * @default DEFAULT_CI_ROLE_PATHS (`/ci/`)
   */
  rolePaths?: readonly string[];
}

/** {@link CiAwsIssuer} on STS and the role-deny door; see the module comment. */
export class StsCiSessionIssuer implements CiAwsIssuer {
  readonly #sts: STSClient;
  readonly #iam: IAMClient;
  readonly #deny: RoleDenyClient;
  readonly #rolePaths: readonly string[];

  constructor(props: StsCiSessionIssuerProps) {
    const paths = props.rolePaths ?? DEFAULT_CI_ROLE_PATHS;
    const bad = paths.find((path) => !/^\/([\w+=,.@-]+\/)+$/.test(path));
    if (paths.length === 0 || bad !== undefined) {
      throw new ValidationError(
        `StsCiSessionIssuer: expected rolePaths to list IAM paths such as /ci/ (not the root path /), got ${JSON.stringify(paths)}`,
      );
    }
    this.#sts = props.sts;
    this.#iam = props.iam;
    this.#deny = props.deny;
    this.#rolePaths = paths;
  }

  /**
   * Assumes the grant's role for the job. The role is checked first (under a CI path, known
   * to IAM under that exact ARN), so a wrong role fails with a message saying what to change
   * rather than STS's AccessDenied, and a session keywarden could not end is never issued.
   */
  async issue(request: {
    exchangeId: string;
    grant: string;
    aws: CiAwsIssue;
    job: CiJob;
    now: Date;
  }): Promise<{ credentials: SecretValue; expiresAt: string; sourceIdentity: string; sessionName: string }> {
    const { grant, aws, job, now } = request;
    const { roleArn } = aws;
    const sourceIdentity = job.correlationId;
    if (!SOURCE_IDENTITY.test(sourceIdentity) || sourceIdentity.startsWith('aws:')) {
      throw new ValidationError(
        `CI grant ${grant}: expected the job's correlation id to be a SourceIdentity (2 to 64 characters of letters, digits and _+=,.@-), got ${JSON.stringify(sourceIdentity)}`,
      );
    }
    const path = rolePathOf(roleArn) ?? '';
    if (!this.#rolePaths.some((allowed) => path.startsWith(allowed))) {
      throw new ValidationError(
        `CI grant ${grant}: expected a role under ${this.#rolePaths.join(' or ')}, got ${roleArn}; keywarden can end sessions on those roles only, move the role or fix aws.roleArn`,
      );
    }
    const policy = ciSessionPolicy(grant, aws.sessionPolicy);
    const sessionName = ciSessionName(request.exchangeId, sourceIdentity);
    // Read the role first: moto (unlike STS) assumes roles that do not exist.
    await this.#assertRole(grant, roleArn);
    let answer: AssumeRoleCommandOutput;
    try {
      // Not idempotent (each call is a new session), but harmless to repeat: a session nobody
      // received ends by itself within 900 s, and ending the job ends it too.
      answer = await this.#sts.send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: sessionName,
          SourceIdentity: sourceIdentity,
          // Always STS's minimum: the grant's `duration` may say nothing else (ci-policy.ts).
          DurationSeconds: CI_AWS_SESSION_SECONDS,
          Policy: policy,
        }),
      );
    } catch (error) {
      if (isAccessDenied(error)) {
        throw new ValidationError(
          `CI grant ${grant}: STS refused to let keywarden assume ${roleArn} (AccessDenied); expected the role's trust policy to allow keywarden's CI function role (stack output CiFunctionRoleArn) sts:AssumeRole and sts:SetSourceIdentity`,
          { cause: error },
        );
      }
      throw awsFailure(`assuming IAM role ${roleArn} for CI grant ${grant}`, error);
    }
    const { AccessKeyId, SecretAccessKey, SessionToken, Expiration } = answer.Credentials ?? {};
    if (!AccessKeyId || !SecretAccessKey || !SessionToken) {
      throw new ValidationError(
        `CI grant ${grant}: STS AssumeRole on ${roleArn} answered without complete credentials; expected an access key id, secret key and session token`,
      );
    }
    // STS's own expiration is the session's real end; without one, the asked duration from now.
    const expiresAt = Expiration ?? new Date(now.getTime() + CI_AWS_SESSION_SECONDS * 1_000);
    return {
      credentials: SecretValue.ofJson({
        accessKeyId: AccessKeyId,
        secretAccessKey: SecretAccessKey,
        sessionToken: SessionToken,
      }),
      expiresAt: expiresAt.toISOString(),
      sourceIdentity,
      sessionName,
    };
  }

  /** Denies everything to the role's sessions of this job, through the role-deny door. */
  async end(request: { roleArn: string; sourceIdentity: string }): Promise<void> {
    await new RoleDenyCiSessions({ deny: this.#deny }).end(request);
  }

  /** Removes the job's deny once its sessions are dead (900 s after the last was issued). */
  async release(request: { roleArn: string; sourceIdentity: string }): Promise<void> {
    await new RoleDenyCiSessions({ deny: this.#deny }).release(request);
  }

  /**
   * Checks the role exists under that exact ARN; a missing one is a ValidationError naming it.
   * Skipped when keywarden may not read the role (no iam:GetRole).
   */
  async #assertRole(grant: string, roleArn: string): Promise<void> {
    const roleName = roleNameOf(roleArn);
    try {
      const { Role } = await this.#iam.send(new GetRoleCommand({ RoleName: roleName }));
      if (Role?.Arn !== undefined && Role.Arn !== roleArn) {
        throw new ValidationError(
          `CI grant ${grant}: expected IAM role ${roleArn}, found ${Role.Arn} under the name ${roleName}; fix aws.roleArn (path or account)`,
        );
      }
    } catch (error) {
      if (error instanceof ValidationError) throw error;
      // Without iam:GetRole the check is skipped: STS's own answer still decides.
      if (isAccessDenied(error)) return;
      if (awsErrorName(error) === 'NoSuchEntityException') {
        throw new ValidationError(
          `CI grant ${grant}: expected IAM role ${roleArn} to exist, IAM does not know it; create the role or fix aws.roleArn in the inventory`,
          { cause: error },
        );
      }
      throw awsFailure(`reading IAM role ${roleArn}`, error);
    }
  }
}
