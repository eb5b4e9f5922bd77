import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { Construct } from 'constructs';
import { InfraConfigError } from '../errors.ts';

/** Properties of {@link ReportBucket}. */
export interface ReportBucketProps {
  /**
   * How long an overwritten or deleted report version is kept before S3 expires it.
   *
   * @default Duration.days(90)
   */
  readonly noncurrentVersionExpiration?: Duration | undefined;
  /**
   * How long server access log objects are kept.
   *
   * @default Duration.days(365)
   */
  readonly accessLogExpiration?: Duration | undefined;
}

/**
 * The bucket that holds discovery reports, campaign plans and campaign reports.
 *
 * Reports name identities, owners and fingerprints (never secret values), which is enough to
 * map an organisation's pipelines, so the bucket is private, KMS-encrypted with its own key,
 * TLS-only, versioned (an overwritten report can be recovered) and access-logged to a
 * separate bucket.
 */
export class ReportBucket extends Construct {
  /** The report bucket. Grant writers through {@link grantWriteReports}. */
  readonly bucket: s3.Bucket;
  /** The customer-managed key that encrypts report objects. */
  readonly key: kms.Key;
  /** Destination of the report bucket's server access logs. */
  readonly accessLogBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ReportBucketProps = {}) {
    super(scope, id);

    const noncurrentVersionExpiration = props.noncurrentVersionExpiration ?? Duration.days(90);
    const accessLogExpiration = props.accessLogExpiration ?? Duration.days(365);
    for (const [name, value] of [
      ['noncurrentVersionExpiration', noncurrentVersionExpiration],
      ['accessLogExpiration', accessLogExpiration],
    ] as const) {
      if (value.toDays({ integral: false }) < 1 || !Number.isInteger(value.toDays({ integral: false }))) {
        throw new InfraConfigError(
          `ReportBucket: ${name} must be a whole number of days, at least 1 (S3 lifecycle counts days), received ${value.toHumanString()}.`,
        );
      }
    }

    // Deliver access logs through a bucket policy scoped to this bucket instead of the legacy
    // LogDeliveryWrite ACL, so both buckets can keep ACLs disabled (BucketOwnerEnforced).
    // Set here, before any child exists, so the choice does not depend on the app's cdk.json.
    this.node.setContext(cxapi.S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY, true);

    this.accessLogBucket = new s3.Bucket(this, 'AccessLogs', {
      // S3 server access logging can only deliver to a bucket encrypted with SSE-S3.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: accessLogExpiration }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.key = new kms.Key(this, 'Key', {
      description: 'keywarden report bucket encryption',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      // One data key per bucket instead of per object: fewer KMS calls, same key control.
      bucketKeyEnabled: true,
      versioned: true,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // Cast only bridges aws-cdk-lib's declarations, not written for `exactOptionalPropertyTypes`.
      serverAccessLogsBucket: this.accessLogBucket as s3.IBucket,
      serverAccessLogsPrefix: 'report-bucket/',
      lifecycleRules: [
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration,
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /**
   * Lets `grantee` put report objects whose key starts with `prefix` (for example `discovery/`),
   * and nothing else: no read, no delete, no other prefix. The report key may be used only
   * through S3.
   */
  grantWriteReports(grantee: iam.IGrantable, prefix: string): iam.Grant {
    if (!/^[a-z0-9][a-z0-9-]*\/$/.test(prefix)) {
      throw new InfraConfigError(
        `ReportBucket.grantWriteReports: prefix must be lowercase letters, digits or '-' ending in '/', for example 'discovery/'; received '${prefix}'.`,
      );
    }
    const stack = Stack.of(this);
    const put = iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject'],
      resourceArns: [this.bucket.arnForObjects(`${prefix}*`)],
    });
    // With a bucket key, a PutObject needs only GenerateDataKey from the caller.
    const key = iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:GenerateDataKey'],
      resourceArns: [this.key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.${stack.urlSuffix}` } },
    });
    return put.combine(key);
  }
}
