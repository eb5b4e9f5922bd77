/**
 * A revocation run in a process of its own, for specs that must kill a run the hard way
 * (SIGKILL: no signal handler, no `finally`, no checkpoint of what is in flight), as a
 * crashed Lambda or a laptop losing power would. test/integration/campaign-kill.test.ts
 * starts it with `node --import tsx test/support/campaign-run-child.ts <config.json>`.
 *
 * The config file ({@link ChildRunConfig}) holds the runtime configuration (Vault may be
 * reached through a fault proxy of the spec's), the campaign, the limits and the bucket.
 * It names the dev server's root token: a temporary file of the spec's own, on the local
 * stack only. The child prints one line when it starts running and one when it ends (the
 * counts only), and exits 1 with the error's message when the run throws.
 */
import { readFileSync } from 'node:fs';
import type { RateLimits } from '../../functions/adapters/rate-limits.ts';
import { type RuntimeConfigInput, RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { wire } from '../../functions/adapters/wiring.ts';
import { LocalRevocationRunner } from '../../functions/local/revocation-runner.ts';

/** What the spec hands the child, as JSON in a file. */
export interface ChildRunConfig {
  runtime: RuntimeConfigInput;
  campaignId: string;
  /** The plan step's bucket in moto. */
  bucket: string;
  limits: RateLimits;
  actor: string;
  /** Where a finished run's report goes (`KEYWARDEN_REPORTS_DIR`). */
  reportsDir: string;
  /** Retryable failures of earlier runs get a fresh budget (a resume). */
  retryFailed?: boolean;
  /** The batch lease's length (the runner's `leaseMs`). */
  leaseMs?: number;
}

async function main(path: string | undefined): Promise<void> {
  if (!path) throw new Error('expected the path of a JSON config file as the only argument, got none');
  const config = JSON.parse(readFileSync(path, 'utf8')) as ChildRunConfig;
  process.env.KEYWARDEN_REPORTS_DIR = config.reportsDir;
  const services = wire(RuntimeConfigSchema.parse(config.runtime));
  const runner = new LocalRevocationRunner({
    services,
    actor: config.actor,
    bucket: config.bucket,
    limits: config.limits,
    ...(config.leaseMs === undefined ? {} : { leaseMs: config.leaseMs }),
  });
  console.log(`running ${config.campaignId} (pid ${process.pid})`);
  const result = await runner.run(config.campaignId, { retryFailed: config.retryFailed ?? false });
  console.log(`ended ${JSON.stringify(result.campaign.counts.byOutcome)} stopped=${result.stopped}`);
}

main(process.argv[2]).then(
  () => process.exit(0),
  (error: unknown) => {
    // Errors of the adapters carry no secret (functions/core/errors.ts); the message only.
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    process.exit(1);
  },
);
