import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { rateLimitsFromEnv, rotationPace } from '../../functions/adapters/rate-limits.ts';
import { wire } from '../../functions/adapters/wiring.ts';
import { formatAge } from '../../functions/core/duration.ts';
import { KeywardenError } from '../../functions/core/errors.ts';
import type { Identity } from '../../functions/core/identity.ts';
import {
  assertRotatable,
  planRotation,
  type RotationOutcome,
  rotateMany,
} from '../../functions/core/rotation.ts';
import { actor, loadConfig } from '../context.ts';
import { ExitCode } from '../errors.ts';
import { printJson, printTable, say } from '../output.ts';

interface RotateOptions {
  due?: boolean;
  identity?: string;
  dryRun?: boolean;
  json?: boolean;
}

export function registerRotate(program: Command): void {
  program
    .command('rotate')
    .description('rotate what is due (--due) or one identity now (--identity ID)')
    .option('--due', 'every identity due by rotateEvery or over maxAge, and unfinished rotations')
    .option('--identity <id>', 'this identity, now, whether due or not')
    .option('--dry-run', 'print what would be rotated and why, change nothing')
    .option('--json', 'print JSON')
    .action(async (options: RotateOptions) => {
      if (Boolean(options.due) === Boolean(options.identity)) {
        throw new KeywardenError(
          'expected exactly one of --due or --identity ID (see keywarden rotate --help)',
        );
      }
      // Each provider service's rotations start at its rate (KEYWARDEN_RATE_*, as for a campaign),
      // read before anything is done: a bad value is refused naming the variable.
      const limits = rateLimitsFromEnv();
      const services = wire(loadConfig());
      const active = (await services.store.listIdentities())
        .filter((r) => r.status === 'active')
        .map((r) => r.identity);
      let identities: Identity[] = active;
      if (options.identity) {
        const found = active.find((identity) => identity.id === options.identity);
        if (!found) {
          throw new KeywardenError(
            `no active identity ${JSON.stringify(options.identity)}; see keywarden inventory list for the ids`,
          );
        }
        assertRotatable(found);
        identities = [found];
      }
      if (options.dryRun) {
        const plan = await planRotation(services.rotationDeps(actor()), identities, {
          force: Boolean(options.identity),
        });
        if (options.json) printJson(plan);
        else {
          printTable(
            ['IDENTITY', 'KIND', 'ACTION', 'WHY'],
            plan.map((p) => [p.identityId, p.kind, p.action, p.reason]),
          );
          say(
            `${plan.filter((p) => p.action !== 'skip').length} of ${plan.length} would be rotated (dry run: nothing changed)`,
          );
        }
        return;
      }
      let done = 0;
      const outcomes = await rotateMany(services.rotationDeps(actor()), identities, {
        owner: `cli/${randomUUID()}`,
        force: Boolean(options.identity),
        limit: services.limit,
        pace: rotationPace(limits),
        onOutcome: (outcome) => {
          done += 1;
          if (!options.json && (identities.length > 1 || outcome.status !== 'skipped')) {
            say(
              `[${done}/${identities.length}] ${outcome.identityId} ${outcome.status}${outcome.reason ? `: ${outcome.reason}` : ''}`,
            );
          }
        },
      });
      if (options.json) printJson(outcomes);
      else printSummary(outcomes);
      if (outcomes.some((o) => o.status === 'failed')) throw new ExitCode(1);
    });
}

function printSummary(outcomes: readonly RotationOutcome[]) {
  const shown = outcomes.filter((o) => o.status !== 'skipped' || outcomes.length <= 20);
  printTable(
    ['IDENTITY', 'KIND', 'RESULT', 'TIME', 'DETAIL'],
    shown.map((o) => [
      o.identityId,
      o.kind,
      o.resumed ? `${o.status} (resumed)` : o.status,
      formatAge(o.durationMs) === '0s' ? `${o.durationMs}ms` : formatAge(o.durationMs),
      [o.reason, ...o.warnings].filter(Boolean).join('; '),
    ]),
  );
  const count = (status: string) => outcomes.filter((o) => o.status === status).length;
  say(`${count('rotated')} rotated, ${count('failed')} failed, ${count('skipped')} skipped`);
}
