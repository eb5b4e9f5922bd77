/**
 * A construct received a property it cannot build a safe resource from.
 *
 * Thrown while the CDK app is being constructed, so `cdk synth` fails before any
 * template is written. The message names the property, the value received and what
 * to pass instead. Never retryable: the input has to change.
 */
export class InfraConfigError extends Error {
  override readonly name = 'InfraConfigError';
  readonly retryable = false;
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
}
