/**
 * Step Functions' StartExecution and DescribeExecution as one signed POST each
 * (functions/adapters/aws/sfn-executions.ts): the AWS JSON 1.0 request as the SDK sends it, the
 * host the SDK's endpoint rules would pick, and the answers and refusals read exactly, never
 * quoting the execution's input. Starting and describing on a real moto, retries through the fault
 * proxy included, is specified in test/integration/sfn-executions.test.ts.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import {
  isExecutionAlreadyExists,
  SfnRequestError,
  signedSfnExecutions,
} from '../../functions/adapters/aws/sfn-executions.ts';
import { regionalHost } from '../../functions/adapters/aws/signed-fetch.ts';
import { noSleep, scriptedFetch } from '../support/scripted-fetch.ts';

const MACHINE = 'arn:aws:states:eu-west-1:123456789012:stateMachine:keywarden-revocation';
const EXECUTION = 'arn:aws:states:eu-west-1:123456789012:execution:keywarden-revocation:c-7';
/** An input naming what a campaign input may name: a campaign and, in the checks, an identity. */
const INPUT = JSON.stringify({ campaignId: 'c-7', retryFailed: false, note: 'app-deployer-prod' });
const aws = {
  region: 'eu-west-1',
  credentials: { accessKeyId: 'test-key-id', secretAccessKey: 'test-secret-key' },
};

const json =
  (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  () =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/x-amz-json-1.0', ...headers },
    });

const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => expect.unreachable('expected the call to fail'),
    (error: unknown) => error,
  );

describe('sfn executions: regionalHost for states, as the SDK’s endpoint rules pick it', () => {
  const rules = new SFNClient({ region: 'us-east-1' }).config.endpointProvider;
  const regions = ['eu-west-1', 'us-gov-west-1', 'us-gov-east-1', 'cn-north-1', 'us-iso-east-1'];
  const cases = regions.flatMap((region) =>
    [false, true].flatMap((fips) => [false, true].map((dualStack) => [region, fips, dualStack] as const)),
  );

  it.each(cases)('%s, FIPS %s, dual-stack %s', (region, fips, dualStack) => {
    const env = {
      ...(fips ? { AWS_USE_FIPS_ENDPOINT: 'true' } : {}),
      ...(dualStack ? { AWS_USE_DUALSTACK_ENDPOINT: 'true' } : {}),
    };
    const expected = rules({ Region: region, UseFIPS: fips, UseDualStack: dualStack }).url.host;
    expect(regionalHost('states', region, env)).toBe(expected);
  });
});

describe('sfn executions: one signed POST per operation', () => {
  it('starts: AWS JSON 1.0 to the regional endpoint, signed for states; answers the ARN and start date', async () => {
    const { requests, fetchFn } = scriptedFetch(json({ executionArn: EXECUTION, startDate: 1764950400.25 }));

    const started = await signedSfnExecutions(aws, { fetch: fetchFn, env: {} }).start({
      stateMachineArn: MACHINE,
      name: 'c-7',
      input: INPUT,
    });

    expect(started).toEqual({ executionArn: EXECUTION, startDate: new Date(1764950400250) });
    const request = requests[0];
    expect(request?.url).toBe('https://states.eu-west-1.amazonaws.com/');
    expect(request?.init.method).toBe('POST');
    const headers = (request?.init.headers ?? {}) as Record<string, string>;
    expect(headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(headers['x-amz-target']).toBe('AWSStepFunctions.StartExecution');
    expect(headers.authorization).toMatch(/Credential=test-key-id\/\d{8}\/eu-west-1\/states\/aws4_request/);
    expect(JSON.parse(String(request?.init.body))).toEqual({
      stateMachineArn: MACHINE,
      name: 'c-7',
      input: INPUT,
    });
  });

  it('describes: the status, dates, error and cause; the input and output are not kept', async () => {
    const { requests, fetchFn } = scriptedFetch(
      json({
        executionArn: EXECUTION,
        stateMachineArn: MACHINE,
        name: 'c-7',
        status: 'FAILED',
        startDate: 1764950400,
        stopDate: 1764950460.5,
        input: INPUT,
        output: INPUT,
        error: 'States.TaskFailed',
        cause: 'the revoke batch failed',
      }),
    );

    const described = await signedSfnExecutions(aws, { fetch: fetchFn, env: {} }).describe(EXECUTION);

    expect(described).toEqual({
      executionArn: EXECUTION,
      stateMachineArn: MACHINE,
      status: 'FAILED',
      startDate: new Date(1764950400000),
      stopDate: new Date(1764950460500),
      error: 'States.TaskFailed',
      cause: 'the revoke batch failed',
    });
    expect((requests[0]?.init.headers as Record<string, string> | undefined)?.['x-amz-target']).toBe(
      'AWSStepFunctions.DescribeExecution',
    );
    expect(JSON.parse(String(requests[0]?.init.body))).toEqual({ executionArn: EXECUTION });
  });
});

describe('sfn executions: refusals and answers that cannot be read', () => {
  it('reads ExecutionAlreadyExists behind a namespace, at once (no retry), recognisable', async () => {
    const { requests, fetchFn } = scriptedFetch(
      json(
        {
          __type: 'com.amazonaws.swf.service.v2.model#ExecutionAlreadyExists',
          message: `Execution Already Exists: '${EXECUTION}'`,
        },
        400,
      ),
    );

    const failure = await failureOf(
      signedSfnExecutions(aws, { fetch: fetchFn, sleep: noSleep, env: {} }).start({
        stateMachineArn: MACHINE,
        name: 'c-7',
        input: INPUT,
      }),
    );

    expect(failure).toBeInstanceOf(SfnRequestError);
    expect(isExecutionAlreadyExists(failure)).toBe(true);
    expect(failure).toMatchObject({
      name: 'ExecutionAlreadyExists',
      status: 400,
      retryable: false,
      message: `Execution Already Exists: '${EXECUTION}'`,
    });
    expect(requests).toHaveLength(1);
  });

  it('retries a throttle (ThrottlingException, HTTP 400) and a server error, reading `Message` too', async () => {
    const { requests, fetchFn } = scriptedFetch(
      json({ __type: 'ThrottlingException', message: 'Rate exceeded' }, 400),
      json({ Message: 'Internal failure' }, 500, { 'x-amzn-errortype': 'InternalFailure' }),
      json(
        { __type: 'StateMachineDoesNotExist', Message: `State Machine Does Not Exist: '${MACHINE}'.` },
        400,
      ),
    );

    const failure = await failureOf(
      signedSfnExecutions(aws, { fetch: fetchFn, sleep: noSleep, env: {} }).start({
        stateMachineArn: MACHINE,
        name: 'c-7',
        input: INPUT,
      }),
    );

    expect(requests).toHaveLength(3);
    expect(isExecutionAlreadyExists(failure)).toBe(false);
    expect(failure).toMatchObject({
      name: 'StateMachineDoesNotExist',
      retryable: false,
      message: `State Machine Does Not Exist: '${MACHINE}'`,
    });
  });

  it('gives up on throttling after its attempts, retryable', async () => {
    const throttle = json({ __type: 'ThrottlingException', message: 'Rate exceeded' }, 400);
    const { requests, fetchFn } = scriptedFetch(throttle, throttle);

    const failure = await failureOf(
      signedSfnExecutions(aws, { fetch: fetchFn, sleep: noSleep, maxAttempts: 2, env: {} }).describe(
        EXECUTION,
      ),
    );

    expect(failure).toMatchObject({ name: 'ThrottlingException', status: 400, retryable: true });
    expect(requests).toHaveLength(2);
  });

  it('never quotes the execution input a refusal quotes', async () => {
    const { fetchFn } = scriptedFetch(
      json(
        { __type: 'InvalidExecutionInput', message: `Invalid State Machine Execution Input: '${INPUT}'` },
        400,
      ),
      json({ __type: 'ValidationException', message: `1 validation error: input '${INPUT}' too long` }, 400),
    );
    const executions = signedSfnExecutions(aws, { fetch: fetchFn, sleep: noSleep, env: {} });
    const start = () => executions.start({ stateMachineArn: MACHINE, name: 'c-7', input: INPUT });

    const refused = (await failureOf(start())) as Error;
    const other = (await failureOf(start())) as Error;

    expect(refused.name).toBe('InvalidExecutionInput');
    expect(refused.message).toBe(`the execution input (${INPUT.length} bytes) was refused`);
    expect(other.message).not.toContain(INPUT);
    expect(other.message).not.toContain('app-deployer-prod');
  });

  it('refuses a 2xx answer that is not JSON with its size alone, not its text', async () => {
    const body = `<html>${INPUT}</html>`;
    const { fetchFn } = scriptedFetch(json(body));

    const failure = (await failureOf(
      signedSfnExecutions(aws, { fetch: fetchFn, env: {} }).describe(EXECUTION),
    )) as SfnRequestError;

    expect(failure).toMatchObject({ name: 'UnreadableAnswer', status: 200, retryable: false });
    expect(failure.message).toContain(`${body.length} bytes`);
    expect(failure.message).not.toContain('app-deployer-prod');
    expect(failure.message).not.toContain('html');
  });

  it('refuses an answer without what it must hold, naming the fields, not their values', async () => {
    const { fetchFn } = scriptedFetch(
      json({ executionArn: EXECUTION, stateMachineArn: MACHINE, status: 'WAITING', startDate: 'yesterday' }),
    );

    const failure = (await failureOf(
      signedSfnExecutions(aws, { fetch: fetchFn, env: {} }).describe(EXECUTION),
    )) as SfnRequestError;

    expect(failure.name).toBe('UnreadableAnswer');
    expect(failure.message).toMatch(/DescribeExecution .*\(status, startDate\)$/);
    expect(failure.message).not.toContain('WAITING');
  });

  it('says Step Functions did not answer, retried, when the connection is lost', async () => {
    const lost = () => {
      throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
    };
    const { requests, fetchFn } = scriptedFetch(lost, lost);

    const failure = await failureOf(
      signedSfnExecutions(aws, { fetch: fetchFn, sleep: noSleep, maxAttempts: 2, env: {} }).describe(
        EXECUTION,
      ),
    );

    expect(failure).toMatchObject({
      retryable: true,
      message: 'no answer from Step Functions: fetch failed (ECONNRESET)',
    });
    expect(requests).toHaveLength(2);
  });
});
