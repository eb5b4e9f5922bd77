import { ArnFormat, Duration, Stack, Token } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { encryptedLogGroup } from '../encrypted-log-group.ts';
import { InfraConfigError } from '../errors.ts';
import type { KeywardenFunctionsProps } from '../function-props.ts';
import {
  DEFAULT_LOG_RETENTION,
  type KeywardenFunction,
  keywardenFunction,
  serviceEnvironment,
} from '../lambda-function.ts';
import { iam5ResourceFinding } from '../nag.ts';
import { validateVaultAddr } from '../settings.ts';
import type { BreakGlass } from './break-glass.ts';
import type { ReportBucket } from './report-bucket.ts';

/** Key prefix of per-grant reports in the report bucket; the API may write nowhere else there. */
export const GRANT_REPORT_PREFIX = 'grants/';

/** Default stage throttling when props do not say: enough for people and a CLI, not for a flood. */
export const DEFAULT_API_THROTTLE = { burstLimit: 50, rateLimit: 20 } as const;

/** How a route is authenticated. */
export type RouteAuth = 'iam' | 'slack-signature';

/** One route of the API: method, path and how its caller is authenticated. */
export interface ApiRoute {
  readonly method: apigwv2.HttpMethod;
  readonly path: string;
  readonly auth: RouteAuth;
}

const { GET, POST } = apigwv2.HttpMethod;

/**
 * Every route, in the order the handler documents them. `iam`: SigV4-signed by an AWS principal,
 * whose ARN the handler reads from `requestContext.authorizer.iam.userArn`. `slack-signature`:
 * no API Gateway authorization, because Slack cannot sign with SigV4; the handler verifies
 * Slack's `v0` HMAC signature (constant time, 5-minute window) before anything else.
 */
export const API_ROUTES: readonly ApiRoute[] = [
  { method: GET, path: '/roles', auth: 'iam' },
  { method: POST, path: '/grants', auth: 'iam' },
  { method: GET, path: '/grants', auth: 'iam' },
  { method: GET, path: '/grants/{grantId}', auth: 'iam' },
  { method: POST, path: '/grants/{grantId}/approve', auth: 'iam' },
  { method: POST, path: '/grants/{grantId}/deny', auth: 'iam' },
  { method: POST, path: '/grants/{grantId}/credentials', auth: 'iam' },
  { method: POST, path: '/grants/{grantId}/revoke', auth: 'iam' },
  { method: POST, path: '/grants/{grantId}/review', auth: 'iam' },
  { method: GET, path: '/grants/{grantId}/report', auth: 'iam' },
  { method: POST, path: '/campaigns', auth: 'iam' },
  { method: GET, path: '/campaigns/{campaignId}', auth: 'iam' },
  { method: POST, path: '/slack/commands', auth: 'slack-signature' },
  { method: POST, path: '/slack/interactions', auth: 'slack-signature' },
];

/** Properties of {@link Api}. */
export interface ApiProps extends KeywardenFunctionsProps {
  /** Where the API writes per-grant reports, under `grants/`. */
  readonly reportBucket: ReportBucket;
  /** Break-glass roles, the grant schedule group, its role and the grant-expiry function. */
  readonly breakGlass: BreakGlass;
  /** The revocation state machine Slack's `/revoke` starts. */
  readonly revocationStateMachine: sfn.IStateMachine;
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
 * keywarden's HTTP API (API Gateway HTTP API, payload format 2.0), one function behind every route
 * (`functions/handlers/api.ts`): break-glass grants and revocation campaigns for the CLI (SigV4,
 * IAM authorizer) and Slack's slash commands and buttons (Slack request signature, verified in the
 * handler). See {@link API_ROUTES}.
 *
 * The function's role may: use the state table; read keywarden's secrets; read, assume, tag and set
 * the SourceIdentity of roles under the break-glass path, and put or read the deny policy on them;
 * create and delete schedules of the grant group, passing the grant scheduler role to Scheduler
 * only; invoke itself (Slack's slow work runs after the 3-second acknowledgement); start the
 * revocation state machine; write grant reports under `grants/`. The default stage is throttled,
 * has no CORS, and logs every request as JSON to a KMS-encrypted log group.
 */
export class Api extends Construct {
  /** The API function, its role and its log group. */
  readonly handler: KeywardenFunction;
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
    const vaultAddr = validateVaultAddr('Api', props.vaultAddr);
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

    const { stateStore, reportBucket, secrets, breakGlass, revocationStateMachine } = props;
    const logRetention = props.logRetention ?? DEFAULT_LOG_RETENTION;

    this.handler = keywardenFunction(this, 'Handler', {
      handlerFile: 'api.ts',
      description: 'keywarden API: break-glass grants and revocation campaigns for the CLI (SigV4) and Slack',
      roleDescription:
        'keywarden API: requests, approves and issues break-glass grants (assumes roles under the break-glass path), starts revocation campaigns',
      memorySize: 512,
      // HTTP requests end at API Gateway's 30 seconds; Slack's slow work runs in an async
      // self-invocation, which posts `/revoke` progress for as long as this allows.
      timeout: Duration.minutes(5),
      logRetention,
      environment: {
        ...serviceEnvironment({ stateStore, secrets, vaultAddr }),
        reportBucket: reportBucket.bucket.bucketName,
        slackSigningSecretArn: secrets.slackSigningSecret.secretArn,
        grantScheduleGroup: breakGlass.scheduleGroupName,
        grantScheduleRoleArn: breakGlass.schedulerRole.roleArn,
        grantExpiryFunctionArn: breakGlass.expiry.function.functionArn,
        revocationStateMachineArn: revocationStateMachine.stateMachineArn,
      },
    });
    (this.handler.function.node.defaultChild as lambda.CfnFunction).functionName = functionName;
    // A deferred Slack job acts once: Lambda's automatic retries of an async invocation could
    // start a second campaign or post twice. A failed job says so in the channel instead.
    this.handler.function.configureAsyncInvoke({ retryAttempts: 0 });

    const role = this.handler.role;
    const rolesArn = breakGlass.breakglassRolesArn;
    const selfArn = stack.formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: functionName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

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
    // Early revocation: a deny on the grant's SourceIdentity (one policy per grant, put whole).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DenyGrantSessionsOfBreakglassRoles',
        actions: ['iam:PutRolePolicy'],
        resources: [rolesArn],
      }),
    );
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
    // Slack wants an answer within 3 seconds: the rest runs in an asynchronous invocation of itself.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'InvokeSelfForSlowSlackWork',
        actions: ['lambda:InvokeFunction'],
        resources: [selfArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StartRevocationCampaigns',
        actions: ['states:StartExecution'],
        resources: [revocationStateMachine.stateMachineArn],
      }),
    );
    secrets.grantRead(role, { slackSigningSecret: true });
    stateStore.grantReadWriteData(role);
    reportBucket.grantWriteReports(role, GRANT_REPORT_PREFIX);
    NagSuppressions.addResourceSuppressions(
      role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: `Break-glass role names come from the inventory, not known at deploy time. Assuming them (with SourceIdentity set to the grant id), checking they exist (GetRole) and the early-revocation deny (PutRolePolicy) are limited to roles under the break-glass path '${breakGlass.breakglassRolePath}' in this account; each role must also trust this function's role.`,
          appliesTo: [iam5ResourceFinding(this, rolesArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason: `Each grant's one-time expiry schedule is named after the grant, created at run time. CreateSchedule and DeleteSchedule are limited to the '${breakGlass.scheduleGroupName}' group, which holds nothing else; the schedules can only run as the grant scheduler role (iam:PassRole of that role only).`,
          appliesTo: [iam5ResourceFinding(this, breakGlass.grantSchedulesArn)],
        },
        {
          id: 'AwsSolutions-IAM5',
          reason: `Object keys hold grant ids, not known at deploy time. The API writes per-grant reports: s3:PutObject on '${GRANT_REPORT_PREFIX}*' of the report bucket only (no read, no delete, no other prefix), and kms:GenerateDataKey on the bucket key only through S3.`,
          appliesTo: [
            iam5ResourceFinding(this, reportBucket.bucket.arnForObjects(`${GRANT_REPORT_PREFIX}*`)),
          ],
        },
      ],
      true,
    );

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

    // One integration, one invoke permission for this API's routes (not one per route).
    const integration = new HttpLambdaIntegration('Handler', this.handler.function, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
      scopePermissionToRoute: false,
    });
    const iamAuthorizer = new HttpIamAuthorizer();
    const routes = new Map<string, apigwv2.HttpRoute>();
    for (const route of API_ROUTES) {
      const [created] = this.httpApi.addRoutes({
        path: route.path,
        methods: [route.method],
        integration,
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
              "Slack calls this route and cannot sign with SigV4 or present a JWT, so API Gateway authorization is off here by necessity. The handler authenticates every request before anything else: Slack's v0 HMAC-SHA256 signature over the raw body with the signing secret (constant-time comparison), a timestamp within 5 minutes, and retried deliveries de-duplicated.",
          },
        ]);
      }
    }
    this.routes = routes;
  }
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
