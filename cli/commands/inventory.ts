import type { Command } from 'commander';
import { readInventoryOrThrow } from '../../functions/adapters/inventory-file.ts';
import { wire } from '../../functions/adapters/wiring.ts';
import { CiConfigSchema } from '../../functions/core/ci-policy.ts';
import { BreakglassConfigSchema } from '../../functions/core/grant.ts';
import { stagesOf } from '../../functions/core/identity.ts';
import { syncInventory } from '../../functions/core/inventory-sync.ts';
import { actor, loadConfig } from '../context.ts';
import { printJson, printTable, say } from '../output.ts';

export function registerInventory(program: Command): void {
  const inventory = program.command('inventory').description('the declared pipeline identities');

  inventory
    .command('sync')
    .description('store the identities of FILE; re-running changes nothing, removed entries are retired')
    .argument('<file>', 'the inventory file')
    .option('--json', 'print the summary as JSON')
    .action(async (file: string, options: { json?: boolean }) => {
      const declared = await readInventoryOrThrow(file);
      const services = wire(loadConfig());
      const summary = await syncInventory(services.syncDeps, declared.identities, actor());
      // The break-glass roles and people travel with the inventory; a file without them clears them.
      await services.breakglassStore.putBreakglassConfig(
        declared.breakglass ?? BreakglassConfigSchema.parse({}),
      );
      // So does the ci section: trusted issuers and job grants take effect at the next exchange.
      await services.breakglassStore.putCiConfig(declared.ci ?? CiConfigSchema.parse({}));
      if (options.json) printJson(summary);
      else {
        say(
          `${file}: ${summary.declared} declared, ${summary.changed} changed, ${summary.unchanged} unchanged, ${summary.retired} retired; ${declared.breakglass?.roles.length ?? 0} break-glass role(s); ${declared.ci?.grants.length ?? 0} CI job grant(s)`,
        );
      }
    });

  inventory
    .command('list')
    .description('print the stored identities')
    .option('--json', 'print JSON')
    .option('--all', 'include retired identities')
    .action(async (options: { json?: boolean; all?: boolean }) => {
      const services = wire(loadConfig());
      const records = (await services.store.listIdentities()).filter(
        (r) => options.all || r.status === 'active',
      );
      if (options.json) {
        printJson(
          records.map(({ identity, status, syncedAt, retiredAt }) => ({
            ...identity,
            status,
            syncedAt,
            retiredAt,
          })),
        );
        return;
      }
      printTable(
        ['ID', 'KIND', 'OWNER', 'REPO', 'STAGE', 'ENV', 'MAX AGE', 'ROTATE', 'STATUS'],
        records.map(({ identity, status }) => [
          identity.id,
          identity.kind,
          identity.owner ?? '(none)',
          identity.pipeline.repo,
          stagesOf(identity).join('+'),
          identity.pipeline.environment,
          identity.policy.maxAge,
          identity.policy.rotateEvery,
          status,
        ]),
      );
      say(`${records.length} identities`);
    });
}
