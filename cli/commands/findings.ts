import { randomUUID } from 'node:crypto';
import { type Command, Option } from 'commander';
import { alerts, Composition, wire } from '../../functions/adapters/wiring.ts';
import { runDiscovery } from '../../functions/core/discovery-run.ts';
import { type Finding, type Severity, SeveritySchema, severityRank } from '../../functions/core/findings.ts';
import { containUnexpectedUse } from '../../functions/core/unexpected-use.ts';
import { localContainment } from '../../functions/local/exposure-containment.ts';
import { actor, loadConfig } from '../context.ts';
import { ExitCode } from '../errors.ts';
import { printJson, printTable, say } from '../output.ts';

/** Prints findings as a table. */
export function printFindings(findings: readonly Finding[]): void {
  printTable(
    ['SEVERITY', 'FINDING', 'SUBJECT', 'DETAIL'],
    findings.map((f) => [f.severity, f.type, f.subject, f.message]),
  );
}

export function registerFindings(program: Command): void {
  program
    .command('findings')
    .description('discover what exists, reconcile it with the inventory, and print the findings')
    .option('--json', 'print JSON')
    .addOption(
      new Option('--fail-on <severity>', 'exit 1 when a finding at or above this severity exists').choices(
        SeveritySchema.options,
      ),
    )
    .option('--stored', 'print the findings of the last discovery run instead of running one')
    .option('--stale-after <duration>', 'unused for longer than this is stale (default: the configured 90d)')
    .action(async (options: { json?: boolean; failOn?: Severity; stored?: boolean; staleAfter?: string }) => {
      const config = loadConfig();
      const services = wire(config);
      let findings: Finding[];
      if (options.stored) {
        const latest = await services.store.latestFindings();
        if (!latest) say('no discovery run is stored yet; run `keywarden findings` without --stored');
        findings = latest?.findings ?? [];
      } else {
        const run = await runDiscovery(
          { ...services.discoveryDeps, newId: randomUUID },
          { staleAfter: options.staleAfter ?? config.staleAfter, actor: actor() },
        );
        findings = run.findings;
        if (!options.json) say(`discovered ${run.discovered} credentials for ${run.identities} identities`);
        // policy.onUnexpectedUse: contain — the used credential is ended and re-issued now (on stderr: stdout stays the findings).
        const channels = run.contain.length ? new Composition(config, services.clock).get(alerts) : undefined;
        for (const c of await containUnexpectedUse(
          {
            containment: localContainment(services, actor(), say),
            audit: services.store,
            actor: actor(),
            alerts: channels,
          },
          run.contain,
        )) {
          const alert =
            c.alerted === true
              ? `; owner alerted through ${channels?.description}`
              : c.alerted === false
                ? `; alert NOT sent: ${c.alertError}`
                : '';
          say(
            `${c.status} ${c.identityId} ${c.handle}${c.campaignId ? ` (${c.incident}, campaign ${c.campaignId})` : ''}${c.reason ? `: ${c.reason}` : ''}${alert}`,
          );
        }
      }
      if (options.json) printJson(findings);
      else {
        printFindings(findings);
        say(`${findings.length} finding(s)`);
      }
      const gate = options.failOn;
      if (gate && findings.some((f) => severityRank(f.severity) >= severityRank(gate))) {
        if (!options.json) say(`failing: at least one finding is ${gate} or worse`);
        throw new ExitCode(1);
      }
    });
}
