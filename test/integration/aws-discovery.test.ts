/**
 * AWS discovery against the real moto server of the local stack. Every IAM path
 * and secret name is under a prefix of its own (`uniqueName`), because other test
 * files share the same moto. Secret values are random per run and never printed.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateAccessKeyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  IAMClient,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  PutSecretValueCommand,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsDiscovery } from '../../functions/adapters/aws/aws-discovery.ts';
import { type AwsClients, awsClientConfig, awsClients } from '../../functions/adapters/aws/clients.ts';
import type { AwsEndpoint } from '../../functions/adapters/aws/endpoint.ts';
import { IamDiscovery } from '../../functions/adapters/aws/iam-discovery.ts';
import { SecretsDiscovery } from '../../functions/adapters/aws/secrets-discovery.ts';
import { Fingerprinter } from '../../functions/adapters/crypto.ts';
import { type DiscoveredCredential, DiscoveredCredentialSchema } from '../../functions/core/discovery.ts';
import { runDiscovery } from '../../functions/core/discovery-run.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import { assessFindings, type Finding } from '../../functions/core/findings.ts';
import {
  type AnsweringProxy,
  awsQueryError,
  type ProxyAnswer,
  startAnsweringProxy,
} from '../support/answering-proxy.ts';
import { breakglassRole, breakglassSectionOf, identity as declare, FixedClock } from '../support/fixtures.ts';
import { MemoryAuditLog, MemoryIdentityStore } from '../support/memory-stores.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const TRUST_ANYONE_IN_ACCOUNT = JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' },
  ],
});

let endpoint: AwsEndpoint;
let aws: AwsClients;
const fingerprinter = new Fingerprinter(randomBytes(32));

beforeAll(() => {
  endpoint = testAws();
  aws = awsClients(endpoint);
});

/** A fresh IAM path no other test uses: `/kw-<random>/`. */
const iamPath = () => `/${uniqueName('kw')}/`;
/** A fresh secret name prefix no other test uses: `kw-<random>/`. */
const secretPrefix = () => `${uniqueName('kw')}/`;
/** A credential-like value made at run time, so no credential ever sits in the source. */
const secretValue = () => randomBytes(24).toString('base64url');

async function createUser(path: string, keys = 0) {
  const userName = uniqueName('user');
  await aws.iam.send(new CreateUserCommand({ UserName: userName, Path: path }));
  const created = [];
  for (let i = 0; i < keys; i++) {
    const { AccessKey } = await aws.iam.send(new CreateAccessKeyCommand({ UserName: userName }));
    if (!AccessKey?.AccessKeyId || !AccessKey.SecretAccessKey || !AccessKey.CreateDate) {
      throw new Error('moto returned an access key without id, secret or date');
    }
    created.push({
      accessKeyId: AccessKey.AccessKeyId,
      secretAccessKey: AccessKey.SecretAccessKey,
      createDate: AccessKey.CreateDate,
    });
  }
  return { userName, keys: created };
}

/** Seeds an access key's dates through the moto launcher's fixture route (scripts/moto-server.py). */
async function backdate(accessKeyId: string, dates: { createDate?: string; lastUsedDate?: string }) {
  const response = await fetch(`${testStack().moto.endpoint}/_keywarden/iam/backdate-access-key`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ accessKeyId, ...dates }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

async function createSecret(name: string, value?: string | Uint8Array) {
  const input =
    value === undefined
      ? { Name: name }
      : typeof value === 'string'
        ? { Name: name, SecretString: value }
        : { Name: name, SecretBinary: value };
  const { ARN } = await aws.secrets.send(new CreateSecretCommand(input));
  return ARN ?? '';
}

const iamDiscovery = (pathPrefix: string) => new IamDiscovery({ iam: aws.iam, pathPrefix });
const secretsDiscovery = (namePrefix: string) =>
  new SecretsDiscovery({ secrets: aws.secrets, namePrefix, fingerprinter });
/** Both AWS sources over `pathPrefix` and `namePrefix`, through `clients` (moto itself unless a proxy is given). */
const awsDiscovery = (
  pathPrefix: string,
  namePrefix: string,
  clients: Pick<AwsClients, 'iam' | 'secrets'> = aws,
) =>
  new AwsDiscovery({
    iam: clients.iam,
    secrets: clients.secrets,
    iamPathPrefix: pathPrefix,
    secretNamePrefix: namePrefix,
    fingerprinter,
  });
const byKey = (found: DiscoveredCredential[], key: string) =>
  found.filter((credential) => credential.key === key);
const only = (found: DiscoveredCredential[], key: string) => {
  const matching = byKey(found, key);
  expect(matching, `exactly one credential for ${key}`).toHaveLength(1);
  return matching[0] as DiscoveredCredential;
};
/** IAM's namespace, for query-protocol error answers. */
const IAM_XMLNS = 'https://iam.amazonaws.com/doc/2010-05-08/';

/** A JSON-protocol (Secrets Manager) error answer, as that service sends it. */
const awsJsonError = (status: number, type: string, message: string): ProxyAnswer => ({
  status,
  contentType: 'application/x-amz-json-1.1',
  body: JSON.stringify({ __type: type, message }),
});

/** Whole seconds: moto keeps some dates to the second only. */
const wholeSecondsAgo = (days: number) =>
  new Date(Math.floor((Date.now() - days * 86_400_000) / 1000) * 1000);

describe('discovery: aws', () => {
  describe('IAM access keys', () => {
    it('finds every key of the users under the path prefix, and nothing outside it', async () => {
      // prepare
      const path = iamPath();
      const none = await createUser(path, 0);
      const one = await createUser(path, 1);
      const two = await createUser(path, 2);
      // `/kw-x-other/` starts with `/kw-x` but not with `/kw-x/`: a sibling path is out of scope.
      const sibling = await createUser(`${path.slice(0, -1)}-other/`, 1);
      const outside = await createUser(iamPath(), 1);

      // act
      const found = await iamDiscovery(path).discover();

      // assess
      for (const credential of found) DiscoveredCredentialSchema.parse(credential);
      expect(byKey(found, `aws-iam-user:${none.userName}`)).toEqual([]);
      expect(byKey(found, `aws-iam-user:${sibling.userName}`)).toEqual([]);
      expect(byKey(found, `aws-iam-user:${outside.userName}`)).toEqual([]);
      expect(found.map((credential) => credential.handle).sort()).toEqual(
        [...one.keys, ...two.keys].map((key) => key.accessKeyId).sort(),
      );
      for (const user of [one, two]) {
        for (const key of user.keys) {
          expect(found).toContainEqual({
            key: `aws-iam-user:${user.userName}`,
            kind: 'aws-iam-access-key',
            handle: key.accessKeyId,
            label: `iam user ${user.userName} key ${key.accessKeyId}`,
            status: 'active',
            createdAt: key.createDate.toISOString(),
            details: { userName: user.userName },
          });
        }
      }
    });

    it('reports a deactivated key as inactive, next to its active sibling', async () => {
      // prepare
      const path = iamPath();
      const user = await createUser(path, 2);
      const [deactivated, kept] = user.keys as [(typeof user.keys)[0], (typeof user.keys)[0]];
      await aws.iam.send(
        new UpdateAccessKeyCommand({
          UserName: user.userName,
          AccessKeyId: deactivated.accessKeyId,
          Status: 'Inactive',
        }),
      );

      // act
      const found = await iamDiscovery(path).discover();

      // assess
      const status = Object.fromEntries(found.map((credential) => [credential.handle, credential.status]));
      expect(status).toEqual({ [deactivated.accessKeyId]: 'inactive', [kept.accessKeyId]: 'active' });
    });

    it('reports when a key was last used, and by which service, once a request is signed with it', async () => {
      // prepare
      const path = iamPath();
      const user = await createUser(path, 1);
      const key = user.keys[0] as (typeof user.keys)[0];
      const before = Date.now();
      const asUser = new STSClient({
        ...awsClientConfig(endpoint),
        credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      });
      await asUser.send(new GetCallerIdentityCommand({}));
      const after = Date.now();

      // act
      const credential = only(await iamDiscovery(path).discover(), `aws-iam-user:${user.userName}`);

      // assess
      const lastUsed = Date.parse(credential.lastUsedAt ?? '');
      expect(lastUsed).toBeGreaterThanOrEqual(before - 1000);
      expect(lastUsed).toBeLessThanOrEqual(after + 1000);
      expect(credential.details).toEqual({ userName: user.userName, service: 'sts' });
    });

    it('reports a backdated creation and last use exactly as IAM returns them', async () => {
      // prepare
      const path = iamPath();
      const user = await createUser(path, 1);
      const key = user.keys[0] as (typeof user.keys)[0];
      const createDate = wholeSecondsAgo(400);
      const lastUsedDate = wholeSecondsAgo(200);
      await backdate(key.accessKeyId, {
        createDate: createDate.toISOString(),
        lastUsedDate: lastUsedDate.toISOString(),
      });

      // act
      const credential = only(await iamDiscovery(path).discover(), `aws-iam-user:${user.userName}`);

      // assess
      expect(credential.createdAt).toBe(createDate.toISOString());
      expect(credential.lastUsedAt).toBe(lastUsedDate.toISOString());
    });

    it('refuses a path prefix that would also match sibling paths', () => {
      expect(() => new IamDiscovery({ iam: aws.iam, pathPrefix: '/ci' })).toThrow(ValidationError);
      expect(() => new IamDiscovery({ iam: aws.iam, pathPrefix: 'ci/' })).toThrow(
        /starts and ends with '\/'/,
      );
    });
  });

  describe('IAM roles', () => {
    it('finds the roles under the path prefix, with when a session of theirs was last used', async () => {
      // prepare
      const path = iamPath();
      const create = async (rolePath: string) => {
        const roleName = uniqueName('role');
        const { Role } = await aws.iam.send(
          new CreateRoleCommand({
            RoleName: roleName,
            Path: rolePath,
            AssumeRolePolicyDocument: TRUST_ANYONE_IN_ACCOUNT,
          }),
        );
        return { roleName, arn: Role?.Arn ?? '', createDate: Role?.CreateDate ?? new Date(0) };
      };
      const idle = await create(path);
      const used = await create(path);
      const outside = await create(iamPath());
      const { Credentials } = await aws.sts.send(
        new AssumeRoleCommand({ RoleArn: used.arn, RoleSessionName: 'kw-test' }),
      );
      const before = Date.now();
      // moto marks a role used when a request is signed with one of its session keys.
      await new STSClient({
        ...awsClientConfig(endpoint),
        credentials: {
          accessKeyId: Credentials?.AccessKeyId ?? '',
          secretAccessKey: Credentials?.SecretAccessKey ?? '',
          sessionToken: Credentials?.SessionToken ?? '',
        },
      }).send(new GetCallerIdentityCommand({}));

      // act
      const found = await iamDiscovery(path).discover();

      // assess
      for (const credential of found) DiscoveredCredentialSchema.parse(credential);
      expect(byKey(found, `aws-role:${outside.roleName}`)).toEqual([]);
      expect(only(found, `aws-role:${idle.roleName}`)).toEqual({
        key: `aws-role:${idle.roleName}`,
        kind: 'aws-role-session',
        handle: idle.arn,
        label: `iam role ${idle.roleName}`,
        status: 'active',
        createdAt: idle.createDate.toISOString(),
        details: { roleName: idle.roleName, path },
      });
      const usedRole = only(found, `aws-role:${used.roleName}`);
      expect(usedRole.handle).toBe(used.arn);
      expect(Date.parse(usedRole.lastUsedAt ?? '')).toBeGreaterThanOrEqual(before - 1000);
    });
  });

  describe('Secrets Manager', () => {
    it('fingerprints current values: equal values match, different values differ, and no value is returned', async () => {
      // prepare
      const prefix = secretPrefix();
      const shared = secretValue();
      const other = secretValue();
      const bytes = randomBytes(32);
      const before = Date.now();
      const arns = {
        first: await createSecret(`${prefix}first`, shared),
        second: await createSecret(`${prefix}second`, shared),
        other: await createSecret(`${prefix}other`, other),
        binary: await createSecret(`${prefix}binary`, new Uint8Array(bytes)),
      };
      const after = Date.now();
      const outsideName = `${secretPrefix()}first`;
      await createSecret(outsideName, shared);

      // act
      const found = await secretsDiscovery(prefix).discover();

      // assess
      for (const credential of found) DiscoveredCredentialSchema.parse(credential);
      expect(found.map((credential) => credential.key)).toEqual(
        ['binary', 'first', 'other', 'second'].map((name) => `aws-secret:${prefix}${name}`),
      );
      const first = only(found, `aws-secret:${prefix}first`);
      expect(first).toMatchObject({
        kind: 'aws-secret',
        handle: arns.first,
        label: `secret ${prefix}first`,
        status: 'active',
        details: { name: `${prefix}first`, rotationEnabled: false },
      });
      expect(first.lastUsedAt).toBeUndefined();
      // moto keeps CreatedDate to the second.
      expect(Date.parse(first.createdAt ?? '')).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(first.createdAt ?? '')).toBeLessThanOrEqual(after + 1000);

      const fingerprint = (name: string) => only(found, `aws-secret:${prefix}${name}`).fingerprint;
      expect(fingerprint('first')).toBe(fingerprinter.of(shared));
      expect(fingerprint('second')).toBe(fingerprint('first'));
      expect(fingerprint('other')).not.toBe(fingerprint('first'));
      expect(fingerprint('binary')).toBe(fingerprinter.of(bytes.toString('base64')));
      for (const credential of found) {
        expect(credential.fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{32}$/);
        expect(credential.fingerprint).not.toContain(shared);
      }
      const serialized = JSON.stringify(found);
      for (const value of [
        shared,
        other,
        bytes.toString('base64'),
        bytes.toString('hex'),
        bytes.toString('base64url'),
      ]) {
        expect(serialized.includes(value), 'a secret value appears in the discovery output').toBe(false);
      }
    });

    it('fingerprints the AWSCURRENT value after a stage move, not the version moto would default to', async () => {
      // prepare
      const prefix = secretPrefix();
      const name = `${prefix}moved`;
      const [previous, current] = [secretValue(), secretValue()];
      await createSecret(name, previous);
      const { VersionId: pendingVersion } = await aws.secrets.send(
        new PutSecretValueCommand({ SecretId: name, SecretString: current, VersionStages: ['AWSPENDING'] }),
      );
      const { VersionIdsToStages } = await aws.secrets.send(new DescribeSecretCommand({ SecretId: name }));
      const currentVersion = Object.entries(VersionIdsToStages ?? {}).find(([, stages]) =>
        stages.includes('AWSCURRENT'),
      )?.[0];
      await aws.secrets.send(
        new UpdateSecretVersionStageCommand({
          SecretId: name,
          VersionStage: 'AWSCURRENT',
          MoveToVersionId: pendingVersion,
          RemoveFromVersionId: currentVersion,
        }),
      );

      // act
      const credential = only(await secretsDiscovery(prefix).discover(), `aws-secret:${name}`);

      // assess
      expect(credential.fingerprint).toBe(fingerprinter.of(current));
    });

    it('still reports a secret whose value cannot be read, and a secret scheduled for deletion as inactive', async () => {
      // prepare
      const prefix = secretPrefix();
      const emptyArn = await createSecret(`${prefix}empty`);
      const deletedArn = await createSecret(`${prefix}deleted`, secretValue());
      await aws.secrets.send(new DeleteSecretCommand({ SecretId: deletedArn, RecoveryWindowInDays: 7 }));

      // act
      const found = await secretsDiscovery(prefix).discover();

      // assess
      const empty = only(found, `aws-secret:${prefix}empty`);
      expect(empty).toMatchObject({ handle: emptyArn, status: 'active' });
      expect(empty.fingerprint).toBeUndefined();
      // moto answers ResourceNotFoundException for a secret without an AWSCURRENT version, as AWS does.
      expect(empty.details).toEqual({
        name: `${prefix}empty`,
        rotationEnabled: false,
        unreadable: true,
        unreadableReason: 'ResourceNotFoundException',
      });
      const deleted = only(found, `aws-secret:${prefix}deleted`);
      expect(deleted).toMatchObject({ handle: deletedArn, status: 'inactive' });
      expect(deleted.fingerprint).toBeUndefined();
    });

    it('refuses a name prefix that the ListSecrets filter would read as a negation', () => {
      expect(() => secretsDiscovery('!ci/')).toThrow(ValidationError);
    });
  });

  describe('AwsDiscovery', () => {
    it('discovers keys, roles and secrets in one run, and its serialized output holds no secret value', async () => {
      // prepare
      const path = iamPath();
      const prefix = secretPrefix();
      const user = await createUser(path, 2);
      const roleName = uniqueName('role');
      await aws.iam.send(
        new CreateRoleCommand({
          RoleName: roleName,
          Path: path,
          AssumeRolePolicyDocument: TRUST_ANYONE_IN_ACCOUNT,
        }),
      );
      const [valueA, valueB] = [secretValue(), secretValue()];
      await createSecret(`${prefix}a`, valueA);
      await createSecret(`${prefix}b`, valueB);
      const discovery = awsDiscovery(path, prefix);

      // act
      const result = await discovery.discover({ leasePrefixes: [], identities: [], breakglassRoleArns: [] });

      // assess
      expect(discovery.name).toBe('aws');
      expect(result.map((credential) => `${credential.kind} ${credential.key}`).sort()).toEqual(
        [
          `aws-iam-access-key aws-iam-user:${user.userName}`,
          `aws-iam-access-key aws-iam-user:${user.userName}`,
          `aws-role-session aws-role:${roleName}`,
          `aws-secret aws-secret:${prefix}a`,
          `aws-secret aws-secret:${prefix}b`,
        ].sort(),
      );
      const serialized = JSON.stringify(result);
      for (const value of [valueA, valueB, ...user.keys.map((key) => key.secretAccessKey)]) {
        expect(serialized.includes(value), 'a secret value appears in the discovery output').toBe(false);
      }
    });
  });

  describe('declared resources outside the prefixes', () => {
    it('looks declared users, roles (break-glass ones too) and secrets up directly, so only what really is gone is missing', async () => {
      // prepare: made directly with the SDK, outside the discovery path and name prefixes
      const [path, elsewhere] = [iamPath(), iamPath()];
      const [prefix, otherPrefix] = [secretPrefix(), secretPrefix()];
      const user = await createUser(elsewhere, 1);
      const [roleName, breakglassName] = [uniqueName('role'), uniqueName('prod-admin')];
      for (const RoleName of [roleName, breakglassName]) {
        await aws.iam.send(
          new CreateRoleCommand({
            RoleName,
            Path: elsewhere,
            AssumeRolePolicyDocument: TRUST_ANYONE_IN_ACCOUNT,
          }),
        );
      }
      const value = secretValue();
      await createSecret(`${otherPrefix}by-name`, value);
      const byArn = await createSecret(`${otherPrefix}by-arn`, secretValue());
      const ids = {
        user: uniqueName('kw-user'),
        role: uniqueName('kw-role'),
        byName: uniqueName('kw-secret'),
        byArn: uniqueName('kw-secret-arn'),
        goneUser: uniqueName('kw-gone-user'),
        goneSecret: uniqueName('kw-gone-secret'),
      };
      const inventory = [
        declare({ id: ids.user, kind: 'aws-iam-access-key', scope: { userName: user.userName } }),
        declare({
          id: ids.role,
          kind: 'aws-role-session',
          scope: { roleArn: `arn:aws:iam::123456789012:role${elsewhere}${roleName}` },
        }),
        declare({ id: ids.byName, kind: 'aws-secret', scope: { secretId: `${otherPrefix}by-name` } }),
        declare({ id: ids.byArn, kind: 'aws-secret', scope: { secretId: byArn } }),
        declare({
          id: ids.goneUser,
          kind: 'aws-iam-access-key',
          scope: { userName: uniqueName('never-made') },
        }),
        declare({ id: ids.goneSecret, kind: 'aws-secret', scope: { secretId: `${otherPrefix}never-made` } }),
      ];
      const breakglass = breakglassRole('prod-admin', {
        type: 'aws-role',
        roleArn: `arn:aws:iam::123456789012:role/breakglass/${breakglassName}`,
      });
      const discovery = awsDiscovery(path, prefix);

      // act
      const result = await discovery.discover({
        leasePrefixes: [],
        identities: inventory,
        breakglassRoleArns: [breakglass.target.type === 'aws-role' ? breakglass.target.roleArn : ''],
      });
      const findings = assessFindings(inventory, result, {
        now: new Date(),
        staleAfter: '90d',
        breakglassRoles: [breakglass],
      });

      // assess
      expect(only(result, `aws-iam-user:${user.userName}`)).toMatchObject({
        handle: user.keys[0]?.accessKeyId,
        status: 'active',
      });
      expect(only(result, `aws-role:${roleName}`).kind).toBe('aws-role-session');
      expect(only(result, `aws-role:${breakglassName}`).kind).toBe('aws-role-session');
      expect(only(result, `aws-secret:${otherPrefix}by-name`).fingerprint).toBe(fingerprinter.of(value));
      expect(only(result, `aws-secret:${byArn}`)).toMatchObject({ handle: byArn, status: 'active' });
      expect(findings.map((finding) => `${finding.type} ${finding.subject}`).sort()).toEqual(
        [`missing ${ids.goneSecret}`, `missing ${ids.goneUser}`].sort(),
      );
      expect(JSON.stringify(result)).not.toContain(value);
    });
  });

  describe('failures', () => {
    /**
     * A fault proxy in front of moto (moto never throttles): answers IAM ListUsers
     * with IAM's Throttling error while `throttle` says so, forwards everything else.
     */
    let proxy: AnsweringProxy;
    let proxied: AwsEndpoint;
    let throttle: () => boolean = () => false;
    let listUsersCalls = 0;

    beforeAll(async () => {
      proxy = await startAnsweringProxy(testStack().moto.endpoint, (body) => {
        if (!body.includes('Action=ListUsers')) return undefined;
        listUsersCalls++;
        return throttle()
          ? awsQueryError(400, 'https://iam.amazonaws.com/doc/2010-05-08/', 'Throttling', 'Rate exceeded')
          : undefined;
      });
      proxied = { ...endpoint, endpoint: proxy.url };
    });

    afterAll(async () => {
      await proxy.close();
    });

    it('rides out IAM throttling with the adaptive client and still returns everything', async () => {
      // prepare
      const path = iamPath();
      const user = await createUser(path, 1);
      listUsersCalls = 0;
      throttle = () => listUsersCalls === 1; // the first ListUsers only

      // act
      const found = await new IamDiscovery({ iam: awsClients(proxied).iam, pathPrefix: path }).discover();

      // assess
      expect(listUsersCalls).toBe(2);
      expect(found.map((credential) => credential.handle)).toEqual(user.keys.map((key) => key.accessKeyId));
    });

    it('fails with a retryable KeywardenError that names what was being listed when throttling persists', async () => {
      // prepare
      const path = iamPath();
      throttle = () => true;
      // One attempt: the point here is the error, not the SDK's backoff.
      const iam = new IAMClient({ ...awsClientConfig(proxied), maxAttempts: 1 });

      // act
      const failure = await new IamDiscovery({ iam, pathPrefix: path })
        .discover()
        .catch((error: unknown) => error);

      // assess
      expect(failure).toBeInstanceOf(KeywardenError);
      const error = failure as KeywardenError;
      expect(error.retryable).toBe(true);
      expect(error.message).toContain(`listing IAM users under path ${path}`);
      expect(error.message).toContain('Throttling');
      expect((error.cause as { name?: string }).name).toBe('Throttling');
    });
  });
  describe('refused lookups of declared resources', () => {
    /**
     * A proxy in front of moto answering AccessDenied, as a deployed discovery role without the
     * account-wide metadata grants would get it, for the direct lookups of one declared user
     * (GetUser), one declared role (GetRole) and one declared secret (DescribeSecret).
     */
    let proxy: AnsweringProxy;
    const refused = { user: uniqueName('refused-user'), role: uniqueName('refused-role'), secret: '' };

    beforeAll(async () => {
      refused.secret = `${secretPrefix()}refused`;
      proxy = await startAnsweringProxy(testStack().moto.endpoint, (body) => {
        const denied = (action: string) => `User is not authorized to perform: ${action}`;
        if (body.includes('Action=GetUser') && body.includes(`UserName=${refused.user}`)) {
          return awsQueryError(403, IAM_XMLNS, 'AccessDenied', denied('iam:GetUser'));
        }
        if (body.includes('Action=GetRole') && body.includes(`RoleName=${refused.role}`)) {
          return awsQueryError(403, IAM_XMLNS, 'AccessDenied', denied('iam:GetRole'));
        }
        if (body.includes(`"SecretId":${JSON.stringify(refused.secret)}`)) {
          return awsJsonError(400, 'AccessDeniedException', denied('secretsmanager:DescribeSecret'));
        }
        return undefined;
      });
    });

    afterAll(async () => {
      await proxy.close();
    });

    it('completes the run, stores everything else it found, and says which permission each refused lookup needs instead of calling it missing', async () => {
      // prepare: all three refused resources exist; a readable user and secret sit beside them
      const [path, elsewhere] = [iamPath(), iamPath()];
      const prefix = secretPrefix();
      const listed = await createUser(path, 1);
      const declaredElsewhere = await createUser(elsewhere, 1);
      await aws.iam.send(new CreateUserCommand({ UserName: refused.user, Path: elsewhere }));
      await aws.iam.send(
        new CreateRoleCommand({
          RoleName: refused.role,
          Path: '/breakglass/',
          AssumeRolePolicyDocument: TRUST_ANYONE_IN_ACCOUNT,
        }),
      );
      await createSecret(refused.secret, secretValue());
      const value = secretValue();
      await createSecret(`${prefix}app`, value);
      const inventory = [
        declare({ id: 'listed', kind: 'aws-iam-access-key', scope: { userName: listed.userName } }),
        declare({
          id: 'elsewhere',
          kind: 'aws-iam-access-key',
          scope: { userName: declaredElsewhere.userName },
        }),
        declare({ id: 'refused-user', kind: 'aws-iam-access-key', scope: { userName: refused.user } }),
        declare({ id: 'refused-secret', kind: 'aws-secret', scope: { secretId: refused.secret } }),
        declare({ id: 'app-secret', kind: 'aws-secret', scope: { secretId: `${prefix}app` } }),
      ];
      const clock = new FixedClock(new Date());
      const identities = new MemoryIdentityStore();
      for (const item of inventory) {
        await identities.putIdentity(
          { identity: item, status: 'active', declarationHash: item.id, syncedAt: clock.now().toISOString() },
          undefined,
        );
      }
      const stored: { runId: string; findings: Finding[] }[] = [];
      const proxied = awsClients({ ...endpoint, endpoint: proxy.url });
      const discovery = awsDiscovery(path, prefix, proxied);

      // act
      const run = await runDiscovery(
        {
          sources: [discovery],
          store: {
            listIdentities: () => identities.listIdentities(),
            listVersions: async () => [],
            saveFindings: async (saved) => {
              stored.push(saved);
            },
          },
          audit: new MemoryAuditLog(clock),
          clock,
          newId: () => 'refused-run',
          breakglass: breakglassSectionOf(
            breakglassRole('prod-admin', {
              type: 'aws-role',
              roleArn: `arn:aws:iam::123456789012:role/breakglass/${refused.role}`,
            }),
          ),
        },
        { staleAfter: '90d', actor: 'test' },
      );

      // assess: the run completed and stored its findings; nothing is missing or undeclared
      expect(stored.map((saved) => saved.runId)).toEqual(['refused-run']);
      expect(stored[0]?.findings).toEqual(run.findings);
      const summary = run.findings.map((finding) => `${finding.type} ${finding.subject}`).sort();
      expect(summary).toEqual(
        ['unreadable breakglass:prod-admin', 'unreadable refused-secret', 'unreadable refused-user'].sort(),
      );
      const messageOf = (subject: string) =>
        run.findings.find((finding) => finding.subject === subject)?.message;
      expect(messageOf('refused-user')).toContain(
        `refused iam:GetUser on aws-iam-user:${refused.user} (AccessDenied)`,
      );
      expect(messageOf('refused-user')).toContain('grant the discovery role iam:GetUser');
      expect(messageOf('breakglass:prod-admin')).toContain(`refused iam:GetRole on aws-role:${refused.role}`);
      expect(messageOf('refused-secret')).toContain(
        `refused secretsmanager:DescribeSecret on aws-secret:${refused.secret} (AccessDeniedException)`,
      );
      for (const finding of run.findings) expect(finding.message).not.toContain('does not exist');
      // everything readable was still discovered: both users' keys and the prefixed secret
      const found = await discovery.discover({
        leasePrefixes: [],
        identities: inventory,
        breakglassRoleArns: [],
      });
      expect(only(found, `aws-iam-user:${listed.userName}`).handle).toBe(listed.keys[0]?.accessKeyId);
      expect(only(found, `aws-iam-user:${declaredElsewhere.userName}`).handle).toBe(
        declaredElsewhere.keys[0]?.accessKeyId,
      );
      expect(only(found, `aws-secret:${prefix}app`).fingerprint).toBe(fingerprinter.of(value));
      expect(only(found, `aws-iam-user:${refused.user}`)).toMatchObject({ status: 'inactive' });
      expect(run.discovered).toBe(6); // two keys, one secret, and the three refused lookups
      expect(JSON.stringify([found, run])).not.toContain(value);
    });
  });
});
