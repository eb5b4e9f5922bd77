import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../functions/core/grant.ts';
import type { StackEndpoints } from '../../scripts/local-stack.ts';
import {
  type CliRun,
  devTokensOf,
  eventually,
  keywardenAsync,
  parseExports,
  type Source,
  secretHits,
  stackOf,
  vaultReadStatus,
  vaultWriteKv,
} from './breakglass-support.ts';

/**
 * The second guarantee switched off: `KEYWARDEN_LOCAL_SCHEDULES=off` keeps the local runtime
 * from firing grant-expiry schedules, `KEYWARDEN_SWEEP_EVERY=3` runs the sweeper every 3 s.
 * A 10-second Vault grant still ends on time, by the token's own TTL in OpenBao, and the
 * sweeper is what records it expired. Its own KEYWARDEN_HOME, so its own stack.
 */
describe('break-glass with the schedule path disabled: native TTL and the sweeper', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-breakglass-noschedule-'));
  const runs: CliRun[] = [];
  let stack: StackEndpoints;

  async function cli(actor: string, args: string[]): Promise<CliRun> {
    const result = {
      ...(await keywardenAsync(args, { KEYWARDEN_HOME: home, KEYWARDEN_ACTOR: actor }, home)),
      args,
      actor,
    };
    runs.push(result);
    expect(result.code, `keywarden ${args.join(' ')} as ${actor}\n${result.stderr}`).toBe(0);
    return result;
  }

  beforeAll(async () => {
    const up = await keywardenAsync(['dev', 'up', '--demo', '--users', 'bob'], {
      KEYWARDEN_HOME: home,
      KEYWARDEN_ACTOR: 'alice',
      KEYWARDEN_LOCAL_SCHEDULES: 'off',
      KEYWARDEN_SWEEP_EVERY: '3',
    });
    expect(up.code, up.stderr).toBe(0);
    stack = stackOf(home);
    await vaultWriteKv(stack.vault.addr, stack.vault.token, 'prod/db', { password: 'prod-db-password-z' });
  });

  afterAll(async () => {
    const down = await keywardenAsync(['dev', 'down'], { KEYWARDEN_HOME: home });
    expect(down.code, down.stderr).toBe(0);
  });

  it('a 15 s grant ends on time by the token TTL, and the sweeper records it expired', async () => {
    const grantId = (
      await cli('alice', [
        'breakglass',
        'request',
        'prod-db-read',
        '--for',
        '15s',
        '--reason',
        'schedules off',
      ])
    ).stdout.trim();
    const approved = JSON.parse(
      (await cli('bob', ['breakglass', 'approve', grantId, '--json'])).stdout,
    ) as Grant;
    const end = Date.parse(approved.expiresAt ?? '');
    const fetched = await cli('alice', ['breakglass', 'credentials', grantId]);
    const token = parseExports(fetched.stdout).VAULT_TOKEN ?? '';
    expect(await vaultReadStatus(stack.vault.addr, token, 'secret/data/prod/db')).toBe(200);
    expect(Date.now(), 'the token was used before the grant ended').toBeLessThan(end);

    // Polled in parallel: OpenBao's answer and the grant's state.
    const [refusedAt, expired] = await Promise.all([
      eventually(
        'OpenBao refuses the token',
        async () =>
          (await vaultReadStatus(stack.vault.addr, token, 'secret/data/prod/db')) === 403
            ? Date.now()
            : undefined,
        30_000,
        200,
      ),
      eventually(
        'the sweeper records the grant expired',
        async () => {
          const grant = JSON.parse((await cli('alice', ['breakglass', 'show', grantId])).stdout) as Grant;
          return grant.state === 'expired' ? grant : undefined;
        },
        30_000,
      ),
    ]);
    // On time: the token's TTL ends no later than the grant (a second of slack for the poll).
    expect(refusedAt).toBeLessThanOrEqual(end + 1_500);
    expect(expired.endedBy).toBe('sweeper');
    // Within a sweep period (3 s) and a few seconds of slack, not at the next schedule.
    expect(Date.parse(expired.endedAt ?? '') - end).toBeLessThan(8_000);
    const runtimeLog = readFileSync(join(home, 'runtime.log'), 'utf8');
    expect(runtimeLog).toContain(`sweeper ended ${grantId}`);
    expect(runtimeLog).not.toMatch(/schedule \S+ fired/);

    // And nothing issued in this scenario shows anywhere.
    const audit = await cli('alice', ['audit', 'list', '--limit', '1000', '--json']);
    const records = JSON.parse(audit.stdout) as { type: string; actor: string; subject: string }[];
    expect(records.find((r) => r.subject === grantId && r.type === 'grant.expired')?.actor).toBe(
      'sweeper:grant-expiry',
    );
    const sources: Source[] = [
      { name: 'runtime.log', text: runtimeLog },
      { name: 'audit list --json', text: audit.stdout },
      ...runs.map((r) => ({ name: `stderr of keywarden ${r.args.join(' ')}`, text: r.stderr })),
      ...runs
        .filter((r) => !r.args.includes('credentials'))
        .map((r) => ({ name: `stdout of keywarden ${r.args.join(' ')}`, text: r.stdout })),
    ];
    expect(token).toMatch(/^s\./);
    expect(secretHits([token, ...Object.values(devTokensOf(home))], sources)).toEqual([]);
  });
});
