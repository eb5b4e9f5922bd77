/**
 * The keywarden command: parse arguments, call core through the adapters, print.
 * Errors end as one line on stderr, never a stack trace (KEYWARDEN_DEBUG=1 shows it).
 */
import { Command, CommanderError } from 'commander';
import { registerApprove } from './commands/approve.ts';
import { registerAudit } from './commands/audit.ts';
import { registerBreakglass } from './commands/breakglass.ts';
import { registerCi } from './commands/ci.ts';
import { registerDev } from './commands/dev.ts';
import { registerFindings } from './commands/findings.ts';
import { registerInventory } from './commands/inventory.ts';
import { registerRevoke } from './commands/revoke.ts';
import { registerRotate } from './commands/rotate.ts';
import { registerScan } from './commands/scan.ts';
import { registerStatus } from './commands/status.ts';
import { registerValidate } from './commands/validate.ts';
import { ExitCode } from './errors.ts';

const program = new Command('keywarden')
  .description('rotate, expire and revoke the credentials CI/CD pipelines use')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');

registerValidate(program);
registerInventory(program);
registerFindings(program);
registerRotate(program);
registerRevoke(program);
registerScan(program);
registerBreakglass(program);
registerApprove(program);
registerCi(program);
registerStatus(program);
registerAudit(program);
registerDev(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof ExitCode) process.exitCode = error.code;
  else if (error instanceof CommanderError) process.exitCode = error.exitCode === 0 ? 0 : 2;
  else {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`keywarden: ${message}\n`);
    if (process.env.KEYWARDEN_DEBUG) console.error(error);
    process.exitCode = 1;
  }
}
