import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import {
  endGroup,
  readStack,
  stackStatus,
  startDynalite,
  startMoto,
  startOpenBao,
} from '../../scripts/local-stack.ts';
import { testAws, testStack } from '../support/stack.ts';

describe('local stack', () => {
  it('serves moto, DynamoDB and OpenBao on loopback', async () => {
    const stack = testStack();
    expect(new URL(stack.moto.endpoint).hostname).toBe('127.0.0.1');
    expect(new URL(stack.dynamodb.endpoint).hostname).toBe('127.0.0.1');
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

  it('routes the DynamoDB client to dynalite and the other clients to moto', async () => {
    const stack = testStack();
    const clients = awsClients(testAws());
    const dynamoEndpoint = await clients.dynamodb.config.endpoint?.();
    const iamEndpoint = await clients.iam.config.endpoint?.();
    expect(`http://${dynamoEndpoint?.hostname}:${dynamoEndpoint?.port}`).toBe(stack.dynamodb.endpoint);
    expect(`http://${iamEndpoint?.hostname}:${iamEndpoint?.port}`).toBe(stack.moto.endpoint);
    // DynamoDB answers a GET of its root with a health line; dynalite does the same.
    expect(await (await fetch(stack.dynamodb.endpoint)).text()).toMatch(/^healthy: dynamodb\./);
    const { TableNames } = await clients.dynamodb.send(new ListTablesCommand({}));
    expect(Array.isArray(TableNames)).toBe(true);
  });

  it('reports each of the three servers up, read from the stack record', async () => {
    const dir = inject('stackDir');
    expect(readStack(dir)).toEqual(testStack());
    expect(await stackStatus(dir)).toMatchObject({ running: true, moto: true, dynamodb: true, vault: true });
  });
});

describe('local stack: each server on a port no other process holds', () => {
  /** A listening server on a loopback port, as another process holding it would be (it hangs up on whoever calls). */
  const holding = () =>
    new Promise<Server>((listening) => {
      const server = createServer((socket) => socket.destroy()).listen(0, '127.0.0.1', () =>
        listening(server),
      );
    });
  const portOf = (server: Server) => (server.address() as { port: number }).port;

  it('starts moto and dynalite on ports they bind themselves, two at once on two ports, each answering as itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kw-own-port-'));
    const started = await Promise.all([
      startMoto(join(dir, 'moto-a.log')),
      startMoto(join(dir, 'moto-b.log')),
      startDynalite(join(dir, 'dynalite.log')),
    ]);
    try {
      const [a, b, dynalite] = started;
      expect(new Set(started.map((server) => server.endpoint)).size).toBe(3);
      for (const moto of [a, b]) expect((await fetch(`${moto.endpoint}/moto-api/data.json`)).ok).toBe(true);
      expect(await (await fetch(dynalite.endpoint)).text()).toMatch(/^healthy: dynamodb\./);
    } finally {
      await Promise.all(started.map((server) => endGroup(server.pid)));
    }
  });

  it('starts OpenBao again on another port when its port was taken, and it knows the root token', async () => {
    // prepare: the first port OpenBao is handed is held by another server
    const dir = mkdtempSync(join(tmpdir(), 'kw-bao-port-'));
    const taken = await holding();
    const spare = await holding();
    const sparePort = portOf(spare);
    await new Promise((closed) => spare.close(closed));
    const ports = [portOf(taken), sparePort];
    const token = `kwdev-${randomBytes(12).toString('hex')}`;
    const log = join(dir, 'openbao.log');

    // act
    const bao = await startOpenBao(dir, token, log, join(dir, 'audit.log'), async () => ports.shift() ?? 0);
    try {
      // assess: on the second port, answering with this token; the first start's refusal is logged
      expect(bao.endpoint).toBe(`http://127.0.0.1:${sparePort}`);
      const self = await fetch(`${bao.endpoint}/v1/auth/token/lookup-self`, {
        headers: { 'X-Vault-Token': token },
      });
      expect(self.status).toBe(200);
      expect(readFileSync(log, 'utf8')).toMatch(/address already in use/);
    } finally {
      await endGroup(bao.pid);
      await new Promise((closed) => taken.close(closed));
    }
  });
});
