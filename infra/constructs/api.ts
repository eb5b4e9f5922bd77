import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { functionErrorsAlarm, notifyOnAlarmAndOk } from '../alarm-topic.ts';
import { encryptedLogGroup } from '../encrypted-log-group.ts';
import { InfraConfigError } from '../errors.ts';
import { grantCampaignListing, type PipelineCredentialsProps, pipelineScope } from '../function-props.ts';
import {
  DEFAULT_LOG_RETENTION,
  type KeywardenFunction,
  keywardenFunction,
  serviceEnvironment,
} from '../lambda-function.ts';
import { iam5ResourceFinding } from '../nag.ts';
import type { BreakGlass } from './break-glass.ts';
import type { RoleDeny } from './role-deny.ts';

/** Default stage throttling when props do not say: enough for people and a CLI, not for a flood. */
export const DEFAULT_API_THROTTLE = { burstLimit: 50, rateLimit: 20 } as const;

/** How a route is authenticated. */
export type RouteAuth = 'iam' | 'slack-signature';

/** One route of the API: method, path, how its caller is authenticated, and which function serves it. */
export interface ApiRoute {
  readonly method: apigwv2.HttpMethod;
  readonly path: string;
  readonly auth: RouteAuth;
  /** The function API Gateway sends it to: {@link Api.grants}, {@link Api.campaigns} or {@link Api.slackIngress}. */
  readonly serves: 'grants' | 'campaigns' | 'slack';
}

const { GET, POST } = apigwv2.HttpMethod;

/**
 * Every route, in the order the router lists them (functions/api/routes.ts). `iam`: SigV4-signed by an AWS principal,
 * whose ARN the handler reads from `requestContext.authorizer.iam.userArn`. `slack-signature`:
 * no API Gateway authorization, because Slack cannot sign with SigV4; the handler verifies
 * Slack's `v0` HMAC signature (constant time, 5-minute window) before anything else.
 */
export const API_ROUTES: readonly ApiRoute[] = [
  { method: GET, path: '/roles', auth: 'iam', serves: 'grants' },
  { method: POST, path: '/grants', auth: 'iam', serves: 'grants' },
  { method: GET, path: '/grants', auth: 'iam', serves: 'grants' },
  { method: GET, path: '/grants/{grantId}', auth: 'iam', serves: 'grants' },
  { method: POST, path: '/grants/{grantId}/approve', auth: 'iam', serves: 'grants' },
  { method: POST, path: '/grants/{grantId}/deny', auth: 'iam', serves: 'grants' },
  { method: POST, path: '/grants/{grantId}/credentials', auth: 'iam', serves: 'grants' },
  { method: POST, path: '/grants/{grantId}/revoke', auth: 'iam', serves: 'grants' },
  { method: POST, path: '/grants/{grantId}/review', auth: 'iam', serves: 'grants' },
  { method: GET, path: '/grants/{grantId}/report', auth: 'iam', serves: 'grants' },
  { method: POST, path: '/campaigns', auth: 'iam', serves: 'campaigns' },
  { method: GET, path: '/campaigns/{campaignId}', auth: 'iam', serves: 'campaigns' },
  { method: POST, path: '/slack/commands', auth: 'slack-signature', serves: 'slack' },
  { method: POST, path: '/slack/interactions', auth: 'slack-signature', serves: 'slack' },
];

/**
 * Properties of {@link Api}. The IAM path and secret name prefix bound what the campaigns
 * function may list when it plans a campaign over what is live.
 */
export interface ApiProps extends PipelineCredentialsProps {
  /** Break-glass roles, the grant schedule group, its role and the grant-expiry function. */
  readonly breakGlass: BreakGlass;
  /** The revocation state machine `POST /campaigns` and Slack's `/revoke` start. */
  readonly revocationStateMachine: sfn.IStateMachine;
  /**
   * Where the campaigns function's errors alarm notifies (a campaign that cannot start is an
   * incident's: the revocation alarm topic, in the stack).
   *
   * @default the break-glass alarm topic, as the API's other alarms
   */
  readonly campaignsAlarmTopic?: sns.ITopic | undefined;
  /** The one function that puts deny policies on roles: early revocation of AWS grants goes through it. */
  readonly roleDeny: RoleDeny;
  /**
   * Requests per second the default stage accepts on average, whole number from 1 to 10000.
   *
   * @default 20
   */
  readonly throttleRateLimit?: number | undefined;
  /**
   * Requests the default stage accepts in one burst, whole number from 1 to 5000.
   *
   * @default 50
   */
  readonly throttleBurstLimit?: number | undefined;
}

/**
 * keywarden's HTTP API (API Gateway HTTP API, payload format 2.0). See {@link API_ROUTES}. Each
 * capability has its own function, given only the clients, settings and permissions its routes
 * use; API Gateway sends each route to its capability's function, whose router knows no other
 * route (a request for one is a 404 there). CI job credentials add their routes and function
 * (./ci-credentials.ts).
 *
 * - **Grants function** (`functions/handlers/api-grants.ts`, construct id `Handler`, named
 *   `<stack>-api`), behind `/roles` and `/grants…` (SigV4, IAM authorizer): break-glass grants
 *   for the CLI. Its role may use the state table; read keywarden's service secrets (the
 *   fingerprint key, the Vault token); read roles under the break-glass path and assume them with
 *   the grant's SourceIdentity; invoke the role-deny function (early revocation: the deny policy
 *   is put there, not here); create and delete schedules of the grant group, passing the grant
 *   scheduler role to Scheduler only. The per-grant report is an answer (JSON), not an object:
 *   no S3 access. No campaign, KMS or CI action.
 * - **Campaigns function** (`functions/handlers/api-campaigns.ts`), behind `/campaigns…` (SigV4):
 *   plans, stores and launches incident campaigns, and reads their progress. Its role may use the
 *   state table, read keywarden's service secrets (the Vault token lists Vault identities), list
 *   the access keys of users under the IAM path and the versions of secrets under the name prefix
 *   (metadata: planning revokes what is live, not only what was recorded) and start the
 *   revocation state machine; no STS, no Scheduler, no IAM write, no secret value outside its own.
 * - **Slack ingress** (`functions/handlers/slack-ingress.ts`), behind `/slack/*`: verifies Slack's
 *   signature, records what is answered at once, and hands slow work to the worker. Its role may
 *   use the state table, read the signing and fingerprint secrets, and invoke the worker: no STS,
 *   no IAM action.
 * - **Slack worker** (`functions/handlers/slack-worker.ts`): runs the deferred jobs (button
 *   decisions, `/revoke` and its progress thread), invoked asynchronously without retries; a job
 *   that fails goes to {@link deferredJobsQueue}, whose visible messages raise
 *   {@link deferredJobsAlarm} on the break-glass alarm topic (runbooks/break-glass.md re-drives them).
 *
 * The default stage is throttled, has no CORS, and logs every request as JSON to a
 * KMS-encrypted log group.
 */
export class Api extends Construct {
  /** The grants function (`/roles`, `/grants…`), its role and its log group. */
  readonly grants: KeywardenFunction;
  /** The campaigns function (`/campaigns…`), its role and its log group. */
  readonly campaigns: KeywardenFunction;
  /** The grants function failed (an error or timeout, not a 4xx) within 5 minutes. */
  readonly grantsErrorsAlarm: cloudwatch.Alarm;
  /** The campaigns function failed within 5 minutes. */
  readonly campaignsErrorsAlarm: cloudwatch.Alarm;
  /** The function behind `/slack/*`: verify, record, hand off. */
  readonly slackIngress: KeywardenFunction;
  /** Runs the deferred Slack jobs the ingress hands it. */
  readonly slackWorker: KeywardenFunction;
  /** Deferred Slack jobs whose invocation failed (encrypted, kept 14 days). */
  readonly deferredJobsQueue: sqs.Queue;
  /** A failed deferred job waits in {@link deferredJobsQueue}. */
  readonly deferredJobsAlarm: cloudwatch.Alarm;
  /** The HTTP API. */
  readonly httpApi: apigwv2.HttpApi;
  /** The `$default` stage: throttled and access-logged. */
  readonly stage: apigwv2.HttpStage;
  /** The routes, by `METHOD /path`. */
  readonly routes: ReadonlyMap<string, apigwv2.HttpRoute>;
  /** Access log group of the stage, encrypted with {@link logKey}. */
  readonly accessLogGroup: logs.LogGroup;
  readonly logKey: kms.Key;
  /** The invoke URL of the default stage, ending in `/`. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);

    // Validate everything before creating a child, so a bad value fails fast and bundling never starts.
    const pipeline = pipelineScope(this, 'Api', props, { defaultIamPathPrefix: '/ci/' });
    const { vaultAddr } = pipeline.environment;
    const rateLimit = validateLimit(
      'throttleRateLimit',
      props.throttleRateLimit,
      DEFAULT_API_THROTTLE.rateLimit,
      10_000,
    );
    const burstLimit = validateLimit(
      'throttleBurstLimit',
      props.throttleBurstLimit,
      DEFAULT_API_THROTTLE.burstLimit,
      5_000,
    );
    const stack = Stack.of(this);
    // A fixed name lets the role name the function's own ARN without referring to the function
    // (which depends on the role's policy: a circular reference).
    const functionName = `${stack.stackName}-api`;
    if (!Token.isUnresolved(stack.stackName) && !/^[A-Za-z0-9_-]{1,64}$/.test(functionName)) {
      throw new InfraConfigError(
        `Api: the function name '<stack name>-api' must be at most 64 letters, digits, '-' or '_'; received '${functionName}'. Use a shorter stack name.`,
      );
    }

    const { stateStore, secrets, breakGlass, revocationStateMachine, roleDeny } = props;
    const logRetention = props.logRetention ?? DEFAULT_LOG_RETENTION;

    // Grants: the construct id, name and role the API's one function had, so the break-glass
    // roles' trust policies (stack output ApiFunctionRoleArn) keep naming the role that assumes them.
    this.grants = keywardenFunction(this, 'Handler', {
      handlerFile: 'api-grants.ts',
      description: 'keywarden API: break-glass grants for the CLI (SigV4)',
      roleDescription:
        'keywarden API grants: requests, approves and issues break-glass grants (assumes roles under the break-glass path), schedules their expiry',
      memorySize: 512,
      // HTTP requests end at API Gateway's 30 seconds.
      timeout: Duration.seconds(30),
      logRetention,
      environment: {
        ...serviceEnvironment({ stateStore, secrets, vaultAddr }),
        grantScheduleGroup: breakGlass.scheduleGroupName,
        grantScheduleRoleArn: breakGlass.schedulerRole.roleArn,
        grantExpiryFunctionArn: breakGlass.expiry.function.functionArn,
      },
    });
    (this.grants.function.node.defaultChild as lambda.CfnFunction).functionName = functionName;

    const role = this.grants.role;
    const rolesArn = breakGlass.breakglassRolesArn;

    // Issuing an AWS grant: AssumeRole with SourceIdentity = the grant id.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'AssumeBreakglassRoles',
        actions: ['sts:AssumeRole', 'sts:SetSourceIdentity'],
        resources: [rolesArn],
      }),
    );
    // Before assuming, the issuer reads the role's MaxSessionDuration to refuse a grant longer
    // than the role allows with a clear message (functions/adapters/aws/sts-grant-issuer.ts).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadBreakglassRoles',
        actions: ['iam:GetRole'],
        resources: [rolesArn],
      }),
    );
    // Early revocation: a deny on the grant's SourceIdentity, put by the role-deny function.
    roleDeny.grantInvoke(this.grants);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ManageGrantSchedules',
        actions: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'],
        resources: [breakGlass.grantSchedulesArn],
      }),
    );
    // A schedule runs as the grant scheduler role, which may invoke the grant-expiry function only.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PassGrantSchedulerRole',
        actions: ['iam:PassRole'],
        resources: [breakGlass.schedulerRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
      }),
    );
    secrets.grantRead(role);
    stateStore.grantReadWriteData(role);
    NagSuppressions.addResourceSuppressions(
      role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: `Break-glass role names come from the inventory, not known at deploy time. Assuming them (with SourceIdentity set to the grant id) and checking they exist (GetRole, read-only) are limited to roles under the break-glass path '${breakGlass.breakglassRolePath}' in this account; each role must also trust this function's role. No IAM write: the early-revocation deny is put by the role-deny function.`,
          appliesTo: [iam5ResourceFinding(this, rolesArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason: `Each grant's one-time expiry schedule is named after the grant, created at run time. CreateSchedule and DeleteSchedule are limited to the '${breakGlass.scheduleGroupName}' group, which holds nothing else; the schedules can only run as the grant scheduler role (iam:PassRole of that role only).`,
          appliesTo: [iam5ResourceFinding(this, breakGlass.grantSchedulesArn)],
        },
      ],
      true,
    );

    // Campaigns: planned over the inventory and what is live, stored, started in the state machine.

    this.campaigns = keywardenFunction(this, 'Campaigns', {
      handlerFile: 'api-campaigns.ts',
      description: 'keywarden API: revocation campaigns for the CLI (SigV4)',
      roleDescription:
        'keywarden API campaigns: plans and stores revocation campaigns, starts the revocation state machine; no STS, no IAM write',
      memorySize: 512,
      timeout: Duration.seconds(30),
      logRetention,
      environment: {
        ...pipeline.environment,
        revocationStateMachineArn: revocationStateMachine.stateMachineArn,
      },
    });
    const campaignsRole = this.campaigns.role;
    campaignsRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StartRevocationCampaigns',
        actions: ['states:StartExecution'],
        resources: [revocationStateMachine.stateMachineArn],
      }),
    );
    // The Vault token too: planning lists the Vault identities a selector matches.
    secrets.grantRead(campaignsRole);
    stateStore.grantReadWriteData(campaignsRole);
    NagSuppressions.addResourceSuppressions(
      campaignsRole,
      grantCampaignListing(this, campaignsRole, pipeline, { planned: 'a campaign' }),
      true,
    );

    // A function error is a crash or a timeout (a refusal is an answer): the CLI got a 5xx.
    this.grantsErrorsAlarm = functionErrorsAlarm(this, 'GrantsErrorsAlarm', {
      fn: this.grants.function,
      name: `${stack.stackName}-api-grants-errors`,
      text: "keywarden: the API's grants function failed (crashed or timed out) in the last 5 minutes, so a break-glass request, approval, credential or revocation from the CLI may not have happened. Grants still end by their own TTL and expiry schedules; read the function's logs and fix the cause.",
      topic: breakGlass.alarmTopic,
    });
    this.campaignsErrorsAlarm = functionErrorsAlarm(this, 'CampaignsErrorsAlarm', {
      fn: this.campaigns.function,
      name: `${stack.stackName}-api-campaigns-errors`,
      text: "keywarden: the API's campaigns function failed (crashed or timed out) in the last 5 minutes, so a revocation campaign from the CLI may not have been planned or started. Read the function's logs, fix the cause and start the campaign again (keywarden revoke), or start it locally.",
      topic: props.campaignsAlarmTopic ?? breakGlass.alarmTopic,
    });

    // Slack: ingress verifies, records and hands off; the worker runs the deferred jobs.

    this.deferredJobsQueue = new sqs.Queue(this, 'DeferredJobsDeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    NagSuppressions.addResourceSuppressions(this.deferredJobsQueue, [
      {
        id: 'AwsSolutions-SQS3',
        reason:
          "This queue is itself a dead-letter queue: the on-failure destination of the Slack worker's asynchronous invocations (AWS::Lambda::EventInvokeConfig), which cdk-nag recognizes only as a queue's RedrivePolicy or a function's DeadLetterConfig. Nothing consumes it automatically; an alarm fires on its first message and the runbook re-drives it.",
      },
    ]);
    const workerEnvironment = {
      // The prefixes too: `/revoke` plans its campaign over what is live under them.
      ...pipeline.environment,
      slackSigningSecretArn: secrets.slackSigningSecret.secretArn,
      slackBotTokenSecretArn: secrets.slackBotToken.secretArn,
      grantScheduleGroup: breakGlass.scheduleGroupName,
      grantScheduleRoleArn: breakGlass.schedulerRole.roleArn,
      grantExpiryFunctionArn: breakGlass.expiry.function.functionArn,
      revocationStateMachineArn: revocationStateMachine.stateMachineArn,
    };
    this.slackWorker = keywardenFunction(this, 'SlackWorker', {
      handlerFile: 'slack-worker.ts',
      description:
        "keywarden Slack worker: decides grants from Slack's buttons, runs /revoke and posts its progress",
      roleDescription:
        'keywarden Slack worker: approves and denies grants, schedules their expiry, starts revocation campaigns',
      memorySize: 512,
      // Follows a `/revoke` campaign and posts its progress for as long as this allows.
      timeout: Duration.minutes(5),
      logRetention,
      environment: workerEnvironment,
    });
    // A deferred job acts once: Lambda's automatic retries could start a second campaign or post
    // twice. A job that fails anyway is kept in the dead-letter queue, with its payload, for the
    // runbook's re-drive.
    this.slackWorker.function.configureAsyncInvoke({
      retryAttempts: 0,
      onFailure: new destinations.SqsDestination(this.deferredJobsQueue),
    });
    const worker = this.slackWorker.role;
    worker.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ScheduleGrantExpiry',
        actions: ['scheduler:CreateSchedule'],
        resources: [breakGlass.grantSchedulesArn],
      }),
    );
    worker.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PassGrantSchedulerRole',
        actions: ['iam:PassRole'],
        resources: [breakGlass.schedulerRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
      }),
    );
    worker.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StartRevocationCampaigns',
        actions: ['states:StartExecution'],
        resources: [revocationStateMachine.stateMachineArn],
      }),
    );
    secrets.grantRead(worker, { slackSigningSecret: true, slackBotToken: true });
    stateStore.grantReadWriteData(worker);
    NagSuppressions.addResourceSuppressions(
      worker,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: `An approved grant's one-time expiry schedule is named after the grant, created at run time. CreateSchedule is limited to the '${breakGlass.scheduleGroupName}' group, which holds nothing else; the schedules can only run as the grant scheduler role (iam:PassRole of that role only).`,
          appliesTo: [iam5ResourceFinding(this, breakGlass.grantSchedulesArn)],
        },
        ...grantCampaignListing(this, worker, pipeline, { planned: "a Slack `/revoke`'s campaign" }),
      ],
      true,
    );

    this.slackIngress = keywardenFunction(this, 'SlackIngress', {
      handlerFile: 'slack-ingress.ts',
      description:
        "keywarden Slack ingress: verifies Slack's signature, records, hands slow work to the worker",
      roleDescription:
        'keywarden Slack ingress: verifies Slack requests, records grant requests and deliveries, invokes the Slack worker; no STS, no IAM',
      memorySize: 256,
      // Slack waits 3 seconds; anything slower is the worker's.
      timeout: Duration.seconds(10),
      logRetention,
      environment: {
        table: stateStore.table.tableName,
        fingerprintKeySecretArn: secrets.fingerprintKey.secretArn,
        slackSigningSecretArn: secrets.slackSigningSecret.secretArn,
        slackWorkerFunctionArn: this.slackWorker.function.functionArn,
      },
    });
    const ingress = this.slackIngress.role;
    ingress.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'HandOffToSlackWorker',
        actions: ['lambda:InvokeFunction'],
        resources: [this.slackWorker.function.functionArn],
      }),
    );
    secrets.grantRead(ingress, { vaultToken: false, slackSigningSecret: true });
    stateStore.grantReadWriteData(ingress);

    this.deferredJobsAlarm = new cloudwatch.Alarm(this, 'DeferredJobsDeadLetterAlarm', {
      alarmName: `${stack.stackName}-slack-deferred-jobs-failed`,
      alarmDescription:
        "keywarden: a deferred Slack job (a button's approve or deny, or a /revoke) failed and waits in the deferred-jobs dead-letter queue; the approval or revocation it carried may not have happened. Read the message, fix the cause and re-drive it (runbooks/break-glass.md, 'Deferred Slack jobs').",
      metric: this.deferredJobsQueue.metricApproximateNumberOfMessagesVisible({
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(5),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    notifyOnAlarmAndOk(breakGlass.alarmTopic, [this.deferredJobsAlarm]);

    // Access logs: who called which route, never bodies or headers (a Slack signature, a token).

    ({ key: this.logKey, logGroup: this.accessLogGroup } = encryptedLogGroup(this, {
      logGroupId: 'AccessLogs',
      keyDescription: 'keywarden API access log encryption',
      retention: logRetention,
    }));

    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: `${stack.stackName}-api`,
      description:
        'keywarden: break-glass grants and revocation campaigns (CLI with SigV4, Slack with its signature)',
      // The stage below carries throttling and access logs, which the default stage cannot.
      createDefaultStage: false,
      // No corsPreflight: no browser calls this API.
    });
    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit, burstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: apigateway.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            requestTime: '$context.requestTime',
            sourceIp: '$context.identity.sourceIp',
            userAgent: '$context.identity.userAgent',
            caller: '$context.identity.userArn',
            routeKey: '$context.routeKey',
            status: '$context.status',
            responseLength: '$context.responseLength',
            integrationStatus: '$context.integrationStatus',
            integrationError: '$context.integrationErrorMessage',
            authorizerError: '$context.authorizer.error',
          }),
        ),
      },
    });
    this.url = this.stage.url;

    // One integration per function, one invoke permission each for this API's routes (not one per route).
    const integrations: Record<ApiRoute['serves'], HttpLambdaIntegration> = {
      grants: apiIntegration('Handler', this.grants),
      campaigns: apiIntegration('Campaigns', this.campaigns),
      slack: apiIntegration('SlackIngress', this.slackIngress),
    };
    const iamAuthorizer = new HttpIamAuthorizer();
    const routes = new Map<string, apigwv2.HttpRoute>();
    for (const route of API_ROUTES) {
      const [created] = this.httpApi.addRoutes({
        path: route.path,
        methods: [route.method],
        integration: integrations[route.serves],
        ...(route.auth === 'iam' ? { authorizer: iamAuthorizer } : {}),
      });
      if (created === undefined)
        throw new Error(`Api: no route was created for ${route.method} ${route.path}`);
      routes.set(`${route.method} ${route.path}`, created);
      if (route.auth === 'slack-signature') {
        NagSuppressions.addResourceSuppressions(created, [
          {
            id: 'AwsSolutions-APIG4',
            reason:
              "Slack calls this route and cannot sign with SigV4 or present a JWT, so API Gateway authorization is off here by necessity. The Slack ingress function authenticates every request before anything else: Slack's v0 HMAC-SHA256 signature over the raw body with the signing secret (constant-time comparison), a timestamp within 5 minutes, and retried deliveries de-duplicated. Its role holds no STS or IAM action.",
          },
        ]);
      }
    }
    this.routes = routes;
  }
}

/**
 * The integration of one of the API's functions: payload format 2.0, one invoke permission for
 * every route of this API it serves (not one per route). Other constructs adding routes make
 * their own (./ci-credentials.ts).
 */
export function apiIntegration(id: string, fn: KeywardenFunction): HttpLambdaIntegration {
  return new HttpLambdaIntegration(id, fn.function, {
    payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
    scopePermissionToRoute: false,
  });
}

function validateLimit(name: string, value: number | undefined, fallback: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > max) {
    throw new InfraConfigError(
      `Api: ${name} must be a whole number from 1 to ${max} (API Gateway's account ceiling), so the stage is throttled; received ${String(value)}.`,
    );
  }
  return chosen;
}
