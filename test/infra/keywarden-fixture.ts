/**
 * Synthesizes the keywarden stack the way `cdk synth` does — same cdk.json context, the
 * AwsSolutions checks applied — and offers small readers over the resulting template.
 * Bundling is skipped (see cdkJsonContext) except where a test asks for it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Aspects, type CfnResource, type Environment, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { expect } from 'vitest';
import { ReportBucket } from '../../infra/constructs/report-bucket.ts';
import { ServiceSecrets } from '../../infra/constructs/service-secrets.ts';
import { StateStore } from '../../infra/constructs/state-store.ts';
import { KeywardenStack, type KeywardenStackProps } from '../../infra/keywarden-stack.ts';
import { flattenCfnValue } from '../../infra/nag.ts';

/** How an environment-agnostic template names its partition, region and account, flattened. */
export const PARTITION = '<AWS::Partition>';
export const REGION = '<AWS::Region>';
export const ACCOUNT = '<AWS::AccountId>';

/** The ARN patterns keywarden's policies name, as they read flattened in an environment-agnostic template. */
export const ARNS = {
  /** IAM users under `path` (`/` or `/ci/`). */
  users: (path: string) => `arn:${PARTITION}:iam::${ACCOUNT}:user${path}*`,
  /** IAM roles under `path`. */
  roles: (path: string) => `arn:${PARTITION}:iam::${ACCOUNT}:role${path}*`,
  /** Secrets whose name starts with `prefix`. */
  secrets: (prefix: string) => `arn:${PARTITION}:secretsmanager:${REGION}:${ACCOUNT}:secret:${prefix}*`,
  /** Every KMS key of the account and region. */
  keys: `arn:${PARTITION}:kms:${REGION}:${ACCOUNT}:key/*`,
  /** The roles break-glass may assume, at the default path. */
  breakglassRoles: `arn:${PARTITION}:iam::${ACCOUNT}:role/breakglass/*`,
  /** The one-time grant schedules, in the default grant group. */
  grantSchedules: `arn:${PARTITION}:scheduler:${REGION}:${ACCOUNT}:schedule/keywarden-grants/*`,
} as const;

/** What every keywarden function is: the ESM bundle's `handler` export on nodejs22.x, arm64. */
export const BUNDLED_HANDLER = {
  Runtime: 'nodejs22.x',
  Architectures: ['arm64'],
  Handler: 'index.handler',
} as const;

/** A synthesized stack and its template. */
export interface SynthesizedKeywarden {
  readonly stack: KeywardenStack;
  readonly template: Template;
}

/**
 * The `context` of cdk.json in the working directory, as the CDK CLI would pass it, with
 * Lambda bundling skipped (`aws:cdk:bundling-stacks: []`, what `cdk deploy --exclusively`
 * uses for stacks it does not deploy): templates and policies do not depend on the bundle,
 * and esbuild for every function on every synth cost minutes. test/infra/bundling.test.ts
 * bundles every handler once, for real.
 */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(process.cwd(), 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  return { ...(cdkJson.context ?? {}), 'aws:cdk:bundling-stacks': [] };
}

/**
 * The syntheses made so far in this worker, by their arguments. The infra project runs its
 * files one after another in the same worker (`isolate: false` in vitest.config.ts), so the
 * files that read the default stack share one synthesis, as they share aws-cdk-lib's import:
 * each synthesis with the AwsSolutions checks costs seconds of CPU. The specs only read a
 * synthesized stack and its template.
 */
const synthesized = new Map<string, SynthesizedKeywarden>();

/**
 * An app with one `Keywarden` stack and the AwsSolutions checks, synthesized: once per worker
 * for the same arguments (see `synthesized`), afresh when it bundles.
 */
export function synthesizeKeywarden(
  props: KeywardenStackProps = {},
  env?: Environment,
  options: { bundle?: boolean } = {},
): SynthesizedKeywarden {
  if (options.bundle) return synthesizeAfresh(props, env, options);
  const key = JSON.stringify([props, env ?? null]);
  const known = synthesized.get(key);
  if (known) return known;
  const made = synthesizeAfresh(props, env, options);
  synthesized.set(key, made);
  return made;
}

/** Builds a fresh app with one `Keywarden` stack and the AwsSolutions checks, and synthesizes it. */
function synthesizeAfresh(
  props: KeywardenStackProps,
  env: Environment | undefined,
  options: { bundle?: boolean },
): SynthesizedKeywarden {
  // The CLI also records each resource's construct path (`aws:cdk:path`); suppressions are listed by it.
  const app = new App({
    context: {
      ...cdkJsonContext(),
      'aws:cdk:enable-path-metadata': true,
      ...(options.bundle ? { 'aws:cdk:bundling-stacks': ['**'] } : {}),
    },
  });
  const stack = new KeywardenStack(app, 'Keywarden', { ...props, ...(env === undefined ? {} : { env }) });
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return { stack, template: Template.fromStack(stack) };
}

/** The shared constructs a capability construct takes, in a bare stack named `Bare`. */
export interface BareKeywarden {
  readonly stack: Stack;
  readonly stateStore: StateStore;
  readonly secrets: ServiceSecrets;
  readonly reportBucket: ReportBucket;
}

/**
 * A stack named `Bare` (cdk.json context plus `context`, bundling skipped) holding the state
 * table, keywarden's secrets (named `Bare/…`) and the report bucket: where a spec builds one
 * capability construct alone, mostly to see its props refused before it creates a child.
 */
export function bareKeywarden(context: Record<string, unknown> = {}): BareKeywarden {
  const stack = new Stack(new App({ context: { ...cdkJsonContext(), ...context } }), 'Bare');
  return {
    stack,
    stateStore: new StateStore(stack, 'StateStore'),
    secrets: new ServiceSecrets(stack, 'ServiceSecrets'),
    reportBucket: new ReportBucket(stack, 'ReportBucket'),
  };
}

/** The template resource of type `type` behind `construct` (its default child), if there is one. */
// biome-ignore lint/suspicious/noExplicitAny: the assertions library types resources as `any`
export function resourceOf(template: Template, type: string, construct: IConstruct): any {
  return template.findResources(type)[logicalIdOf(construct)];
}

/** The unsuppressed AwsSolutions errors and warnings whose construct path contains one of `pathParts`. */
export function awsSolutionsFindingsUnder(stack: Stack, pathParts: readonly string[]): unknown[] {
  const finding = Match.stringLikeRegexp('AwsSolutions-.*');
  return [
    ...Annotations.fromStack(stack).findError('*', finding),
    ...Annotations.fromStack(stack).findWarning('*', finding),
  ].filter((found) => pathParts.some((part) => found.id.includes(part)));
}

/**
 * The one trust statement of a role a schedule assumes: EventBridge Scheduler, for this account
 * and a schedule group (`sourceArn` matches its ARN), nothing else.
 */
export function schedulerTrust(sourceArn: unknown = expect.anything()): unknown[] {
  return [
    expect.objectContaining({
      Effect: 'Allow',
      Action: 'sts:AssumeRole',
      Principal: { Service: 'scheduler.amazonaws.com' },
      Condition: {
        StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' }, 'aws:SourceArn': sourceArn },
      },
    }),
  ];
}

/** The variables every function with the service settings receives: table, Vault address, its two secrets. */
export function serviceVariables(stack: KeywardenStack, vaultAddr = ''): Record<string, unknown> {
  return {
    KEYWARDEN_TABLE: { Ref: logicalIdOf(stack.stateStore.table) },
    KEYWARDEN_VAULT_ADDR: vaultAddr,
    KEYWARDEN_VAULT_TOKEN_SECRET_ARN: { Ref: logicalIdOf(stack.secrets.vaultToken) },
    KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: { Ref: logicalIdOf(stack.secrets.fingerprintKey) },
  };
}

/** What an alarm on a function's `Errors` metric (summed) reads, as the template writes it. */
export function lambdaErrorsMetric(fn: IConstruct): Record<string, unknown> {
  return {
    Namespace: 'AWS/Lambda',
    MetricName: 'Errors',
    Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalIdOf(fn) } }],
    Statistic: 'Sum',
  };
}

/**
 * How every keywarden alarm fires and notifies, as the template writes it: once in one period is
 * enough, no data is no failure, and `topic` hears both the alarm and its clearing.
 */
export function firesOnceNotifying(topic: unknown): Record<string, unknown> {
  return {
    EvaluationPeriods: 1,
    Threshold: 1,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    TreatMissingData: 'notBreaching',
    AlarmActions: [topic],
    OKActions: [topic],
  };
}

/** The state table's ARN and its indexes', flattened: all a function's table grant may name. */
export function tableAndIndexArns(stack: KeywardenStack): string[] {
  const table = `<${logicalIdOf(stack.stateStore.table)}.Arn>`;
  return [table, ...['gsi1', 'gsi2', 'gsi3', 'gsi4'].map((index) => `${table}/index/${index}`)];
}

/** The CloudFormation logical id of a construct's underlying resource. */
export function logicalIdOf(construct: IConstruct): string {
  const resource = construct.node.defaultChild as CfnResource | undefined;
  if (resource === undefined)
    throw new Error(`${construct.node.path} has no default CloudFormation resource`);
  return resource.stack.resolve(resource.logicalId) as string;
}

/** One IAM policy statement with its actions and resources normalised to flat strings. */
export interface FlatStatement {
  readonly sid: string | undefined;
  readonly actions: string[];
  readonly resources: string[];
  readonly condition: unknown;
}

/** Every Allow statement of the `AWS::IAM::Policy` resources attached to the given role. */
export function allowStatementsOfRole(template: Template, roleLogicalId: string): FlatStatement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  const statements: FlatStatement[] = [];
  for (const policy of Object.values(policies)) {
    const roles = (policy.Properties?.Roles ?? []) as unknown[];
    if (!roles.some((role) => JSON.stringify(role) === JSON.stringify({ Ref: roleLogicalId }))) continue;
    for (const statement of policy.Properties.PolicyDocument.Statement as Record<string, unknown>[]) {
      if (statement.Effect !== 'Allow') continue;
      statements.push({
        sid: statement.Sid as string | undefined,
        actions: toArray(statement.Action).map(String),
        resources: toArray(statement.Resource).map(flattenCfnValue),
        condition: statement.Condition,
      });
    }
  }
  return statements;
}

/** Resources (flattened) that any of `statements` allows `action` on. */
export function resourcesAllowedFor(statements: FlatStatement[], action: string): string[] {
  return statements.filter((s) => s.actions.includes(action)).flatMap((s) => s.resources);
}

/** The actions of `statements` that carry a wildcard (`s3:*`, `kms:GenerateDataKey*`). */
export function wildcardActionsIn(statements: FlatStatement[]): string[] {
  return statements.flatMap((s) => s.actions).filter((action) => action.includes('*'));
}

/** The statements that allow anything on every resource (`"*"`). */
export function onEveryResource(statements: FlatStatement[]): FlatStatement[] {
  return statements.filter((s) => s.resources.includes('*'));
}

/** The services `statements` allow actions of, sorted (`['dynamodb', 'iam', …]`). */
export function servicesIn(statements: FlatStatement[]): string[] {
  return [
    ...new Set(statements.flatMap((s) => s.actions).map((action) => action.split(':')[0] ?? '')),
  ].sort();
}

/**
 * Expects `statements` to allow no wildcard action and nothing on every resource (`"*"`), and
 * actions of exactly `services` (sorted, as servicesIn gives them).
 */
export function expectOnlyScopedActionsOf(statements: FlatStatement[], services: readonly string[]): void {
  expect(wildcardActionsIn(statements)).toEqual([]);
  expect(onEveryResource(statements)).toEqual([]);
  expect(servicesIn(statements)).toEqual(services);
}

/** A cdk-nag suppression found in the template, with where it sits. */
export interface FoundSuppression {
  readonly path: string;
  readonly id: string;
  readonly reason: string;
  readonly appliesTo: unknown[] | undefined;
}

/** Every cdk-nag suppression in the template: on resources and on the stack itself. */
export function suppressionsIn(template: Template): FoundSuppression[] {
  const json = template.toJSON() as {
    Metadata?: { cdk_nag?: { rules_to_suppress?: RawSuppression[] } };
    Resources: Record<
      string,
      { Metadata?: { 'aws:cdk:path'?: string; cdk_nag?: { rules_to_suppress?: RawSuppression[] } } }
    >;
  };
  const found: FoundSuppression[] = [];
  const collect = (path: string, rules: RawSuppression[] | undefined): void => {
    for (const rule of rules ?? []) {
      found.push({
        path,
        id: rule.id,
        reason: rule.is_reason_encoded ? Buffer.from(rule.reason, 'base64').toString('utf8') : rule.reason,
        appliesTo: rule.applies_to,
      });
    }
  };
  collect('(stack)', json.Metadata?.cdk_nag?.rules_to_suppress);
  for (const [logicalId, resource] of Object.entries(json.Resources)) {
    collect(resource.Metadata?.['aws:cdk:path'] ?? logicalId, resource.Metadata?.cdk_nag?.rules_to_suppress);
  }
  return found;
}

interface RawSuppression {
  id: string;
  reason: string;
  applies_to?: unknown[];
  is_reason_encoded?: boolean;
}

function toArray(value: unknown): unknown[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}
