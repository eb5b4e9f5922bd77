/**
 * The rotation function of native Secrets Manager rotation: Secrets Manager invokes it
 * with {Step, SecretId, ClientRequestToken} four times per rotation. It checks the
 * envelope first, as the AWS rotation template does (rotation enabled, token known and
 * AWSPENDING, already AWSCURRENT → nothing to do), then runs that step of keywarden's
 * protocol for the identity whose delivery target the secret is: the secret's own value
 * (aws-secret) or the credential it carries (an IAM key, a Vault token…).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DescribeSecretCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as z from 'zod';
import { Composition, identities, rotation, secrets } from '../adapters/composition.ts';
import { KeywardenError } from '../core/errors.ts';
import { deliveryOf } from '../core/kinds.ts';
import type { IdentityStore } from '../core/ports.ts';
import { type RotationDeps, runNativeStep } from '../core/rotation.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

/** The event Secrets Manager sends (RotationToken is present for cross-account rotation). */
export const SecretRotationEventSchema = z.object({
  Step: z.enum(['createSecret', 'setSecret', 'testSecret', 'finishSecret']),
  SecretId: z.string().min(1),
  ClientRequestToken: z.string().min(32).max(64),
  RotationToken: z.string().optional(),
});
export type SecretRotationEvent = z.infer<typeof SecretRotationEventSchema>;

export interface SecretRotationDeps {
  secrets: SecretsManagerClient;
  identities: IdentityStore;
  rotation: RotationDeps;
  logger: Logger;
  metrics: Metrics;
}

export type SecretRotationResult = { step: SecretRotationEvent['Step']; identityId?: string; result: string };

/** The handler's logic with its dependencies given, so tests pass real adapters on the local stack. */
export function makeHandler(deps: SecretRotationDeps) {
  return wrap(
    {
      event: SecretRotationEventSchema,
      expected: 'a Secrets Manager rotation event {Step, SecretId, ClientRequestToken}',
      logger: deps.logger,
    },
    async ({ Step: step, SecretId: secretId, ClientRequestToken: token }): Promise<SecretRotationResult> => {
      const described = await deps.secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
      const arn = described.ARN ?? secretId;
      if (!described.RotationEnabled) throw new KeywardenError(`secret ${arn} is not enabled for rotation`);
      const stages = described.VersionIdsToStages?.[token];
      // Secrets Manager labels the token AWSPENDING before createSecret. An unknown token at
      // createSecret means the rotation was started outside Secrets Manager (the local
      // runtime); every later step must find the label.
      if (!stages && step !== 'createSecret') {
        throw new KeywardenError(`secret version ${token} has no stage for rotation of secret ${arn}`);
      }
      if (stages?.includes('AWSCURRENT')) {
        deps.logger.info('version already AWSCURRENT: nothing to do', { step, secretId: arn, token });
        return { step, result: 'already-current' };
      }
      if (stages && !stages.includes('AWSPENDING')) {
        throw new KeywardenError(
          `secret version ${token} is not set as AWSPENDING for rotation of secret ${arn}`,
        );
      }
      const names = new Set([secretId, arn, described.Name].filter(Boolean));
      const identity = (await deps.identities.listIdentities())
        .filter((record) => record.status === 'active')
        .map((record) => record.identity)
        .find((candidate) => {
          const delivery = deliveryOf(candidate);
          return delivery?.type === 'aws-secret' && names.has(delivery.secretId);
        });
      if (!identity) {
        throw new KeywardenError(
          `secret ${arn} is not the delivery target of any active identity; declare it in identities.yaml and sync before enabling rotation`,
        );
      }
      try {
        const result = await runNativeStep(deps.rotation, identity, step, token, `secret-rotation/${token}`);
        deps.logger.info(`${step} ${result}`, { identityId: identity.id, secretId: arn, token });
        if (step === 'finishSecret' && result === 'done')
          deps.metrics.addMetric('rotation_rotated', MetricUnit.Count, 1);
        return { step, identityId: identity.id, result };
      } catch (error) {
        deps.metrics.addMetric('rotation_failed', MetricUnit.Count, 1);
        deps.logger.error(`${step} failed`, {
          identityId: identity.id,
          secretId: arn,
          error: (error as Error).message,
        });
        throw error;
      } finally {
        deps.metrics.publishStoredMetrics();
      }
    },
  );
}

async function init() {
  const logger = new Logger({ serviceName: 'keywarden-secret-rotation' });
  const metrics = new Metrics({ namespace: 'keywarden', serviceName: 'keywarden-rotation' });
  const composition = new Composition(await loadLambdaConfig());
  return makeHandler({
    secrets: composition.get(secrets),
    identities: composition.get(identities),
    rotation: composition.get(rotation)('secretsmanager:rotation'),
    logger,
    metrics,
  });
}

/** The Lambda entry point. */
export const handler = entryPoint(init);
