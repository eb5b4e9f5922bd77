/**
 * The CI function: API Gateway sends it the routes CI job credentials add to the HTTP API
 * (infra/constructs/ci-credentials.ts) and nothing else: the token exchange and its early end
 * (each issuer's JWT authorizer first), the GitHub and GitLab webhooks (their signatures), and
 * artifact approvals (SigV4). It builds the exchange (jose, Vault and STS issuers, the approval
 * gate) and approvals (KMS), and routes over {@link CI_ROUTES} only: a grant or campaign route is
 * a 404 here.
 */
import { type LambdaInvoke, signedLambdaInvoke } from '../adapters/aws/lambda-invoke.ts';
import { approvals, Composition, ciExchange } from '../adapters/composition.ts';
// Only the name enters this bundle: with `sideEffects: false`, esbuild leaves the forge clients out.
import { type FinishedJob, finishedJobName } from '../adapters/scan/finished-job-log.ts';
import type { FinishedJobEvent } from '../api/finished-job-event.ts';
import { CI_ROUTES } from '../api/routes.ts';
import { makeApiHandler, webhookSecretsOf } from './api.ts';
import { lambdaEnv } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint } from './wrap.ts';

/**
 * Hands a finished job to the exposure scanner function: an asynchronous invocation (`Event`),
 * accepted by Lambda in milliseconds, so the webhook is answered quickly; the scanner reads the
 * job's log, scans and contains (Lambda retries a failed scan twice, then keeps the event in the
 * scanner's dead-letter queue). This bundle holds no detector: it only names the job. A
 * hand-off Lambda refuses is logged, not thrown: the job's credentials are ended all the same.
 */
export function jobLogHandOff(
  invoke: LambdaInvoke,
  scannerFunction: string,
  log: (line: string) => void,
): (job: FinishedJob) => Promise<void> {
  return async (job) => {
    // The scanner checks it against FinishedJobEventSchema; here only its type: no schema in this bundle.
    const event: FinishedJobEvent = { finishedJob: job };
    try {
      await invoke(scannerFunction, JSON.stringify(event), 'Event');
    } catch (error) {
      log(
        `the log of ${finishedJobName(job)} was not handed to the exposure scanner (${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}); its credentials were ended, its log is not scanned: invoke ${scannerFunction} with ${JSON.stringify(event)} (--invocation-type Event) to scan it`,
      );
    }
  };
}

/** The Lambda entry point: CI job credentials, their webhooks and artifact approvals. */
export const handler = entryPoint(async () => {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  return makeApiHandler(
    {
      acceptLocalPrincipals: false,
      region: config.aws.region,
      vaultAddr: config.vault?.addr,
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
