/**
 * The one keywarden function that may put, read and delete inline policies on IAM roles
 * (`iam:PutRolePolicy`, `GetRolePolicy`, `DeleteRolePolicy`), on roles under the break-glass
 * path, the CI path and the revocation IAM path only. Its callers (the API, grant expiry, the sweeper, the
 * revoke-batch worker) may only invoke it, synchronously, with a role-deny request
 * (functions/adapters/aws/role-deny-client.ts): it checks the request's shape and that the
 * role sits under {@link KEYWARDEN_ENV.roleDenyPaths}, builds the deny policy itself, and
 * answers what happened. A refusal is thrown (a `ValidationError` the caller sees by name).
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { IAMClient } from '@aws-sdk/client-iam';
import { STSClient } from '@aws-sdk/client-sts';
import { IamCiSessionDeny } from '../adapters/aws/ci-role-deny.ts';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import {
  IamRoleDeny,
  parseRoleDenyRequest,
  type RoleDenyAnswer,
  type RoleDenyClient,
} from '../adapters/aws/role-deny-client.ts';
import { IamRoleSessionRevoker } from '../adapters/aws/role-session-revoker.ts';
import { StsGrantIssuer } from '../adapters/aws/sts-grant-issuer.ts';
import { KeywardenError } from '../core/errors.ts';
import { KEYWARDEN_ENV, LAMBDA_RUNTIME_ENV, requireEnv } from './env.ts';
import { entryPoint, wrap } from './wrap.ts';

export interface RoleDenyDeps {
  /** Puts and removes the policies (IAM directly). */
  deny: RoleDenyClient;
  /** IAM paths whose roles may be changed, e.g. `['/breakglass/', '/ci/']`; never `/`. */
  allowedPaths: readonly string[];
  logger?: Logger | undefined;
}

/** The handler: refuse anything but a well-formed request for a role under an allowed path. */
export function makeHandler(deps: RoleDenyDeps) {
  return wrap({ logger: deps.logger }, async (event): Promise<RoleDenyAnswer> => {
    const request = parseRoleDenyRequest(event, deps.allowedPaths);
    const answer = await deps.deny.run(request);
    deps.logger?.info('role deny', {
      action: request.action,
      roleArn: request.roleArn,
      result: answer.result,
    });
    return answer;
  });
}

/**
 * The allowed paths from their variable: comma-separated IAM paths, each starting and ending
 * with `/`, the root path refused (it would cover every role of the account).
 */
export function allowedPathsOf(value: string): string[] {
  const paths = value
    .split(',')
    .map((path) => path.trim())
    .filter((path) => path !== '');
  const bad = paths.find((path) => !/^\/([\w+=,.@-]+\/)+$/.test(path));
  if (paths.length === 0 || bad !== undefined) {
    throw new KeywardenError(
      `environment variable ${KEYWARDEN_ENV.roleDenyPaths} must list IAM paths such as /breakglass/,/ci/ (not the root path /); got ${JSON.stringify(value)}`,
    );
  }
  return paths;
}

/** The Lambda entry point. */
export const handler = entryPoint(async () => {
  const config = awsClientConfig({ region: requireEnv(LAMBDA_RUNTIME_ENV.region) });
  const iam = new IAMClient(config);
  return makeHandler({
    deny: new IamRoleDeny({
      // Only the revoke and release of the issuer are used here: no STS call is ever made.
      grants: new StsGrantIssuer({ sts: new STSClient(config), iam }),
      sessions: new IamRoleSessionRevoker({ iam }),
      ci: new IamCiSessionDeny({ iam }),
    }),
    allowedPaths: allowedPathsOf(requireEnv(KEYWARDEN_ENV.roleDenyPaths)),
    logger: new Logger({ serviceName: 'keywarden-role-deny' }),
  });
});
