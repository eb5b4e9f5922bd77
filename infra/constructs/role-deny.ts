import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { KEYWARDEN_ENV } from '../../functions/handlers/env.ts';
import { AT_LEAST_ONCE, notifyOnAlarmAndOk } from '../alarm-topic.ts';
import { iamRolesArn } from '../arns.ts';
import { InfraConfigError } from '../errors.ts';
import { DEFAULT_LOG_RETENTION, type KeywardenFunction, keywardenFunction } from '../lambda-function.ts';
import { iam5ResourceFinding } from '../nag.ts';
import { validateIamPathPrefix } from '../settings.ts';

/** Properties of {@link RoleDeny}. */
export interface RoleDenyProps {
  /**
   * IAM paths of the roles the function may put deny policies on: the break-glass role path
   * and the revocation IAM path. Each starts and ends with `/`; the root path is refused.
   */
  readonly rolePaths: readonly string[];
  /** Where the function's errors alarm notifies. @default no alarm */
  readonly alarmTopic?: sns.ITopic | undefined;
  /** @default logs.RetentionDays.ONE_YEAR */
  readonly logRetention?: logs.RetentionDays | undefined;
}

/**
 * The only keywarden function that may put, read and delete inline policies on IAM roles
 * (`functions/handlers/role-deny.ts`): the deny on a break-glass grant's SourceIdentity, its
 * removal once the grant's sessions are dead, and an incident's deny on sessions issued before a
 * cut-off. Limited to roles under {@link rolePaths}, by its role and again by the handler, which
 * accepts only a validated request and builds each policy itself. Callers are given
 * `lambda:InvokeFunction` on it and its name ({@link grantInvoke}), nothing in IAM.
 */
export class RoleDeny extends Construct {
  /** The function, its role and its log group. */
  readonly handler: KeywardenFunction;
  /** The validated IAM paths. */
  readonly rolePaths: readonly string[];
  /** The function failed (a refusal counts): a grant or an incident's sessions may still be live. */
  readonly errorsAlarm: cloudwatch.Alarm | undefined;

  constructor(scope: Construct, id: string, props: RoleDenyProps) {
    super(scope, id);

    const paths = [...new Set(props.rolePaths.map((path) => validateIamPathPrefix('RoleDeny', path)))];
    if (paths.length === 0 || paths.includes('/')) {
      throw new InfraConfigError(
        `RoleDeny: rolePaths must name dedicated IAM paths such as '/breakglass/' and '/ci/', never '/' (every role of the account); received ${JSON.stringify(props.rolePaths)}.`,
      );
    }
    this.rolePaths = paths;
    const rolesArns = paths.map((path) => iamRolesArn(this, path));

    this.handler = keywardenFunction(this, 'Handler', {
      handlerFile: 'role-deny.ts',
      description: 'keywarden role deny: the only function that puts deny policies on IAM roles',
      roleDescription: `keywarden role deny: puts, reads and deletes inline deny policies on roles under ${paths.join(' and ')} only`,
      memorySize: 256,
      timeout: Duration.seconds(30),
      logRetention: props.logRetention ?? DEFAULT_LOG_RETENTION,
      environment: { roleDenyPaths: paths.join(',') },
    });
    this.handler.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DenyPoliciesOnRolesUnderPaths',
        actions: ['iam:PutRolePolicy', 'iam:GetRolePolicy', 'iam:DeleteRolePolicy'],
        resources: rolesArns,
      }),
    );
    NagSuppressions.addResourceSuppressions(
      this.handler.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: `Role names come from the inventory and the break-glass configuration, not known at deploy time. PutRolePolicy, GetRolePolicy and DeleteRolePolicy are limited to roles under ${paths.join(' and ')} in this account; the handler also refuses any other role and builds each deny policy itself from a validated request.`,
          appliesTo: rolesArns.map((arn) => iam5ResourceFinding(this, arn)),
        },
      ],
      true,
    );

    if (props.alarmTopic) {
      this.errorsAlarm = new cloudwatch.Alarm(this, 'ErrorsAlarm', {
        alarmName: `${Stack.of(this).stackName}-role-deny-errors`,
        alarmDescription:
          "keywarden: the role-deny function failed or refused a request in the last 5 minutes, so a break-glass grant's or an incident's sessions may not have been denied. The caller (API, grant expiry, sweeper or revoke-batch worker) saw the error and retries where it can; read this function's logs for the role and the reason.",
        metric: this.handler.function.metricErrors({
          statistic: cloudwatch.Stats.SUM,
          period: Duration.minutes(5),
        }),
        ...AT_LEAST_ONCE,
      });
      notifyOnAlarmAndOk(props.alarmTopic, [this.errorsAlarm]);
    } else {
      this.errorsAlarm = undefined;
    }
  }

  /**
   * Lets `caller` invoke the function (statement `InvokeRoleDeny`, this function's ARN only) and
   * tells it the function's name, so its deny policies go through here instead of IAM.
   */
  grantInvoke(caller: KeywardenFunction): void {
    caller.role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'InvokeRoleDeny',
        actions: ['lambda:InvokeFunction'],
        resources: [this.handler.function.functionArn],
      }),
    );
    caller.function.addEnvironment(KEYWARDEN_ENV.roleDenyFunctionArn, this.handler.function.functionArn);
  }
}
