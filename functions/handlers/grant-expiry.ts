/**
 * The second guarantee of a break-glass grant's end: its one-time EventBridge Scheduler
 * schedule calls this at the grant's end with `{ "grantId": … }`. The grant is recorded
 * expired and its credentials ended (they ended by themselves already: the first guarantee).
 * Running twice, or after the sweeper, changes nothing.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { GrantExpiryInputSchema } from '../adapters/aws/grant-expiry-scheduler.ts';
import { breakglassExpiring, Composition } from '../adapters/composition.ts';
import { type BreakglassDeps, type ExpiryOutcome, expire } from '../core/breakglass.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface GrantExpiryDeps {
  breakglass: BreakglassDeps;
  logger: Logger;
}

export function makeHandler(deps: GrantExpiryDeps) {
  return wrap(
    { event: GrantExpiryInputSchema, expected: `the schedule's input {"grantId": "…"}`, logger: deps.logger },
    async ({ grantId }): Promise<{ grantId: string; outcome: ExpiryOutcome }> => {
      const outcome = await expire(deps.breakglass, grantId, 'schedule');
      deps.logger.info('grant expiry', { grantId, outcome });
      return { grantId, outcome };
    },
  );
}

/** The Lambda entry point. */
export const handler = entryPoint(async () =>
  makeHandler({
    breakglass: new Composition(await loadLambdaConfig()).get(breakglassExpiring),
    logger: new Logger({ serviceName: 'keywarden' }),
  }),
);
