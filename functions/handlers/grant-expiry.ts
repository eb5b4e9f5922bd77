/**
 * The second guarantee of a break-glass grant's end: its one-time EventBridge Scheduler
 * schedule calls this at the grant's end with `{ "grantId": … }`. The grant is recorded
 * expired and its credentials ended (they ended by themselves already: the first guarantee).
 * Running twice, or after the sweeper, changes nothing.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { GrantExpiryInputSchema } from '../adapters/aws/grant-expiry-scheduler.ts';
import { wire } from '../adapters/wiring.ts';
import { type BreakglassDeps, type ExpiryOutcome, expire } from '../core/breakglass.ts';
import { ValidationError } from '../core/errors.ts';
import { coldStart, loadLambdaConfig } from './lambda-config.ts';

export interface GrantExpiryDeps {
  breakglass: BreakglassDeps;
  logger: Logger;
}

export function makeHandler(deps: GrantExpiryDeps) {
  return async (event: unknown): Promise<{ grantId: string; outcome: ExpiryOutcome }> => {
    const parsed = GrantExpiryInputSchema.safeParse(event);
    if (!parsed.success) {
      throw new ValidationError(
        `expected the schedule's input {"grantId": "…"}, got ${JSON.stringify(event)?.slice(0, 200)}`,
      );
    }
    const { grantId } = parsed.data;
    const outcome = await expire(deps.breakglass, grantId, 'schedule');
    deps.logger.info('grant expiry', { grantId, outcome });
    return { grantId, outcome };
  };
}

const ready = coldStart(async () => {
  const services = wire(await loadLambdaConfig());
  return makeHandler({
    breakglass: services.breakglassDeps,
    logger: new Logger({ serviceName: 'keywarden' }),
  });
});

export const handler = async (event: unknown) => (await ready())(event);
