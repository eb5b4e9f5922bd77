/**
 * The AWS credential providers and the Secrets Manager delivery, against the real moto
 * server of the local stack. Every IAM user and secret is named with `uniqueName`,
 * because other test files share the same moto. Values are made at run time and never
 * printed; assertions on errors check that no value appears in them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  CreateUserCommand,
  GetUserCommand,
  ListAccessKeysCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsSecretProvider } from '../../functions/adapters/aws/aws-secret-provider.ts';
import { type AwsClients, awsClientConfig, awsClients } from '../../functions/adapters/aws/clients.ts';
import type { AwsEndpoint } from '../../functions/adapters/aws/endpoint.ts';
import { IamAccessKeyProvider } from '../../functions/adapters/aws/iam-access-key-provider.ts';
import { SecretsManagerDelivery } from '../../functions/adapters/aws/secrets-manager-delivery.ts';
import { KeywardenError, NotFoundError, VerificationError } from '../../functions/core/errors.ts';
import type { IdentityOfKind } from '../../functions/core/identity.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { type AnsweringProxy, awsQueryError, startAnsweringProxy } from '../support/answering-proxy.ts';
import { identity } from '../support/fixtures.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

let endpoint: AwsEndpoint;
let aws: AwsClients;

beforeAll(() => {
  endpoint = testAws();
  aws = awsClients(endpoint);
});

/** A credential-like value made at run time, so no credential ever sits in the source. */
const secretValue = () => new SecretValue(randomBytes(24).toString('base64url'));

/** Records the waits verify asks for instead of waiting. */
const recordingSleep = () => {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
};

const keyIdentity = (userName: string) =>
  identity({
    id: uniqueName('kw'),
    kind: 'aws-iam-access-key',
    scope: { userName },
  }) as IdentityOfKind<'aws-iam-access-key'>;

const secretIdentity = (secretId: string, generator?: Record<string, unknown>) =>
  identity({
    id: uniqueName('kw'),
    kind: 'aws-secret',
    scope: { secretId, ...(generator && { generator }) },
  }) as IdentityOfKind<'aws-secret'>;

async function createUser() {
  const userName = uniqueName('user');
  await aws.iam.send(new CreateUserCommand({ UserName: userName }));
  return userName;
}

/** A fresh secret name no other test uses: `kw-<random>/delivery`. */
const secretName = () => `${uniqueName('kw')}/delivery`;

/** Whole seconds: moto keeps some dates to the second only. */
const wholeSecondsAgo = (days: number) =>
  new Date(Math.floor((Date.now() - days * 86_400_000) / 1000) * 1000);

/** Seeds an access key's dates through the moto launcher's fixture route (scripts/moto-server.py). */
async function backdate(accessKeyId: string, dates: { createDate?: string; lastUsedDate?: string }) {
  const response = await fetch(`${testStack().moto.endpoint}/_keywarden/iam/backdate-access-key`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ accessKeyId, ...dates }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

async function keyStatus(userName: string, accessKeyId: string) {
  const { AccessKeyMetadata } = await aws.iam.send(new ListAccessKeysCommand({ UserName: userName }));
  return AccessKeyMetadata?.find((key) => key.AccessKeyId === accessKeyId)?.Status;
}

async function stagesOf(secretId: string) {
  const { VersionIdsToStages } = await aws.secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
  // moto lists unlabelled versions with an empty list; AWS leaves them out. Compare as AWS would.
  return Object.fromEntries(
    Object.entries(VersionIdsToStages ?? {}).filter(([, stages]) => stages.length > 0),
  );
}

/** A message must carry no part of a value: neither the whole nor its secret half. */
function expectNoValue(message: string, ...values: SecretValue[]) {
  for (const value of values) {
    expect(message.includes(value.reveal()), 'a secret value appears in an error message').toBe(false);
    try {
      const { secretAccessKey } = value.revealJson();
      if (secretAccessKey) expect(message.includes(secretAccessKey)).toBe(false);
    } catch {
      // not a key pair
    }
  }
}

describe('provider: aws-iam-access-key', () => {
  const provider = (props: { verifyTimeoutMs?: number; sleep?: (ms: number) => Promise<void> } = {}) =>
    new IamAccessKeyProvider({ iam: aws.iam, endpoint, ...props });

  it('issues a key that verifies, authenticates with STS and belongs to the identity’s user', async () => {
    // prepare
    const userName = await createUser();
    const who = keyIdentity(userName);

    // act
    const issued = await provider().issue(who, { versionId: randomUUID() });
    await provider().verify(who, issued);

    // assess
    const pair = issued.secret.revealJson();
    expect(pair.accessKeyId).toBe(issued.handle);
    expect(pair.secretAccessKey).toEqual(expect.any(String));
    const asKey = new STSClient(
      awsClientConfig({
        ...endpoint,
        credentials: { accessKeyId: pair.accessKeyId ?? '', secretAccessKey: pair.secretAccessKey ?? '' },
      }),
    );
    const { Arn } = await asKey.send(new GetCallerIdentityCommand({}));
    const { User } = await aws.iam.send(new GetUserCommand({ UserName: userName }));
    expect(Arn).toBe(User?.Arn);
    expect(await provider().list(who)).toEqual([
      { handle: issued.handle, status: 'active', createdAt: expect.any(String) },
    ]);
    expect(JSON.stringify(issued)).not.toContain(pair.secretAccessKey);
  });

  it('fails verify with a VerificationError for a key of another user', async () => {
    // prepare
    const owner = keyIdentity(await createUser());
    const other = keyIdentity(await createUser());
    const othersKey = await provider().issue(other, { versionId: randomUUID() });

    // act
    const failure = await provider()
      .verify(owner, othersKey)
      .catch((error: unknown) => error);

    // assess
    expect(failure).toBeInstanceOf(VerificationError);
    const message = (failure as VerificationError).message;
    expect(message).toContain(othersKey.handle);
    expect(message).toContain(`IAM user ${owner.scope.userName}`);
    expect(message).toContain(other.scope.userName);
    expectNoValue(message, othersKey.secret);
  });

  it('fails verify for a deactivated key, which moto still lets authenticate: status comes from IAM', async () => {
    // prepare
    const who = keyIdentity(await createUser());
    const issued = await provider().issue(who, { versionId: randomUUID() });
    await aws.iam.send(
      new UpdateAccessKeyCommand({
        UserName: who.scope.userName,
        AccessKeyId: issued.handle,
        Status: 'Inactive',
      }),
    );
    const pair = issued.secret.revealJson();
    const asKey = new STSClient(
      awsClientConfig({
        ...endpoint,
        credentials: { accessKeyId: pair.accessKeyId ?? '', secretAccessKey: pair.secretAccessKey ?? '' },
      }),
    );

    // act
    const failure = await provider()
      .verify(who, issued)
      .catch((error: unknown) => error);

    // assess
    // The moto trap itself: the inactive key still signs a successful call.
    await expect(asKey.send(new GetCallerIdentityCommand({}))).resolves.toMatchObject({
      Arn: expect.any(String),
    });
    expect(failure).toBeInstanceOf(VerificationError);
    expect((failure as Error).message).toContain('to be Active, but IAM lists it as Inactive');
    expectNoValue((failure as Error).message, issued.secret);
  });

  it('refuses a third key with a message naming both keys, and deletes none', async () => {
    // prepare
    const who = keyIdentity(await createUser());
    const first = await provider().issue(who, { versionId: randomUUID() });
    const second = await provider().issue(who, { versionId: randomUUID() });
    await provider().supersede(who, first.handle);

    // act
    const failure = await provider()
      .issue(who, { versionId: randomUUID() })
      .catch((error: unknown) => error);

    // assess
    expect(failure).toBeInstanceOf(KeywardenError);
    const error = failure as KeywardenError;
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('IAM allows 2 access keys per user');
    expect(error.message).toContain(`${first.handle} (Inactive)`);
    expect(error.message).toContain(`${second.handle} (Active)`);
    expect(error.message).toContain('retired');
    expect((await provider().list(who)).map((key) => key.handle).sort()).toEqual(
      [first.handle, second.handle].sort(),
    );
  });

  it('supersede and disable make the key Inactive, and running them again changes nothing', async () => {
    // prepare
    const who = keyIdentity(await createUser());
    const old = await provider().issue(who, { versionId: randomUUID() });
    const other = await provider().issue(who, { versionId: randomUUID() });

    // act
    await provider().supersede(who, old.handle);
    await provider().supersede(who, old.handle);
    await provider().disable(who, other.handle);
    await provider().disable(who, other.handle);

    // assess
    expect(await keyStatus(who.scope.userName, old.handle)).toBe('Inactive');
    expect(await keyStatus(who.scope.userName, other.handle)).toBe('Inactive');
    expect((await provider().list(who)).map((key) => key.status)).toEqual(['inactive', 'inactive']);
  });

  it('revoke deletes the key, and a second revoke answers already-revoked', async () => {
    // prepare
    const who = keyIdentity(await createUser());
    const kept = await provider().issue(who, { versionId: randomUUID() });
    const revoked = await provider().issue(who, { versionId: randomUUID() });

    // act
    const first = await provider().revoke(who, revoked.handle);
    const second = await provider().revoke(who, revoked.handle);

    // assess
    expect(first).toBe('revoked');
    expect(second).toBe('already-revoked');
    expect((await provider().list(who)).map((key) => key.handle)).toEqual([kept.handle]);
    expect(await provider().revoke(keyIdentity(uniqueName('nobody')), revoked.handle)).toBe(
      'already-revoked',
    );
  });

  it('lastUsed is undefined before use, follows a signed call, and reports a backdated use exactly', async () => {
    // prepare
    const who = keyIdentity(await createUser());
    const issued = await provider().issue(who, { versionId: randomUUID() });
    const pair = issued.secret.revealJson();
    const neverUsed = await provider().lastUsed(who, issued.handle);

    // act
    const before = Date.now();
    await new STSClient(
      awsClientConfig({
        ...endpoint,
        credentials: { accessKeyId: pair.accessKeyId ?? '', secretAccessKey: pair.secretAccessKey ?? '' },
      }),
    ).send(new GetCallerIdentityCommand({}));
    const after = Date.now();
    const used = await provider().lastUsed(who, issued.handle);
    const lastUsedDate = wholeSecondsAgo(120);
    await backdate(issued.handle, { lastUsedDate: lastUsedDate.toISOString() });
    const backdated = await provider().lastUsed(who, issued.handle);

    // assess
    expect(neverUsed).toBeUndefined();
    expect(Date.parse(used ?? '')).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(used ?? '')).toBeLessThanOrEqual(after + 1000);
    expect(backdated).toBe(lastUsedDate.toISOString());
    expect(
      await provider().lastUsed(who, `AKIA${randomBytes(8).toString('hex').toUpperCase()}`),
    ).toBeUndefined();
  });

  it('answers a user IAM does not know: no keys listed, and issue fails with NotFoundError', async () => {
    const who = keyIdentity(uniqueName('nobody'));
    expect(await provider().list(who)).toEqual([]);
    await expect(provider().issue(who, { versionId: randomUUID() })).rejects.toBeInstanceOf(NotFoundError);
  });

  describe('while IAM propagates a new key', () => {
    /**
     * A fault proxy in front of moto (moto accepts a key at once): answers STS
     * GetCallerIdentity with InvalidClientTokenId while `reject` says so, as STS does
     * for the seconds a new key takes to propagate; forwards everything else.
     */
    let proxy: AnsweringProxy;
    let proxied: AwsEndpoint;
    let reject: () => boolean = () => false;
    let calls = 0;

    beforeAll(async () => {
      proxy = await startAnsweringProxy(testStack().moto.endpoint, (body) => {
        if (!body.includes('Action=GetCallerIdentity')) return undefined;
        calls++;
        return reject()
          ? awsQueryError(
              403,
              'https://sts.amazonaws.com/doc/2011-06-15/',
              'InvalidClientTokenId',
              'The security token included in the request is invalid.',
            )
          : undefined;
      });
      proxied = { ...endpoint, endpoint: proxy.url };
    });

    afterAll(async () => {
      await proxy.close();
    });

    it('retries InvalidClientTokenId with growing waits until STS accepts the key', async () => {
      // prepare
      const who = keyIdentity(await createUser());
      const issued = await provider().issue(who, { versionId: randomUUID() });
      const { waits, sleep } = recordingSleep();
      calls = 0;
      reject = () => calls <= 3;

      // act
      await new IamAccessKeyProvider({ iam: aws.iam, endpoint: proxied, sleep }).verify(who, issued);

      // assess
      expect(calls).toBe(4);
      expect(waits).toEqual([500, 1000, 2000]);
    });

    it('fails with a VerificationError once the timeout is spent, naming the key but not its secret', async () => {
      // prepare
      const who = keyIdentity(await createUser());
      const issued = await provider().issue(who, { versionId: randomUUID() });
      const { waits, sleep } = recordingSleep();
      reject = () => true;

      // act
      const failure = await new IamAccessKeyProvider({
        iam: aws.iam,
        endpoint: proxied,
        sleep,
        verifyTimeoutMs: 4000,
      })
        .verify(who, issued)
        .catch((error: unknown) => error);

      // assess
      expect(waits).toEqual([500, 1000, 2000, 500]);
      expect(failure).toBeInstanceOf(VerificationError);
      const message = (failure as Error).message;
      expect(message).toContain(issued.handle);
      expect(message).toContain('InvalidClientTokenId');
      expectNoValue(message, issued.secret);
    });
  });
});

describe('delivery: secrets manager', () => {
  const delivery = () => new SecretsManagerDelivery({ secrets: aws.secrets });

  /** A secret with one value, current; returns its spec and the current version id. */
  async function existingSecret() {
    const secretId = secretName();
    const old = secretValue();
    const oldVersion = randomUUID();
    await aws.secrets.send(
      new CreateSecretCommand({ Name: secretId, SecretString: old.reveal(), ClientRequestToken: oldVersion }),
    );
    return { spec: { type: 'aws-secret' as const, secretId }, old, oldVersion };
  }

  it('stages a pending value twice harmlessly, while the pipeline still reads the old one', async () => {
    // prepare
    const { spec, old, oldVersion } = await existingSecret();
    const next = secretValue();
    const versionId = randomUUID();

    // act
    await delivery().stagePending(spec, versionId, next);
    await delivery().stagePending(spec, versionId, next);

    // assess
    expect((await delivery().readPending(spec, versionId))?.reveal()).toBe(next.reveal());
    const current = await delivery().readCurrent(spec);
    expect(current?.versionId).toBe(oldVersion);
    expect(current?.secret.reveal()).toBe(old.reveal());
    expect(await stagesOf(spec.secretId)).toEqual({
      [oldVersion]: ['AWSCURRENT'],
      [versionId]: ['AWSPENDING'],
    });
  });

  it('refuses to stage another value under a version id already used, without showing either value', async () => {
    // prepare
    const { spec } = await existingSecret();
    const versionId = randomUUID();
    const staged = secretValue();
    const other = secretValue();
    await delivery().stagePending(spec, versionId, staged);

    // act
    const failure = await delivery()
      .stagePending(spec, versionId, other)
      .catch((error: unknown) => error);

    // assess
    expect(failure).toBeInstanceOf(KeywardenError);
    expectNoValue((failure as Error).message, staged, other);
    expect((await delivery().readPending(spec, versionId))?.reveal()).toBe(staged.reveal());
  });

  it('promotes: the pipeline reads the new value, AWSPENDING is gone, the old version is AWSPREVIOUS', async () => {
    // prepare
    const { spec, oldVersion } = await existingSecret();
    const next = secretValue();
    const versionId = randomUUID();
    await delivery().stagePending(spec, versionId, next);

    // act
    await delivery().promote(spec, versionId);
    const afterFirst = await stagesOf(spec.secretId);
    await delivery().promote(spec, versionId);

    // assess
    const current = await delivery().readCurrent(spec);
    expect(current?.versionId).toBe(versionId);
    expect(current?.secret.reveal()).toBe(next.reveal());
    expect(afterFirst).toEqual({ [oldVersion]: ['AWSPREVIOUS'], [versionId]: ['AWSCURRENT'] });
    expect(await stagesOf(spec.secretId)).toEqual(afterFirst);
  });

  it('discards a pending value: the label goes, the current value stays, and a repeat is harmless', async () => {
    // prepare
    const { spec, old, oldVersion } = await existingSecret();
    const versionId = randomUUID();
    await delivery().stagePending(spec, versionId, secretValue());

    // act
    await delivery().discardPending(spec, versionId);
    await delivery().discardPending(spec, versionId);

    // assess
    expect(await stagesOf(spec.secretId)).toEqual({ [oldVersion]: ['AWSCURRENT'] });
    expect(await delivery().readPending(spec, versionId)).toBeUndefined();
    expect((await delivery().readCurrent(spec))?.secret.reveal()).toBe(old.reveal());
    await expect(delivery().promote(spec, versionId)).rejects.toThrow(/to be staged as AWSPENDING/);
  });

  it('creates a missing secret on the first stage, whose value is current at once; promote then only tidies', async () => {
    // prepare
    const spec = { type: 'aws-secret' as const, secretId: secretName() };
    const first = secretValue();
    const versionId = randomUUID();
    const before = await delivery().readCurrent(spec);

    // act
    await delivery().stagePending(spec, versionId, first);
    await delivery().stagePending(spec, versionId, first);
    await delivery().promote(spec, versionId);

    // assess
    expect(before).toBeUndefined();
    expect(await stagesOf(spec.secretId)).toEqual({ [versionId]: ['AWSCURRENT'] });
    expect((await delivery().readCurrent(spec))?.secret.reveal()).toBe(first.reveal());
  });

  it('reads nothing pending for a version never staged, and refuses a version id Secrets Manager would reject', async () => {
    const { spec } = await existingSecret();
    expect(await delivery().readPending(spec, randomUUID())).toBeUndefined();
    await expect(delivery().readPending(spec, 'v1')).rejects.toThrow(/32 to 64/);
  });
});

describe('provider: aws-secret', () => {
  const provider = () => new AwsSecretProvider({ secrets: aws.secrets, random: randomBytes });
  const delivery = () => new SecretsManagerDelivery({ secrets: aws.secrets });

  it('issues a value of the generator’s length and classes, and creates nothing in AWS', async () => {
    // prepare
    const secretId = secretName();
    const who = secretIdentity(secretId, { length: 64, classes: ['digits', 'symbols'], exclude: '#' });
    const versionId = randomUUID();

    // act
    const issued = await provider().issue(who, { versionId });
    const byDefault = await provider().issue(secretIdentity(secretId), { versionId: randomUUID() });

    // assess
    expect(issued.handle).toBe(versionId);
    const value = issued.secret.reveal();
    expect(value).toHaveLength(64);
    expect(value).toMatch(/[0-9]/);
    expect(value).toMatch(/[^0-9]/);
    expect(value).not.toMatch(/[a-zA-Z#]/);
    expect(byDefault.secret.reveal()).toMatch(/^[a-zA-Z0-9]{40}$/);
    expect(await provider().list(who)).toEqual([]);
  });

  it('verifies a value staged through the delivery under the issued handle', async () => {
    // prepare
    const { spec, who } = await stagedSecret();
    const issued = await provider().issue(who, { versionId: randomUUID() });
    await delivery().stagePending(spec, issued.handle, issued.secret);

    // act + assess
    await expect(provider().verify(who, issued)).resolves.toBeUndefined();
  });

  it('fails verify for a wrong value, or a version never staged, with no value in the message', async () => {
    // prepare
    const { spec, who } = await stagedSecret();
    const issued = await provider().issue(who, { versionId: randomUUID() });
    await delivery().stagePending(spec, issued.handle, issued.secret);
    const wrong = secretValue();

    // act
    const mismatch = await provider()
      .verify(who, { handle: issued.handle, secret: wrong })
      .catch((error: unknown) => error);
    const unstaged = await provider()
      .verify(who, { handle: randomUUID(), secret: issued.secret })
      .catch((error: unknown) => error);

    // assess
    expect(mismatch).toBeInstanceOf(VerificationError);
    expect((mismatch as Error).message).toContain(`version ${issued.handle} of secret ${spec.secretId}`);
    expectNoValue((mismatch as Error).message, wrong, issued.secret);
    expect(unstaged).toBeInstanceOf(VerificationError);
    expectNoValue((unstaged as Error).message, issued.secret);
  });

  it('revokes a previous version by removing its labels, refuses the current one, and lists both', async () => {
    // prepare
    const { spec, who, firstVersion } = await stagedSecret();
    const issued = await provider().issue(who, { versionId: randomUUID() });
    await delivery().stagePending(spec, issued.handle, issued.secret);
    await delivery().promote(spec, issued.handle);

    // act
    const refused = await provider()
      .revoke(who, issued.handle)
      .catch((error: unknown) => error);
    const first = await provider().revoke(who, firstVersion);
    const second = await provider().revoke(who, firstVersion);

    // assess
    expect(refused).toBeInstanceOf(KeywardenError);
    expect((refused as Error).message).toContain('will not revoke the current version');
    expect(first).toBe('revoked');
    expect(second).toBe('already-revoked');
    expect(await stagesOf(spec.secretId)).toEqual({ [issued.handle]: ['AWSCURRENT'] });
    const listed = await provider().list(who);
    expect(listed).toHaveLength(2);
    expect(listed).toContainEqual({
      handle: issued.handle,
      versionId: issued.handle,
      status: 'active',
      stage: 'current',
      createdAt: expect.any(String),
    });
    expect(listed.find((version) => version.handle === firstVersion)).toMatchObject({
      status: 'inactive',
      // Unlabelled is what revoking leaves: a campaign does not adopt or target it.
      stage: 'revoked',
    });
    // The revoked version is unlabelled, not destroyed: AWS deletes deprecated versions itself.
    await expect(
      aws.secrets.send(new GetSecretValueCommand({ SecretId: spec.secretId, VersionId: firstVersion })),
    ).resolves.toMatchObject({ VersionStages: [] });
    expect(await provider().revoke(secretIdentity(secretName()), firstVersion)).toBe('already-revoked');
  });

  it('reports no last use when Secrets Manager recorded none', async () => {
    const { who, firstVersion } = await stagedSecret();
    // moto never records LastAccessedDate (AWS does, to the day).
    expect(await provider().lastUsed(who, firstVersion)).toBeUndefined();
  });

  /** A secret with one current value, and an aws-secret identity for it. */
  async function stagedSecret() {
    const secretId = secretName();
    const firstVersion = randomUUID();
    await aws.secrets.send(
      new CreateSecretCommand({
        Name: secretId,
        SecretString: secretValue().reveal(),
        ClientRequestToken: firstVersion,
      }),
    );
    return { spec: { type: 'aws-secret' as const, secretId }, who: secretIdentity(secretId), firstVersion };
  }
});
