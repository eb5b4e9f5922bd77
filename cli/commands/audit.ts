import type { Command } from 'commander';
import { wire } from '../../functions/adapters/wiring.ts';
import { verifyChain } from '../../functions/core/audit.ts';
import { loadConfig } from '../context.ts';
import { ExitCode } from '../errors.ts';
import { printJson, printTable, say } from '../output.ts';

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit trail');

  audit
    .command('verify')
    .description('check the hash chain; exit 1 naming the first record altered, inserted or removed')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const services = wire(loadConfig());
      const { records, head } = await services.store.readAll();
      const verdict = verifyChain(records, head, services.digest);
      if (options.json) printJson(verdict);
      else if (verdict.ok) say(`audit trail intact: ${verdict.checked} records, chain and head agree`);
      else say(`audit trail BROKEN: ${verdict.message} (${verdict.checked} records before it verified)`);
      if (!verdict.ok) throw new ExitCode(1);
    });

  audit
    .command('list')
    .description('print the latest audit records')
    .option('--limit <n>', 'how many of the latest records', '50')
    .option('--json', 'print JSON')
    .action(async (options: { limit: string; json?: boolean }) => {
      const services = wire(loadConfig());
      const { records } = await services.store.readAll();
      const latest = records.slice(-Math.max(1, Number.parseInt(options.limit, 10) || 50));
      if (options.json) printJson(latest);
      else
        printTable(
          ['SEQ', 'AT', 'TYPE', 'ACTOR', 'SUBJECT'],
          latest.map((r) => [r.seq, r.at, r.type, r.actor, r.subject]),
        );
    });
}
