/**
 * The HTTP API's routes and their router. In AWS, API Gateway (HTTP API, payload format 2.0)
 * sends each capability's routes to a function of its own, which routes them over that
 * capability's table only ({@link GRANT_ROUTES}, {@link CAMPAIGN_ROUTES}, {@link CI_ROUTES};
 * functions/handlers/api-*.ts); Slack's go to the Slack ingress. On a laptop one handler serves
 * {@link ROUTES}, every route, behind the local runtime's server (functions/local/runtime.ts).
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
import * as z from 'zod';
import * as breakglass from '../core/breakglass.ts';
import { IncidentSchema } from '../core/campaign.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { GrantStateSchema, type Principal } from '../core/grant.ts';
import type { IssuedGrantCredential } from '../core/ports.ts';
import { CI_APPROVAL_ROUTES } from './ci-approvals.ts';
import { CI_CREDENTIAL_ROUTES } from './ci-credentials.ts';
import { type ApiDeps, breakglassOf, campaignsOf, reportOf } from './deps.ts';
import {
  type ApiEvent,
  type ApiResult,
  emptyAnswer,
  errorAnswer,
  json,
  jsonBody,
  MAX_BODY_BYTES,
  refuseOversizedBody,
  UnauthenticatedError,
  view,
  viewCampaign,
} from './responses.ts';
import type { Route } from './route.ts';
import { slackCommand, slackInteraction } from './slack.ts';

/**
 * The bodies' shapes only: core checks the fields themselves (GrantRequestInputSchema and its
 * siblings: lengths, the incident format) and audits a refusal, so the route leaves it to core.
 */
const RequestBodySchema = z.strictObject({
  roleId: z.string().min(1),
  duration: z.string().min(1),
  reason: z.string().min(1),
  incident: z.string().min(1).optional(),
});
const DenyBodySchema = z.strictObject({ reason: z.string().optional() });
const ReviewBodySchema = z.strictObject({ notes: z.string() });
/** At most this many selectors of at most this many characters: a campaign stores them. */
const MAX_SELECTORS = 64;
const MAX_SELECTOR_LENGTH = 1_024;
const CampaignBodySchema = z.strictObject({
  incident: IncidentSchema,
  selectors: z
    .array(
      z
        .string()
        .min(1)
        .max(MAX_SELECTOR_LENGTH, {
          error: `expected a selector of at most ${MAX_SELECTOR_LENGTH} characters`,
        }),
    )
    .min(1)
    .max(MAX_SELECTORS, { error: `expected at most ${MAX_SELECTORS} selectors (they are ORed)` }),
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

/** Break-glass grants: the roles one may ask for, and each grant's life (the grants function's). */
export const GRANT_ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/roles',
    auth: 'signed',
    run: (deps) => async () => json(200, { roles: (await breakglassOf(deps).config()).roles }),
  },
  {
    method: 'POST',
    path: '/grants',
    auth: 'signed',
    run: (deps) => async (event, _params, caller) =>
      json(201, {
        grant: view(await breakglass.request(breakglassOf(deps), caller, jsonBody(event, RequestBodySchema))),
      }),
  },
  {
    method: 'GET',
    path: '/grants',
    auth: 'signed',
    run: (deps) => async (event) => {
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
      const page = await breakglassOf(deps).grants.queryGrants({
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
    auth: 'signed',
    run:
      (deps) =>
      async (_event, { grantId = '' }) => {
        const grant = await breakglassOf(deps).grants.getGrant(grantId);
        if (!grant) throw new NotFoundError(`no grant ${JSON.stringify(grantId)}`);
        return json(200, { grant: view(grant) });
      },
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/approve',
    auth: 'signed',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) =>
        json(200, { grant: view(await breakglass.approve(breakglassOf(deps), caller, grantId)) }),
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/deny',
    auth: 'signed',
    run:
      (deps) =>
      async (event, { grantId = '' }, caller) => {
        const { reason } = jsonBody(event, DenyBodySchema);
        return json(200, { grant: view(await breakglass.deny(breakglassOf(deps), caller, grantId, reason)) });
      },
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/credentials',
    auth: 'signed',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) => {
        const { grant, credential } = await breakglass.issueCredentials(breakglassOf(deps), caller, grantId);
        return json(200, { grant: view(grant), credential: disclose(credential, deps) });
      },
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/revoke',
    auth: 'signed',
    run:
      (deps) =>
      async (_event, { grantId = '' }, caller) =>
        json(200, { grant: view(await breakglass.revoke(breakglassOf(deps), caller, grantId)) }),
  },
  {
    method: 'POST',
    path: '/grants/{grantId}/review',
    auth: 'signed',
    run:
      (deps) =>
      async (event, { grantId = '' }, caller) => {
        const { notes } = jsonBody(event, ReviewBodySchema);
        return json(200, {
          grant: view(await breakglass.review(breakglassOf(deps), caller, grantId, notes)),
        });
      },
  },
  {
    method: 'GET',
    path: '/grants/{grantId}/report',
    auth: 'signed',
    run:
      (deps) =>
      async (_event, { grantId = '' }) =>
        json(200, await reportOf(deps)(grantId)),
  },
];

/** Incident campaigns: plan, store and launch one, read its progress (the campaigns function's). */
export const CAMPAIGN_ROUTES: readonly Route[] = [
  {
    method: 'POST',
    path: '/campaigns',
    auth: 'signed',
    run: (deps) => async (event, _params, caller) => {
      const body = jsonBody(event, CampaignBodySchema);
      const planned = await campaignsOf(deps).start(body, caller);
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
    auth: 'signed',
    run:
      (deps) =>
      async (_event, { campaignId = '' }) => {
        const status = await campaignsOf(deps).status(campaignId);
        if (!status) throw new NotFoundError(`no campaign ${JSON.stringify(campaignId)}`);
        return json(200, { campaign: viewCampaign(status.campaign), counts: status.counts });
      },
  },
];

/** Slack's commands and buttons (in AWS the Slack ingress runs them, without this router). */
const SLACK_ROUTES: readonly Route[] = [
  {
    method: 'POST',
    path: '/slack/commands',
    auth: 'slack',
    run: (deps) => (event) => slackCommand(deps, event),
  },
  {
    method: 'POST',
    path: '/slack/interactions',
    auth: 'slack',
    run: (deps) => (event) => slackInteraction(deps, event),
  },
];

/** CI job credentials (exchange, webhooks) and artifact approvals (the CI function's). */
export const CI_ROUTES: readonly Route[] = /* @__PURE__ */ [CI_CREDENTIAL_ROUTES, CI_APPROVAL_ROUTES].flat();

/**
 * Every route, as the local runtime serves them; api/openapi.yaml describes exactly these.
 * `__PURE__`: a function's bundle that routes over one table keeps none of the others.
 */
export const ROUTES: readonly Route[] = /* @__PURE__ */ [
  GRANT_ROUTES,
  CAMPAIGN_ROUTES,
  SLACK_ROUTES,
  CI_ROUTES,
].flat();

/**
 * What each path parameter may be (api/openapi.yaml `GrantId`, `CampaignId`): an id that does
 * not fit could name nothing, and must not reach the store as a key it refuses.
 */
const PATH_PARAMS: Readonly<Record<string, { pattern: RegExp; expected: string }>> = {
  grantId: {
    pattern: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
    expected: "a grant id (1 to 128 letters, digits, '.', '_', ':' or '-')",
  },
  issuer: {
    pattern: /^[a-z0-9][a-z0-9._-]{0,63}$/,
    expected: "a CI issuer's name (lowercase letters, digits, '.', '_' or '-', at most 64)",
  },
  exchangeId: {
    pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    expected: "a CI exchange id (1 to 128 letters, digits, '.', '_' or '-')",
  },
  campaignId: {
    pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    expected: "a campaign id (1 to 128 letters, digits, '.', '_' or '-')",
  },
};

/** A path parameter as written in the URL, percent-decoded and checked. */
function pathParam(name: string, written: string): string {
  let value: string;
  try {
    value = decodeURIComponent(written);
  } catch {
    throw new ValidationError(
      `expected ${name} to be percent-encoded (%XX with two hex digits, UTF-8), got ${shown(written)}`,
    );
  }
  const rule = PATH_PARAMS[name];
  if (rule && !rule.pattern.test(value))
    throw new ValidationError(`expected ${name} to be ${rule.expected}, got ${shown(value)}`);
  return value;
}

/** A value from the request, quoted and shortened for a message. */
const shown = (value: string): string => JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);

/** The path parameters (written, not yet decoded) when `route` serves `method` and `path`. */
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
      params[part.slice(1, -1)] = value;
    } else if (part !== value) return undefined;
  }
  return params;
}

/**
 * The caller of a signed route: the IAM principal API Gateway checked, or a local development
 * user. An empty or unknown token is no caller, exactly as API Gateway treats a missing or bad
 * signature (it answers 403 itself; the local runtime leaves the refusal to this 401).
 */
function principalOf(deps: ApiDeps, event: ApiEvent): Principal {
  const authorizer = event.requestContext.authorizer;
  const arn = authorizer?.iam?.userArn;
  if (arn) return { kind: 'aws', id: arn };
  const local = authorizer?.lambda;
  if (deps.acceptLocalPrincipals && local?.localUser) return { kind: 'local', id: local.localUser };
  if (deps.acceptLocalPrincipals && local?.unknownToken) {
    throw new UnauthenticatedError(
      'expected a development token `keywarden dev up` handed out, got a bearer token no local user holds: run `keywarden dev up` again (it keeps the tokens in dev-users.json of the state folder)',
    );
  }
  throw new UnauthenticatedError(
    'expected a SigV4-signed request (AWS) or a development token (local runtime, `Authorization: Bearer …`); the request had neither',
  );
}

/** An answer as api/openapi.yaml describes it: an empty acknowledgement carries its content type too. */
function typed(result: ApiResult): ApiResult {
  const { headers = {} } = result;
  const hasType = Object.keys(headers).some((name) => name.toLowerCase() === 'content-type');
  if (result.body !== '' || hasType) return result;
  const extra = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, String(value)]));
  return { ...emptyAnswer(extra), statusCode: result.statusCode };
}

/**
 * Routes one request over `routes` (the table its function serves: {@link ROUTES} locally, one
 * capability's in AWS) and runs it. The order never lets bad input through as a 5xx: a body
 * over {@link MAX_BODY_BYTES} is 413, a route not in `routes` 404 (another capability's
 * included: it is never reachable through this table), a path parameter that does not decode
 * or fit 400, a signed route without a caller 401; only then does the route run. A route whose
 * capability `deps` lacks is a 404 too (deps.ts `breakglassOf`, `campaignsOf`…). A failure is
 * thrown: the handler's wrapper maps it to a status (responses.ts `errorResult`).
 */
export async function routeRequest(
  deps: ApiDeps,
  event: ApiEvent,
  routes: readonly Route[],
): Promise<ApiResult> {
  refuseOversizedBody(event);
  const method = event.requestContext.http.method.toUpperCase();
  const path = event.rawPath.replace(/\/+$/, '') || '/';
  for (const route of routes) {
    const written = match(route, method, path);
    if (!written) continue;
    const params = Object.fromEntries(
      Object.entries(written).map(([name, value]) => [name, pathParam(name, value)]),
    );
    if (route.auth !== 'signed') return typed(await route.run(deps)(event, params, undefined));
    return route.run(deps)(event, params, principalOf(deps, event));
  }
  return errorAnswer(404, 'not-found', `no route ${method} ${shown(path)}`);
}
