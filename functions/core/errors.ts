/** Base of keywarden's errors: a name, a cause, and whether trying again may help. */
export class KeywardenError extends Error {
  override readonly name: string = 'KeywardenError';
  readonly retryable: boolean;
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable ?? false;
  }
}

/** Input that does not match what keywarden expects; the message says what to change. */
export class ValidationError extends KeywardenError {
  override readonly name: string = 'ValidationError';
}

/** A conditional write lost a race: someone else changed the item first. Re-read and retry. */
export class ConflictError extends KeywardenError {
  override readonly name: string = 'ConflictError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, retryable: true });
  }
}

/** Something that was expected to exist does not. */
export class NotFoundError extends KeywardenError {
  override readonly name: string = 'NotFoundError';
}

/** A new credential failed its test; the old one stays current. */
export class VerificationError extends KeywardenError {
  override readonly name = 'VerificationError';
}
