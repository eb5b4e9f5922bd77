/**
 * Step Functions' StartExecution and DescribeExecution as one signed `fetch` each
 * (functions/adapters/aws/sfn-executions.ts), and the campaign launcher over them
 * (`stepFunctionsLauncher`, functions/adapters/campaign-launcher.ts), against the shared moto: a
 * state machine made with the SDK's own client, executions started, started again under the same
 * name, described, stopped. Throttling, server errors and lost connections come from the fault
 * proxy in front of moto (moto never throttles).
 *
 * moto, as Step Functions: an execution runs until stopped (its stand-in machine never ends it);
 * a second start of a running execution's name with the same input answers that execution, and
 * with another input, or once it stopped, is refused `ExecutionAlreadyExists`.
 */
import { CreateStateMachineCommand, SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig, awsFailure } from '../../functions/adapters/aws/clients.ts';
import {
  isExecutionAlreadyExists,
  SfnRequestError,
  signedSfnExecutions,
} from '../../functions/adapters/aws/sfn-executions.ts';
import { stepFunctionsLauncher } from '../../functions/adapters/campaign-launcher.ts';
import { ConflictError, KeywardenError } from '../../functions/core/errors.ts';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const noSleep = async () => {};

/** Rejects unless `promise` fails; returns the failure. */
const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => expect.unreachable('expected the call to fail'),
    (error: unknown) => error,
  );

/** An input naming what a campaign's may: a campaign id and an identity. */
const inputOf = (campaignId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ campaignId, retryFailed: false, identity: 'app-deployer-prod', ...extra });

let sdk: SFNClient;
let stateMachineArn = '';

beforeAll(async () => {
  sdk = new SFNClient(awsClientConfig(testAws()));
  const created = await sdk.send(
    new CreateStateMachineCommand({
      name: uniqueName('kw-sfn-revocation'),
      definition: JSON.stringify({ StartAt: 'Done', States: { Done: { Type: 'Succeed' } } }),
      roleArn: 'arn:aws:iam::123456789012:role/keywarden-revocation',
    }),
  );
  stateMachineArn = created.stateMachineArn ?? '';
  expect(stateMachineArn).toMatch(/:stateMachine:kw-sfn-revocation-/);
});

afterAll(() => sdk.destroy());

describe('sfn: signedSfnExecutions on the shared moto', () => {
  it('starts an execution under the name asked and describes it running, without its input', async () => {
    const executions = signedSfnExecutions(testAws());
    const name = uniqueName('c');
    const before = Date.now();

    const started = await executions.start({ stateMachineArn, name, input: inputOf(name) });
    const described = await executions.describe(started.executionArn);

    expect(started.executionArn).toBe(
      stateMachineArn.replace(':stateMachine:', ':execution:').concat(`:${name}`),
    );
    expect(started.startDate.getTime()).toBeGreaterThanOrEqual(before - 5_000);
    expect(started.startDate.getTime()).toBeLessThanOrEqual(Date.now() + 5_000);
    expect(described).toEqual({
      executionArn: started.executionArn,
      stateMachineArn,
      status: 'RUNNING',
      startDate: started.startDate,
    });
  });

  it('answers a second start of a running execution with the same input with that execution', async () => {
    const executions = signedSfnExecutions(testAws());
    const name = uniqueName('c');

    const first = await executions.start({ stateMachineArn, name, input: inputOf(name) });
    const again = await executions.start({ stateMachineArn, name, input: inputOf(name) });

    expect(again.executionArn).toBe(first.executionArn);
  });

  it('refuses a name already used with another input, or by an execution that ended: ExecutionAlreadyExists, without the input', async () => {
    const executions = signedSfnExecutions(testAws(), { sleep: noSleep });
    const name = uniqueName('c');
    const { executionArn } = await executions.start({ stateMachineArn, name, input: inputOf(name) });
    const otherInput = inputOf(name, { retryFailed: true });

    const other = await failureOf(executions.start({ stateMachineArn, name, input: otherInput }));
    await sdk.send(new StopExecutionCommand({ executionArn }));
    const ended = await failureOf(executions.start({ stateMachineArn, name, input: inputOf(name) }));

    for (const failure of [other, ended]) {
      expect(failure).toBeInstanceOf(SfnRequestError);
      expect(isExecutionAlreadyExists(failure)).toBe(true);
      expect(failure).toMatchObject({ name: 'ExecutionAlreadyExists', status: 400, retryable: false });
      expect((failure as Error).message).toContain(executionArn);
      expect((failure as Error).message).not.toContain('app-deployer-prod');
    }
    const described = await executions.describe(executionArn);
    expect(described.status).toBe('ABORTED');
    expect(described.stopDate?.getTime()).toBeGreaterThanOrEqual(described.startDate.getTime());
  });

  it('refuses an unknown state machine: StateMachineDoesNotExist, worded with its ARN, not retryable', async () => {
    const unknown = stateMachineArn.replace(/kw-sfn-revocation-\w+$/, uniqueName('kw-missing'));

    const failure = await failureOf(
      signedSfnExecutions(testAws(), { sleep: noSleep }).start({
        stateMachineArn: unknown,
        name: 'c-1',
        input: inputOf('c-1'),
      }),
    );

    expect(isExecutionAlreadyExists(failure)).toBe(false);
    expect(failure).toMatchObject({ name: 'StateMachineDoesNotExist', status: 400, retryable: false });
    const worded = awsFailure('starting the revocation state machine for campaign c-1', failure);
    expect(worded.retryable).toBe(false);
    expect(worded.message).toBe(
      `AWS failed while starting the revocation state machine for campaign c-1: StateMachineDoesNotExist (HTTP 400): State Machine Does Not Exist: '${unknown}'. check keywarden's IAM permissions and the configured names, then run again.`,
    );
    expect(worded.message).not.toContain('app-deployer-prod');
  });

  it('refuses describing an execution that does not exist: ExecutionDoesNotExist', async () => {
    const missing = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${uniqueName('c')}`;

    const failure = await failureOf(signedSfnExecutions(testAws(), { sleep: noSleep }).describe(missing));

    expect(failure).toMatchObject({ name: 'ExecutionDoesNotExist', status: 400, retryable: false });
  });

  it('takes the endpoint from AWS_ENDPOINT_URL_SFN when none is configured, as the SDK’s client does', async () => {
    const { endpoint: _moto, ...unconfigured } = testAws();
    const name = uniqueName('c');

    const started = await signedSfnExecutions(unconfigured, {
      env: { AWS_ENDPOINT_URL_SFN: testStack().moto.endpoint, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' },
    }).start({ stateMachineArn, name, input: inputOf(name) });

    expect(started.executionArn.endsWith(`:${name}`)).toBe(true);
  });
});

describe('campaign launcher: stepFunctionsLauncher on the shared moto', () => {
  it('starts the execution named after the campaign and follows it', async () => {
    const campaignId = uniqueName('camp');
    const launcher = stepFunctionsLauncher(testAws(), stateMachineArn);

    const { executionArn } = await launcher.start(campaignId);

    expect(executionArn.endsWith(`:execution:${stateMachineArn.split(':').pop()}:${campaignId}`)).toBe(true);
    await expect(launcher.describe(executionArn)).resolves.toEqual({ status: 'RUNNING' });
  });

  it('says a campaign whose execution ran was already started, and how to follow or resume it', async () => {
    const campaignId = uniqueName('camp');
    const launcher = stepFunctionsLauncher(testAws(), stateMachineArn);
    const { executionArn } = await launcher.start(campaignId);
    await sdk.send(
      new StopExecutionCommand({ executionArn, error: 'Stopped', cause: 'a responder stopped it' }),
    );

    const failure = await failureOf(launcher.launch(campaignId));

    expect(failure).toBeInstanceOf(ConflictError);
    expect((failure as Error).message).toBe(
      `campaign ${campaignId} was already started (Step Functions execution ${campaignId} exists); follow it with keywarden revoke status ${campaignId}, or continue it with keywarden revoke resume ${campaignId}`,
    );
    const described = await launcher.describe(executionArn);
    expect(described.status).toBe('ABORTED');
  });

  it('resumes as a new execution, named with the resume suffix', async () => {
    const campaignId = uniqueName('camp');
    const launcher = stepFunctionsLauncher(testAws(), stateMachineArn);
    const first = await launcher.start(campaignId);
    await sdk.send(new StopExecutionCommand({ executionArn: first.executionArn }));

    const resumed = await launcher.start(campaignId, { retryFailed: true });

    expect(resumed.executionArn).toMatch(new RegExp(`:${campaignId}-resume-\\d{8}T\\d{6}Z$`));
  });

  it('names the state machine it could not start, for a well-formed ARN that does not exist', async () => {
    const unknown = stateMachineArn.replace(/kw-sfn-revocation-\w+$/, uniqueName('kw-missing'));

    const failure = await failureOf(stepFunctionsLauncher(testAws(), unknown).launch('camp-1'));

    expect(failure).toBeInstanceOf(KeywardenError);
    expect(failure).toMatchObject({ retryable: false });
    expect((failure as Error).message).toMatch(
      /^AWS failed while starting the revocation state machine for campaign camp-1: StateMachineDoesNotExist \(HTTP 400\): State Machine Does Not Exist: '.*kw-missing-\w+'\. check keywarden's IAM permissions/,
    );
  });
});

describe('sfn: signedSfnExecutions retries as the SDK does (fault proxy in front of moto)', () => {
  const running: FaultProxy[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((proxy) => proxy.close()));
  });

  /** A proxy in front of moto faulting the first `faulted` Step Functions requests with `fault`, then passing all. */
  async function faultySfn(
    fault: 'throttleRate' | 'serverErrorRate' | 'dropRate',
    faulted: number,
    dropAfterForwardShare = 0,
  ) {
    let seen = 0;
    const proxy = await startFaultProxy({
      target: testStack().moto.endpoint,
      [fault]: 1,
      dropAfterForwardShare,
      match: (request) => request.service === 'states' && seen++ < faulted,
    });
    running.push(proxy);
    return proxy;
  }

  it.each([
    ['a throttle (ThrottlingException, HTTP 400)', 'throttleRate'],
    ['a server error (500/503)', 'serverErrorRate'],
    ['a lost connection', 'dropRate'],
  ] as const)('starts after %s, twice in a row, then describes', async (_, fault) => {
    const proxy = await faultySfn(fault, 2);
    const executions = signedSfnExecutions({ ...testAws(), endpoint: proxy.url }, { sleep: noSleep });
    const name = uniqueName('c');

    const started = await executions.start({ stateMachineArn, name, input: inputOf(name) });
    const described = await executions.describe(started.executionArn);

    expect(described.status).toBe('RUNNING');
    expect(proxy.faults).toHaveLength(2);
    expect(proxy.counts.requests).toBe(4);
  });

  it('starts once when the answer to a start was lost after Step Functions started it: the retry answers that execution', async () => {
    const proxy = await faultySfn('dropRate', 1, 1);
    const executions = signedSfnExecutions({ ...testAws(), endpoint: proxy.url }, { sleep: noSleep });
    const name = uniqueName('c');

    const started = await executions.start({ stateMachineArn, name, input: inputOf(name) });

    expect(proxy.faults.map((fault) => fault.kind)).toEqual(['droppedAfterForward']);
    expect(started.executionArn.endsWith(`:${name}`)).toBe(true);
    await expect(executions.describe(started.executionArn)).resolves.toMatchObject({ status: 'RUNNING' });
  });

  it('gives up after its attempts with a retryable error the launcher words as AWS throttling', async () => {
    const proxy = await faultySfn('throttleRate', 100);
    const executions = signedSfnExecutions(
      { ...testAws(), endpoint: proxy.url },
      { sleep: noSleep, maxAttempts: 3 },
    );
    const name = uniqueName('c');

    const failure = await failureOf(executions.start({ stateMachineArn, name, input: inputOf(name) }));

    expect(failure).toMatchObject({ name: 'ThrottlingException', status: 400, retryable: true });
    const worded = awsFailure(`starting the revocation state machine for campaign ${name}`, failure);
    expect(worded.retryable).toBe(true);
    expect(worded.message).toMatch(/ThrottlingException \(HTTP 400\): Rate exceeded\. AWS is throttling/);
    expect(worded.message).not.toContain('app-deployer-prod');
    expect(proxy.counts.requests).toBe(3);
  });
});
