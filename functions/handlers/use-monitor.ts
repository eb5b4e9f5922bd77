/**
 * The use monitor: EventBridge delivers CloudTrail's API calls made with a CI job's session
 * (SourceIdentity `ci-…`) or signed with an IAM user's long-term access key (`AKIA…`), and each
 * is judged as it arrives:
 *
 * - the first call of an active exchange is recorded as `ci.credentials.used` (what, when, from where);
 * - a call of a session whose exchange already ended (a refused call counts) is `used-after-job-end`;
 * - a call signed with a watched managed key from outside its identity's `allowedRunners` is
 *   `used-from-unexpected-runner`, and with `policy.onUnexpectedUse: contain` the key is ended by
 *   an incident campaign in the revocation state machine (when this function is given one).
 *
 * Each finding is acted on (contained, audited, joined to the latest findings for `keywarden
 * findings`) by the one invocation that wins its claim in the state table; a containment that
 * fails is thrown after the claim is given back, so Lambda retries the event. Events of any other
 * shape are ignored: the rule may be widened without breaking this function. Only handles,
 * addresses and times are logged or returned, never a value.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { BlockListRanges } from '../adapters/address-ranges.ts';
import { SnsExposureAlerts } from '../adapters/alerts/sns-alerts.ts';
import { actionOf, ciUseOf, managedUseOf } from '../adapters/aws/cloudtrail-event.ts';
import {
  type CampaignPlanningDeps,
  stateMachineContainment,
  stepFunctionsLauncher,
} from '../adapters/campaign-launcher.ts';
import { Composition, ciCredentials, liveListing, monitorStore } from '../adapters/composition.ts';
import { cachedWatch } from '../adapters/watched-identities.ts';
import { type CiExchangeDeps, recordUse } from '../core/ci-exchange.ts';
import type { UseContainment } from '../core/unexpected-use.ts';
import { judgeMonitoredUse, USE_MONITOR_ACTOR, type UseMonitorDeps } from '../core/use-monitor.ts';
import { lambdaEnv } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface UseMonitorHandlerDeps {
  /** Recording an active exchange's first use. */
  exchange: Pick<CiExchangeDeps, 'store' | 'audit'>;
  /** Judging a use after a job's end or from outside allowedRunners. */
  monitor: UseMonitorDeps;
  logger: Logger;
}

/** What one event came to: handles, finding ids and campaigns only. */
export interface UseMonitorResult {
  /** `ci.credentials.used` events recorded (0 or 1). */
  recorded: number;
  /** The findings the call makes (ones another call acted on included). */
  findings?: string[];
  contained?: Pick<
    UseContainment,
    'identityId' | 'handle' | 'status' | 'incident' | 'campaignId' | 'reason'
  >[];
}

export function makeHandler(deps: UseMonitorHandlerDeps) {
  return wrap({ logger: deps.logger }, async (event: unknown): Promise<UseMonitorResult> => {
    const ci = ciUseOf(event);
    const { recorded } = ci
      ? await recordUse(deps.exchange, {
          aws: {
            sourceIdentity: ci.sourceIdentity,
            uses: [
              {
                at: ci.at,
                what: actionOf(ci),
                from: ci.sourceIp,
              },
            ],
          },
        })
      : { recorded: 0 };
    const use = managedUseOf(event);
    if (!use) return { recorded };
    const judged = await judgeMonitoredUse(deps.monitor, use);
    if (judged.findings.length === 0) return { recorded };
    const contained = judged.contained.map(
      ({ identityId, handle, status, incident, campaignId, reason }) => ({
        identityId,
        handle,
        status,
        ...(incident ? { incident } : {}),
        ...(campaignId ? { campaignId } : {}),
        ...(reason ? { reason } : {}),
      }),
    );
    const result = {
      recorded,
      findings: judged.findings.map((f) => f.id),
      ...(contained.length ? { contained } : {}),
    };
    if (judged.fresh > 0)
      deps.logger.warn('a credential was used from where, or when, it should not be', {
        ...result,
        at: use.at,
        from: use.from,
        action: use.action,
      });
    return result;
  });
}

/**
 * Cold start: the state table (CI exchanges, inventory, versions, findings and their claims,
 * audit) and, when the construct gives it a revocation state machine, containment through it
 * (campaign planning on the same store and the rotation registries; no Vault: only access keys
 * are watched), alerted on the alert topic it names.
 */
async function init() {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  // The ports this function uses, no more: no grants, inventory sections, Slack deliveries or
  // artifact approvals (their stores and schemas stay out of the bundle).
  const store = composition.get(monitorStore);
  const ciStore = composition.get(ciCredentials);
  const containment = env.revocationStateMachineArn
    ? stateMachineContainment(
        {
          store,
          clock: composition.clock,
          rotationDeps: composition.get(liveListing),
        } satisfies CampaignPlanningDeps,
        stepFunctionsLauncher(config.aws, env.revocationStateMachineArn),
        USE_MONITOR_ACTOR,
      )
    : undefined;
  return makeHandler({
    exchange: { store: ciStore, audit: store },
    monitor: {
      ci: ciStore,
      watched: cachedWatch(store, composition.clock),
      ranges: new BlockListRanges(),
      findings: store,
      audit: store,
      clock: composition.clock,
      containment,
      // Owners of contained keys are told on the alert topic the construct names: SNS alone, so
      // the bundle carries no Slack client.
      alerts:
        containment && env.exposureAlertTopicArn
          ? new SnsExposureAlerts({ topicArn: env.exposureAlertTopicArn, aws: config.aws })
          : undefined,
    },
    logger: new Logger({ serviceName: 'keywarden' }),
  });
}

/** The Lambda entry point (an EventBridge rule on CloudTrail API calls of `ci-` sessions and `AKIA` keys). */
export const handler = entryPoint(init);
