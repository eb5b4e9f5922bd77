/**
 * The local runtime's scheduler: what EventBridge Scheduler and Secrets Manager's
 * rotation schedule do in AWS, done in process against the local stack. Each tick
 * calls the very same handlers (scheduled rotation, native secret rotation, discovery).
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { paginateListSecrets } from '@aws-sdk/client-secrets-manager';
import { type RateLimits, rateLimitsFromEnv, rotationPace } from '../adapters/rate-limits.ts';
import type { Services } from '../adapters/wiring.ts';
import { deliveryOf } from '../core/kinds.ts';
import { makeHandler as discoveryHandler } from '../handlers/discovery.ts';
import {
  type ScheduledRotationResult,
  makeHandler as scheduledRotationHandler,
} from '../handlers/scheduled-rotation.ts';
import { makeHandler as secretRotationHandler } from '../handlers/secret-rotation.ts';

export interface TickResult {
  at: string;
  rotation: ScheduledRotationResult;
  native: { secretId: string; identityId?: string; result: string }[];
  findings: number;
}

const DAY = 86_400_000;

/** Drives the handlers on schedule; `tick()` is one round of every schedule that is due. */
export class LocalScheduler {
  readonly #services: Services;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #limits: RateLimits;

  /**
   * @param options.limits each provider service's rate, which scheduled rotations keep as a
   *   campaign's revocations do. @default rateLimitsFromEnv() (refused here, naming the variable, when invalid)
   */
  constructor(services: Services, options: { limits?: RateLimits } = {}) {
    this.#services = services;
    this.#limits = options.limits ?? rateLimitsFromEnv();
    // Structured logs and EMF metrics are for CloudWatch; on a laptop the CLI prints a summary.
    this.#logger = new Logger({ serviceName: 'keywarden-local', logLevel: 'SILENT' });
    this.#metrics = new Metrics({ namespace: 'keywarden', serviceName: 'keywarden-local' });
    this.#metrics.setThrowOnEmptyMetrics(false);
    process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  }

  async tick(): Promise<TickResult> {
    const services = this.#services;
    const at = services.clock.now();
    const rotation = await scheduledRotationHandler({
      identities: services.store,
      rotation: services.rotationDeps('scheduler:rotation'),
      limit: services.limit,
      pace: () => rotationPace(this.#limits),
      logger: this.#logger,
      metrics: this.#metrics,
    })();
    const native = await this.#nativeRotations(at);
    const discovery = await discoveryHandler({
      discovery: services.discoveryDeps,
      staleAfter: services.config.staleAfter,
      logger: this.#logger,
      metrics: this.#metrics,
    })();
    return { at: at.toISOString(), rotation, native, findings: discovery.findings };
  }

  /**
   * Secrets with native rotation enabled whose rule says they are due, judged from the
   * identity's current version; each is rotated through the four steps Secrets Manager calls.
   */
  async #nativeRotations(at: Date): Promise<TickResult['native']> {
    const services = this.#services;
    const secretRotation = secretRotationHandler({
      secrets: services.aws.secrets,
      identities: services.store,
      rotation: services.rotationDeps('secretsmanager:rotation'),
      logger: this.#logger,
      metrics: this.#metrics,
    });
    const identities = (await services.store.listIdentities())
      .filter((r) => r.status === 'active')
      .map((r) => r.identity);
    const results: TickResult['native'] = [];
    for await (const page of paginateListSecrets(
      { client: services.aws.secrets },
      { Filters: [{ Key: 'name', Values: [services.config.discovery.secretNamePrefix] }] },
    )) {
      for (const secret of page.SecretList ?? []) {
        const days = secret.RotationRules?.AutomaticallyAfterDays;
        if (!secret.RotationEnabled || !days || !secret.Name) continue;
        const identity = identities.find((candidate) => {
          const delivery = deliveryOf(candidate);
          return (
            delivery?.type === 'aws-secret' &&
            (delivery.secretId === secret.Name || delivery.secretId === secret.ARN)
          );
        });
        const current = identity
          ? (await services.store.listVersions(identity.id)).find((v) => v.stage === 'current')
          : undefined;
        if (current && Date.parse(current.issuedAt) + days * DAY > at.getTime()) continue;
        const token = randomUUID();
        try {
          let last = { result: 'done' } as { result: string; identityId?: string };
          for (const Step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) {
            last = await secretRotation({ Step, SecretId: secret.Name, ClientRequestToken: token });
          }
          results.push({
            secretId: secret.Name,
            ...(last.identityId ? { identityId: last.identityId } : {}),
            result: 'rotated',
          });
        } catch (error) {
          results.push({ secretId: secret.Name, result: `failed: ${(error as Error).message}` });
        }
      }
    }
    return results;
  }
}
