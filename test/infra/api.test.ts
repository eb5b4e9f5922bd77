import type { Stack } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { API_ROUTES, Api, type ApiProps } from '../../infra/constructs/api.ts';
import { BreakGlass } from '../../infra/constructs/break-glass.ts';
import { flattenCfnValue } from '../../infra/nag.ts';
import { API_ROUTE_KEYS, SIGV4_ROUTE_KEYS, SLACK_ROUTE_KEYS } from '../support/api-route-keys.ts';
import {
  ACCOUNT,
  ARNS,
  allowStatementsOfRole,
  awsSolutionsFindingsUnder,
  BUNDLED_HANDLER,
  bareKeywarden,
  expectOnlyScopedActionsOf,
  type FlatStatement,
  logicalIdOf,
  PARTITION,
  REGION,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  serviceVariables,
  synthesizeKeywarden,
  tableAndIndexArns,
} from './keywarden-fixture.ts';

describe('infra: api', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let api: Api;
  let statements: FlatStatement[];

  beforeAll(() => {
    synthesized = synthesizeKeywarden();
    template = synthesized.template;
    api = synthesized.stack.api;
    statements = allowStatementsOfRole(template, logicalIdOf(api.handler.role));
  });

  const functionProperties = () =>
    resourceOf(template, 'AWS::Lambda::Function', api.handler.function)?.Properties;

  describe('routes', () => {
    const routes = () =>
      Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map(
        (route) => route.Properties as { RouteKey: string; AuthorizationType?: string; Target: unknown },
      );

    it('are exactly the documented ones, each sent to the one API function', () => {
      expect(
        routes()
          .map((r) => r.RouteKey)
          .sort(),
      ).toEqual(API_ROUTE_KEYS);
      expect(API_ROUTES).toHaveLength(14);
      const integrations = Object.values(template.findResources('AWS::ApiGatewayV2::Integration'));
      expect(integrations).toHaveLength(1);
      expect(integrations[0]?.Properties).toMatchObject({
        IntegrationType: 'AWS_PROXY',
        PayloadFormatVersion: '2.0',
        IntegrationUri: { 'Fn::GetAtt': [logicalIdOf(api.handler.function), 'Arn'] },
      });
    });

    it('require SigV4 (the IAM authorizer) for every CLI route', () => {
      for (const route of routes().filter((r) => SIGV4_ROUTE_KEYS.includes(r.RouteKey))) {
        expect({ key: route.RouteKey, auth: route.AuthorizationType }).toEqual({
          key: route.RouteKey,
          auth: 'AWS_IAM',
        });
      }
    });

    it('leave the two Slack routes to the handler’s signature check (no API Gateway authorization)', () => {
      for (const route of routes().filter((r) => SLACK_ROUTE_KEYS.includes(r.RouteKey))) {
        expect({ key: route.RouteKey, auth: route.AuthorizationType ?? 'NONE' }).toEqual({
          key: route.RouteKey,
          auth: 'NONE',
        });
      }
    });

    it('let API Gateway invoke the function once, for any route of this API only', () => {
      const permissions = Object.values(template.findResources('AWS::Lambda::Permission')).filter(
        (p) =>
          JSON.stringify(p.Properties.FunctionName) ===
          JSON.stringify({ 'Fn::GetAtt': [logicalIdOf(api.handler.function), 'Arn'] }),
      );
      expect(permissions).toHaveLength(1);
      expect(permissions[0]?.Properties).toMatchObject({
        Action: 'lambda:InvokeFunction',
        Principal: 'apigateway.amazonaws.com',
      });
      expect(flattenCfnValue(permissions[0]?.Properties.SourceArn)).toBe(
        `arn:${PARTITION}:execute-api:${REGION}:${ACCOUNT}:<${logicalIdOf(api.httpApi)}>/*/*/*`,
      );
    });

    it('answer no CORS preflight: no browser calls this API', () => {
      const httpApi = resourceOf(template, 'AWS::ApiGatewayV2::Api', api.httpApi);
      expect(httpApi?.Properties).toMatchObject({ ProtocolType: 'HTTP' });
      expect(httpApi?.Properties.CorsConfiguration).toBeUndefined();
    });
  });

  describe('default stage', () => {
    const stage = () => resourceOf(template, 'AWS::ApiGatewayV2::Stage', api.stage)?.Properties;

    it('is the auto-deployed $default stage, throttled to 20 requests a second in bursts of 50', () => {
      expect(stage()).toMatchObject({
        StageName: '$default',
        AutoDeploy: true,
        DefaultRouteSettings: { ThrottlingRateLimit: 20, ThrottlingBurstLimit: 50 },
      });
    });

    it('logs each request as JSON — who, which route, what status — and never a header or body', () => {
      const settings = stage()?.AccessLogSettings as { DestinationArn: unknown; Format: string };
      expect(settings.DestinationArn).toEqual({ 'Fn::GetAtt': [logicalIdOf(api.accessLogGroup), 'Arn'] });
      const format = JSON.parse(settings.Format) as Record<string, string>;
      expect(format).toMatchObject({
        requestId: '$context.requestId',
        caller: '$context.identity.userArn',
        routeKey: '$context.routeKey',
        status: '$context.status',
      });
      expect(Object.values(format).filter((v) => /header|body|authorization/i.test(v))).toEqual([]);
    });

    it('writes access logs to a log group encrypted with its own rotated key', () => {
      const group = resourceOf(template, 'AWS::Logs::LogGroup', api.accessLogGroup);
      expect(group?.Properties.KmsKeyId).toEqual({ 'Fn::GetAtt': [logicalIdOf(api.logKey), 'Arn'] });
      expect(resourceOf(template, 'AWS::KMS::Key', api.logKey)?.Properties.EnableKeyRotation).toBe(true);
    });
  });

  describe('function', () => {
    it('runs the ESM bundle of functions/handlers/api.ts on nodejs22.x, arm64, under a name of its own', () => {
      expect(functionProperties()).toMatchObject({
        FunctionName: 'Keywarden-api',
        ...BUNDLED_HANDLER,
      });
    });

    it('receives the environment the handler reads', () => {
      const { stack } = synthesized;
      expect(functionProperties()?.Environment.Variables).toEqual({
        ...serviceVariables(stack),
        KEYWARDEN_REPORT_BUCKET: { Ref: logicalIdOf(stack.reportBucket.bucket) },
        KEYWARDEN_SLACK_SIGNING_SECRET_ARN: { Ref: logicalIdOf(stack.secrets.slackSigningSecret) },
        KEYWARDEN_GRANT_SCHEDULE_GROUP: 'keywarden-grants',
        KEYWARDEN_GRANT_SCHEDULE_ROLE_ARN: {
          'Fn::GetAtt': [logicalIdOf(stack.breakGlass.schedulerRole), 'Arn'],
        },
        KEYWARDEN_GRANT_EXPIRY_FUNCTION_ARN: {
          'Fn::GetAtt': [logicalIdOf(stack.breakGlass.expiry.function), 'Arn'],
        },
        KEYWARDEN_REVOCATION_STATE_MACHINE_ARN: { Ref: logicalIdOf(stack.revocation.stateMachine) },
        NODE_OPTIONS: '--enable-source-maps',
      });
    });
  });

  describe('role', () => {
    const only = (sid: string) => {
      const found = statements.filter((s) => s.sid === sid);
      expect(found).toHaveLength(1);
      return found[0];
    };

    it('reads and assumes (with SourceIdentity) only roles under /breakglass/, and tags no session', () => {
      expect(only('AssumeBreakglassRoles')).toMatchObject({
        actions: ['sts:AssumeRole', 'sts:SetSourceIdentity'],
        resources: [ARNS.breakglassRoles],
        condition: undefined,
      });
      for (const action of ['sts:AssumeRole', 'sts:SetSourceIdentity', 'iam:GetRole']) {
        expect(resourcesAllowedFor(statements, action)).toEqual([ARNS.breakglassRoles]);
      }
      expect(resourcesAllowedFor(statements, 'sts:TagSession')).toEqual([]);
    });

    it('puts the early-revocation deny only on those roles, and never removes one', () => {
      expect(
        resourcesAllowedFor(
          statements.filter((st) => st.sid === 'DenyGrantSessionsOfBreakglassRoles'),
          'iam:PutRolePolicy',
        ),
      ).toEqual([ARNS.breakglassRoles]);
      expect(resourcesAllowedFor(statements, 'iam:GetRolePolicy')).toEqual([]);
      expect(resourcesAllowedFor(statements, 'iam:DeleteRolePolicy')).toEqual([]);
    });

    it('runs a deferred Slack job once: no automatic retry of the async invocation', () => {
      const configs = Object.values(synthesized.template.findResources('AWS::Lambda::EventInvokeConfig'));
      expect(
        configs.map(
          (c) => (c as { Properties: { MaximumRetryAttempts: number } }).Properties.MaximumRetryAttempts,
        ),
      ).toEqual([0]);
    });

    it('creates and deletes schedules of the grant group only', () => {
      expect(only('ManageGrantSchedules')).toMatchObject({
        actions: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'],
        resources: [ARNS.grantSchedules],
      });
    });

    it('passes the grant scheduler role, to Scheduler only, and no other role', () => {
      expect(only('PassGrantSchedulerRole')).toEqual({
        sid: 'PassGrantSchedulerRole',
        actions: ['iam:PassRole'],
        resources: [`<${logicalIdOf(synthesized.stack.breakGlass.schedulerRole)}.Arn>`],
        condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
      });
      expect(resourcesAllowedFor(statements, 'iam:PassRole')).toHaveLength(1);
    });

    it('invokes itself (Slack’s slow work) and no other function', () => {
      expect(resourcesAllowedFor(statements, 'lambda:InvokeFunction')).toEqual([
        `arn:${PARTITION}:lambda:${REGION}:${ACCOUNT}:function:Keywarden-api`,
      ]);
    });

    it('starts the revocation state machine only', () => {
      expect(resourcesAllowedFor(statements, 'states:StartExecution')).toEqual([
        `<${logicalIdOf(synthesized.stack.revocation.stateMachine)}>`,
      ]);
    });

    it('reads the three service secrets, the Slack signing secret among them', () => {
      const { secrets } = synthesized.stack;
      expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue').sort()).toEqual(
        [secrets.vaultToken, secrets.fingerprintKey, secrets.slackSigningSecret]
          .map((secret) => `<${logicalIdOf(secret)}>`)
          .sort(),
      );
    });

    it('writes grant reports under grants/ of the report bucket, and reads nothing there', () => {
      const bucket = `<${logicalIdOf(synthesized.stack.reportBucket.bucket)}.Arn>`;
      expect(resourcesAllowedFor(statements, 's3:PutObject')).toEqual([`${bucket}/grants/*`]);
      expect(resourcesAllowedFor(statements, 's3:GetObject')).toEqual([]);
    });

    it('reads and writes the state table and its gsi1 index only', () => {
      expect(resourcesAllowedFor(statements, 'dynamodb:PutItem')).toEqual(
        tableAndIndexArns(synthesized.stack),
      );
    });

    it('grants no wildcard action, no "*" resource, and no service beyond these', () => {
      expectOnlyScopedActionsOf(statements, [
        'dynamodb',
        'iam',
        'kms',
        'lambda',
        'logs',
        's3',
        'scheduler',
        'secretsmanager',
        'states',
        'sts',
      ]);
    });
  });

  it('outputs the API URL, the function role break-glass roles must trust, and the Slack signing secret', () => {
    const outputs = template.toJSON().Outputs;
    expect(flattenCfnValue(outputs.ApiUrl.Value)).toBe(
      `https://<${logicalIdOf(api.httpApi)}>.execute-api.<AWS::Region>.<AWS::URLSuffix>/`,
    );
    expect(outputs.ApiFunctionRoleArn.Value).toEqual({
      'Fn::GetAtt': [logicalIdOf(api.handler.role), 'Arn'],
    });
    expect(outputs.ApiFunctionRoleArn.Description).toMatch(
      /Break-glass roles \(under \/breakglass\/\) must trust/,
    );
    expect(outputs.SlackSigningSecretArn.Value).toEqual({
      Ref: logicalIdOf(synthesized.stack.secrets.slackSigningSecret),
    });
  });

  it('Compliance: no unsuppressed AwsSolutions finding on the API resources', () => {
    expect(awsSolutionsFindingsUnder(synthesized.stack, ['/Api/', '/ServiceSecrets/'])).toEqual([]);
  });
});

describe('infra: api validation', () => {
  // Api throws before creating a child; its BreakGlass dependency is built once, unbundled.
  let base: Omit<ApiProps, 'revocationStateMachine'> & { stack: Stack };

  beforeAll(() => {
    const { stack, stateStore, secrets, reportBucket } = bareKeywarden();
    base = {
      stack,
      stateStore,
      secrets,
      reportBucket,
      breakGlass: new BreakGlass(stack, 'BreakGlass', { stateStore, secrets }),
    };
  });

  const build = (props: Partial<ApiProps>) => () => {
    const { stack, ...rest } = base;
    return new Api(stack, `Api${Math.random().toString(36).slice(2)}`, {
      ...rest,
      revocationStateMachine: {
        stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:x',
      } as ApiProps['revocationStateMachine'],
      ...props,
    });
  };

  it('refuses throttling that is off, fractional or past API Gateway’s ceiling', () => {
    expect(build({ throttleRateLimit: 0 })).toThrow(
      /Api: throttleRateLimit must be a whole number from 1 to 10000.*received 0/,
    );
    expect(build({ throttleBurstLimit: 2.5 })).toThrow(/throttleBurstLimit .* received 2.5/);
    expect(build({ throttleBurstLimit: 5001 })).toThrow(/from 1 to 5000.*received 5001/);
  });

  it('refuses a Vault address that is not https', () => {
    expect(build({ vaultAddr: 'http://vault:8200' })).toThrow(
      /Api: vaultAddr .* received 'http:\/\/vault:8200'/,
    );
  });
});
