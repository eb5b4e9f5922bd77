import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { readStack, stackStatus } from '../../scripts/local-stack.ts';
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
