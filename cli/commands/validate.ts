import type { Command } from 'commander';
import { formatProblem, loadInventoryFile } from '../../functions/adapters/inventory-file.ts';
import { ExitCode } from '../errors.ts';
import { printJson, say } from '../output.ts';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check an identities.yaml file and list every problem with its line and column')
    .argument('<file>', 'the inventory file')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, options: { json?: boolean }) => {
      const result = await loadInventoryFile(file);
      if (options.json) {
        printJson(result.ok ? { ok: true, identities: result.inventory.identities.length } : result);
      } else if (result.ok) {
        say(`${file}: ${result.inventory.identities.length} identities, no problems`);
      } else {
        for (const problem of result.problems) process.stdout.write(`${formatProblem(problem)}\n`);
        say(`${file}: ${result.problems.length} problem(s)`);
      }
      if (!result.ok) throw new ExitCode(1);
    });
}
