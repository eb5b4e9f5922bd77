/**
 * The deployed exposure scanner (issue #14): a CloudWatch Logs subscription filter on each
 * configured log group (CodeBuild's, Lambda's, the CI runners') hands it batches of log lines;
 * each line is scanned for credentials, and a managed one is contained (an incident revocation
 * campaign on its fingerprint, with re-issue, started in the revocation state machine).
 *
 * Every line of a batch is one text, located `<log group>/<log stream>` and numbered by its
 * index in the batch, so a finding points at the event that held it. A control message (sent
 * when a filter is created, to check the destination) is ignored. Nothing of a log line is
 * logged or returned: only counts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { SFNClient } from '@aws-sdk/client-sfn';
import { awsClientConfig } from '../adapters/aws/clients.ts';
import { type DecodedLogs, decodeLogsEvent } from '../adapters/aws/cloudwatch-logs-payload.ts';
import {
  type CampaignPlanningDeps,
  planAndStoreCampaign,
  StepFunctionsCampaignLauncher,
} from '../adapters/campaign-launcher.ts';
import { CombinedSecretDetector } from '../adapters/scan/detector.ts';
import { Composition, exposure, rotation, stores } from '../adapters/wiring.ts';
import { KeywardenError } from '../core/errors.ts';
import { SHORT_FINGERPRINT } from '../core/exposure.ts';
import { type ScanInput, type ScanSummary, type ScanTexts, scanWith } from '../core/exposure-batch.ts';
import type { ExposureSource } from '../core/exposure-types.ts';
import type { CampaignLauncher, ExposureContainment } from '../core/ports.ts';
import { lambdaEnv } from './env.ts';
import { loadLambdaConfig } from './lambda-config.ts';
import { entryPoint, wrap } from './wrap.ts';

/** Who the deployed scanner is in the audit trail and on the campaigns it starts. */
export const SCANNER_ACTOR = 'keywarden:exposure-scanner';

export interface ExposureScannerDeps {
  scan: ScanTexts;
  logger: Logger;
}

/** What one invocation did: the batch's place and counts, never a line of it. */
export type ScannerResult =
  | { ignored: 'control-message' }
  | ({ logGroup: string; logStream: string; events: number } & ScanSummary);

/** The texts of a batch: one per log event, located at its group/stream and numbered by its index. */
export function scanInputsOf(logs: Extract<DecodedLogs, { messageType: 'DATA_MESSAGE' }>): ScanInput[] {
  const source: ExposureSource = { kind: 'cloudwatch-logs', location: `${logs.logGroup}/${logs.logStream}` };
  return logs.events.map((event, index) => ({ source, text: event.message, line: index + 1 }));
}

export function makeHandler(deps: ExposureScannerDeps) {
  return wrap({ logger: deps.logger }, async (event: unknown): Promise<ScannerResult> => {
    const logs = decodeLogsEvent(event);
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

/**
 * Containment in AWS: an incident campaign on exactly the exposed credential (its identity and
 * fingerprint), with re-issue, planned and stored here and run by the revocation state machine,
 * which revokes, re-issues to the delivery target and writes the incident report. Returns once the
 * execution is started; holding the value is the authority to end it, so no responder is asked.
 */
export function stateMachineContainment(
  planning: CampaignPlanningDeps,
  launcher: CampaignLauncher,
  actor: string,
): ExposureContainment {
  return {
    async contain({ incident, fingerprint, identityId }) {
      // The identity term keeps the plan to that one identity (no listing of every other).
      const identityTerm = /^[\w./:@-]+$/.test(identityId) ? `identity=${identityId},` : '';
      const planned = await planAndStoreCampaign(planning, {
        incident,
        selectors: [`${identityTerm}fingerprint=${fingerprint}`],
        reissue: true,
        actor,
        dryRun: false,
      });
      if (planned.status !== 'stored') {
        throw new KeywardenError(
          `containing ${identityId}'s exposed credential: the campaign on fingerprint ${fingerprint.slice(0, SHORT_FINGERPRINT)}… planned nothing (${planned.status})`,
        );
      }
      const { campaignId } = planned.campaign;
      await launcher.launch(campaignId);
      return {
        campaignId,
        outcome: 'contained',
        revoked: planned.summary.targets.length,
        failures: [],
        reissue: `by the revocation state machine (campaign ${campaignId})`,
      };
    },
  };
}

/**
 * Cold start: the exposure part (the store, the fingerprint key, Vault for AppRole role-ids), the
 * detector (secretlint's recommended preset and keywarden's own rules), the campaign planning of
 * the same store and rotation registries, and the revocation state machine.
 */
async function init() {
  const env = lambdaEnv();
  const config = await loadLambdaConfig();
  const composition = new Composition(config);
  if (!env.revocationStateMachineArn) {
    throw new KeywardenError(
      'the exposure scanner contains through the revocation state machine: KEYWARDEN_REVOCATION_STATE_MACHINE_ARN is not set (the ExposureScanner construct sets it)',
    );
  }
  const launcher = new StepFunctionsCampaignLauncher({
    client: new SFNClient(awsClientConfig(config.aws)),
    stateMachineArn: env.revocationStateMachineArn,
  });
  const planning: CampaignPlanningDeps = {
    store: composition.get(stores).store,
    clock: composition.clock,
    rotationDeps: composition.get(rotation),
  };
  return makeHandler({
    scan: scanWith({
      exposure: composition.get(exposure),
      detector: new CombinedSecretDetector(),
      containment: stateMachineContainment(planning, launcher, SCANNER_ACTOR),
      actor: SCANNER_ACTOR,
    }),
    logger: new Logger({ serviceName: 'keywarden' }),
  });
}

/** The Lambda entry point: the destination of the `keywarden-exposure` subscription filters. */
export const handler = entryPoint(init);
