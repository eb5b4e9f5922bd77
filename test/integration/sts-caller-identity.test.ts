/**
 * STS GetCallerIdentity as one signed `fetch` (functions/adapters/aws/sts-caller-identity.ts),
 * what the test step of an IAM access key rotation signs with the new key, against a real moto.
 *
 * The shared moto accepts any signature (it checks them only once INITIAL_NO_AUTH_ACTION_COUNT
 * requests have been served, and the stack leaves that infinite): so the refusals are checked on
 * a moto of this file's own, told through its `/moto-api/reset-auth` to check every request once
 * the users and keys are made. Throttling and server errors come from the fault proxy in front of
 * the shared moto (moto never throttles).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  DeleteAccessKeyCommand,
  GetUserCommand,
  IAMClient,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig, awsClients, awsFailure } from '../../functions/adapters/aws/clients.ts';
import type { AwsEndpoint } from '../../functions/adapters/aws/endpoint.ts';
import {
  isKeyRefused,
  type StsCredentials,
  StsRequestError,
  signedGetCallerIdentity,
} from '../../functions/adapters/aws/sts-caller-identity.ts';
import { endGroup, startMoto } from '../../scripts/local-stack.ts';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const noSleep = async () => {};

/** A new IAM user with one access key, on `iam`; the pair is made by moto at run time. */
async function userWithKey(iam: IAMClient, userName = uniqueName('kw-sts')) {
  await iam.send(new CreateUserCommand({ UserName: userName, Path: '/ci/' }));
  const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
  const key: StsCredentials = {
    accessKeyId: AccessKey?.AccessKeyId ?? '',
    secretAccessKey: AccessKey?.SecretAccessKey ?? '',
  };
  return { userName, key };
}

/** Rejects unless `promise` fails; returns the failure. */
const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => expect.unreachable('expected the call to fail'),
    (error: unknown) => error,
  );

/** Asserts that no part of `key`'s secret, nor a signature, appears in `text`. */
function expectNoSecret(text: string, key: StsCredentials) {
  expect(text).not.toContain(key.secretAccessKey);
  expect(text).not.toContain('Signature=');
  expect(text).not.toContain('AWS4-HMAC-SHA256');
}

describe('sts: signedGetCallerIdentity on the shared moto', () => {
  it('names the IAM user a working key belongs to: its ARN (path included), account and user id', async () => {
    const iam = awsClients(testAws()).iam;
    const { userName, key } = await userWithKey(iam);

    const caller = await signedGetCallerIdentity(testAws())(key);

    expect(caller.arn).toMatch(new RegExp(`^arn:aws:iam::\\d{12}:user/ci/${userName}$`));
    expect(caller.account).toMatch(/^\d{12}$/);
    expect(caller.arn).toContain(`::${caller.account}:`);
    const { User } = await iam.send(new GetUserCommand({ UserName: userName }));
    expect(caller.userId).toBe(User?.UserId);
    expect(caller.arn).toBe(User?.Arn);
  });

  it('takes the endpoint from AWS_ENDPOINT_URL_STS when none is configured, as the SDK’s client does', async () => {
    const iam = awsClients(testAws()).iam;
    const { userName, key } = await userWithKey(iam);
    const { endpoint: _moto, ...unconfigured } = testAws();

    const caller = await signedGetCallerIdentity(unconfigured, {
      env: { AWS_ENDPOINT_URL_STS: testStack().moto.endpoint, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' },
    })(key);

    expect(caller.arn.endsWith(`/${userName}`)).toBe(true);
  });
});

describe('sts: signedGetCallerIdentity refusals, on a moto that checks signatures', () => {
  let pid: number | undefined;
  let stateDir: string;
  let endpoint: AwsEndpoint;
  /** A user whose inline policy lets it delete its own keys (with authentication on, moto evaluates IAM policies). */
  let owner: { userName: string; key: StsCredentials };
  let deleted: StsCredentials;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kw-sts-moto-'));
    const moto = await startMoto(join(stateDir, 'moto.log'));
    pid = moto.pid;
    const base = moto.endpoint;
    endpoint = { ...testAws(), endpoint: base };
    // Made while moto still lets anything in: no key exists yet to sign with.
    const iam = new IAMClient(awsClientConfig(endpoint));
    owner = await userWithKey(iam);
    await iam.send(
      new PutUserPolicyCommand({
        UserName: owner.userName,
        PolicyName: 'own-keys',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iam:DeleteAccessKey', Resource: '*' }],
        }),
      }),
    );
    const second = await iam.send(new CreateAccessKeyCommand({ UserName: owner.userName }));
    deleted = {
      accessKeyId: second.AccessKey?.AccessKeyId ?? '',
      secretAccessKey: second.AccessKey?.SecretAccessKey ?? '',
    };
    iam.destroy();
    // From here on every request must be signed by a key moto's IAM knows.
    const reset = await fetch(`${base}/moto-api/reset-auth`, { method: 'POST', body: '0' });
    expect(reset.ok).toBe(true);
    // The owner deletes the second key, as a rotation's finishing step deletes the old one.
    const signedIam = new IAMClient(awsClientConfig({ ...endpoint, credentials: owner.key }));
    await signedIam.send(
      new DeleteAccessKeyCommand({ UserName: owner.userName, AccessKeyId: deleted.accessKeyId }),
    );
    signedIam.destroy();
  }, 90_000);

  afterAll(async () => {
    if (pid !== undefined) await endGroup(pid);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('names the owner of a working key', async () => {
    const caller = await signedGetCallerIdentity(endpoint)(owner.key);
    expect(caller.arn.endsWith(`:user/ci/${owner.userName}`)).toBe(true);
  });

  it('says a deleted key does not work: InvalidClientTokenId, at once (waiting for IAM is the caller’s call), without its secret', async () => {
    const failure = await failureOf(signedGetCallerIdentity(endpoint, { sleep: noSleep })(deleted));

    expect(failure).toBeInstanceOf(StsRequestError);
    expect(isKeyRefused(failure)).toBe(true);
    expect(failure).toMatchObject({ name: 'InvalidClientTokenId', status: 403, retryable: false });
    const worded = awsFailure(`testing access key ${deleted.accessKeyId}`, failure);
    expect(worded.retryable).toBe(false);
    expect(worded.message).toMatch(/InvalidClientTokenId \(HTTP 403\): The security token included/);
    expectNoSecret(worded.message, deleted);
  });

  it('says a key signed with the wrong secret does not work: SignatureDoesNotMatch, without either secret', async () => {
    const wrong = { ...owner.key, secretAccessKey: randomBytes(30).toString('base64').slice(0, 40) };

    const failure = await failureOf(signedGetCallerIdentity(endpoint, { sleep: noSleep })(wrong));

    expect(isKeyRefused(failure)).toBe(true);
    expect(failure).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403, retryable: false });
    expectNoSecret(String((failure as Error).message), wrong);
    expectNoSecret(String((failure as Error).message), owner.key);
  });

  it('says a key moto never issued does not work', async () => {
    const unknown = {
      accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64').slice(0, 40),
    };
    const failure = await failureOf(signedGetCallerIdentity(endpoint, { sleep: noSleep })(unknown));
    expect(isKeyRefused(failure)).toBe(true);
  });
});

describe('sts: signedGetCallerIdentity retries as the SDK does (fault proxy in front of moto)', () => {
  const running: FaultProxy[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((proxy) => proxy.close()));
  });

  /** A proxy in front of moto faulting the first `faulted` STS requests with `fault`, then passing all. */
  async function faultySts(fault: 'throttleRate' | 'serverErrorRate' | 'dropRate', faulted: number) {
    let seen = 0;
    const proxy = await startFaultProxy({
      target: testStack().moto.endpoint,
      [fault]: 1,
      match: (request) => request.service === 'sts' && seen++ < faulted,
    });
    running.push(proxy);
    return proxy;
  }

  it.each([
    ['a throttle (Throttling, HTTP 400)', 'throttleRate'],
    ['a server error (500/503)', 'serverErrorRate'],
    ['a lost connection', 'dropRate'],
  ] as const)('names the caller after %s, twice in a row', async (_, fault) => {
    const { userName, key } = await userWithKey(awsClients(testAws()).iam);
    const proxy = await faultySts(fault, 2);

    const caller = await signedGetCallerIdentity(
      { ...testAws(), endpoint: proxy.url },
      { sleep: noSleep },
    )(key);

    expect(caller.arn.endsWith(`/${userName}`)).toBe(true);
    expect(proxy.counts.requests).toBe(3);
    expect(proxy.faults).toHaveLength(2);
  });

  it('gives up after its attempts with a retryable error naming STS’s answer, not the key’s secret', async () => {
    const { key } = await userWithKey(awsClients(testAws()).iam);
    const proxy = await faultySts('throttleRate', 100);

    const failure = await failureOf(
      signedGetCallerIdentity({ ...testAws(), endpoint: proxy.url }, { sleep: noSleep, maxAttempts: 3 })(key),
    );

    expect(isKeyRefused(failure)).toBe(false);
    expect(failure).toMatchObject({ name: 'Throttling', status: 400, retryable: true });
    const worded = awsFailure('testing an access key', failure);
    expect(worded.retryable).toBe(true);
    expect(worded.message).toMatch(/Throttling \(HTTP 400\): Rate exceeded\. AWS is throttling/);
    expectNoSecret(worded.message, key);
    expect(proxy.counts.requests).toBe(3);
  });
});
