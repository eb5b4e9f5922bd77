/**
 * The HTTP API's routes: one handler behind API Gateway (HTTP API, payload format 2.0) in
 * AWS, and behind the local runtime's server on a laptop (functions/local/runtime.ts).
 *
 * - `/roles`, `/grants…`, `/campaigns…` are called by the CLI, signed with SigV4 and checked
 *   by API Gateway's IAM authorizer: the caller's principal is the IAM ARN it puts in
 *   `requestContext.authorizer.iam`. Locally, the server checks a development token and
 *   puts the user in `requestContext.authorizer.lambda.localUser`, which only a handler
 *   built with `acceptLocalPrincipals` believes.
 * - `/slack/commands` and `/slack/interactions` carry no IAM signature: Slack signs them
 *   (slack-gate.ts), and slack.ts does what they ask.
 *
 * The API description is api/openapi.yaml; test/unit/api-routes.test.ts keeps the two equal.
 */
import { z } from 'zod';
import * as breakglass from '../core/breakglass.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { GrantStateSchema, type Principal } from '../core/grant.ts';
import type { IssuedGrantCredential } from '../core/ports.ts';
import { type ApiDeps, campaignsOf } from './deps.ts';
import {
  type ApiEvent,
  type ApiResult,
  json,
  jsonBody,
  UnauthenticatedError,
  view,
  viewCampaign,
} from './responses.ts';
import { slackCommand, slackInteraction } from './slack.ts';

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

type RouteHandler = (
  event: ApiEvent,
  params: Record<string, string>,
  caller: () => Principal,
) => Promise<ApiResult>;

interface Route {
  method: 'GET' | 'POST';
  path: string;
  run: (deps: ApiDeps) => RouteHandler;
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
      const { state, requester, limit, nextToken } = event.queryStringParameters ?? {};
      const parsedState = state === undefined ? undefined : GrantStateSchema.safeParse(state);
      if (parsedState && !parsedState.success) {
        throw new ValidationError(
          `expected state to be one of ${GrantStateSchema.options.join(', ')}, got ${JSON.stringify(state)}`,
        );
      }
      const who =
        requester === undefined || requester.length > 4_096
          ? undefined
          : /^(aws|slack|local):(.+)$/.exec(requester);
      if (requester !== undefined && !who) {
        throw new ValidationError(
          `expected requester as kind:id (aws:<ARN>, slack:<user id> or local:<name>), got ${JSON.stringify(requester)}`,
        );
      }
      if (limit !== undefined && !/^[0-9]{1,4}$/.test(limit)) {
        throw new ValidationError(
          `expected limit to be a whole number from 1 to 100, got ${JSON.stringify(limit)}`,
        );
      }
      // One page, newest first: a query on an index, never a read of every grant. The store
      // checks limit's range and that nextToken is one it handed out for this listing.
      const page = await deps.breakglass.grants.queryGrants({
        ...(parsedState?.success ? { state: parsedState.data } : {}),
        ...(who ? { requester: { kind: who[1] as Principal['kind'], id: who[2] as string } } : {}),
        ...(limit !== undefined ? { limit: Number(limit) } : {}),
        ...(nextToken !== undefined ? { nextToken } : {}),
      });
      return json(200, {
        grants: page.grants.map(view),
        ...(page.nextToken ? { nextToken: page.nextToken } : {}),
      });
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
      const planned = await campaignsOf(deps).start(body, principal);
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

/**
 * Routes one request and runs it, the caller authenticated when the route asks who it is.
 * A failure is thrown: the handler's wrapper maps it to a status (responses.ts `errorResult`).
 */
export async function routeRequest(deps: ApiDeps, event: ApiEvent): Promise<ApiResult> {
  const method = event.requestContext.http.method.toUpperCase();
  const path = event.rawPath.replace(/\/+$/, '') || '/';
  for (const route of ROUTES) {
    const params = match(route, method, path);
    if (params) return route.run(deps)(event, params, () => principalOf(deps, event));
  }
  return json(404, { error: { code: 'not-found', message: `no route ${method} ${path}` } });
}
