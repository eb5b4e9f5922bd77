import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { type FunctionEnvironmentSettings, functionEnvironment } from '../functions/handlers/env.ts';
import { handlerBundle, suppressPinnedRuntime } from './bundling.ts';
import type { ServiceSecrets } from './constructs/service-secrets.ts';
import type { StateStore } from './constructs/state-store.ts';

/** One keywarden Lambda function with its own execution role and log group. */
export interface KeywardenFunction {
  readonly function: NodejsFunction;
  /** The execution role; every permission on it is an explicit statement. */
  readonly role: iam.Role;
  /** The only log group the function may write to. */
  readonly logGroup: logs.LogGroup;
}

/** Properties of {@link keywardenFunction}: what each function says, the rest is shared. */
export interface KeywardenFunctionProps {
  /** The file under functions/handlers/. */
  readonly handlerFile: string;
  readonly description: string;
  readonly roleDescription: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  /** How long the function's logs are kept. */
  readonly logRetention: logs.RetentionDays;
  /** The settings the handler reads (functions/handlers/env.ts names their variables). */
  readonly environment: FunctionEnvironmentSettings;
  /** Powertools' `service` (the default dimension of its metrics). @default none set */
  readonly powertoolsServiceName?: string;
  /** Powertools' metrics namespace. @default none set */
  readonly metricsNamespace?: string;
  /** @default no reserved concurrency */
  readonly reservedConcurrentExecutions?: number;
  /** Where failed asynchronous invocations go. @default none */
  readonly deadLetterQueue?: sqs.IQueue;
}

/** How long a construct keeps its logs unless its props say otherwise. */
export const DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_YEAR;

/** What almost every function reads: the state table, the Vault address and keywarden's two service secrets. */
export interface ServiceSettings {
  readonly stateStore: StateStore;
  readonly secrets: ServiceSecrets;
  /** Validated Vault address, or `''` when Vault is not used. */
  readonly vaultAddr: string;
}

/** The environment settings for {@link ServiceSettings}. */
export const serviceEnvironment = ({
  stateStore,
  secrets,
  vaultAddr,
}: ServiceSettings): Required<
  Pick<FunctionEnvironmentSettings, 'table' | 'vaultAddr' | 'vaultTokenSecretArn' | 'fingerprintKeySecretArn'>
> => ({
  table: stateStore.table.tableName,
  vaultAddr,
  vaultTokenSecretArn: secrets.vaultToken.secretArn,
  fingerprintKeySecretArn: secrets.fingerprintKey.secretArn,
});

/** A function, its role and its log group under `scope/id`; the role may write only to that log group. */
export function keywardenFunction(
  scope: Construct,
  id: string,
  props: KeywardenFunctionProps,
): KeywardenFunction {
  return keywardenFunctionIn(new Construct(scope, id), props);
}

/**
 * As {@link keywardenFunction}, with `LogGroup`, `Role` and `Function` directly under `scope`:
 * for a construct that is one function (Discovery), whose construct ids are already deployed.
 */
export function keywardenFunctionIn(scope: Construct, props: KeywardenFunctionProps): KeywardenFunction {
  const logGroup = new logs.LogGroup(scope, 'LogGroup', {
    retention: props.logRetention,
    removalPolicy: RemovalPolicy.RETAIN,
  });

  // No managed policy (AWSLambdaBasicExecutionRole would allow writing to any log group):
  // every permission is an explicit statement.
  const role = new iam.Role(scope, 'Role', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: props.roleDescription,
  });
  iam.Grant.addToPrincipal({
    grantee: role,
    actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    resourceArns: [logGroup.logGroupArn],
  });

  const fn = new NodejsFunction(scope, 'Function', {
    ...handlerBundle(props.handlerFile),
    description: props.description,
    memorySize: props.memorySize,
    timeout: props.timeout,
    role,
    logGroup,
    environment: {
      ...functionEnvironment(props.environment),
      ...(props.metricsNamespace === undefined
        ? {}
        : { POWERTOOLS_METRICS_NAMESPACE: props.metricsNamespace }),
      ...(props.powertoolsServiceName === undefined
        ? {}
        : { POWERTOOLS_SERVICE_NAME: props.powertoolsServiceName }),
      // Stack traces point into the TypeScript sources (the bundle carries source maps).
      NODE_OPTIONS: '--enable-source-maps',
    },
    ...(props.reservedConcurrentExecutions === undefined
      ? {}
      : { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
    ...(props.deadLetterQueue === undefined ? {} : { deadLetterQueue: props.deadLetterQueue }),
    // A schedule may invoke an alias on the published version; old versions are not kept.
    currentVersionOptions: { removalPolicy: RemovalPolicy.DESTROY },
  });
  suppressPinnedRuntime(fn);

  return { function: fn, role, logGroup };
}
