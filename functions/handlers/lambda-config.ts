import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { type RuntimeConfig, RuntimeConfigSchema } from '../adapters/runtime-config.ts';
import { optionalEnv, requireEnv } from './env.ts';

/** A secret's current string value (keywarden's own secrets: keys and tokens it runs on). */
export async function readSecret(client: SecretsManagerClient, secretId: string): Promise<string> {
  const { SecretString } = await client.send(
    new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
  );
  if (!SecretString) throw new Error(`secret ${secretId} has no string value; set it with put-secret-value`);
  return SecretString;
}

/**
 * The configuration every keywarden function shares, read once at cold start from the
 * environment the CDK stack sets, and from the two service secrets it names (the
 * fingerprint HMAC key, and the Vault token when a Vault address is set).
 */
export async function loadLambdaConfig(env: NodeJS.ProcessEnv = process.env): Promise<RuntimeConfig> {
  const region = requireEnv('AWS_REGION', env);
  const secrets = new SecretsManagerClient(awsClientConfig({ region }));
  const vaultAddr = optionalEnv('KEYWARDEN_VAULT_ADDR', env);
  const [fingerprintKey, vaultToken] = await Promise.all([
    readSecret(secrets, requireEnv('KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN', env)),
    vaultAddr ? readSecret(secrets, requireEnv('KEYWARDEN_VAULT_TOKEN_SECRET_ARN', env)) : undefined,
  ]);
  return RuntimeConfigSchema.parse({
    aws: { region },
    tableName: requireEnv('KEYWARDEN_TABLE', env),
    reportBucket: optionalEnv('KEYWARDEN_REPORT_BUCKET', env),
    fingerprintKey,
    staleAfter: `${optionalEnv('KEYWARDEN_STALE_AFTER_DAYS', env) ?? '90'}d`,
    discovery: {
      iamPathPrefix: optionalEnv('KEYWARDEN_IAM_PATH_PREFIX', env),
      secretNamePrefix: optionalEnv('KEYWARDEN_SECRET_NAME_PREFIX', env),
    },
    vault: vaultAddr && vaultToken ? { addr: vaultAddr, token: vaultToken } : undefined,
    rotationConcurrency: optionalEnv('KEYWARDEN_ROTATION_CONCURRENCY', env),
    breakglass: {
      scheduleGroup: optionalEnv('KEYWARDEN_GRANT_SCHEDULE_GROUP', env),
      scheduleRoleArn: optionalEnv('KEYWARDEN_GRANT_SCHEDULE_ROLE_ARN', env),
      expiryFunctionArn: optionalEnv('KEYWARDEN_GRANT_EXPIRY_FUNCTION_ARN', env),
    },
  });
}

/**
 * Builds a handler once per container: a failed cold start is retried by the next
 * invocation instead of being cached.
 */
export function coldStart<H>(init: () => Promise<H>): () => Promise<H> {
  let ready: Promise<H> | undefined;
  return () => {
    ready ??= init().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
}
