/**
 * The fault proxy of test/support/fault-proxy.ts, in front of the real moto and
 * OpenBao: it must pass requests through faithfully when it injects nothing, inject
 * each fault in the dialect the client expects, at about the rate it was given, and
 * reproduce the same decisions from the same seed.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DynamoDBClient, GetItemCommand, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { IAMClient, ListUsersCommand } from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import pLimit from 'p-limit';
import { afterEach, describe, expect, it } from 'vitest';
import { awsClientConfig, isRetryableAwsError } from '../../functions/adapters/aws/clients.ts';
import { VaultClient, VaultError } from '../../functions/adapters/vault/client.ts';
import { AwsModel } from '../support/aws-model.ts';
import {
  type FaultProxy,
  type FaultProxyOptions,
  runtimeConfigThrough,
  seededRandom,
  startFaultProxy,
} from '../support/fault-proxy.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const running: FaultProxy[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((proxy) => proxy.close()));
});

async function proxy(target: 'moto' | 'vault', options: Omit<FaultProxyOptions, 'target'> = {}) {
  const stack = testStack();
  const started = await startFaultProxy({
    ...options,
    target: target === 'moto' ? stack.moto.endpoint : stack.vault.addr,
  });
  running.push(started);
  return started;
}

/** AWS clients through `url`, one attempt each: the point is what the proxy answers, not the SDK's retry. */
const awsThrough = (url: string, maxAttempts = 1) => {
  const config = { ...awsClientConfig({ ...testAws(), endpoint: url }), maxAttempts };
  return {
    iam: new IAMClient(config),
    sts: new STSClient(config),
    dynamodb: new DynamoDBClient(config),
    secrets: new SecretsManagerClient(config),
  };
};

const vaultHeaders = () => ({ 'x-vault-token': testStack().vault.token, 'content-type': 'application/json' });
const direct = () => new VaultClient({ addr: testStack().vault.addr, token: testStack().vault.token });

/** One raw request to Vault through `url`: status and parsed body, or `dropped`. */
async function vaultFetch(url: string, method: string, path: string, body?: unknown) {
  try {
    const answer = await fetch(`${url}/v1/${path}`, {
      method,
      headers: vaultHeaders(),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await answer.text();
    return { status: answer.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  } catch {
    return { status: 'dropped' as const, body: undefined };
  }
}

const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );
const awsFailure = (error: unknown) =>
  error as { name?: string; $metadata?: { httpStatusCode?: number }; $fault?: string };

describe('fault proxy', () => {
  describe('without faults', () => {
    it('forwards Vault reads, writes, LIST and 404s as the server answers them', async () => {
      // prepare
      const through = await proxy('vault');
      const path = `${uniqueName('kw-proxy')}/app`;
      const value = randomBytes(24).toString('base64');
      const client = new VaultClient({ addr: through.url, token: testStack().vault.token });

      // act
      await client.write(`secret/data/${path}`, { data: { value } });
      const read = await client.read(`secret/data/${path}`);
      const listed = await client.list(`secret/metadata/${path.split('/')[0]}`);
      const missing = await client.read(`secret/data/${path}-nothing`);
      const viaServer = await direct().read(`secret/data/${path}`);

      // assess
      expect(read?.data?.data).toEqual({ value });
      expect(viaServer?.data).toEqual(read?.data);
      expect(listed).toEqual(['app']);
      expect(missing).toBeUndefined();
      expect(through.counts).toMatchObject({ requests: 4, forwarded: 4, throttled: 0, serverError: 0 });
    });

    it('forwards a chunked request body whole, and a large AWS answer byte for byte', async () => {
      // prepare
      const through = await proxy('moto');
      const vaultThrough = await proxy('vault');
      const name = uniqueName('kw-proxy');
      const large = randomBytes(30_000).toString('base64'); // ~40 KB, under Secrets Manager's 64 KB
      const aws = awsThrough(through.url, 3);
      const chunked = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const part of ['{"data":', '{"value":', `"${large.slice(0, 500)}"}}`]) {
            controller.enqueue(new TextEncoder().encode(part));
          }
          controller.close();
        },
      });

      // act
      await aws.secrets.send(new CreateSecretCommand({ Name: name, SecretString: large }));
      const read = await aws.secrets.send(new GetSecretValueCommand({ SecretId: name }));
      const written = await fetch(`${vaultThrough.url}/v1/secret/data/${name}`, {
        method: 'POST',
        headers: vaultHeaders(),
        body: chunked,
        duplex: 'half',
      } as RequestInit);
      const stored = await direct().read(`secret/data/${name}`);

      // assess
      expect(read.SecretString).toBe(large);
      expect(written.status).toBe(200);
      expect(stored?.data?.data).toEqual({ value: large.slice(0, 500) });
    });
  });

  describe('throttling, in the dialect of each target', () => {
    it('answers IAM and STS (query protocol) with an XML Throttling error, HTTP 400', async () => {
      const aws = awsThrough((await proxy('moto', { throttleRate: 1 })).url);

      const failures = [
        awsFailure(await failureOf(aws.iam.send(new ListUsersCommand({})))),
        awsFailure(await failureOf(aws.sts.send(new GetCallerIdentityCommand({})))),
      ];

      for (const failure of failures) {
        expect(failure).toMatchObject({ name: 'Throttling', $metadata: { httpStatusCode: 400 } });
        expect(isRetryableAwsError(failure)).toBe(true);
      }
    });

    it('answers DynamoDB and Secrets Manager (JSON protocol) with __type throttling errors, HTTP 400', async () => {
      const aws = awsThrough((await proxy('moto', { throttleRate: 1 })).url);

      const control = awsFailure(await failureOf(aws.dynamodb.send(new ListTablesCommand({}))));
      const data = awsFailure(
        await failureOf(aws.dynamodb.send(new GetItemCommand({ TableName: 'any', Key: { pk: { S: 'x' } } }))),
      );
      const secrets = awsFailure(await failureOf(aws.secrets.send(new ListSecretsCommand({}))));

      expect(control).toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
      expect(data).toMatchObject({
        name: 'ProvisionedThroughputExceededException',
        $metadata: { httpStatusCode: 400 },
      });
      expect(secrets).toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
      for (const failure of [control, data, secrets]) expect(isRetryableAwsError(failure)).toBe(true);
    });

    it("answers Vault with HTTP 429 and Vault's rate-limit error, which the Vault client retries a bounded number of times", async () => {
      const through = await proxy('vault', { throttleRate: 1 });

      const raw = await vaultFetch(through.url, 'GET', 'secret/config');
      const failure = await failureOf(
        new VaultClient({ addr: through.url, token: testStack().vault.token }).read('secret/config'),
      );

      expect(raw).toEqual({ status: 429, body: { errors: ['rate limit quota exceeded'] } });
      expect(failure).toBeInstanceOf(VaultError);
      expect(failure).toMatchObject({ status: 429, retryable: true, errors: ['rate limit quota exceeded'] });
      // 1 raw request + 6 attempts of the client (the default policy), each one throttled.
      expect(through.counts.throttled).toBe(7);
      expect(through.counts.retriedAfter.throttled).toBe(6);
    });
  });

  describe('server errors', () => {
    it('answers HTTP 500 or 503, which AWS SDK callers see as retryable and Vault as a retryable VaultError', async () => {
      const aws = awsThrough((await proxy('moto', { serverErrorRate: 1 })).url);
      const vaultProxy = await proxy('vault', { serverErrorRate: 1 });

      const awsFailures = await Promise.all(
        Array.from({ length: 8 }, () => failureOf(aws.iam.send(new ListUsersCommand({})))),
      );
      const vaultAnswers = await Promise.all(
        Array.from({ length: 8 }, () => vaultFetch(vaultProxy.url, 'GET', 'secret/config')),
      );

      const statuses = awsFailures.map((failure) => awsFailure(failure).$metadata?.httpStatusCode);
      expect(new Set(statuses)).toEqual(new Set([500, 503]));
      for (const failure of awsFailures) expect(isRetryableAwsError(failure)).toBe(true);
      expect(new Set(vaultAnswers.map((answer) => answer.status))).toEqual(new Set([500, 503]));
      for (const answer of vaultAnswers) expect(answer.body?.errors).toHaveLength(1);
    });
  });

  describe('dropped connections', () => {
    it('drops before forwarding: the server never sees the request', async () => {
      // prepare
      const through = await proxy('vault', { dropRate: 1, dropAfterForwardShare: 0 });
      const path = `secret/data/${uniqueName('kw-proxy')}`;

      // act
      const answer = await vaultFetch(through.url, 'POST', path, { data: { value: 'x' } });

      // assess
      expect(answer.status).toBe('dropped');
      expect(await direct().read(path)).toBeUndefined();
      expect(through.counts).toMatchObject({ droppedBeforeForward: 1, droppedAfterForward: 0, forwarded: 0 });
    });

    it('drops after forwarding: the server did the work, the client never hears back', async () => {
      // prepare
      const through = await proxy('vault', { dropRate: 1, dropAfterForwardShare: 1 });
      const path = `secret/data/${uniqueName('kw-proxy')}`;

      // act
      const answer = await vaultFetch(through.url, 'POST', path, { data: { value: 'written' } });

      // assess
      expect(answer.status).toBe('dropped');
      expect((await direct().read(path))?.data?.data).toEqual({ value: 'written' });
      expect(through.counts).toMatchObject({ droppedBeforeForward: 0, droppedAfterForward: 1, forwarded: 0 });
    });

    it('makes the AWS SDK see a connection reset, which it retries', async () => {
      // prepare
      const through = await proxy('moto', { dropRate: 1 });
      const sts = awsThrough(through.url, 3).sts;

      // act
      const failure = awsFailure(await failureOf(sts.send(new GetCallerIdentityCommand({}))));

      // assess
      expect(isRetryableAwsError(failure)).toBe(true);
      expect(through.counts.requests).toBe(3);
      expect(through.counts.droppedBeforeForward + through.counts.droppedAfterForward).toBe(3);
      expect(Object.values(through.counts.retriedAfter).reduce((a, b) => a + b, 0)).toBe(2);
    });
  });

  describe('rates and reproducibility', () => {
    it('injects each fault at about its rate, and forwards the rest', async () => {
      // prepare
      const rates = { throttleRate: 0.1, serverErrorRate: 0.05, dropRate: 0.05 };
      const through = await proxy('vault', { ...rates, seed: 42 });
      const total = 1_500;

      // act
      const limit = pLimit(8);
      const answers = await Promise.all(
        Array.from({ length: total }, () =>
          limit(async () => (await vaultFetch(through.url, 'GET', 'sys/health')).status),
        ),
      );

      // assess
      const { counts } = through;
      expect(counts.requests).toBe(total);
      // Binomial tolerance of about 4 standard deviations.
      const near = (count: number, rate: number) =>
        expect(Math.abs(count - rate * total)).toBeLessThanOrEqual(4 * Math.sqrt(total * rate * (1 - rate)));
      near(counts.throttled, rates.throttleRate);
      near(counts.serverError, rates.serverErrorRate);
      near(counts.droppedBeforeForward + counts.droppedAfterForward, rates.dropRate);
      expect(counts.droppedBeforeForward).toBeGreaterThan(0);
      expect(counts.droppedAfterForward).toBeGreaterThan(0);
      // What the client saw is what the proxy counted.
      expect(answers.filter((status) => status === 429)).toHaveLength(counts.throttled);
      expect(answers.filter((status) => status === 500 || status === 503)).toHaveLength(counts.serverError);
      expect(answers.filter((status) => status === 'dropped')).toHaveLength(
        counts.droppedBeforeForward + counts.droppedAfterForward,
      );
      expect(answers.filter((status) => status === 200)).toHaveLength(counts.forwarded);
    });

    it('repeats the same decisions from the same seed, and others from another', async () => {
      const sequence = async (seed: number) => {
        const through = await proxy('vault', {
          throttleRate: 0.2,
          serverErrorRate: 0.1,
          dropRate: 0.1,
          seed,
        });
        const seen: Array<number | 'dropped'> = [];
        for (let i = 0; i < 60; i += 1)
          seen.push((await vaultFetch(through.url, 'GET', 'sys/health')).status);
        return seen;
      };

      const [first, again, other] = [await sequence(7), await sequence(7), await sequence(8)];

      expect(again).toEqual(first);
      expect(other).not.toEqual(first);
      expect(seededRandom(7)()).toBe(seededRandom(7)());
    });

    it('spares requests that `match` leaves out', async () => {
      const through = await proxy('moto', {
        throttleRate: 1,
        match: (request) => request.service === 'iam',
      });
      const aws = awsThrough(through.url);

      const iam = awsFailure(await failureOf(aws.iam.send(new ListUsersCommand({}))));
      const sts = await aws.sts.send(new GetCallerIdentityCommand({}));

      expect(iam.name).toBe('Throttling');
      expect(sts.Account).toMatch(/^\d{12}$/);
      expect(through.faults).toEqual([
        { kind: 'throttled', dialect: 'aws-query', service: 'iam', operation: 'ListUsers' },
      ]);
    });
  });

  describe('with the AWS model (test/support/aws-model.ts)', () => {
    /** A model whose quotas are one call a second, so the second call in a row is refused. */
    const tightModel = () =>
      new AwsModel({
        latencyScale: 0,
        quotas: [
          { bucket: 'iam', service: 'iam', operations: /.*/, perSecond: 1, source: 'spec' },
          { bucket: 'sts', service: 'sts', operations: /.*/, perSecond: 1, source: 'spec' },
          { bucket: 'secrets', service: 'secretsmanager', operations: /.*/, perSecond: 1, source: 'spec' },
        ],
      });

    it('makes the real SDK clients raise their own throttling errors past a quota: IAM and STS Throttling, Secrets Manager ThrottlingException, HTTP 400', async () => {
      const model = tightModel();
      const aws = awsThrough((await proxy('moto', { model })).url);

      await aws.iam.send(new ListUsersCommand({}));
      await aws.sts.send(new GetCallerIdentityCommand({}));
      await aws.secrets.send(new ListSecretsCommand({}));
      const failures = [
        awsFailure(await failureOf(aws.iam.send(new ListUsersCommand({})))),
        awsFailure(await failureOf(aws.sts.send(new GetCallerIdentityCommand({})))),
        awsFailure(await failureOf(aws.secrets.send(new ListSecretsCommand({})))),
      ];

      expect(failures.map((failure) => failure.name)).toEqual([
        'Throttling',
        'Throttling',
        'ThrottlingException',
      ]);
      for (const failure of failures) {
        expect(failure).toMatchObject({ $metadata: { httpStatusCode: 400 }, message: 'Rate exceeded' });
        expect(isRetryableAwsError(failure)).toBe(true);
      }
      expect(model.counts()).toEqual({
        iam: { admitted: 1, throttled: 1 },
        sts: { admitted: 1, throttled: 1 },
        secrets: { admitted: 1, throttled: 1 },
      });
    });

    it("lets keywarden's client configuration (adaptive retry) ride out the throttling: every call succeeds, later", async () => {
      const through = await proxy('moto', { model: tightModel() });
      const iam = new IAMClient(awsClientConfig({ ...testAws(), endpoint: through.url }));

      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 3 }, () => iam.send(new ListUsersCommand({}))));

      expect(answers).toHaveLength(3);
      expect(through.counts.throttled).toBeGreaterThan(0);
      expect(through.counts.retriedAfter.throttled).toBe(through.counts.throttled);
      // Three calls at one a second: the last cannot be admitted before 2 s.
      expect(performance.now() - started).toBeGreaterThan(1_900);
    });

    it('holds each answer for the latency drawn for its service', async () => {
      const model = new AwsModel({
        latencies: [{ service: 'secretsmanager', medianMs: 120, p99Ms: 120, source: 'spec' }],
      });
      const aws = awsThrough((await proxy('moto', { model })).url);

      const started = performance.now();
      await aws.secrets.send(new ListSecretsCommand({}));

      expect(performance.now() - started).toBeGreaterThanOrEqual(119);
    });
  });

  describe('runtimeConfigThrough', () => {
    it('points AWS and Vault at the proxies and keeps everything else', async () => {
      const [aws, vault] = [await proxy('moto'), await proxy('vault')];
      const base = {
        aws: testAws(),
        tableName: 'kw-table',
        fingerprintKey: 'k'.repeat(64),
        discovery: {},
        vault: { addr: testStack().vault.addr, token: testStack().vault.token },
      };

      const config = runtimeConfigThrough({ aws, vault }, base);

      expect(config.aws).toEqual({ ...testAws(), endpoint: aws.url });
      expect(config.vault).toMatchObject({ addr: vault.url, token: testStack().vault.token });
      expect(config.tableName).toBe('kw-table');
    });
  });
});
