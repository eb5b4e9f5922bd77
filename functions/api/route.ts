/** One route of the HTTP API: its method, path, how its caller is authenticated, and its logic. */
import type { Principal } from '../core/grant.ts';
import type { ApiDeps } from './deps.ts';
import type { ApiEvent, ApiResult } from './responses.ts';

/** A route's logic, given the request, its decoded path parameters, and (on a signed route) its caller. */
export type RouteHandler<C> = (
  event: ApiEvent,
  params: Record<string, string>,
  caller: C,
) => Promise<ApiResult>;

/**
 * One route. `signed`: only an authenticated caller reaches its logic (SigV4 through API
 * Gateway's IAM authorizer, or a development token locally); the router refuses anyone else
 * with 401 before the route runs, so no route can forget to ask. `slack`: Slack's request
 * signature, checked by slack-gate.ts; an `Authorization` header is not read there.
 * `oidc`: the bearer is a CI job's OIDC token, which the route verifies against the trusted
 * issuers itself (in AWS an HTTP API JWT authorizer checks it first). `webhook`: GitHub or
 * GitLab signs the delivery, and the route checks it.
 */
export type Route = { method: 'GET' | 'POST' | 'DELETE'; path: string } & (
  | { auth: 'signed'; run: (deps: ApiDeps) => RouteHandler<Principal> }
  | { auth: 'slack' | 'oidc' | 'webhook'; run: (deps: ApiDeps) => RouteHandler<undefined> }
);
