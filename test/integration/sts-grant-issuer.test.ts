/**
 * Break-glass AWS sessions against the real moto server of the local stack: AssumeRole
 * with the grant as SourceIdentity and an end-of-grant session policy, and revocation
 * by a deny policy on that SourceIdentity. moto does not evaluate IAM policies, so the
 * deny is checked by reading back what the role carries, as AWS would apply it.
 * Every role is named with `uniqueName`; session credentials are never printed.
 */
import {
  CreateRoleCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  ListRolePoliciesCommand,
} from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AwsClients, awsClientConfig, awsClients } from '../../functions/adapters/aws/clients.ts';
import {
  grantDenyPolicyDocument,
  grantDenyPolicyName,
  grantSessionPolicy,
  StsGrantIssuer,
  sessionSeconds,
} from '../../functions/adapters/aws/sts-grant-issuer.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import type { BreakglassTarget } from '../../functions/core/grant.ts';
import type { IssuedGrantCredential } from '../../functions/core/ports.ts';
import { rejection } from '../support/rejection.ts';
import { testAws, uniqueName } from '../support/stack.ts';

const ACCOUNT = '123456789012';

/** A role keywarden's account may assume and tag with a SourceIdentity. */
const trustPolicy = JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
      Action: ['sts:AssumeRole', 'sts:SetSourceIdentity'],
    },
  ],
});

type AwsSession = Extract<IssuedGrantCredential, { type: 'aws-session' }>;

function asSession(credential: IssuedGrantCredential): AwsSession {
  if (credential.type !== 'aws-session') throw new Error(`expected an aws-session, got ${credential.type}`);
  return credential;
}

describe('grant issuer: aws-role', () => {
  let aws: AwsClients;
  let issuer: StsGrantIssuer;
  const roleName = uniqueName('kw-breakglass');
  const roleArn = `arn:aws:iam::${ACCOUNT}:role/breakglass/${roleName}`;
  const target: BreakglassTarget = { type: 'aws-role', roleArn };

  beforeAll(async () => {
    aws = awsClients(testAws());
    issuer = new StsGrantIssuer({ sts: aws.sts, iam: aws.iam });
    await aws.iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        Path: '/breakglass/',
        AssumeRolePolicyDocument: trustPolicy,
        MaxSessionDuration: 43_200,
      }),
    );
  });

  afterAll(async () => {
    const { PolicyNames = [] } = await aws.iam.send(new ListRolePoliciesCommand({ RoleName: roleName }));
    for (const PolicyName of PolicyNames)
      await aws.iam.send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName }));
    await aws.iam.send(new DeleteRoleCommand({ RoleName: roleName }));
  });

  const inlinePolicies = async () =>
    (await aws.iam.send(new ListRolePoliciesCommand({ RoleName: roleName }))).PolicyNames ?? [];

  it('issues one session per grant, named for the grant, whose credentials work; revoking grant A denies A only', async () => {
    // prepare
    const [grantA, grantB] = [uniqueName('grant-a'), uniqueName('grant-b')];
    const now = new Date();
    const expiresAt = new Date(now.getTime() + 3_600_000);
    // act
    const a = asSession(await issuer.issue({ grantId: grantA, target, now, expiresAt }));
    const b = asSession(await issuer.issue({ grantId: grantB, target, now, expiresAt }));
    // assess: the sessions
    expect(a).toMatchObject({ type: 'aws-session', handle: grantA, expiresAt: expiresAt.toISOString() });
    expect(b.handle).toBe(grantB);
    expect(JSON.stringify(a)).not.toContain(a.credentials.revealJson().secretAccessKey);
    const keys = a.credentials.revealJson();
    expect(Object.keys(keys).sort()).toEqual(['accessKeyId', 'secretAccessKey', 'sessionToken']);
    const asGrantA = new STSClient({
      ...awsClientConfig(testAws()),
      credentials: {
        accessKeyId: keys.accessKeyId ?? '',
        secretAccessKey: keys.secretAccessKey ?? '',
        sessionToken: keys.sessionToken ?? '',
      },
    });
    const caller = await asGrantA.send(new GetCallerIdentityCommand({}));
    expect(caller.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${grantA}`);
    // act: revoke A (twice: the second is the same as the first)
    await issuer.revoke({ grantId: grantA, target, handles: [a.handle] });
    await issuer.revoke({ grantId: grantA, target, handles: [a.handle] });
    // assess: the role denies A's SourceIdentity, and carries nothing about B
    const names = await inlinePolicies();
    expect(names).toContain(grantDenyPolicyName(grantA));
    expect(names).not.toContain(grantDenyPolicyName(grantB));
    const stored = await aws.iam.send(
      new GetRolePolicyCommand({ RoleName: roleName, PolicyName: grantDenyPolicyName(grantA) }),
    );
    const document = JSON.parse(decodeURIComponent(stored.PolicyDocument ?? ''));
    expect(document).toEqual(JSON.parse(grantDenyPolicyDocument(grantA)));
    expect(document.Statement).toEqual([
      expect.objectContaining({
        Effect: 'Deny',
        Action: '*',
        Resource: '*',
        Condition: { StringEquals: { 'aws:SourceIdentity': grantA } },
      }),
    ]);
  });

  it('asks STS for 900 s to an hour (role chaining) and ends the session at the grant end with a session policy', () => {
    const now = new Date('2026-03-01T10:00:00.000Z');
    expect(sessionSeconds(new Date('2026-03-01T10:05:00.000Z'), now)).toBe(900);
    expect(sessionSeconds(new Date('2026-03-01T10:30:00.400Z'), now)).toBe(1_801);
    expect(sessionSeconds(new Date('2026-03-01T12:00:00.000Z'), now)).toBe(3_600);
    const policy = JSON.parse(grantSessionPolicy(new Date('2026-03-01T10:05:00.000Z')));
    expect(policy.Statement).toContainEqual({
      Sid: 'KeywardenGrantEnd',
      Effect: 'Deny',
      Action: '*',
      Resource: '*',
      Condition: { DateGreaterThan: { 'aws:CurrentTime': '2026-03-01T10:05:00.000Z' } },
    });
  });

  it('issues a 5-minute grant (below the STS minimum) with the grant end, not the session end, as expiresAt', async () => {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + 300_000);
    const session = asSession(
      await issuer.issue({ grantId: uniqueName('grant-short'), target, now, expiresAt }),
    );
    expect(session.expiresAt).toBe(expiresAt.toISOString());
  });

  it('refuses a role that does not exist with a message naming its ARN and no secret', async () => {
    const missing = `arn:aws:iam::${ACCOUNT}:role/${uniqueName('kw-missing')}`;
    const now = new Date();
    const refused = await rejection(
      issuer.issue({
        grantId: uniqueName('grant'),
        target: { type: 'aws-role', roleArn: missing },
        now,
        expiresAt: new Date(now.getTime() + 600_000),
      }),
    );
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused.message).toContain(missing);
    expect(refused.message).toMatch(/does not know it/);
    expect(refused.message).not.toMatch(/secretAccessKey|sessionToken|ASIA/i);
  });

  it('hands a grant longer than an hour a one-hour session, whose end the grant records', async () => {
    const now = new Date();
    const session = asSession(
      await issuer.issue({
        grantId: uniqueName('grant-long'),
        target,
        now,
        expiresAt: new Date(now.getTime() + 2 * 3_600_000),
      }),
    );
    expect(Date.parse(session.expiresAt)).toBe(now.getTime() + 3_600_000);
    const policy = JSON.parse(grantSessionPolicy(new Date(now.getTime() + 2 * 3_600_000))) as {
      Statement: { Sid: string; Action: string | string[] }[];
    };
    expect(policy.Statement.find((st) => st.Sid === 'KeywardenNoEscape')?.Action).toContain('sts:AssumeRole');
  });

  it('counts revoking a grant on a role that no longer exists as done, and refuses other target types', async () => {
    const gone: BreakglassTarget = {
      type: 'aws-role',
      roleArn: `arn:aws:iam::${ACCOUNT}:role/${uniqueName('kw-gone')}`,
    };
    await issuer.revoke({ grantId: uniqueName('grant'), target: gone, handles: [] });
    const vault: BreakglassTarget = { type: 'vault-policies', policies: ['x'] };
    const now = new Date();
    const refused = await rejection(
      issuer.issue({ grantId: 'g', target: vault, now, expiresAt: new Date(now.getTime() + 60_000) }),
    );
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused).toBeInstanceOf(KeywardenError);
    await expect(issuer.revoke({ grantId: 'g', target: vault, handles: [] })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });
});
