/**
 * Ends the live STS sessions of an IAM role: the aws-role-session targets of a
 * revocation campaign. STS sessions cannot be revoked one by one; what AWS offers
 * ("Revoke active sessions" in the IAM console) is an inline deny policy on the role
 * with the condition `aws:TokenIssueTime` < a cut-off. Sessions issued before it can do
 * nothing any more; sessions issued after it (a pipeline's next run) work as before.
 *
 * One policy per incident, `keywarden-revoke-<incident>`, so two incidents never
 * overwrite each other's cut-off and a responder can find and remove it afterwards.
 * IAM applies policy changes after a propagation delay of seconds (DESIGN, Known
 * traps): the result says from when the deny can be counted on.
 */
import { GetRolePolicyCommand, type IAMClient, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { ValidationError } from '../../core/errors.ts';
import { IncidentSchema } from '../../core/incident.ts';
import type { RevokeResult, SessionRevoker } from '../../core/ports.ts';
import { awsErrorName, awsFailure } from './clients.ts';
import { denyAllPolicyDocument } from './deny-policy.ts';

const NO_SUCH_ENTITY = 'NoSuchEntityException';

/** How long IAM may take to apply a policy change everywhere; AWS documents "usually seconds". */
export const IAM_PROPAGATION_MS = 10_000;

export interface IamRoleSessionRevokerProps {
  iam: IAMClient;
  /** Time, for `effectiveAfter`; the system clock in production. */
  now?: () => Date;
  propagationMs?: number;
}

/** The inline policy that carries an incident's cut-off. */
export const denyPolicyName = (incident: string): string => `keywarden-revoke-${incident}`;

/** The policy document: deny everything to sessions issued before `issuedBefore`. */
export const denyPolicyDocument = (issuedBefore: string): string =>
  denyAllPolicyDocument('KeywardenRevokeOlderSessions', {
    DateLessThan: { 'aws:TokenIssueTime': issuedBefore },
  });

/** The role name of an ARN such as `arn:aws:iam::123456789012:role/ci/deployer` (the path is not part of it). */
export function roleNameOf(roleArn: string): string {
  const name = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:.*\/)?([\w+=,.@-]+)$/.exec(roleArn)?.[1];
  if (!name)
    throw new ValidationError(
      `expected an IAM role ARN such as arn:aws:iam::123456789012:role/deployer, got ${JSON.stringify(roleArn)}`,
    );
  return name;
}

/** The cut-off a stored deny policy carries, if it is one of ours. */
function cutoffOf(document: string | undefined): string | undefined {
  if (!document) return undefined;
  try {
    // IAM returns policy documents URL-encoded (RFC 3986).
    const parsed = JSON.parse(decodeURIComponent(document)) as {
      Statement?: { Sid?: string; Condition?: { DateLessThan?: Record<string, string> } }[];
    };
    const statement = parsed.Statement?.find((s) => s.Sid === 'KeywardenRevokeOlderSessions');
    return statement?.Condition?.DateLessThan?.['aws:TokenIssueTime'];
  } catch {
    return undefined;
  }
}

export class IamRoleSessionRevoker implements SessionRevoker {
  readonly #iam: IAMClient;
  readonly #now: () => Date;
  readonly #propagationMs: number;

  constructor(props: IamRoleSessionRevokerProps) {
    this.#iam = props.iam;
    this.#now = props.now ?? (() => new Date());
    this.#propagationMs = props.propagationMs ?? IAM_PROPAGATION_MS;
  }

  /**
   * Puts the incident's deny policy on the role, unless it is there already with the
   * same or a later cut-off (`already-revoked`). A role IAM does not know has no
   * sessions that can act: `already-revoked`, saying so.
   */
  async denySessions(
    roleArn: string,
    options: { incident: string; issuedBefore: string },
  ): Promise<RevokeResult> {
    const roleName = roleNameOf(roleArn);
    const policyName = denyPolicyName(IncidentSchema.parse(options.incident));
    const cutoff = new Date(options.issuedBefore).toISOString();
    let existing: string | undefined;
    try {
      const { PolicyDocument } = await this.#iam.send(
        new GetRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }),
      );
      existing = cutoffOf(PolicyDocument);
    } catch (error) {
      if (awsErrorName(error) !== NO_SUCH_ENTITY)
        throw awsFailure(`reading policy ${policyName} of IAM role ${roleName}`, error);
    }
    if (existing !== undefined && Date.parse(existing) >= Date.parse(cutoff)) {
      return {
        result: 'already-revoked',
        note: `policy ${policyName} already denies sessions issued before ${existing}`,
      };
    }
    try {
      await this.#iam.send(
        new PutRolePolicyCommand({
          RoleName: roleName,
          PolicyName: policyName,
          PolicyDocument: denyPolicyDocument(cutoff),
        }),
      );
    } catch (error) {
      if (awsErrorName(error) === NO_SUCH_ENTITY) {
        return {
          result: 'already-revoked',
          note: `role ${roleName} does not exist, so no session can act as it`,
        };
      }
      throw awsFailure(`putting deny policy ${policyName} on IAM role ${roleName}`, error);
    }
    const effectiveAfter = new Date(this.#now().getTime() + this.#propagationMs).toISOString();
    return {
      result: 'revoked',
      note: `policy ${policyName} denies sessions issued before ${cutoff}; effectiveAfter ${effectiveAfter} (IAM propagation)`,
    };
  }
}
