import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { handlerBundle, suppressPinnedRuntime } from './bundling.ts';

/** One keywarden Lambda function with its own execution role and log group. */
export interface KeywardenFunction {
  readonly function: NodejsFunction;
  /** The execution role; every permission on it is an explicit statement. */
  readonly role: iam.Role;
  /** The only log group the function may write to. */
  readonly logGroup: logs.LogGroup;
}

export interface KeywardenFunctionOptions {
  /** The file under functions/handlers/. */
  readonly handlerFile: string;
  /** The export it runs; `handler` unless given. */
  readonly exportName?: string;
  readonly description: string;
  readonly roleDescription: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly logRetention: logs.RetentionDays;
  readonly environment: Record<string, string>;
  readonly reservedConcurrentExecutions?: number;
  readonly deadLetterQueue?: sqs.IQueue;
}

/** A function, its role and its log group under `scope/id`; the role may write only to that log group. */
export function keywardenFunction(
  scope: Construct,
  id: string,
  options: KeywardenFunctionOptions,
): KeywardenFunction {
  const parent = new Construct(scope, id);

  const logGroup = new logs.LogGroup(parent, 'LogGroup', {
    retention: options.logRetention,
    removalPolicy: RemovalPolicy.RETAIN,
  });

  // No managed policy (AWSLambdaBasicExecutionRole would allow writing to any log group):
  // every permission is an explicit statement.
  const role = new iam.Role(parent, 'Role', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: options.roleDescription,
  });
  iam.Grant.addToPrincipal({
    grantee: role,
    actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    resourceArns: [logGroup.logGroupArn],
  });

  const fn = new NodejsFunction(parent, 'Function', {
    ...handlerBundle(options.handlerFile),
    ...(options.exportName === undefined ? {} : { handler: options.exportName }),
    description: options.description,
    memorySize: options.memorySize,
    timeout: options.timeout,
    role,
    logGroup,
    environment: options.environment,
    ...(options.reservedConcurrentExecutions === undefined
      ? {}
      : { reservedConcurrentExecutions: options.reservedConcurrentExecutions }),
    ...(options.deadLetterQueue === undefined ? {} : { deadLetterQueue: options.deadLetterQueue }),
    // A schedule may invoke an alias on the published version; old versions are not kept.
    currentVersionOptions: { removalPolicy: RemovalPolicy.DESTROY },
  });
  suppressPinnedRuntime(fn);

  return { function: fn, role, logGroup };
}
