/**
 * Scheduled discovery (EventBridge Scheduler → Lambda): lists what exists in AWS and
 * Vault, reconciles it with the inventory, records the findings in the state store
 * and a JSON report in S3. Thin: configuration and adapters here, logic in core.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { PutObject } from '../adapters/aws/s3-put-object.ts';
import { Composition, discoveryInAws, putObject } from '../adapters/composition.ts';
import { type DiscoveryDeps, type DiscoveryRun, runDiscovery } from '../core/discovery-run.ts';
import { SeveritySchema } from '../core/findings.ts';
import { KEYWARDEN_ENV, lambdaEnv } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface DiscoveryHandlerDeps {
  discovery: DiscoveryDeps;
  staleAfter: string;
  /** Where the run's report goes: S3 PutObject (a signed `fetch`, no S3 client), the bucket, a key prefix. */
  report?: { putObject: PutObject; bucket: string; prefix: string };
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
  return wrap({ logger: deps.logger }, async (): Promise<DiscoveryResult> => {
    const run = await runDiscovery(deps.discovery, {
      staleAfter: deps.staleAfter,
      actor: 'scheduler:discovery',
    });
    let report: string | undefined;
    if (deps.report) {
      report = `${deps.report.prefix}${run.at.slice(0, 10)}/${run.runId}.json`;
      await deps.report.putObject({
        bucket: deps.report.bucket,
        key: report,
        what: 'discovery report',
        contentType: 'application/json',
        body: JSON.stringify(
          { runId: run.runId, at: run.at, counts: run.counts, findings: run.findings },
          null,
          2,
        ),
      });
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
  });
}

/** Cold start: read the environment and the two service secrets once, build the adapters once. */
async function init(env: NodeJS.ProcessEnv = process.env) {
  const logger = new Logger({ serviceName: 'keywarden-discovery' });
  const metrics = new Metrics({ namespace: 'keywarden', serviceName: 'keywarden-discovery' });
  const config = await loadLambdaConfig(env);
  const composition = new Composition(config);
  if (!config.vault) logger.warn(`${KEYWARDEN_ENV.vaultAddr} is empty: Vault discovery is skipped`);
  return makeHandler({
    discovery: composition.get(discoveryInAws).discoveryDeps,
    staleAfter: config.staleAfter,
    ...(config.reportBucket
      ? {
          report: {
            putObject: composition.get(putObject),
            bucket: config.reportBucket,
            prefix: lambdaEnv(env).reportPrefix ?? 'discovery/',
          },
        }
      : {}),
    logger,
    metrics,
  });
}

/** The Lambda entry point. */
export const handler = entryPoint(() => init());
