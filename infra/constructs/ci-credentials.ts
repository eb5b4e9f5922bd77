import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { KEYWARDEN_ENV } from '../../functions/handlers/env.ts';
import { functionErrorsAlarm } from '../alarm-topic.ts';
import { iamRolesArn } from '../arns.ts';
import { InfraConfigError } from '../errors.ts';
import type { KeywardenFunctionsProps } from '../function-props.ts';
import {
  DEFAULT_LOG_RETENTION,
  type KeywardenFunction,
  keywardenFunction,
  serviceEnvironment,
} from '../lambda-function.ts';
import { liveSchedule } from '../live-schedule.ts';
import { iam5ResourceFinding } from '../nag.ts';
import {
  type CiGateIssuer,
  type CiIssuerSetting,
  validateCiIssuers,
  validateCiRolePath,
  validateRecurringSchedule,
  validateVaultAddr,
} from '../settings.ts';
import { type Api, apiIntegration } from './api.ts';
import type { RoleDeny } from './role-deny.ts';

/** cdk context key that may hold the trusted CI issuers (an array, or its JSON); none: CI is off. */
export const CI_ISSUERS_CONTEXT = 'keywarden:ciIssuers';

/** cdk context key that may hold the CI role path when props do not. */
export const CI_ROLE_PATH_CONTEXT = 'keywarden:ciRolePath';

/** cdk context key that may hold the CI sweeper schedule when props do not. */
export const CI_SWEEPER_SCHEDULE_CONTEXT = 'keywarden:ciSweeperSchedule';

/** IAM path of the roles CI job grants may assume, unless props or context say otherwise. */
export const DEFAULT_CI_ROLE_PATH = '/ci/';

/** How often the CI sweeper runs, unless props or context say otherwise. */
export const DEFAULT_CI_SWEEPER_SCHEDULE = 'rate(1 minute)';

/** The alias of the approval signing key (one per account and region). */
export const APPROVAL_KEY_ALIAS = 'alias/keywarden-approvals';

/**
 * How a CI route is authenticated. `jwt`: the job's OIDC token, checked by API Gateway's JWT
 * authorizer for its issuer (signature, `iss`, `aud`, `exp`, `nbf`) and then by the handler
 * against the inventory's grants. `webhook`: no API Gateway authorization, because GitHub and
 * GitLab cannot sign with SigV4; the handler checks their signature (`X-Hub-Signature-256`) or
 * secret token (`X-Gitlab-Token`) before anything else. `iam`: SigV4, as the CLI's other routes.
 */
export type CiRouteAuth = 'jwt' | 'webhook' | 'iam';

/** One route the CI exchange adds to the HTTP API. */
export interface CiRoute {
  readonly method: apigwv2.HttpMethod;
  readonly path: string;
  readonly auth: CiRouteAuth;
}

const { DELETE, GET, POST } = apigwv2.HttpMethod;

/** The routes, in the order the handler documents them; the `jwt` ones are the first issuer's. */
export const CI_ROUTES: readonly CiRoute[] = [
  { method: POST, path: '/ci/credentials', auth: 'jwt' },
  { method: DELETE, path: '/ci/credentials/{exchangeId}', auth: 'jwt' },
  { method: POST, path: '/ci/webhooks/github', auth: 'webhook' },
  { method: POST, path: '/ci/webhooks/gitlab', auth: 'webhook' },
  { method: POST, path: '/ci/approvals', auth: 'iam' },
  { method: GET, path: '/ci/approvals', auth: 'iam' },
  { method: GET, path: '/ci/approvals/verify', auth: 'iam' },
];

/**
 * Where an issuer other than the first listed exchanges tokens: its own variant of a `jwt` route,
 * `/ci/issuers/<name>/credentials…`, behind its own JWT authorizer (one authorizer checks one issuer).
 */
export function issuerRoutePath(issuerName: string, path: string): string {
  return path.replace(/^\/ci\//, `/ci/issuers/${issuerName}/`);
}

/**
 * Whether a deployment turns CI credentials on: it lists at least one trusted issuer. Absent, an
 * empty list or an empty string (`-c keywarden:ciIssuers=`) is off; anything else is on, and
 * {@link CiCredentials} validates it.
 */
export function ciEnabled(issuers: unknown): boolean {
  if (issuers === undefined || issuers === null) return false;
  if (Array.isArray(issuers)) return issuers.length > 0;
  if (typeof issuers === 'string') return !/^\s*(?:\[\s*\])?\s*$/.test(issuers);
  return true;
}

/** The CI role path from props, else the `keywarden:ciRolePath` context value, else `/ci/`, validated. */
export function ciRolePathOf(scope: Construct, rolePath: string | undefined): string {
  const fromContext: unknown = scope.node.tryGetContext(CI_ROLE_PATH_CONTEXT);
  return validateCiRolePath(
    'CiCredentials',
    rolePath ?? (fromContext === undefined ? DEFAULT_CI_ROLE_PATH : String(fromContext)),
  );
}

/** Properties of {@link CiCredentials}. */
export interface CiCredentialsProps extends KeywardenFunctionsProps {
  /** The HTTP API the CI routes are added to (served by this construct's own function, {@link CiCredentials.handler}). */
  readonly api: Api;
  /**
   * The one function that puts deny policies on roles: ending a job's AWS session early (the CI
   * function) and releasing the deny once its sessions are dead (the sweeper) go through it. Its
   * `rolePaths` must include {@link rolePath}.
   */
  readonly roleDeny: RoleDeny;
  /**
   * The OIDC issuers whose job tokens the API's JWT authorizer lets through to the exchange, each
   * with the audience its jobs request: the `iss` and `aud` of the inventory's `ci.issuers`
   * entries. The first listed guards `POST /ci/credentials` and `DELETE /ci/credentials/{exchangeId}`;
   * each further issuer gets the same two routes under `/ci/issuers/<name>/`, behind an authorizer
   * of its own, because an API Gateway JWT authorizer checks exactly one issuer. API Gateway
   * verifies RSA signatures only (GitHub and GitLab sign with RS256). May be given as JSON (cdk
   * context from the command line: `-c keywarden:ciIssuers='[{"preset":"github","audience":"…"}]'`).
   */
  readonly issuers: readonly CiIssuerSetting[] | string;
  /**
   * IAM path of the roles CI job grants may assume (with the job's SourceIdentity) and deny; the
   * root path is refused. Those roles must trust the CI function's role (stack output
   * `CiFunctionRoleArn`) for `sts:AssumeRole` and `sts:SetSourceIdentity`.
   *
   * @default the `keywarden:ciRolePath` context value, else '/ci/'
   */
  readonly rolePath?: string | undefined;
  /**
   * EventBridge Scheduler `rate(…)` or `cron(…)` expression (UTC) of the CI sweeper, the third
   * guarantee that a job's credentials end.
   *
   * @default the `keywarden:ciSweeperSchedule` context value, else `rate(1 minute)`
   */
  readonly sweeperSchedule?: string | undefined;
  /** Where the sweeper's and the CI function's alarms notify. @default no alarm */
  readonly alarmTopic?: sns.ITopic | undefined;
}

/**
 * CI job credentials (issue #13): a job's OIDC token exchanged for a short-lived Vault/OpenBao
 * token or AWS role session, ended when the job ends, and approvals bound to an artifact digest.
 *
 * - **Routes** on the existing HTTP API ({@link CI_ROUTES}), served by a function of their own
 *   ({@link handler}, `functions/handlers/api-ci.ts`), which routes nothing else: the exchange
 *   behind one JWT authorizer per trusted issuer (the first gate; the handler verifies the token
 *   again, with replay protection, against the inventory's grants), the GitHub and GitLab
 *   webhooks open (the handler checks their signature), approvals behind SigV4. The CI routes'
 *   function lives here, beside the routes, key, secrets and role path it alone uses: a stack
 *   without CI carries none of it, and the API's own functions hold no CI permission.
 * - **CI function**'s role: the state table; keywarden's service secrets (the fingerprint key,
 *   the Vault token that issues job tokens) and the two webhook secrets; sign and verify with
 *   the approval key; assume roles under {@link rolePath}; invoke the role-deny function (and the
 *   exposure scanner's, when the stack has one). No break-glass role, schedule or state machine.
 * - **Approval key** ({@link approvalKey}): ECC_NIST_P256, SIGN_VERIFY, `alias/keywarden-approvals`,
 *   retained (approvals signed with it must stay verifiable). Sign, verify and read its public
 *   key: the CI function (the CLI's `approve` and `approvals verify` go through the API) and the
 *   Slack worker (Slack's Approve button).
 * - **Webhook secrets** ({@link githubWebhookSecret}, {@link gitlabWebhookSecret}): generated at
 *   deploy, pasted by the operator into the GitHub webhook's *Secret* and the GitLab webhook's
 *   *Secret token*; readable by the CI function only.
 * - **Sessions**: the CI function may assume roles under {@link rolePath} with the job's
 *   SourceIdentity, nothing else in STS; a session ended early gets a deny on its
 *   SourceIdentity from the role-deny function, which the CI function invokes.
 * - **Sweeper** (`functions/handlers/ci-sweeper.ts`, every minute): ends credentials past their
 *   TTL in the records, releases AWS denies once the sessions they cover are dead (through the
 *   role-deny function), records Vault use.
 *
 * A CI session's AWS calls (CloudTrail, by its `ci-` SourceIdentity) are recorded as used, and
 * judged after the job's end, by the use monitor (./use-monitor.ts), which every stack has.
 */
export class CiCredentials extends Construct {
  /** The validated trusted issuers; the first guards the canonical exchange routes. */
  readonly issuers: readonly CiGateIssuer[];
  /** IAM path of the roles CI grants may assume, e.g. `/ci/`. */
  readonly rolePath: string;
  /** ARN pattern of every role under {@link rolePath} in this account. */
  readonly rolesArn: string;
  /** One JWT authorizer per issuer, by issuer name. */
  readonly authorizers: ReadonlyMap<string, HttpJwtAuthorizer>;
  /** The routes added to the API, by `METHOD /path`. */
  readonly routes: ReadonlyMap<string, apigwv2.HttpRoute>;
  /** The CI function: serves {@link routes}, and nothing else. */
  readonly handler: KeywardenFunction;
  /** The CI function failed (an error or timeout, not a 4xx) within 5 minutes. */
  readonly handlerErrorsAlarm: cloudwatch.Alarm | undefined;
  /** The asymmetric key approvals are signed with. */
  readonly approvalKey: kms.Key;
  /** The GitHub webhook secret (`X-Hub-Signature-256`); generated at deploy. */
  readonly githubWebhookSecret: secretsmanager.Secret;
  /** The GitLab webhook secret token (`X-Gitlab-Token`); generated at deploy. */
  readonly gitlabWebhookSecret: secretsmanager.Secret;
  /** Ends expired CI credentials and releases denies; invoked by {@link sweeperSchedule}. */
  readonly sweeper: KeywardenFunction;
  /** The `live` alias the sweeper schedule invokes. */
  readonly sweeperAlias: lambda.Alias;
  /** The recurring sweeper schedule. */
  readonly sweeperSchedule: scheduler.Schedule;
  /** The role the sweeper schedule runs as: may invoke the sweeper alias only. */
  readonly sweeperSchedulerRole: iam.Role;
  /** The sweeper failed within the last 5 minutes. */
  readonly sweeperErrorsAlarm: cloudwatch.Alarm | undefined;

  constructor(scope: Construct, id: string, props: CiCredentialsProps) {
    super(scope, id);

    // Validate everything before creating a child, so a bad value fails fast and bundling never starts.
    this.issuers = validateCiIssuers('CiCredentials', props.issuers);
    this.rolePath = ciRolePathOf(this, props.rolePath);
    const sweeperExpression = validateRecurringSchedule(
      'CiCredentials',
      props.sweeperSchedule ??
        this.node.tryGetContext(CI_SWEEPER_SCHEDULE_CONTEXT) ??
        DEFAULT_CI_SWEEPER_SCHEDULE,
      ['rate(1 minute)', 'cron(* * * * ? *)'],
    );
    const { api, roleDeny, stateStore, secrets } = props;
    const vaultAddr = validateVaultAddr('CiCredentials', props.vaultAddr);
    if (!roleDeny.rolePaths.includes(this.rolePath)) {
      throw new InfraConfigError(
        `CiCredentials: the role-deny function must be allowed the CI role path '${this.rolePath}', or a job's session cannot be ended early; received a RoleDeny with rolePaths ${JSON.stringify(roleDeny.rolePaths)}. Add '${this.rolePath}' to them.`,
      );
    }

    const stack = Stack.of(this);
    const logRetention = props.logRetention ?? DEFAULT_LOG_RETENTION;
    this.rolesArn = iamRolesArn(this, this.rolePath);

    // The CI function: the CI routes' only server. Settings and permissions are added below, beside what they name.

    this.handler = keywardenFunction(this, 'Handler', {
      handlerFile: 'api-ci.ts',
      description: 'keywarden API: CI job credentials (OIDC token exchange, webhooks) and artifact approvals',
      roleDescription:
        'keywarden API CI: exchanges job OIDC tokens for Vault tokens and role sessions under the CI path, ends them, signs approvals; no break-glass role',
      memorySize: 512,
      // HTTP requests end at API Gateway's 30 seconds.
      timeout: Duration.seconds(30),
      logRetention,
      // The Vault token issues jobs' Vault tokens (and revokes them early).
      environment: serviceEnvironment({ stateStore, secrets, vaultAddr }),
    });
    const ciRole = this.handler.role;
    const ciFunction = this.handler.function;
    secrets.grantRead(ciRole);
    stateStore.grantReadWriteData(ciRole);
    // Ending a job's AWS session early: a deny on its SourceIdentity, put by the role-deny function.
    roleDeny.grantInvoke(this.handler);

    // Routes: the exchange behind each issuer's JWT authorizer, webhooks open, approvals signed.

    const authorizers = new Map<string, HttpJwtAuthorizer>();
    for (const issuer of this.issuers) {
      authorizers.set(
        issuer.name,
        new HttpJwtAuthorizer(`CiJwt-${issuer.name}`, issuer.issuer, { jwtAudience: [issuer.audience] }),
      );
    }
    this.authorizers = authorizers;
    const iamAuthorizer = new HttpIamAuthorizer();
    // One integration, and one invoke permission, for every CI route.
    const integration = apiIntegration('CiHandler', this.handler);
    const routes = new Map<string, apigwv2.HttpRoute>();
    const addRoute = (
      method: apigwv2.HttpMethod,
      path: string,
      authorizer?: apigwv2.IHttpRouteAuthorizer,
    ) => {
      const route = new apigwv2.HttpRoute(
        this,
        `${method}${path.replace(/[{}]/g, '').replace(/\//g, '--')}`,
        {
          httpApi: api.httpApi,
          routeKey: apigwv2.HttpRouteKey.with(path, method),
          integration,
          ...(authorizer === undefined ? {} : { authorizer }),
        },
      );
      routes.set(`${method} ${path}`, route);
      return route;
    };
    for (const route of CI_ROUTES) {
      if (route.auth === 'jwt') {
        this.issuers.forEach((issuer, index) => {
          const path = index === 0 ? route.path : issuerRoutePath(issuer.name, route.path);
          addRoute(route.method, path, authorizers.get(issuer.name));
        });
      } else if (route.auth === 'iam') {
        addRoute(route.method, route.path, iamAuthorizer);
      } else {
        const open = addRoute(route.method, route.path);
        NagSuppressions.addResourceSuppressions(open, [
          {
            id: 'AwsSolutions-APIG4',
            reason:
              "GitHub and GitLab deliver webhooks without SigV4 or a JWT, so API Gateway authorization is off here by necessity. The CI function authenticates each delivery before anything else: GitHub's X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the webhook secret, compared in constant time) or GitLab's X-Gitlab-Token (compared in constant time); a delivery that fails changes nothing. A webhook can only end a job's credentials, never issue any.",
          },
        ]);
      }
    }
    this.routes = routes;

    // Approval signatures: an asymmetric key, kept whatever happens to the stack.

    this.approvalKey = new kms.Key(this, 'ApprovalKey', {
      description:
        'keywarden: signs artifact approvals (CI gates); retained so every recorded approval stays verifiable',
      keySpec: kms.KeySpec.ECC_NIST_P256,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      alias: APPROVAL_KEY_ALIAS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.grantApprovalSigning(ciRole);
    ciFunction.addEnvironment(KEYWARDEN_ENV.approvalKeyId, this.approvalKey.keyId);
    // Slack's Approve button is recorded by the Slack worker (after the ingress acknowledged it).
    this.grantApprovalSigning(props.api.slackWorker.role);
    props.api.slackWorker.function.addEnvironment(KEYWARDEN_ENV.approvalKeyId, this.approvalKey.keyId);

    // Webhook secrets: the operator copies each into the platform's webhook settings.

    const namePrefix = secrets.namePrefix;
    this.githubWebhookSecret = new secretsmanager.Secret(this, 'GitHubWebhookSecret', {
      secretName: `${namePrefix}ci-github-webhook-secret`,
      description:
        "Secret of keywarden's GitHub workflow_job webhook (X-Hub-Signature-256). Generated at deploy: paste it into the webhook's Secret field.",
      generateSecretString: { passwordLength: 40, excludePunctuation: true },
      // Nothing stored depends on it; a new stack makes a new one to paste.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.gitlabWebhookSecret = new secretsmanager.Secret(this, 'GitLabWebhookSecret', {
      secretName: `${namePrefix}ci-gitlab-webhook-secret`,
      description:
        "Secret token of keywarden's GitLab job events webhook (X-Gitlab-Token). Generated at deploy: paste it into the webhook's Secret token field.",
      generateSecretString: { passwordLength: 40, excludePunctuation: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    for (const [secret, platform] of [
      [this.githubWebhookSecret, 'GitHub'],
      [this.gitlabWebhookSecret, 'GitLab'],
    ] as const) {
      NagSuppressions.addResourceSuppressions(secret, [
        {
          id: 'AwsSolutions-SMG4',
          reason: `The value must equal the one configured in the ${platform} webhook, which Secrets Manager cannot update: a timed rotation would make every delivery fail its signature check (jobs' credentials would then end only by TTL and the sweeper). It is replaced deliberately, here and in ${platform} together, when it may have leaked.`,
        },
      ]);
    }
    ciRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadCiWebhookSecrets',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.githubWebhookSecret.secretArn, this.gitlabWebhookSecret.secretArn],
      }),
    );
    ciFunction.addEnvironment(KEYWARDEN_ENV.githubWebhookSecretArn, this.githubWebhookSecret.secretArn);
    ciFunction.addEnvironment(KEYWARDEN_ENV.gitlabWebhookSecretArn, this.gitlabWebhookSecret.secretArn);

    // Sessions: AssumeRole with the job's SourceIdentity, roles under the CI path only. Ending one
    // early is a deny put by the role-deny function, which the CI function invokes (above).

    ciRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'AssumeCiRoles',
        actions: ['sts:AssumeRole', 'sts:SetSourceIdentity'],
        resources: [this.rolesArn],
      }),
    );
    // The up-front check that the grant's role exists under that exact ARN (a clear error naming
    // the path or account to fix, before STS's bare refusal); without it every exchange paid an
    // AccessDenied round trip and skipped the check.
    ciRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadCiRoles',
        actions: ['iam:GetRole'],
        resources: [this.rolesArn],
      }),
    );
    ciFunction.addEnvironment(KEYWARDEN_ENV.ciRolePath, this.rolePath);
    NagSuppressions.addResourceSuppressions(
      ciRole,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason: `CI job grants name their roles in the inventory, not known at deploy time. AssumeRole (with the job's SourceIdentity naming the job; no session tags) and the check that the role exists (GetRole, read-only) are limited to roles under the CI path '${this.rolePath}' in this account, each of which must also trust this function's role; sessions last 900 s. No IAM write: an early end's deny is put by the role-deny function.`,
          appliesTo: [iam5ResourceFinding(this, this.rolesArn)],
        },
      ],
      true,
    );

    // Sweeper: the third guarantee, within a minute or two even if the job's post step and webhook never came.

    this.sweeper = keywardenFunction(this, 'Sweeper', {
      handlerFile: 'ci-sweeper.ts',
      description:
        'keywarden CI sweeper: records CI credentials past their TTL as ended, releases denies on dead sessions',
      roleDescription:
        'keywarden CI sweeper: records expired CI credentials as ended, invokes role-deny, uses the state table; no Vault token',
      memorySize: 512,
      timeout: Duration.seconds(50),
      logRetention,
      // Sweeps never overlap: two would race to end the same credentials.
      reservedConcurrentExecutions: 1,
      // No Vault address or token: a job's Vault token ends by its own TTL, and the post step and
      // webhooks (the API) revoke the early ones; the sweeper only records the end.
      environment: {
        table: stateStore.table.tableName,
        fingerprintKeySecretArn: secrets.fingerprintKey.secretArn,
      },
    });
    // The fingerprint key only: every function's configuration reads it at cold start.
    secrets.grantRead(this.sweeper.role, { vaultToken: false });
    stateStore.grantReadWriteData(this.sweeper.role);
    roleDeny.grantInvoke(this.sweeper);
    ({
      alias: this.sweeperAlias,
      role: this.sweeperSchedulerRole,
      schedule: this.sweeperSchedule,
    } = liveSchedule(this, this.sweeper.function, {
      idPrefix: 'Sweeper',
      roleDescription: 'keywarden CI: lets EventBridge Scheduler invoke the CI sweeper, nothing else',
      description: 'keywarden: end CI credentials past their TTL',
      expression: sweeperExpression,
      // The next sweep supersedes a missed one.
      maxEventAge: Duration.minutes(1),
      retryAttempts: 0,
    }));

    // Alarms.

    if (props.alarmTopic) {
      const alarmNamePrefix = `${stack.stackName}-ci-`;
      this.handlerErrorsAlarm = functionErrorsAlarm(this, 'HandlerErrorsAlarm', {
        fn: this.handler.function,
        name: `${alarmNamePrefix}api-errors`,
        text: "keywarden: the CI function failed (crashed or timed out) in the last 5 minutes, so a job's token exchange, a webhook's end of a job's credentials or an artifact approval may not have happened. Credentials still end by their TTL and the sweeper; read the function's logs and fix the cause.",
        topic: props.alarmTopic,
      });
      this.sweeperErrorsAlarm = functionErrorsAlarm(this, 'SweeperErrorsAlarm', {
        fn: this.sweeper.function,
        name: `${alarmNamePrefix}sweeper-errors`,
        text: "keywarden: the CI sweeper failed in the last 5 minutes, so CI credentials past their TTL may still be recorded live, or a deny on a dead session not released. Vault tokens and AWS sessions still end by their own TTL; read the sweeper's logs and fix the cause.",
        topic: props.alarmTopic,
      });
    } else {
      this.handlerErrorsAlarm = undefined;
      this.sweeperErrorsAlarm = undefined;
    }
  }

  /**
   * Lets `role` sign and verify approvals and read the key's public half (statement
   * `SignApprovals`, {@link approvalKey} only). The CI function and the Slack worker have it;
   * give it to nothing that does not record approvals.
   */
  grantApprovalSigning(role: iam.IRole): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'SignApprovals',
        actions: ['kms:Sign', 'kms:Verify', 'kms:GetPublicKey'],
        resources: [this.approvalKey.keyArn],
      }),
    );
  }

  /**
   * Lets `role` verify approvals (statement `VerifyApprovals`: `kms:Verify` and
   * `kms:GetPublicKey` on {@link approvalKey} only), for anything that checks the chain without
   * recording approvals.
   */
  grantApprovalVerify(role: iam.IRole): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'VerifyApprovals',
        actions: ['kms:Verify', 'kms:GetPublicKey'],
        resources: [this.approvalKey.keyArn],
      }),
    );
  }
}
