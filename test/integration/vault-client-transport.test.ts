/**
 * The Vault client's own HTTP transport (node:http with a keep-alive agent, not fetch),
 * against the real OpenBao dev server of the local stack: what fetch gave for free and the
 * adapters rely on — redirects followed (a standby Vault without request forwarding answers
 * 307 with the active node's address), a path encoded as the URL parser encodes it, a request
 * that gets no answer ended by the client's timeout — and connections kept between requests.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VaultClient, VaultError } from '../../functions/adapters/vault/client.ts';
import { rejection } from '../support/rejection.ts';
import { testStack, uniqueName } from '../support/stack.ts';

/** A local server answering every request with `handle`; closed (with its sockets) after the file. */
async function localServer(handle: Parameters<typeof createServer>[1]) {
  const server: Server = createServer(handle);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    addr: `http://127.0.0.1:${port}`,
    connections: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('vault client: transport', () => {
  const stack = testStack();
  const path = `secret/data/${uniqueName('kw-transport')}/app`;
  let redirecting: Awaited<ReturnType<typeof localServer>>;
  let silent: Awaited<ReturnType<typeof localServer>>;

  beforeAll(async () => {
    // Prepare: a standby that sends every request to the active node, as Vault does without forwarding.
    redirecting = await localServer((request, response) => {
      response.writeHead(307, { Location: `${stack.vault.addr}${request.url ?? '/'}` });
      response.end();
    });
    // …and a server that takes requests and never answers.
    silent = await localServer(() => {});
  });

  afterAll(async () => {
    await redirecting.close();
    await silent.close();
  });

  it('follows a 307 to the active node with the method, body and token', async () => {
    const client = new VaultClient({ addr: redirecting.addr, token: stack.vault.token });

    const written = await client.write(path, { data: { field: 'one' } });
    const read = await client.read(path);

    expect(written.data?.version).toBe(1);
    expect((read?.data?.data as Record<string, unknown> | undefined)?.field).toBe('one');
  });

  it('encodes what a path may not hold as it is, as a URL does', async () => {
    const client = new VaultClient({ addr: stack.vault.addr, token: stack.vault.token });
    const spaced = `secret/data/${uniqueName('kw transport')}/app`;

    await client.write(spaced, { data: { field: 'two' } });

    expect(((await client.read(spaced))?.data?.data as Record<string, unknown> | undefined)?.field).toBe(
      'two',
    );
  });

  it('ends a request that gets no answer within its timeout, naming it, with nothing of the token', async () => {
    const client = new VaultClient({ addr: silent.addr, token: stack.vault.token, requestTimeoutMs: 200 });

    const error = await rejection(client.read('sys/health'));

    expect(error).toBeInstanceOf(VaultError);
    expect((error as VaultError).message).toMatch(/got no answer from .*ETIMEDOUT/);
    expect((error as VaultError).message).not.toContain(stack.vault.token);
    expect((error as VaultError).retryable).toBe(true);
  });

  it('sends a token read with a trailing newline (a secret written from a file) trimmed, and refuses a control character inside', async () => {
    const client = new VaultClient({ addr: stack.vault.addr, token: `${stack.vault.token}\n` });

    await client.write(path, { data: { field: 'newline' } });

    expect(((await client.read(path))?.data?.data as Record<string, unknown> | undefined)?.field).toBe(
      'newline',
    );
    const inside = `${stack.vault.token.slice(0, 4)}\u0007${stack.vault.token.slice(4)}`;
    expect(() => new VaultClient({ addr: stack.vault.addr, token: inside })).toThrow(
      /expected a token of printable characters, got one holding a control character/,
    );
  });

  it('shares its connections with the other clients of the process (a client made per token)', async () => {
    const counting = await localServer((request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ data: { url: request.url } }));
    });
    try {
      for (let n = 0; n < 5; n += 1) {
        await new VaultClient({ addr: counting.addr, token: `${stack.vault.token}-${n}` }).read(`kv/${n}`);
      }

      expect(counting.connections()).toBe(1);
    } finally {
      await counting.close();
    }
  });

  it('keeps its connection between requests', async () => {
    const counting = await localServer((request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ data: { url: request.url } }));
    });
    try {
      const client = new VaultClient({ addr: counting.addr, token: stack.vault.token });

      for (let n = 0; n < 5; n += 1) await client.read(`kv/${n}`);

      expect(counting.connections()).toBe(1);
    } finally {
      await counting.close();
    }
  });
});
