/**
 * Trust policies for CI jobs (the inventory's `ci:` section): which OIDC issuers keywarden
 * trusts, and named job grants — which jobs (claim matchers) may exchange their OIDC token
 * for which short-lived credentials (a Vault/OpenBao token, an AWS role session), for which
 * pipeline stage, behind which approval gate.
 *
 * Pure: the schemas, the rules `keywarden validate` enforces beyond shape, the claim
 * matching, and who the job is (its key, its actor) from its claims.
 */
import * as z from 'zod';
import { DurationSchema, isDuration, toSeconds } from './duration.ts';
import { KeywardenError } from './errors.ts';
import { type Stage, StageSchema } from './identity.ts';
import { onFirstUse } from './on-first-use.ts';

/** The longest a CI credential may live: one job step, not a standing secret. */
export const CI_MAX_TTL_SECONDS = 15 * 60;
/** An AWS role session's length: STS's minimum, which is also the cap. */
export const CI_AWS_SESSION_SECONDS = 900;

/** The approval gates, in the order an artifact passes them. */
export const GateSchema = z.enum(['sign', 'publish', 'promote']);
export type Gate = z.infer<typeof GateSchema>;
export const GATE_ORDER: readonly Gate[] = GateSchema.options;

/** An artifact digest as pipelines name it: `sha256:` and 64 lowercase hex digits. */
export const DigestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, {
  error: (issue) =>
    `expected an artifact digest as sha256:<64 lowercase hex digits>, got ${JSON.stringify(
      typeof issue.input === 'string' && issue.input.length > 80
        ? `${issue.input.slice(0, 77)}...`
        : issue.input,
    )}`,
});
export type Digest = z.infer<typeof DigestSchema>;

const Name = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, {
  error: (issue) =>
    `expected a name of lowercase letters, digits, '.', '_' or '-' (at most 64), got ${JSON.stringify(issue.input)}`,
});

/** Claims a preset knows; a custom issuer names its own. */
export const PresetSchema = z.enum(['github', 'gitlab']);
export type Preset = z.infer<typeof PresetSchema>;

/** What keywarden knows about a preset issuer's tokens. */
export interface IssuerFacts {
  /** The `iss` of its tokens (GitLab: the instance URL, `https://gitlab.com` by default). */
  issuer: string;
  /** The claim holding the immutable repository/project id every grant must pin. */
  repositoryClaim: string;
  /** The claim naming who started the job (an approval by them does not count). */
  actorClaim: string;
  /** The claims that, together, name one job (its credentials end together). */
  jobClaims: readonly string[];
}

export const PRESETS: Readonly<Record<Preset, IssuerFacts>> = {
  github: {
    issuer: 'https://token.actions.githubusercontent.com',
    repositoryClaim: 'repository_id',
    actorClaim: 'actor',
    // check_run_id is the job's id (the workflow_job webhook's job); tokens without it name the run attempt.
    jobClaims: ['repository_id', 'run_id', 'run_attempt', 'check_run_id'],
  },
  gitlab: {
    issuer: 'https://gitlab.com',
    repositoryClaim: 'project_id',
    actorClaim: 'user_login',
    jobClaims: ['project_id', 'job_id'],
  },
};

/** One trusted issuer: an allowlist entry with the audience its tokens must carry. */
export const CiIssuerSchema = onFirstUse(() =>
  z
    .strictObject({
      name: Name,
      preset: PresetSchema.optional(),
      /** The tokens' `iss`, exactly; a preset's is the default (set it for GitLab self-managed). */
      issuer: z.url({ protocol: /^https?$/ }).optional(),
      /** The `aud` the job asks for; a token for another audience is refused. */
      audience: z.string().min(1).max(256),
      /** Where the signing keys are: a JWKS URL, or the issuer's discovery document (default). */
      jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
      discoveryUrl: z.url({ protocol: /^https?$/ }).optional(),
      algorithms: z
        .array(z.enum(['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256']))
        .min(1)
        .default(['RS256']),
      /** Tolerated clock difference on exp/nbf/iat. */
      clockSkew: DurationSchema.default('60s'),
      /** The oldest token (by `iat`) exchanged, whatever its `exp` says. */
      maxTokenAge: DurationSchema.default('10m'),
      /** For an issuer with no preset: the repository-id claim, actor claim and job claims. */
      repositoryClaim: z.string().min(1).optional(),
      actorClaim: z.string().min(1).optional(),
      jobClaims: z.array(z.string().min(1)).min(1).optional(),
    })
    .superRefine((issuer, ctx) => {
      if (!issuer.preset && !issuer.issuer) {
        ctx.addIssue({
          code: 'custom',
          path: ['issuer'],
          message: 'expected the issuer URL (or a preset: github | gitlab), got neither',
        });
      }
      if (issuer.jwksUrl && issuer.discoveryUrl) {
        ctx.addIssue({
          code: 'custom',
          path: ['jwksUrl'],
          message: 'expected jwksUrl or discoveryUrl, got both',
        });
      }
      if (!issuer.preset && !(issuer.repositoryClaim && issuer.actorClaim && issuer.jobClaims)) {
        ctx.addIssue({
          code: 'custom',
          path: ['repositoryClaim'],
          message: 'expected repositoryClaim, actorClaim and jobClaims for an issuer without a preset',
        });
      }
    }),
);
export type CiIssuerInput = z.infer<typeof CiIssuerSchema>;

/** An issuer with every default resolved: what the verifier and the exchange use. */
export interface CiIssuer extends IssuerFacts {
  name: string;
  audience: string;
  /** Exactly one of the two. */
  jwksUrl?: string | undefined;
  discoveryUrl?: string | undefined;
  algorithms: string[];
  clockSkewSeconds: number;
  maxTokenAgeSeconds: number;
}

/** The issuer with the preset's facts and the defaults filled in. */
export function resolveIssuer(input: CiIssuerInput): CiIssuer {
  const preset = input.preset ? PRESETS[input.preset] : undefined;
  const issuer = input.issuer ?? preset?.issuer ?? '';
  return {
    name: input.name,
    issuer,
    audience: input.audience,
    ...(input.jwksUrl
      ? { jwksUrl: input.jwksUrl }
      : {
          discoveryUrl:
            input.discoveryUrl ?? `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`,
        }),
    algorithms: input.algorithms,
    clockSkewSeconds: toSeconds(input.clockSkew),
    maxTokenAgeSeconds: toSeconds(input.maxTokenAge),
    repositoryClaim: input.repositoryClaim ?? preset?.repositoryClaim ?? '',
    actorClaim: input.actorClaim ?? preset?.actorClaim ?? '',
    jobClaims: input.jobClaims ?? preset?.jobClaims ?? [],
  };
}

/**
 * One claim's matcher: a value (exact), `{glob}` (`*` = any run of characters but `/`, `?` =
 * one character but `/`; `**` is refused), or a list of these (any one matches).
 */
const OneMatcher = onFirstUse(() =>
  z.union([z.string().min(1), z.boolean(), z.number(), z.strictObject({ glob: z.string().min(1).max(512) })]),
);
export const ClaimMatcherSchema = onFirstUse(() => z.union([OneMatcher, z.array(OneMatcher).min(1).max(32)]));
export type ClaimMatcher = z.infer<typeof ClaimMatcherSchema>;

/** A Vault/OpenBao token for the job: orphan, not renewable, ending at `ttl`. */
export const CiVaultIssueSchema = onFirstUse(() =>
  z.strictObject({
    policies: z.array(z.string().min(1)).min(1),
    ttl: DurationSchema.default('10m'),
    /** How many requests the token may make; 0 = unlimited within its TTL. */
    numUses: z.int().min(0).max(10_000).default(0),
  }),
);
export type CiVaultIssue = z.infer<typeof CiVaultIssueSchema>;

/** An AWS role session for the job: SourceIdentity and session name name the job. */
export const CiAwsIssueSchema = onFirstUse(() =>
  z.strictObject({
    roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, {
      error: (issue) => `expected an IAM role ARN, got ${JSON.stringify(issue.input)}`,
    }),
    /** An IAM policy document narrowing the session (a session policy only narrows the role). */
    sessionPolicy: z.record(z.string(), z.unknown()).optional(),
    duration: DurationSchema.default('15m'),
  }),
);
export type CiAwsIssue = z.infer<typeof CiAwsIssueSchema>;

/** Which approval a grant needs before it issues: a gate for an environment, on the request's digest. */
export const GateRequirementSchema = onFirstUse(() =>
  z.strictObject({
    gate: GateSchema,
    environment: z.string().min(1).max(64),
  }),
);
export type GateRequirement = z.infer<typeof GateRequirementSchema>;

/** One named job grant. */
export const CiGrantSchema = onFirstUse(() =>
  z
    .strictObject({
      name: Name,
      description: z.string().optional(),
      /** The name of one of `ci.issuers`. */
      issuer: Name,
      /** Claim name → matcher; every listed claim must match. */
      claims: z.record(z.string().min(1), ClaimMatcherSchema),
      stage: StageSchema,
      vault: CiVaultIssueSchema.optional(),
      aws: CiAwsIssueSchema.optional(),
      gate: GateRequirementSchema.optional(),
    })
    .refine((grant) => grant.vault || grant.aws, {
      error: 'expected what the grant issues: vault (a token) and/or aws (a role session), got neither',
    }),
);
export type CiGrant = z.infer<typeof CiGrantSchema>;

/** Who may approve a gate, per channel (as break-glass approvers are named). */
export const GateApproversSchema = onFirstUse(() =>
  z.strictObject({
    gate: GateSchema,
    environment: z.string().min(1).max(64),
    awsPrincipals: z.array(z.string().min(1)).default([]),
    slackUsers: z.array(z.string().regex(/^[UW][A-Z0-9]+$/)).default([]),
    localUsers: z.array(z.string().min(1)).default([]),
    /** How long an approval counts. */
    validFor: DurationSchema.default('24h'),
  }),
);
export type GateApprovers = z.infer<typeof GateApproversSchema>;

/** The inventory's `ci` section. */
export const CiConfigSchema = onFirstUse(() =>
  z.strictObject({
    issuers: z.array(CiIssuerSchema).default([]),
    grants: z.array(CiGrantSchema).default([]),
    gates: z.array(GateApproversSchema).default([]),
  }),
);
export type CiConfig = z.infer<typeof CiConfigSchema>;

/** One problem in the `ci` section, located by its path (the inventory's Problem shape). */
export interface CiProblem {
  path: (string | number)[];
  message: string;
}

/** A plain http URL on loopback (the local stand-ins specs run against). */
const LOOPBACK_HTTP = /^http:\/\/(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?(?:[/?#]|$)/i;

const isGlob = (matcher: unknown): matcher is { glob: string } =>
  typeof matcher === 'object' && matcher !== null && 'glob' in matcher;
const matchersOf = (matcher: ClaimMatcher) => (Array.isArray(matcher) ? matcher : [matcher]);

/**
 * The rules a well-formed `ci` section must still keep (`keywarden validate` reports each):
 * keys are fetched over https (plain http only on loopback); every grant names a declared issuer
 * and pins the repository by its immutable id with an exact value; no matcher can match across
 * `/`; TTLs within the cap; one issued identity (a role, a Vault policy) never serves both sign
 * and deploy; a gate a grant waits on is declared, and every declared gate names an approver.
 */
export function ciProblems(config: CiConfig): CiProblem[] {
  const problems: CiProblem[] = [];
  const issuers = new Map(config.issuers.map((issuer) => [issuer.name, resolveIssuer(issuer)]));
  const seen = new Map<string, number>();
  config.issuers.forEach((issuer, i) => {
    if (seen.has(`issuer:${issuer.name}`))
      problems.push({
        path: ['issuers', i, 'name'],
        message: `expected a unique issuer name, got ${JSON.stringify(issuer.name)} again`,
      });
    seen.set(`issuer:${issuer.name}`, i);
    // Keys fetched over plain http could be swapped on the way: any token would then verify.
    const resolved = resolveIssuer(issuer);
    const [field, keysAt] = issuer.jwksUrl
      ? ['jwksUrl', issuer.jwksUrl]
      : issuer.discoveryUrl
        ? ['discoveryUrl', issuer.discoveryUrl]
        : ['issuer', resolved.discoveryUrl];
    if (keysAt && !keysAt.startsWith('https:') && !LOOPBACK_HTTP.test(keysAt)) {
      problems.push({
        path: ['issuers', i, field],
        message: `expected an https URL for the keys (plain http only on loopback), got ${JSON.stringify(keysAt)}`,
      });
    }
  });
  const servedBy = new Map<string, { stage: Stage; at: number }[]>();
  config.grants.forEach((grant, i) => {
    const at = (...rest: (string | number)[]) => ['grants', i, ...rest];
    if (seen.has(`grant:${grant.name}`))
      problems.push({
        path: at('name'),
        message: `expected a unique grant name, got ${JSON.stringify(grant.name)} again`,
      });
    seen.set(`grant:${grant.name}`, i);
    const issuer = issuers.get(grant.issuer);
    if (!issuer) {
      problems.push({
        path: at('issuer'),
        message: `expected one of the declared issuers (${[...issuers.keys()].join(', ') || 'none declared'}), got ${JSON.stringify(grant.issuer)}`,
      });
    } else {
      const pin = grant.claims[issuer.repositoryClaim];
      const pinned = pin !== undefined && matchersOf(pin).length === 1 && !isGlob(matchersOf(pin)[0]);
      if (!pinned) {
        problems.push({
          path: at('claims', issuer.repositoryClaim),
          message: `expected the repository pinned by its immutable id: an exact ${issuer.repositoryClaim} (names can be re-registered by someone else), got ${pin === undefined ? 'no pin' : 'a glob or a list'}`,
        });
      }
    }
    for (const [claim, matcher] of Object.entries(grant.claims)) {
      for (const one of matchersOf(matcher)) {
        if (isGlob(one) && one.glob.includes('**')) {
          problems.push({
            path: at('claims', claim, 'glob'),
            message: `expected a glob that cannot match across '/' (use * for one path segment, or list the values), got ${JSON.stringify(one.glob)}`,
          });
        }
      }
    }
    if (grant.vault && isDuration(grant.vault.ttl) && toSeconds(grant.vault.ttl) > CI_MAX_TTL_SECONDS) {
      problems.push({
        path: at('vault', 'ttl'),
        message: `expected a ttl of at most 15m (a job step), got ${grant.vault.ttl}`,
      });
    }
    if (
      grant.aws &&
      isDuration(grant.aws.duration) &&
      toSeconds(grant.aws.duration) !== CI_AWS_SESSION_SECONDS
    ) {
      problems.push({
        path: at('aws', 'duration'),
        message: `expected a duration of 15m (STS's shortest session is also the cap for a job), got ${grant.aws.duration}`,
      });
    }
    if (
      grant.gate &&
      !config.gates.some((g) => g.gate === grant.gate?.gate && g.environment === grant.gate.environment)
    ) {
      problems.push({
        path: at('gate'),
        message: `expected approvers declared for gate ${grant.gate.gate} in ${grant.gate.environment} (ci.gates), got none`,
      });
    }
    const identities = [
      ...(grant.aws ? [`role ${grant.aws.roleArn}`] : []),
      ...(grant.vault?.policies.map((policy) => `Vault policy ${policy}`) ?? []),
    ];
    for (const identity of identities)
      servedBy.set(identity, [...(servedBy.get(identity) ?? []), { stage: grant.stage, at: i }]);
  });
  config.gates.forEach((gate, i) => {
    if (gate.awsPrincipals.length + gate.slackUsers.length + gate.localUsers.length === 0) {
      problems.push({
        path: ['gates', i],
        message: `expected at least one approver for gate ${gate.gate} in ${gate.environment} (awsPrincipals, slackUsers or localUsers), got none`,
      });
    }
  });
  for (const [identity, uses] of servedBy) {
    const sign = uses.find((use) => use.stage === 'sign');
    const deploy = uses.find((use) => use.stage === 'deploy');
    if (sign && deploy) {
      problems.push({
        path: ['grants', deploy.at, 'stage'],
        message: `expected separate identities for sign and deploy, got ${identity} serving both (grants ${config.grants[sign.at]?.name} and ${config.grants[deploy.at]?.name})`,
      });
    }
  }
  return problems;
}

/** A glob as a regular expression: `*` any run but `/`, `?` one character but `/`. */
function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\*?]/g, (ch) =>
    ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : `\\${ch}`,
  );
  return new RegExp(`^${body}$`, 's');
}

/** Claims as verified: string, number or boolean values (others never match a matcher). */
export type Claims = Readonly<Record<string, unknown>>;

const claimText = (value: unknown): string | undefined =>
  typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : undefined;

/** Whether one claim's value fits its matcher (values compare as text: `true` fits "true"). */
export function claimMatches(matcher: ClaimMatcher, value: unknown): boolean {
  const text = claimText(value);
  if (text === undefined) return false;
  return matchersOf(matcher).some((one) =>
    isGlob(one) ? globToRegExp(one.glob).test(text) : String(one) === text,
  );
}

/** What a matcher expects, for a refusal message (a policy value, never a token). */
export function describeMatcher(matcher: ClaimMatcher): string {
  return matchersOf(matcher)
    .map((one) => (isGlob(one) ? `glob ${JSON.stringify(one.glob)}` : JSON.stringify(String(one))))
    .join(' or ');
}

/** The first claim of a grant the token does not satisfy, or undefined when all match. */
export function unmatchedClaim(
  grant: CiGrant,
  claims: Claims,
): { claim: string; expected: string } | undefined {
  for (const [claim, matcher] of Object.entries(grant.claims)) {
    if (!claimMatches(matcher, claims[claim])) return { claim, expected: describeMatcher(matcher) };
  }
  return undefined;
}

/** Why an exchange was refused: a code for the audit, and a message naming what did not fit (never a token). */
export const CiRefusalReasonSchema = z.enum([
  'token-invalid',
  'issuer-untrusted',
  'audience',
  'algorithm',
  'expired',
  'not-yet-valid',
  'too-old',
  'replayed',
  'grant-unknown',
  'claim-mismatch',
  'gate',
  'not-same-job',
]);
export type CiRefusalReason = z.infer<typeof CiRefusalReasonSchema>;

/** An exchange keywarden refuses: 401 for a token that does not verify, 403 for one that does but may not. */
export class CiRefusalError extends KeywardenError {
  override readonly name = 'CiRefusalError';
  readonly reason: CiRefusalReason;
  /** The claim that did not match, when one did not. */
  readonly claim: string | undefined;
  constructor(reason: CiRefusalReason, message: string, options: { claim?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? {} : { cause: options.cause });
    this.reason = reason;
    this.claim = options.claim;
  }
  /** Whether the token itself failed (401) rather than the policy (403). */
  get unauthenticated(): boolean {
    return [
      'token-invalid',
      'issuer-untrusted',
      'audience',
      'algorithm',
      'expired',
      'not-yet-valid',
      'too-old',
    ].includes(this.reason);
  }
}

/** Who the job is, from its verified claims. */
export interface CiJob {
  /** The issuer's name and the job claims' values: the key its credentials end by. */
  key: string;
  /** A short id safe in a SourceIdentity / session name / token meta (`[\w+=,.@-]`). */
  correlationId: string;
  /** Who started the job (`actor` / `user_login`), when the token names them. */
  actor: string | undefined;
  /** The job claims' values by name (ids, never secrets), for audit and token meta. */
  ids: Record<string, string>;
}

/** The job a token belongs to: its key from the issuer's job claims (absent claims are skipped). */
export function jobOf(issuer: CiIssuer, claims: Claims): CiJob {
  const ids: Record<string, string> = {};
  for (const claim of issuer.jobClaims) {
    const text = claimText(claims[claim]);
    if (text !== undefined) ids[claim] = text;
  }
  // Each value escaped, so a `/` inside one cannot make two jobs' keys alike (`a/b`+`c` vs `a`+`b/c`):
  // the key decides whose credentials a job may end. Ids of digits read as they are.
  const key = [issuer.name, ...issuer.jobClaims.map((claim) => encodeURIComponent(ids[claim] ?? ''))].join(
    '/',
  );
  const compact = issuer.jobClaims
    .map((claim) => (ids[claim] ?? '').replace(/[^\w+=,.@-]/g, '_'))
    .filter(Boolean)
    .join('.');
  const correlationId = `ci-${issuer.name}-${compact}`;
  return {
    key,
    // A SourceIdentity holds at most 64 characters: keep the most specific ids (the job's, last).
    correlationId: correlationId.length <= 64 ? correlationId : `ci-${correlationId.slice(-61)}`,
    actor: claimText(claims[issuer.actorClaim]),
    ids,
  };
}
