/**
 * A CI job's credentials against the real local stack: its OpenBao token (orphan, not renewable,
 * its ttl, num_uses and meta naming the run and job; revoked by accessor; its uses found in the
 * file audit device) and its AWS role session on moto (AssumeRole with the job's SourceIdentity
 * and a session policy; ended by a deny on that SourceIdentity put through the role-deny door,
 * and released). moto evaluates no IAM policy, so the deny is checked by reading back what the
 * role carries, as AWS would apply it. Roles, policies and jobs carry a `uniqueName`; no token or
 * key is printed.
 */
import {
  CreateRoleCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  ListRolePoliciesCommand,
} from '@aws-sdk/client-iam';
import { type AssumeRoleCommandInput, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ciDenyPolicyDocument,
  ciDenyPolicyName,
  IamCiSessionDeny,
} from '../../functions/adapters/aws/ci-role-deny.ts';
import {
  CI_NO_ESCAPE_ACTIONS,
  ciSessionName,
  ciSessionPolicy,
  STS_SESSION_POLICY_MAX_CHARS,
  StsCiSessionIssuer,
} from '../../functions/adapters/aws/ci-session-issuer.ts';
import { type AwsClients, awsClientConfig, awsClients } from '../../functions/adapters/aws/clients.ts';
import {
  IamRoleDeny,
  parseRoleDenyRequest,
  type RoleDenyClient,
  type RoleDenyRequest,
} from '../../functions/adapters/aws/role-deny-client.ts';
import { IamRoleSessionRevoker } from '../../functions/adapters/aws/role-session-revoker.ts';
import { StsGrantIssuer } from '../../functions/adapters/aws/sts-grant-issuer.ts';
import { VaultAuditUsage } from '../../functions/adapters/vault/audit-usage.ts';
import { CI_META, VaultCiTokenIssuer } from '../../functions/adapters/vault/ci-token-issuer.ts';
import { VaultError } from '../../functions/adapters/vault/client.ts';
import type { CiAwsIssue, CiJob, CiVaultIssue } from '../../functions/core/ci-policy.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import { rejection } from '../support/rejection.ts';
import { newVaultClient, testAws, testStack, uniqueName } from '../support/stack.ts';

const ACCOUNT = '123456789012';

/** A job as ci-policy.ts `jobOf` makes it for a GitHub token. */
function aJob(): CiJob {
  const run = String(Date.now());
  const check = uniqueName('7').replace('-', '');
  return {
    key: `github/123456789/${run}/1/${check}`,
    correlationId: `ci-github-123456789.${run}.1.${check}`,
    actor: 'octocat',
    ids: { repository_id: '123456789', run_id: run, run_attempt: '1', check_run_id: check },
  };
}

const sleep = (ms: number) => new Promise((wake) => setTimeout(wake, ms));

describe('CI issuers: a job’s Vault token', () => {
  const root = newVaultClient();
  const issuer = new VaultCiTokenIssuer({ client: root });
  const policy = uniqueName('kw-ci');
  const secretPath = `secret/data/${policy}/npm`;
  const grant = uniqueName('publish');
  const issued: string[] = [];

  const issue = async (vault: Partial<CiVaultIssue> = {}, job = aJob()) => {
    const answer = await issuer.issue({
      exchangeId: uniqueName('x'),
      grant,
      vault: { policies: [policy], ttl: '2m', numUses: 0, ...vault },
      job,
      now: new Date(),
    });
    issued.push(answer.accessor);
    return answer;
  };

  beforeAll(async () => {
    await root.write(`sys/policies/acl/${policy}`, {
      policy: `path "secret/data/${policy}/*" { capabilities = ["read"] }`,
    });
    await root.write(secretPath, { data: { token: 'not-a-real-one' } });
  });

  afterAll(async () => {
    for (const accessor of issued) await issuer.revoke(accessor);
    await root.delete(`secret/metadata/${policy}/npm`);
    await root.delete(`sys/policies/acl/${policy}`);
  });

  it('issues an orphan, non-renewable token with the grant’s policies, ttl, num_uses and meta naming the run and job', async () => {
    // prepare
    const job = aJob();
    const exchangeId = uniqueName('x');
    const before = Date.now();
    // act
    const answer = await issuer.issue({
      exchangeId,
      grant,
      vault: { policies: [policy], ttl: '2m', numUses: 7 },
      job,
      now: new Date(before),
    });
    issued.push(answer.accessor);
    // assess: what keywarden holds shows no token
    expect(JSON.stringify(answer)).not.toContain(answer.token.reveal());
    expect(Date.parse(answer.expiresAt)).toBe(before + 120_000);
    // assess: what OpenBao holds (read by accessor, as root: no use of the job's token)
    const token = await root.lookupAccessor(answer.accessor);
    expect(token).toMatchObject({
      orphan: true,
      renewable: false,
      explicit_max_ttl: 120,
      creation_ttl: 120,
      num_uses: 7,
      path: 'auth/token/create-orphan',
      display_name: `token-ci-${grant}`,
      type: 'service',
      meta: {
        [CI_META.exchange]: exchangeId,
        [CI_META.job]: job.correlationId,
        [CI_META.grant]: grant,
        ci_repository_id: '123456789',
        ci_run_id: job.ids.run_id,
        ci_run_attempt: '1',
        ci_check_run_id: job.ids.check_run_id,
      },
    });
    // exactly the declared policies: no `default` unless the grant names it
    expect(token?.policies).toEqual([policy]);
    // assess: the job can read what its policy allows, and cannot stretch the token
    const asJob = newVaultClient(answer.token.reveal());
    expect((await asJob.read(secretPath))?.data?.data).toEqual({ token: 'not-a-real-one' });
    const renewal = await rejection(asJob.write('auth/token/renew-self', {}));
    expect(renewal).toBeInstanceOf(VaultError);
    expect(renewal.message).not.toContain(answer.token.reveal());
  });

  it('stops the token after num_uses requests (OpenBao revokes it), after which revoking is already-revoked', async () => {
    // prepare
    const answer = await issue({ numUses: 2 });
    const asJob = newVaultClient(answer.token.reveal());
    // act
    await asJob.read(secretPath);
    await asJob.read(secretPath);
    const third = await rejection(asJob.read(secretPath));
    // assess
    expect(third).toMatchObject({ status: 403 });
    expect(await root.lookupAccessor(answer.accessor)).toBeUndefined();
    await expect(issuer.revoke(answer.accessor)).resolves.toBe('already-revoked');
  });

  it('revokes by accessor: the token stops at once (a lookup fails); twice is already-revoked', async () => {
    // prepare
    const answer = await issue();
    const asJob = newVaultClient(answer.token.reveal());
    await asJob.read(secretPath);
    // act
    const first = await issuer.revoke(answer.accessor);
    const second = await issuer.revoke(answer.accessor);
    // assess
    expect([first, second]).toEqual(['revoked', 'already-revoked']);
    expect(await rejection(asJob.read(secretPath))).toMatchObject({ status: 403 });
    expect(await root.lookupAccessor(answer.accessor)).toBeUndefined();
  });

  it('finds the job token’s requests in the file audit device by its accessor, and no other token’s', async () => {
    // prepare
    const used = await issue();
    const unused = await issue();
    await newVaultClient(used.token.reveal()).read(secretPath);
    const usage = new VaultAuditUsage({ client: root, logFile: testStack().vault.auditLog });
    // act (the device writes each line as the request is answered; allow the file a moment)
    let events = await usage.usage([used.accessor]);
    for (let tries = 0; tries < 20 && events.length === 0; tries++) {
      await sleep(100);
      events = await usage.usage([used.accessor]);
    }
    // assess
    expect(events).toContainEqual(
      expect.objectContaining({ action: `read ${secretPath}`, source: 'openbao-audit' }),
    );
    expect(await usage.usage([unused.accessor])).toEqual([]);
  });

  it('refuses a ttl over the 15-minute cap before asking OpenBao, naming it', async () => {
    const refused = await rejection(issue({ ttl: '16m' }));
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused.message).toMatch(/expected a Vault token ttl of 1s to 15m, got 16m/);
  });
});

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

describe('CI issuers: a job’s AWS role session', () => {
  let aws: AwsClients;
  let issuer: StsCiSessionIssuer;
  let sts: STSClient;
  /** What keywarden asked STS, and the SourceIdentity STS answered (never the credentials). */
  const asked: { input: AssumeRoleCommandInput; sourceIdentity: string | undefined }[] = [];
  /** Role-deny requests as the door received them. */
  const doorRequests: RoleDenyRequest[] = [];
  const roleName = uniqueName('kw-ci-deploy');
  const roleArn = `arn:aws:iam::${ACCOUNT}:role/ci/${roleName}`;
  const otherName = uniqueName('kw-not-ci');
  const otherArn = `arn:aws:iam::${ACCOUNT}:role/other/${otherName}`;
  const grant = uniqueName('deploy');

  const issue = (aws: Partial<CiAwsIssue> = {}, job = aJob()) =>
    issuer.issue({
      exchangeId: uniqueName('x'),
      grant,
      aws: { roleArn, duration: '15m', ...aws },
      job,
      now: new Date(),
    });
  const inlinePolicies = async () =>
    (await aws.iam.send(new ListRolePoliciesCommand({ RoleName: roleName }))).PolicyNames ?? [];

  beforeAll(async () => {
    aws = awsClients(testAws());
    sts = new STSClient(awsClientConfig(testAws()));
    sts.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const output = result.output as { SourceIdentity?: string };
        asked.push({ input: args.input as AssumeRoleCommandInput, sourceIdentity: output.SourceIdentity });
        return result;
      },
      { step: 'initialize', name: 'recordAssumeRole' },
    );
    const iamDeny = new IamRoleDeny({
      grants: new StsGrantIssuer({ sts: aws.sts, iam: aws.iam }),
      sessions: new IamRoleSessionRevoker({ iam: aws.iam }),
      ci: new IamCiSessionDeny({ iam: aws.iam }),
    });
    // The door as the role-deny function keeps it: shape and path checked before IAM is touched.
    const door: RoleDenyClient = {
      run: async (request) => {
        doorRequests.push(request);
        return iamDeny.run(parseRoleDenyRequest(request, ['/breakglass/', '/ci/']));
      },
    };
    issuer = new StsCiSessionIssuer({ sts, iam: aws.iam, deny: door });
    for (const [name, path] of [
      [roleName, '/ci/'],
      [otherName, '/other/'],
    ] as const) {
      await aws.iam.send(
        new CreateRoleCommand({ RoleName: name, Path: path, AssumeRolePolicyDocument: trustPolicy }),
      );
    }
  });

  afterAll(async () => {
    for (const name of [roleName, otherName]) {
      const { PolicyNames = [] } = await aws.iam.send(new ListRolePoliciesCommand({ RoleName: name }));
      for (const PolicyName of PolicyNames)
        await aws.iam.send(new DeleteRolePolicyCommand({ RoleName: name, PolicyName }));
      await aws.iam.send(new DeleteRoleCommand({ RoleName: name }));
    }
  });

  it('assumes the role for 900 s with the job’s SourceIdentity, a session name naming the exchange and job, and the no-escape deny', async () => {
    // prepare
    const job = aJob();
    const exchangeId = uniqueName('x');
    const before = Date.now();
    // act
    const session = await issuer.issue({
      exchangeId,
      grant,
      aws: { roleArn, duration: '15m' },
      job,
      now: new Date(before),
    });
    // assess: what keywarden asked, and what STS answered
    const call = asked.at(-1);
    expect(call?.input).toMatchObject({
      RoleArn: roleArn,
      RoleSessionName: session.sessionName,
      SourceIdentity: job.correlationId,
      DurationSeconds: 900,
    });
    // AWS echoes the SourceIdentity in AssumeRole's answer; moto leaves it out (what it was asked is what it has).
    expect([job.correlationId, undefined]).toContain(call?.sourceIdentity);
    expect(session.sourceIdentity).toBe(job.correlationId);
    expect(session.sessionName).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(session.sessionName.startsWith(`${exchangeId}@`)).toBe(true);
    const policy = JSON.parse(call?.input.Policy ?? '{}');
    expect(policy.Statement).toEqual([
      { Sid: 'KeywardenRoleAsIs', Effect: 'Allow', Action: '*', Resource: '*' },
      { Sid: 'KeywardenCiNoEscape', Effect: 'Deny', Action: [...CI_NO_ESCAPE_ACTIONS], Resource: '*' },
    ]);
    expect(Date.parse(session.expiresAt) - before).toBeGreaterThan(890_000);
    expect(Date.parse(session.expiresAt) - before).toBeLessThan(910_000);
    // assess: the credentials work, as the named session, and print as nothing
    expect(JSON.stringify(session)).not.toContain(session.credentials.revealJson().secretAccessKey);
    const keys = session.credentials.revealJson();
    const asJob = new STSClient({
      ...awsClientConfig(testAws()),
      credentials: {
        accessKeyId: keys.accessKeyId ?? '',
        secretAccessKey: keys.secretAccessKey ?? '',
        sessionToken: keys.sessionToken ?? '',
      },
    });
    const caller = await asJob.send(new GetCallerIdentityCommand({}));
    expect(caller.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${session.sessionName}`);
  });

  it('narrows the session with the grant’s own policy, keeping the no-escape deny', async () => {
    // prepare
    const sessionPolicy = {
      Version: '2012-10-17',
      Statement: {
        Sid: 'Artifacts',
        Effect: 'Allow',
        Action: 's3:PutObject',
        Resource: 'arn:aws:s3:::artifacts/*',
      },
    };
    // act
    await issue({ sessionPolicy });
    // assess
    const policy = JSON.parse(asked.at(-1)?.input.Policy ?? '{}');
    expect(policy).toEqual({
      Version: '2012-10-17',
      Statement: [
        sessionPolicy.Statement,
        { Sid: 'KeywardenCiNoEscape', Effect: 'Deny', Action: [...CI_NO_ESCAPE_ACTIONS], Resource: '*' },
      ],
    });
  });

  it.each([
    [
      'a role outside /ci/',
      () => issue({ roleArn: otherArn }),
      /expected a role under \/ci\/, got arn:aws:iam::123456789012:role\/other\//,
    ],
    [
      'a role under /ci/ that IAM does not know (moto would assume it)',
      () => issue({ roleArn: `arn:aws:iam::${ACCOUNT}:role/ci/${uniqueName('kw-missing')}` }),
      /to exist, IAM does not know it/,
    ],
    [
      'a session policy longer than STS takes',
      () =>
        issue({
          sessionPolicy: {
            Version: '2012-10-17',
            Statement: Array.from({ length: 40 }, (_, i) => ({
              Effect: 'Allow',
              Action: 's3:GetObject',
              Resource: `arn:aws:s3:::bucket-${i}/*`,
            })),
          },
        }),
      /at most 2048 characters packed.*shorten aws.sessionPolicy to at most \d+ characters/,
    ],
    [
      'a session policy without statements',
      () => issue({ sessionPolicy: { Version: '2012-10-17' } }),
      /expected aws.sessionPolicy to be an IAM policy document with a Statement/,
    ],
  ])(
    'refuses %s with a ValidationError saying what to change, assuming nothing',
    async (_what, act, message) => {
      const calls = asked.length;
      const refused = await rejection(act());
      expect(refused).toBeInstanceOf(ValidationError);
      expect(refused.message).toMatch(message);
      expect(asked.length).toBe(calls);
    },
  );

  it('ends the job’s sessions with exactly the deny naming its SourceIdentity, releases it; each twice is the same as once', async () => {
    // prepare
    const job = aJob();
    const other = aJob();
    const session = await issue({}, job);
    await issue({}, other);
    const request = { roleArn, sourceIdentity: session.sourceIdentity };
    // act: end
    await issuer.end(request);
    await issuer.end(request);
    // assess: the role denies this job, and only this job
    const names = await inlinePolicies();
    expect(names).toContain(ciDenyPolicyName(job.correlationId));
    expect(names).not.toContain(ciDenyPolicyName(other.correlationId));
    const stored = await aws.iam.send(
      new GetRolePolicyCommand({ RoleName: roleName, PolicyName: ciDenyPolicyName(job.correlationId) }),
    );
    const document = JSON.parse(decodeURIComponent(stored.PolicyDocument ?? ''));
    expect(document).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'KeywardenEndCiJob',
          Effect: 'Deny',
          Action: '*',
          Resource: '*',
          Condition: { StringEquals: { 'aws:SourceIdentity': job.correlationId } },
        },
      ],
    });
    expect(document).toEqual(JSON.parse(ciDenyPolicyDocument(job.correlationId)));
    expect(doorRequests.at(-1)).toEqual({
      action: 'deny',
      roleArn,
      deny: { sourceIdentity: job.correlationId, purpose: 'ci' },
    });
    // act: release
    await issuer.release(request);
    await issuer.release(request);
    // assess
    expect(await inlinePolicies()).not.toContain(ciDenyPolicyName(job.correlationId));
  });

  it('counts ending on a CI role that no longer exists as done, and the door refuses a role outside its paths', async () => {
    const gone = `arn:aws:iam::${ACCOUNT}:role/ci/${uniqueName('kw-gone')}`;
    const job = aJob();
    await issuer.end({ roleArn: gone, sourceIdentity: job.correlationId });
    await issuer.release({ roleArn: gone, sourceIdentity: job.correlationId });
    const refused = await rejection(issuer.end({ roleArn: otherArn, sourceIdentity: job.correlationId }));
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused.message).toMatch(/expected a role under \/breakglass\/ or \/ci\//);
    const { PolicyNames = [] } = await aws.iam.send(new ListRolePoliciesCommand({ RoleName: otherName }));
    expect(PolicyNames).toEqual([]);
  });
});

describe('CI issuers: session names and policies', () => {
  it('names the session by the exchange and as much of the job as fits, within STS’s 64 characters', () => {
    expect(ciSessionName('x-01', 'ci-github-1.2.1.3')).toBe('x-01@ci-github-1.2.1.3');
    const long = ciSessionName('e'.repeat(40), `ci-gitlab-${'9'.repeat(30)}.${'8'.repeat(20)}`);
    expect(long).toHaveLength(64);
    expect(long).toMatch(/^e{32}@.*8{20}$/);
    expect(ciSessionName('a/b c', 'ci-x')).toBe('a_b_c@ci-x');
  });

  it('refuses a statement id of keywarden’s own, and measures the packed document', () => {
    expect(() =>
      ciSessionPolicy('g', { Statement: [{ Sid: 'KeywardenCiNoEscape', Effect: 'Allow', Action: '*' }] }),
    ).toThrow(/not to start with "Keywarden"/);
    const packed = ciSessionPolicy('g', undefined);
    expect(packed).not.toMatch(/\s/);
    expect(packed.length).toBeLessThan(STS_SESSION_POLICY_MAX_CHARS);
  });
});
