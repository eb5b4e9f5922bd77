import { randomUUID } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readInventoryOrThrow } from '../../functions/adapters/inventory-file.ts';
import { wire } from '../../functions/adapters/wiring.ts';
import { CiConfigSchema } from '../../functions/core/ci-policy.ts';
import { runDiscovery } from '../../functions/core/discovery-run.ts';
import { BreakglassConfigSchema } from '../../functions/core/grant.ts';
import { syncInventory } from '../../functions/core/inventory-sync.ts';
import { devDown, devUp } from '../../functions/local/dev.ts';
import { runtimeFile, startLocalRuntime } from '../../functions/local/runtime.ts';
import { LocalScheduler } from '../../functions/local/scheduler.ts';
import { REPO_ROOT, stackStatus } from '../../scripts/local-stack.ts';
import { actor, loadConfig, stateDir } from '../context.ts';
import { ExitCode } from '../errors.ts';
import { printJson, say } from '../output.ts';
import { printFindings } from './findings.ts';

export const DEMO_INVENTORY = join(REPO_ROOT, 'demo', 'identities.yaml');

export function registerDev(program: Command): void {
  const dev = program
    .command('dev')
    .description('the local stack: moto, dynalite (DynamoDB) and OpenBao on loopback');

  dev
    .command('up')
    .description(
      'start the local stack (installing it on first use); --demo seeds a demo company and prints its findings',
    )
    .option('--demo', 'seed the demo credentials, sync demo/identities.yaml and print the findings')
    .option(
      '--users <names>',
      'also hand development tokens to these users (comma-separated), e.g. an approver: --users alice,bob',
    )
    .option(
      '--slack-signing-secret <secret>',
      'the local Slack signing secret (default: KEYWARDEN_SLACK_SIGNING_SECRET, else the one in the state folder, else a random one); the environment variable keeps it out of the process list',
    )
    .action(async (options: { demo?: boolean; users?: string; slackSigningSecret?: string }) => {
      const dir = stateDir();
      const users = (options.users ?? '')
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean);
      const { config, runtime } = await devUp(dir, {
        demo: options.demo ?? false,
        log: say,
        users,
        slackSigningSecret: options.slackSigningSecret,
      });
      say(
        `local stack up: moto ${config.aws.endpoint}, DynamoDB (dynalite) ${config.aws.dynamodbEndpoint}, OpenBao ${config.vault?.addr} (state in ${dir})`,
      );
      if (runtime) say(`local runtime (HTTP API, grant schedules, sweeper): ${runtime.url}`);
      if (!options.demo) return;
      const services = wire(config);
      const inventory = await readInventoryOrThrow(DEMO_INVENTORY);
      const summary = await syncInventory(services.syncDeps, inventory.identities, actor());
      await services.breakglassStore.putBreakglassConfig(
        inventory.breakglass ?? BreakglassConfigSchema.parse({}),
      );
      await services.breakglassStore.putCiConfig(inventory.ci ?? CiConfigSchema.parse({}));
      say(
        `demo inventory: ${inventory.identities.length} identities (${summary.declared} new, ${summary.changed} changed)`,
      );
      const run = await runDiscovery(
        { ...services.discoveryDeps, newId: randomUUID },
        { staleAfter: config.staleAfter, actor: actor() },
      );
      say(`discovered ${run.discovered} credentials; findings:`);
      printFindings(run.findings);
      say(
        `${run.findings.length} finding(s). Next: keywarden findings --fail-on high · keywarden inventory list · keywarden audit verify · keywarden dev down`,
      );
    });

  dev
    .command('schedule')
    .description('fire the schedules as AWS would: scheduled rotation, native secret rotation, discovery')
    .option('--once', 'one round, then exit')
    .option('--every <seconds>', 'seconds between rounds', '60')
    .action(async (options: { once?: boolean; every: string }) => {
      const scheduler = new LocalScheduler(wire(loadConfig()));
      const every = Math.max(1, Number.parseInt(options.every, 10) || 60) * 1_000;
      for (;;) {
        const tick = await scheduler.tick();
        const { rotated, failed, skipped } = tick.rotation;
        say(
          `${tick.at} rotation: ${rotated} rotated, ${failed} failed, ${skipped} skipped; native: ${tick.native.length}; findings: ${tick.findings}`,
        );
        for (const outcome of tick.rotation.outcomes.filter((o) => o.status === 'failed')) {
          say(`  failed ${outcome.identityId}: ${outcome.reason}`);
        }
        for (const native of tick.native) say(`  native ${native.secretId}: ${native.result}`);
        if (options.once) return;
        await new Promise((resolve) => setTimeout(resolve, every));
      }
    });

  dev
    .command('serve')
    .description(
      'run the local runtime in the foreground: the HTTP API, grant expiry schedules and the sweeper',
    )
    .option(
      '--no-schedules',
      'do not fire grant expiry schedules (to see the TTL and the sweeper end access alone)',
    )
    .option('--sweep-every <seconds>', 'seconds between sweeper runs', '30')
    .action(async (options: { schedules: boolean; sweepEvery: string }) => {
      const dir = stateDir();
      const services = wire(loadConfig());
      const runtime = await startLocalRuntime({
        stateDir: dir,
        services,
        schedules: options.schedules && process.env.KEYWARDEN_LOCAL_SCHEDULES !== 'off',
        sweepEveryMs:
          Math.max(1, Number.parseInt(process.env.KEYWARDEN_SWEEP_EVERY ?? options.sweepEvery, 10) || 30) *
          1_000,
        log: (line) => say(`${new Date().toISOString()} ${line}`),
      });
      // Written whole, then renamed: `dev up` polls this file and must never read half of it.
      writeFileSync(
        `${runtimeFile(dir)}.tmp`,
        JSON.stringify({ url: runtime.url, pid: process.pid, startedAt: new Date().toISOString() }),
        { mode: 0o600 },
      );
      renameSync(`${runtimeFile(dir)}.tmp`, runtimeFile(dir));
      say(`local runtime listening on ${runtime.url}`);
      const stop = () => {
        void runtime.stop().then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      await new Promise(() => {});
    });

  dev
    .command('down')
    .description('stop the local stack and forget its state')
    .action(async () => {
      say((await devDown(stateDir())) ? 'local stack stopped' : 'no local stack was running');
    });

  dev
    .command('status')
    .description('say whether the local stack is running and answering')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const status = await stackStatus(stateDir());
      if (options.json) {
        printJson(
          status.running
            ? {
                running: true,
                moto: { endpoint: status.stack.moto.endpoint, up: status.moto },
                dynamodb: { endpoint: status.stack.dynamodb.endpoint, up: status.dynamodb },
                vault: { addr: status.stack.vault.addr, up: status.vault },
              }
            : { running: false },
        );
      } else if (!status.running) say('local stack: not running (start it with `keywarden dev up`)');
      else {
        say(`moto     ${status.stack.moto.endpoint}  ${status.moto ? 'up' : 'DOWN'}`);
        say(`DynamoDB ${status.stack.dynamodb.endpoint}  ${status.dynamodb ? 'up' : 'DOWN'} (dynalite)`);
        say(`OpenBao  ${status.stack.vault.addr}  ${status.vault ? 'up' : 'DOWN'}`);
      }
      if (status.running && !(status.moto && status.dynamodb && status.vault)) throw new ExitCode(1);
      if (!status.running) throw new ExitCode(3);
    });
}
