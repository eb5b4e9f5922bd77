/**
 * The inventory's `ci:` rules beyond shape (`ciProblems`), claim matching (`claimMatches`), and
 * who a job is from its claims (`jobOf`).
 */
import { describe, expect, it } from 'vitest';
import {
  type CiConfig,
  CiConfigSchema,
  type CiIssuer,
  CiIssuerSchema,
  type ClaimMatcher,
  ciProblems,
  claimMatches,
  describeMatcher,
  jobOf,
  resolveIssuer,
  unmatchedClaim,
} from '../../functions/core/ci-policy.ts';

const REPOSITORY_ID = '700123456';
const ROLE = 'arn:aws:iam::123456789012:role/ci-release';

type Fields = Record<string, unknown>;
interface RawGrant {
  name: string;
  issuer: string;
  stage: string;
  claims: Fields;
  vault?: Fields;
  aws?: Fields;
  gate?: Fields;
}
/** The section as written in the inventory, before parsing. */
interface RawSection {
  issuers: Fields[];
  grants: [RawGrant, RawGrant, ...RawGrant[]];
  gates: Fields[];
}

/** A good `ci` section: one GitHub issuer, a sign grant, a deploy grant behind a gate. */
function section(change: (raw: RawSection) => void = () => {}): CiConfig {
  const raw: RawSection = {
    issuers: [{ name: 'github', preset: 'github', audience: 'keywarden' }],
    grants: [
      {
        name: 'app-sign',
        issuer: 'github',
        claims: {
          repository_id: REPOSITORY_ID,
          ref: 'refs/heads/main',
          job_workflow_ref: { glob: 'acme/app/.github/workflows/*.yml@refs/heads/main' },
        },
        stage: 'sign',
        vault: { policies: ['app-sign'], ttl: '10m' },
      },
      {
        name: 'app-deploy',
        issuer: 'github',
        claims: { repository_id: REPOSITORY_ID, environment: 'production' },
        stage: 'deploy',
        aws: { roleArn: ROLE },
        gate: { gate: 'promote', environment: 'production' },
      },
    ],
    gates: [{ gate: 'promote', environment: 'production', localUsers: ['alice'] }],
  };
  change(raw);
  return CiConfigSchema.parse(raw);
}

const messagesAt = (config: CiConfig) =>
  ciProblems(config).map((problem) => `${problem.path.join('.')}: ${problem.message}`);

describe('ci policy: ciProblems', () => {
  it('finds nothing wrong with a section that keeps every rule', () => {
    expect(ciProblems(section())).toEqual([]);
  });

  it('requires the repository pinned by its immutable id', () => {
    const config = section((raw) => {
      delete raw.grants[0].claims.repository_id;
    });

    expect(messagesAt(config)).toEqual([
      'grants.0.claims.repository_id: expected the repository pinned by its immutable id: an exact repository_id (names can be re-registered by someone else), got no pin',
    ]);
  });

  it('refuses a glob or a list as the repository pin', () => {
    const config = section((raw) => {
      raw.grants[0].claims.repository_id = { glob: '7001*' };
      raw.grants[1].claims.repository_id = [REPOSITORY_ID, '700999999'];
    });

    expect(messagesAt(config)).toEqual([
      'grants.0.claims.repository_id: expected the repository pinned by its immutable id: an exact repository_id (names can be re-registered by someone else), got a glob or a list',
      'grants.1.claims.repository_id: expected the repository pinned by its immutable id: an exact repository_id (names can be re-registered by someone else), got a glob or a list',
    ]);
  });

  it('pins GitLab projects by project_id, and a custom issuer by the claim it names', () => {
    const config = section((raw) => {
      raw.issuers.push(
        { name: 'gitlab', preset: 'gitlab', audience: 'keywarden' },
        {
          name: 'forge',
          issuer: 'https://forge.example.com',
          audience: 'keywarden',
          repositoryClaim: 'repo_uuid',
          actorClaim: 'user',
          jobClaims: ['repo_uuid', 'job'],
        },
      );
      raw.grants.push(
        {
          name: 'gl',
          issuer: 'gitlab',
          claims: { repository_id: '1' },
          stage: 'build',
          vault: { policies: ['gl'] },
        },
        {
          name: 'forge',
          issuer: 'forge',
          claims: { repo_uuid: 'c0ffee' },
          stage: 'build',
          vault: { policies: ['f'] },
        },
      );
    });

    expect(messagesAt(config)).toEqual([
      'grants.2.claims.project_id: expected the repository pinned by its immutable id: an exact project_id (names can be re-registered by someone else), got no pin',
    ]);
  });

  it('refuses ** in a glob, wherever it is', () => {
    const config = section((raw) => {
      raw.grants[0].claims.ref = [{ glob: 'refs/heads/**' }, 'refs/heads/main'];
    });

    expect(messagesAt(config)).toEqual([
      `grants.0.claims.ref.glob: expected a glob that cannot match across '/' (use * for one path segment, or list the values), got "refs/heads/**"`,
    ]);
  });

  it('keeps a Vault token within 15 minutes', () => {
    const config = section((raw) => {
      raw.grants[0].vault = { ...raw.grants[0].vault, ttl: '16m' };
    });

    expect(messagesAt(config)).toEqual([
      'grants.0.vault.ttl: expected a ttl of at most 15m (a job step), got 16m',
    ]);
    const atCap = section((raw) => {
      raw.grants[0].vault = { ...raw.grants[0].vault, ttl: '15m' };
    });
    expect(ciProblems(atCap)).toEqual([]);
  });

  it('asks for an AWS session of exactly 15 minutes', () => {
    for (const duration of ['14m', '1h']) {
      const config = section((raw) => {
        raw.grants[1].aws = { ...raw.grants[1].aws, duration };
      });

      expect(messagesAt(config)).toEqual([
        `grants.1.aws.duration: expected a duration of 15m (STS's shortest session is also the cap for a job), got ${duration}`,
      ]);
    }
  });

  it('names the declared issuers when a grant names another', () => {
    const config = section((raw) => {
      raw.grants[1].issuer = 'gitlab';
    });

    expect(messagesAt(config)).toEqual([
      'grants.1.issuer: expected one of the declared issuers (github), got "gitlab"',
    ]);
  });

  it('refuses a role serving both sign and deploy', () => {
    const config = section((raw) => {
      raw.grants[0].aws = { roleArn: ROLE };
    });

    expect(messagesAt(config)).toEqual([
      `grants.1.stage: expected separate identities for sign and deploy, got role ${ROLE} serving both (grants app-sign and app-deploy)`,
    ]);
  });

  it('refuses a Vault policy serving both sign and deploy', () => {
    const config = section((raw) => {
      raw.grants[1].vault = { policies: ['deploy', 'app-sign'] };
    });

    expect(messagesAt(config)).toEqual([
      'grants.1.stage: expected separate identities for sign and deploy, got Vault policy app-sign serving both (grants app-sign and app-deploy)',
    ]);
  });

  it('requires approvers for a gate a grant waits on', () => {
    const config = section((raw) => {
      raw.gates = [{ gate: 'promote', environment: 'staging', localUsers: ['alice'] }];
    });

    expect(messagesAt(config)).toEqual([
      'grants.1.gate: expected approvers declared for gate promote in production (ci.gates), got none',
    ]);
  });

  it('requires at least one approver for every declared gate', () => {
    const config = section((raw) => {
      raw.gates.push({ gate: 'sign', environment: 'production', awsPrincipals: [], slackUsers: [] });
    });

    expect(messagesAt(config)).toEqual([
      'gates.1: expected at least one approver for gate sign in production (awsPrincipals, slackUsers or localUsers), got none',
    ]);
  });

  it('refuses names used twice', () => {
    const config = section((raw) => {
      raw.issuers.push({ name: 'github', preset: 'github', audience: 'other' });
      raw.grants[1].name = 'app-sign';
      raw.grants[1].stage = 'publish';
    });

    expect(messagesAt(config)).toEqual([
      'issuers.1.name: expected a unique issuer name, got "github" again',
      'grants.1.name: expected a unique grant name, got "app-sign" again',
    ]);
  });

  it('refuses keys fetched over plain http, except on loopback', () => {
    const config = section((raw) => {
      raw.issuers.push(
        { name: 'plain', preset: 'gitlab', issuer: 'http://gitlab.internal', audience: 'keywarden' },
        {
          name: 'plain-keys',
          preset: 'gitlab',
          audience: 'keywarden',
          jwksUrl: 'http://gitlab.internal/oauth/discovery/keys',
        },
        { name: 'local', preset: 'gitlab', issuer: 'http://127.0.0.1:8080', audience: 'keywarden' },
        {
          name: 'local6',
          preset: 'github',
          audience: 'keywarden',
          discoveryUrl: 'http://[::1]:9/.well-known/openid-configuration',
        },
      );
    });

    expect(messagesAt(config)).toEqual([
      'issuers.1.issuer: expected an https URL for the keys (plain http only on loopback), got "http://gitlab.internal/.well-known/openid-configuration"',
      'issuers.2.jwksUrl: expected an https URL for the keys (plain http only on loopback), got "http://gitlab.internal/oauth/discovery/keys"',
    ]);
  });

  it('reports no more than it must when the section is empty', () => {
    expect(ciProblems(CiConfigSchema.parse({}))).toEqual([]);
  });
});

describe('ci policy: claimMatches', () => {
  const cases: [string, ClaimMatcher, unknown, boolean][] = [
    ['an exact value', 'refs/heads/main', 'refs/heads/main', true],
    ['an exact value, another value', 'refs/heads/main', 'refs/heads/mainline', false],
    ['an exact value is not a prefix', 'acme/app', 'acme/app-fork', false],
    ['a number against its text', 700123456, '700123456', true],
    ['text against a number claim', '42', 42, true],
    ['a boolean against GitHub’s "true"', true, 'true', true],
    ['a boolean against a boolean claim', false, false, true],
    ['"true" against a boolean claim', 'true', true, true],
    ['a boolean, the other value', true, 'false', false],
    ['a glob * within a segment', { glob: 'refs/heads/release-*' }, 'refs/heads/release-1.2', true],
    ['a glob * does not cross /', { glob: 'refs/heads/*' }, 'refs/heads/feature/x', false],
    ['a glob * matches an empty run', { glob: 'refs/tags/v*' }, 'refs/tags/v', true],
    ['a glob ? is one character', { glob: 'v?' }, 'v1', true],
    ['a glob ? is not /', { glob: 'a?b' }, 'a/b', false],
    ['a glob ? is not two characters', { glob: 'v?' }, 'v10', false],
    ['a glob is anchored at both ends', { glob: 'main' }, 'not-main-really', false],
    ['a glob treats regex characters literally', { glob: 'a.b+(c)' }, 'a.b+(c)', true],
    ['a glob . is not any character', { glob: 'a.b' }, 'axb', false],
    [
      'a glob in a workflow ref',
      { glob: 'acme/app/.github/workflows/*.yml@refs/heads/main' },
      'acme/app/.github/workflows/release.yml@refs/heads/main',
      true,
    ],
    [
      'a glob in a workflow ref, another branch',
      { glob: 'acme/app/.github/workflows/*.yml@refs/heads/main' },
      'acme/app/.github/workflows/release.yml@refs/heads/dev',
      false,
    ],
    ['a list, one fits', ['production', { glob: 'staging-*' }], 'staging-eu', true],
    ['a list, none fits', ['production', { glob: 'staging-*' }], 'dev', false],
    ['a missing claim', 'production', undefined, false],
    ['a null claim', 'null', null, false],
    ['an object claim', '[object Object]', { a: 1 }, false],
    ['a list claim (aud as a list)', 'keywarden', ['keywarden'], false],
  ];

  for (const [name, matcher, value, expected] of cases) {
    it(`${name}: ${expected ? 'matches' : 'does not match'}`, () => {
      expect(claimMatches(matcher, value)).toBe(expected);
    });
  }

  it('names the first claim a token does not satisfy, and what it expected', () => {
    const grant = section().grants[0];
    if (!grant) throw new Error('expected a grant');

    const claims = { repository_id: REPOSITORY_ID, ref: 'refs/heads/dev' };

    expect(unmatchedClaim(grant, claims)).toEqual({ claim: 'ref', expected: '"refs/heads/main"' });
    expect(describeMatcher(['a', { glob: 'b-*' }, 3])).toBe('"a" or glob "b-*" or "3"');
  });
});

describe('ci policy: jobOf', () => {
  const issuerOf = (declared: Record<string, unknown>): CiIssuer =>
    resolveIssuer(CiIssuerSchema.parse({ audience: 'keywarden', ...declared }));
  const SAFE = /^[\w+=,.@-]{1,64}$/;

  it('keys a GitHub job by repository, run, attempt and job, and names its actor', () => {
    const job = jobOf(issuerOf({ name: 'github', preset: 'github' }), {
      repository_id: REPOSITORY_ID,
      run_id: '9876543210',
      run_attempt: '2',
      check_run_id: '55512345678',
      actor: 'octocat',
      sha: 'ignored',
    });

    expect(job).toEqual({
      key: `github/${REPOSITORY_ID}/9876543210/2/55512345678`,
      correlationId: `ci-github-${REPOSITORY_ID}.9876543210.2.55512345678`,
      actor: 'octocat',
      ids: {
        repository_id: REPOSITORY_ID,
        run_id: '9876543210',
        run_attempt: '2',
        check_run_id: '55512345678',
      },
    });
    expect(job.correlationId).toMatch(SAFE);
  });

  it('keys a GitLab job by project and job id (numbers as text)', () => {
    const job = jobOf(issuerOf({ name: 'gitlab', preset: 'gitlab' }), {
      project_id: 20,
      job_id: 302,
      user_login: 'sample-user',
    });

    expect(job.key).toBe('gitlab/20/302');
    expect(job.correlationId).toBe('ci-gitlab-20.302');
    expect(job.actor).toBe('sample-user');
  });

  it('keeps two jobs apart when a claim value holds a /', () => {
    const issuer = issuerOf({
      name: 'forge',
      issuer: 'https://ci.example.com',
      repositoryClaim: 'repo',
      actorClaim: 'who',
      jobClaims: ['project', 'job'],
    });

    const one = jobOf(issuer, { project: 'a/b', job: 'c' });
    const other = jobOf(issuer, { project: 'a', job: 'b/c' });

    expect(one.key).not.toBe(other.key);
    expect(one.key).toBe('forge/a%2Fb/c');
  });

  it('skips a job claim the token lacks, keeping the key’s shape', () => {
    const job = jobOf(issuerOf({ name: 'github', preset: 'github' }), {
      repository_id: REPOSITORY_ID,
      run_id: '1',
      run_attempt: '1',
    });

    expect(job.key).toBe(`github/${REPOSITORY_ID}/1/1/`);
    expect(job.ids).not.toHaveProperty('check_run_id');
    expect(job.actor).toBeUndefined();
  });

  it('keeps a correlation id to 64 safe characters, the most specific ids last', () => {
    const issuer = issuerOf({
      name: 'a-rather-long-issuer-name.for-testing_only',
      issuer: 'https://ci.example.com',
      repositoryClaim: 'repo',
      actorClaim: 'who',
      jobClaims: ['repo', 'pipeline', 'job'],
    });

    const job = jobOf(issuer, {
      repo: 'group/sub group/project:with#odd chars',
      pipeline: '12345678901234567890',
      job: 'job-9999999999',
    });

    expect(job.correlationId).toMatch(SAFE);
    expect(job.correlationId.startsWith('ci-')).toBe(true);
    expect(job.correlationId.endsWith('.12345678901234567890.job-9999999999')).toBe(true);
    expect(job.key).toBe(
      'a-rather-long-issuer-name.for-testing_only/group%2Fsub%20group%2Fproject%3Awith%23odd%20chars/12345678901234567890/job-9999999999',
    );
  });

  it('keeps short correlation ids whole, whatever the claim values hold', () => {
    for (const value of ['a/b', 'x y', 'ü', '🙂', '<script>', '1']) {
      const job = jobOf(issuerOf({ name: 'gitlab', preset: 'gitlab' }), { project_id: value, job_id: value });
      expect(job.correlationId).toMatch(SAFE);
    }
  });
});
