import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  auditCiVariables,
  type CiVariable,
  ciVariableFindings,
  type ManagedIdentityRef,
} from '../../functions/core/ci-variable-audit.ts';
import type { DetectedSecret } from '../../functions/core/exposure-types.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';

/** A credential-looking value made at run time. */
const token = (prefix = 'hvs.'): string => `${prefix}${randomBytes(18).toString('base64url')}`;

const variable = (
  key: string,
  value: string | undefined,
  settings: Partial<CiVariable> = {},
): CiVariable => ({
  key,
  environmentScope: '*',
  value: value === undefined ? undefined : new SecretValue(value),
  masked: false,
  protected: false,
  hidden: false,
  variableType: 'env_var',
  source: { kind: 'gitlab-variable', location: `group/project:${key}` },
  ...settings,
});

const detection = (rule: string, value: string): DetectedSecret => ({
  rule,
  value: new SecretValue(value),
  line: 1,
  column: 1,
  encoding: 'plain',
});

/** A classifier that knows the given values as identities. */
const managedAs =
  (known: Record<string, ManagedIdentityRef>) =>
  (value: SecretValue): ManagedIdentityRef | undefined =>
    known[value.reveal()];

describe('ci variable audit: managed credentials', () => {
  it('flags a managed credential stored unmasked and unprotected as critical, naming the identity and the fix', () => {
    // prepare
    const value = token();
    const input = {
      variables: [variable('VAULT_TOKEN', value)],
      isManaged: managedAs({ [value]: { identityId: 'deploy-token', owner: 'platform' } }),
    };

    // act
    const audit = auditCiVariables(input);

    // assess
    expect(audit.problems).toHaveLength(1);
    const [problem] = audit.problems;
    expect(problem).toMatchObject({
      kind: 'managed-unprotected',
      variable: 'VAULT_TOKEN',
      missing: ['masked', 'protected'],
      severity: 'critical',
      identity: { identityId: 'deploy-token', owner: 'platform' },
    });
    expect(problem?.message).toBe(
      "CI/CD variable group/project:VAULT_TOKEN holds the managed credential of identity deploy-token (owner platform), stored unmasked and unprotected: a job that prints it shows it in its log; a pipeline of any branch, a merge request's included, can read it",
    );
    expect(problem?.fix).toContain('`keywarden ci credentials`');
    expect(problem?.fix).toContain('masked and protected');
    expect(problem?.fix).toContain('keywarden rotate --identity deploy-token');
    expect(JSON.stringify(audit)).not.toContain(value);
  });

  it('is high when only one protection is missing, and no problem when both are set', () => {
    // prepare
    const value = token();
    const isManaged = managedAs({ [value]: { identityId: 'ci-key' } });
    const variables = [
      variable('MASKED_ONLY', value, { masked: true }),
      variable('PROTECTED_ONLY', value, { protected: true }),
      variable('BOTH', value, { masked: true, protected: true }),
    ];

    // act
    const audit = auditCiVariables({ variables, isManaged });

    // assess
    expect(
      audit.problems.map((p) => [p.variable, p.severity, p.kind === 'managed-unprotected' && p.missing]),
    ).toEqual([
      ['MASKED_ONLY', 'high', ['protected']],
      ['PROTECTED_ONLY', 'high', ['masked']],
    ]);
    expect(audit.managedStoredSafely).toEqual([
      { variable: 'BOTH', environmentScope: '*', identity: { identityId: 'ci-key' } },
    ]);
    expect(audit.checked).toBe(3);
  });

  it('finds a managed credential inside a value through what the detector found there', () => {
    // prepare: a file variable holding a managed token among other lines
    const value = token();
    const file = variable('VAULT_ENV', `VAULT_ADDR=https://vault.example\nVAULT_TOKEN=${value}\n`, {
      variableType: 'file',
      masked: false,
      protected: true,
    });

    // act
    const audit = auditCiVariables({
      variables: [file],
      isManaged: managedAs({ [value]: { identityId: 'vault-ci' } }),
      detected: () => [detection('vault-service-token', value)],
    });

    // assess
    expect(audit.problems).toMatchObject([
      { kind: 'managed-unprotected', identity: { identityId: 'vault-ci' }, missing: ['masked'] },
    ]);
  });
});

describe('ci variable audit: unmanaged credentials and the rest', () => {
  it('flags a credential-looking value keywarden does not manage, with its rules, never its value', () => {
    // prepare
    const value = token('glpat-');
    const input = {
      variables: [variable('OTHER', value, { masked: true, protected: true }), variable('LOOSE', value)],
      isManaged: managedAs({}),
      detected: (v: CiVariable) => [
        detection('secretlint:gitlab', v.value?.reveal() ?? ''),
        detection('generic', v.value?.reveal() ?? ''),
      ],
    };

    // act
    const audit = auditCiVariables(input);

    // assess
    expect(audit.problems).toMatchObject([
      {
        kind: 'unmanaged-credential',
        variable: 'OTHER',
        rules: ['generic', 'secretlint:gitlab'],
        severity: 'medium',
      },
      { kind: 'unmanaged-credential', variable: 'LOOSE', severity: 'high' },
    ]);
    expect(audit.problems[1]?.message).toBe(
      'CI/CD variable group/project:LOOSE holds a credential keywarden does not manage (generic, secretlint:gitlab), stored unmasked and unprotected: nobody rotates or revokes it',
    );
    const findings = ciVariableFindings(audit.problems);
    expect(findings.map((finding) => [finding.id, finding.type, finding.severity, finding.subject])).toEqual([
      [
        'exposed-unmanaged:gitlab-variable:group/project:OTHER',
        'exposed-unmanaged',
        'high',
        'gitlab-variable:group/project:OTHER',
      ],
      [
        'exposed-unmanaged:gitlab-variable:group/project:LOOSE',
        'exposed-unmanaged',
        'high',
        'gitlab-variable:group/project:LOOSE',
      ],
    ]);
    expect(JSON.stringify({ audit, findings })).not.toContain(value);
  });

  it('leaves plain values alone and lists hidden variables as unreadable', () => {
    // act
    const audit = auditCiVariables({
      variables: [
        variable('REGION', 'eu-west-1'),
        variable('SECRET', undefined, { hidden: true, masked: true }),
        variable('EMPTY', undefined),
      ],
      isManaged: managedAs({}),
      detected: () => [],
    });

    // assess
    expect(audit).toEqual({
      problems: [],
      checked: 1,
      managedStoredSafely: [],
      unreadable: ['group/project:SECRET'],
    });
  });
});
