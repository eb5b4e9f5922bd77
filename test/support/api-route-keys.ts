/**
 * keywarden's HTTP API routes (issues #4 and #5), as API Gateway writes route keys
 * (`METHOD /path`): the expected list both the OpenAPI description and the synthesized API
 * are checked against.
 */

/** The routes the CLI calls, signed with SigV4. */
export const SIGV4_ROUTE_KEYS: readonly string[] = [
  'GET /roles',
  'POST /grants',
  'GET /grants',
  'GET /grants/{grantId}',
  'POST /grants/{grantId}/approve',
  'POST /grants/{grantId}/deny',
  'POST /grants/{grantId}/credentials',
  'POST /grants/{grantId}/revoke',
  'POST /grants/{grantId}/review',
  'GET /grants/{grantId}/report',
  'POST /campaigns',
  'GET /campaigns/{campaignId}',
];

/** The routes Slack calls, authenticated by its request signature. */
export const SLACK_ROUTE_KEYS: readonly string[] = ['POST /slack/commands', 'POST /slack/interactions'];

/** The routes a CI job calls with its OIDC token (in AWS behind the HTTP API's JWT authorizer). */
export const CI_OIDC_ROUTE_KEYS: readonly string[] = [
  'POST /ci/credentials',
  'DELETE /ci/credentials/{exchangeId}',
];

/** The same two routes of each further trusted issuer, each behind its own JWT authorizer in AWS. */
export const CI_ISSUER_ROUTE_KEYS: readonly string[] = [
  'POST /ci/issuers/{issuer}/credentials',
  'DELETE /ci/issuers/{issuer}/credentials/{exchangeId}',
];

/** The routes GitHub and GitLab call, authenticated by their webhook signature / secret token. */
export const CI_WEBHOOK_ROUTE_KEYS: readonly string[] = [
  'POST /ci/webhooks/github',
  'POST /ci/webhooks/gitlab',
];

/** The artifact approvals, signed with SigV4 like the CLI's other routes (in AWS only where CI is on). */
export const CI_APPROVAL_ROUTE_KEYS: readonly string[] = [
  'POST /ci/approvals',
  'GET /ci/approvals',
  'GET /ci/approvals/verify',
];

/** Every route, sorted. */
export const API_ROUTE_KEYS: readonly string[] = [
  ...SIGV4_ROUTE_KEYS,
  ...SLACK_ROUTE_KEYS,
  ...CI_OIDC_ROUTE_KEYS,
  ...CI_ISSUER_ROUTE_KEYS,
  ...CI_WEBHOOK_ROUTE_KEYS,
  ...CI_APPROVAL_ROUTE_KEYS,
].sort();
