import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keywarden } from './cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'kw-validate-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('keywarden validate', () => {
  it('passes the demo inventory', () => {
    const result = keywarden(['validate', 'demo/identities.yaml']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('22 identities, no problems');
  });

  it('lists every problem of a file, each with line and column, and exits 1', () => {
    const path = file(
      'several.yaml',
      `version: 1
identities:
  - id: app-build
    kind: aws-iam-acess-key
    owner: team-app
    purpose: build
    pipeline: { repo: acme/app, stage: build, environment: prod }
    scope: { userName: ci-app }
  - id: app-deploy
    kind: vault-token
    owner: team-app
    purpose: deploy
    pipeline: { repo: acme-app, stage: ship, environment: prod }
    scope: { policies: [deploy], ttl: forever }
    policy: { maxAge: 7d, rotateEvery: 30d }
`,
    );

    const result = keywarden(['validate', path]);

    expect(result.code).toBe(1);
    expect(result.stdout.trim().split('\n')).toEqual([
      `${path}:4:11 identities.0.kind: expected "aws-iam-access-key" | "aws-secret" | "aws-role-session" | "vault-token" | "vault-approle-secret-id" | "vault-kv" | "vault-lease", got "aws-iam-acess-key"`,
      `${path}:13:23 identities.1.pipeline.repo: expected a repository as owner/name, got "acme-app"`,
      `${path}:13:40 identities.1.pipeline.stage: expected "build" | "test" | "sign" | "publish" | "deploy", got "ship"`,
      `${path}:14:39 identities.1.scope.ttl: expected a duration such as 30m, 12h or 90d, got "forever"`,
      `${path}:15:40 identities.1.policy.rotateEvery: expected rotateEvery no longer than maxAge (7d), got 30d`,
    ]);
    expect(result.stderr).toContain('5 problem(s)');
  });

  it('says in one sentence that a file is missing, without a stack trace', () => {
    const result = keywarden(['validate', join(dir, 'nope.yaml')]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(
      `keywarden: ${join(dir, 'nope.yaml')} does not exist; expected an identities.yaml inventory file.`,
    );
  });

  it('says in one sentence that a file is not YAML', () => {
    const path = file('broken.yaml', 'version: 1\nidentities: [ {id: a\n');
    const result = keywarden(['validate', path]);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/is not valid YAML/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses an unknown command with a usage error', () => {
    expect(keywarden(['frobnicate']).code).toBe(2);
  });
});
