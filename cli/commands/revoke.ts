import { createInterface } from 'node:readline/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import { awsClientConfig } from '../../functions/adapters/aws/clients.ts';
import {
  planAndStoreCampaign,
  StepFunctionsCampaignLauncher,
} from '../../functions/adapters/campaign-launcher.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import type { ReissueRecord } from '../../functions/core/campaign.ts';
import {
  type CampaignCounts,
  IncidentSchema,
  type PlanSummary,
  type Target,
  timeToRevoke,
} from '../../functions/core/campaign.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import type { StoredCampaign } from '../../functions/core/ports.ts';
import { parseSelectors } from '../../functions/core/selector.ts';
import { LocalRevocationRunner } from '../../functions/local/revocation-runner.ts';
import { actor, loadConfig } from '../context.ts';
import { ExitCode } from '../errors.ts';
import { printJson, printTable, say } from '../output.ts';

interface RevokeOptions {
  incident?: string;
  selector: string[];
  dryRun?: boolean;
  yes?: boolean;
  reissue?: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function registerRevoke(program: Command): void {
  const revoke = program
    .command('revoke')
    .description('incident mass revocation: revoke every credential a selector matches, re-issue clean ones')
    .option('--incident <id>', 'the incident this campaign answers, such as INC-42')
    .option(
      '--selector <selector>',
      'which credentials, such as "stage=deploy,env=prod" (repeat to OR several)',
      collect,
      [],
    )
    .option('--dry-run', 'print the plan (counts per kind, then targets), change nothing')
    .option('--yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .option('--reissue', 'issue fresh credentials to the delivery targets of the identities once revoked')
    .option('--json', 'print JSON')
    .action(async (options: RevokeOptions, command: Command) => {
      const usage = (message: string): never =>
        command.error(`keywarden revoke: ${message}`, { exitCode: 2 });
      if (!options.incident) usage('expected --incident ID, such as --incident INC-42');
      const incident = IncidentSchema.safeParse(options.incident);
      if (!incident.success) usage(`--incident: ${incident.error.issues[0]?.message}`);
      try {
        parseSelectors(options.selector);
      } catch (error) {
        if (error instanceof ValidationError) usage(error.message);
        throw error;
      }
      await startCampaign(options, incident.data as string, usage);
    });

  revoke
    .command('status')
    .description(
      'a campaign: status, counts per outcome and kind, failures, re-issued identities; without ID, the campaigns',
    )
    .argument('[id]', 'the campaign id')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, _options: unknown, command: Command) => {
      // --json may land on `revoke` itself, which has one too.
      const json = Boolean(command.optsWithGlobals().json);
      const services = wire(loadConfig());
      if (!id) return listCampaigns(services, json);
      const campaign = await services.store.getCampaign(id);
      if (!campaign) throw noCampaign(id);
      const [targets, reissues] = await Promise.all([
        services.store.listTargets(id),
        services.store.listReissues(id),
      ]);
      report({ campaign, targets, reissues }, json);
      if (targets.some((t) => t.outcome === 'failed')) throw new ExitCode(1);
    });

  revoke
    .command('resume')
    .description('continue a campaign that was stopped or interrupted; retryable failures are tried again')
    .argument('<id>', 'the campaign id')
    .option('--json', 'print JSON')
    .action(async (id: string, _options: unknown, command: Command) => {
      const services = wire(loadConfig());
      if (!(await services.store.getCampaign(id))) throw noCampaign(id);
      await run(services, id, { json: Boolean(command.optsWithGlobals().json), retryFailed: true });
    });
}

const noCampaign = (id: string) =>
  new KeywardenError(`no campaign ${JSON.stringify(id)}; see keywarden revoke status for the campaigns`);

/** In AWS mode (`KEYWARDEN_TABLE` set) campaigns run in the deployed state machine. */
const awsMode = (): boolean => Boolean(process.env.KEYWARDEN_TABLE);

async function startCampaign(options: RevokeOptions, incident: string, usage: (message: string) => never) {
  const services = wire(loadConfig());
  const planned = await planAndStoreCampaign(
    services,
    {
      incident,
      selectors: options.selector,
      reissue: Boolean(options.reissue),
      actor: actor(),
      dryRun: Boolean(options.dryRun),
    },
    {
      confirm: async (_summary, toRevoke) => {
        if (options.yes) return true;
        if (!process.stdin.isTTY) {
          usage(
            `refusing to revoke ${toRevoke} credentials for ${incident} without confirmation: stdin is not a terminal. Check the plan with --dry-run, then pass --yes`,
          );
        }
        const prompt = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await prompt.question(`Revoke ${toRevoke} credentials for ${incident}? [y/N] `);
        prompt.close();
        return /^y(es)?$/i.test(answer.trim());
      },
    },
  );
  const { summary } = planned;
  switch (planned.status) {
    case 'dry-run':
      if (options.json) printJson(summary);
      else printPlan(summary);
      say(`dry run: nothing changed (${summary.counts.total} targets for ${incident})`);
      return;
    case 'nothing-matches':
      say(
        `nothing matches ${options.selector.map((s) => JSON.stringify(s)).join(' or ')}: nothing to revoke`,
      );
      return;
    case 'declined':
      say('not confirmed: nothing changed');
      throw new ExitCode(1);
    case 'stored': {
      const { campaignId } = planned.campaign;
      say(
        `campaign ${campaignId}: ${summary.counts.byOutcome.pending} to revoke, ${summary.counts.byOutcome.skipped} skipped`,
      );
      await run(services, campaignId, { json: options.json, retryFailed: false });
    }
  }
}

/**
 * Runs a stored campaign with live progress on stderr: on the local stack through the local
 * runtime of the revocation state machine (Ctrl-C stops it cleanly for a later resume), in
 * AWS by starting the deployed state machine and following the store.
 */
async function run(
  services: Services,
  campaignId: string,
  options: { json: boolean | undefined; retryFailed: boolean },
) {
  if (awsMode()) return runInAws(services, campaignId, options);
  const runner = new LocalRevocationRunner({ services, actor: actor() });
  const stop = new AbortController();
  const onSignal = () => {
    say(`stopping after the targets in flight; continue with: keywarden revoke resume ${campaignId}`);
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  let result: Awaited<ReturnType<LocalRevocationRunner['run']>>;
  try {
    result = await runner.run(campaignId, {
      retryFailed: options.retryFailed,
      signal: stop.signal,
      onOutcome: (target, { done, total }) => say(`[${done}/${total}] ${progressLine(target)}`),
    });
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
  report(result, options.json);
  if (result.stopped || !result.report) {
    say(`stopped before the end; continue with: keywarden revoke resume ${campaignId}`);
  } else {
    const locations = result.report;
    say(`report: ${locations.html} (also ${locations.markdown}, ${locations.json})`);
  }
  if (result.stopped || result.targets.some((t) => t.outcome === 'failed')) throw new ExitCode(1);
}

/** How often AWS mode reads the store for progress. */
const POLL_MS = 2_000;

/** Starts the deployed state machine for the campaign and follows its targets in the store. */
async function runInAws(
  services: Services,
  campaignId: string,
  options: { json: boolean | undefined; retryFailed: boolean },
) {
  const stateMachineArn = process.env.KEYWARDEN_REVOCATION_STATE_MACHINE_ARN;
  if (!stateMachineArn) {
    throw new KeywardenError(
      `KEYWARDEN_TABLE is set, so the campaign runs in the deployed revocation state machine, but KEYWARDEN_REVOCATION_STATE_MACHINE_ARN is not set; set it to the stack output RevocationStateMachineArn, then: keywarden revoke resume ${campaignId}`,
    );
  }
  const launcher = new StepFunctionsCampaignLauncher({
    client: new SFNClient(awsClientConfig(services.config.aws)),
    stateMachineArn,
  });
  const { executionArn } = await launcher.start(campaignId, { retryFailed: options.retryFailed });
  say(`started ${executionArn}`);
  const stop = new AbortController();
  const onSignal = () => {
    say(
      `stopped following; the campaign goes on in Step Functions. Follow it with: keywarden revoke status ${campaignId}`,
    );
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  const seen = new Map<string, string>();
  try {
    for (;;) {
      const [execution, targets] = await Promise.all([
        launcher.describe(executionArn),
        services.store.listTargets(campaignId),
      ]);
      const done = targets.filter((t) => t.outcome !== 'pending').length;
      for (const target of targets) {
        const key = `${target.outcome}:${target.attempts}`;
        if (target.outcome === 'pending' || seen.get(target.targetId) === key) continue;
        seen.set(target.targetId, key);
        say(`[${done}/${targets.length}] ${progressLine(target)}`);
      }
      if (execution.status !== 'RUNNING') {
        if (execution.status !== 'SUCCEEDED') {
          throw new KeywardenError(
            `the revocation execution ${executionArn} ended ${execution.status}${execution.error ? `: ${execution.error}` : ''}${execution.cause ? ` (${execution.cause})` : ''}; fix the cause, then keywarden revoke resume ${campaignId}`,
          );
        }
        break;
      }
      if (stop.signal.aborted) throw new ExitCode(1);
      await sleep(POLL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
      if (stop.signal.aborted) throw new ExitCode(1);
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
  const campaign = await services.store.getCampaign(campaignId);
  if (!campaign) throw noCampaign(campaignId);
  const [targets, reissues] = await Promise.all([
    services.store.listTargets(campaignId),
    services.store.listReissues(campaignId),
  ]);
  report({ campaign, targets, reissues }, options.json);
  if (campaign.reportLocation) say(`report: ${campaign.reportLocation}`);
  if (targets.some((t) => t.outcome === 'failed' || t.outcome === 'pending')) throw new ExitCode(1);
}

const progressLine = (t: Target): string =>
  `${t.outcome} ${t.kind} ${t.identityId} ${t.handle}${t.error ? `: ${t.error}` : t.reason ? ` (${t.reason})` : ''}`;

function printCounts(counts: CampaignCounts) {
  printTable(
    ['KIND', 'TOTAL', 'PENDING', 'REVOKED', 'ALREADY', 'SKIPPED', 'FAILED'],
    Object.entries(counts.byKind).map(([kind, c]) => [
      kind,
      c.total,
      c.pending,
      c.revoked,
      c['already-revoked'],
      c.skipped,
      c.failed,
    ]),
  );
}

function printPlan(summary: PlanSummary) {
  printCounts(summary.counts);
  printTable(
    ['KIND', 'IDENTITY', 'ACTION', 'HANDLE', 'NOTE'],
    summary.targets.map((t) => [
      t.kind,
      t.identityId,
      t.action,
      t.handle,
      [t.outcome === 'skipped' ? `skipped: ${t.reason}` : '', t.reissue ? 're-issue after' : '']
        .filter(Boolean)
        .join('; '),
    ]),
  );
  if (summary.reissue.length) say(`re-issue after revocation: ${summary.reissue.join(', ')}`);
}

/** The summary of a campaign: counts per outcome and kind, failures with their errors, re-issues. */
function report(
  result: { campaign: StoredCampaign; targets: Target[]; reissues: ReissueRecord[] },
  json: boolean | undefined,
) {
  const { campaign, targets, reissues } = result;
  const failures = targets.filter((t) => t.outcome === 'failed');
  const timing = campaign.startedAt ? timeToRevoke(targets, campaign.startedAt) : undefined;
  if (json) {
    const { rev: _rev, ...rest } = campaign;
    printJson({ campaign: rest, failures, reissues, timeToRevoke: timing });
    return;
  }
  const { byOutcome } = campaign.counts;
  printCounts(campaign.counts);
  if (failures.length) {
    printTable(
      ['KIND', 'IDENTITY', 'HANDLE', 'ATTEMPTS', 'ERROR'],
      failures.map((t) => [
        t.kind,
        t.identityId,
        t.handle,
        t.attempts,
        `${t.error}${t.retryable ? ' (retryable: resume)' : ''}`,
      ]),
    );
  }
  if (reissues.length) {
    printTable(
      ['IDENTITY', 'RE-ISSUE', 'DETAIL'],
      reissues.map((r) => [r.identityId, r.status, r.versionId ?? r.reason ?? '']),
    );
  }
  const timeText = timing
    ? `; time to revoke p50 ${timing.p50Ms} ms, p95 ${timing.p95Ms} ms, max ${timing.maxMs} ms`
    : '';
  say(
    `campaign ${campaign.campaignId} (${campaign.incident}) ${campaign.status}: ${byOutcome.revoked} revoked, ${byOutcome['already-revoked']} already revoked, ${byOutcome.skipped} skipped, ${byOutcome.failed} failed, ${byOutcome.pending} pending${timeText}`,
  );
}

async function listCampaigns(services: Services, json: boolean | undefined) {
  const campaigns = await services.store.listCampaigns();
  if (json) {
    printJson(campaigns.map(({ rev: _rev, ...c }) => c));
    return;
  }
  printTable(
    ['CAMPAIGN', 'INCIDENT', 'STATUS', 'CREATED', 'BY', 'TARGETS', 'FAILED', 'PENDING'],
    campaigns.map((c) => [
      c.campaignId,
      c.incident,
      c.status,
      c.createdAt,
      c.requestedBy,
      c.counts.total,
      c.counts.byOutcome.failed,
      c.counts.byOutcome.pending,
    ]),
  );
}
