import { describe, expect, it } from 'vitest';
import { testStack } from '../support/stack.ts';

describe('local stack', () => {
  it('serves moto and OpenBao on loopback', async () => {
    const stack = testStack();
    expect(new URL(stack.moto.endpoint).hostname).toBe('127.0.0.1');
    expect(new URL(stack.vault.addr).hostname).toBe('127.0.0.1');
    const health = await fetch(`${stack.vault.addr}/v1/sys/health`);
    expect(((await health.json()) as { initialized: boolean; sealed: boolean }).sealed).toBe(false);
  });

  it('has AppRole enabled and a file audit device from the config file', async () => {
    const stack = testStack();
    const headers = { 'X-Vault-Token': stack.vault.token };
    const auth = (await (await fetch(`${stack.vault.addr}/v1/sys/auth`, { headers })).json()) as {
      data: Record<string, { type: string }>;
    };
    expect(auth.data['approle/']?.type).toBe('approle');
    const audit = (await (await fetch(`${stack.vault.addr}/v1/sys/audit`, { headers })).json()) as {
      data: Record<string, { type: string; options: { file_path: string } }>;
    };
    expect(audit.data['file/']?.options.file_path).toBe(stack.vault.auditLog);
  });
});
