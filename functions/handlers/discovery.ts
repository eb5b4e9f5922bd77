/**
 * Scheduled discovery (EventBridge Scheduler → Lambda): lists what exists in AWS and
 * Vault, reconciles it with the inventory, records the findings in the state store
 * and a JSON report in S3. Thin: configuration and adapters here, logic in core.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { RuntimeConfigSchema } from '../adapters/runtime-config.ts';
import { wire } from '../adapters/wiring.ts';
import { type DiscoveryDeps, type DiscoveryRun, runDiscovery } from '../core/discovery-run.ts';
import { SeveritySchema } from '../core/findings.ts';
import { optionalEnv, requireEnv } from './env.ts';

export interface DiscoveryHandlerDeps {
  discovery: DiscoveryDeps;
  staleAfter: string;
  report?: { s3: S3Client; bucket: string; prefix: string };
  logger: Logger;
  metrics: Metrics;
}

export interface DiscoveryResult {
  runId: string;
  identities: number;
  discovered: number;
  findings: number;
  counts: DiscoveryRun['counts'];
  report?: string;
}

/** The handler's logic with its dependencies given, so tests pass real adapters on the local stack. */
export function makeHandler(deps: DiscoveryHandlerDeps) {
  return async (): Promise<DiscoveryResult> => {
    const run = await runDiscovery(deps.discovery, {
      staleAfter: deps.staleAfter,
      actor: 'scheduler:discovery',
    });
    let report: string | undefined;
    if (deps.report) {
      report = `${deps.report.prefix}${run.at.slice(0, 10)}/${run.runId}.json`;
      await deps.report.s3.send(
        new PutObjectCommand({
          Bucket: deps.report.bucket,
          Key: report,
          ContentType: 'application/json',
          Body: JSON.stringify(
            { runId: run.runId, at: run.at, counts: run.counts, findings: run.findings },
            null,
            2,
          ),
        }),
      );
    }
    for (const severity of SeveritySchema.options) {
      deps.metrics.addMetric(`findings_${severity}`, MetricUnit.Count, run.counts[severity]);
    }
    deps.metrics.addMetric('credentials_discovered', MetricUnit.Count, run.discovered);
    deps.metrics.publishStoredMetrics();
    // Findings carry ids, keys and handles, never values, so they are safe to log.
    deps.logger.info('discovery completed', {
      runId: run.runId,
      counts: run.counts,
      discovered: run.discovered,
    });
    return {
      runId: run.runId,
      identities: run.identities,
      discovered: run.discovered,
      findings: run.findings.length,
      counts: run.counts,
      ...(report ? { report } : {}),
    };
  };
}

async function secretValue(client: SecretsManagerClient, secretId: string): Promise<string> {
  const { SecretString } = await client.send(
    new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
  );
  if (!SecretString) throw new Error(`secret ${secretId} has no string value`);
  return SecretString;
}

/** Cold start: read the environment and the two service secrets once, build the adapters once. */
async function init(env: NodeJS.ProcessEnv = process.env) {
  const logger = new Logger({ serviceName: 'keywarden-discovery' });
  const metrics = new Metrics({ namespace: 'keywarden', serviceName: 'keywarden-discovery' });
  const region = requireEnv('AWS_REGION', env);
  const secrets = new SecretsManagerClient(awsClientConfig({ region }));
  const vaultAddr = optionalEnv('KEYWARDEN_VAULT_ADDR', env);
  const [fingerprintKey, vaultToken] = await Promise.all([
    secretValue(secrets, requireEnv('KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN', env)),
    vaultAddr ? secretValue(secrets, requireEnv('KEYWARDEN_VAULT_TOKEN_SECRET_ARN', env)) : undefined,
  ]);
  const config = RuntimeConfigSchema.parse({
    aws: { region },
    tableName: requireEnv('KEYWARDEN_TABLE', env),
    reportBucket: optionalEnv('KEYWARDEN_REPORT_BUCKET', env),
    fingerprintKey,
    staleAfter: `${optionalEnv('KEYWARDEN_STALE_AFTER_DAYS', env) ?? '90'}d`,
    discovery: {
      iamPathPrefix: optionalEnv('KEYWARDEN_IAM_PATH_PREFIX', env),
      secretNamePrefix: optionalEnv('KEYWARDEN_SECRET_NAME_PREFIX', env),
      vault: vaultAddr && vaultToken ? { addr: vaultAddr, token: vaultToken } : undefined,
    },
  });
  const services = wire(config);
  if (!vaultAddr) logger.warn('KEYWARDEN_VAULT_ADDR is empty: Vault discovery is skipped');
  return makeHandler({
    discovery: services.discoveryDeps,
    staleAfter: config.staleAfter,
    ...(config.reportBucket
      ? {
          report: {
            s3: services.aws.s3,
            bucket: config.reportBucket,
            prefix: optionalEnv('KEYWARDEN_REPORT_PREFIX', env) ?? 'discovery/',
          },
        }
      : {}),
    logger,
    metrics,
  });
}

let ready: ReturnType<typeof init> | undefined;

/** The Lambda entry point. A failed cold start is retried on the next invocation. */
export const handler = async (): Promise<DiscoveryResult> => {
  ready ??= init().catch((error: unknown) => {
    ready = undefined;
    throw error;
  });
  return (await ready)();
};
