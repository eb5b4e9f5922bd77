import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { type RuntimeConfig, RuntimeConfigSchema } from '../adapters/runtime-config.ts';
import { SecretValue } from '../core/secret-value.ts';
import { KEYWARDEN_ENV, lambdaEnv, requireEnv } from './env.ts';

/** A secret's current string value (keywarden's own secrets: keys and tokens it runs on). */
export async function readSecret(client: SecretsManagerClient, secretId: string): Promise<string> {
  const { SecretString } = await client.send(
    new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
  );
  if (!SecretString) throw new Error(`secret ${secretId} has no string value; set it with put-secret-value`);
  return SecretString;
}

/** The Slack signing secret the function's environment names (the Slack ingress and worker functions). */
export async function readSlackSigningSecret(client: SecretsManagerClient): Promise<SecretValue> {
  return new SecretValue(await readSecret(client, requireEnv(KEYWARDEN_ENV.slackSigningSecretArn)));
}

/**
 * The configuration every keywarden function shares, read once at cold start from the
 * environment the CDK stack sets ({@link lambdaEnv}), and from the two service secrets it names
 * (the fingerprint HMAC key, and the Vault token when a Vault address is set).
 */
export async function loadLambdaConfig(env: NodeJS.ProcessEnv = process.env): Promise<RuntimeConfig> {
  const settings = lambdaEnv(env);
  const secrets = new SecretsManagerClient(awsClientConfig({ region: settings.region }));
  const [fingerprintKey, vaultToken, githubWebhookSecret, gitlabWebhookSecret] = await Promise.all([
    readSecret(secrets, settings.fingerprintKeySecretArn),
    settings.vaultAddr && settings.vaultTokenSecretArn
      ? readSecret(secrets, settings.vaultTokenSecretArn)
      : undefined,
    settings.githubWebhookSecretArn ? readSecret(secrets, settings.githubWebhookSecretArn) : undefined,
    settings.gitlabWebhookSecretArn ? readSecret(secrets, settings.gitlabWebhookSecretArn) : undefined,
  ]);
  return RuntimeConfigSchema.parse({
    aws: { region: settings.region },
    tableName: settings.table,
    reportBucket: settings.reportBucket,
    fingerprintKey,
    staleAfter: `${settings.staleAfterDays ?? '90'}d`,
    discovery: {
      iamPathPrefix: settings.iamPathPrefix,
      secretNamePrefix: settings.secretNamePrefix,
    },
    vault: settings.vaultAddr && vaultToken ? { addr: settings.vaultAddr, token: vaultToken } : undefined,
    rotationConcurrency: settings.rotationConcurrency,
    ci: {
      approvalKeyId: settings.approvalKeyId,
      githubWebhookSecret,
      gitlabWebhookSecret,
      rolePaths: settings.ciRolePath ? [settings.ciRolePath] : undefined,
    },
    breakglass: {
      scheduleGroup: settings.grantScheduleGroup,
      scheduleRoleArn: settings.grantScheduleRoleArn,
      expiryFunctionArn: settings.grantExpiryFunctionArn,
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
