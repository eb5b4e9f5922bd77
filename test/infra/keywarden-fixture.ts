/**
 * Synthesizes the keywarden stack the way `cdk synth` does — same cdk.json context, the
 * AwsSolutions checks applied — and offers small readers over the resulting template.
 * Bundling is skipped (see cdkJsonContext) except where a test asks for it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Aspects, type CfnResource, type Environment } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { KeywardenStack, type KeywardenStackProps } from '../../infra/keywarden-stack.ts';
import { flattenCfnValue } from '../../infra/nag.ts';

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

/** Builds a fresh app with one `Keywarden` stack and the AwsSolutions checks, and synthesizes it. */
export function synthesizeKeywarden(
  props: KeywardenStackProps = {},
  env?: Environment,
  options: { bundle?: boolean } = {},
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
