/**
 * Scheduled rotation (EventBridge Scheduler → Lambda): rotates every identity that is
 * due by rotateEvery or over maxAge, with bounded concurrency and each provider service's
 * rotations started at its rate (the `KEYWARDEN_RATE_*` settings a campaign's revocations
 * keep, functions/adapters/rate-limits.ts `rotationPace`), retires previous versions whose
 * grace ended, and enforces maxAge where rotation fails.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import pLimit from 'p-limit';
import { Composition, identities, rotation } from '../adapters/composition.ts';
import { rateLimitsFromEnv, rotationPace } from '../adapters/rate-limits.ts';
import type { IdentityStore, Limit } from '../core/ports.ts';
import { type RotationDeps, type RotationOutcome, type RotationPace, rotateMany } from '../core/rotation.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface ScheduledRotationDeps {
  identities: IdentityStore;
  rotation: RotationDeps;
  limit: Limit;
  /** A fresh pace for each run (its schedules start empty); none: rotations are not paced. */
  pace?: () => RotationPace;
  logger: Logger;
  metrics: Metrics;
}

export interface ScheduledRotationResult {
  runId: string;
  rotated: number;
  skipped: number;
  failed: number;
  outcomes: RotationOutcome[];
}

/** The handler's logic with its dependencies given, so tests pass real adapters on the local stack. */
export function makeHandler(deps: ScheduledRotationDeps) {
  return wrap({ logger: deps.logger }, async (): Promise<ScheduledRotationResult> => {
    const runId = randomUUID();
    const identities = (await deps.identities.listIdentities())
      .filter((record) => record.status === 'active')
      .map((record) => record.identity);
    const outcomes = await rotateMany(deps.rotation, identities, {
      owner: `scheduled-rotation/${runId}`,
      limit: deps.limit,
      ...(deps.pace && { pace: deps.pace() }),
      onOutcome: (outcome) => {
        if (outcome.status === 'skipped') return;
        // Outcomes carry ids, handles and reasons, never values.
        const log = outcome.status === 'failed' ? deps.logger.error : deps.logger.info;
        log.call(deps.logger, `rotation ${outcome.status}`, { ...outcome });
        deps.metrics.addMetric('rotation_duration', MetricUnit.Milliseconds, outcome.durationMs);
      },
    });
    const count = (status: RotationOutcome['status']) => outcomes.filter((o) => o.status === status).length;
    const result = {
      runId,
      rotated: count('rotated'),
      skipped: count('skipped'),
      failed: count('failed'),
      outcomes,
    };
    deps.metrics.addMetric('rotation_rotated', MetricUnit.Count, result.rotated);
    deps.metrics.addMetric('rotation_failed', MetricUnit.Count, result.failed);
    deps.metrics.publishStoredMetrics();
    deps.logger.info('scheduled rotation completed', {
      runId,
      rotated: result.rotated,
      failed: result.failed,
      skipped: result.skipped,
    });
    return result;
  });
}

async function init() {
  const logger = new Logger({ serviceName: 'keywarden-rotation' });
  const metrics = new Metrics({ namespace: 'keywarden', serviceName: 'keywarden-rotation' });
  const composition = new Composition(await loadLambdaConfig());
  // Read once, at cold start: a bad KEYWARDEN_RATE_* value fails the function, naming the variable.
  const limits = rateLimitsFromEnv();
  return makeHandler({
    identities: composition.get(identities),
    rotation: composition.get(rotation)('scheduler:rotation'),
    limit: pLimit(composition.config.rotationConcurrency),
    pace: () => rotationPace(limits),
    logger,
    metrics,
  });
}

/** The Lambda entry point. */
export const handler = entryPoint(init);
