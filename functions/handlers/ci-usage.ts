/**
 * A CI job's AWS session seen in use: EventBridge delivers the CloudTrail API-call events of
 * sessions whose SourceIdentity starts with `ci-` (the job's correlation id), and the first use
 * of each exchange is recorded as `ci.credentials.used` (the call, its time and address). Events
 * of any other shape are ignored: the rule may be widened without breaking this function.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { ciUseOf } from '../adapters/aws/cloudtrail-event.ts';
import { Composition, ciStores, stores } from '../adapters/wiring.ts';
import { type CiExchangeDeps, recordUse } from '../core/ci-exchange.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface CiUsageDeps {
  exchange: Pick<CiExchangeDeps, 'store' | 'audit'>;
  logger: Logger;
}

export function makeHandler(deps: CiUsageDeps) {
  return wrap({ logger: deps.logger }, async (event: unknown) => {
    const use = ciUseOf(event);
    if (!use) return { recorded: 0 };
    return recordUse(deps.exchange, {
      aws: {
        sourceIdentity: use.sourceIdentity,
        uses: [
          {
            at: use.at,
            what: `${use.eventSource.replace(/\.amazonaws\.com$/, '')}:${use.eventName}${use.errorCode ? ` (${use.errorCode})` : ''}`,
            from: use.sourceIp,
          },
        ],
      },
    });
  });
}

/** The Lambda entry point (an EventBridge rule on CloudTrail API calls of `ci-` sessions). */
export const handler = entryPoint(async () => {
  // The store and the audit log only: no verifier, no STS, no Vault in this bundle.
  const composition = new Composition(await loadLambdaConfig());
  return makeHandler({
    exchange: { store: composition.get(ciStores).credentials, audit: composition.get(stores).store },
    logger: new Logger({ serviceName: 'keywarden' }),
  });
});
