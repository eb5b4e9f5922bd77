import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  BATCH_RETRY,
  batchConcurrency,
  REVOKE_BATCH_SIZE as SHARED_BATCH_SIZE,
  workerShare,
} from '../../functions/handlers/revocation-batching.ts';
import { AT_LEAST_ONCE, encryptedAlarmTopic, notifyOnAlarmAndOk } from '../alarm-topic.ts';
import { encryptedLogGroup } from '../encrypted-log-group.ts';
import { InfraConfigError } from '../errors.ts';
import {
  grantPrefixedSecretKeys,
  type PipelineCredentialsProps,
  pipelineScope,
  SECRET_VERSION_ACTIONS,
} from '../function-props.ts';
import { type KeywardenFunction, keywardenFunction } from '../lambda-function.ts';
import { iam5ResourceFinding } from '../nag.ts';
import type { ReportBucket } from './report-bucket.ts';

/** One provider service's budget for the whole account: revocations in flight, and turns started per second (an IAM key revocation, a Secrets Manager write, a Vault call: functions/adapters/rate-limits.ts). */
export interface ServiceRateLimit {
  readonly concurrency: number;
  readonly perSecond: number;
}

/** The account-wide revocation budget per provider service, shared by every worker of a campaign. */
export interface RevocationRateLimits {
  readonly iam: ServiceRateLimit;
  readonly secretsManager: ServiceRateLimit;
  readonly vault: ServiceRateLimit;
}

/**
 * The engine's defaults (functions/adapters/rate-limits.ts), as the account-wide budget:
 * IAM's unpublished per-API buckets, Secrets Manager's shared 50 writes per second, and room
 * for pipelines' own Vault logins.
 */
export const DEFAULT_REVOCATION_RATE_LIMITS: RevocationRateLimits = {
  iam: { concurrency: 4, perSecond: 5 },
  secretsManager: { concurrency: 16, perSecond: 40 },
  vault: { concurrency: 32, perSecond: 100 },
};

/** Targets one revoke-batch worker is handed at once (shared with the local runtime). */
export const REVOKE_BATCH_SIZE = SHARED_BATCH_SIZE;

/** Properties of {@link Revocation}. */
export interface RevocationProps extends PipelineCredentialsProps {
  /** Where the plan step writes each campaign's targets (`campaigns/`) and the report step its report (`reports/`). */
  readonly reportBucket: ReportBucket;
  /** The account-wide budget per provider service. @default {@link DEFAULT_REVOCATION_RATE_LIMITS} */
  readonly rateLimits?: RevocationRateLimits | undefined;
  /**
   * Revoke-batch workers at once (the Distributed Map's MaxConcurrency). Each worker gets an
   * equal share of {@link rateLimits}, so the total stays inside the account budget; at most the
   * smallest concurrency or per-second figure of the budget, so every worker gets at least one.
   *
   * @default the smallest concurrency of the budget (4 with the defaults)
   */
  readonly maxConcurrency?: number | undefined;
  /**
   * Where the revocation alarms notify. It must accept publishes from CloudWatch alarms
   * (a customer-managed KMS key, and a topic policy for them).
   *
   * @default a KMS-encrypted topic of its own, open to this stack's alarms only
   */
  readonly alarmTopic?: sns.ITopic | undefined;
}

/** A revocation function, its role and its log group. */
export type RevocationFunction = KeywardenFunction;

/**
 * Incident mass revocation on AWS: a Step Functions state machine started with
 * `{ "campaignId": "…" }` for a campaign the CLI or the API has planned and stored.
 *
 * plan (`functions/handlers/revocation-plan.ts`: pending target ids to
 * `s3://<report bucket>/campaigns/<id>/targets.json`) → Distributed Map reading that file,
 * {@link REVOKE_BATCH_SIZE} targets per batch, at most {@link maxConcurrency} batches at once
 * (`revocation-batch.ts`) → report (`revocation-report.ts`, to `reports/`). The steps' logic is
 * in `functions/handlers/revocation.ts`; one entry file per function keeps S3 out of the worker's
 * bundle and the providers' clients out of the plan's and the report's.
 *
 * Each function has its own least-privilege role; the state machine logs every event to a
 * KMS-encrypted log group and is traced with X-Ray.
 */
export class Revocation extends Construct {
  readonly plan: RevocationFunction;
  readonly revokeBatch: RevocationFunction;
  readonly report: RevocationFunction;
  readonly stateMachine: sfn.StateMachine;
  /** The state machine's execution log group, encrypted with {@link logKey}. */
  readonly logGroup: logs.LogGroup;
  readonly logKey: kms.Key;
  /** Revoke-batch workers at once. */
  readonly maxConcurrency: number;
  /** IAM path of the users and roles the worker revokes (the role-deny function is limited to it). */
  readonly iamPathPrefix: string;
  /** Where the revocation alarms notify; subscribe on-call to it. */
  readonly alarmTopic: sns.ITopic;
  /** The key that encrypts {@link alarmTopic}, when the construct made the topic. */
  readonly alarmKey: kms.Key | undefined;
  /** An execution failed: a batch failed for good, or the plan or report step failed. */
  readonly executionsFailedAlarm: cloudwatch.Alarm;
  /** An execution ran past the state machine's 24-hour timeout. */
  readonly executionsTimedOutAlarm: cloudwatch.Alarm;
  /** Someone stopped an execution. */
  readonly executionsAbortedAlarm: cloudwatch.Alarm;
  /** The revoke-batch worker threw (an unfinished batch, retried, counts too). */
  readonly workerErrorsAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: RevocationProps) {
    super(scope, id);

    // Validate everything before creating a child, so a bad value fails fast and bundling never starts.
    const pipeline = pipelineScope(this, 'Revocation', props, {
      defaultIamPathPrefix: '/ci/',
      // The worker deactivates and deletes access keys and puts deny policies on roles: at the root
      // path it could lock out every IAM user and role, humans and admins included.
      rootPathRefusal:
        "Revocation: iamPathPrefix '/' would let keywarden revoke the access keys and end the sessions of every IAM user and role, humans and admins included; put pipeline users and roles under a dedicated path such as '/ci/' and set keywarden:iamPathPrefix to it.",
    });
    const { iamPathPrefix, secretNamePrefix, logRetention, usersArn, secretsArn } = pipeline;
    this.iamPathPrefix = iamPathPrefix;
    const rateLimits = props.rateLimits ?? DEFAULT_REVOCATION_RATE_LIMITS;
    this.maxConcurrency = validateMaxConcurrency(rateLimits, props.maxConcurrency);

    const stack = Stack.of(this);
    const { stateStore, reportBucket, secrets } = props;

    // Each worker's share of the account budget (functions/adapters/rate-limits.ts reads these).
    const workerLimits = {
      iam: workerShare(rateLimits.iam, this.maxConcurrency),
      'secrets-manager': workerShare(rateLimits.secretsManager, this.maxConcurrency),
      vault: workerShare(rateLimits.vault, this.maxConcurrency),
    };

    const { table, ...settings } = pipeline.environment;
    const environment = { table, reportBucket: reportBucket.bucket.bucketName, ...settings };

    // Plan: reads the campaign, writes its target list under campaigns/.
    this.plan = keywardenFunction(this, 'Plan', {
      handlerFile: 'revocation-plan.ts',
      description: 'keywarden revocation plan: writes a campaign’s pending targets to the report bucket',
      roleDescription: 'keywarden revocation plan: reads campaigns, writes target lists under campaigns/',
      memorySize: 512,
      timeout: Duration.minutes(5),
      logRetention,
      environment,
    });
    stateStore.grantReadData(this.plan.role);
    secrets.grantRead(this.plan.role);
    reportBucket.grantWriteReports(this.plan.role, 'campaigns/');

    // Revoke-batch worker: everything a target revocation and a re-issue call.
    this.revokeBatch = keywardenFunction(this, 'RevokeBatch', {
      handlerFile: 'revocation-batch.ts',
      description: 'keywarden revoke batch: runs a campaign until its batch of targets is settled',
      roleDescription:
        'keywarden revoke batch: revokes access keys and role sessions under its IAM path, secrets under its prefix',
      memorySize: 1024,
      timeout: Duration.minutes(15),
      logRetention,
      environment: { ...environment, rateLimits: workerLimits },
    });
    const worker = this.revokeBatch.role;
    worker.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'RevokeAccessKeysUnderPath',
        actions: [
          'iam:UpdateAccessKey',
          'iam:DeleteAccessKey',
          'iam:ListAccessKeys',
          'iam:GetAccessKeyLastUsed',
          // Re-issue rotates: a new key, verified against the user's ARN.
          'iam:CreateAccessKey',
          'iam:GetUser',
        ],
        resources: [usersArn],
      }),
    );
    // Ending role sessions (a deny policy on sessions issued before the campaign) goes through the
    // role-deny function, which the stack lets the worker invoke: the worker holds no IAM policy write.
    worker.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'RevokePrefixedSecrets',
        actions: [...SECRET_VERSION_ACTIONS],
        resources: [secretsArn],
      }),
    );
    const secretKeys = grantPrefixedSecretKeys(this, worker, pipeline, {
      sid: 'UsePrefixedSecretKeys',
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
    });
    secrets.grantRead(worker);
    stateStore.grantReadWriteData(worker);
    NagSuppressions.addResourceSuppressions(
      worker,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: `IAM user names come from the inventory, not known at deploy time. Revoking (and re-issuing) access keys is allowed only for users under the configured IAM path '${iamPathPrefix}', in this account.`,
          appliesTo: [iam5ResourceFinding(this, usersArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason: `Pipeline secret names come from the inventory, not known at deploy time. Revocation and re-issue actions are limited to secrets named '${secretNamePrefix}*' in this account and region; no CreateSecret. Values are never logged or stored.`,
          appliesTo: [iam5ResourceFinding(this, secretsArn)],
        },
        secretKeys,
      ],
      true,
    );

    // Report: reads the campaign and the audit trail, writes the report under reports/.
    this.report = keywardenFunction(this, 'Report', {
      handlerFile: 'revocation-report.ts',
      description: 'keywarden revocation report: writes the post-incident report of a campaign',
      roleDescription:
        'keywarden revocation report: reads campaigns and audit, writes reports under reports/',
      memorySize: 1024,
      timeout: Duration.minutes(5),
      logRetention,
      environment,
    });
    // Read-write: the report's location is recorded on the campaign.
    stateStore.grantReadWriteData(this.report.role);
    secrets.grantRead(this.report.role);
    reportBucket.grantWriteReports(this.report.role, 'reports/');

    // The state machine.

    ({ key: this.logKey, logGroup: this.logGroup } = encryptedLogGroup(this, {
      logGroupId: 'LogGroup',
      keyDescription: 'keywarden revocation state machine log encryption',
      retention: logRetention,
    }));

    const plan = new tasks.LambdaInvoke(this, 'WriteTargets', {
      lambdaFunction: this.plan.function,
      payloadResponseOnly: true,
      resultPath: '$.plan',
    });
    const revokeBatch = new tasks.LambdaInvoke(this, 'RevokeBatchOfTargets', {
      lambdaFunction: this.revokeBatch.function,
      payloadResponseOnly: true,
    });
    // A worker that stopped before its Lambda timeout left its targets pending: run it again to resume.
    revokeBatch.addRetry({
      errors: [BATCH_RETRY.error],
      interval: Duration.seconds(BATCH_RETRY.intervalSeconds),
      maxAttempts: BATCH_RETRY.maxAttempts,
      backoffRate: BATCH_RETRY.backoffRate,
    });
    const revokeTargets = new sfn.DistributedMap(this, 'RevokeTargets', {
      // The bucket is named by the plan step's output, so no wildcard GetObject is added; the
      // state machine may read campaigns/* only (granted below).
      itemReader: new sfn.S3JsonItemReader({
        bucketNamePath: sfn.JsonPath.stringAt('$.plan.bucket'),
        key: sfn.JsonPath.stringAt('$.plan.key'),
      }),
      itemBatcher: new sfn.ItemBatcher({
        maxItemsPerBatch: REVOKE_BATCH_SIZE,
        // ItemBatcher renders BatchInput as given: the `.$` suffix makes it a path into the state input.
        // retryFailed comes from the plan step's output, so it is there whatever the execution's input.
        batchInput: { 'campaignId.$': '$.campaignId', 'retryFailed.$': '$.plan.retryFailed' },
      }),
      maxConcurrency: this.maxConcurrency,
      // Outcomes are checkpointed in the state table; the report reads them from there.
      resultPath: sfn.JsonPath.DISCARD,
    });
    revokeTargets.itemProcessor(revokeBatch);
    const report = new tasks.LambdaInvoke(this, 'WriteReport', {
      lambdaFunction: this.report.function,
      payload: sfn.TaskInput.fromObject({ campaignId: sfn.JsonPath.stringAt('$.campaignId') }),
      payloadResponseOnly: true,
      resultPath: '$.report',
    });

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: 'keywarden incident revocation: plan → revoke batches → report',
      definitionBody: sfn.DefinitionBody.fromChainable(plan.next(revokeTargets).next(report)),
      timeout: Duration.hours(24),
      tracingEnabled: true,
      // Events carry campaign and target ids only, never a secret value (DESIGN principle 5).
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    iam.Grant.addToPrincipal({
      grantee: this.stateMachine,
      actions: ['s3:GetObject'],
      resourceArns: [reportBucket.bucket.arnForObjects('campaigns/*')],
    });
    iam.Grant.addToPrincipal({
      grantee: this.stateMachine,
      actions: ['kms:Decrypt'],
      resourceArns: [reportBucket.key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.${stack.urlSuffix}` } },
    });

    // Alarms: a campaign that does not finish leaves credentials of an incident live.

    const alarmNamePrefix = `${stack.stackName}-revocation-`;
    if (props.alarmTopic) {
      this.alarmTopic = props.alarmTopic;
      this.alarmKey = undefined;
    } else {
      const { key, topic } = encryptedAlarmTopic(this, { what: 'revocation', alarmNamePrefix });
      this.alarmTopic = topic;
      this.alarmKey = key;
    }

    const fiveMinutes = Duration.minutes(5);
    const executions = (metric: cloudwatch.Metric) =>
      metric.with({ statistic: cloudwatch.Stats.SUM, period: fiveMinutes });
    const resume =
      'Credentials selected for the incident may still be live: run keywarden revoke status <campaign id> (the execution name) to see what is pending or failed, fix the cause, then keywarden revoke resume <campaign id> (runbooks/compromised-pipeline.md).';
    this.executionsFailedAlarm = new cloudwatch.Alarm(this, 'ExecutionsFailedAlarm', {
      alarmName: `${alarmNamePrefix}executions-failed`,
      alarmDescription: `keywarden: a revocation campaign's execution failed (a batch failed for good, or the plan or report step failed). Read the state machine's execution history and log group. ${resume}`,
      metric: executions(this.stateMachine.metricFailed()),
      ...AT_LEAST_ONCE,
    });
    this.executionsTimedOutAlarm = new cloudwatch.Alarm(this, 'ExecutionsTimedOutAlarm', {
      alarmName: `${alarmNamePrefix}executions-timed-out`,
      alarmDescription: `keywarden: a revocation campaign's execution ran past its 24-hour timeout. ${resume}`,
      metric: executions(this.stateMachine.metricTimedOut()),
      ...AT_LEAST_ONCE,
    });
    this.executionsAbortedAlarm = new cloudwatch.Alarm(this, 'ExecutionsAbortedAlarm', {
      alarmName: `${alarmNamePrefix}executions-aborted`,
      alarmDescription: `keywarden: someone stopped a revocation campaign's execution; CloudTrail's StopExecution event says who. ${resume}`,
      metric: executions(this.stateMachine.metricAborted()),
      ...AT_LEAST_ONCE,
    });
    this.workerErrorsAlarm = new cloudwatch.Alarm(this, 'WorkerErrorsAlarm', {
      alarmName: `${alarmNamePrefix}worker-errors`,
      alarmDescription:
        'keywarden: the revoke-batch worker failed (error, timeout or crash) in the last 5 minutes. An unfinished batch is retried by the state machine; read the worker’s logs for the error. If the campaign’s execution then fails, its own alarm follows.',
      metric: this.revokeBatch.function.metricErrors({
        statistic: cloudwatch.Stats.SUM,
        period: fiveMinutes,
      }),
      ...AT_LEAST_ONCE,
    });
    notifyOnAlarmAndOk(this.alarmTopic, [
      this.executionsFailedAlarm,
      this.executionsTimedOutAlarm,
      this.executionsAbortedAlarm,
      this.workerErrorsAlarm,
    ]);

    const campaignsArn = reportBucket.bucket.arnForObjects('campaigns/*');
    const writeReason = (prefix: string, what: string) =>
      `Object keys hold campaign ids, not known at deploy time. ${what} s3:PutObject on '${prefix}*' of the report bucket only (no read, no delete, no other prefix), and kms:GenerateDataKey on the bucket key only through S3.`;
    NagSuppressions.addResourceSuppressions(
      this.plan.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: writeReason('campaigns/', 'The plan step writes each campaign’s target list:'),
          appliesTo: [iam5ResourceFinding(this, campaignsArn)],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(
      this.report.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: writeReason('reports/', 'The report step writes the report of each incident and campaign:'),
          appliesTo: [iam5ResourceFinding(this, reportBucket.bucket.arnForObjects('reports/*'))],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(
      this.stateMachine.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Step Functions invokes each of the three revocation functions by a qualified ARN (function:<name>:<version or alias>); the grant names exactly those three functions, in this stack.',
          appliesTo: [this.plan, this.revokeBatch, this.report].map((f) =>
            iam5ResourceFinding(this, `${f.function.functionArn}:*`),
          ),
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'The Distributed Map reads the plan step’s target list: s3:GetObject on campaigns/* of the report bucket only, and kms:Decrypt on the bucket key only through S3.',
          appliesTo: [iam5ResourceFinding(this, campaignsArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'X-Ray tracing (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*) and CloudWatch Logs vended log delivery (logs:CreateLogDelivery and related) support no resource-level permissions: AWS requires Resource "*" for them. No other action is granted on "*".',
          appliesTo: ['Resource::*'],
        },
      ],
      true,
    );
    const childExecutions = this.stateMachine.node.tryFindChild('DistributedMapPolicy');
    if (childExecutions) {
      NagSuppressions.addResourceSuppressions(
        childExecutions,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'A Distributed Map runs each batch as a child execution of this state machine and must start, describe and stop them; execution names are generated at run time. The grant covers executions of this one state machine only.',
            appliesTo: [{ regex: '/^Resource::arn:.*:states:.*:execution:.*\\*$/' }],
          },
        ],
        true,
      );
    }
  }
}

/** Workers at once (functions/core/revocation-batching.ts), with a construct-named error. */
function validateMaxConcurrency(limits: RevocationRateLimits, value: number | undefined): number {
  try {
    return batchConcurrency([limits.iam, limits.secretsManager, limits.vault], value);
  } catch (error) {
    // batchConcurrency refuses a value with a ValidationError (core), which infra does not import.
    if (error instanceof Error && error.name === 'ValidationError') {
      throw new InfraConfigError(`Revocation: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
