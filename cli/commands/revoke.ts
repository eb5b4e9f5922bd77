import { createInterface } from 'node:readline/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { Command } from 'commander';
import { awsFailure } from '../../functions/adapters/aws/clients.ts';
import {
  type PlannedPart,
  planAndStoreCampaign,
  stepFunctionsLauncher,
} from '../../functions/adapters/campaign-launcher.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import { authorizeCampaignStart } from '../../functions/core/breakglass.ts';
import type { ReissueRecord } from '../../functions/core/campaign.ts';
import {
  type CampaignCounts,
  IncidentSchema,
  type PlanSummary,
  type Target,
  timeToRevoke,
} from '../../functions/core/campaign.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import type { Principal } from '../../functions/core/grant.ts';
import type { StoredCampaign } from '../../functions/core/ports.ts';
import { residualExposure } from '../../functions/core/revocation-report.ts';
import { parseSelectors } from '../../functions/core/selector.ts';
import { localUser } from '../../functions/local/dev.ts';
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
      report({ campaign, targets, reissues }, json, await stillLive(services, campaign, targets));
      if (campaign.planning || targets.some((t) => t.outcome === 'failed')) throw new ExitCode(1);
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

/**
 * Who runs the command, as the responder check sees it: in AWS mode the IAM principal STS
 * names (the ARN API Gateway's IAM authorizer would give), on the local stack the local user.
 */
async function principalOf(services: Services): Promise<Principal> {
  if (!awsMode()) return { kind: 'local', id: localUser() };
  try {
    const { Arn } = await services.aws.sts.send(new GetCallerIdentityCommand({}));
    if (Arn) return { kind: 'aws', id: Arn };
  } catch (error) {
    throw awsFailure('asking STS who is calling (the responder check)', error);
  }
  throw new KeywardenError('STS GetCallerIdentity named no principal; check the AWS credentials in use');
}

async function startCampaign(options: RevokeOptions, incident: string, usage: (message: string) => never) {
  const services = wire(loadConfig());
  // A dry run changes nothing; starting a campaign is for incident responders (refusals audited).
  if (!options.dryRun) {
    await authorizeCampaignStart(services.breakglassDeps, await principalOf(services), incident);
  }
  // Consent given up front (--yes) on the local stack: the slowest service's revocations start
  // while the rest is listed. In AWS the deployed state machine runs the campaign once stored whole.
  let running: Promise<void> | undefined;
  const inParts =
    options.yes && !options.dryRun && !awsMode()
      ? {
          campaigns: services.store,
          onFirstPart: (first: PlannedPart, rest: Promise<PlannedPart>) => {
            const { campaignId } = first.campaign;
            say(
              `campaign ${campaignId}: ${first.pending.length} to revoke in ${first.campaign.planning?.stored.join(', ')}, started while the rest is planned`,
            );
            running = run(services, campaignId, { json: options.json, retryFailed: false, rest });
            // Awaited below; marked handled here in case it settles before planning does.
            running.catch(() => undefined);
          },
        }
      : undefined;
  let planned: Awaited<ReturnType<typeof planAndStoreCampaign>>;
  try {
    planned = await planAndStoreCampaign(
      services,
      {
        incident,
        selectors: options.selector,
        reissue: Boolean(options.reissue),
        actor: actor(),
        dryRun: Boolean(options.dryRun),
      },
      inParts
        ? { inParts }
        : {
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
  } catch (error) {
    // The first part runs to the end and says how the rest goes on; its outcome is the one to show.
    if (running) await running;
    throw error;
  }
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
      await (running ?? run(services, campaignId, { json: options.json, retryFailed: false }));
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
  options: { json: boolean | undefined; retryFailed: boolean; rest?: Promise<PlannedPart> },
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
      ...(options.rest ? { rest: options.rest } : {}),
      onOutcome: (target, { done, total }) => say(`[${done}/${total}] ${progressLine(target)}`),
    });
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
  const residual = await stillLive(services, result.campaign, result.targets);
  report(result, options.json, residual);
  if (result.stopped || !result.report) {
    say(`stopped before the end; continue with: keywarden revoke resume ${campaignId}`);
  } else {
    const locations = result.report;
    say(`report: ${locations.html} (also ${locations.markdown}, ${locations.json})`);
  }
  if (result.stopped || residual.length > 0) throw new ExitCode(1);
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
  const launcher = stepFunctionsLauncher(services.config.aws, stateMachineArn);
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
  const residual = await stillLive(services, campaign, targets);
  report({ campaign, targets, reissues }, options.json, residual);
  if (campaign.reportLocation) say(`report: ${campaign.reportLocation}`);
  if (residual.length > 0) throw new ExitCode(1);
}

type Residual = ReturnType<typeof residualExposure>;

/** What the campaign left alive, with owners: the report's residual exposure, over the inventory. */
async function stillLive(
  services: Services,
  campaign: StoredCampaign,
  targets: readonly Target[],
): Promise<Residual> {
  const affected = new Set(targets.map((t) => t.identityId));
  const identities = (await services.store.listIdentities())
    .map((record) => record.identity)
    .filter((identity) => affected.has(identity.id));
  return residualExposure({ campaign, targets, identities });
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
  residual: Residual,
) {
  const { campaign, targets, reissues } = result;
  const failures = targets.filter((t) => t.outcome === 'failed');
  const timing = campaign.startedAt ? timeToRevoke(targets, campaign.startedAt) : undefined;
  if (json) {
    const { rev: _rev, ...rest } = campaign;
    printJson({ campaign: rest, failures, reissues, timeToRevoke: timing, residualExposure: residual });
    if (residual.length) say(stillLiveLine(residual));
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
  if (residual.length) {
    printTable(
      ['STILL LIVE', 'IDENTITY', 'HANDLE', 'OWNER', 'ENVIRONMENT', 'WHY'],
      residual.map((r) => [
        r.kind,
        r.identityId,
        r.handle,
        r.owner ?? '(no owner declared)',
        r.environment,
        r.why,
      ]),
    );
    say(stillLiveLine(residual));
  }
  say(
    `campaign ${campaign.campaignId} (${campaign.incident}) ${campaign.status}: ${byOutcome.revoked} revoked, ${byOutcome['already-revoked']} already revoked, ${byOutcome.skipped} skipped, ${byOutcome.failed} failed, ${byOutcome.pending} pending${timeText}`,
  );
  if (campaign.planning) say(openPlanningLine(campaign));
}

/** What a campaign whose planner stopped between its parts still lacks, and how to go on. */
const openPlanningLine = (campaign: StoredCampaign): string =>
  `planning open: only the targets in ${campaign.planning?.stored.join(', ')} are planned; the other services' credentials are not yet; keywarden revoke resume ${campaign.campaignId} plans and revokes them`;

/** How many still-live credentials the closing line names; the table lists them all. */
const STILL_LIVE_NAMED = 10;

/** The one line that says what is still live and whom to call. */
function stillLiveLine(residual: Residual): string {
  const owners = [...new Set(residual.map((r) => r.owner ?? '(no owner declared)'))].sort();
  const named = residual.slice(0, STILL_LIVE_NAMED).map((r) => `${r.identityId} ${r.handle}`);
  const more = residual.length > STILL_LIVE_NAMED ? `, and ${residual.length - STILL_LIVE_NAMED} more` : '';
  return `still live: ${residual.length} credential(s) not ended (${named.join(', ')}${more}); owners: ${owners.join(', ')}`;
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
