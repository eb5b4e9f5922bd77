/**
 * The deployed exposure scanner (issue #14). Two kinds of event reach it, both asynchronously:
 *
 * - a CloudWatch Logs subscription batch (CodeBuild's, Lambda's, the CI runners' log groups):
 *   every line of a batch is one text, located `<log group>/<log stream>` and numbered by its
 *   index in the batch, so a finding points at the event that held it. A control message (sent
 *   when a filter is created, to check the destination) is ignored;
 * - a finished CI job the API hands over after its completion webhook (`{finishedJob}`,
 *   functions/adapters/scan/scanner-event.ts): its log is read through GitHub's or
 *   GitLab's API with the tokens of the forge tokens secret, and scanned as one text, a hit
 *   placed at its line of the log.
 *
 * A managed credential found is contained (an incident revocation campaign on its fingerprint,
 * with re-issue, started in the revocation state machine). Nothing of a log line, and no token,
 * is logged or returned: only places and counts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import {
  alertSettingsOf,
  recheckedAlerts,
  slackOnceTokenSet,
} from '../adapters/alerts/awaiting-bot-token.ts';
import { secretsClient } from '../adapters/aws/clients.ts';
import {
  type CampaignPlanningDeps,
  stateMachineContainment,
  stepFunctionsLauncher,
} from '../adapters/campaign-launcher.ts';
import { CombinedSecretDetector } from '../adapters/scan/detector.ts';
import { type FinishedJob, finishedJobName } from '../adapters/scan/finished-job-log.ts';
import type { FetchedLog } from '../adapters/scan/forge-http.ts';
import {
  forgeSettingsOf,
  jobLogReader,
  parseForgeTokens,
  recheckedForgeSettings,
} from '../adapters/scan/forge-tokens-secret.ts';
import { decodeScannerEvent, lineCount, scanInputsOf } from '../adapters/scan/scanner-event.ts';
import { alerts, Composition, exposure, liveListing, stores } from '../adapters/wiring.ts';
import { KeywardenError } from '../core/errors.ts';
import { type ScanSummary, type ScanTexts, scanWith } from '../core/exposure-batch.ts';
import { KEYWARDEN_ENV, lambdaEnv } from './env.ts';
import { loadLambdaConfig, readSecret } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

/** Who the deployed scanner is in the audit trail and on the campaigns it starts. */
export const SCANNER_ACTOR = 'keywarden:exposure-scanner';

export interface ExposureScannerDeps {
  scan: ScanTexts;
  logger: Logger;
  /**
   * Reads a finished CI job's log through its platform's API (`jobLogReader`, forge-tokens-secret.ts),
   * or says why it is not read (no token for that platform); undefined: a finished job handed over
   * is refused.
   */
  jobLog?: ((job: FinishedJob) => Promise<FetchedLog | { unread: string }>) | undefined;
}

/** What one invocation did: the batch's or the job log's place and counts, never a line of it. */
export type ScannerResult =
  | { ignored: 'control-message' }
  | ({ logGroup: string; logStream: string; events: number } & ScanSummary)
  | ({
      /** Where the log was read (`<owner>/<repo> job <id>`, GitLab's project and job). */
      job: string;
      lines: number;
      /** Set when only the start of the log was read (it was over the size limit). */
      note?: string;
    } & ScanSummary)
  /** A finished job whose platform keywarden has no token for: nothing read, nothing to retry. */
  | { job: string; unread: string };

export function makeHandler(deps: ExposureScannerDeps) {
  return wrap({ logger: deps.logger }, async (event: unknown): Promise<ScannerResult> => {
    const decoded = decodeScannerEvent(event);
    if (decoded.source === 'finished-job') return scanFinishedJob(deps, decoded.job);
    const { logs } = decoded;
    if (logs.messageType === 'CONTROL_MESSAGE') return { ignored: 'control-message' };
    // Always contained in AWS: a leak found in a build log is ended, not just reported.
    const summary = await deps.scan(scanInputsOf(logs), { contain: true });
    const result = {
      logGroup: logs.logGroup,
      logStream: logs.logStream,
      events: logs.events.length,
      ...summary,
    };
    if (summary.hits > 0) deps.logger.warn('credentials found in a log batch', result);
    return result;
  });
}

/** A finished job's log, read through its platform's API, scanned (hits at their lines) and contained. */
async function scanFinishedJob(deps: ExposureScannerDeps, job: FinishedJob): Promise<ScannerResult> {
  if (!deps.jobLog) {
    throw new KeywardenError(
      "this exposure scanner reads no CI job logs (no forge settings): a finished job was handed over; check the scanner's environment (the ExposureScanner construct sets it)",
    );
  }
  const log = await deps.jobLog(job);
  if ('unread' in log) {
    // Not an error: retrying cannot help until a token is set, and a dead-lettered job would alarm.
    const result = { job: finishedJobName(job), unread: log.unread };
    deps.logger.info("a finished job's log was not read", result);
    return result;
  }
  // One text with no line given: hits keep their own lines, which are the log's.
  const summary = await deps.scan([{ source: log.source, text: log.text }], { contain: true });
  const result = {
    job: log.source.location,
    lines: lineCount(log.text),
    ...(log.note ? { note: log.note } : {}),
    ...summary,
  };
  if (summary.hits > 0) deps.logger.warn("credentials found in a finished job's log", result);
  return result;
}

/**
 * Cold start: the exposure part (the store, the fingerprint key, Vault for AppRole role-ids), the
 * detector (secretlint's recommended preset and keywarden's own rules), the campaign planning of
 * the same store and rotation registries, the revocation state machine, the forge settings and
 * tokens finished jobs' logs are read with, and the containment alerts (topic, Slack).
 */
async function init() {
  const env = lambdaEnv();
  const loaded = await loadLambdaConfig();
  // One client for the secrets read here (bot token, forge tokens), at cold start and again.
  const secretReader = secretsClient(loaded.aws);
  // The Slack bot token only when alerts have a channel; the placeholder (`not-set`) is no token.
  const { exposureAlertChannel: channel, slackBotTokenSecretArn: botTokenArn } = env;
  const readBotToken = () => readSecret(secretReader, botTokenArn ?? '');
  const awaitsSlack = channel && botTokenArn;
  const settings = alertSettingsOf(env, awaitsSlack ? await readBotToken() : undefined);
  const composition = new Composition({ ...loaded, alerts: settings });
  const { store, breakglassStore } = composition.get(stores);
  const coldStartAlerts = composition.get(alerts);
  // A bot token set after deploy: the secret alone read again, Slack added to the alert topic.
  const scannerAlerts = recheckedAlerts(
    { alerts: coldStartAlerts, slack: settings.slack !== undefined },
    awaitsSlack
      ? {
          secretName: KEYWARDEN_ENV.slackBotTokenSecretArn,
          reload: slackOnceTokenSet(coldStartAlerts, {
            channel,
            readToken: readBotToken,
            people: async () => (await breakglassStore.getBreakglassConfig()).people,
          }),
        }
      : undefined,
  );
  if (!env.revocationStateMachineArn) {
    throw new KeywardenError(
      'the exposure scanner contains through the revocation state machine: KEYWARDEN_REVOCATION_STATE_MACHINE_ARN is not set (the ExposureScanner construct sets it)',
    );
  }
  const launcher = stepFunctionsLauncher(composition.config.aws, env.revocationStateMachineArn);
  // Finished jobs' logs: read with the forge tokens secret's tokens (never logged), read again
  // while one is the placeholder.
  const { forgeTokensSecretArn } = env;
  const secretName = KEYWARDEN_ENV.forgeTokensSecretArn;
  const readForge = async (arn: string) =>
    forgeSettingsOf(env, parseForgeTokens(await readSecret(secretReader, arn), secretName), secretName);
  const forge = forgeTokensSecretArn
    ? recheckedForgeSettings(await readForge(forgeTokensSecretArn), () => readForge(forgeTokensSecretArn))
    : undefined;
  const planning: CampaignPlanningDeps = {
    store,
    clock: composition.clock,
    rotationDeps: composition.get(liveListing),
  };
  return makeHandler({
    scan: scanWith({
      exposure: composition.get(exposure),
      detector: new CombinedSecretDetector(),
      containment: stateMachineContainment(planning, launcher, SCANNER_ACTOR),
      actor: SCANNER_ACTOR,
      // The alert topic and the Slack channel, each when configured; an alert that fails never fails containment.
      alerts: scannerAlerts,
    }),
    logger: new Logger({ serviceName: 'keywarden' }),
    jobLog: forge ? jobLogReader(forge) : undefined,
  });
}

/** The Lambda entry point: the destination of the `keywarden-exposure` subscription filters and of the API's finished jobs. */
export const handler = entryPoint(init);
