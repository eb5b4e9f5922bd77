import { describe, expect, it } from 'vitest';
import {
  IamRoleDeny,
  parseRoleDenyRequest,
  type RoleDenyAnswer,
  type RoleDenyClient,
  RoleDenyGrantIssuer,
  type RoleDenyRequest,
  RoleDenySessionRevoker,
} from '../../functions/adapters/aws/role-deny-client.ts';
import { allowedPathsOf, makeHandler } from '../../functions/handlers/role-deny.ts';

const PATHS = ['/breakglass/', '/ci/'];
const BREAKGLASS_ROLE = 'arn:aws:iam::123456789012:role/breakglass/oncall-admin';
const CI_ROLE = 'arn:aws:iam::123456789012:role/ci/deploy/app';

/** Records what the handler would have IAM do. */
function recordingDeny(answer: RoleDenyAnswer = { result: 'revoked' }) {
  const seen: RoleDenyRequest[] = [];
  const client: RoleDenyClient = {
    run: async (request) => {
      seen.push(request);
      return answer;
    },
  };
  return { seen, client };
}

describe('role-deny: request validation', () => {
  it('accepts a grant deny on a break-glass role and an incident deny on a role under the revocation path', () => {
    expect(
      parseRoleDenyRequest(
        { action: 'deny', roleArn: BREAKGLASS_ROLE, deny: { sourceIdentity: 'bg-20261201t1200-0a1b2c3d' } },
        PATHS,
      ),
    ).toEqual({
      action: 'deny',
      roleArn: BREAKGLASS_ROLE,
      deny: { sourceIdentity: 'bg-20261201t1200-0a1b2c3d' },
    });
    expect(
      parseRoleDenyRequest(
        {
          action: 'deny',
          roleArn: CI_ROLE,
          deny: { sessionsIssuedBefore: '2026-12-01T12:00:00.000Z', incident: 'INC-42' },
        },
        PATHS,
      ).roleArn,
    ).toBe(CI_ROLE);
    expect(
      parseRoleDenyRequest(
        { action: 'release', roleArn: BREAKGLASS_ROLE, release: { sourceIdentity: 'bg-1' } },
        PATHS,
      ).action,
    ).toBe('release');
  });

  it.each([
    ['a role at the root path', 'arn:aws:iam::123456789012:role/Admin'],
    ['a role under another path', 'arn:aws:iam::123456789012:role/admin/root-ish'],
    ['a path that only starts like an allowed one', 'arn:aws:iam::123456789012:role/breakglassy/x'],
  ])('refuses %s, naming the allowed paths', (_what, roleArn) => {
    expect(() =>
      parseRoleDenyRequest({ action: 'deny', roleArn, deny: { sourceIdentity: 'bg-1' } }, PATHS),
    ).toThrow(/expected a role under \/breakglass\/ or \/ci\//);
  });

  it.each([
    [
      'a wildcard ARN',
      {
        action: 'deny',
        roleArn: 'arn:aws:iam::123456789012:role/breakglass/*',
        deny: { sourceIdentity: 'bg-1' },
      },
    ],
    [
      'a user ARN',
      {
        action: 'deny',
        roleArn: 'arn:aws:iam::123456789012:user/breakglass/x',
        deny: { sourceIdentity: 'bg-1' },
      },
    ],
    [
      'a policy document of the caller’s',
      { action: 'deny', roleArn: BREAKGLASS_ROLE, deny: { sourceIdentity: 'bg-1' }, policyDocument: '{}' },
    ],
    [
      'an allow in place of a deny',
      { action: 'allow', roleArn: BREAKGLASS_ROLE, deny: { sourceIdentity: 'bg-1' } },
    ],
    [
      'both conditions at once',
      {
        action: 'deny',
        roleArn: BREAKGLASS_ROLE,
        deny: { sourceIdentity: 'bg-1', sessionsIssuedBefore: '2026-12-01T12:00:00Z', incident: 'INC-1' },
      },
    ],
    [
      'a cut-off that is not a date-time',
      { action: 'deny', roleArn: CI_ROLE, deny: { sessionsIssuedBefore: 'yesterday', incident: 'INC-1' } },
    ],
    [
      'an incident id with a policy-name trick',
      {
        action: 'deny',
        roleArn: CI_ROLE,
        deny: { sessionsIssuedBefore: '2026-12-01T12:00:00Z', incident: '../x' },
      },
    ],
    [
      'a source identity with a wildcard',
      { action: 'deny', roleArn: BREAKGLASS_ROLE, deny: { sourceIdentity: 'bg-*' } },
    ],
    ['no request at all', undefined],
  ])('refuses %s with a message saying what it expects', (_what, event) => {
    expect(() => parseRoleDenyRequest(event, PATHS)).toThrow(/expected a role-deny request/);
  });
});

describe('role-deny: handler', () => {
  it('runs a valid request and answers what happened', async () => {
    const { seen, client } = recordingDeny({ result: 'already-revoked', note: 'policy already there' });
    const handler = makeHandler({ deny: client, allowedPaths: PATHS });
    const request = {
      action: 'deny',
      roleArn: CI_ROLE,
      deny: { sessionsIssuedBefore: '2026-12-01T12:00:00.000Z', incident: 'INC-42' },
    };
    await expect(handler(request)).resolves.toEqual({
      result: 'already-revoked',
      note: 'policy already there',
    });
    expect(seen).toEqual([request]);
  });

  it('throws a ValidationError and touches nothing for a role outside its paths', async () => {
    const { seen, client } = recordingDeny();
    const handler = makeHandler({ deny: client, allowedPaths: PATHS });
    await expect(
      handler({
        action: 'deny',
        roleArn: 'arn:aws:iam::123456789012:role/OrganizationAccountAccessRole',
        deny: { sourceIdentity: 'bg-1' },
      }),
    ).rejects.toMatchObject({ name: 'ValidationError' });
    expect(seen).toEqual([]);
  });

  it('reads its paths from the environment, refusing the root path and an empty list', () => {
    expect(allowedPathsOf('/breakglass/, /ci/')).toEqual(PATHS);
    expect(() => allowedPathsOf('/')).toThrow(/KEYWARDEN_ROLE_DENY_PATHS must list IAM paths/);
    expect(() => allowedPathsOf('')).toThrow(/KEYWARDEN_ROLE_DENY_PATHS/);
    expect(() => allowedPathsOf('/ci/*/')).toThrow(/KEYWARDEN_ROLE_DENY_PATHS/);
  });
});

describe('role-deny: callers behind the existing ports', () => {
  it('revoke and release a grant through the client; issuing stays with the STS issuer', async () => {
    const { seen, client } = recordingDeny();
    const issued: string[] = [];
    const issuer = new RoleDenyGrantIssuer({
      issuer: {
        issue: async (request) => {
          issued.push(request.grantId);
          return {
            type: 'aws-session',
            handle: request.grantId,
            expiresAt: '',
            credentials: undefined as never,
          };
        },
        revoke: async () => {
          throw new Error('the STS issuer must not revoke: the caller holds no iam:PutRolePolicy');
        },
      },
      deny: client,
    });
    const target = { type: 'aws-role' as const, roleArn: BREAKGLASS_ROLE };
    await issuer.revoke({ grantId: 'bg-1', target, handles: [] });
    await issuer.release({ grantId: 'bg-1', target });
    expect(seen).toEqual([
      { action: 'deny', roleArn: BREAKGLASS_ROLE, deny: { sourceIdentity: 'bg-1' } },
      { action: 'release', roleArn: BREAKGLASS_ROLE, release: { sourceIdentity: 'bg-1' } },
    ]);
    expect(issued).toEqual([]);
  });

  it('deny a campaign’s sessions through the client, keeping the answer', async () => {
    const { seen, client } = recordingDeny({ result: 'revoked', note: 'effectiveAfter …' });
    const sessions = new RoleDenySessionRevoker({ deny: client });
    await expect(
      sessions.denySessions(CI_ROLE, { incident: 'INC-42', issuedBefore: '2026-12-01T12:00:00Z' }),
    ).resolves.toEqual({ result: 'revoked', note: 'effectiveAfter …' });
    expect(seen[0]).toEqual({
      action: 'deny',
      roleArn: CI_ROLE,
      deny: { sessionsIssuedBefore: '2026-12-01T12:00:00.000Z', incident: 'INC-42' },
    });
  });
});

describe('role-deny: a CI job’s sessions', () => {
  const JOB = 'ci-github-123456789.42.1.7';

  it('accepts a CI deny and release on a role under /ci/, and keeps break-glass’s forms as they were', () => {
    const deny = { action: 'deny', roleArn: CI_ROLE, deny: { sourceIdentity: JOB, purpose: 'ci' } };
    const release = { action: 'release', roleArn: CI_ROLE, release: { sourceIdentity: JOB, purpose: 'ci' } };
    expect(parseRoleDenyRequest(deny, PATHS)).toEqual(deny);
    expect(parseRoleDenyRequest(release, PATHS)).toEqual(release);
    const grant = { action: 'deny', roleArn: CI_ROLE, deny: { sourceIdentity: JOB } };
    expect(parseRoleDenyRequest(grant, PATHS)).toEqual(grant);
  });

  it.each([
    [
      'a CI form whose SourceIdentity is not a job’s',
      { sourceIdentity: 'bg-20261201t1200-0a1b2c3d', purpose: 'ci' },
    ],
    ['another purpose', { sourceIdentity: JOB, purpose: 'breakglass' }],
    [
      'a CI form with a cut-off',
      { sourceIdentity: JOB, purpose: 'ci', sessionsIssuedBefore: '2026-12-01T12:00:00Z' },
    ],
  ])('refuses %s, naming the CI form it expects', (_what, deny) => {
    expect(() => parseRoleDenyRequest({ action: 'deny', roleArn: CI_ROLE, deny }, PATHS)).toThrow(
      /deny: \{sourceIdentity\} \| \{sourceIdentity, purpose: "ci"\}/,
    );
  });

  it('sends a CI request to the CI deny, a grant’s to the grant issuer', async () => {
    // prepare
    const calls: string[] = [];
    const deny = new IamRoleDeny({
      grants: {
        revoke: async ({ grantId }) => void calls.push(`grant deny ${grantId}`),
        release: async ({ grantId }) => void calls.push(`grant release ${grantId}`),
      },
      sessions: { denySessions: async () => ({ result: 'revoked' }) },
      ci: {
        deny: async (_role, sourceIdentity) => {
          calls.push(`ci deny ${sourceIdentity}`);
          return { result: 'already-revoked', note: 'role gone' };
        },
        release: async (_role, sourceIdentity) => void calls.push(`ci release ${sourceIdentity}`),
      },
    });
    // act
    const denied = await deny.run({
      action: 'deny',
      roleArn: CI_ROLE,
      deny: { sourceIdentity: JOB, purpose: 'ci' },
    });
    const released = await deny.run({
      action: 'release',
      roleArn: CI_ROLE,
      release: { sourceIdentity: JOB, purpose: 'ci' },
    });
    await deny.run({ action: 'deny', roleArn: BREAKGLASS_ROLE, deny: { sourceIdentity: 'bg-1' } });
    // assess
    expect(denied).toEqual({ result: 'already-revoked', note: 'role gone' });
    expect(released).toEqual({ result: 'released' });
    expect(calls).toEqual([`ci deny ${JOB}`, `ci release ${JOB}`, 'grant deny bg-1']);
  });

  it('refuses a CI request when built without the CI deny, touching nothing', async () => {
    const calls: string[] = [];
    const deny = new IamRoleDeny({
      grants: {
        revoke: async () => void calls.push('grant deny'),
        release: async () => void calls.push('grant release'),
      },
      sessions: { denySessions: async () => ({ result: 'revoked' }) },
    });
    await expect(
      deny.run({ action: 'deny', roleArn: CI_ROLE, deny: { sourceIdentity: JOB, purpose: 'ci' } }),
    ).rejects.toMatchObject({ name: 'ValidationError', message: expect.stringMatching(/ends CI sessions/) });
    expect(calls).toEqual([]);
  });
});
