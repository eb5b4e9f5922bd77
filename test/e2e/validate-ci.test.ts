/**
 * `keywarden validate` on an inventory's `ci:` section, as a user runs it: a good section passes,
 * and each bad one is refused with its line, column and path, and a message saying what was
 * expected; the command exits 1.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { keywardenEntry } from '../support/cli-entry.ts';
import { type CliResult, keywarden } from './cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'kw-validate-ci-'));

/** A section keeping every rule: GitHub and GitLab issuers, a sign grant, a gated deploy grant. */
const GOOD = `version: 1
identities: []
ci:
  issuers:
    - name: github
      preset: github
      audience: keywarden
    - name: gitlab
      preset: gitlab
      issuer: https://gitlab.example.com
      audience: keywarden
  grants:
    - name: app-sign
      issuer: github
      claims:
        repository_id: "700123456"
        ref: refs/heads/main
        job_workflow_ref: { glob: "acme/app/.github/workflows/*.yml@refs/heads/main" }
      stage: sign
      vault: { policies: [app-sign], ttl: 10m }
    - name: app-deploy
      issuer: gitlab
      claims: { project_id: 42, environment: production, ref_protected: true }
      stage: deploy
      aws: { roleArn: "arn:aws:iam::123456789012:role/app-deploy" }
      gate: { gate: promote, environment: production }
  gates:
    - gate: promote
      environment: production
      localUsers: [alice]
`;

/**
 * `keywarden validate <path>` as {@link keywarden} runs it, but without blocking: the bad
 * sections are checked a few at a time (each run spends ~1.5 s of CPU loading the CLI).
 */
function validateAsync(path: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [keywardenEntry(), 'validate', path],
      { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, KEYWARDEN_TABLE: '' }, timeout: 170_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The good section with one text replaced (the replaced text must be there). */
function variant(name: string, from: string, to: string): string {
  if (!GOOD.includes(from)) throw new Error(`the good section has no ${JSON.stringify(from)}`);
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, GOOD.replace(from, to));
  return path;
}

describe('keywarden validate: the ci section', () => {
  it('accepts a section that keeps every rule', () => {
    const path = join(dir, 'good.yaml');
    writeFileSync(path, GOOD);

    const result = keywarden(['validate', path]);

    expect(result.stdout).toBe('');
    expect(result.stderr.trim()).toBe(`${path}: 0 identities, no problems`);
    expect(result.code).toBe(0);
  });

  const refusals: { name: string; from: string; to: string; problem: string }[] = [
    {
      name: 'no-pin',
      from: '        repository_id: "700123456"\n',
      to: '',
      problem:
        'ci.grants.0.claims.repository_id: expected the repository pinned by its immutable id: an exact repository_id (names can be re-registered by someone else), got no pin',
    },
    {
      name: 'glob-pin',
      from: 'repository_id: "700123456"',
      to: 'repository_id: { glob: "7001*" }',
      problem:
        '16:24 ci.grants.0.claims.repository_id: expected the repository pinned by its immutable id: an exact repository_id (names can be re-registered by someone else), got a glob or a list',
    },
    {
      name: 'double-star',
      from: 'ref: refs/heads/main',
      to: 'ref: { glob: "refs/heads/**" }',
      problem: `ci.grants.0.claims.ref.glob: expected a glob that cannot match across '/' (use * for one path segment, or list the values), got "refs/heads/**"`,
    },
    {
      name: 'long-ttl',
      from: 'ttl: 10m',
      to: 'ttl: 1h',
      problem: '20:43 ci.grants.0.vault.ttl: expected a ttl of at most 15m (a job step), got 1h',
    },
    {
      name: 'aws-duration',
      from: 'role/app-deploy" }',
      to: 'role/app-deploy", duration: 1h }',
      problem:
        "ci.grants.1.aws.duration: expected a duration of 15m (STS's shortest session is also the cap for a job), got 1h",
    },
    {
      name: 'unknown-issuer',
      from: '      issuer: gitlab\n      claims',
      to: '      issuer: gitlab-selfhosted\n      claims',
      problem:
        'ci.grants.1.issuer: expected one of the declared issuers (github, gitlab), got "gitlab-selfhosted"',
    },
    {
      name: 'role-sign-and-deploy',
      from: 'vault: { policies: [app-sign], ttl: 10m }',
      to: 'aws: { roleArn: "arn:aws:iam::123456789012:role/app-deploy" }',
      problem:
        'ci.grants.1.stage: expected separate identities for sign and deploy, got role arn:aws:iam::123456789012:role/app-deploy serving both (grants app-sign and app-deploy)',
    },
    {
      name: 'policy-sign-and-deploy',
      from: '      gate: { gate: promote',
      to: '      vault: { policies: [app-sign] }\n      gate: { gate: promote',
      problem:
        'ci.grants.1.stage: expected separate identities for sign and deploy, got Vault policy app-sign serving both (grants app-sign and app-deploy)',
    },
    {
      name: 'gate-undeclared',
      from: '    - gate: promote\n      environment: production',
      to: '    - gate: promote\n      environment: staging',
      problem:
        'ci.grants.1.gate: expected approvers declared for gate promote in production (ci.gates), got none',
    },
    {
      name: 'gate-no-approvers',
      from: '      localUsers: [alice]',
      to: '      localUsers: []',
      problem:
        'ci.gates.0: expected at least one approver for gate promote in production (awsPrincipals, slackUsers or localUsers), got none',
    },
    {
      name: 'plain-http-keys',
      from: '      issuer: https://gitlab.example.com',
      to: '      issuer: http://gitlab.example.com',
      problem:
        '10:15 ci.issuers.1.issuer: expected an https URL for the keys (plain http only on loopback), got "http://gitlab.example.com/.well-known/openid-configuration"',
    },
    {
      name: 'nothing-issued',
      from: '      aws: { roleArn: "arn:aws:iam::123456789012:role/app-deploy" }\n',
      to: '',
      problem:
        'ci.grants.1: expected what the grant issues: vault (a token) and/or aws (a role session), got neither',
    },
    {
      name: 'unknown-preset',
      from: 'preset: gitlab',
      to: 'preset: bitbucket',
      problem: '9:15 ci.issuers.1.preset: expected "github" | "gitlab", got "bitbucket"',
    },
    {
      name: 'misspelt-field',
      from: '      audience: keywarden\n    - name: gitlab',
      to: '      audiences: keywarden\n    - name: gitlab',
      problem: 'ci.issuers.0.audiences: expected no field "audiences" here (misspelt?), got one',
    },
  ];

  const results = new Map<string, CliResult>();
  beforeAll(async () => {
    const queue = [...refusals];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        results.set(next.name, await validateAsync(variant(next.name, next.from, next.to)));
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  });

  for (const { name, problem } of refusals) {
    it(`refuses ${name}, naming the path and what it expected`, () => {
      const path = join(dir, `${name}.yaml`);

      const result = results.get(name);

      expect(result?.code).toBe(1);
      const lines = result?.stdout.trim().split('\n') ?? [];
      expect(
        lines.some((line) => line.startsWith(`${path}:`) && line.endsWith(problem)),
        result?.stdout,
      ).toBe(true);
      expect(result?.stderr).toMatch(/^\S+: \d+ problem\(s\)\n$/);
    });
  }
});
