/**
 * The CI job credential routes: a job exchanges its OIDC token for the credentials of one grant
 * (`POST /ci/credentials`), ends them early with a fresh token of the same job (`DELETE
 * /ci/credentials/{id}`), and GitHub / GitLab end every credential of a finished job through
 * their signed webhooks (`POST /ci/webhooks/github|gitlab`). The use cases are in
 * functions/core/ci-exchange.ts; this module only reads requests and shapes answers.
 */
import * as z from 'zod';
import { bearerOf, endExchange, endJob, exchange, type IssuedCiCredentials } from '../core/ci-exchange.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import {
  GITHUB_EVENT_HEADER,
  GITHUB_SIGNATURE_HEADER,
  GITLAB_TOKEN_HEADER,
  githubJobEnded,
  gitlabJobEnded,
  verifyGithubSignature,
  verifyGitlabToken,
} from './ci-webhooks.ts';
import { type ApiDeps, type CiApiDeps, served } from './deps.ts';
import { type ApiEvent, json, jsonBody, rawBody, UnauthenticatedError } from './responses.ts';
import type { Route } from './route.ts';

/** The exchange's body; `grant` names one of the inventory's `ci.grants`. */
const ExchangeBodySchema = z.strictObject({
  grant: z.string().min(1).max(64),
  artifactDigest: z.string().max(80).optional(),
});

/** The deployment's CI credentials, or a 404 where it serves none. */
const ciOf = (deps: ApiDeps): CiApiDeps => served(deps, 'ci');

/** A header by name, whatever its case (API Gateway lower-cases them; the local runtime passes Node's). */
function header(event: ApiEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {}))
    if (key.toLowerCase() === wanted) return value;
  return undefined;
}

/** The answer to an exchange: the only place the credentials' values leave keywarden. */
function disclose(issued: IssuedCiCredentials, deps: ApiDeps) {
  const { record } = issued;
  return {
    id: record.id,
    grant: record.grant,
    correlationId: record.correlationId,
    expiresAt: record.expiresAt,
    ...(issued.vault
      ? {
          vault: {
            token: issued.vault.token.reveal(),
            accessor: issued.vault.accessor,
            expiresAt: issued.vault.expiresAt,
            ...(deps.vaultAddr ? { addr: deps.vaultAddr } : {}),
          },
        }
      : {}),
    ...(issued.aws
      ? {
          aws: {
            ...(issued.aws.credentials.revealJson() as {
              accessKeyId: string;
              secretAccessKey: string;
              sessionToken: string;
            }),
            expiresAt: issued.aws.expiresAt,
            region: deps.region,
          },
        }
      : {}),
  };
}

/** The webhook secret of a platform, or a 404 where that webhook is not configured. */
function secretOf(ci: CiApiDeps, platform: 'github' | 'gitlab') {
  const secret = ci.webhookSecrets[platform];
  if (!secret) throw new NotFoundError(`the ${platform} webhook is not configured in this deployment`);
  return secret;
}

/** The delivery's JSON, after its signature held. */
function payloadOf(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new ValidationError('expected a JSON webhook payload, got something that does not parse as JSON');
  }
}

/** The exchange and the early end, on the default route or on one issuer's own (`/ci/issuers/{issuer}/…`). */
const exchangeRoute =
  (deps: ApiDeps) =>
  async (event: ApiEvent, { issuer }: Record<string, string>) => {
    const ci = ciOf(deps);
    const token = bearerOf(header(event, 'authorization'));
    const body = jsonBody(event, ExchangeBodySchema);
    const issued = await exchange(ci.exchange, token, { ...body, issuer });
    return json(201, disclose(issued, deps));
  };

const endRoute =
  (deps: ApiDeps) =>
  async (event: ApiEvent, { exchangeId = '', issuer }: Record<string, string>) => {
    const ci = ciOf(deps);
    const token = bearerOf(header(event, 'authorization'));
    const record = await endExchange(ci.exchange, token, exchangeId, issuer);
    return json(200, { id: record.id, ended: true, endedAt: record.ended?.at, by: record.ended?.by });
  };

export const CI_CREDENTIAL_ROUTES: readonly Route[] = [
  { method: 'POST', path: '/ci/credentials', auth: 'oidc', run: exchangeRoute },
  { method: 'DELETE', path: '/ci/credentials/{exchangeId}', auth: 'oidc', run: endRoute },
  { method: 'POST', path: '/ci/issuers/{issuer}/credentials', auth: 'oidc', run: exchangeRoute },
  { method: 'DELETE', path: '/ci/issuers/{issuer}/credentials/{exchangeId}', auth: 'oidc', run: endRoute },
  {
    method: 'POST',
    path: '/ci/webhooks/github',
    auth: 'webhook',
    run: (deps) => async (event) => {
      const ci = ciOf(deps);
      const body = rawBody(event);
      const signed = verifyGithubSignature(
        body,
        header(event, GITHUB_SIGNATURE_HEADER),
        secretOf(ci, 'github'),
      );
      if (!signed.ok) throw new UnauthenticatedError(signed.message);
      // GitHub sends a ping and every event the hook subscribes to: only a completed job ends anything.
      const job =
        header(event, GITHUB_EVENT_HEADER) === 'workflow_job' ? githubJobEnded(payloadOf(body)) : undefined;
      const { ended } = job ? await endJob(ci.exchange, 'github', job) : { ended: 0 };
      const repository = (payloadOf(body) as { repository?: { full_name?: unknown } }).repository?.full_name;
      if (job && typeof repository === 'string') {
        await ci.scanJobLog?.({ platform: 'github', repository, jobId: job.check_run_id });
      }
      return json(200, { ended });
    },
  },
  {
    method: 'POST',
    path: '/ci/webhooks/gitlab',
    auth: 'webhook',
    run: (deps) => async (event) => {
      const ci = ciOf(deps);
      const signed = verifyGitlabToken(header(event, GITLAB_TOKEN_HEADER), secretOf(ci, 'gitlab'));
      if (!signed.ok) throw new UnauthenticatedError(signed.message);
      const job = gitlabJobEnded(payloadOf(rawBody(event)));
      const { ended } = job ? await endJob(ci.exchange, 'gitlab', job) : { ended: 0 };
      if (job) await ci.scanJobLog?.({ platform: 'gitlab', project: job.project_id, jobId: job.job_id });
      return json(200, { ended });
    },
  },
];
