import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { StateStore } from '../../infra/constructs/state-store.ts';
import { logicalIdOf, type SynthesizedKeywarden, synthesizeKeywarden } from './keywarden-fixture.ts';

describe('infra: state store', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;

  beforeAll(() => {
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
  });

  it('is one table keyed by pk/sk strings, billed per request, with the indexes gsi1 to gsi4 on gsiNpk/gsiNsk', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: Match.arrayWith([
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'gsi1pk', AttributeType: 'S' },
        { AttributeName: 'gsi1sk', AttributeType: 'S' },
      ]),
      // gsi1 grants and campaigns newest first; gsi2 grants by state, gsi3 by requester, gsi4 due.
      GlobalSecondaryIndexes: ['gsi1', 'gsi2', 'gsi3', 'gsi4'].map((index) => ({
        IndexName: index,
        KeySchema: [
          { AttributeName: `${index}pk`, KeyType: 'HASH' },
          { AttributeName: `${index}sk`, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      })),
    });
  });

  it('encrypts the table with its own customer-managed KMS key, rotated', () => {
    const keyId = logicalIdOf(synthesized.stack.stateStore.key);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: {
        SSEEnabled: true,
        SSEType: 'KMS',
        KMSMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
      },
    });
    expect(template.findResources('AWS::KMS::Key')[keyId]?.Properties.EnableKeyRotation).toBe(true);
  });

  it('keeps point-in-time recovery for the longest period, 35 days', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 35 },
    });
  });

  it('expires items through the expiresAt TTL attribute', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
  });

  it('refuses deletion and is retained, with its key, if the stack is deleted or the table replaced', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({ DeletionProtectionEnabled: true }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    const key = template.findResources('AWS::KMS::Key')[logicalIdOf(synthesized.stack.stateStore.key)];
    expect(key?.DeletionPolicy).toBe('Retain');
  });

  it('rejects a recovery period outside 1 to 35 days and names the value received', () => {
    const stack = new Stack(new App(), 'Bare');
    expect(() => new StateStore(stack, 'Zero', { recoveryPeriodDays: 0 })).toThrow(/received 0/);
    expect(() => new StateStore(stack, 'TooLong', { recoveryPeriodDays: 36 })).toThrow(
      /from 1 to 35, received 36/,
    );
    expect(() => new StateStore(stack, 'Fraction', { recoveryPeriodDays: 7.5 })).toThrow(/received 7.5/);
  });

  it('adds its indexes one deploy at a time when told to (CloudFormation creates one per update), and grants only those', () => {
    const app = new App({ context: { 'keywarden:stateIndexes': '2' } });
    const stack = new Stack(app, 'Upgrading');
    const store = new StateStore(stack, 'State');
    const [table] = Object.values(Template.fromStack(stack).findResources('AWS::DynamoDB::Table'));
    const indexes = (table?.Properties.GlobalSecondaryIndexes ?? []) as { IndexName: string }[];
    expect(indexes.map((i) => i.IndexName)).toEqual(['gsi1', 'gsi2']);
    expect(store.indexNames).toEqual(['gsi1', 'gsi2']);
    expect(() => new StateStore(new Stack(new App(), 'Bad'), 'S', { indexes: 5 })).toThrow(
      /from 1 to 4, received 5/,
    );
  });
});
