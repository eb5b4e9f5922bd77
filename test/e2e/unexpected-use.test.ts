/**
 * `keywarden findings` on a fresh local stack (`keywarden dev up`) reports a token used from
 * outside its identity's allowedRunners, read from the stack's OpenBao file audit device: the
 * tokens are used from this machine, so OpenBao sees 127.0.0.1. With `policy.onUnexpectedUse:
 * contain`, the used token (one keywarden issued and delivered) is revoked and a fresh one delivered.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Finding } from '../../functions/core/findings.ts';
import { OWN_TEST_SKEW_MS } from '../../functions/core/unexpected-use.ts';
import { keywardenAsync, stackOf, vaultTokenStatus } from './breakglass-support.ts';

describe('keywarden findings: use from outside allowedRunners (OpenBao audit device)', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-unexpected-'));
  const work = mkdtempSync(join(tmpdir(), 'kw-unexpected-inv-'));
  const run = (...args: string[]) => keywardenAsync(args, { KEYWARDEN_HOME: home });
  const accessors = { outside: '', inside: '', issued: '' };
  /** The token keywarden delivered to the contain-policy identity's KV secret, read as its pipeline would. */
  const delivered = async (): Promise<string> => {
    const stack = stackOf(home);
    const root = new VaultClient({ addr: stack.vault.addr, token: stack.vault.token });
    const data = (await root.read('secret/data/ci/deploy-issued'))?.data?.data as
      | { value?: string }
      | undefined;
    return data?.value ?? '';
  };
  let usedToken = '';

  beforeAll(async () => {
    const up = await run('dev', 'up');
    expect(up.code, up.stderr).toBe(0);
    const stack = stackOf(home);
    const root = new VaultClient({ addr: stack.vault.addr, token: stack.vault.token });
    for (const which of ['outside', 'inside'] as const) {
      const answer = await root.write('auth/token/create-orphan', { policies: ['default'], ttl: '30m' });
      const auth = answer.auth as { client_token: string; accessor: string };
      accessors[which] = auth.accessor;
      // One use each, from this machine.
      await new VaultClient({ addr: stack.vault.addr, token: auth.client_token }).read(
        'auth/token/lookup-self',
      );
    }
    const identity = (id: string, accessor: string, cidrs: string[]) => ({
      id,
      kind: 'vault-token',
      owner: 'team-platform',
      purpose: 'deploys the app',
      pipeline: { repo: 'acme/app', stage: 'deploy', environment: 'prod' },
      scope: { accessor },
      allowedRunners: { cidrs },
    });
    const issued = {
      ...identity('deploy-issued', '', ['10.20.0.0/16']),
      scope: { policies: ['default'], ttl: '30m' },
      delivery: { type: 'vault-kv', path: 'ci/deploy-issued' },
      policy: { onUnexpectedUse: 'contain' },
    };
    const file = join(work, 'identities.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        identities: [
          identity('deploy-prod', accessors.outside, ['10.20.0.0/16']),
          identity('deploy-local', accessors.inside, ['127.0.0.0/8', '::1/128']),
          issued,
        ],
      }),
    );
    const sync = await run('inventory', 'sync', file);
    expect(sync.code, sync.stderr).toBe(0);
    // keywarden issues and delivers deploy-issued's token; its pipeline uses it, from here.
    const rotate = await run('rotate', '--identity', 'deploy-issued');
    expect(rotate.code, rotate.stderr).toBe(0);
    usedToken = await delivered();
    // Uses up to OWN_TEST_SKEW_MS after verifiedAt are taken for keywarden's own test of the token.
    await sleep(OWN_TEST_SKEW_MS + 500);
    const used = new VaultClient({ addr: stack.vault.addr, token: usedToken });
    accessors.issued = (await used.read('auth/token/lookup-self'))?.data?.accessor as string;
  });

  afterAll(async () => {
    const down = await run('dev', 'down');
    expect(down.code, down.stderr).toBe(0);
  });

  it('names the identity, the accessor and 127.0.0.1 in a high finding, exits 1 on --fail-on high, and spares the identity allowing loopback', async () => {
    // act
    const listed = await run('findings', '--json', '--fail-on', 'high');
    // assess
    expect(listed.code, listed.stderr).toBe(1);
    const findings = JSON.parse(listed.stdout) as Finding[];
    const unexpected = findings.filter(
      (f) => f.type === 'used-from-unexpected-runner' && f.subject !== 'deploy-issued',
    );
    expect(unexpected).toEqual([
      expect.objectContaining({
        severity: 'high',
        subject: 'deploy-prod',
        handles: [accessors.outside],
      }),
    ]);
    expect(unexpected[0]?.message).toContain(`${accessors.outside} was used from 127.0.0.1`);
    expect(findings.some((f) => f.subject === 'deploy-local' && f.type.startsWith('used-'))).toBe(false);
    // deploy-issued's policy is contain: found, and contained on the same run (said on stderr).
    expect(findings).toContainEqual(
      expect.objectContaining({ subject: 'deploy-issued', handles: [accessors.issued] }),
    );
    expect(listed.stderr).toMatch(
      new RegExp(`contained deploy-issued ${accessors.issued} \\(UNEXPECTED-USE-[0-9a-f]{12}, campaign `),
    );
  });

  it('contains the token of a contain-policy identity on that run: revoked, a fresh one delivered; the next run finds nothing more', async () => {
    // act (the first test's run contained it; this run must find nothing more)
    const again = await run('findings', '--json');
    // assess
    expect(await vaultTokenStatus(stackOf(home), usedToken)).toBe(403);
    const fresh = await delivered();
    expect(fresh).not.toBe(usedToken);
    expect(await vaultTokenStatus(stackOf(home), fresh)).toBe(200);
    expect(again.stderr).not.toMatch(/contained deploy-issued/);
    const findings = JSON.parse(again.stdout) as Finding[];
    expect(findings.filter((f) => f.subject === 'deploy-issued' && f.type.startsWith('used-'))).toEqual([]);
  });
});
