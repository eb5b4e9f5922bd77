/**
 * The CI function: API Gateway sends it the routes CI job credentials add to the HTTP API
 * (infra/constructs/ci-credentials.ts) and nothing else: the token exchange and its early end
 * (each issuer's JWT authorizer first), the GitHub and GitLab webhooks (their signatures), and
 * artifact approvals (SigV4). It builds the exchange (jose, Vault and STS issuers, the approval
 * gate) and approvals (KMS), and routes over {@link CI_ROUTES} only: a grant or campaign route is
 * a 404 here.
 */
import { signedLambdaInvoke } from '../adapters/aws/lambda-invoke.ts';
import { approvals, Composition, ciExchange } from '../adapters/composition.ts';
import { jobLogHandOff } from '../api/job-log-hand-off.ts';
import { CI_ROUTES } from '../api/routes.ts';
import { inLambda, makeApiHandler, webhookSecretsOf } from './api.ts';
import { lambdaEnv } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint } from './wrap.ts';

/** The Lambda entry point: CI job credentials, their webhooks and artifact approvals. */
export const handler = entryPoint(async () => {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  return makeApiHandler(
    {
      ...inLambda(config),
      ci: {
        exchange: composition.get(ciExchange),
        webhookSecrets: webhookSecretsOf(config),
        // Set by the stack when the exposure scanner is deployed beside CI job credentials.
        scanJobLog: env.exposureScannerFunctionArn
          ? jobLogHandOff(signedLambdaInvoke(config.aws), env.exposureScannerFunctionArn, console.error)
          : undefined,
      },
      approvals: composition.get(approvals),
    },
    CI_ROUTES,
  );
});
