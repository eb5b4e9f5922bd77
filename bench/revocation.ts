/**
 * Benchmark: incident mass revocation of N mixed targets (2,000 by default) on the local
 * stack, three ways in the same run, each on a fresh fleet of the same shape
 * (bench/support/revocation-fleet.ts) and its own state table. Beside the N recorded
 * targets, each fleet holds P credentials that existed before keywarden (a fifth of N by
 * default, at least 50; bench/support/preexisting-fleet.ts): made straight through the SDK
 * and the Vault API, declared in the inventory, never rotated, so keywarden has recorded
 * none of them and a campaign finds them only by listing the providers.
 *
 * - keywarden: plan the campaign as the CLI does (the inventory from the store, each
 *   selected identity resolved against its provider's live state, what is live and not
 *   recorded adopted), store it, run it (claims, checkpoints, version marks, one audit event
 *   per target, per-service limits), then write the three-format report;
 * - naive: one revoke after the other, no bookkeeping at all;
 * - raw: the same revoke calls at keywarden's concurrency and rate limits, no bookkeeping.
 *
 * The baselines revoke the same targets: their list is keywarden's dry-run plan of their own
 * fleet, made before their clock starts (a script with a list of handles). A Secrets Manager
 * current version is given a fresh value first (PutSecretValue), as keywarden replaces it.
 *
 * Two worlds (bench/support/model-mode.ts): `--model loopback` (the servers directly) and
 * `--model aws` (every contender's requests through the AWS model of test/support/aws-model.ts:
 * per-service latency, per-API token buckets at AWS's quotas, AWS's own throttling answers).
 * Building the fleets, the baselines' lists and the final check reach the servers directly.
 *
 * What is compared, honestly: keywarden's wall is the whole campaign as a responder runs it —
 * planning from live state (listing every provider, through the model in `aws`), storing the
 * plan, running it — while the baselines' list is free (made before their clock). So two
 * ratios against raw are printed: keywarden's whole campaign / raw, and keywarden's run phase
 * alone / raw (the price of the bookkeeping without the listing).
 *
 * The quota bound (`aws` only): the least wall time any client could take for these targets at
 * these quotas = max over the model's quota buckets b of calls(b) / quota(b), where calls(b)
 * counts the requests bucket b admitted during the reference contender's run — raw when it ran
 * (the fewest calls that end these targets: no listing, no bookkeeping), else naive, else
 * keywarden itself; throttled tries are not counted. keywarden's share of the bound =
 * bound / keywarden's wall (whole campaign, and run phase): 100 % is as fast as the quotas allow.
 *
 * Prints per contender the wall time, targets/s, requests per target (store: DynamoDB;
 * providers: IAM, STS, Secrets Manager, Vault; SDK calls, a retried call once), throttled
 * answers, targets failed and failed by throttling; the ratios; where keywarden's store calls
 * went; planning's stages (each port call's span and summed time), its requests by call and the
 * CPU each process spent on it (`KEYWARDEN_BENCH_PLAN_PROFILE=<file>.cpuprofile` also profiles
 * this process while it plans, `KEYWARDEN_BENCH_PROFILE=<file>.cpuprofile` while it plans and
 * runs); a Markdown block for the README. Each fleet is then checked on
 * the servers themselves.
 *
 *   npx tsx bench/revocation.ts [--model loopback|aws] [--targets 2000] [--preexisting 400]
 *   npx tsx bench/revocation.ts --model aws --scale 500,2000,10000 [--contenders keywarden]
 *
 * `--scale` runs the sizes one after the other on the same stack (a fleet per size and
 * contender, pre-existing credentials a fifth of each size unless `--preexisting`) and ends
 * with targets/s per size: it should stay flat as the state table grows.
 *
 * Limits: KEYWARDEN_RATE_* / KEYWARDEN_CONCURRENCY_* when set; otherwise in `aws` the IAM and
 * Secrets Manager rates come from the model's quota table (aws-model.ts rateLimitEnvFromQuotas:
 * IAM 7.5 turns/s, two calls each; Secrets Manager 50 writes/s), and the bench's defaults fill the rest: Vault 400/s and 32 at once,
 * IAM 20/s (loopback) and 4 at once, Secrets Manager 160 writes/s (loopback) and 16 at once. Raw
 * takes the turns of its writes as keywarden does (two for a current value: its PutSecretValue
 * and the label removed).
 *
 * It starts its own local stack in a temporary directory and stops it at the end, on
 * error and on Ctrl-C (and a watchdog does if this process is killed).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DescribeSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import Table from 'cli-table3';
import {
  type CampaignPlanningDeps,
  type PlanAndStoreOptions,
  partsAfter,
  planAndStoreCampaign,
} from '../functions/adapters/campaign-launcher.ts';
import { publishCampaignReport } from '../functions/adapters/campaign-report.ts';
import { providerLimiters, rateLimitsFromEnv } from '../functions/adapters/rate-limits.ts';
import { RuntimeConfigSchema } from '../functions/adapters/runtime-config.ts';
import type { VaultClient } from '../functions/adapters/vault/client.ts';
import { type Services, wire } from '../functions/adapters/wiring.ts';
import type { Target } from '../functions/core/campaign.ts';
import {
  type CampaignDeps,
  type CampaignRun,
  closeCampaign,
  runCampaign,
} from '../functions/core/campaign-engine.ts';
import type { Identity } from '../functions/core/identity.ts';
import { serviceOf } from '../functions/core/kinds.ts';
import type { Limit, RevokeResult } from '../functions/core/ports.ts';
import type { StackEndpoints } from '../scripts/local-stack.ts';
import { type BucketCount, quotaBound } from '../test/support/aws-model.ts';
import { type BenchRun, round, runBench, writeResults } from './support/bench-run.ts';
import { startCpuProfile } from './support/cpu-profile.ts';
import { CallLedger, recordAwsCalls, recordVaultCalls, startPhase, timedPort } from './support/measure.ts';
import {
  applyModelRateLimits,
  type ContenderWorld,
  directServices,
  isThrottling,
  type ModelName,
  parseModel,
  startWorld,
} from './support/model-mode.ts';
import { preexistingShape } from './support/preexisting-fleet.ts';
import { buildFleet, fleetShape, type RevocationFleet, stillLive } from './support/revocation-fleet.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

/** The bench's limits where the environment (or, in `aws`, the quota table) sets none; see the module comment. */
const BENCH_LIMIT_DEFAULTS: Record<string, string> = {
  KEYWARDEN_RATE_VAULT: '400',
  KEYWARDEN_CONCURRENCY_VAULT: '32',
  KEYWARDEN_RATE_IAM: '20',
  KEYWARDEN_CONCURRENCY_IAM: '4',
  // Writes a second: four times the product's 40, the four writes a current value's revocation takes
  // (loopback models no quota; the AWS model's 50 comes from the quota table first).
  KEYWARDEN_RATE_SECRETS_MANAGER: '160',
};

const sizeOf = (name: string, text: string | undefined): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 60 || n > 20_000) {
    throw new Error(`${name}: expected a whole number from 60 to 20000, got ${JSON.stringify(text)}`);
  }
  return n;
};

const planMode = (text: string): 'parts' | 'whole' => {
  if (text === 'parts' || text === 'whole') return text;
  throw new Error(`--plan: expected parts or whole, got ${JSON.stringify(text)}`);
};

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      targets: { type: 'string', default: '2000' },
      preexisting: { type: 'string' },
      contenders: { type: 'string', default: 'keywarden,naive,raw' },
      model: { type: 'string', default: 'loopback' },
      scale: { type: 'string' },
      plan: { type: 'string', default: 'parts' },
    },
    strict: true,
  });
  const sizes =
    values.scale === undefined
      ? [sizeOf('--targets', values.targets)]
      : values.scale.split(',').map((size) => sizeOf('--scale', size.trim()));
  const preexisting = values.preexisting === undefined ? undefined : Number(values.preexisting);
  if (
    preexisting !== undefined &&
    (!Number.isInteger(preexisting) || (preexisting !== 0 && preexisting < 50) || preexisting > 20_000)
  ) {
    throw new Error(
      `--preexisting: expected 0, or a whole number from 50 to 20000, got ${JSON.stringify(values.preexisting)}`,
    );
  }
  const contenders = values.contenders.split(',').map((name) => {
    if (!(CONTENDERS as readonly string[]).includes(name)) {
      throw new Error(`--contenders: expected some of ${CONTENDERS.join(',')}, got ${JSON.stringify(name)}`);
    }
    return name as ContenderName;
  });
  return {
    sizes,
    preexisting,
    contenders,
    model: parseModel(values.model),
    scale: values.scale !== undefined,
    inParts: planMode(values.plan) === 'parts',
  };
}

type Options = ReturnType<typeof parseOptions>;

const CONTENDERS = ['keywarden', 'naive', 'raw'] as const;
type ContenderName = (typeof CONTENDERS)[number];
const LABEL: Record<ContenderName, string> = {
  keywarden: 'keywarden campaign',
  naive: 'naive sequential loop',
  raw: 'raw concurrent calls',
};

/** Pre-existing credentials beside `targets` recorded ones: `--preexisting`, or a fifth (at least 50). */
const preexistingFor = (options: Options, targets: number) =>
  options.preexisting ?? Math.max(50, Math.round(targets / 5));

const shapeText = (shape: Record<string, number>): string =>
  Object.entries(shape)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${n} ${kind}`)
    .join(', ');

interface Contender {
  /** Straight to the servers: the fleet, the baseline's list, the final check. */
  direct: Services;
  /** The contender's own requests: the servers (loopback) or the model's proxies (aws). */
  services: Services;
  world: ContenderWorld;
  fleet: RevocationFleet;
  ledger: CallLedger;
  incident: string;
  /** For a baseline: what it revokes, made before its ledger and clock start. */
  baseline?: Awaited<ReturnType<typeof baselineTargets>>;
}

async function prepare(
  stack: StackEndpoints,
  name: ContenderName,
  size: { targets: number; preexisting: number },
  model: ModelName,
  incident: string,
): Promise<Contender> {
  const base = {
    tableName: `kwb-revoke-${name}-${randomBytes(3).toString('hex')}`,
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: {},
  };
  const direct = await directServices(stack, base);
  const fleet = await buildFleet({ services: direct, vault: direct.vault as VaultClient }, size.targets, {
    preexisting: size.preexisting,
  });
  const baseline = name === 'keywarden' ? undefined : await baselineTargets(direct, fleet, incident);
  // The same seed for every contender: each meets the same latency draws in the same order.
  const world = await startWorld(stack, model, 12);
  const services =
    model === 'loopback'
      ? direct
      : wire(
          RuntimeConfigSchema.parse({
            ...base,
            aws: world.aws,
            vault: { addr: world.vaultAddr, token: stack.vault.token },
          }),
        );
  // The ledger starts after the fleet is built and the baseline's list made: it counts the contender's calls only.
  const ledger = new CallLedger();
  for (const service of ['iam', 'sts', 'secrets', 'dynamodb'] as const) {
    recordAwsCalls(services.aws[service], service, ledger);
  }
  recordVaultCalls(services.vault as VaultClient, fleet.prefix, ledger);
  return { direct, services, world, fleet, ledger, incident, ...(baseline && { baseline }) };
}

/** Plans (and unless `dryRun`, stores) the fleet's campaign as `keywarden revoke --selector … --yes` does. */
const plan = (
  services: CampaignPlanningDeps,
  fleet: RevocationFleet,
  incident: string,
  dryRun: boolean,
  options: PlanAndStoreOptions = {},
) =>
  planAndStoreCampaign(
    services,
    { incident, selectors: [fleet.selector], reissue: false, actor: 'bench:responder', dryRun },
    options,
  );

/** One target's revoke, as a script without keywarden would call it: the provider, nothing else. */
function revokeOne(
  deps: CampaignDeps,
  byId: Map<string, Identity>,
  target: Target,
  incident: string,
): Promise<unknown> {
  if (target.action === 'revoke-prefix')
    return deps.leases?.revokePrefix(target.handle) as Promise<RevokeResult>;
  if (target.action === 'deny-sessions') {
    return deps.sessions?.denySessions(target.handle, {
      incident,
      issuedBefore: new Date().toISOString(),
    }) as Promise<RevokeResult>;
  }
  const identity = byId.get(target.identityId) as Identity;
  return deps.rotation.providerFor(identity).revoke(target.handle);
}

/**
 * The baselines' list: keywarden's dry-run plan of their own fleet (the same listing of the
 * providers), with the Secrets Manager versions that are current now, which a script must
 * replace before it can take their label away. Made before the baseline's clock starts,
 * straight on the servers: the list is free.
 */
async function baselineTargets(services: Services, fleet: RevocationFleet, incident: string) {
  const planned = await plan(services, fleet, incident, true);
  const targets = planned.summary.targets.filter((t) => t.outcome === 'pending');
  const current = new Set<string>();
  for (const identity of fleet.identities) {
    if (identity.kind !== 'aws-secret') continue;
    const described = await services.aws.secrets.send(
      new DescribeSecretCommand({ SecretId: identity.scope.secretId }),
    );
    for (const [version, stages] of Object.entries(described.VersionIdsToStages ?? {})) {
      if (stages.includes('AWSCURRENT')) current.add(`${identity.id}:${version}`);
    }
  }
  return { targets, current };
}

interface Measured {
  wallMs: number;
  targets: number;
  failed: number;
  failedByThrottling: number;
}

async function runBaseline(contender: Contender, concurrent: boolean): Promise<Measured> {
  const { incident } = contender;
  const deps = contender.services.campaignDeps('bench');
  const byId = new Map(contender.fleet.identities.map((i) => [i.id, i]));
  const { targets, current } = contender.baseline ?? { targets: [], current: new Set<string>() };
  const { secrets } = contender.services.aws;
  /** A current secret version first gets a fresh value in its place, then loses its label like any other. */
  const revoke = async (target: Target) => {
    const identity = byId.get(target.identityId);
    if (identity?.kind === 'aws-secret' && current.has(`${target.identityId}:${target.handle}`)) {
      await secrets.send(
        new PutSecretValueCommand({
          SecretId: identity.scope.secretId,
          SecretString: randomBytes(24).toString('base64url'),
        }),
      );
    }
    return revokeOne(deps, byId, target, incident);
  };
  const { limitFor } = providerLimiters(rateLimitsFromEnv());
  /** The turns of its service's rate a target's writes take: a current secret's two (replaced, then unlabelled). */
  const turnsOf = (target: Target) =>
    byId.get(target.identityId)?.kind === 'aws-secret' && current.has(`${target.identityId}:${target.handle}`)
      ? 2
      : 1;
  let failed = 0;
  let failedByThrottling = 0;
  const fail = (error: unknown) => {
    failed += 1;
    if (isThrottling(error)) failedByThrottling += 1;
  };
  const started = performance.now();
  if (concurrent) {
    await Promise.all(
      targets.map((target) => limitFor(target.kind)(() => revoke(target), turnsOf(target)).catch(fail)),
    );
  } else {
    for (const target of targets) await revoke(target).catch(fail);
  }
  return { wallMs: performance.now() - started, targets: targets.length, failed, failedByThrottling };
}

async function runKeywarden(contender: Contender, pids: Record<string, number>, inParts: boolean) {
  const { incident } = contender;
  const { services, ledger } = contender;
  const plain = services.campaignDeps('bench');
  const deps: CampaignDeps = {
    ...plain,
    campaigns: timedPort(plain.campaigns, 'campaigns', ledger),
    rotation: {
      ...plain.rotation,
      store: timedPort(plain.rotation.store, 'store', ledger),
      audit: timedPort(plain.rotation.audit, 'audit', ledger),
      providerFor: (identity) =>
        timedPort(plain.rotation.providerFor(identity), `provider[${identity.kind}]`, ledger),
    },
  };
  const { limitFor } = providerLimiters(rateLimitsFromEnv());
  const storeCalls = () => ledger.count('dynamodb.');
  // Planning's stages, each port call timed by name: when each stage began and ended, what it summed.
  const stages = new CallLedger();
  const planningStore = timedPort(services.store, 'store', stages);
  const planning: CampaignPlanningDeps = {
    store: planningStore,
    clock: services.clock,
    rotationDeps: (actor) => {
      const live = services.rotationDeps(actor);
      return {
        ...live,
        audit: timedPort(live.audit, 'audit', stages),
        providerFor: (identity) => timedPort(live.providerFor(identity), `list[${identity.kind}]`, stages),
        deliveryFor: (target) => timedPort(live.deliveryFor(target), `read[${target.type}]`, stages),
      };
    },
  };
  const planPhase = startPhase(pids);
  const profiling = await startCpuProfile(process.env.KEYWARDEN_BENCH_PLAN_PROFILE);
  const profilingAll = await startCpuProfile(process.env.KEYWARDEN_BENCH_PROFILE);
  const started = performance.now();
  const startedAt = Date.now();
  // In parts (`keywarden revoke --yes` on the local stack): the first part's targets run while the
  // rest is listed, each part as a run of its targets, then the campaign is closed as the report
  // step closes it. Whole (`--plan whole`): planned and stored whole, then run.
  const runs: Promise<unknown>[] = [];
  let firstStored: number | undefined;
  let storeCallsFirst = 0;
  const campaignRun = async (id: string, targetIds: readonly string[], limit = limitFor) => {
    if (targetIds.length > 0) await runCampaign(deps, id, { limitFor: limit, targetIds });
  };
  const planned = await plan(
    planning,
    contender.fleet,
    incident,
    false,
    inParts
      ? {
          inParts: {
            campaigns: planningStore,
            onFirstPart: (first, rest) => {
              firstStored = performance.now();
              storeCallsFirst = storeCalls();
              const id = first.campaign.campaignId;
              // Under way once its first revocation is dispatched: the later listings wait for that.
              let dispatched!: () => void;
              const underWay = new Promise<void>((resolve) => {
                dispatched = resolve;
              });
              const limitFirst = (kind: Identity['kind']): Limit => {
                const limit = limitFor(kind);
                return (work, turns) =>
                  limit(() => {
                    dispatched();
                    return work();
                  }, turns);
              };
              const parts = [
                campaignRun(id, first.pending, limitFirst).finally(dispatched),
                // Each later part run as it is stored, beside the parts before it.
                (async () => {
                  const later: Promise<void>[] = [];
                  for await (const part of partsAfter(rest)) later.push(campaignRun(id, part.pending));
                  await Promise.all(later);
                })(),
              ];
              // Awaited once planning returns; marked handled so a failed part is not also unhandled meanwhile.
              for (const part of parts) part.catch(() => undefined);
              runs.push(...parts);
              return underWay;
            },
          },
        }
      : {},
  );
  stages.close();
  const planUsage = planPhase();
  /** Planning's requests, by service and call: the ledger so far. */
  const planRequests: Record<string, number> = {};
  for (const [name, stats] of ledger.entries()) {
    // One name per call, not per path: `vault.read secret/metadata/*/kv-12` adds up as `…/*`.
    const call = name.replace(/\/[^/\s]*\d+$/, '/*');
    planRequests[call] = (planRequests[call] ?? 0) + stats.calls;
  }
  await profiling?.();
  if (planned.status !== 'stored')
    throw new Error(`keywarden: the campaign was not stored (${planned.status})`);
  const planClosed = performance.now();
  const stored = firstStored ?? planClosed;
  const storeCallsPlanned = firstStored === undefined ? storeCalls() : storeCallsFirst;
  let run: CampaignRun;
  if (firstStored === undefined) {
    run = await runCampaign(deps, planned.campaign.campaignId, { limitFor });
  } else {
    await Promise.all(runs);
    const book = {
      campaigns: deps.campaigns,
      audit: deps.rotation.audit,
      clock: deps.rotation.clock,
      actor: 'bench',
    };
    // Read once, then closed over what was read, as the report step closes it.
    const [targets, reissues] = await Promise.all([
      deps.campaigns.listTargets(planned.campaign.campaignId),
      deps.campaigns.listReissues(planned.campaign.campaignId),
    ]);
    const campaign = await closeCampaign(book, planned.campaign.campaignId, { targets, reissues });
    run = { campaign, targets, reissues, settled: targets.length, stopped: false };
  }
  const ran = performance.now();
  await profilingAll?.();
  const storeCallsRun = storeCalls() - storeCallsPlanned;
  const reportDir = mkdtempSync(join(tmpdir(), 'keywarden-bench-report-'));
  process.env.KEYWARDEN_REPORTS_DIR = reportDir;
  await publishCampaignReport(services, run);
  const reported = performance.now();
  rmSync(reportDir, { recursive: true, force: true });
  const outcomes: Record<string, number> = {};
  for (const target of run.targets) outcomes[target.outcome] = (outcomes[target.outcome] ?? 0) + 1;
  const failed = run.targets.filter((target) => target.outcome === 'failed');
  return {
    wallMs: ran - started,
    planned: planned.summary.counts.byOutcome,
    /** Until the first targets ran: the first part stored (in parts), the whole plan (whole). */
    planMs: stored - started,
    /** Until the plan was whole (in parts: the rest stored while the first part ran). */
    planWholeMs: planClosed - started,
    inParts: firstStored !== undefined,
    runMs: ran - stored,
    /** DynamoDB requests of planning (inventory, versions, adoption, storing the plan) and of the run (bookkeeping). */
    storeRequestsPlan: storeCallsPlanned,
    storeRequestsRun: storeCallsRun,
    reportMs: reported - ran,
    /** CPU seconds per process while planning. */
    planCpu: planUsage.cpu,
    planRequests,
    /** Planning's stages: calls, when the first began and the last ended (ms after planning started), summed ms. */
    planStages: stages.entries().map(([name, stats]) => ({
      name,
      calls: stats.calls,
      fromMs: round(stats.firstMs - started),
      toMs: round(stats.lastMs - started),
      totalMs: round(stats.totalMs),
    })),
    /** Per provider service: when its first target started and its last ended (ms after the campaign started). */
    serviceSpans: serviceSpans(run.targets, startedAt),
    targets: run.targets.length,
    outcomes,
    failed: failed.length,
    failedByThrottling: failed.filter((target) => isThrottling(target.error ?? '')).length,
  };
}

/** When each provider service's targets ran: the first start and the last end, ms after `from`. */
function serviceSpans(targets: readonly Target[], from: number) {
  const spans: Record<string, { targets: number; fromMs: number; toMs: number; ends: number[] }> = {};
  for (const target of targets) {
    if (!target.startedAt || !target.finishedAt) continue;
    const service = serviceOf(target.kind);
    const span = spans[service] ?? { targets: 0, fromMs: Number.POSITIVE_INFINITY, toMs: 0, ends: [] };
    span.targets += 1;
    span.fromMs = Math.min(span.fromMs, Date.parse(target.startedAt) - from);
    span.toMs = Math.max(span.toMs, Date.parse(target.finishedAt) - from);
    span.ends.push(Date.parse(target.finishedAt) - from);
    spans[service] = span;
  }
  // When half and nine in ten of each service's targets had ended: how steadily it ran.
  return Object.fromEntries(
    Object.entries(spans).map(([service, { ends, ...span }]) => {
      ends.sort((a, b) => a - b);
      const at = (share: number) => ends[Math.min(ends.length - 1, Math.floor(share * ends.length))] ?? 0;
      return [service, { ...span, halfMs: at(0.5), ninetyMs: at(0.9) }];
    }),
  );
}
type KeywardenMeasured = Awaited<ReturnType<typeof runKeywarden>>;

/** One contender's figures at one size. */
interface ContenderResult extends Measured {
  build: number;
  usage: ReturnType<ReturnType<typeof startPhase>>;
  /** SDK calls to DynamoDB (the state store) and to the providers (IAM, STS, Secrets Manager, Vault). */
  storeRequests: number;
  providerRequests: number;
  throttled: number;
  buckets: Record<string, BucketCount>;
  calls: ReturnType<CallLedger['toJSON']>;
}

/** Everything measured at one size: each contender's figures, keywarden's phases, the bound. */
interface SizeRun {
  targets: number;
  preexisting: number;
  results: Partial<Record<ContenderName, ContenderResult>>;
  keywarden?: KeywardenMeasured;
  bound?: { seconds: number; bucket: string | undefined; reference: ContenderName };
}

async function runSize(
  stack: StackEndpoints,
  options: Options,
  targets: number,
  pids: Record<string, number>,
): Promise<SizeRun> {
  const preexisting = preexistingFor(options, targets);
  const sizeRun: SizeRun = { targets, preexisting, results: {} };
  // keywarden first: whatever a warm process and warm servers give goes to the baselines.
  for (const name of options.contenders) {
    process.stderr.write(
      `${name}: building a fleet of ${targets} recorded targets and ${preexisting} pre-existing credentials…\n`,
    );
    const buildStarted = performance.now();
    const incident = `INC-${name}-${randomBytes(2).toString('hex')}`;
    const contender = await prepare(stack, name, { targets, preexisting }, options.model, incident);
    const build = performance.now() - buildStarted;
    process.stderr.write(`${name}: revoking (${options.model})…\n`);
    const phase = startPhase(pids);
    let measured: Measured;
    try {
      if (name === 'keywarden') {
        sizeRun.keywarden = await runKeywarden(contender, pids, options.inParts);
        measured = sizeRun.keywarden;
      } else {
        measured = await runBaseline(contender, name === 'raw');
      }
    } finally {
      await contender.world.close();
    }
    const usage = phase();
    const { ledger } = contender;
    ledger.close();
    const live = await stillLive(
      { services: contender.direct, vault: contender.direct.vault as VaultClient },
      contender.fleet,
      incident,
    );
    if (live.length > 0) {
      throw new Error(`${name} left ${live.length} credentials live, such as ${live.slice(0, 3).join('; ')}`);
    }
    sizeRun.results[name] = {
      ...measured,
      build,
      usage,
      storeRequests: ledger.count('dynamodb.'),
      providerRequests: ['iam.', 'sts.', 'secrets.', 'vault.'].reduce((sum, p) => sum + ledger.count(p), 0),
      throttled: contender.world.throttled(),
      buckets: contender.world.buckets(),
      calls: ledger.toJSON(),
    };
    process.stderr.write(
      `${name}: ${round(measured.wallMs / 1_000, 1)} s, every target ended on the servers` +
        `${options.model === 'aws' ? `, ${contender.world.throttled()} throttled answers` : ''}\n`,
    );
  }
  if (options.model === 'aws') {
    const reference = (['raw', 'naive', 'keywarden'] as const).find((name) => sizeRun.results[name]);
    const buckets = reference && sizeRun.results[reference]?.buckets;
    if (reference && buckets) sizeRun.bound = { ...quotaBound(buckets), reference };
  }
  return sizeRun;
}

const perTarget = (requests: number, targets: number) => (requests / Math.max(1, targets)).toFixed(2);
const seconds = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1_000).toFixed(1));
const percent = (share: number) => `${Math.round(share * 100)} %`;

/** keywarden's ratios at one size: over naive, over raw (whole and run phase), share of the quota bound. */
function ratiosOf(run: SizeRun) {
  const k = run.results.keywarden;
  const naive = run.results.naive;
  const raw = run.results.raw;
  const runMs = run.keywarden?.runMs;
  return {
    keywardenOverNaive: k && naive ? k.wallMs / naive.wallMs : undefined,
    keywardenOverRaw: k && raw ? k.wallMs / raw.wallMs : undefined,
    keywardenRunOverRaw: runMs !== undefined && raw ? runMs / raw.wallMs : undefined,
    boundShare: k && run.bound ? run.bound.seconds / (k.wallMs / 1_000) : undefined,
    boundShareRun: runMs !== undefined && run.bound ? run.bound.seconds / (runMs / 1_000) : undefined,
    /** The most any client could be faster than the naive loop here: naive / bound. */
    naiveOverBound: naive && run.bound?.seconds ? naive.wallMs / 1_000 / run.bound.seconds : undefined,
  };
}

function printSize(run: SizeRun, options: Options) {
  const table = new Table({
    head: [
      'contender',
      'targets',
      'wall s',
      'targets/s',
      'store req/target',
      'provider req/target',
      'throttled answers',
      'failed (by throttling)',
      'moto CPU cores',
      'OpenBao CPU cores',
    ],
    style: { head: [], border: [] },
  });
  for (const name of CONTENDERS) {
    const r = run.results[name];
    if (!r) continue;
    table.push([
      LABEL[name],
      r.targets,
      seconds(r.wallMs),
      (r.targets / (r.wallMs / 1_000)).toFixed(0),
      perTarget(r.storeRequests, r.targets),
      perTarget(r.providerRequests, r.targets),
      r.throttled,
      `${r.failed} (${r.failedByThrottling})`,
      r.usage.cpu.moto?.cores ?? '-',
      r.usage.cpu.openbao?.cores ?? '-',
    ]);
  }
  console.log(table.toString());
  const ratios = ratiosOf(run);
  const fmt = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(3));
  if (ratios.keywardenOverNaive !== undefined) {
    const x = ratios.keywardenOverNaive;
    console.log(
      `keywarden / naive = ${fmt(x)} (keywarden ${x <= 1 ? `${(1 / x).toFixed(1)}× faster` : `${x.toFixed(1)}× slower`})`,
    );
  }
  if (ratios.keywardenOverRaw !== undefined) {
    console.log(
      `keywarden / raw = ${fmt(ratios.keywardenOverRaw)} for the whole campaign (planning from live state included; raw's list is free), ` +
        `${fmt(ratios.keywardenRunOverRaw)} for the run phase alone (claims, checkpoints, version marks, audit trail)`,
    );
  }
  if (run.bound) {
    console.log(
      `quota bound: ${run.bound.seconds.toFixed(1)} s (${run.bound.bucket ?? 'no bucket with a quota'}, from the ${run.bound.reference} run's admitted calls); ` +
        `keywarden reached ${ratios.boundShare === undefined ? '-' : percent(ratios.boundShare)} of it for the whole campaign, ` +
        `${ratios.boundShareRun === undefined ? '-' : percent(ratios.boundShareRun)} in the run phase` +
        (ratios.naiveOverBound === undefined
          ? ''
          : `; no client can be more than ${ratios.naiveOverBound.toFixed(1)}× faster than the naive loop at these quotas`),
    );
  }
  const { keywarden } = run;
  if (keywarden)
    console.log(
      (keywarden.inParts
        ? `keywarden: plan in parts (list the providers, adopt what was not recorded, store): the first part stored at ${round(keywarden.planMs)} ms, the plan whole at ${round(keywarden.planWholeMs)} ms; run ${round(keywarden.runMs)} ms from the first part; ` +
          `store requests per target: ${perTarget(keywarden.storeRequestsPlan, keywarden.targets)} before the first part ran, ${perTarget(keywarden.storeRequestsRun, keywarden.targets)} after (the rest of planning included); `
        : `keywarden: plan (list the providers, adopt what was not recorded) and store the campaign ${round(keywarden.planMs)} ms, run ${round(keywarden.runMs)} ms, ` +
          `store requests per target: plan ${perTarget(keywarden.storeRequestsPlan, keywarden.targets)}, run ${perTarget(keywarden.storeRequestsRun, keywarden.targets)}; `) +
        `report (not in the ratio) ${round(keywarden.reportMs)} ms; planned ${JSON.stringify(keywarden.planned)}, ` +
        `outcomes ${JSON.stringify(keywarden.outcomes)}`,
    );
  if (keywarden) {
    const stages = new Table({
      head: ['planning stage (port call)', 'calls', 'from ms', 'to ms', 'summed ms'],
      style: { head: [], border: [] },
    });
    for (const stage of [...keywarden.planStages].sort((a, b) => a.fromMs - b.fromMs)) {
      stages.push([stage.name, stage.calls, stage.fromMs, stage.toMs, stage.totalMs]);
    }
    console.log(stages.toString());
    console.log(
      `planning requests: ${Object.entries(keywarden.planRequests)
        .map(([name, calls]) => `${name} ${calls}`)
        .join(', ')}`,
    );
    console.log(
      `targets by service, first start → last end (ms after the campaign started): ${Object.entries(
        keywarden.serviceSpans,
      )
        .map(
          ([service, span]) =>
            `${service} ${span.targets}: ${round(span.fromMs)} → ${round(span.toMs)} (half by ${round(span.halfMs)}, 90 % by ${round(span.ninetyMs)})`,
        )
        .join(', ')}`,
    );
    console.log(
      `planning CPU: ${Object.entries(keywarden.planCpu)
        .map(([name, { seconds }]) => `${name} ${seconds} s`)
        .join(', ')}`,
    );
  }
  const k = run.results.keywarden;
  if (k) {
    const calls = new Table({
      head: ['keywarden call', 'calls', 'per target'],
      style: { head: [], border: [] },
    });
    for (const [name, stats] of Object.entries(k.calls).filter(
      ([n]) => n.startsWith('dynamodb.') || n.startsWith('audit.'),
    )) {
      calls.push([name, stats.calls, (stats.calls / Math.max(1, k.targets)).toFixed(2)]);
    }
    console.log(calls.toString());
    // Where the AWS services' time went: each call's mean (an SDK call's retries and backoffs included).
    console.log(
      `keywarden's AWS calls, count × mean ms: ${Object.entries(k.calls)
        .filter(([n]) => /^(iam|secrets)\.|^provider\[aws-(secret|iam)/.test(n))
        .map(([n, stats]) => `${n} ${stats.calls} × ${round(stats.totalMs / Math.max(1, stats.calls))}`)
        .join(', ')}`,
    );
  }
  if (options.model === 'aws') {
    const buckets = new Table({
      head: ['quota bucket: admitted / throttled', ...CONTENDERS.filter((n) => run.results[n])],
      style: { head: [], border: [] },
    });
    const names = [
      ...new Set(Object.values(run.results).flatMap((r) => Object.keys(r?.buckets ?? {}))),
    ].sort();
    for (const bucket of names) {
      buckets.push([
        bucket,
        ...CONTENDERS.filter((n) => run.results[n]).map((n) => {
          const count = run.results[n]?.buckets[bucket];
          return count ? `${count.admitted} / ${count.throttled}` : '-';
        }),
      ]);
    }
    console.log(buckets.toString());
  }
}

/** Targets/s per size and contender, for `--scale`. */
function printScale(runs: SizeRun[]) {
  const table = new Table({
    head: [
      'targets',
      'contender',
      'wall s',
      'targets/s',
      'store req/target',
      'provider req/target',
      'throttled',
    ],
    style: { head: [], border: [] },
  });
  for (const run of runs) {
    for (const name of CONTENDERS) {
      const r = run.results[name];
      if (!r) continue;
      table.push([
        run.targets,
        name,
        seconds(r.wallMs),
        (r.targets / (r.wallMs / 1_000)).toFixed(0),
        perTarget(r.storeRequests, r.targets),
        perTarget(r.providerRequests, r.targets),
        r.throttled,
      ]);
    }
  }
  console.log(table.toString());
}

/** A block of Markdown ready for the README's Benchmarks section. */
function markdown(runs: SizeRun[], options: Options, date: Date): string {
  const lines = [
    `Revocation, \`--model ${options.model}\`, ${date.toISOString().slice(0, 10)} (\`npm run bench:revocation -- --model ${options.model}` +
      `${options.scale ? ` --scale ${options.sizes.join(',')}` : ` --targets ${options.sizes[0]}`}\`, ${cpus().length} CPUs):`,
    '',
    '| targets (+ pre-existing) | contender | wall s | targets/s | store req/target | provider req/target | throttled answers | failed by throttling |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const run of runs) {
    for (const name of CONTENDERS) {
      const r = run.results[name];
      if (!r) continue;
      lines.push(
        `| ${run.targets.toLocaleString('en')} (+ ${run.preexisting}) | ${LABEL[name]} | ${seconds(r.wallMs)} | ` +
          `${(r.targets / (r.wallMs / 1_000)).toFixed(0)} | ${perTarget(r.storeRequests, r.targets)} | ` +
          `${perTarget(r.providerRequests, r.targets)} | ${r.throttled} | ${r.failedByThrottling} |`,
      );
    }
  }
  lines.push('');
  for (const run of runs) {
    const ratios = ratiosOf(run);
    const parts = [
      ratios.keywardenOverNaive !== undefined &&
        `keywarden ${ratios.keywardenOverNaive <= 1 ? `${(1 / ratios.keywardenOverNaive).toFixed(1)}× faster` : `${ratios.keywardenOverNaive.toFixed(1)}× slower`} than the naive loop`,
      ratios.keywardenOverRaw !== undefined &&
        `keywarden/raw wall ${ratios.keywardenOverRaw.toFixed(2)} (run phase alone ${ratios.keywardenRunOverRaw?.toFixed(2)})`,
      ratios.boundShare !== undefined &&
        `${percent(ratios.boundShare)} of the quota bound (${run.bound?.seconds.toFixed(1)} s, ${run.bound?.bucket}; run phase ${percent(ratios.boundShareRun ?? 0)})`,
      run.keywarden &&
        `keywarden's store requests per target: ${perTarget(run.keywarden.storeRequestsPlan, run.keywarden.targets)} planning, ${perTarget(run.keywarden.storeRequestsRun, run.keywarden.targets)} running`,
    ].filter(Boolean);
    if (parts.length > 0) lines.push(`- ${run.targets.toLocaleString('en')} targets: ${parts.join('; ')}.`);
  }
  return lines.join('\n');
}

async function main(options: Options, run: BenchRun) {
  const fromQuotas = applyModelRateLimits(options.model);
  for (const [name, value] of Object.entries(BENCH_LIMIT_DEFAULTS)) process.env[name] ??= value;
  const limits = rateLimitsFromEnv();
  const stack = await run.startStack();
  const pids = { moto: stack.moto.pid, openbao: stack.vault.pid, dynalite: stack.dynamodb.pid };
  const date = new Date();
  const runs: SizeRun[] = [];
  for (const targets of options.sizes) {
    const sizeRun = await runSize(stack, options, targets, pids);
    runs.push(sizeRun);
    console.log(
      `\nkeywarden revocation benchmark, --model ${options.model}, ${new Date().toISOString()}: a fleet per contender of ${targets} recorded targets ` +
        `(${shapeText(fleetShape(targets))}) and ${sizeRun.preexisting} credentials made before keywarden, declared, never recorded ` +
        `(${shapeText(preexistingShape(sizeRun.preexisting))}); limits ${JSON.stringify(limits)}` +
        `${Object.keys(fromQuotas).length > 0 ? ` (${Object.keys(fromQuotas).join(', ')} from the quota table)` : ''}; ${cpus().length} CPUs, ` +
        `load average ${loadavg()
          .map((n) => n.toFixed(1))
          .join(' ')}, node ${process.version}`,
    );
    printSize(sizeRun, options);
  }
  if (runs.length > 1) {
    console.log('\ntargets/s per size (it should stay flat as the state table grows):');
    printScale(runs);
  }
  const summary = {
    bench: 'revocation',
    model: options.model,
    date: date.toISOString(),
    load: loadavg().map((n) => round(n, 2)),
    limits,
    sizes: runs.map((r) => ({
      targets: r.targets,
      preexisting: r.preexisting,
      wallMs: Object.fromEntries(Object.entries(r.results).map(([n, c]) => [n, round(c.wallMs)])),
      targetsPerSecond: Object.fromEntries(
        Object.entries(r.results).map(([n, c]) => [n, round(c.targets / (c.wallMs / 1_000), 1)]),
      ),
      ratios: Object.fromEntries(
        Object.entries(ratiosOf(r)).map(([n, v]) => [n, v === undefined ? null : round(v, 4)]),
      ),
    })),
  };
  writeResults(RESULTS_DIR, `revocation-${options.model}`, date, {
    ...summary,
    runs: runs.map((r) => ({
      ...r,
      shape: { recorded: fleetShape(r.targets), preexisting: preexistingShape(r.preexisting) },
    })),
  });
  console.log(`\nMarkdown for the README:\n\n${markdown(runs, options, date)}\n`);
  console.log(JSON.stringify(summary));
}

await runBench({
  usage:
    'usage: npx tsx bench/revocation.ts [--model loopback|aws] [--targets 2000 | --scale 500,2000,10000] [--preexisting 400] [--contenders keywarden,naive,raw]',
  parseOptions,
  main,
});
