import type { Command } from 'commander';
import { wire } from '../../functions/adapters/wiring.ts';
import { recordedEvents } from '../../functions/core/credential-version.ts';
import { formatAge } from '../../functions/core/duration.ts';
import { KeywardenError } from '../../functions/core/errors.ts';
import { rotationBlocker, serviceOf } from '../../functions/core/kinds.ts';
import { nextDueAt } from '../../functions/core/rotation.ts';
import { loadConfig } from '../context.ts';
import { printJson, printTable, say } from '../output.ts';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      "an identity's credential versions: stage, age, last use, rotation progress and the audit events it recorded (never values)",
    )
    .argument('<id>', 'the identity id')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const services = wire(loadConfig());
      const stored = await services.store.getIdentity(id);
      if (!stored)
        throw new KeywardenError(
          `no identity ${JSON.stringify(id)}; see keywarden inventory list for the ids`,
        );
      const { identity } = stored;
      const [versions, rotation] = await Promise.all([
        services.store.listVersions(id),
        services.store.getRotation(id),
      ]);
      const { providerFor } = services.rotationDeps('cli');
      // Last use comes from the provider itself (IAM records it), for versions still alive.
      const withUse = await Promise.all(
        versions.map(async ({ rev: _rev, ...version }) => {
          const alive = version.stage !== 'revoked';
          const lastUsed = alive
            ? await providerFor(identity)
                .lastUsed?.(version.handle)
                .catch(() => undefined)
            : undefined;
          return { ...version, lastUsedAt: lastUsed ?? version.lastUsedAt };
        }),
      );
      const now = services.clock.now().getTime();
      const blocker = rotationBlocker(identity);
      // Nothing recorded yet (never rotated, or tracked only): what the provider holds live.
      const live =
        versions.length === 0
          ? await providerFor(identity)
              .list()
              .catch(() => undefined)
          : undefined;
      if (options.json) {
        printJson({
          identity: { id, kind: identity.kind, status: stored.status, policy: identity.policy },
          rotation,
          ...(blocker ? { notRotated: blocker } : { nextDueAt: nextDueAt(identity, versions) }),
          versions: withUse,
          ...(live ? { live } : {}),
        });
        return;
      }
      say(
        `${id} (${identity.kind}, ${stored.status}) ${
          identity.policy.rotate
            ? `rotateEvery ${identity.policy.rotateEvery}, `
            : 'tracked, never rotated (policy.rotate false), '
        }maxAge ${identity.policy.maxAge}, grace ${identity.policy.grace}`,
      );
      printTable(
        ['VERSION', 'STAGE', 'HANDLE', 'ORIGIN', 'ISSUED', 'AGE', 'LAST USED', 'NOTE'],
        withUse
          .slice()
          .reverse()
          .map((v) => [
            v.versionId.slice(0, 18),
            v.stage,
            v.handle,
            v.origin,
            v.issuedAt,
            formatAge(now - Date.parse(v.issuedAt)),
            v.lastUsedAt ? `${formatAge(now - Date.parse(v.lastUsedAt))} ago` : '-',
            v.note ?? '',
          ]),
      );
      if (rotation) {
        say(
          `last rotation ${rotation.rotationId.slice(0, 8)}: ${rotation.step}${rotation.reason ? ` (${rotation.reason})` : ''}, updated ${rotation.updatedAt}`,
        );
        const events = recordedEvents(rotation);
        // Each step's events are in the trail once; a step that has not completed may
        // have written its own already, and whoever resumes it writes only what is missing.
        const unfinished = rotation.step !== 'finished' && rotation.step !== 'failed';
        if (events)
          say(
            `audit events of its completed steps: ${events.join(', ') || 'none yet'}${unfinished ? ` (the trail may also hold those of ${rotation.step}, once; resuming writes only what is missing)` : ''}`,
          );
      }
      if (live) {
        say(`nothing recorded by keywarden; live in ${serviceOf(identity.kind)}:`);
        printTable(
          ['HANDLE', 'STATUS', 'CREATED', 'AGE'],
          live.map((credential) => [
            credential.handle,
            credential.status,
            credential.createdAt ?? '-',
            credential.createdAt ? formatAge(now - Date.parse(credential.createdAt)) : '-',
          ]),
        );
      }
      const next = nextDueAt(identity, versions);
      say(
        blocker
          ? `not rotated: ${blocker}`
          : next
            ? `next rotation due ${next}`
            : 'never rotated by keywarden: due now',
      );
    });
}
