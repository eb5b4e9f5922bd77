/** What every runbook spec checks of each command it runs from a runbook. */
import { expect } from 'vitest';
import type { CliResult } from './cli.ts';
import type { RunbookCommand } from './runbook.ts';

/**
 * The command ran as the runbook says: no usage error, and the exit code written beside
 * it. `argv` is what was run (placeholders filled in), for the failure message.
 */
export function expectRanAsWritten(
  command: RunbookCommand,
  argv: readonly string[],
  result: CliResult,
): void {
  const where = `runbook line ${command.line}: ${command.text}  (keywarden ${argv.join(' ')})`;
  // commander's usage errors (unknown command or option, missing argument) start with `error:`.
  expect(result.stderr, where).not.toMatch(/^error: /m);
  expect(result.code, `${where}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(
    command.expectedExit,
  );
}
