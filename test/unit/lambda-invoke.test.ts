/**
 * The role-deny function's callers invoke it with one signed POST (functions/adapters/aws/
 * lambda-invoke.ts) instead of the SDK's Lambda client. These specs read the request it sends
 * and how it takes Lambda's answers; `fetch` is the recording stand-in (there is no local Lambda
 * to invoke: moto runs functions in Docker only).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { awsFailure, isRetryableAwsError } from '../../functions/adapters/aws/clients.ts';
import { LambdaInvokeError, signedLambdaInvoke } from '../../functions/adapters/aws/lambda-invoke.ts';
import { LambdaRoleDeny, RoleDenyError } from '../../functions/adapters/aws/role-deny-client.ts';
import { S3RequestError } from '../../functions/adapters/aws/s3-put-object.ts';
import { AwsRequestError } from '../../functions/adapters/aws/signed-fetch.ts';
import { noSleep, scriptedFetch } from '../support/scripted-fetch.ts';

const ROLE = 'arn:aws:iam::123456789012:role/breakglass/oncall-admin';
const FUNCTION_ARN = 'arn:aws:lambda:eu-west-1:123456789012:function:keywarden-role-deny';
const credentials = () => ({
  accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
  secretAccessKey: randomBytes(20).toString('base64'),
});

describe('lambda invoke: one signed POST', () => {
  it('posts the payload to the function’s invocations path, synchronously and signed for lambda in the region', async () => {
    const { requests, fetchFn } = scriptedFetch(() => new Response('{"result":"revoked"}'));
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn, sleep: noSleep },
    );

    const answer = await invoke(FUNCTION_ARN, '{"action":"deny"}');

    expect(answer).toEqual({ payload: '{"result":"revoked"}', functionError: undefined });
    const [request] = requests;
    expect(request?.url).toBe(
      `https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/${encodeURIComponent(FUNCTION_ARN)}/invocations`,
    );
    expect(request?.init.body).toBe('{"action":"deny"}');
    const headers = request?.init.headers as Record<string, string>;
    expect(headers['x-amz-invocation-type']).toBe('RequestResponse');
    expect(headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIA\w+\/\d{8}\/eu-west-1\/lambda\/aws4_request, SignedHeaders=.*host.*x-amz-invocation-type.*, Signature=[0-9a-f]{64}$/,
    );
  });

  it('queues an event (Slack ingress handing a job to the worker): Lambda accepts it with an empty answer', async () => {
    const { requests, fetchFn } = scriptedFetch(() => new Response(null, { status: 202 }));
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn },
    );

    await expect(invoke('keywarden-slack-worker', '{"job":1}', 'Event')).resolves.toEqual({
      payload: '',
      functionError: undefined,
    });
    expect(requests[0]?.init.headers).toMatchObject({ 'x-amz-invocation-type': 'Event' });
  });

  it('passes on the function’s own failure (X-Amz-Function-Error) with its payload', async () => {
    const { fetchFn } = scriptedFetch(
      () =>
        new Response('{"errorType":"ValidationError","errorMessage":"expected a role under /breakglass/"}', {
          headers: { 'X-Amz-Function-Error': 'Unhandled' },
        }),
    );
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn },
    );

    await expect(invoke('keywarden-role-deny', '{}')).resolves.toMatchObject({ functionError: 'Unhandled' });
  });

  it('retries throttling and server errors with backoff, and not a refusal', async () => {
    const throttled = () =>
      new Response('{"message":"Rate exceeded"}', {
        status: 429,
        headers: { 'x-amzn-ErrorType': 'TooManyRequestsException:http://internal.amazon.com/' },
      });
    const { requests, fetchFn } = scriptedFetch(
      throttled,
      () => new Response('', { status: 502 }),
      () => new Response('{"result":"released"}'),
    );
    const waits: number[] = [];
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn, sleep: async (ms) => void waits.push(ms) },
    );
    await expect(invoke('keywarden-role-deny', '{}')).resolves.toMatchObject({
      payload: '{"result":"released"}',
    });
    expect(requests).toHaveLength(3);
    expect(waits).toHaveLength(2);

    const refused = scriptedFetch(
      () =>
        new Response('{"Message":"User is not authorized to perform: lambda:InvokeFunction"}', {
          status: 403,
          headers: { 'x-amzn-ErrorType': 'AccessDeniedException' },
        }),
    );
    const error = await signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: refused.fetchFn, sleep: noSleep },
    )('keywarden-role-deny', '{}').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LambdaInvokeError);
    expect(error).toMatchObject({ name: 'AccessDeniedException', status: 403, retryable: false });
    expect(refused.requests).toHaveLength(1);
  });

  it('gives up after the configured attempts', async () => {
    const { requests, fetchFn } = scriptedFetch(
      ...Array.from({ length: 3 }, () => () => new Response('', { status: 503 })),
    );
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn, sleep: noSleep, maxAttempts: 3 },
    );
    await expect(invoke('keywarden-role-deny', '{}')).rejects.toMatchObject({ status: 503, retryable: true });
    expect(requests).toHaveLength(3);
  });

  it('retries a request that got no answer, and gives up with a retryable error whose cause is what failed', async () => {
    const lost = () => {
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }),
      });
    };
    const { requests, fetchFn } = scriptedFetch(lost, lost);
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn, sleep: noSleep, maxAttempts: 2 },
    );

    const error = await invoke('keywarden-role-deny', '{}').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(LambdaInvokeError);
    expect(error).toMatchObject({ name: 'TypeError', status: undefined, retryable: true });
    expect((error as Error).cause).toBeInstanceOf(TypeError);
    expect(requests).toHaveLength(2);
  });
});

describe('signed fetch: a drifted clock, a hung connection', () => {
  const HOUR = 3_600_000;
  const serverNow = Date.parse('2026-12-05T12:00:00Z');
  const signedAt = (init: RequestInit) => (init.headers as Record<string, string>)['x-amz-date'];

  it('learns the service’s clock from a refusal for skew, signs again with it, and keeps it', async () => {
    const skewed = () =>
      new Response('{"message":"Signature expired"}', {
        status: 403,
        headers: {
          'x-amzn-ErrorType': 'InvalidSignatureException',
          date: new Date(serverNow).toUTCString(),
        },
      });
    const ok = () => new Response('{}', { headers: { date: new Date(serverNow).toUTCString() } });
    const { requests, fetchFn } = scriptedFetch(skewed, ok, ok);
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      // This host's clock is an hour behind the service's.
      { fetch: fetchFn, sleep: noSleep, now: () => serverNow - HOUR },
    );

    await expect(invoke('keywarden-role-deny', '{}')).resolves.toMatchObject({ payload: '{}' });
    await invoke('keywarden-role-deny', '{}');

    expect(requests.map(({ init }) => signedAt(init))).toEqual([
      '20261205T110000Z',
      '20261205T120000Z',
      '20261205T120000Z',
    ]);
  });

  it('does not retry a signature refusal when the clocks agree: the signature is wrong, not late', async () => {
    const refused = () =>
      new Response('{"message":"The request signature we calculated does not match"}', {
        status: 403,
        headers: { 'x-amzn-ErrorType': 'InvalidSignatureException', date: new Date(serverNow).toUTCString() },
      });
    const { requests, fetchFn } = scriptedFetch(refused, refused);
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn, sleep: noSleep, now: () => serverNow + 1_000 },
    );

    await expect(invoke('keywarden-role-deny', '{}')).rejects.toMatchObject({
      name: 'InvalidSignatureException',
      retryable: false,
    });
    expect(requests).toHaveLength(1);
  });

  it('abandons an attempt that waits past its timeout and tries again', async () => {
    let calls = 0;
    const fetchFn = (async (_url: URL | string, init?: RequestInit) => {
      calls += 1;
      if (calls > 1) return new Response('{"result":"revoked"}');
      // A connection that never answers: only the attempt's signal ends it.
      return new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });
    }) as typeof fetch;
    const invoke = signedLambdaInvoke(
      { region: 'eu-west-1', credentials: credentials() },
      { fetch: fetchFn, sleep: noSleep, attemptTimeoutMs: 20 },
    );

    await expect(invoke('keywarden-role-deny', '{}')).resolves.toMatchObject({
      payload: '{"result":"revoked"}',
    });
    expect(calls).toBe(2);
  });
});

describe('signed fetch errors: retryable, as keywarden’s other errors', () => {
  it.each([
    [
      'Lambda throttling',
      () => new LambdaInvokeError('TooManyRequestsException', 429, 'Rate exceeded'),
      true,
    ],
    ['a Lambda server error', () => new LambdaInvokeError('ServiceException', 500, 'internal'), true],
    ['a Lambda refusal', () => new LambdaInvokeError('AccessDeniedException', 403, 'not authorized'), false],
    [
      'S3 asking to slow down',
      () => new S3RequestError('SlowDown', 503, 'Please reduce your request rate', true),
      true,
    ],
    [
      'a missing bucket',
      () => new S3RequestError('NoSuchBucket', 404, 'The specified bucket does not exist', false),
      false,
    ],
  ])('says whether %s may pass later, and awsFailure passes it on', (_name, error, retryable) => {
    const failure = error();

    const worded = awsFailure('invoking keywarden-role-deny', failure);

    expect(failure).toBeInstanceOf(AwsRequestError);
    expect(failure.retryable).toBe(retryable);
    expect(isRetryableAwsError(failure)).toBe(retryable);
    expect(worded).toMatchObject({ retryable, cause: failure });
    expect(worded.message).toContain(`${failure.name} (HTTP ${failure.status})`);
  });
});

describe('LambdaRoleDeny over the invoke', () => {
  const request = {
    action: 'deny',
    roleArn: ROLE,
    deny: { sourceIdentity: 'bg-20261201t1200-0a1b2c3d' },
  } as const;

  it('returns the function’s checked answer', async () => {
    const deny = new LambdaRoleDeny({
      functionName: 'keywarden-role-deny',
      invoke: async () => ({ payload: '{"result":"revoked"}' }),
    });
    await expect(deny.run(request)).resolves.toEqual({ result: 'revoked' });
  });

  it('reports a failed invocation as retryable, naming the permission it needs', async () => {
    const deny = new LambdaRoleDeny({
      functionName: 'keywarden-role-deny',
      invoke: async () => {
        throw new LambdaInvokeError('AccessDeniedException', 403, 'not authorized');
      },
    });
    const error = await deny.run(request).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RoleDenyError);
    expect(error).toMatchObject({ retryable: true });
    expect((error as Error).message).toMatch(
      /AccessDeniedException; the caller's role needs lambda:InvokeFunction/,
    );
  });

  it('reports the function’s refusal with its type and message; a validation refusal is final', async () => {
    const deny = new LambdaRoleDeny({
      functionName: 'keywarden-role-deny',
      invoke: async () => ({
        functionError: 'Unhandled',
        payload: '{"errorType":"ValidationError","errorMessage":"expected a role under /breakglass/"}',
      }),
    });
    const error = await deny.run(request).catch((caught: unknown) => caught);
    expect(error).toMatchObject({
      message:
        'the role-deny function refused or failed (ValidationError): expected a role under /breakglass/',
      retryable: false,
    });
  });
});
