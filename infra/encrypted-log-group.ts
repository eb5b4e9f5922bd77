import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

/** A log group with its own key, as {@link encryptedLogGroup} builds it. */
export interface EncryptedLogGroup {
  readonly key: kms.Key;
  readonly logGroup: logs.LogGroup;
}

/** Properties of {@link encryptedLogGroup}. */
export interface EncryptedLogGroupProps {
  /** Construct id of the log group under `scope` (the key is always `LogKey`). */
  readonly logGroupId: string;
  /** The key's description, e.g. `'keywarden API access log encryption'`. */
  readonly keyDescription: string;
  readonly retention: logs.RetentionDays;
}

/**
 * A log group encrypted with a customer-managed key of its own (rotated yearly), as `LogKey` and
 * `props.logGroupId` under `scope`; both are kept when the stack is deleted. CloudWatch Logs may
 * use the key for this account's log groups only.
 */
export function encryptedLogGroup(scope: Construct, props: EncryptedLogGroupProps): EncryptedLogGroup {
  const stack = Stack.of(scope);
  const key = new kms.Key(scope, 'LogKey', {
    description: props.keyDescription,
    enableKeyRotation: true,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const logGroup = new logs.LogGroup(scope, props.logGroupId, {
    retention: props.retention,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  // CloudWatch Logs encrypts with the key only for this account's log groups.
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'AllowCloudWatchLogsOfThisAccount',
      principals: [new iam.ServicePrincipal(`logs.${stack.region}.${stack.urlSuffix}`)],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
      conditions: {
        ArnLike: {
          'kms:EncryptionContext:aws:logs:arn': `arn:${stack.partition}:logs:${stack.region}:${stack.account}:log-group:*`,
        },
      },
    }),
  );
  return { key, logGroup };
}
