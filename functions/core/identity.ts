import * as z from 'zod';
import { DurationSchema, isDuration, toSeconds } from './duration.ts';
import { onFirstUse } from './on-first-use.ts';
import { FieldNameSchema, refineValueShape, valueShapeKeys } from './secret-template.ts';

/** Every kind of credential keywarden can own; each has a provider adapter. */
export const IdentityKindSchema = z.enum([
  'aws-iam-access-key',
  'aws-secret',
  'aws-role-session',
  'vault-token',
  'vault-approle-secret-id',
  'vault-kv',
  'vault-lease',
]);
export type IdentityKind = z.infer<typeof IdentityKindSchema>;

export const StageSchema = z.enum(['build', 'test', 'sign', 'publish', 'deploy']);
export type Stage = z.infer<typeof StageSchema>;

/** Stages that must never share one identity (separation of duties). */
export const PRIVILEGED_STAGES: readonly Stage[] = ['sign', 'publish', 'deploy'];

const Name = z.string().trim().min(1);
const IdentityId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, {
  error: (issue) =>
    `expected an id of lowercase letters, digits, '.', '_' or '-' (at most 128), got ${JSON.stringify(issue.input)}`,
});

export { type Generator, GeneratorSchema } from './secret-template.ts';

export const PolicySchema = onFirstUse(() =>
  z
    .strictObject({
      maxAge: DurationSchema.default('90d'),
      rotateEvery: DurationSchema.default('30d'),
      grace: DurationSchema.default('1d'),
      /** What happens to a credential past maxAge that cannot be rotated. */
      onMaxAge: z.enum(['disable', 'revoke', 'report']).default('disable'),
      /**
       * false: keywarden tracks the credential (inventory, fingerprint, age, findings, status,
       * revocation in an incident) but never rotates it, nor disables it for its age.
       */
      rotate: z.boolean().default(true),
      /**
       * What a use from outside the identity's `allowedRunners` leads to: `report` (a finding) or
       * `contain` (the finding, and the used credential is handed to containment: revoked, re-issued).
       */
      onUnexpectedUse: z.enum(['contain', 'report']).default('report'),
    })
    .superRefine((policy, ctx) => {
      if (![policy.maxAge, policy.rotateEvery, policy.grace].every(isDuration)) return;
      if (toSeconds(policy.rotateEvery) > toSeconds(policy.maxAge)) {
        ctx.addIssue({
          code: 'custom',
          path: ['rotateEvery'],
          message: `expected rotateEvery no longer than maxAge (${policy.maxAge}), got ${policy.rotateEvery}`,
        });
      }
      if (toSeconds(policy.grace) >= toSeconds(policy.rotateEvery)) {
        ctx.addIssue({
          code: 'custom',
          path: ['grace'],
          message: `expected grace shorter than rotateEvery (${policy.rotateEvery}), got ${policy.grace}`,
        });
      }
    }),
);
export type Policy = z.infer<typeof PolicySchema>;

/** Where the live credential is placed for the pipeline to read. */
export const DeliverySchema = onFirstUse(() =>
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('aws-secret'), secretId: Name }),
    z.strictObject({
      type: z.literal('vault-kv'),
      mount: Name.default('secret'),
      path: Name,
      /** The field a plain credential (a token, a secret-id) is written to; `value` by default. */
      field: FieldNameSchema.optional(),
    }),
  ]),
);
export type Delivery = z.infer<typeof DeliverySchema>;

export const PipelineSchema = onFirstUse(() =>
  z.strictObject({
    repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, {
      error: (issue) => `expected a repository as owner/name, got ${JSON.stringify(issue.input)}`,
    }),
    /** One stage, or the list of stages the identity serves. */
    stage: z.union([StageSchema, z.array(StageSchema).min(1)]),
    environment: Name,
  }),
);

/** A CIDR range, IPv4 (`10.20.0.0/16`) or IPv6 (`fd00:c1::/48`). */
const Cidr = z.union([z.cidrv4(), z.cidrv6()], {
  error: (issue) =>
    `expected a CIDR range such as '10.20.0.0/16' or 'fd00::/48', got ${JSON.stringify(issue.input)}`,
});

/**
 * Where an identity's credentials may be used from: addresses in `cidrs`, or runners carrying
 * one of `labels` (where the use trail names the runner). A use that matches neither is a
 * `used-from-unexpected-runner` finding. Absent, use is not checked.
 */
export const AllowedRunnersSchema = onFirstUse(() =>
  z
    .strictObject({
      cidrs: z.array(Cidr).min(1).optional(),
      labels: z.array(Name).min(1).optional(),
    })
    .refine((allowed) => allowed.cidrs || allowed.labels, {
      error: 'expected cidrs or labels (or both) in allowedRunners, got neither',
    }),
);
export type AllowedRunners = z.infer<typeof AllowedRunnersSchema>;

const VaultPolicies = z.array(Name).min(1);

/** A Vault / OpenBao token accessor (24 characters; a namespace suffix after a dot). */
const Accessor = z.string().regex(/^[A-Za-z0-9][\w.-]*$/, {
  error: (issue) =>
    `expected a token accessor such as 'hQ9cMrUbYcbfEJ6WswV2mZkE', got ${JSON.stringify(issue.input)}`,
});

/**
 * Which tokens a `vault-token` identity owns. Two ways to name them, which combine:
 *
 * - `policies` (and `ttl`): keywarden issues the identity's tokens itself (orphan, its id in
 *   their meta) and rotates them.
 * - `accessor` (one or a list), `tokenRole` (tokens made through `auth/token/create/<role>`)
 *   and `displayNamePrefix` (tokens whose display name starts with it, with or without the
 *   `token-` Vault puts in front): tokens that exist already, made outside keywarden.
 *
 * The identity's tokens are every token any of the given fields names. With `policies` too,
 * the first rotation adopts the existing ones and retires them after the grace period; without,
 * keywarden cannot issue a replacement, so they are discovered, listed and revoked but never
 * rotated. A token keywarden issued for another identity is never matched by these fields.
 */
export const VaultTokenScopeSchema = onFirstUse(() =>
  z
    .strictObject({
      policies: VaultPolicies.optional(),
      /** TTL of the tokens keywarden issues (with `policies`). */
      ttl: DurationSchema.default('1h'),
      accessor: z.union([Accessor, z.array(Accessor).min(1)]).optional(),
      tokenRole: Name.optional(),
      displayNamePrefix: Name.optional(),
    })
    .superRefine((scope, ctx) => {
      if (scope.policies || scope.accessor || scope.tokenRole || scope.displayNamePrefix) return;
      ctx.addIssue({
        code: 'custom',
        message:
          'expected policies (tokens keywarden issues) or accessor, tokenRole or displayNamePrefix (tokens that exist already), got none of them',
      });
    }),
);
export type VaultTokenScope = z.infer<typeof VaultTokenScopeSchema>;

/** The accessors a `vault-token` scope names, as a list. */
export const declaredAccessors = (scope: VaultTokenScope): string[] =>
  scope.accessor === undefined ? [] : Array.isArray(scope.accessor) ? scope.accessor : [scope.accessor];

/** One pipeline identity; `scope` says which credential it is, per kind. */
export const IdentitySchema = onFirstUse(() => {
  const common = {
    id: IdentityId,
    owner: Name.optional(),
    purpose: Name,
    pipeline: PipelineSchema,
    policy: PolicySchema.default({
      maxAge: '90d',
      rotateEvery: '30d',
      grace: '1d',
      onMaxAge: 'disable',
      rotate: true,
      onUnexpectedUse: 'report',
    }),
    delivery: DeliverySchema.optional(),
    tags: z.record(z.string(), z.string()).default({}),
    allowedRunners: AllowedRunnersSchema.optional(),
  };
  return z.discriminatedUnion('kind', [
    z.strictObject({
      ...common,
      kind: z.literal('aws-iam-access-key'),
      scope: z.strictObject({ userName: Name }),
    }),
    z.strictObject({
      ...common,
      kind: z.literal('aws-secret'),
      scope: z.strictObject({ secretId: Name, ...valueShapeKeys }).superRefine(refineValueShape),
    }),
    z.strictObject({
      ...common,
      kind: z.literal('aws-role-session'),
      scope: z.strictObject({
        roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, {
          error: (issue) => `expected an IAM role ARN, got ${JSON.stringify(issue.input)}`,
        }),
      }),
    }),
    z.strictObject({
      ...common,
      kind: z.literal('vault-token'),
      scope: VaultTokenScopeSchema,
    }),
    z.strictObject({
      ...common,
      kind: z.literal('vault-approle-secret-id'),
      scope: z.strictObject({
        mount: Name.default('approle'),
        roleName: Name,
        secretIdTtl: DurationSchema.default('24h'),
        numUses: z.int().min(0).default(0),
      }),
    }),
    z.strictObject({
      ...common,
      kind: z.literal('vault-kv'),
      scope: z
        .strictObject({
          mount: Name.default('secret'),
          path: Name,
          ...valueShapeKeys,
        })
        .superRefine(refineValueShape),
    }),
    z.strictObject({
      ...common,
      kind: z.literal('vault-lease'),
      scope: z.strictObject({ prefix: Name }),
    }),
  ]);
});
export type Identity = z.infer<typeof IdentitySchema>;
export type IdentityOfKind<K extends IdentityKind> = Extract<Identity, { kind: K }>;

/** The stages an identity serves, as a list. */
export const stagesOf = (identity: Pick<Identity, 'pipeline'>): Stage[] =>
  Array.isArray(identity.pipeline.stage) ? identity.pipeline.stage : [identity.pipeline.stage];
