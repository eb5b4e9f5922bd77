/**
 * The JSON wire (functions/adapters/aws/json-wire.ts) reads AWS's answers as the SDK reads them,
 * for the answers moto and dynalite never give: an error named only by its header, a throttle
 * asking to retry after a while, a 2xx answer that is not JSON. A local HTTP server plays them;
 * the wire is a real SDK client's, against it.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ResourceExistsException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoWireOf } from '../../functions/adapters/aws/dynamodb-wire.ts';
import { secretsWireOf } from '../../functions/adapters/aws/secrets-wire.ts';

type Answer = { status: number; headers?: Record<string, string>; body: string };

let server: Server;
let endpoint: string;
const script: Answer[] = [];
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    seen.push(request.headers);
    request.resume();
    request.on('end', () => {
      const answer = script.shift() ?? { status: 500, body: '{}' };
      response.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1', ...answer.headers });
      response.end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const wire = () =>
  secretsWireOf(
    new SecretsManagerClient({
      endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'test-key-id', secretAccessKey: 'test-secret-key' },
      maxAttempts: 2,
    }),
  );

describe('json wire: AWS answers as the SDK reads them', () => {
  it('names an error from the x-amzn-errortype header when the body has no __type', async () => {
    script.push({
      status: 400,
      headers: { 'x-amzn-errortype': 'ResourceNotFoundException:http://internal.amazon.com/coral/' },
      body: '{"Message":"Secrets Manager can’t find the specified secret."}',
    });

    const error = await wire()
      .send('GetSecretValue', { SecretId: 'ci/app' })
      .catch((caught: unknown) => caught);

    expect(error).toMatchObject({ name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 400 } });
  });

  it('is taken by a plain SDK client of each service (an SDK upgrade that turned it off would show here)', async () => {
    seen.length = 0;
    script.push(
      { status: 200, body: '{"Item":{"pk":{"S":"ID#a"}}}' },
      { status: 200, body: '{"VersionId":"v1"}' },
    );
    const config = {
      endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'test-key-id', secretAccessKey: 'test-secret-key' },
    };

    await expect(
      dynamoWireOf(new DynamoDBClient(config)).send('GetItem', {
        TableName: 't',
        Key: { pk: { S: 'ID#a' } },
      }),
    ).resolves.toMatchObject({ Item: { pk: { S: 'ID#a' } } });
    await expect(
      secretsWireOf(new SecretsManagerClient(config)).send('GetSecretValue', { SecretId: 'ci/app' }),
    ).resolves.toMatchObject({ VersionId: 'v1' });
    expect(seen.map((headers) => [headers['x-amz-target'], headers['user-agent']])).toEqual([
      ['DynamoDB_20120810.GetItem', expect.stringMatching(/^keywarden /)],
      ['secretsmanager.GetSecretValue', expect.stringMatching(/^keywarden /)],
    ]);
  });

  it('refuses with the SDK’s own error class for the name, as its command would', async () => {
    const config = {
      endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'test-key-id', secretAccessKey: 'test-secret-key' },
    };
    script.push(
      {
        status: 400,
        body: '{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}',
      },
      {
        status: 400,
        body: '{"__type":"ResourceExistsException","Message":"A version with this token exists"}',
      },
    );

    const conditional = await dynamoWireOf(new DynamoDBClient(config))
      .send('PutItem', { TableName: 't', Item: { pk: { S: 'ID#a' } } })
      .catch((caught: unknown) => caught);
    const exists = await secretsWireOf(new SecretsManagerClient(config))
      .send('PutSecretValue', { SecretId: 'ci/app', SecretString: 'x' })
      .catch((caught: unknown) => caught);

    expect(conditional).toBeInstanceOf(ConditionalCheckFailedException);
    expect(exists).toBeInstanceOf(ResourceExistsException);
    expect(exists).toMatchObject({ name: 'ResourceExistsException', $fault: 'client' });
  });

  it('retries a throttle and sends a user agent CloudTrail can tell apart', async () => {
    seen.length = 0;
    script.push(
      {
        status: 400,
        headers: { 'retry-after': '0' },
        body: '{"__type":"ThrottlingException","message":"Rate exceeded"}',
      },
      {
        status: 200,
        body: '{"ARN":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:ci/app","VersionId":"v2"}',
      },
    );

    await expect(wire().send('GetSecretValue', { SecretId: 'ci/app' })).resolves.toMatchObject({
      VersionId: 'v2',
    });
    expect(seen).toHaveLength(2);
    expect(seen[0]?.['user-agent']).toMatch(/^keywarden /);
  });

  it('refuses a 2xx answer that is not JSON without quoting it: it may hold the secret value', async () => {
    const value = 'planted-value-that-must-not-leak';
    script.push(
      { status: 200, body: `{"SecretString":${value}}` },
      { status: 200, body: `{"SecretString":${value}}` },
    );

    const error = await wire()
      .send('GetSecretValue', { SecretId: 'ci/app' })
      .catch((caught: unknown) => caught);

    expect(error).toMatchObject({ name: 'UnreadableAnswer' });
    expect(String((error as Error).message)).not.toContain('planted');
    expect(JSON.stringify(error)).not.toContain('planted');
  });
});
