import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  formatProblem,
  InventoryFileError,
  parseInventory,
} from '../../functions/adapters/inventory-file.ts';

const problemsOf = (text: string) => {
  const result = parseInventory(text, 'identities.yaml');
  if (result.ok) throw new Error('expected problems');
  return result.problems.map(formatProblem);
};

describe('inventory: validate', () => {
  it('accepts the demo inventory, with defaults filled in', () => {
    const result = parseInventory(readFileSync('demo/identities.yaml', 'utf8'), 'demo/identities.yaml');

    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.inventory.identities.length).toBeGreaterThanOrEqual(20);
    const token = result.inventory.identities.find((i) => i.id === 'app-ci-reader');
    expect(token?.kind === 'vault-token' && token.scope.ttl).toBe('1h');
  });

  it('lists every problem at once, each with line, column, field path, expected and got', () => {
    const text = [
      'version: 1',
      'identities:',
      '  - id: Bad Id',
      '    kind: aws-iam-access-key',
      '    owner: team-app',
      '    purpose: push artifacts',
      '    pipeline: { repo: acme/app, stage: deployy, environment: prod }',
      '    scope: { userName: ci-app }',
      '    policy: { maxAge: 10d, rotateEvery: 30d, grace: soon }',
      '    colour: blue',
      '  - id: ok',
      '    kind: vault-kv',
      '    pipeline: { repo: acme/app, stage: build, environment: prod }',
      '    scope: { path: ci/app }',
      '  - id: ok',
      '    kind: vault-magic',
      '',
    ].join('\n');

    expect(problemsOf(text)).toEqual([
      "identities.yaml:3:9 identities.0.id: expected an id of lowercase letters, digits, '.', '_' or '-' (at most 128), got \"Bad Id\"",
      'identities.yaml:7:40 identities.0.pipeline.stage: expected "build" | "test" | "sign" | "publish" | "deploy", got "deployy"',
      'identities.yaml:9:53 identities.0.policy.grace: expected a duration such as 30m, 12h or 90d, got "soon"',
      'identities.yaml:10:13 identities.0.colour: expected no field "colour" here (misspelt?), got one',
      'identities.yaml:11:5 identities.1.purpose: expected string, got nothing (required)',
      'identities.yaml:15:9 identities.2.id: expected a unique id, got "ok" again (first at identities.1)',
      'identities.yaml:16:11 identities.2.kind: expected "aws-iam-access-key" | "aws-secret" | "aws-role-session" | "vault-token" | "vault-approle-secret-id" | "vault-kv" | "vault-lease", got "vault-magic"',
    ]);
  });

  it('checks that rotation fits inside the max age', () => {
    const text = `version: 1
identities:
  - id: a
    kind: vault-kv
    purpose: p
    pipeline: { repo: acme/app, stage: build, environment: prod }
    scope: { path: ci/a }
    policy: { maxAge: 10d, rotateEvery: 30d }
`;
    expect(problemsOf(text)).toEqual([
      'identities.yaml:8:41 identities.0.policy.rotateEvery: expected rotateEvery no longer than maxAge (10d), got 30d',
    ]);
  });

  it('says in one sentence when the file is not YAML', () => {
    expect(() => parseInventory('identities: [a, b\nversion: 1', 'broken.yaml')).toThrow(InventoryFileError);
    expect(() => parseInventory('identities: [a, b\nversion: 1', 'broken.yaml')).toThrow(
      /^broken\.yaml:\d+:\d+ is not valid YAML/,
    );
  });

  it('reports a document that is not a mapping at its start', () => {
    expect(problemsOf('just some text')).toEqual([
      'identities.yaml:1:1 (file): expected object, got "just some text"',
    ]);
  });

  describe('vault-token scope', () => {
    const tokenInventory = (scope: string) => `version: 1
identities:
  - id: t
    kind: vault-token
    purpose: p
    pipeline: { repo: acme/app, stage: deploy, environment: prod }
    scope: ${scope}
`;
    const scopeOf = (scope: string) => {
      const result = parseInventory(tokenInventory(scope), 'identities.yaml');
      if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
      const [token] = result.inventory.identities;
      if (token?.kind !== 'vault-token') throw new Error('expected a vault-token');
      return token.scope;
    };

    it('keeps the form keywarden issues tokens for: policies and ttl', () => {
      expect(scopeOf('{ policies: [ci-deploy], ttl: 2h }')).toEqual({ policies: ['ci-deploy'], ttl: '2h' });
    });

    it('names tokens made outside keywarden by one accessor, a list, a token role or a display-name prefix', () => {
      expect(scopeOf('{ accessor: hQ9cMrUbYcbfEJ6WswV2mZkE }')).toMatchObject({
        accessor: 'hQ9cMrUbYcbfEJ6WswV2mZkE',
      });
      expect(scopeOf('{ accessor: [hQ9cMrUbYcbfEJ6WswV2mZkE, Zq8mQ1x3W2e4R5t6Y7u8I9o0] }')).toMatchObject({
        accessor: ['hQ9cMrUbYcbfEJ6WswV2mZkE', 'Zq8mQ1x3W2e4R5t6Y7u8I9o0'],
      });
      expect(scopeOf('{ tokenRole: ci-terraform }')).toMatchObject({ tokenRole: 'ci-terraform' });
      expect(scopeOf('{ displayNamePrefix: jenkins- }')).toMatchObject({ displayNamePrefix: 'jenkins-' });
    });

    it('combines both: tokens to issue, and the existing ones the first rotation adopts', () => {
      expect(scopeOf('{ policies: [ci-deploy], accessor: hQ9cMrUbYcbfEJ6WswV2mZkE }')).toEqual({
        policies: ['ci-deploy'],
        ttl: '1h',
        accessor: 'hQ9cMrUbYcbfEJ6WswV2mZkE',
      });
    });

    it('refuses a scope naming no token, an unknown field, and an accessor that is no accessor', () => {
      expect(problemsOf(tokenInventory('{ ttl: 1h }'))).toEqual([
        'identities.yaml:7:12 identities.0.scope: expected policies (tokens keywarden issues) or accessor, tokenRole or displayNamePrefix (tokens that exist already), got none of them',
      ]);
      expect(problemsOf(tokenInventory('{ policies: [ci], accessors: [abc] }'))).toEqual([
        'identities.yaml:7:41 identities.0.scope.accessors: expected no field "accessors" here (misspelt?), got one',
      ]);
      expect(problemsOf(tokenInventory('{ accessor: [] }'))).toEqual([
        expect.stringMatching(/^identities\.yaml:7:\d+ identities\.0\.scope\.accessor: /),
      ]);
      expect(problemsOf(tokenInventory('{ accessor: "a b" }'))).toEqual([
        expect.stringContaining('expected a token accessor such as \'hQ9cMrUbYcbfEJ6WswV2mZkE\', got "a b"'),
      ]);
    });
  });
});
