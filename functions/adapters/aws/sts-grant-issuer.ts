/**
 * Break-glass access to AWS: a {@link GrantIssuer} for `aws-role` targets.
 *
 * issue: STS AssumeRole with RoleSessionName = SourceIdentity = the grant id. STS
 * sessions last at least 900 s, and a grant may have less time left, so the session
 * also carries an inline session policy that denies everything once `aws:CurrentTime`
 * is past the grant's end: the session ends at the grant's end exactly, whatever STS's
 * minimum, and whether keywarden is up or not (principle 2). SourceIdentity cannot be
 * changed by the session holder and follows role chaining, so it names the grant on
 * every CloudTrail event and on any role assumed from the session.
 *
 * revoke: STS sessions cannot be revoked one by one. An inline role policy
 * `keywarden-breakglass-<grantId>` denies everything to sessions whose
 * `aws:SourceIdentity` is the grant id: that grant's live sessions stop (after IAM's
 * propagation delay of seconds), other grants' sessions and the pipelines' do not.
 * PutRolePolicy overwrites, so revoking twice is the same as once.
 *
 * keywarden's role needs, on each break-glass role: sts:AssumeRole and
 * sts:SetSourceIdentity (and the role's trust policy must allow both to keywarden),
 * iam:PutRolePolicy, and iam:GetRole for the up-front check of the role (skipped when
 * denied, leaving STS's AccessDenied as the only answer).
 */
import {
  DeleteRolePolicyCommand,
  GetRoleCommand,
  type IAMClient,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { AssumeRoleCommand, type AssumeRoleCommandOutput, type STSClient } from '@aws-sdk/client-sts';
import { ValidationError } from '../../core/errors.ts';
import { type BreakglassTarget, targetOfType } from '../../core/grant.ts';
import type { GrantIssueRequest, GrantIssuer, IssuedGrantCredential } from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { awsErrorName, awsFailure } from './clients.ts';
import { denyAllPolicyDocument } from './deny-policy.ts';
import { roleNameOf } from './role-session-revoker.ts';

/** The shortest session STS issues. */
export const STS_MIN_SESSION_SECONDS = 900;

/** What {@link StsGrantIssuer} needs; the clients come from `awsClients` (adaptive retry). */
export interface StsGrantIssuerProps {
  sts: STSClient;
  iam: IAMClient;
}

/** The inline role policy that ends one grant's sessions. */
export const grantDenyPolicyName = (grantId: string): string => `keywarden-breakglass-${grantId}`;

/** The role policy document of {@link grantDenyPolicyName}: deny everything to the grant's sessions. */
export const grantDenyPolicyDocument = (grantId: string): string =>
  denyAllPolicyDocument('KeywardenRevokeBreakglassGrant', {
    StringEquals: { 'aws:SourceIdentity': grantId },
  });

/**
 * What a session keywarden hands out (a break-glass grant's, a CI job's) may not do: chain into
 * another role (no end policy there), mint long-lived IAM credentials, or remove the deny that
 * ends it from its role.
 */
export const NO_ESCAPE_ACTIONS: readonly string[] = [
  'sts:AssumeRole',
  'iam:CreateAccessKey',
  'iam:CreateUser',
  'iam:CreateLoginProfile',
  'iam:UpdateLoginProfile',
  'iam:CreateServiceSpecificCredential',
  'iam:PutRolePolicy',
  'iam:DeleteRolePolicy',
  'iam:AttachRolePolicy',
  'iam:DetachRolePolicy',
  'iam:UpdateAssumeRolePolicy',
  'iam:PutUserPolicy',
  'iam:AttachUserPolicy',
];

/**
 * The session policy of a grant's session: everything the role allows (a session
 * policy only narrows the role's), and nothing after `expiresAt`.
 */
export function grantSessionPolicy(expiresAt: Date): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'KeywardenRoleAsIs', Effect: 'Allow', Action: '*', Resource: '*' },
      {
        // Ways to outlive the grant: chain into another role (no end-of-grant policy there),
        // mint long-lived IAM credentials, or remove the revocation deny from the role.
        Sid: 'KeywardenNoEscape',
        Effect: 'Deny',
        Action: [...NO_ESCAPE_ACTIONS],
        Resource: '*',
      },
      {
        Sid: 'KeywardenGrantEnd',
        Effect: 'Deny',
        Action: '*',
        Resource: '*',
        Condition: { DateGreaterThan: { 'aws:CurrentTime': expiresAt.toISOString() } },
      },
    ],
  });
}

/**
 * The longest session a role may hand out when keywarden's own caller is itself a role
 * session (role chaining, always the case in Lambda): one hour, whatever MaxSessionDuration says.
 */
export const STS_CHAINED_MAX_SECONDS = 3_600;

/**
 * The session length to ask STS for: the time left, rounded up, at least STS's minimum and
 * at most the role-chaining maximum (a longer grant fetches credentials again after an hour).
 */
export function sessionSeconds(expiresAt: Date, now: Date): number {
  const left = Math.ceil((expiresAt.getTime() - now.getTime()) / 1_000);
  return Math.min(STS_CHAINED_MAX_SECONDS, Math.max(STS_MIN_SESSION_SECONDS, left));
}

const isAccessDenied = (error: unknown): boolean =>
  awsErrorName(error) === 'AccessDenied' || awsErrorName(error) === 'AccessDeniedException';

/** {@link GrantIssuer} for `aws-role`; see the module comment. */
export class StsGrantIssuer implements GrantIssuer {
  readonly #sts: STSClient;
  readonly #iam: IAMClient;

  constructor(props: StsGrantIssuerProps) {
    this.#sts = props.sts;
    this.#iam = props.iam;
  }

  /**
   * Assumes the role for the grant. The role is read first, so that a role that does not
   * exist or allows too short a session fails with a message that says so and what to
   * change, instead of STS's AccessDenied or a bare ValidationError.
   */
  async issue(request: GrantIssueRequest): Promise<IssuedGrantCredential> {
    const { grantId, expiresAt, now } = request;
    const { roleArn } = targetOfType(request.target, 'aws-role', {
      issuer: 'StsGrantIssuer',
      doing: `issuing grant ${grantId}`,
    });
    if (expiresAt.getTime() <= now.getTime()) {
      throw new ValidationError(
        `grant ${grantId}: expected an end after now (${now.toISOString()}), got ${expiresAt.toISOString()}; the grant has ended, request a new one`,
      );
    }
    const roleName = roleNameOf(roleArn);
    const duration = sessionSeconds(expiresAt, now);
    // Read the role first: moto (unlike STS) assumes roles that do not exist.
    await this.#assertRole(roleArn, roleName);
    let answer: AssumeRoleCommandOutput;
    try {
      // Not idempotent (each call is a new session), but harmless to repeat: a session
      // nobody received ends by itself, and the grant's revoke ends it too.
      answer = await this.#sts.send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: grantId,
          SourceIdentity: grantId,
          DurationSeconds: duration,
          Policy: grantSessionPolicy(expiresAt),
        }),
      );
    } catch (error) {
      if (isAccessDenied(error)) {
        throw new ValidationError(
          `grant ${grantId}: STS refused to let keywarden assume ${roleArn} (AccessDenied); expected the role to exist and its trust policy to allow keywarden's role sts:AssumeRole and sts:SetSourceIdentity`,
          { cause: error },
        );
      }
      throw awsFailure(`assuming IAM role ${roleArn} for grant ${grantId}`, error);
    }
    const { AccessKeyId, SecretAccessKey, SessionToken } = answer.Credentials ?? {};
    if (!AccessKeyId || !SecretAccessKey || !SessionToken) {
      throw new ValidationError(
        `grant ${grantId}: STS AssumeRole on ${roleArn} answered without complete credentials; expected an access key id, secret key and session token`,
      );
    }
    // The session ends at the grant's end, or after the chaining maximum if that comes first.
    const sessionEnd = new Date(Math.min(expiresAt.getTime(), now.getTime() + duration * 1_000));
    return {
      type: 'aws-session',
      handle: grantId,
      expiresAt: sessionEnd.toISOString(),
      credentials: SecretValue.ofJson({
        accessKeyId: AccessKeyId,
        secretAccessKey: SecretAccessKey,
        sessionToken: SessionToken,
      }),
    };
  }

  /**
   * Puts the grant's deny policy on the role (see the module comment). `handles` are not
   * needed: the policy names the grant's SourceIdentity, which covers every session the
   * grant ever had. A role that no longer exists has no sessions that can act.
   */
  async revoke(request: {
    grantId: string;
    target: BreakglassTarget;
    handles: readonly string[];
  }): Promise<void> {
    const { grantId } = request;
    const { roleArn } = targetOfType(request.target, 'aws-role', {
      issuer: 'StsGrantIssuer',
      doing: `revoking grant ${grantId}`,
    });
    const roleName = roleNameOf(roleArn);
    const policyName = grantDenyPolicyName(grantId);
    try {
      await this.#iam.send(
        new PutRolePolicyCommand({
          RoleName: roleName,
          PolicyName: policyName,
          PolicyDocument: grantDenyPolicyDocument(grantId),
        }),
      );
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchEntityException') return;
      throw awsFailure(
        `putting deny policy ${policyName} on IAM role ${roleArn} for grant ${grantId}`,
        error,
      );
    }
  }

  /**
   * Removes the grant's deny policy once none of its sessions can be alive (they end by
   * their session policy and duration): a role's inline policies share 10 KB, so denies
   * must not pile up. A policy or role already gone is fine.
   */
  async release(request: { grantId: string; target: BreakglassTarget }): Promise<void> {
    const { grantId } = request;
    const { roleArn } = targetOfType(request.target, 'aws-role', {
      issuer: 'StsGrantIssuer',
      doing: `releasing grant ${grantId}`,
    });
    const policyName = grantDenyPolicyName(grantId);
    try {
      await this.#iam.send(
        new DeleteRolePolicyCommand({ RoleName: roleNameOf(roleArn), PolicyName: policyName }),
      );
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchEntityException') return;
      throw awsFailure(`removing deny policy ${policyName} from IAM role ${roleArn}`, error);
    }
  }

  /**
   * Checks the role exists under that exact ARN; a missing one is a ValidationError naming it.
   * Skipped when keywarden may not read the role (no iam:GetRole).
   */
  async #assertRole(roleArn: string, roleName: string): Promise<void> {
    try {
      const { Role } = await this.#iam.send(new GetRoleCommand({ RoleName: roleName }));
      if (Role?.Arn !== undefined && Role.Arn !== roleArn) {
        throw new ValidationError(
          `expected IAM role ${roleArn}, found ${Role.Arn} under the name ${roleName}; fix the role ARN (path or account) in the break-glass role's target`,
        );
      }
    } catch (error) {
      if (error instanceof ValidationError) throw error;
      // Without iam:GetRole the check is skipped: STS's own answer below still decides.
      if (isAccessDenied(error)) return;
      if (awsErrorName(error) === 'NoSuchEntityException') {
        throw new ValidationError(
          `expected IAM role ${roleArn} to exist, IAM does not know it; create the role or fix the break-glass role's target in the inventory`,
          { cause: error },
        );
      }
      throw awsFailure(`reading IAM role ${roleArn}`, error);
    }
  }
}
