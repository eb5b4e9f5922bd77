import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { beforeAll, describe, expect, it } from 'vitest';
import { ReportBucket } from '../../infra/constructs/report-bucket.ts';
import { logicalIdOf, type SynthesizedKeywarden, synthesizeKeywarden } from './keywarden-fixture.ts';

const BLOCK_ALL = {
  BlockPublicAcls: true,
  BlockPublicPolicy: true,
  IgnorePublicAcls: true,
  RestrictPublicBuckets: true,
};

describe('infra: report bucket', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let bucketId: string;
  let logBucketId: string;

  beforeAll(() => {
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
    bucketId = logicalIdOf(synthesized.stack.reportBucket.bucket);
    logBucketId = logicalIdOf(synthesized.stack.reportBucket.accessLogBucket);
  });

  const bucket = (id: string) => template.findResources('AWS::S3::Bucket')[id];
  const policyOf = (id: string) =>
    Object.values(template.findResources('AWS::S3::BucketPolicy')).find(
      (policy) => JSON.stringify(policy.Properties.Bucket) === JSON.stringify({ Ref: id }),
    );

  it('encrypts reports with its own rotated KMS key, using a bucket key', () => {
    const keyId = logicalIdOf(synthesized.stack.reportBucket.key);
    expect(bucket(bucketId)?.Properties.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [
        {
          BucketKeyEnabled: true,
          ServerSideEncryptionByDefault: {
            SSEAlgorithm: 'aws:kms',
            KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] },
          },
        },
      ],
    });
    expect(template.findResources('AWS::KMS::Key')[keyId]?.Properties.EnableKeyRotation).toBe(true);
  });

  it('is versioned and expires noncurrent versions after 90 days', () => {
    const properties = bucket(bucketId)?.Properties;
    expect(properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(properties.LifecycleConfiguration.Rules).toContainEqual(
      expect.objectContaining({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 90 } }),
    );
  });

  it('blocks all public access and disables ACLs', () => {
    for (const id of [bucketId, logBucketId]) {
      expect(bucket(id)?.Properties.PublicAccessBlockConfiguration).toEqual(BLOCK_ALL);
      expect(bucket(id)?.Properties.OwnershipControls).toEqual({
        Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }],
      });
    }
  });

  it('denies every request not made over TLS 1.2 or later', () => {
    for (const id of [bucketId, logBucketId]) {
      const statements = policyOf(id)?.Properties.PolicyDocument.Statement;
      expect(statements).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
          expect.objectContaining({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
          }),
        ]),
      );
    }
  });

  it('writes server access logs to a separate SSE-S3 bucket, delivered by a policy scoped to the report bucket', () => {
    expect(bucket(bucketId)?.Properties.LoggingConfiguration).toEqual({
      DestinationBucketName: { Ref: logBucketId },
      LogFilePrefix: 'report-bucket/',
    });
    expect(bucket(logBucketId)?.Properties.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
    });
    // Bucket policy, not the legacy LogDeliveryWrite ACL.
    expect(bucket(logBucketId)?.Properties.AccessControl).toBeUndefined();
    expect(policyOf(logBucketId)?.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Principal: { Service: 'logging.s3.amazonaws.com' },
        Action: 's3:PutObject',
        Condition: {
          ArnLike: { 'aws:SourceArn': { 'Fn::GetAtt': [bucketId, 'Arn'] } },
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        },
      }),
    );
  });

  it('is retained, with its logs, when the stack is deleted', () => {
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(bucket(bucketId)?.DeletionPolicy).toBe('Retain');
    expect(bucket(logBucketId)?.DeletionPolicy).toBe('Retain');
  });
});

describe('infra: report bucket grants and validation', () => {
  it('lets a writer put objects under its prefix only, with the key usable only through S3', () => {
    const stack = new Stack(new App(), 'Bare');
    const reports = new ReportBucket(stack, 'Reports');
    const role = new iam.Role(stack, 'Writer', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    reports.grantWriteReports(role, 'campaigns/');
    const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
    expect(policy?.Properties.PolicyDocument.Statement).toEqual([
      {
        Action: 's3:PutObject',
        Effect: 'Allow',
        Resource: {
          'Fn::Join': ['', [{ 'Fn::GetAtt': [logicalIdOf(reports.bucket), 'Arn'] }, '/campaigns/*']],
        },
      },
      {
        Action: 'kms:GenerateDataKey',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [logicalIdOf(reports.key), 'Arn'] },
        Condition: {
          StringEquals: {
            'kms:ViaService': {
              'Fn::Join': ['', ['s3.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]],
            },
          },
        },
      },
    ]);
  });

  it('rejects a report prefix that is empty, lacks the trailing slash or contains a wildcard', () => {
    const stack = new Stack(new App(), 'Bare');
    const reports = new ReportBucket(stack, 'Reports');
    const role = new iam.Role(stack, 'Writer', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    expect(() => reports.grantWriteReports(role, '')).toThrow(/received ''/);
    expect(() => reports.grantWriteReports(role, 'discovery')).toThrow(/received 'discovery'/);
    expect(() => reports.grantWriteReports(role, '*/')).toThrow(/received '\*\/'/);
  });

  it('rejects lifecycle durations that are not whole days', () => {
    const stack = new Stack(new App(), 'Bare');
    expect(
      () => new ReportBucket(stack, 'Hours', { noncurrentVersionExpiration: Duration.hours(5) }),
    ).toThrow(/noncurrentVersionExpiration .* received 5 hours/);
    expect(() => new ReportBucket(stack, 'Zero', { accessLogExpiration: Duration.days(0) })).toThrow(
      /accessLogExpiration .* received 0 days/,
    );
  });
});
