/**
 * The third guarantee of a break-glass grant's end: every few minutes, end any approved or
 * active grant past its end that its schedule did not (Scheduler down, schedule never
 * created), reading only the grants due (core/grant-sweep.ts). A failure on one grant does not stop the others; it fails the run so the alarm
 * on this function's errors fires.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { breakglassEnding, Composition } from '../adapters/composition.ts';
import type { BreakglassDeps } from '../core/breakglass.ts';
import { KeywardenError } from '../core/errors.ts';
import { sweep } from '../core/grant-sweep.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface GrantSweeperDeps {
  breakglass: BreakglassDeps;
  logger: Logger;
}

export function makeHandler(deps: GrantSweeperDeps) {
  return wrap({ logger: deps.logger }, async (): Promise<{ expired: string[] }> => {
    const { expired, failed } = await sweep(deps.breakglass);
    if (expired.length) deps.logger.warn('the sweeper ended grants their schedule did not', { expired });
    if (failed.length) {
      throw new KeywardenError(
        `the sweeper could not end ${failed.length} overdue grant(s): ${failed.join(', ')}`,
        { retryable: true },
      );
    }
    return { expired };
  });
}

/** The Lambda entry point. */
export const handler = entryPoint(async () =>
  makeHandler({
    breakglass: new Composition(await loadLambdaConfig()).get(breakglassEnding),
    logger: new Logger({ serviceName: 'keywarden' }),
  }),
);
