import type { Stack } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { CAMPAIGN_ROUTES, CI_ROUTES, GRANT_ROUTES } from '../../functions/api/routes.ts';
import { API_ROUTES, Api, type ApiProps } from '../../infra/constructs/api.ts';
import { BreakGlass } from '../../infra/constructs/break-glass.ts';
import { CI_ROUTES as INFRA_CI_ROUTES, issuerRoutePath } from '../../infra/constructs/ci-credentials.ts';
import { RoleDeny } from '../../infra/constructs/role-deny.ts';
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
    statements = allowStatementsOfRole(template, logicalIdOf(api.grants.role));
  });

  const functionProperties = () =>
    resourceOf(template, 'AWS::Lambda::Function', api.grants.function)?.Properties;

  describe('routes', () => {
    it('go where the handlers route them: each infra route in its function’s router table, CI’s in the CI table', () => {
      const key = (route: { method: string; path: string }) => `${route.method} ${route.path}`;
      const byFunction = (serves: string) =>
        API_ROUTES.filter((route) => route.serves === serves)
          .map(key)
          .sort();
      expect(byFunction('grants')).toEqual(GRANT_ROUTES.map(key).sort());
      expect(byFunction('campaigns')).toEqual(CAMPAIGN_ROUTES.map(key).sort());
      // Slack's two are the ingress's own, in none of the API functions' tables.
      expect(byFunction('slack')).toEqual(['POST /slack/commands', 'POST /slack/interactions']);
      // A jwt route also has each further issuer's variant (`/ci/issuers/<name>/…`), one router path.
      const infraCi = INFRA_CI_ROUTES.flatMap((route) =>
        route.auth === 'jwt' ? [route, { ...route, path: issuerRoutePath('{issuer}', route.path) }] : [route],
      );
      expect(infraCi.map(key).sort()).toEqual(CI_ROUTES.map(key).sort());
    });

    const routes = () =>
      Object.values(template.findResources('AWS::ApiGatewayV2::Route')).map(
        (route) => route.Properties as { RouteKey: string; AuthorizationType?: string; Target: unknown },
      );

    it('are exactly the documented ones, each to its capability’s function: grants, campaigns, Slack’s ingress', () => {
      // The /ci/ routes exist only where a deployment trusts a CI issuer: test/infra/ci-credentials.test.ts.
      expect(
        routes()
          .map((r) => r.RouteKey)
          .sort(),
      ).toEqual(API_ROUTE_KEYS.filter((key) => !key.includes(' /ci/')));
      expect(API_ROUTES).toHaveLength(14);
      const integrations = template.findResources('AWS::ApiGatewayV2::Integration');
      expect(Object.keys(integrations)).toHaveLength(3);
      const targetOf = (route: { Target: unknown }) => {
        const id = flattenCfnValue(route.Target).replace(/^integrations\/<|>$/g, '');
        return (integrations[id]?.Properties as { IntegrationUri: unknown } | undefined)?.IntegrationUri;
      };
      for (const route of routes()) {
        const fn = SLACK_ROUTE_KEYS.includes(route.RouteKey)
          ? api.slackIngress
          : route.RouteKey.includes(' /campaigns')
            ? api.campaigns
            : api.grants;
        expect({ key: route.RouteKey, uri: targetOf(route) }).toEqual({
          key: route.RouteKey,
          uri: { 'Fn::GetAtt': [logicalIdOf(fn.function), 'Arn'] },
        });
      }
      for (const integration of Object.values(integrations)) {
        expect(integration.Properties).toMatchObject({
          IntegrationType: 'AWS_PROXY',
          PayloadFormatVersion: '2.0',
        });
      }
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

    it('let API Gateway invoke each of the three functions once, for any route of this API only', () => {
      for (const fn of [api.grants, api.campaigns, api.slackIngress]) {
        const permissions = Object.values(template.findResources('AWS::Lambda::Permission')).filter(
          (p) =>
            JSON.stringify(p.Properties.FunctionName) ===
            JSON.stringify({ 'Fn::GetAtt': [logicalIdOf(fn.function), 'Arn'] }),
        );
        expect(permissions).toHaveLength(1);
        expect(permissions[0]?.Properties).toMatchObject({
          Action: 'lambda:InvokeFunction',
          Principal: 'apigateway.amazonaws.com',
        });
        expect(flattenCfnValue(permissions[0]?.Properties.SourceArn)).toBe(
          `arn:${PARTITION}:execute-api:${REGION}:${ACCOUNT}:<${logicalIdOf(api.httpApi)}>/*/*/*`,
        );
      }
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

  describe('grants function', () => {
    it('runs the ESM bundle of functions/handlers/api-grants.ts on nodejs22.x, arm64, under the API’s name', () => {
      expect(functionProperties()).toMatchObject({
        FunctionName: 'Keywarden-api',
        ...BUNDLED_HANDLER,
      });
    });

    it('receives the environment the handler reads: no state machine, no CI setting', () => {
      const { stack } = synthesized;
      expect(functionProperties()?.Environment.Variables).toEqual({
        ...serviceVariables(stack),
        KEYWARDEN_GRANT_SCHEDULE_GROUP: 'keywarden-grants',
        KEYWARDEN_GRANT_SCHEDULE_ROLE_ARN: {
          'Fn::GetAtt': [logicalIdOf(stack.breakGlass.schedulerRole), 'Arn'],
        },
        KEYWARDEN_GRANT_EXPIRY_FUNCTION_ARN: {
          'Fn::GetAtt': [logicalIdOf(stack.breakGlass.expiry.function), 'Arn'],
        },
        KEYWARDEN_ROLE_DENY_FUNCTION: { 'Fn::GetAtt': [logicalIdOf(stack.roleDeny.handler.function), 'Arn'] },
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('alarms on its errors into the break-glass alarm topic', () => {
      const alarm = resourceOf(template, 'AWS::CloudWatch::Alarm', api.grantsErrorsAlarm)?.Properties;
      const topic = { Ref: logicalIdOf(synthesized.stack.breakGlass.alarmTopic) };
      expect(alarm).toMatchObject({
        AlarmName: 'Keywarden-api-grants-errors',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalIdOf(api.grants.function) } }],
        Threshold: 1,
        AlarmActions: [topic],
        OKActions: [topic],
      });
    });
  });

  describe('grants role', () => {
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

    it('holds no IAM policy write: early revocation invokes the role-deny function, and no other function', () => {
      for (const action of ['iam:PutRolePolicy', 'iam:GetRolePolicy', 'iam:DeleteRolePolicy']) {
        expect(resourcesAllowedFor(statements, action)).toEqual([]);
      }
      expect(resourcesAllowedFor(statements, 'lambda:InvokeFunction')).toEqual([
        `<${logicalIdOf(synthesized.stack.roleDeny.handler.function)}.Arn>`,
      ]);
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

    it('starts no campaign and signs nothing: those are the campaigns and CI functions’', () => {
      expect(resourcesAllowedFor(statements, 'states:StartExecution')).toEqual([]);
      expect(resourcesAllowedFor(statements, 'kms:Sign')).toEqual([]);
    });

    it('reads the Vault token and the fingerprint key, no Slack secret', () => {
      const { secrets } = synthesized.stack;
      expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue').sort()).toEqual(
        [secrets.vaultToken, secrets.fingerprintKey].map((secret) => `<${logicalIdOf(secret)}>`).sort(),
      );
    });

    it('answers grant reports itself: no S3 access at all', () => {
      expect(statements.flatMap((s) => s.actions).filter((a) => a.startsWith('s3:'))).toEqual([]);
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
        'scheduler',
        'secretsmanager',
        'sts',
      ]);
    });
  });

  describe('campaigns function', () => {
    const campaigns = () => allowStatementsOfRole(template, logicalIdOf(api.campaigns.role));

    it('runs functions/handlers/api-campaigns.ts with the state machine and the prefixes, no grant or CI setting', () => {
      const { stack } = synthesized;
      expect(resourceOf(template, 'AWS::Lambda::Function', api.campaigns.function)?.Properties).toMatchObject(
        {
          ...BUNDLED_HANDLER,
          Environment: {
            Variables: {
              ...serviceVariables(stack),
              KEYWARDEN_IAM_PATH_PREFIX: '/ci/',
              KEYWARDEN_SECRET_NAME_PREFIX: 'ci/',
              KEYWARDEN_REVOCATION_STATE_MACHINE_ARN: { Ref: logicalIdOf(stack.revocation.stateMachine) },
              NODE_OPTIONS: '--enable-source-maps',
            },
          },
        },
      );
      const variables = Object.keys(
        resourceOf(template, 'AWS::Lambda::Function', api.campaigns.function)?.Properties.Environment
          .Variables,
      );
      expect(variables.filter((name) => /GRANT|ROLE_DENY|REPORT|APPROVAL|WEBHOOK|CI_/.test(name))).toEqual(
        [],
      );
    });

    it('lists access keys and secret versions under the prefixes, starts the state machine, assumes and schedules nothing', () => {
      const { secrets, revocation } = synthesized.stack;
      expect(resourcesAllowedFor(campaigns(), 'states:StartExecution')).toEqual([
        `<${logicalIdOf(revocation.stateMachine)}>`,
      ]);
      expect(resourcesAllowedFor(campaigns(), 'secretsmanager:GetSecretValue').sort()).toEqual(
        [secrets.vaultToken, secrets.fingerprintKey].map((secret) => `<${logicalIdOf(secret)}>`).sort(),
      );
      expect(resourcesAllowedFor(campaigns(), 'dynamodb:PutItem')).toEqual(
        tableAndIndexArns(synthesized.stack),
      );
      // Planning over what is live: metadata under the pipeline prefixes, never a value.
      expect(resourcesAllowedFor(campaigns(), 'iam:ListAccessKeys')).toEqual([ARNS.users('/ci/')]);
      for (const action of ['secretsmanager:ListSecretVersionIds', 'secretsmanager:DescribeSecret']) {
        expect(resourcesAllowedFor(campaigns(), action)).toEqual([ARNS.secrets('ci/')]);
      }
      expectOnlyScopedActionsOf(campaigns(), ['dynamodb', 'iam', 'kms', 'logs', 'secretsmanager', 'states']);
      const actions = campaigns().flatMap((s) => s.actions);
      expect(actions.filter((a) => /^(sts|scheduler|lambda|s3):/.test(a))).toEqual([]);
      expect(actions.filter((a) => a.startsWith('iam:'))).toEqual(['iam:ListAccessKeys']);
      // KMS through the state table's key only: no approval signing.
      expect(resourcesAllowedFor(campaigns(), 'kms:Sign')).toEqual([]);
    });

    it('alarms on its errors into the revocation alarm topic (a campaign that cannot start is an incident’s)', () => {
      const alarm = resourceOf(template, 'AWS::CloudWatch::Alarm', api.campaignsErrorsAlarm)?.Properties;
      const topic = { Ref: logicalIdOf(synthesized.stack.revocation.alarmTopic) };
      expect(alarm).toMatchObject({
        AlarmName: 'Keywarden-api-campaigns-errors',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalIdOf(api.campaigns.function) } }],
        AlarmActions: [topic],
        OKActions: [topic],
      });
    });
  });

  describe('slack ingress', () => {
    const ingress = () => allowStatementsOfRole(template, logicalIdOf(api.slackIngress.role));

    it('runs functions/handlers/slack-ingress.ts with the signing secret and the worker’s name only', () => {
      const { stack } = synthesized;
      expect(
        resourceOf(template, 'AWS::Lambda::Function', api.slackIngress.function)?.Properties,
      ).toMatchObject({
        ...BUNDLED_HANDLER,
        Environment: {
          Variables: {
            KEYWARDEN_TABLE: { Ref: logicalIdOf(stack.stateStore.table) },
            KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: { Ref: logicalIdOf(stack.secrets.fingerprintKey) },
            KEYWARDEN_SLACK_SIGNING_SECRET_ARN: { Ref: logicalIdOf(stack.secrets.slackSigningSecret) },
            KEYWARDEN_SLACK_WORKER_FUNCTION_ARN: {
              'Fn::GetAtt': [logicalIdOf(api.slackWorker.function), 'Arn'],
            },
            NODE_OPTIONS: '--enable-source-maps',
          },
        },
      });
    });

    it('holds no IAM and no STS action at all', () => {
      const actions = ingress().flatMap((s) => s.actions);
      expect(actions.filter((a) => a.startsWith('iam:') || a.startsWith('sts:'))).toEqual([]);
    });

    it('verifies (signing secret), records (state table) and hands off (invokes the worker only)', () => {
      const { secrets } = synthesized.stack;
      expect(resourcesAllowedFor(ingress(), 'secretsmanager:GetSecretValue').sort()).toEqual(
        [secrets.fingerprintKey, secrets.slackSigningSecret].map((s) => `<${logicalIdOf(s)}>`).sort(),
      );
      expect(resourcesAllowedFor(ingress(), 'dynamodb:PutItem')).toEqual(
        tableAndIndexArns(synthesized.stack),
      );
      expect(resourcesAllowedFor(ingress(), 'lambda:InvokeFunction')).toEqual([
        `<${logicalIdOf(api.slackWorker.function)}.Arn>`,
      ]);
      expectOnlyScopedActionsOf(ingress(), ['dynamodb', 'kms', 'lambda', 'logs', 'secretsmanager']);
    });
  });

  describe('slack worker and its dead-letter queue', () => {
    const worker = () => allowStatementsOfRole(template, logicalIdOf(api.slackWorker.role));

    it('runs a deferred job once (no automatic retry) and sends a failed one to the dead-letter queue', () => {
      const configs = Object.values(template.findResources('AWS::Lambda::EventInvokeConfig'));
      expect(configs).toHaveLength(1);
      expect(configs[0]?.Properties).toMatchObject({
        FunctionName: { Ref: logicalIdOf(api.slackWorker.function) },
        MaximumRetryAttempts: 0,
        DestinationConfig: {
          OnFailure: { Destination: { 'Fn::GetAtt': [logicalIdOf(api.deferredJobsQueue), 'Arn'] } },
        },
      });
      expect(resourcesAllowedFor(worker(), 'sqs:SendMessage')).toEqual([
        `<${logicalIdOf(api.deferredJobsQueue)}.Arn>`,
      ]);
    });

    it('keeps failed jobs encrypted, over TLS only, for 14 days', () => {
      expect(resourceOf(template, 'AWS::SQS::Queue', api.deferredJobsQueue)?.Properties).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 14 * 24 * 3600,
      });
      const policy = Object.values(template.findResources('AWS::SQS::QueuePolicy')).find((p) =>
        JSON.stringify(p.Properties.Queues).includes(logicalIdOf(api.deferredJobsQueue)),
      );
      expect(JSON.stringify(policy?.Properties.PolicyDocument)).toContain('aws:SecureTransport');
    });

    it('alarms on the first failed job, into the break-glass alarm topic', () => {
      const alarm = resourceOf(template, 'AWS::CloudWatch::Alarm', api.deferredJobsAlarm)?.Properties;
      const topic = { Ref: logicalIdOf(synthesized.stack.breakGlass.alarmTopic) };
      expect(alarm).toMatchObject({
        AlarmName: 'Keywarden-slack-deferred-jobs-failed',
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [
          { Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalIdOf(api.deferredJobsQueue), 'QueueName'] } },
        ],
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        AlarmActions: [topic],
        OKActions: [topic],
      });
      expect(alarm?.AlarmDescription).toMatch(/runbooks\/break-glass\.md/);
    });

    it('reads the Slack secrets, schedules grant expiry, plans and starts campaigns, and assumes nothing', () => {
      const { secrets, breakGlass, revocation } = synthesized.stack;
      expect(resourcesAllowedFor(worker(), 'secretsmanager:GetSecretValue').sort()).toEqual(
        [secrets.vaultToken, secrets.fingerprintKey, secrets.slackSigningSecret, secrets.slackBotToken]
          .map((s) => `<${logicalIdOf(s)}>`)
          .sort(),
      );
      expect(resourcesAllowedFor(worker(), 'scheduler:CreateSchedule')).toEqual([ARNS.grantSchedules]);
      expect(resourcesAllowedFor(worker(), 'iam:PassRole')).toEqual([
        `<${logicalIdOf(breakGlass.schedulerRole)}.Arn>`,
      ]);
      expect(resourcesAllowedFor(worker(), 'states:StartExecution')).toEqual([
        `<${logicalIdOf(revocation.stateMachine)}>`,
      ]);
      // `/revoke` plans over what is live, as the campaigns function: metadata under the prefixes.
      expect(resourcesAllowedFor(worker(), 'iam:ListAccessKeys')).toEqual([ARNS.users('/ci/')]);
      for (const action of ['secretsmanager:ListSecretVersionIds', 'secretsmanager:DescribeSecret']) {
        expect(resourcesAllowedFor(worker(), action)).toEqual([ARNS.secrets('ci/')]);
      }
      const actions = worker().flatMap((s) => s.actions);
      expect(actions.filter((a) => a.startsWith('sts:'))).toEqual([]);
      expect(actions.filter((a) => a.startsWith('iam:')).sort()).toEqual([
        'iam:ListAccessKeys',
        'iam:PassRole',
      ]);
    });
  });

  describe('role-deny', () => {
    it('is the only function in the whole template whose role may put a role policy', () => {
      const holders = Object.entries(template.findResources('AWS::IAM::Role'))
        .filter(
          ([id]) => resourcesAllowedFor(allowStatementsOfRole(template, id), 'iam:PutRolePolicy').length > 0,
        )
        .map(([id]) => id);
      expect(holders).toEqual([logicalIdOf(synthesized.stack.roleDeny.handler.role)]);
    });

    it('may put, read and delete role policies under the break-glass and revocation paths only', () => {
      const statements = allowStatementsOfRole(
        template,
        logicalIdOf(synthesized.stack.roleDeny.handler.role),
      );
      for (const action of ['iam:PutRolePolicy', 'iam:GetRolePolicy', 'iam:DeleteRolePolicy']) {
        expect(resourcesAllowedFor(statements, action)).toEqual([ARNS.breakglassRoles, ARNS.roles('/ci/')]);
      }
      expectOnlyScopedActionsOf(statements, ['iam', 'logs']);
      expect(
        resourceOf(template, 'AWS::Lambda::Function', synthesized.stack.roleDeny.handler.function)?.Properties
          .Environment.Variables.KEYWARDEN_ROLE_DENY_PATHS,
      ).toBe('/breakglass/,/ci/');
    });

    it('alarms on its errors into the break-glass alarm topic', () => {
      const alarm = synthesized.stack.roleDeny.errorsAlarm;
      expect(alarm).toBeDefined();
      expect(resourceOf(template, 'AWS::CloudWatch::Alarm', alarm as never)?.Properties).toMatchObject({
        MetricName: 'Errors',
        AlarmActions: [{ Ref: logicalIdOf(synthesized.stack.breakGlass.alarmTopic) }],
      });
    });
  });

  it('outputs the API URL, the function role break-glass roles must trust, and the Slack signing secret', () => {
    const outputs = template.toJSON().Outputs;
    expect(flattenCfnValue(outputs.ApiUrl.Value)).toBe(
      `https://<${logicalIdOf(api.httpApi)}>.execute-api.<AWS::Region>.<AWS::URLSuffix>/`,
    );
    expect(outputs.ApiFunctionRoleArn.Value).toEqual({
      'Fn::GetAtt': [logicalIdOf(api.grants.role), 'Arn'],
    });
    expect(outputs.ApiFunctionRoleArn.Description).toMatch(
      /Break-glass roles \(under \/breakglass\/\) must trust/,
    );
    expect(outputs.SlackSigningSecretArn.Value).toEqual({
      Ref: logicalIdOf(synthesized.stack.secrets.slackSigningSecret),
    });
  });

  it('Compliance: no unsuppressed AwsSolutions finding on the API resources', () => {
    expect(awsSolutionsFindingsUnder(synthesized.stack, ['/Api/', '/ServiceSecrets/', '/RoleDeny/'])).toEqual(
      [],
    );
  });
});

describe('infra: api validation', () => {
  // Api throws before creating a child; its BreakGlass dependency is built once, unbundled.
  let base: Omit<ApiProps, 'revocationStateMachine'> & { stack: Stack };

  beforeAll(() => {
    const { stack, stateStore, secrets } = bareKeywarden();
    base = {
      stack,
      stateStore,
      secrets,
      breakGlass: new BreakGlass(stack, 'BreakGlass', { stateStore, secrets }),
      roleDeny: new RoleDeny(stack, 'RoleDeny', { rolePaths: ['/breakglass/'] }),
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
