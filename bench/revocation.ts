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
 * Prints the times, both ratios (keywarden / naive, keywarden / raw) and where
 * keywarden's calls went; each fleet is then checked on the servers themselves.
 *
 *   npx tsx bench/revocation.ts [--targets 2000] [--preexisting 400]
 *
 * Limits: KEYWARDEN_RATE_* / KEYWARDEN_CONCURRENCY_* when set, otherwise the bench's:
 * Vault 400/s and 32 at once, IAM 20/s and 4 at once (moto has no IAM quota to respect),
 * Secrets Manager 40/s and 16 at once (the shared 50 TPS bucket).
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
import { ensureStateTable } from '../functions/adapters/aws/dynamodb-table.ts';
import { planAndStoreCampaign } from '../functions/adapters/campaign-launcher.ts';
import { publishCampaignReport } from '../functions/adapters/campaign-report.ts';
import { providerLimiters, rateLimitsFromEnv } from '../functions/adapters/rate-limits.ts';
import { RuntimeConfigSchema } from '../functions/adapters/runtime-config.ts';
import type { VaultClient } from '../functions/adapters/vault/client.ts';
import { type Services, wire } from '../functions/adapters/wiring.ts';
import type { Target } from '../functions/core/campaign.ts';
import { type CampaignDeps, runCampaign } from '../functions/core/campaign-engine.ts';
import type { Identity } from '../functions/core/identity.ts';
import type { RevokeResult } from '../functions/core/ports.ts';
import { localAwsEndpoint } from '../functions/local/aws-endpoint.ts';
import type { StackEndpoints } from '../scripts/local-stack.ts';
import { type BenchRun, round, runBench, writeResults } from './support/bench-run.ts';
import { CallLedger, recordAwsCalls, recordVaultCalls, startPhase, timedPort } from './support/measure.ts';
import { preexistingShape } from './support/preexisting-fleet.ts';
import { buildFleet, fleetShape, type RevocationFleet, stillLive } from './support/revocation-fleet.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

/** The bench's limits where the environment sets none; see the module comment. */
const BENCH_LIMIT_DEFAULTS: Record<string, string> = {
  KEYWARDEN_RATE_VAULT: '400',
  KEYWARDEN_CONCURRENCY_VAULT: '32',
  KEYWARDEN_RATE_IAM: '20',
  KEYWARDEN_CONCURRENCY_IAM: '4',
};

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      targets: { type: 'string', default: '2000' },
      preexisting: { type: 'string' },
      contenders: { type: 'string', default: 'keywarden,naive,raw' },
    },
    strict: true,
  });
  const targets = Number(values.targets);
  if (!Number.isInteger(targets) || targets < 60 || targets > 20_000) {
    throw new Error(
      `--targets: expected a whole number from 60 to 20000, got ${JSON.stringify(values.targets)}`,
    );
  }
  const preexisting =
    values.preexisting === undefined ? Math.max(50, Math.round(targets / 5)) : Number(values.preexisting);
  if (!Number.isInteger(preexisting) || (preexisting !== 0 && preexisting < 50) || preexisting > 20_000) {
    throw new Error(
      `--preexisting: expected 0, or a whole number from 50 to 20000, got ${JSON.stringify(values.preexisting)}`,
    );
  }
  const contenders = values.contenders
    .split(',')
    .filter((name): name is ContenderName => (CONTENDERS as readonly string[]).includes(name));
  return { targets, preexisting, contenders };
}

type Options = ReturnType<typeof parseOptions>;

const CONTENDERS = ['keywarden', 'naive', 'raw'] as const;

const shapeText = (shape: Record<string, number>): string =>
  Object.entries(shape)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${n} ${kind}`)
    .join(', ');
type ContenderName = (typeof CONTENDERS)[number];

interface Contender {
  services: Services;
  vault: VaultClient;
  fleet: RevocationFleet;
  ledger: CallLedger;
  tableName: string;
  incident: string;
  /** For a baseline: what it revokes, made before its ledger and clock start. */
  baseline?: Awaited<ReturnType<typeof baselineTargets>>;
}

async function prepare(
  stack: StackEndpoints,
  name: ContenderName,
  options: Options,
  incident: string,
): Promise<Contender> {
  const config = RuntimeConfigSchema.parse({
    aws: localAwsEndpoint(stack),
    tableName: `kwb-revoke-${name}-${randomBytes(3).toString('hex')}`,
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: {},
    vault: { addr: stack.vault.addr, token: stack.vault.token },
  });
  const services = wire(config);
  const vault = services.vault as VaultClient;
  await ensureStateTable(services.aws.dynamodb, config.tableName);
  const fleet = await buildFleet({ services, vault }, options.targets, { preexisting: options.preexisting });
  const baseline = name === 'keywarden' ? undefined : await baselineTargets(services, fleet, incident);
  // The ledger starts after the fleet is built and the baseline's list made: it counts the contender's calls only.
  const ledger = new CallLedger();
  for (const service of ['iam', 'sts', 'secrets', 'dynamodb'] as const) {
    recordAwsCalls(services.aws[service], service, ledger);
  }
  recordVaultCalls(vault, fleet.prefix, ledger);
  return {
    services,
    vault,
    fleet,
    ledger,
    tableName: config.tableName,
    incident,
    ...(baseline && { baseline }),
  };
}

/** Plans (and unless `dryRun`, stores) the fleet's campaign as `keywarden revoke --selector … --yes` does. */
const plan = (services: Services, fleet: RevocationFleet, incident: string, dryRun: boolean) =>
  planAndStoreCampaign(services, {
    incident,
    selectors: [fleet.selector],
    reissue: false,
    actor: 'bench:responder',
    dryRun,
  });

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
 * replace before it can take their label away. Made before the baseline's clock starts.
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

async function runBaseline(contender: Contender, concurrent: boolean) {
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
  const started = performance.now();
  let failed = 0;
  if (concurrent) {
    await Promise.all(
      targets.map((target) =>
        limitFor(target.kind)(() => revoke(target)).catch(() => {
          failed += 1;
        }),
      ),
    );
  } else {
    for (const target of targets) {
      await revoke(target).catch(() => {
        failed += 1;
      });
    }
  }
  return { wallMs: performance.now() - started, targets: targets.length, failed };
}

async function runKeywarden(contender: Contender) {
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
  const started = performance.now();
  const planned = await plan(services, contender.fleet, incident, false);
  if (planned.status !== 'stored')
    throw new Error(`keywarden: the campaign was not stored (${planned.status})`);
  const stored = performance.now();
  const run = await runCampaign(deps, planned.campaign.campaignId, { limitFor });
  const ran = performance.now();
  const reportDir = mkdtempSync(join(tmpdir(), 'keywarden-bench-report-'));
  process.env.KEYWARDEN_REPORTS_DIR = reportDir;
  await publishCampaignReport(services, run);
  const reported = performance.now();
  rmSync(reportDir, { recursive: true, force: true });
  const outcomes: Record<string, number> = {};
  for (const target of run.targets) outcomes[target.outcome] = (outcomes[target.outcome] ?? 0) + 1;
  return {
    wallMs: ran - started,
    planned: planned.summary.counts.byOutcome,
    planMs: stored - started,
    runMs: ran - stored,
    reportMs: reported - ran,
    targets: run.targets.length,
    outcomes,
  };
}

async function main(options: Options, run: BenchRun) {
  for (const [name, value] of Object.entries(BENCH_LIMIT_DEFAULTS)) process.env[name] ??= value;
  const limits = rateLimitsFromEnv();
  const stack = await run.startStack();
  const pids = { moto: stack.moto.pid, openbao: stack.vault.pid };
  const results: Record<
    string,
    { wallMs: number; targets: number; build: number; usage: ReturnType<ReturnType<typeof startPhase>> }
  > = {};
  const contenders: Record<string, Contender> = {};
  let keywarden: Awaited<ReturnType<typeof runKeywarden>> | undefined;
  const baselines: Record<string, Awaited<ReturnType<typeof runBaseline>>> = {};
  // keywarden first: whatever a warm process and warm servers give goes to the baselines.
  for (const name of options.contenders) {
    process.stderr.write(
      `${name}: building a fleet of ${options.targets} recorded targets and ${options.preexisting} pre-existing credentials…\n`,
    );
    const buildStarted = performance.now();
    const incident = `INC-${name}-${randomBytes(2).toString('hex')}`;
    const contender = await prepare(stack, name, options, incident);
    contenders[name] = contender;
    const build = performance.now() - buildStarted;
    process.stderr.write(`${name}: revoking…\n`);
    const phase = startPhase(pids);
    let measured: { wallMs: number; targets: number };
    if (name === 'keywarden') {
      keywarden = await runKeywarden(contender);
      measured = keywarden;
    } else {
      const baseline = await runBaseline(contender, name === 'raw');
      baselines[name] = baseline;
      measured = baseline;
    }
    const { wallMs, targets } = measured;
    const usage = phase();
    contender.ledger.close();
    const live = await stillLive(contender, contender.fleet, incident);
    if (live.length > 0) {
      throw new Error(`${name} left ${live.length} credentials live, such as ${live.slice(0, 3).join('; ')}`);
    }
    results[name] = { wallMs, targets, build, usage };
    process.stderr.write(`${name}: ${round(wallMs / 1_000, 1)} s, every target ended on the servers\n`);
  }
  const k = results.keywarden?.wallMs ?? 0;
  const naive = results.naive?.wallMs ?? 1;
  const raw = results.raw?.wallMs ?? 1;
  const date = new Date();

  console.log(
    `\nkeywarden revocation benchmark, ${date.toISOString()}: a fleet per contender of ${options.targets} recorded targets ` +
      `(${shapeText(fleetShape(options.targets))}) and ${options.preexisting} credentials made before keywarden, declared, never recorded ` +
      `(${shapeText(preexistingShape(options.preexisting))}); limits ${JSON.stringify(limits)}; ${cpus().length} CPUs, ` +
      `load average ${loadavg()
        .map((n) => n.toFixed(1))
        .join(' ')}, node ${process.version}`,
  );
  const table = new Table({
    head: [
      'contender',
      'targets',
      'wall s',
      'targets/s',
      'moto CPU cores',
      'OpenBao CPU cores',
      'AWS calls',
      'Vault calls',
    ],
    style: { head: [], border: [] },
  });
  for (const name of ['keywarden', 'naive', 'raw'] as const) {
    const r = results[name];
    const ledger = contenders[name]?.ledger;
    if (!r || !ledger) continue;
    const aws = ['iam.', 'sts.', 'secrets.', 'dynamodb.'].reduce((sum, p) => sum + ledger.count(p), 0);
    table.push([
      name === 'keywarden'
        ? 'keywarden campaign'
        : name === 'naive'
          ? 'naive sequential loop'
          : 'raw concurrent calls',
      r.targets,
      (r.wallMs / 1_000).toFixed(1),
      (r.targets / (r.wallMs / 1_000)).toFixed(0),
      r.usage.cpu.moto?.cores ?? '-',
      r.usage.cpu.openbao?.cores ?? '-',
      aws,
      ledger.count('vault.'),
    ]);
  }
  console.log(table.toString());
  console.log(
    `keywarden / naive = ${(k / naive).toFixed(3)} (keywarden ${k <= naive ? `${(naive / k).toFixed(1)}× faster` : `${(k / naive).toFixed(1)}× slower`}); ` +
      `keywarden / raw = ${(k / raw).toFixed(3)} (the price of listing the providers, adoption, claims, checkpoints, version marks and the audit trail)`,
  );
  if (keywarden)
    console.log(
      `keywarden: plan (list the providers, adopt what was not recorded) and store the campaign ${round(keywarden.planMs)} ms, run ${round(keywarden.runMs)} ms, ` +
        `report (not in the ratio) ${round(keywarden.reportMs)} ms; planned ${JSON.stringify(keywarden.planned)}, ` +
        `outcomes ${JSON.stringify(keywarden.outcomes)}`,
    );
  const ledger = contenders.keywarden?.ledger;
  if (ledger) {
    const calls = new Table({
      head: ['keywarden call', 'calls', 'per target'],
      style: { head: [], border: [] },
    });
    for (const [name, stats] of ledger
      .entries()
      .filter(([n]) => n.startsWith('dynamodb.') || n.startsWith('audit.'))) {
      calls.push([name, stats.calls, (stats.calls / (keywarden?.targets ?? 1)).toFixed(2)]);
    }
    console.log(calls.toString());
  }
  const summary = {
    bench: 'revocation',
    date: date.toISOString(),
    targets: Object.fromEntries(Object.entries(results).map(([n, r]) => [n, r.targets])),
    recorded: options.targets,
    preexisting: options.preexisting,
    load: loadavg().map((n) => round(n, 2)),
    limits,
    wallMs: { keywarden: round(k), naive: round(naive), raw: round(raw) },
    ratios: { keywardenOverNaive: round(k / naive, 4), keywardenOverRaw: round(k / raw, 4) },
  };
  writeResults(RESULTS_DIR, 'revocation', date, {
    ...summary,
    shape: { recorded: fleetShape(options.targets), preexisting: preexistingShape(options.preexisting) },
    keywarden,
    baselines,
    usage: Object.fromEntries(Object.entries(results).map(([n, r]) => [n, r.usage])),
    buildMs: Object.fromEntries(Object.entries(results).map(([n, r]) => [n, round(r.build)])),
    calls: Object.fromEntries(Object.entries(contenders).map(([n, c]) => [n, c.ledger.toJSON()])),
  });
  console.log(JSON.stringify(summary));
}

await runBench({
  usage:
    'usage: npx tsx bench/revocation.ts [--targets 2000] [--preexisting 400] [--contenders keywarden,naive,raw]',
  parseOptions,
  main,
});
