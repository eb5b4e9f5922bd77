import { Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * The finding id cdk-nag's `AwsSolutions-IAM5` rule reports for a wildcard resource, for use
 * in a suppression's `appliesTo`, e.g. `Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*`.
 *
 * Computed from the very ARN the policy statement uses, so a suppression names exactly that
 * resource whether the stack is environment-agnostic (tokens) or pinned to an account
 * (literals), and stops matching — failing the infra tests — if the statement changes.
 */
export function iam5ResourceFinding(scope: IConstruct, arn: string): string {
  return `Resource::${flattenCfnValue(Stack.of(scope).resolve(arn))}`;
}

/**
 * Renders a resolved CloudFormation value the way cdk-nag flattens it (`Ref` → `<Id>`,
 * `Fn::GetAtt` → `<Id.Attr>`, `Fn::Join` joined, `${…}` in `Fn::Sub` → `<…>`), e.g.
 * `arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*`.
 */
export function flattenCfnValue(node: unknown): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/}/g, '>');
  if (typeof node === 'object' && node !== null) {
    const value = node as Record<string, unknown>;
    const join = value['Fn::Join'];
    if (Array.isArray(join)) {
      const [delimiter, items] = join as [string, unknown[]];
      return items.map(flattenCfnValue).join(delimiter);
    }
    if ('Fn::Sub' in value) return flattenCfnValue(value['Fn::Sub']);
    const getAtt = value['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${flattenCfnValue(getAtt[0])}.${flattenCfnValue(getAtt[1])}>`;
    if ('Fn::ImportValue' in value) return flattenCfnValue(value['Fn::ImportValue']);
    if ('Ref' in value) return `<${flattenCfnValue(value.Ref)}>`;
  }
  return JSON.stringify(node);
}
