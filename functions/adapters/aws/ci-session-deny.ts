/**
 * The end of a CI job's AWS sessions, through the role-deny door ({@link RoleDenyClient}):
 * a deny-everything policy for the job's SourceIdentity on the role (ci-role-deny.ts), and its
 * removal once the sessions it covers are dead. {@link StsCiSessionIssuer} ends its sessions
 * with it; a function that only ends them (the CI sweeper) uses it alone, so its bundle carries
 * no STS or IAM client.
 */
import type { CiAwsIssuer } from '../../core/ports.ts';
import type { RoleDenyClient } from './role-deny-client.ts';

/** The `end` and `release` of {@link CiAwsIssuer}, through the role-deny door. */
export class RoleDenyCiSessions implements Pick<CiAwsIssuer, 'end' | 'release'> {
  readonly #deny: RoleDenyClient;

  constructor(props: { deny: RoleDenyClient }) {
    this.#deny = props.deny;
  }

  /** Denies everything to the role's sessions of this job. */
  async end(request: { roleArn: string; sourceIdentity: string }): Promise<void> {
    await this.#deny.run({
      action: 'deny',
      roleArn: request.roleArn,
      deny: { sourceIdentity: request.sourceIdentity, purpose: 'ci' },
    });
  }

  /** Removes the job's deny once its sessions are dead (900 s after the last was issued). */
  async release(request: { roleArn: string; sourceIdentity: string }): Promise<void> {
    await this.#deny.run({
      action: 'release',
      roleArn: request.roleArn,
      release: { sourceIdentity: request.sourceIdentity, purpose: 'ci' },
    });
  }
}
