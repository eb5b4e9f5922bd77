/**
 * `keywarden findings` on a fresh local stack (`keywarden dev up`) reports a token used from
 * outside its identity's allowedRunners, read from the stack's OpenBao file audit device: the
 * tokens are used from this machine, so OpenBao sees 127.0.0.1.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Finding } from '../../functions/core/findings.ts';
import { keywardenAsync, stackOf } from './breakglass-support.ts';

describe('keywarden findings: use from outside allowedRunners (OpenBao audit device)', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-unexpected-'));
  const work = mkdtempSync(join(tmpdir(), 'kw-unexpected-inv-'));
  const run = (...args: string[]) => keywardenAsync(args, { KEYWARDEN_HOME: home });
  const accessors = { outside: '', inside: '' };

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
    const file = join(work, 'identities.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        identities: [
          identity('deploy-prod', accessors.outside, ['10.20.0.0/16']),
          identity('deploy-local', accessors.inside, ['127.0.0.0/8', '::1/128']),
        ],
      }),
    );
    const sync = await run('inventory', 'sync', file);
    expect(sync.code, sync.stderr).toBe(0);
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
    const unexpected = findings.filter((f) => f.type === 'used-from-unexpected-runner');
    expect(unexpected).toEqual([
      expect.objectContaining({
        severity: 'high',
        subject: 'deploy-prod',
        handles: [accessors.outside],
      }),
    ]);
    expect(unexpected[0]?.message).toContain(`${accessors.outside} was used from 127.0.0.1`);
    expect(findings.some((f) => f.subject === 'deploy-local' && f.type.startsWith('used-'))).toBe(false);
  });
});
