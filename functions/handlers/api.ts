/**
 * The HTTP API: one handler behind API Gateway (HTTP API, payload format 2.0) in AWS, and
 * behind the local runtime's server on a laptop (functions/local/api-server.ts).
 *
 * - `/roles`, `/grants…`, `/campaigns…` are called by the CLI, signed with SigV4 and checked
 *   by API Gateway's IAM authorizer: the caller's principal is the IAM ARN it puts in
 *   `requestContext.authorizer.iam`. Locally, the server checks a development token and
 *   puts the user in `requestContext.authorizer.lambda.localUser`, which only a handler
 *   built with `acceptLocalPrincipals` believes.
 * - `/slack/commands` and `/slack/interactions` carry no IAM signature: Slack signs them
 *   (v0 HMAC, checked here in constant time, 5-minute window). A delivery already handled
 *   (a Slack retry, or a replay of a captured request) is answered 200 and dropped.
 *   Slack waits 3 seconds: `/breakglass` is answered at once (one conditional write);
 *   button clicks and `/revoke` are acknowledged at once and done after, through `defer`,
 *   with the outcome posted to the `response_url`.
 *
 * The API description is api/openapi.yaml; test/unit/api-routes.test.ts keeps the two equal.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { z } from 'zod';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { campaignApi } from '../adapters/campaign-api.ts';
import { type PlannedCampaign, StepFunctionsCampaignLauncher } from '../adapters/campaign-launcher.ts';
import {
  parseBreakglassCommand,
  parseInteraction,
  parseRevokeCommand,
  parseSlashCommand,
} from '../adapters/slack/commands.ts';
import {
  campaignProgressMessage,
  campaignStartedMessage,
  grantDecidedMessage,
  grantRequestedMessage,
  noticeMessage,
  refusalMessage,
  type SlackMessage,
} from '../adapters/slack/messages.ts';
import { SlackResponder } from '../adapters/slack/responder.ts';
import { isSlackRetry, slackDeliveryKey, verifySlackRequest } from '../adapters/slack/verify.ts';
import { wire } from '../adapters/wiring.ts';
import * as breakglass from '../core/breakglass.ts';
import type { CampaignCounts } from '../core/campaign.ts';
import { canonicalJson } from '../core/canonical-json.ts';
import { ConflictError, KeywardenError, NotFoundError, ValidationError } from '../core/errors.ts';
import { type Grant, GrantStateSchema, type Principal, RefusalError } from '../core/grant.ts';
import type { DeliveryLedger, IssuedGrantCredential, StoredCampaign, StoredGrant } from '../core/ports.ts';
import { SecretValue } from '../core/secret-value.ts';
import { optionalEnv, requireEnv } from './env.ts';
import { coldStart, loadLambdaConfig, readSecret } from './lambda-config.ts';

/** Work Slack must not wait for: done after the 3-second answer, its outcome posted to `responseUrl`. */
export const DeferredJobSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('decide'),
    action: z.enum(['approve', 'deny']),
    grantId: z.string().min(1),
    userId: z.string().min(1),
    responseUrl: z.string().min(1),
  }),
  z.strictObject({
    kind: z.literal('revoke'),
    incident: z.string().min(1),
    selectors: z.array(z.string().min(1)).min(1),
    reissue: z.boolean(),
    userId: z.string().min(1),
    responseUrl: z.string().min(1),
  }),
]);
export type DeferredJob = z.infer<typeof DeferredJobSchema>;

/**
 * The MAC that makes a deferred job trustworthy: it acts as a Slack user, and whoever may
 * invoke the function (not only API Gateway) could otherwise forge one. Keyed with the
 * Slack signing secret, which only keywarden and Slack hold.
 */
export function deferredJobMac(signingSecret: SecretValue, job: DeferredJob): string {
  return createHmac('sha256', signingSecret.reveal())
    .update(`keywarden-deferred:${canonicalJson(job)}`)
    .digest('hex');
}

/** A deferred job with a valid MAC, or a refusal. */
export function verifyDeferredJob(signingSecret: SecretValue, event: unknown): DeferredJob {
  const parsed = z.object({ keywardenDeferred: DeferredJobSchema, mac: z.string() }).safeParse(event);
  if (!parsed.success)
    throw new ValidationError('expected a deferred Slack job with its MAC; refusing the invocation');
  const expected = Buffer.from(deferredJobMac(signingSecret, parsed.data.keywardenDeferred));
  const given = Buffer.from(parsed.data.mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    throw new RefusalError('a deferred Slack job arrived with a MAC that does not match; refusing it');
  }
  return parsed.data.keywardenDeferred;
}

/** Starting and reading incident campaigns (Slack `/revoke`, `POST /campaigns`). */
export interface CampaignApi {
  /** Plans (and unless `dryRun`, stores and launches) a campaign; see planAndStoreCampaign. */
  start(
    input: { incident: string; selectors: string[]; reissue: boolean; dryRun: boolean },
    actor: string,
  ): Promise<PlannedCampaign>;
  status(campaignId: string): Promise<{ campaign: StoredCampaign; counts: CampaignCounts } | undefined>;
  /** The Slack users who may start a campaign from Slack. */
  slackResponders: () => Promise<readonly string[]>;
}

export interface SlackDeps {
  signingSecret: SecretValue;
  ledger: DeliveryLedger;
  /** Posts a message to a Slack `response_url` (checked against the allowed hosts). */
  respond: (responseUrl: string, message: SlackMessage) => Promise<void>;
  /** Runs a job after the answer: an async self-invocation in Lambda, a queued task locally. */
  defer: (job: DeferredJob) => Promise<void>;
}

export interface ApiDeps {
  breakglass: breakglass.BreakglassDeps;
  /** Only the local runtime sets this: it is the one caller that checked a development token. */
  acceptLocalPrincipals: boolean;
  /** The AWS region sessions are valid in, and the Vault address wrapped tokens unwrap at. */
  region: string;
  vaultAddr?: string | undefined;
  report: (grantId: string) => Promise<{ report: unknown; markdown: string }>;
  campaigns?: CampaignApi | undefined;
  slack?: SlackDeps | undefined;
  /** Where unexpected failures are logged (never a secret: keywarden's errors hold none). */
  log?: ((line: string) => void) | undefined;
  /** How `/revoke` posts progress: every `everyMs` until the campaign ends or `deadlineMs` passes. */
  progress?: { everyMs: number; deadlineMs: number } | undefined;
}

export type ApiEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: { iam?: { userArn?: string }; lambda?: { localUser?: string } };
  };
};
export type ApiResult = APIGatewayProxyResultV2 & { statusCode: number; body: string };

/** How long a Slack delivery is remembered: longer than Slack's retries and the 5-minute window. */
const DELIVERY_MEMORY_SECONDS = 15 * 60;

class UnauthenticatedError extends KeywardenError {
  override readonly name = 'UnauthenticatedError';
}

const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}): ApiResult => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  body: JSON.stringify(body),
});

const errorCode: [new (...args: never[]) => Error, number, string][] = [
  [UnauthenticatedError, 401, 'unauthenticated'],
  [RefusalError, 403, 'refused'],
  [NotFoundError, 404, 'not-found'],
  [ValidationError, 400, 'bad-request'],
  [ConflictError, 409, 'conflict'],
];

function errorResult(error: unknown, requestId: string, log: (line: string) => void): ApiResult {
  for (const [type, status, code] of errorCode) {
    if (error instanceof type) return json(status, { error: { code, message: error.message } });
  }
  // Anything else may carry details a caller must not see: name and message go to the log
  // (keywarden's errors hold no secret values), the caller gets the request id to find them.
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  log(`request ${requestId} failed: ${name}: ${message}`);
  return json(500, {
    error: {
      code: 'internal',
      message: `keywarden failed; the function log has the cause (request ${requestId})`,
    },
  });
}

/** A grant as the API shows it: without the store's revision. */
const view = ({ rev: _rev, ...grant }: StoredGrant): Grant => grant;
const viewCampaign = ({ rev: _rev, ...campaign }: StoredCampaign) => campaign;

function rawBody(event: ApiEvent): string {
  if (!event.body) return '';
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}

function jsonBody<S extends z.ZodType>(event: ApiEvent, schema: S): z.infer<S> {
  let value: unknown = {};
  const text = rawBody(event);
  if (text) {
    try {
      value = JSON.parse(text);
    } catch {
      throw new ValidationError('expected a JSON body, got something that does not parse as JSON');
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ValidationError(
      `expected ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}

const RequestBodySchema = z.strictObject({
  roleId: z.string().min(1),
  duration: z.string().min(1),
  reason: z.string().min(1),
  incident: z.string().min(1).optional(),
});
const DenyBodySchema = z.strictObject({ reason: z.string().optional() });
const ReviewBodySchema = z.strictObject({ notes: z.string() });
const CampaignBodySchema = z.strictObject({
  incident: z.string().min(1),
  selectors: z.array(z.string().min(1)).min(1),
  reissue: z.boolean().default(false),
  dryRun: z.boolean().default(false),
});

/** The credential as the requester receives it; the only place its clear value leaves keywarden. */
function disclose(credential: IssuedGrantCredential, deps: ApiDeps) {
  if (credential.type === 'aws-session') {
    return {
      type: credential.type,
      ...(credential.credentials.revealJson() as {
        accessKeyId: string;
        secretAccessKey: string;
        sessionToken: string;
      }),
      expiresAt: credential.expiresAt,
      region: deps.region,
    };
  }
  return {
    type: credential.type,
    wrappingToken: credential.wrappingToken.reveal(),
    wrapExpiresAt: credential.wrapExpiresAt,
    expiresAt: credential.expiresAt,
    vaultAddr: deps.vaultAddr,
  };
}

type Handler = (
  event: ApiEvent,
  params: Record<string, string>,
  caller: () => Principal,
) => Promise<ApiResult>;

interface Route {
  method: 'GET' | 'POST';
  path: string;
  run: (deps: ApiDeps) => Handler;
}

/** Every route; api/openapi.yaml describes exactly these. */
export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/roles',
    run: (deps) => async () => json(200, { roles: (await deps.breakglass.config()).roles }),
  },
  {
    method: 'POST',
    path: '/grants',
    run: (deps) => async (event, _params, caller) =>
      json(201, {
        grant: view(await breakglass.request(deps.breakglass, caller(), jsonBody(event, RequestBodySchema))),
      }),
  },
  {
    method: 'GET',
    path: '/grants',
    run: (deps) => async (event, _params, caller) => {
      caller();
      const state = event.queryStringParameters?.state;
      const parsedState = state === undefined ? undefined : GrantStateSchema.safeParse(state);
      if (parsedState && !parsedState.success) {
        throw new ValidationError(
          `expected state to be one of ${GrantStateSchema.options.join(', ')}, got ${JSON.stringify(state)}`,
        );
      }
      const states = parsedState?.success ? [parsedState.data] : undefined;
      const grants = await deps.breakglass.grants.listGrants(states ? { states } : {});
      return json(200, { grants: grants.map(view) });
    },
  },
  {
    method: 'GET',
    path: '/grants/{grantId}',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) => {
        caller();
        const grant = await deps.breakglass.grants.getGrant(grantId);
        if (!grant) throw new NotFoundError(`no grant ${JSON.stringify(grantId)}`);
        return json(200, { grant: view(grant) });
      },
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/approve',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) =>
        json(200, { grant: view(await breakglass.approve(deps.breakglass, caller(), grantId)) }),
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/deny',
    run:
      (deps) =>
      async (event, { grantId = '' }, caller) => {
        const { reason } = jsonBody(event, DenyBodySchema);
        return json(200, { grant: view(await breakglass.deny(deps.breakglass, caller(), grantId, reason)) });
      },
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/credentials',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) => {
        const { grant, credential } = await breakglass.issueCredentials(deps.breakglass, caller(), grantId);
        return json(200, { grant: view(grant), credential: disclose(credential, deps) });
      },
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/revoke',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) =>
        json(200, { grant: view(await breakglass.revoke(deps.breakglass, caller(), grantId)) }),
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/review',
    run:
      (deps) =>
      async (event, { grantId = '' }, caller) => {
        const { notes } = jsonBody(event, ReviewBodySchema);
        return json(200, { grant: view(await breakglass.review(deps.breakglass, caller(), grantId, notes)) });
      },
  },
  {
    method: 'GET',
    path: '/grants/{grantId}/report',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) => {
        caller();
        return json(200, await deps.report(grantId));
      },
  },
  {
    method: 'POST',
    path: '/campaigns',
    run: (deps) => async (event, _params, caller) => {
      const principal = caller();
      const body = jsonBody(event, CampaignBodySchema);
      const planned = await campaignsOf(deps).start(body, `${principal.kind}:${principal.id}`);
      const { summary } = planned;
      return json(planned.status === 'stored' ? 202 : 200, {
        status: planned.status,
        ...(planned.status === 'stored' ? { campaign: viewCampaign(planned.campaign) } : {}),
        plan: { counts: summary.counts, reissue: summary.reissue, targets: summary.targets },
      });
    },
  },
  {
    method: 'GET',
    path: '/campaigns/{campaignId}',
    run:
      (deps) =>
      async (_event, { campaignId = '' }, caller) => {
        caller();
        const status = await campaignsOf(deps).status(campaignId);
        if (!status) throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)}`);
        return json(200, status);
      },
  },
  { method: 'POST', path: '/slack/commands', run: (deps) => (event) => slackCommand(deps, event) },
  { method: 'POST', path: '/slack/interactions', run: (deps) => (event) => slackInteraction(deps, event) },
];

function campaignsOf(deps: ApiDeps): CampaignApi {
  if (!deps.campaigns) throw new NotFoundError('campaigns are not served by this deployment');
  return deps.campaigns;
}

function match(route: Route, method: string, path: string): Record<string, string> | undefined {
  if (route.method !== method) return undefined;
  const want = route.path.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const value = got[i] ?? '';
    if (part.startsWith('{')) {
      if (!value) return undefined;
      params[part.slice(1, -1)] = decodeURIComponent(value);
    } else if (part !== value) return undefined;
  }
  return params;
}

/** The caller of a SigV4 route: the IAM principal API Gateway checked, or a local development user. */
function principalOf(deps: ApiDeps, event: ApiEvent): Principal {
  const authorizer = event.requestContext.authorizer;
  const arn = authorizer?.iam?.userArn;
  if (arn) return { kind: 'aws', id: arn };
  const localUser = authorizer?.lambda?.localUser;
  if (deps.acceptLocalPrincipals && localUser) return { kind: 'local', id: localUser };
  throw new UnauthenticatedError(
    'expected a SigV4-signed request (AWS) or a development token (local runtime); the request had neither',
  );
}

// ---- Slack ------------------------------------------------------------------------------

/** Checks Slack's signature and de-duplicates deliveries; every refusal is audited. */
async function slackGate(
  deps: ApiDeps,
  event: ApiEvent,
  route: string,
): Promise<{ slack: SlackDeps; body: string } | ApiResult> {
  const slack = deps.slack;
  if (!slack) return json(404, { error: { code: 'not-found', message: 'Slack is not configured here' } });
  const body = rawBody(event);
  const headers = event.headers ?? {};
  const audit = (reason: string) =>
    deps.breakglass.audit.append({
      type: 'grant.refused',
      actor: 'slack:unverified',
      subject: route,
      details: { action: 'slack-delivery', reason },
    });
  const verdict = verifySlackRequest({
    signingSecret: slack.signingSecret,
    headers,
    rawBody: body,
    now: deps.breakglass.clock.now(),
  });
  if (!verdict.ok) {
    await audit(verdict.message);
    return json(401, { error: { code: 'bad-slack-signature', message: verdict.message } });
  }
  const first = await slack.ledger.firstDelivery(slackDeliveryKey(headers, body), DELIVERY_MEMORY_SECONDS);
  // A retry whose first delivery never reached us has a new key and is handled like a first one.
  if (!first) {
    const reason = isSlackRetry(headers)
      ? `Slack retry ${headers['x-slack-retry-num']} (${headers['x-slack-retry-reason'] ?? 'no reason given'}) of a delivery already handled: ignored`
      : 'a delivery already handled (replayed): ignored';
    await audit(reason);
    // 200, so Slack stops retrying; the header says why for whoever reads the trace.
    return { statusCode: 200, headers: { 'x-keywarden-duplicate': 'true' }, body: '' };
  }
  return { slack, body };
}

const slackMessage = (message: SlackMessage): ApiResult => json(200, message);

async function slackCommand(deps: ApiDeps, event: ApiEvent): Promise<ApiResult> {
  const gate = await slackGate(deps, event, 'slack:commands');
  if ('statusCode' in gate) return gate;
  const { slack, body } = gate;
  let command: ReturnType<typeof parseSlashCommand>;
  try {
    command = parseSlashCommand(body);
  } catch (error) {
    return slackMessage(refusalMessage((error as Error).message));
  }
  const requester: Principal = {
    kind: 'slack',
    id: command.userId,
    ...(command.userName ? { name: command.userName } : {}),
  };
  try {
    if (command.command === '/breakglass') {
      const input = parseBreakglassCommand(command.text);
      const grant = await breakglass.request(deps.breakglass, requester, input);
      const role = breakglass.roleById(await deps.breakglass.config(), grant.roleId);
      return slackMessage(grantRequestedMessage(view(grant), role));
    }
    if (command.command === '/revoke') {
      const input = parseRevokeCommand(command.text);
      const responders = deps.campaigns ? await deps.campaigns.slackResponders() : [];
      if (!responders.includes(command.userId)) {
        throw new RefusalError(
          `slack:${command.userId} may not start a revocation from Slack: /revoke is for the approvers listed in the inventory (breakglass.incidentResponders)`,
        );
      }
      await slack.defer({
        kind: 'revoke',
        ...input,
        userId: command.userId,
        responseUrl: command.responseUrl,
      });
      return slackMessage(
        noticeMessage(`Planning the revocation for ${input.incident}… progress follows in this channel.`),
      );
    }
    throw new ValidationError(`expected /breakglass or /revoke, got ${command.command}`);
  } catch (error) {
    if (error instanceof RefusalError) {
      await deps.breakglass.audit.append({
        type: 'grant.refused',
        actor: `slack:${command.userId}`,
        subject: command.command,
        details: { action: 'slack-command', reason: error.message },
      });
    }
    if (error instanceof RefusalError || error instanceof ValidationError || error instanceof NotFoundError) {
      return slackMessage(refusalMessage(error.message));
    }
    throw error;
  }
}

async function slackInteraction(deps: ApiDeps, event: ApiEvent): Promise<ApiResult> {
  const gate = await slackGate(deps, event, 'slack:interactions');
  if ('statusCode' in gate) return gate;
  const { slack, body } = gate;
  let action: ReturnType<typeof parseInteraction>;
  try {
    action = parseInteraction(body);
  } catch (error) {
    return slackMessage(refusalMessage((error as Error).message));
  }
  await slack.defer({
    kind: 'decide',
    action: action.action,
    grantId: action.grantId,
    userId: action.userId,
    responseUrl: action.responseUrl,
  });
  return { statusCode: 200, body: '' };
}

/** A deferred job, run after Slack got its answer; its outcome goes to the response_url. */
export async function runDeferred(deps: ApiDeps, job: DeferredJob): Promise<void> {
  const slack = deps.slack;
  if (!slack) throw new KeywardenError('a deferred Slack job arrived but Slack is not configured');
  const principal: Principal = { kind: 'slack', id: job.userId };
  try {
    if (job.kind === 'decide') {
      const grant =
        job.action === 'approve'
          ? await breakglass.approve(deps.breakglass, principal, job.grantId)
          : await breakglass.deny(deps.breakglass, principal, job.grantId);
      const role = breakglass.roleById(await deps.breakglass.config(), grant.roleId);
      await slack.respond(job.responseUrl, {
        ...grantDecidedMessage(view(grant), role),
        replace_original: true,
      });
      return;
    }
    const campaigns = campaignsOf(deps);
    const planned = await campaigns.start(
      { incident: job.incident, selectors: job.selectors, reissue: job.reissue, dryRun: false },
      `slack:${job.userId}`,
    );
    if (planned.status !== 'stored') {
      await slack.respond(
        job.responseUrl,
        noticeMessage(`Nothing to revoke for ${job.incident}: the selectors match no live credential.`),
      );
      return;
    }
    const { campaignId } = planned.campaign;
    await slack.respond(
      job.responseUrl,
      campaignStartedMessage(viewCampaign(planned.campaign), planned.summary.counts),
    );
    // Progress in the channel until the campaign ends (a response_url takes 5 posts in 30 minutes).
    const deadline = Date.now() + (deps.progress?.deadlineMs ?? 25 * 60_000);
    for (let posts = 1; posts < 5 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, deps.progress?.everyMs ?? 30_000));
      const status = await campaigns.status(campaignId);
      if (!status) break;
      const finished = status.campaign.status === 'completed' || status.campaign.status === 'failed';
      if (finished || posts < 4) {
        await slack.respond(
          job.responseUrl,
          campaignProgressMessage(viewCampaign(status.campaign), status.counts),
        );
        posts++;
      }
      if (finished) break;
    }
  } catch (error) {
    const message =
      error instanceof KeywardenError ? error.message : 'keywarden failed; the function log has the cause';
    await slack.respond(job.responseUrl, refusalMessage(message));
    if (!(error instanceof KeywardenError)) throw error;
  }
}

/** The API handler: route, authenticate, run, map errors to statuses. */
export function makeHandler(deps: ApiDeps) {
  return async (event: ApiEvent): Promise<ApiResult> => {
    const method = event.requestContext.http.method.toUpperCase();
    const path = event.rawPath.replace(/\/+$/, '') || '/';
    for (const route of ROUTES) {
      const params = match(route, method, path);
      if (!params) continue;
      try {
        return await route.run(deps)(event, params, () => principalOf(deps, event));
      } catch (error) {
        return errorResult(error, event.requestContext.requestId ?? 'unknown', deps.log ?? console.error);
      }
    }
    return json(404, { error: { code: 'not-found', message: `no route ${method} ${path}` } });
  };
}

// ---- Lambda entry -------------------------------------------------------------------------

/** An async self-invocation that runs a deferred Slack job (API Gateway events never have this key). */
const isDeferredEvent = (event: unknown): boolean =>
  typeof event === 'object' && event !== null && 'keywardenDeferred' in event;

const ready = coldStart(async () => {
  const config = await loadLambdaConfig();
  const services = wire(config);
  const signingSecretArn = optionalEnv('KEYWARDEN_SLACK_SIGNING_SECRET_ARN');
  const lambda = new LambdaClient(awsClientConfig(config.aws));
  const functionName = requireEnv('AWS_LAMBDA_FUNCTION_NAME');
  const responder = new SlackResponder();
  const signingSecret = signingSecretArn
    ? new SecretValue(await readSecret(services.aws.secrets, signingSecretArn))
    : undefined;
  const slack: SlackDeps | undefined = signingSecret
    ? {
        signingSecret,
        ledger: services.breakglassStore,
        respond: (url, message) => responder.respond(url, message),
        // Slack's answer must leave within 3 s: the job runs in a second, asynchronous invocation.
        defer: async (job) => {
          await lambda.send(
            new InvokeCommand({
              FunctionName: functionName,
              InvocationType: 'Event',
              Payload: Buffer.from(
                JSON.stringify({ keywardenDeferred: job, mac: deferredJobMac(signingSecret, job) }),
              ),
            }),
          );
        },
      }
    : undefined;
  const stateMachineArn = optionalEnv('KEYWARDEN_REVOCATION_STATE_MACHINE_ARN');
  const deps: ApiDeps = {
    breakglass: services.breakglassDeps,
    acceptLocalPrincipals: false,
    campaigns: stateMachineArn
      ? campaignApi(
          services,
          new StepFunctionsCampaignLauncher({
            client: new SFNClient(awsClientConfig(config.aws)),
            stateMachineArn,
          }),
        )
      : undefined,
    region: config.aws.region,
    vaultAddr: config.vault?.addr,
    report: services.grantReportOf,
    slack,
  };
  return { deps, http: makeHandler(deps) };
});

export const handler = async (
  event: unknown,
  context?: { getRemainingTimeInMillis(): number; awsRequestId?: string },
): Promise<ApiResult | undefined> => {
  const { deps, http } = await ready();
  if (isDeferredEvent(event)) {
    if (!deps.slack) throw new KeywardenError('a deferred Slack job arrived but Slack is not configured');
    const job = verifyDeferredJob(deps.slack.signingSecret, event);
    // Progress polling stops well before the function's timeout (async invocations are not retried).
    const left = context ? context.getRemainingTimeInMillis() - 10_000 : 60_000;
    await runDeferred({ ...deps, progress: { everyMs: 20_000, deadlineMs: Math.max(0, left) } }, job);
    return undefined;
  }
  return http(event as ApiEvent);
};
