import type { Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Api } from '../../infra/constructs/api.ts';
import { BreakGlass } from '../../infra/constructs/break-glass.ts';
import {
  CI_ROUTES,
  CiCredentials,
  type CiCredentialsProps,
  ciEnabled,
} from '../../infra/constructs/ci-credentials.ts';
import { RoleDeny } from '../../infra/constructs/role-deny.ts';
import { flattenCfnValue } from '../../infra/nag.ts';
import { CI_ISSUER_PRESETS } from '../../infra/settings.ts';
import {
  CI_APPROVAL_ROUTE_KEYS,
  CI_OIDC_ROUTE_KEYS,
  CI_WEBHOOK_ROUTE_KEYS,
} from '../support/api-route-keys.ts';
import {
  ACCOUNT,
  ARNS,
  allowStatementsOfRole,
  awsSolutionsFindingsUnder,
  BUNDLED_HANDLER,
  bareKeywarden,
  cdkJsonContext,
  expectOnlyScopedActionsOf,
  type FlatStatement,
  firesOnceNotifying,
  lambdaErrorsMetric,
  logicalIdOf,
  PARTITION,
  resourceOf,
  resourcesAllowedFor,
  type SynthesizedKeywarden,
  schedulerTrust,
  serviceVariables,
  suppressionsIn,
  synthesizeKeywarden,
  tableAndIndexArns,
} from './keywarden-fixture.ts';

/** The audience the jobs of this deployment request. */
const AUDIENCE = 'https://keywarden.example.com';

/** A route as the template writes it. */
interface RouteProperties {
  RouteKey: string;
  AuthorizationType?: string;
  AuthorizerId?: unknown;
  Target: unknown;
}

const CREDENTIAL_ROUTES = [...CI_OIDC_ROUTE_KEYS].sort();
const WEBHOOK_ROUTES = [...CI_WEBHOOK_ROUTE_KEYS].sort();
const APPROVAL_ROUTES = [...CI_APPROVAL_ROUTE_KEYS].sort();

describe('infra: ci credentials', () => {
  let synthesized: SynthesizedKeywarden;
  let template: Template;
  let ci: CiCredentials;

  beforeAll(() => {
    synthesized = synthesizeKeywarden({ ciIssuers: [{ preset: 'github', audience: AUDIENCE }] });
    template = synthesized.template;
    const built = synthesized.stack.ci;
    if (built === undefined) throw new Error('the stack was given an issuer but built no CiCredentials');
    ci = built;
  });

  const statementsOf = (role: IConstruct): FlatStatement[] =>
    allowStatementsOfRole(template, logicalIdOf(role));
  const ciStatements = () => statementsOf(ci.handler.role);
  const grantsStatements = () => statementsOf(synthesized.stack.api.grants.role);
  const ciRoutes = (): RouteProperties[] =>
    Object.values(template.findResources('AWS::ApiGatewayV2::Route'))
      .map((route) => route.Properties as RouteProperties)
      .filter((route) => route.RouteKey.includes(' /ci/'));
  const routeKeysWith = (auth: string) =>
    ciRoutes()
      .filter((route) => (route.AuthorizationType ?? 'NONE') === auth)
      .map((route) => route.RouteKey)
      .sort();
  /** Every role of the template whose statements allow `action` on anything. */
  const holdersOf = (action: string) =>
    Object.keys(template.findResources('AWS::IAM::Role')).filter(
      (id) => resourcesAllowedFor(allowStatementsOfRole(template, id), action).length > 0,
    );
  const keyArn = () => `<${logicalIdOf(ci.approvalKey)}.Arn>`;

  describe('routes', () => {
    it('are the documented ones, all served by the CI function through its one integration', () => {
      expect(
        ciRoutes()
          .map((route) => route.RouteKey)
          .sort(),
      ).toEqual([...CREDENTIAL_ROUTES, ...WEBHOOK_ROUTES, ...APPROVAL_ROUTES].sort());
      expect(CI_ROUTES).toHaveLength(7);
      const integrations = template.findResources('AWS::ApiGatewayV2::Integration');
      // The API's three (grants, campaigns, Slack ingress) and the CI function's one.
      expect(Object.keys(integrations)).toHaveLength(4);
      const ciIntegration = Object.entries(integrations).find(
        ([, integration]) =>
          JSON.stringify(integration.Properties.IntegrationUri) ===
          JSON.stringify({ 'Fn::GetAtt': [logicalIdOf(ci.handler.function), 'Arn'] }),
      )?.[0];
      expect(ciIntegration).toBeDefined();
      for (const route of ciRoutes()) {
        expect({ key: route.RouteKey, target: flattenCfnValue(route.Target) }).toEqual({
          key: route.RouteKey,
          target: `integrations/<${ciIntegration}>`,
        });
      }
      // One invoke permission for every CI route, scoped to this API.
      const permissions = Object.values(template.findResources('AWS::Lambda::Permission')).filter(
        (p) =>
          JSON.stringify(p.Properties.FunctionName) ===
          JSON.stringify({ 'Fn::GetAtt': [logicalIdOf(ci.handler.function), 'Arn'] }),
      );
      expect(permissions).toHaveLength(1);
      expect(permissions[0]?.Properties.Principal).toBe('apigateway.amazonaws.com');
    });

    it('put the JWT authorizer, with the configured issuer and audience, on exactly the two credential routes', () => {
      const authorizers = Object.entries(template.findResources('AWS::ApiGatewayV2::Authorizer'));
      expect(authorizers).toHaveLength(1);
      const [authorizerId, authorizer] = authorizers[0] ?? [];
      expect(authorizer?.Properties).toMatchObject({
        AuthorizerType: 'JWT',
        IdentitySource: ['$request.header.Authorization'],
        JwtConfiguration: { Issuer: CI_ISSUER_PRESETS.github, Audience: [AUDIENCE] },
      });
      expect(routeKeysWith('JWT')).toEqual(CREDENTIAL_ROUTES);
      for (const route of ciRoutes().filter((r) => r.AuthorizationType === 'JWT')) {
        expect(route.AuthorizerId).toEqual({ Ref: authorizerId });
      }
    });

    it('leave the two webhooks to the handler’s signature check (no API Gateway authorization)', () => {
      expect(routeKeysWith('NONE')).toEqual(WEBHOOK_ROUTES);
    });

    it('require SigV4 (the IAM authorizer) for the approvals, like the CLI’s other routes', () => {
      expect(routeKeysWith('AWS_IAM')).toEqual(APPROVAL_ROUTES);
    });
  });

  describe('approval key', () => {
    it('is an ECC_NIST_P256 signing key under alias/keywarden-approvals, kept when the stack goes', () => {
      const key = resourceOf(template, 'AWS::KMS::Key', ci.approvalKey);
      expect(key?.Properties).toMatchObject({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
      expect(key).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
      const aliases = Object.values(template.findResources('AWS::KMS::Alias')).filter(
        (alias) => alias.Properties.AliasName === 'alias/keywarden-approvals',
      );
      expect(aliases.map((alias) => flattenCfnValue(alias.Properties.TargetKeyId))).toEqual([keyArn()]);
    });

    it('signs, verifies and shows its public key to the CI function and the Slack worker (the Approve button) only, on that key only', () => {
      for (const action of ['kms:Sign', 'kms:Verify', 'kms:GetPublicKey']) {
        expect(resourcesAllowedFor(ciStatements(), action)).toEqual([keyArn()]);
        expect(holdersOf(action).sort()).toEqual(
          [logicalIdOf(ci.handler.role), logicalIdOf(synthesized.stack.api.slackWorker.role)].sort(),
        );
      }
      // No kms statement of the CI function's role names "*" or a wildcard action.
      const kms = ciStatements().filter((s) => s.actions.some((action) => action.startsWith('kms:')));
      expect(kms.flatMap((s) => s.resources).filter((resource) => resource.includes('*'))).toEqual([]);
      expect(kms.flatMap((s) => s.actions).filter((action) => action.includes('*'))).toEqual([]);
    });
  });

  describe('CI function', () => {
    it('runs functions/handlers/api-ci.ts with the approval key id, the webhook secrets’ ARNs and the CI role path, no grant or campaign setting', () => {
      const { stack } = synthesized;
      const properties = resourceOf(template, 'AWS::Lambda::Function', ci.handler.function)?.Properties;
      expect(properties).toMatchObject(BUNDLED_HANDLER);
      expect(properties?.Environment.Variables).toEqual({
        ...serviceVariables(stack),
        KEYWARDEN_ROLE_DENY_FUNCTION: { 'Fn::GetAtt': [logicalIdOf(stack.roleDeny.handler.function), 'Arn'] },
        KEYWARDEN_APPROVAL_KEY_ID: { Ref: logicalIdOf(ci.approvalKey) },
        KEYWARDEN_GITHUB_WEBHOOK_SECRET_ARN: { Ref: logicalIdOf(ci.githubWebhookSecret) },
        KEYWARDEN_GITLAB_WEBHOOK_SECRET_ARN: { Ref: logicalIdOf(ci.gitlabWebhookSecret) },
        KEYWARDEN_CI_ROLE_PATH: '/ci/',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('holds only what the CI routes use: no break-glass role, schedule, state machine or report', () => {
      const { secrets } = synthesized.stack;
      expect(resourcesAllowedFor(ciStatements(), 'secretsmanager:GetSecretValue').sort()).toEqual(
        [secrets.vaultToken, secrets.fingerprintKey, ci.githubWebhookSecret, ci.gitlabWebhookSecret]
          .map((secret) => `<${logicalIdOf(secret)}>`)
          .sort(),
      );
      expect(resourcesAllowedFor(ciStatements(), 'dynamodb:PutItem')).toEqual(
        tableAndIndexArns(synthesized.stack),
      );
      // Reads its own roles (the grant's role checked before it is assumed), nothing else of IAM.
      expect(resourcesAllowedFor(ciStatements(), 'iam:GetRole')).toEqual([ARNS.roles('/ci/')]);
      for (const action of [
        'iam:PassRole',
        'scheduler:CreateSchedule',
        'states:StartExecution',
        's3:PutObject',
      ]) {
        expect(resourcesAllowedFor(ciStatements(), action)).toEqual([]);
      }
      expectOnlyScopedActionsOf(ciStatements(), [
        'dynamodb',
        'iam',
        'kms',
        'lambda',
        'logs',
        'secretsmanager',
        'sts',
      ]);
    });

    it('leaves the grants function no CI permission: no CI role, session tag, approval key or webhook secret', () => {
      expect(resourcesAllowedFor(grantsStatements(), 'sts:AssumeRole')).toEqual([ARNS.breakglassRoles]);
      expect(resourcesAllowedFor(grantsStatements(), 'sts:TagSession')).toEqual([]);
      expect(resourcesAllowedFor(grantsStatements(), 'kms:Sign')).toEqual([]);
      const variables = Object.keys(
        resourceOf(template, 'AWS::Lambda::Function', synthesized.stack.api.grants.function)?.Properties
          .Environment.Variables,
      );
      expect(variables.filter((name) => /APPROVAL|WEBHOOK|CI_ROLE/.test(name))).toEqual([]);
    });

    it('alone reads the webhook secrets, which are generated at deploy and named under the stack', () => {
      for (const secret of [ci.githubWebhookSecret, ci.gitlabWebhookSecret]) {
        const readers = Object.keys(template.findResources('AWS::IAM::Role')).filter((id) =>
          resourcesAllowedFor(allowStatementsOfRole(template, id), 'secretsmanager:GetSecretValue').includes(
            `<${logicalIdOf(secret)}>`,
          ),
        );
        expect(readers).toEqual([logicalIdOf(ci.handler.role)]);
        expect(resourceOf(template, 'AWS::SecretsManager::Secret', secret)?.Properties).toMatchObject({
          Name: expect.stringMatching(/^Keywarden\/ci-git(hub|lab)-webhook-secret$/),
          GenerateSecretString: { PasswordLength: 40, ExcludePunctuation: true },
        });
      }
    });

    it('assumes, with SourceIdentity (no session tags), roles under /ci/ only', () => {
      const ciRoles = ARNS.roles('/ci/');
      expect(ciStatements().filter((s) => s.sid === 'AssumeCiRoles')).toEqual([
        {
          sid: 'AssumeCiRoles',
          actions: ['sts:AssumeRole', 'sts:SetSourceIdentity'],
          resources: [ciRoles],
          condition: undefined,
        },
      ]);
      expect(resourcesAllowedFor(ciStatements(), 'sts:TagSession')).toEqual([]);
      expect(resourcesAllowedFor(ciStatements(), 'sts:AssumeRole')).toEqual([ciRoles]);
      expect(holdersOf('sts:AssumeRole').sort()).toEqual(
        [logicalIdOf(synthesized.stack.api.grants.role), logicalIdOf(ci.handler.role)].sort(),
      );
    });

    it('ends sessions through the role-deny function, which may change roles under /ci/', () => {
      const roleDeny = synthesized.stack.roleDeny;
      expect(roleDeny.rolePaths).toContain('/ci/');
      expect(resourcesAllowedFor(ciStatements(), 'lambda:InvokeFunction')).toEqual([
        `<${logicalIdOf(roleDeny.handler.function)}.Arn>`,
      ]);
      for (const action of ['iam:PutRolePolicy', 'iam:DeleteRolePolicy']) {
        expect(resourcesAllowedFor(ciStatements(), action)).toEqual([]);
      }
    });
  });

  describe('sweeper', () => {
    const fn = () => resourceOf(template, 'AWS::Lambda::Function', ci.sweeper.function)?.Properties;
    const schedule = () => resourceOf(template, 'AWS::Scheduler::Schedule', ci.sweeperSchedule)?.Properties;

    it('runs functions/handlers/ci-sweeper.ts, one sweep at a time, with the table and role-deny, no Vault', () => {
      expect(fn()).toMatchObject({ ...BUNDLED_HANDLER, ReservedConcurrentExecutions: 1 });
      const { KEYWARDEN_TABLE, KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN } = serviceVariables(synthesized.stack);
      expect(fn()?.Environment.Variables).toEqual({
        KEYWARDEN_TABLE,
        KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN,
        KEYWARDEN_ROLE_DENY_FUNCTION: {
          'Fn::GetAtt': [logicalIdOf(synthesized.stack.roleDeny.handler.function), 'Arn'],
        },
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('runs every minute, invoking its live alias as a role that may invoke that alias only', () => {
      expect(schedule()).toMatchObject({ ScheduleExpression: 'rate(1 minute)', State: 'ENABLED' });
      expect(schedule()?.Target).toMatchObject({
        Arn: { Ref: logicalIdOf(ci.sweeperAlias) },
        RoleArn: { 'Fn::GetAtt': [logicalIdOf(ci.sweeperSchedulerRole), 'Arn'] },
        RetryPolicy: { MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 0 },
      });
      expect(
        statementsOf(ci.sweeperSchedulerRole).map(({ actions, resources }) => ({ actions, resources })),
      ).toEqual([{ actions: ['lambda:InvokeFunction'], resources: [`<${logicalIdOf(ci.sweeperAlias)}>`] }]);
      const role = resourceOf(template, 'AWS::IAM::Role', ci.sweeperSchedulerRole);
      expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual(schedulerTrust());
    });

    it('uses the state table, reads the fingerprint key (not the Vault token), invokes role-deny: nothing else', () => {
      const statements = statementsOf(ci.sweeper.role);
      const { secrets, roleDeny } = synthesized.stack;
      expect(resourcesAllowedFor(statements, 'dynamodb:UpdateItem')).toEqual(
        tableAndIndexArns(synthesized.stack),
      );
      expect(resourcesAllowedFor(statements, 'secretsmanager:GetSecretValue')).toEqual([
        `<${logicalIdOf(secrets.fingerprintKey)}>`,
      ]);
      expect(resourcesAllowedFor(statements, 'lambda:InvokeFunction')).toEqual([
        `<${logicalIdOf(roleDeny.handler.function)}.Arn>`,
      ]);
      expectOnlyScopedActionsOf(statements, ['dynamodb', 'kms', 'lambda', 'logs', 'secretsmanager']);
    });
  });

  it('alarms on the sweeper’s and the CI function’s errors, into the break-glass topic (a CI session’s calls are the use monitor’s)', () => {
    const topic = { Ref: logicalIdOf(synthesized.stack.breakGlass.alarmTopic) };
    const alarm = (construct: CiCredentials['sweeperErrorsAlarm']) =>
      resourceOf(template, 'AWS::CloudWatch::Alarm', construct as never)?.Properties;
    expect(alarm(ci.sweeperErrorsAlarm)).toMatchObject({
      AlarmName: 'Keywarden-ci-sweeper-errors',
      ...lambdaErrorsMetric(ci.sweeper.function),
      Period: 300,
      ...firesOnceNotifying(topic),
    });
    expect(alarm(ci.handlerErrorsAlarm)).toMatchObject({
      AlarmName: 'Keywarden-ci-api-errors',
      ...lambdaErrorsMetric(ci.handler.function),
      Period: 300,
      ...firesOnceNotifying(topic),
    });
  });

  it('outputs the webhook secrets and the approval key, and tells CI roles to trust the CI function’s role', () => {
    const outputs = template.toJSON().Outputs;
    expect(outputs.CiGitHubWebhookSecretArn.Value).toEqual({ Ref: logicalIdOf(ci.githubWebhookSecret) });
    expect(outputs.CiGitLabWebhookSecretArn.Value).toEqual({ Ref: logicalIdOf(ci.gitlabWebhookSecret) });
    expect(outputs.CiApprovalKeyArn.Value).toEqual({ 'Fn::GetAtt': [logicalIdOf(ci.approvalKey), 'Arn'] });
    expect(outputs.CiFunctionRoleArn.Value).toEqual({ 'Fn::GetAtt': [logicalIdOf(ci.handler.role), 'Arn'] });
    expect(outputs.CiFunctionRoleArn.Description).toMatch(/CI roles \(under \/ci\/\) must trust this role/);
    expect(outputs.ApiFunctionRoleArn.Description).not.toMatch(/CI roles/);
  });

  describe('Compliance', () => {
    it('no unsuppressed AwsSolutions finding anywhere in the stack, and no CDK warning of any kind', () => {
      expect(awsSolutionsFindingsUnder(synthesized.stack, ['/'])).toEqual([]);
      expect(Annotations.fromStack(synthesized.stack).findError('*', Match.anyValue())).toEqual([]);
      expect(Annotations.fromStack(synthesized.stack).findWarning('*', Match.anyValue())).toEqual([]);
    });

    it('every CI suppression is one of the reviewed set and carries a reason', () => {
      const ciSuppressions = suppressionsIn(template).filter(
        (s) =>
          s.path.includes('/CiCredentials/') ||
          (s.path.includes('/Api/') && JSON.stringify(s.appliesTo ?? []).includes('role/ci/')),
      );
      for (const suppression of ciSuppressions) expect(suppression.reason.length).toBeGreaterThan(80);
      expect(
        [
          ...new Set(ciSuppressions.map((s) => `${s.path} ${s.id} ${JSON.stringify(s.appliesTo ?? [])}`)),
        ].sort(),
      ).toEqual(
        [
          ...WEBHOOK_ROUTES.map(
            (key) =>
              `Keywarden/CiCredentials/${key.replace(' ', '').replace(/\//g, '--')}/Resource AwsSolutions-APIG4 []`,
          ),
          ...['GitHubWebhookSecret', 'GitLabWebhookSecret'].map(
            (secret) => `Keywarden/CiCredentials/${secret}/Resource AwsSolutions-SMG4 []`,
          ),
          'Keywarden/CiCredentials/Handler/Function/Resource AwsSolutions-L1 []',
          'Keywarden/CiCredentials/Sweeper/Function/Resource AwsSolutions-L1 []',
          ...[
            'Keywarden/CiCredentials/Handler/Role/Resource',
            'Keywarden/CiCredentials/Handler/Role/DefaultPolicy/Resource',
          ].map((path) => `${path} AwsSolutions-IAM5 ${JSON.stringify([`Resource::${ARNS.roles('/ci/')}`])}`),
        ].sort(),
      );
    });
  });
});

describe('infra: ci credentials with several issuers and a role path', () => {
  // A bare stack (no cdk-nag): the API and role-deny a CiCredentials adds to, built once.
  let base: { stack: Stack } & Omit<CiCredentialsProps, 'issuers'>;

  beforeAll(() => {
    const { stack, stateStore, secrets } = bareKeywarden();
    const breakGlass = new BreakGlass(stack, 'BreakGlass', { stateStore, secrets });
    const roleDeny = new RoleDeny(stack, 'RoleDeny', { rolePaths: ['/breakglass/', '/ci/', '/pipelines/'] });
    const api = new Api(stack, 'Api', {
      stateStore,
      secrets,
      breakGlass,
      roleDeny,
      revocationStateMachine: {
        stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:x',
      } as never,
    });
    base = { stack, stateStore, secrets, api, roleDeny };
  });

  const build =
    (props: Partial<CiCredentialsProps>, id = `Ci${Math.random().toString(36).slice(2)}`) =>
    () => {
      const { stack, ...rest } = base;
      return new CiCredentials(stack, id, {
        ...rest,
        issuers: [{ preset: 'github', audience: AUDIENCE }],
        ...props,
      });
    };

  it('gives each further issuer its own authorizer on its own two routes under /ci/issuers/<name>/', () => {
    // prepare: JSON, as `-c keywarden:ciIssuers='[…]'` gives it
    const issuers = JSON.stringify([
      { preset: 'github', audience: AUDIENCE },
      { name: 'gitlab', issuer: 'https://gitlab.example.com', audience: 'keywarden' },
    ]);
    // act
    const ci = build({ issuers, rolePath: '/pipelines/' }, 'Ci')();
    const template = Template.fromStack(base.stack);
    // assess
    const authorizers = template.findResources('AWS::ApiGatewayV2::Authorizer');
    const issuerOf = (route: RouteProperties) =>
      authorizers[flattenCfnValue(route.AuthorizerId).replace(/^<|>$/g, '')]?.Properties.JwtConfiguration;
    const jwtRoutes = Object.values(template.findResources('AWS::ApiGatewayV2::Route'))
      .map((route) => route.Properties as RouteProperties)
      .filter((route) => route.AuthorizationType === 'JWT')
      .map((route) => ({ key: route.RouteKey, gate: issuerOf(route) }))
      .sort((a, b) => a.key.localeCompare(b.key));
    const github = { Issuer: CI_ISSUER_PRESETS.github, Audience: [AUDIENCE] };
    const gitlab = { Issuer: 'https://gitlab.example.com', Audience: ['keywarden'] };
    expect(jwtRoutes).toEqual([
      { key: 'DELETE /ci/credentials/{exchangeId}', gate: github },
      { key: 'DELETE /ci/issuers/gitlab/credentials/{exchangeId}', gate: gitlab },
      { key: 'POST /ci/credentials', gate: github },
      { key: 'POST /ci/issuers/gitlab/credentials', gate: gitlab },
    ]);
    expect(ci.issuers.map((issuer) => issuer.name)).toEqual(['github', 'gitlab']);
    const statements = allowStatementsOfRole(template, logicalIdOf(ci.handler.role));
    expect(resourcesAllowedFor(statements, 'sts:AssumeRole')).toEqual([
      `arn:${PARTITION}:iam::${ACCOUNT}:role/pipelines/*`,
    ]);
  });

  describe('validation', () => {
    it('refuses an issuer URL that is not https, quoting it', () => {
      expect(
        build({
          issuers: [
            { name: 'github', issuer: 'http://token.actions.githubusercontent.com', audience: AUDIENCE },
          ],
        }),
      ).toThrow(
        "CiCredentials: issuers[0].issuer must be the https:// URL the tokens carry as 'iss', such as 'https://token.actions.githubusercontent.com' (no query or fragment); received 'http://token.actions.githubusercontent.com'.",
      );
      expect(build({ issuers: [{ name: 'x', issuer: 'not a url', audience: AUDIENCE }] })).toThrow(
        /issuers\[0\]\.issuer must be .* received 'not a url'/,
      );
      expect(
        build({ issuers: [{ name: 'x', issuer: 'https://ci.example.com/?tenant=1', audience: AUDIENCE }] }),
      ).toThrow(/received 'https:\/\/ci\.example\.com\/\?tenant=1'/);
    });

    it('never echoes credentials put in an issuer URL', () => {
      const secret = `pw${Math.random().toString(36).slice(2)}`;
      const attempt = build({
        issuers: [{ name: 'x', issuer: `https://user:${secret}@ci.example.com`, audience: AUDIENCE }],
      });
      const message = (() => {
        try {
          attempt();
          return 'no error';
        } catch (error) {
          return (error as Error).message;
        }
      })();
      expect(message).toMatch(/without credentials; received 'https:\/\/\*\*\*@ci\.example\.com'/);
      expect(message).not.toContain(secret);
    });

    it('refuses no issuer, an issuer without audience, an unknown preset, a name or issuer given twice', () => {
      expect(build({ issuers: [] })).toThrow(
        /CiCredentials: issuers must list 1 to 10 trusted CI issuers.*received \[\]/,
      );
      expect(build({ issuers: [{ preset: 'github' } as never] })).toThrow(
        /issuers\[0\]\.audience must be the audience the jobs request .* received nothing/,
      );
      expect(build({ issuers: [{ preset: 'jenkins', audience: AUDIENCE } as never] })).toThrow(
        /issuers\[0\]\.preset must be one of github, gitlab; received "jenkins"/,
      );
      expect(
        build({
          issuers: [
            { preset: 'github', audience: AUDIENCE },
            { name: 'github', issuer: 'https://ghe.example.com/_services/token', audience: AUDIENCE },
          ],
        }),
      ).toThrow(/each trusted CI issuer must have its own name; received 'github' twice/);
      expect(build({ issuers: '[{"preset":"github"' })).toThrow(/issuers must be JSON such as .* received/);
    });

    it('refuses the root role path, and a path role-deny may not change', () => {
      expect(build({ rolePath: '/' })).toThrow(
        /CiCredentials: rolePath '\/' would let keywarden assume every IAM role/,
      );
      expect(build({ rolePath: '/ci*/' })).toThrow(/rolePath must be an IAM path .* received '\/ci\*\/'/);
      expect(build({ rolePath: '/elsewhere/' })).toThrow(
        /the role-deny function must be allowed the CI role path '\/elsewhere\/'.*\["\/breakglass\/","\/ci\/","\/pipelines\/"\]/,
      );
    });

    it('accepts only a recurring sweeper schedule', () => {
      expect(build({ sweeperSchedule: 'rate(1 minutes)' })).toThrow(
        /CiCredentials: schedule must be a recurring .* received "rate\(1 minutes\)"/,
      );
    });
  });

  it('is on only when a deployment lists an issuer (cdk.json lists none)', () => {
    expect(cdkJsonContext()['keywarden:ciIssuers']).toEqual([]);
    expect([undefined, [], '', ' ', '[]', '[ ]'].map(ciEnabled)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    expect([[{ preset: 'github', audience: AUDIENCE }], '[{}]', 'garbage'].map(ciEnabled)).toEqual([
      true,
      true,
      true,
    ]);
  });
});
