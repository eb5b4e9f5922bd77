import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Discovery } from './constructs/discovery.ts';
import { ReportBucket } from './constructs/report-bucket.ts';
import { Revocation } from './constructs/revocation.ts';
import { Rotation } from './constructs/rotation.ts';
import { ServiceSecrets } from './constructs/service-secrets.ts';
import { StateStore } from './constructs/state-store.ts';

/** Properties of {@link KeywardenStack}; every setting has a safe default. */
export interface KeywardenStackProps extends StackProps {
  /** Vault/OpenBao address (`https://…`); empty or absent skips Vault discovery and rotation. */
  readonly vaultAddr?: string | undefined;
  /** IAM path whose users discovery inspects and rotation manages access keys of. @default '/' */
  readonly iamPathPrefix?: string | undefined;
  /** Name prefix of the Secrets Manager secrets discovery fingerprints and rotation writes. @default 'ci/' */
  readonly secretNamePrefix?: string | undefined;
  /** Discovery schedule expression. @default context `keywarden:discoverySchedule`, else `rate(6 hours)` */
  readonly discoverySchedule?: string | undefined;
  /** Scheduled rotation expression. @default context `keywarden:rotationSchedule`, else `rate(1 hour)` */
  readonly rotationSchedule?: string | undefined;
  /** Identities one scheduled rotation run rotates at once. @default 8 */
  readonly rotationConcurrency?: number | undefined;
  /** Days without use after which a credential is reported stale. @default 90 */
  readonly staleAfterDays?: number | undefined;
}

/**
 * keywarden in one account: the state table, the report bucket, keywarden's own secrets, the
 * scheduled discovery function, rotation (scheduled and Secrets Manager rotation, with alarms) and
 * the incident revocation state machine. Construct ids are public API: renaming one replaces the
 * resource (and the table and bucket are retained, not moved).
 */
export class KeywardenStack extends Stack {
  /** The state table and its key. */
  readonly stateStore: StateStore;
  /** The report bucket, its key and its access-log bucket. */
  readonly reportBucket: ReportBucket;
  /** The Vault token and fingerprint key secrets. */
  readonly secrets: ServiceSecrets;
  /** The scheduled discovery function. */
  readonly discovery: Discovery;
  /** Scheduled and Secrets Manager rotation, and the rotation alarms. */
  readonly rotation: Rotation;
  /** The incident revocation state machine and its three functions. */
  readonly revocation: Revocation;

  constructor(scope: Construct, id: string, props: KeywardenStackProps = {}) {
    super(scope, id, props);

    this.stateStore = new StateStore(this, 'StateStore');
    this.reportBucket = new ReportBucket(this, 'ReportBucket');
    this.secrets = new ServiceSecrets(this, 'ServiceSecrets');
    this.discovery = new Discovery(this, 'Discovery', {
      stateStore: this.stateStore,
      reportBucket: this.reportBucket,
      secrets: this.secrets,
      vaultAddr: props.vaultAddr,
      iamPathPrefix: props.iamPathPrefix,
      secretNamePrefix: props.secretNamePrefix,
      staleAfterDays: props.staleAfterDays,
      schedule: props.discoverySchedule,
    });
    this.rotation = new Rotation(this, 'Rotation', {
      stateStore: this.stateStore,
      secrets: this.secrets,
      vaultAddr: props.vaultAddr,
      iamPathPrefix: props.iamPathPrefix,
      secretNamePrefix: props.secretNamePrefix,
      schedule: props.rotationSchedule,
      concurrency: props.rotationConcurrency,
    });
    this.revocation = new Revocation(this, 'Revocation', {
      stateStore: this.stateStore,
      reportBucket: this.reportBucket,
      secrets: this.secrets,
      vaultAddr: props.vaultAddr,
      iamPathPrefix: props.iamPathPrefix,
      secretNamePrefix: props.secretNamePrefix,
    });

    // What an operator needs after deploy: where state and reports live, and which secret to set.
    new CfnOutput(this, 'StateTableName', { value: this.stateStore.table.tableName });
    new CfnOutput(this, 'ReportBucketName', { value: this.reportBucket.bucket.bucketName });
    new CfnOutput(this, 'VaultTokenSecretArn', {
      value: this.secrets.vaultToken.secretArn,
      description: 'Set the Vault/OpenBao token here after deploy (aws secretsmanager put-secret-value).',
    });
    new CfnOutput(this, 'DiscoveryFunctionName', { value: this.discovery.function.functionName });
    new CfnOutput(this, 'SecretRotationFunctionArn', {
      value: this.rotation.secretRotation.function.functionArn,
      description:
        'Rotation function for secrets under the prefix: aws secretsmanager rotate-secret --secret-id <secret> --rotation-lambda-arn <this>.',
    });
    new CfnOutput(this, 'RotationAlarmTopicArn', {
      value: this.rotation.alarmTopic.topicArn,
      description: 'Rotation alarms notify this topic: subscribe on-call to it (aws sns subscribe).',
    });
    new CfnOutput(this, 'RevocationStateMachineArn', {
      value: this.revocation.stateMachine.stateMachineArn,
      description:
        'Runs a planned campaign: aws stepfunctions start-execution --state-machine-arn <this> --input \'{"campaignId":"…"}\'.',
    });
  }
}
