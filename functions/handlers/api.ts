/**
 * The HTTP API's handler over a table of routes (API Gateway HTTP API, payload format 2.0). In
 * AWS each capability has a function of its own, which builds only its parts and serves only
 * its routes: break-glass grants (api-grants.ts), incident campaigns (api-campaigns.ts), CI job
 * credentials and artifact approvals (api-ci.ts); Slack has its ingress and worker functions.
 * On a laptop, the local runtime (functions/local/runtime.ts) serves every route with
 * {@link makeHandler} over its own dependencies. Routing is the HTTP application layer
 * (functions/api/).
 */
import type { RuntimeConfig } from '../adapters/runtime-config.ts';
import type { ApiDeps } from '../api/deps.ts';
import { ApiEventSchema, errorResult, requestIdOf } from '../api/responses.ts';
import type { Route } from '../api/route.ts';
import { ROUTES, routeRequest } from '../api/routes.ts';
import { SecretValue } from '../core/secret-value.ts';
import { wrap } from './wrap.ts';

/**
 * The handler of one function: route over `routes`, authenticate, run; failures become statuses.
 * A route outside `routes` is a 404, whatever `deps` holds.
 */
export function makeApiHandler(deps: ApiDeps, routes: readonly Route[]) {
  return wrap(
    {
      event: ApiEventSchema,
      expected: 'an API Gateway HTTP API event (payload format 2.0)',
      answer: (error, event) => errorResult(error, requestIdOf(event), deps.log ?? console.error),
    },
    (event) => routeRequest(deps, event, routes),
  );
}

/** The handler of every route (the local runtime's): a capability `deps` lacks answers 404. */
export const makeHandler = (deps: ApiDeps) => makeApiHandler(deps, ROUTES);

/**
 * What an API function in Lambda tells the router about where it runs: callers are IAM principals
 * only (never the local runtime's), its region, its Vault.
 */
export const inLambda = (config: RuntimeConfig) =>
  ({ acceptLocalPrincipals: false, region: config.aws.region, vaultAddr: config.vault?.addr }) as const;

/** The platforms' webhook secrets, as the configuration holds them. */
export const webhookSecretsOf = (config: RuntimeConfig) => ({
  github: config.ci.githubWebhookSecret ? new SecretValue(config.ci.githubWebhookSecret) : undefined,
  gitlab: config.ci.gitlabWebhookSecret ? new SecretValue(config.ci.gitlabWebhookSecret) : undefined,
});
