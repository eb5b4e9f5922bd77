import { KeywardenError } from '../core/errors.ts';

/** A required environment variable; a missing one names itself and what sets it. */
export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (!value) {
    throw new KeywardenError(
      `environment variable ${name} is not set; expected the value the CDK stack (infra/) gives this function`,
    );
  }
  return value;
}

/** An optional environment variable, `undefined` when empty. */
export const optionalEnv = (name: string, env: NodeJS.ProcessEnv = process.env): string | undefined =>
  env[name] || undefined;
