/**
 * Which CI/CD variables are exposures (`keywarden scan --gitlab-variables PROJECT`). GitLab
 * returns variables' values to a project's maintainers; keywarden looks at each value, never
 * keeps or shows it, and says which variables are a problem:
 *
 * - **a managed credential stored unmasked or unprotected**: unmasked, a job that prints it shows
 *   it in its log; unprotected, a pipeline of any branch (a merge request's too) can read it.
 *   The fix: keep it only masked and protected, or better, remove it and let the job exchange
 *   its OIDC token for a short-lived credential (`keywarden ci credentials`). Since the value may
 *   already be in a log, it is also worth rotating.
 * - **an unmanaged credential**: a value the caller's detector says looks like a credential,
 *   which is none keywarden manages: nobody rotates or revokes it. It becomes an
 *   `exposed-unmanaged` finding.
 *
 * A managed credential stored masked and protected is not a problem here (the recommended
 * state short of removing it). A hidden variable (GitLab's "masked and hidden") has no value in
 * the API's answer, so it cannot be checked: it is listed as unreadable.
 *
 * Pure: whether a value is managed (by keyed fingerprint, exposure-match.ts) and whether it looks
 * like a credential (a detector, possibly asynchronous) are the caller's to decide beforehand.
 */
import type { DetectedSecret, ExposureSource } from './exposure-types.ts';
import type { Finding, Severity } from './findings.ts';
import type { SecretValue } from './secret-value.ts';

/** One CI/CD variable as the platform returned it. */
export interface CiVariable {
  key: string;
  /** `*` for every environment, or the environment (pattern) it is limited to. */
  environmentScope: string;
  /** Absent when the platform did not return it (a hidden variable) or it is empty. */
  value: SecretValue | undefined;
  /** Replaced by `[MASKED]` in job logs. */
  masked: boolean;
  /** Given only to pipelines of protected branches and tags. */
  protected: boolean;
  /** Masked and never shown again, not even to maintainers. */
  hidden: boolean;
  /** `env_var` or `file`. */
  variableType: string;
  /** `gitlab-variable`, `group/project:KEY` (with ` (environment SCOPE)` when scoped: one per variable). */
  source: ExposureSource;
}

/** What a managed credential's match names: at least the identity. `ManagedRef` (exposure-match.ts) is one. */
export interface ManagedIdentityRef {
  identityId: string;
  owner?: string | undefined;
  environment?: string | undefined;
}

/** A variable setting a managed credential lacks. */
export type MissingProtection = 'masked' | 'protected';

interface ProblemBase {
  variable: string;
  environmentScope: string;
  source: ExposureSource;
  severity: Severity;
  /** What is wrong, for a person; never the value. */
  message: string;
  /** What to do. */
  fix: string;
}

/** A managed credential stored without masking or protection. */
export interface ManagedCredentialExposed<I extends ManagedIdentityRef = ManagedIdentityRef>
  extends ProblemBase {
  kind: 'managed-unprotected';
  identity: I;
  missing: MissingProtection[];
}

/** A value that looks like a credential keywarden does not manage. */
export interface UnmanagedCredential extends ProblemBase {
  kind: 'unmanaged-credential';
  /** The detector rules that matched. */
  rules: string[];
  masked: boolean;
  protected: boolean;
}

export type CiVariableProblem<I extends ManagedIdentityRef = ManagedIdentityRef> =
  | ManagedCredentialExposed<I>
  | UnmanagedCredential;

/** What the audit needs. */
export interface CiVariableAuditInput<I extends ManagedIdentityRef> {
  variables: readonly CiVariable[];
  /** The managed credential a value is, if any (by keyed fingerprint). */
  isManaged: (value: SecretValue) => I | undefined;
  /** What the caller's detector found in a variable's value (run beforehand; none when omitted). */
  detected?: (variable: CiVariable) => readonly DetectedSecret[];
}

/** The audit's answer. */
export interface CiVariableAudit<I extends ManagedIdentityRef = ManagedIdentityRef> {
  problems: CiVariableProblem<I>[];
  /** Variables whose value was looked at. */
  checked: number;
  /** Managed credentials found stored masked and protected (no problem; listed for the record). */
  managedStoredSafely: { variable: string; environmentScope: string; identity: I }[];
  /** Variables whose value the platform did not return (hidden), by location. */
  unreadable: string[];
}

function missingOf(variable: CiVariable): MissingProtection[] {
  const missing: MissingProtection[] = [];
  if (!variable.masked) missing.push('masked');
  if (!variable.protected) missing.push('protected');
  return missing;
}

const CONSEQUENCE: Record<MissingProtection, string> = {
  masked: 'a job that prints it shows it in its log',
  protected: "a pipeline of any branch, a merge request's included, can read it",
};

function managedProblem<I extends ManagedIdentityRef>(
  variable: CiVariable,
  identity: I,
  missing: MissingProtection[],
): ManagedCredentialExposed<I> {
  const owner = identity.owner ? ` (owner ${identity.owner})` : '';
  const stored = missing.map((setting) => (setting === 'masked' ? 'unmasked' : 'unprotected')).join(' and ');
  return {
    kind: 'managed-unprotected',
    variable: variable.key,
    environmentScope: variable.environmentScope,
    source: variable.source,
    identity,
    missing,
    severity: missing.length === 2 ? 'critical' : 'high',
    message: `CI/CD variable ${variable.source.location} holds the managed credential of identity ${identity.identityId}${owner}, stored ${stored}: ${missing.map((setting) => CONSEQUENCE[setting]).join('; ')}`,
    fix: `remove ${variable.key} and let the job exchange its OIDC token for a short-lived credential with \`keywarden ci credentials\`; or at least keep it only as a masked and protected variable (Settings → CI/CD → Variables: Mask variable, Protect variable); its value may already be in a job log, so rotate it (\`keywarden rotate --identity ${identity.identityId}\`)`,
  };
}

function unmanagedProblem(variable: CiVariable, rules: string[]): UnmanagedCredential {
  const missing = missingOf(variable);
  const stored =
    missing.length === 0
      ? 'masked and protected'
      : missing.map((setting) => (setting === 'masked' ? 'unmasked' : 'unprotected')).join(' and ');
  return {
    kind: 'unmanaged-credential',
    variable: variable.key,
    environmentScope: variable.environmentScope,
    source: variable.source,
    rules,
    masked: variable.masked,
    protected: variable.protected,
    severity: missing.length === 0 ? 'medium' : 'high',
    message: `CI/CD variable ${variable.source.location} holds a credential keywarden does not manage (${rules.join(', ')}), stored ${stored}: nobody rotates or revokes it`,
    fix: 'declare the credential in the inventory so keywarden rotates it (or replace it with `keywarden ci credentials`), and keep it masked and protected meanwhile',
  };
}

/**
 * The problems of a project's CI/CD variables. A value is looked up whole, then each credential
 * the detector found in it (a file variable can hold several); the first managed one names the
 * variable's identity. Unmanaged only when nothing in it is managed and the detector found something.
 */
export function auditCiVariables<I extends ManagedIdentityRef>(
  input: CiVariableAuditInput<I>,
): CiVariableAudit<I> {
  const audit: CiVariableAudit<I> = { problems: [], checked: 0, managedStoredSafely: [], unreadable: [] };
  for (const variable of input.variables) {
    if (variable.value === undefined) {
      if (variable.hidden) audit.unreadable.push(variable.source.location);
      continue;
    }
    audit.checked++;
    const detected = input.detected?.(variable) ?? [];
    let identity = input.isManaged(variable.value);
    for (const hit of detected) identity ??= input.isManaged(hit.value);
    if (identity) {
      const missing = missingOf(variable);
      if (missing.length > 0) audit.problems.push(managedProblem(variable, identity, missing));
      else
        audit.managedStoredSafely.push({
          variable: variable.key,
          environmentScope: variable.environmentScope,
          identity,
        });
    } else if (detected.length > 0) {
      audit.problems.push(unmanagedProblem(variable, [...new Set(detected.map((hit) => hit.rule))].sort()));
    }
  }
  return audit;
}

/** The unmanaged credentials as `exposed-unmanaged` findings (the managed ones are contained instead). */
export function ciVariableFindings(problems: readonly CiVariableProblem[]): Finding[] {
  return problems
    .filter((problem): problem is UnmanagedCredential => problem.kind === 'unmanaged-credential')
    .map((problem) => ({
      id: `exposed-unmanaged:${problem.source.kind}:${problem.source.location}`,
      type: 'exposed-unmanaged' as const,
      severity: 'high' as const,
      subject: `${problem.source.kind}:${problem.source.location}`,
      identityIds: [],
      handles: [],
      message: `${problem.message}; ${problem.fix}`,
    }));
}
