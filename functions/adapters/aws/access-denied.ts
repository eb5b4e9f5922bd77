/**
 * AWS refusing a call for lack of permission, told apart from AWS failing. Discovery looks
 * declared resources up directly, wherever they are; a deployment may not allow that for
 * every one of them, and a refused lookup must then say which permission it needed
 * instead of failing the whole run (see core/denied-lookup.ts).
 */
import { KeywardenError } from '../../core/errors.ts';
import { awsErrorName, awsFailure } from './clients.ts';

/** IAM answers `AccessDenied`, the JSON-protocol services (Secrets Manager) `AccessDeniedException`. */
const ACCESS_DENIED = new Set(['AccessDenied', 'AccessDeniedException']);

/** True when AWS refused the call for lack of permission. */
export const isAccessDenied = (error: unknown): boolean => ACCESS_DENIED.has(awsErrorName(error) ?? '');

/** A call AWS refused for lack of `permission`; its message is {@link awsFailure}'s. */
export class AccessDeniedError extends KeywardenError {
  override readonly name = 'AccessDeniedError';
  /** The IAM action that was refused, such as `iam:GetUser`. */
  readonly permission: string;
  /** AWS's error code, such as `AccessDenied`. */
  readonly answer: string;

  constructor(permission: string, doing: string, cause: unknown) {
    super(awsFailure(doing, cause).message, { cause, retryable: false });
    this.permission = permission;
    this.answer = awsErrorName(cause) ?? 'AccessDenied';
  }
}

/** The error to throw for a failed call: {@link AccessDeniedError} when refused, else {@link awsFailure}'s. */
export function awsCallFailure(permission: string, doing: string, error: unknown): KeywardenError {
  return isAccessDenied(error) ? new AccessDeniedError(permission, doing, error) : awsFailure(doing, error);
}
