/**
 * Ending a CI job's AWS role sessions: STS sessions cannot be revoked one by one, so an inline
 * role policy `keywarden-ci-<sourceIdentity>` denies everything to the role's sessions whose
 * `aws:SourceIdentity` is the job's correlation id. That job's live sessions stop (after IAM's
 * propagation delay of seconds); other jobs' sessions do not. Once the sessions it covers are
 * dead (900 s after the last was issued), the policy is removed: a role's inline policies share
 * 10 KB, so denies must not pile up.
 *
 * Only the role-deny function (functions/handlers/role-deny.ts) and the local runtime call this
 * directly, through {@link IamRoleDeny}'s CI form; everyone else goes through the door
 * ({@link RoleDenyClient}). PutRolePolicy overwrites and a missing policy counts as removed,
 * so both steps can run twice.
 */
import { DeleteRolePolicyCommand, type IAMClient, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { awsErrorName, awsFailure } from './clients.ts';
import { denyAllPolicyDocument } from './deny-policy.ts';
import { roleNameOf } from './role-session-revoker.ts';

/** The inline role policy that ends one CI job's sessions on a role. */
export const ciDenyPolicyName = (sourceIdentity: string): string => `keywarden-ci-${sourceIdentity}`;

/** The document of {@link ciDenyPolicyName}: deny everything to the sessions with that SourceIdentity. */
export const ciDenyPolicyDocument = (sourceIdentity: string): string =>
  denyAllPolicyDocument('KeywardenEndCiJob', { StringEquals: { 'aws:SourceIdentity': sourceIdentity } });

/** What {@link IamCiSessionDeny} needs; the client comes from `awsClients` (adaptive retry). */
export interface IamCiSessionDenyProps {
  /** Holds iam:PutRolePolicy and iam:DeleteRolePolicy on the CI roles. */
  iam: IAMClient;
}

/** Puts and removes a CI job's deny policy with IAM itself; see the module comment. */
export class IamCiSessionDeny {
  readonly #iam: IAMClient;

  constructor(props: IamCiSessionDenyProps) {
    this.#iam = props.iam;
  }

  /**
   * Puts the job's deny on the role. A role that no longer exists has no sessions that can
   * act: `already-revoked`, with a note saying why.
   */
  async deny(
    roleArn: string,
    sourceIdentity: string,
  ): Promise<{ result: 'revoked' | 'already-revoked'; note?: string }> {
    const policyName = ciDenyPolicyName(sourceIdentity);
    try {
      await this.#iam.send(
        new PutRolePolicyCommand({
          RoleName: roleNameOf(roleArn),
          PolicyName: policyName,
          PolicyDocument: ciDenyPolicyDocument(sourceIdentity),
        }),
      );
      return { result: 'revoked' };
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchEntityException')
        return { result: 'already-revoked', note: `IAM role ${roleArn} no longer exists` };
      throw awsFailure(`putting deny policy ${policyName} on IAM role ${roleArn}`, error);
    }
  }

  /** Removes the job's deny; a policy or role already gone is fine. */
  async release(roleArn: string, sourceIdentity: string): Promise<void> {
    const policyName = ciDenyPolicyName(sourceIdentity);
    try {
      await this.#iam.send(
        new DeleteRolePolicyCommand({ RoleName: roleNameOf(roleArn), PolicyName: policyName }),
      );
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchEntityException') return;
      throw awsFailure(`removing deny policy ${policyName} from IAM role ${roleArn}`, error);
    }
  }
}
