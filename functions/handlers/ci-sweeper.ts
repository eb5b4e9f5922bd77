/**
 * The third guarantee of a CI job's credentials' end, every minute: exchanges past their TTL
 * are recorded as ended (the credentials ended by themselves), a deny put on a role for an early
 * end is removed once the sessions it covers are dead, and, where OpenBao's audit log is
 * readable, the first use of each job token is recorded (`ci.credentials.used`). A failure on one
 * exchange does not stop the others; it fails the run so the alarm on this function's errors fires.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Composition, ciEnding } from '../adapters/composition.ts';
import type { VaultAuditUsage } from '../adapters/vault/audit-usage.ts';
import { type CiExchangeDeps, type CiUse, recordUse, sweepCi } from '../core/ci-exchange.ts';
import { KeywardenError } from '../core/errors.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface CiSweeperDeps {
  exchange: Pick<CiExchangeDeps, 'aws' | 'clock' | 'store' | 'audit'>;
  /** The uses of job tokens by accessor, where a Vault audit log is readable (the local stack). */
  vaultUses?: ((accessors: readonly string[]) => Promise<(CiUse & { accessor: string })[]>) | undefined;
  logger: Logger;
}

export function makeHandler(deps: CiSweeperDeps) {
  return wrap({ logger: deps.logger }, async () => {
    const swept = await sweepCi(deps.exchange);
    const { recorded } = deps.vaultUses
      ? await recordUse(deps.exchange, { vault: deps.vaultUses })
      : { recorded: 0 };
    if (swept.failed) {
      throw new KeywardenError(
        `the CI sweeper could not settle ${swept.failed} exchange(s); the next run tries again`,
        {
          retryable: true,
        },
      );
    }
    return { ...swept, usesRecorded: recorded };
  });
}

/** Job token uses from OpenBao's file audit device, with the address each came from. */
export const vaultUsesOf =
  (usage: VaultAuditUsage) =>
  async (accessors: readonly string[]): Promise<(CiUse & { accessor: string })[]> =>
    (await usage.usesByAccessor(accessors)).map(({ accessor, at, action, from }) => ({
      accessor,
      at,
      what: action,
      from,
    }));

/**
 * The Lambda entry point (a one-minute schedule). No job token use is read here: Vault's audit
 * log is on Vault's own host, and no Lambda function is given it (lambda-config.ts names none),
 * so the bundle carries neither the log reader nor a Vault client; the local runtime reads it.
 */
export const handler = entryPoint(async () =>
  makeHandler({
    exchange: new Composition(await loadLambdaConfig()).get(ciEnding),
    logger: new Logger({ serviceName: 'keywarden' }),
  }),
);
