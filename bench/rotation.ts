/**
 * Benchmark: rotating N due identities of mixed kinds against the local stack, with
 * keywarden's engine and with the naive sequential loop an engineer writes without it,
 * in the same run, on the same servers. Prints a table, the speed-up
 * (naive time / keywarden time), where keywarden's time went, and a one-line JSON
 * summary; writes everything to bench/results/rotation-<date>.json.
 *
 *   npx tsx bench/rotation.ts [--model loopback|aws] [--identities 500] [--concurrency 64 | 32 with aws] [--by-kind]
 *   npx tsx bench/rotation.ts --model aws --scale 100,500,2000
 *
 * Two worlds (bench/support/model-mode.ts): `--model loopback` talks to the servers directly;
 * `--model aws` sends each contender's requests through the AWS model (test/support/aws-model.ts:
 * per-service latency, per-API token buckets at AWS's quotas, AWS's own throttling answers).
 * Seeding the identities reaches the servers directly in both. Requests per identity count
 * SDK calls and Vault requests (a call the SDK retried once); throttled answers are the
 * proxies' (every retry counted). The quota bound (`aws`): max over the quota buckets b of
 * calls(b) / quota(b), calls(b) being the requests b admitted during the naive loop's run
 * (the fewest calls that rotate these identities, no bookkeeping); keywarden's share of it =
 * bound / keywarden's wall. `--scale` runs the sizes one after the other on one stack and
 * ends with identities/s per size and a Markdown block for the README.
 *
 * keywarden paces its rotations as the product does (functions/adapters/rate-limits.ts `rotationPace`,
 * the KEYWARDEN_RATE_* settings a campaign keeps): in `--model aws` at the model's quotas, in the
 * unit the turns count, as the revocation bench takes them from the quota table
 * (bench/support/model-mode.ts `applyModelRateLimits`: IAM 7.5 turns of two mutating calls,
 * Secrets Manager 50 writes), Vault at the revocation bench's 400 (no quota in the model); in
 * `--model loopback` the rates
 * are lifted to the most a setting allows (10,000/s), from a full bucket, as the loopback world
 * models no quota: the pace is asked for every rotation and never holds one back (from an empty
 * bucket, rotations finishing their reads in the same millisecond waited a millisecond each, and
 * gave their slot back while they did). A KEYWARDEN_RATE_* set in the environment wins in both
 * (and the bucket then starts empty, as the product's). The header names the rates in force.
 *
 * `--by-kind` also counts each contender's requests per kind of identity, through an
 * AsyncLocalStorage around each rotation: its promise hooks cost the engine ~0.8 ms of CPU per
 * rotation on loopback (~3 % of all the CPU a rotation takes there, more of its wall time on a
 * loaded machine), so the timed runs leave it out unless asked; the totals are counted either way.
 *
 * `KEYWARDEN_BENCH_PROFILE=<file>.cpuprofile` also profiles this process's CPU over keywarden's run
 * alone (open it in Chrome DevTools).
 *
 * It starts its own local stack (moto + OpenBao on loopback) in a temporary directory
 * and stops it at the end, on error and on Ctrl-C. Each contender gets its own set of
 * identities and its own state table, so neither benefits from the other's work.
 * keywarden runs first: whatever the second run gains from a warm process and warm
 * servers goes to the baseline.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import Table from 'cli-table3';
import pLimit from 'p-limit';
import {
  type RateLimits,
  rateLimitEnvNames,
  rateLimitsFromEnv,
  rotationPace,
} from '../functions/adapters/rate-limits.ts';
import { RuntimeConfigSchema } from '../functions/adapters/runtime-config.ts';
import { VaultClient } from '../functions/adapters/vault/client.ts';
import { type Services, wire } from '../functions/adapters/wiring.ts';
import type { Identity } from '../functions/core/identity.ts';
import { PROVIDER_SERVICES } from '../functions/core/kinds.ts';
import { type RotationOutcome, rotateMany } from '../functions/core/rotation.ts';
import { REPO_ROOT, type StackEndpoints } from '../scripts/local-stack.ts';
import { type BucketCount, quotaBound } from '../test/support/aws-model.ts';
import { type BenchRun, round, runBench, writeResults } from './support/bench-run.ts';
import { startCpuProfile } from './support/cpu-profile.ts';
import { BENCH_KINDS, createVaultPolicy, seedIdentitySet } from './support/identity-sets.ts';
import {
  CallLedger,
  type PhaseUsage,
  percentile,
  RssSampler,
  recordAwsCalls,
  recordVaultCalls,
  startPhase,
  timedPort,
} from './support/measure.ts';
import {
  applyModelRateLimits,
  type ContenderWorld,
  directServices,
  isThrottling,
  type ModelName,
  parseModel,
  startWorld,
} from './support/model-mode.ts';
import { type NaiveOutcome, rotateSequentially } from './support/naive-rotation.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

/** The kind of the identity whose rotation is under way, for the requests it makes (`--by-kind`). */
const rotatingKind = new AsyncLocalStorage<string>();

/** Requests per kind: `store` (DynamoDB) and `provider` (IAM, STS, Secrets Manager, Vault: provider and delivery). */
type KindRequests = Record<string, { store: number; provider: number }>;

/**
 * A {@link CallLedger} that also counts each request under the kind of the identity being
 * rotated when it was sent. Work shared by identities (an audit block written for several
 * identities' events, one accessor LIST for a fleet's listings) counts under the identity
 * whose call sent it: the per-kind figures add up to the totals, and are close, not exact.
 */
class KindLedger extends CallLedger {
  readonly byKind: KindRequests = {};

  override time<T>(name: string, work: () => Promise<T>): Promise<T> {
    const kind = rotatingKind.getStore();
    if (kind) {
      const counts = this.byKind[kind] ?? { store: 0, provider: 0 };
      this.byKind[kind] = counts;
      if (name.startsWith('dynamodb.')) counts.store += 1;
      else if (['iam.', 'sts.', 'secrets.', 'vault.'].some((prefix) => name.startsWith(prefix)))
        counts.provider += 1;
    }
    return super.time(name, work);
  }
}

interface Options {
  identities: number;
  concurrency: number;
  model: ModelName;
  /** The sizes to run, one after the other: `--scale`, else `[identities]`. */
  sizes: number[];
  /** Whether requests are counted per kind of identity (`--by-kind`; costs the engine CPU, see the module comment). */
  byKind: boolean;
}

/**
 * keywarden's concurrency when `--concurrency` is not given. Loopback: its highest setting, as the
 * engine's CPU per request falls with more in flight (one event-loop pass serves several answers)
 * and the audit trail's blocks fill up; back to back on 2 busy cores, 64 rotated 500 identities in
 * 16–27 s, 32 in 19–29 s. AWS model: 32, where the quotas set the pace (16.0 s at 32, 17.1 s at 64
 * back to back) and the README's earlier figures were taken.
 */
const DEFAULT_CONCURRENCY: Record<ModelName, number> = { loopback: 64, aws: 32 };

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      identities: { type: 'string', default: '500' },
      // Default: by model ({@link DEFAULT_CONCURRENCY}).
      concurrency: { type: 'string' },
      model: { type: 'string', default: 'loopback' },
      scale: { type: 'string' },
      'by-kind': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const whole = (name: string, text: string, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new Error(`--${name}: expected a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  const identities = whole('identities', values.identities, 10_000);
  const model = parseModel(values.model);
  return {
    identities,
    // keywarden's own setting (rotationConcurrency) stops at 64.
    concurrency: whole('concurrency', values.concurrency ?? String(DEFAULT_CONCURRENCY[model]), 64),
    model,
    byKind: values['by-kind'],
    sizes:
      values.scale === undefined
        ? [identities]
        : values.scale.split(',').map((size) => whole('scale', size.trim(), 10_000)),
  };
}

/** One contender's set: its own wiring (clients, state table) and its own identities. */
interface BenchSet {
  tableName: string;
  /** Straight to the servers: seeding, probes. */
  direct: Services;
  /** The contender's own requests: the servers (loopback) or the model's proxies (aws). */
  services: Services;
  vault: VaultClient;
  world: ContenderWorld;
  identities: Identity[];
  ledger: KindLedger;
}

async function prepareSet(
  stack: StackEndpoints,
  options: Options & { prefix: string; set: string },
): Promise<BenchSet> {
  const base = {
    tableName: `${options.prefix}-${options.set}-state`,
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: {},
    rotationConcurrency: options.concurrency,
  };
  const direct = await directServices(stack, base);
  const identities = await seedIdentitySet(direct, direct.vault as VaultClient, {
    prefix: options.prefix,
    set: options.set,
    count: options.identities,
    limit: pLimit(options.concurrency),
  });
  // The same seed for both sets: each contender meets the same latency draws in the same order.
  const world = await startWorld(stack, options.model, 12);
  const services =
    options.model === 'loopback'
      ? direct
      : wire(
          RuntimeConfigSchema.parse({
            ...base,
            aws: world.aws,
            vault: { addr: world.vaultAddr, token: stack.vault.token },
          }),
        );
  const vault = services.vault as VaultClient;
  // The ledger starts after the seeding: it counts the contender's calls only.
  const ledger = new KindLedger();
  for (const service of ['iam', 'sts', 'secrets', 'dynamodb'] as const) {
    recordAwsCalls(services.aws[service], service, ledger);
  }
  recordVaultCalls(vault, options.prefix, ledger);
  return { tableName: base.tableName, direct, services, vault, world, identities, ledger };
}

interface ContenderResult {
  contender: string;
  identities: number;
  rotated: number;
  failed: number;
  skipped: number;
  wallMs: number;
  perSecond: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Requests to moto and OpenBao (the per-verification STS and Vault clients of keywarden not included). */
  requests: { aws: number; vault: number; perIdentity: number; storePerIdentity: number };
  /** Throttled answers the model's proxies gave (0 on loopback), and identities that failed on throttling. */
  throttled: number;
  failedByThrottling: number;
  /** Requests admitted and refused per quota bucket (aws). */
  buckets: Record<string, BucketCount>;
  peakRssMb: number;
  /** Per kind: latency, and requests per identity (provider and delivery; store). */
  byKind: Record<
    string,
    {
      p50Ms: number;
      p95Ms: number;
      /** Null unless counted per kind (`--by-kind`). */
      requestsPerIdentity: number | null;
      storePerIdentity: number | null;
    }
  >;
  failures: { identityId: string; kind: string; reason: string }[];
}

function summarise(
  contender: string,
  outcomes: readonly (RotationOutcome | NaiveOutcome)[],
  wallMs: number,
  ledger: KindLedger,
  peakRss: number,
  world: ContenderWorld,
): ContenderResult {
  const durations = outcomes.map((o) => o.durationMs);
  const aws = ['iam.', 'sts.', 'secrets.', 'dynamodb.'].reduce(
    (sum, prefix) => sum + ledger.count(prefix),
    0,
  );
  const vault = ledger.count('vault.');
  const byKind = Object.fromEntries(
    BENCH_KINDS.map((kind) => {
      const of = outcomes.filter((o) => o.kind === kind).map((o) => o.durationMs);
      const counts = ledger.byKind[kind];
      const n = Math.max(1, of.length);
      return [
        kind,
        {
          p50Ms: round(percentile(of, 50)),
          p95Ms: round(percentile(of, 95)),
          requestsPerIdentity: counts ? round(counts.provider / n, 1) : null,
          storePerIdentity: counts ? round(counts.store / n, 1) : null,
        },
      ];
    }),
  );
  return {
    contender,
    identities: outcomes.length,
    rotated: outcomes.filter((o) => o.status === 'rotated').length,
    failed: outcomes.filter((o) => o.status === 'failed').length,
    skipped: outcomes.filter((o) => o.status === 'skipped').length,
    wallMs: round(wallMs),
    perSecond: round(outcomes.length / (wallMs / 1_000), 2),
    p50Ms: round(percentile(durations, 50)),
    p95Ms: round(percentile(durations, 95)),
    maxMs: round(Math.max(0, ...durations)),
    requests: {
      aws,
      vault,
      perIdentity: round((aws + vault) / Math.max(1, outcomes.length), 1),
      storePerIdentity: round(ledger.count('dynamodb.') / Math.max(1, outcomes.length), 1),
    },
    throttled: world.throttled(),
    failedByThrottling: outcomes.filter((o) => o.status === 'failed' && isThrottling(o.reason ?? '')).length,
    buckets: world.buckets(),
    peakRssMb: round(peakRss / 2 ** 20),
    byKind,
    failures: outcomes
      .filter((o) => o.status !== 'rotated')
      .map((o) => ({ identityId: o.identityId, kind: o.kind, reason: o.reason ?? o.status })),
  };
}

const progress = (label: string, total: number) => {
  let done = 0;
  const step = Math.max(1, Math.ceil(total / 5));
  return () => {
    done += 1;
    if (done % step === 0 || done === total) process.stderr.write(`  ${label}: ${done}/${total}\n`);
  };
};

/** keywarden's engine, with every port timed so the ledger shows where the time went. */
async function runKeywarden(
  set: BenchSet,
  concurrency: number,
  { limits, lifted }: Rates,
  pids: Record<string, number>,
  byKind: boolean,
) {
  const { services, ledger } = set;
  const plain = services.rotationDeps('bench');
  const deps = services.rotationDeps('bench', {
    store: timedPort(plain.store, 'store', ledger),
    audit: timedPort(plain.audit, 'audit', ledger),
    providerFor: (identity) => timedPort(plain.providerFor(identity), `provider[${identity.kind}]`, ledger),
    deliveryFor: (delivery) => timedPort(plain.deliveryFor(delivery), `delivery[${delivery.type}]`, ledger),
  });
  const tick = progress('keywarden', set.identities.length);
  const profiling = await startCpuProfile(process.env.KEYWARDEN_BENCH_PROFILE);
  const phase = startPhase(pids);
  const started = performance.now();
  // rotateMany one identity at a time, all under one limit and one pace as a single run's: the
  // same work, each request sent under the kind of the identity it is for when counted by kind.
  const limit = pLimit(concurrency);
  // Loopback's lifted rates from a full bucket: asked, and never waited on (see the module comment).
  const pace = rotationPace(limits, { startFull: lifted });
  const rotate = (identity: Identity) =>
    rotateMany(deps, [identity], { owner: 'bench', limit, pace, onOutcome: tick });
  const outcomes = (
    await Promise.all(
      set.identities.map((identity) =>
        byKind ? rotatingKind.run(identity.kind, () => rotate(identity)) : rotate(identity),
      ),
    )
  ).flat();
  const wallMs = performance.now() - started;
  const usage = phase();
  set.ledger.close();
  await profiling?.();
  return { outcomes, wallMs, usage };
}

async function runNaive(set: BenchSet, pids: Record<string, number>, byKind: boolean) {
  const tick = progress('naive loop', set.identities.length);
  const clients = { iam: set.services.aws.iam, secrets: set.services.aws.secrets, vault: set.vault };
  const phase = startPhase(pids);
  const started = performance.now();
  const outcomes: NaiveOutcome[] = [];
  for (const identity of set.identities) {
    outcomes.push(
      ...(await (byKind
        ? rotatingKind.run(identity.kind, () => rotateSequentially(clients, [identity], tick))
        : rotateSequentially(clients, [identity], tick))),
    );
  }
  const wallMs = performance.now() - started;
  set.ledger.close();
  return { outcomes, wallMs, usage: phase() };
}

/**
 * How long one DynamoDB Query (the engine's listVersions) takes on moto with nothing
 * else running, on a contender's table as the run left it: moto answers a Query by
 * scanning the whole table, so its cost grows with the table, unlike DynamoDB's.
 */
async function probeQuery(set: BenchSet, times = 20) {
  const { Table } = await set.direct.aws.dynamodb.send(
    new DescribeTableCommand({ TableName: set.tableName }),
  );
  const id = set.identities[0]?.id ?? 'none';
  const started = performance.now();
  for (let n = 0; n < times; n += 1) await set.direct.store.listVersions(id);
  return { items: Table?.ItemCount ?? 0, queryMs: round((performance.now() - started) / times, 1) };
}

function stackVersions(): string {
  const pins = readFileSync(join(REPO_ROOT, 'scripts', 'requirements-stack.txt'), 'utf8')
    .split('\n')
    .filter((line) => /==/.test(line) && !line.startsWith('#'));
  return pins.join(', ');
}

function printReport(
  options: Options,
  results: ContenderResult[],
  speedup: number,
  keywardenLedger: CallLedger,
  naiveLedger: CallLedger,
) {
  const table = new Table({
    style: { head: [], border: [] },
    head: [
      'contender',
      'rotated',
      'failed',
      'wall s',
      'identities/s',
      'p50 ms',
      'p95 ms',
      'max ms',
      'requests/identity',
      'store req/identity',
      'throttled answers',
      'failed by throttling',
      'peak RSS MB',
    ],
  });
  for (const r of results) {
    table.push([
      r.contender,
      `${r.rotated}/${r.identities}`,
      r.failed,
      (r.wallMs / 1_000).toFixed(1),
      r.perSecond.toFixed(2),
      r.p50Ms,
      r.p95Ms,
      r.maxMs,
      r.requests.perIdentity,
      r.requests.storePerIdentity,
      r.throttled,
      r.failedByThrottling,
      r.peakRssMb,
    ]);
  }
  console.log(table.toString());
  console.log(
    `speed-up (naive time / keywarden time): ${speedup.toPrecision(3)} ` +
      (speedup > 1
        ? `(keywarden is ${speedup.toFixed(1)}× faster)`
        : `(the naive loop is ${(1 / speedup).toFixed(1)}× faster)`),
  );
  const bound = boundOf(results);
  if (bound) {
    console.log(
      `quota bound: ${bound.seconds.toFixed(1)} s (${bound.bucket}, from the naive loop's admitted calls); ` +
        `keywarden reached ${Math.round(bound.share * 100)} % of it; no client can be more than ` +
        `${bound.naiveOverBound.toFixed(1)}× faster than the naive loop at these quotas`,
    );
  }

  const kinds = new Table({
    head: [
      'kind',
      'keywarden p50 / p95 ms',
      'naive p50 / p95 ms',
      'keywarden provider+delivery req/identity',
      'keywarden store req/identity',
      'naive req/identity',
    ],
    style: { head: [], border: [] },
  });
  for (const kind of BENCH_KINDS) {
    const [k, n] = results.map((r) => r.byKind[kind]);
    kinds.push([
      kind,
      `${k?.p50Ms} / ${k?.p95Ms}`,
      `${n?.p50Ms} / ${n?.p95Ms}`,
      k?.requestsPerIdentity ?? '– (--by-kind)',
      k?.storePerIdentity ?? '–',
      n?.requestsPerIdentity ?? '–',
    ]);
  }
  console.log(kinds.toString());
  console.log(summaryLine(results, speedup, bound));

  const wall = results[0]?.wallMs ?? 1;
  const where = new Table({
    head: ['keywarden: where the time went (port calls)', 'calls', 'summed s', 'mean ms', 'summed / wall'],
    style: { head: [], border: [] },
  });
  const ports = ['store.', 'audit.', 'provider[', 'delivery['];
  for (const [name, stats] of keywardenLedger
    .entries()
    .filter(([n]) => ports.some((p) => n.startsWith(p)))
    .slice(0, 12)) {
    where.push([
      name,
      stats.calls,
      (stats.totalMs / 1_000).toFixed(1),
      (stats.totalMs / stats.calls).toFixed(1),
      `${(stats.totalMs / wall).toFixed(2)}×`,
    ]);
  }
  console.log(where.toString());

  const requests = new Table({
    head: ['requests (keywarden | naive)', 'calls', 'mean ms', 'failures'],
    style: { head: [], border: [] },
  });
  for (const [label, ledger] of [
    ['keywarden', keywardenLedger],
    ['naive', naiveLedger],
  ] as const) {
    const top = ledger.entries().filter(([n]) => !ports.some((p) => n.startsWith(p)));
    for (const [name, stats] of top.slice(0, label === 'keywarden' ? 10 : 6)) {
      const failures = Object.entries(stats.failures)
        .map(([error, count]) => `${count} ${error}`)
        .join(', ');
      requests.push([`${label}: ${name}`, stats.calls, (stats.totalMs / stats.calls).toFixed(1), failures]);
    }
  }
  console.log(requests.toString());
  const concurrency = options.concurrency;
  console.log(
    `(summed / wall above 1× means calls of that port overlap: up to ${concurrency} identities are in flight at once)`,
  );
}

/**
 * CPU per phase: cores each process used, and CPU ms per identity, summed over this process and
 * the servers. On loopback the servers and the engine share the machine's cores, so CPU per
 * identity is what bounds the wall time; it also moves far less than wall time with the load of
 * other jobs.
 */
function printUsage(phases: Record<string, PhaseUsage>, identities: number) {
  const names = [...new Set(Object.values(phases).flatMap((usage) => Object.keys(usage.cpu)))];
  const table = new Table({
    head: [
      'phase',
      'wall s',
      ...names.map((name) => `${name} CPU cores`),
      'CPU ms/identity (all)',
      'load avg 1m',
    ],
    style: { head: [], border: [] },
  });
  for (const [phase, usage] of Object.entries(phases)) {
    const seconds = Object.values(usage.cpu).reduce((sum, { seconds }) => sum + seconds, 0);
    table.push([
      phase,
      (usage.wallMs / 1_000).toFixed(1),
      ...names.map((name) => usage.cpu[name]?.cores ?? '-'),
      ((seconds * 1_000) / Math.max(1, identities)).toFixed(1),
      usage.loadAvg1m,
    ]);
  }
  console.log(table.toString());
}

/** The quota bound of the naive loop's calls, keywarden's share of it, and the most any client could gain over naive. */
function boundOf(results: readonly ContenderResult[]) {
  const [keywarden, naive] = results;
  if (!keywarden || !naive || Object.keys(naive.buckets).length === 0) return undefined;
  const { seconds, bucket } = quotaBound(naive.buckets);
  if (seconds === 0) return undefined;
  return {
    seconds,
    bucket,
    share: seconds / (keywarden.wallMs / 1_000),
    naiveOverBound: naive.wallMs / 1_000 / seconds,
  };
}

async function runSize(
  options: Options,
  rates: Rates,
  identities: number,
  stack: StackEndpoints,
  sampler: RssSampler,
) {
  const sized = { ...options, identities };
  const prefix = `kwb-${randomBytes(3).toString('hex')}`;
  process.stderr.write(`creating 2 × ${identities} identities with their current credentials…\n`);
  sampler.phase(`seed-${identities}`);
  const seedStarted = performance.now();
  await createVaultPolicy(new VaultClient({ addr: stack.vault.addr, token: stack.vault.token }), prefix);
  const keywardenSet = await prepareSet(stack, { ...sized, prefix, set: 'k' });
  const naiveSet = await prepareSet(stack, { ...sized, prefix, set: 'n' });
  const seedMs = performance.now() - seedStarted;

  process.stderr.write(`rotating with keywarden (concurrency ${options.concurrency}, ${options.model})…\n`);
  sampler.phase(`keywarden-${identities}`);
  const pids = { moto: stack.moto.pid, dynalite: stack.dynamodb.pid, openbao: stack.vault.pid };
  const keywarden = await runKeywarden(
    keywardenSet,
    options.concurrency,
    rates,
    pids,
    options.byKind,
  ).finally(() => keywardenSet.world.close());
  process.stderr.write('rotating with the naive sequential loop…\n');
  sampler.phase(`naive-${identities}`);
  const naive = await runNaive(naiveSet, pids, options.byKind).finally(() => naiveSet.world.close());
  sampler.phase('report');
  const probe = { keywarden: await probeQuery(keywardenSet), naive: await probeQuery(naiveSet) };

  const results = [
    summarise(
      'keywarden',
      keywarden.outcomes,
      keywarden.wallMs,
      keywardenSet.ledger,
      sampler.peakOf(`keywarden-${identities}`),
      keywardenSet.world,
    ),
    summarise(
      'naive sequential loop',
      naive.outcomes,
      naive.wallMs,
      naiveSet.ledger,
      sampler.peakOf(`naive-${identities}`),
      naiveSet.world,
    ),
  ] as const;
  const speedup = naive.wallMs / keywarden.wallMs;

  console.log(
    `\nkeywarden rotation benchmark, --model ${options.model}, ${new Date().toISOString()}: ${identities} identities per contender ` +
      `(${BENCH_KINDS.join(', ')} in equal parts), concurrency ${options.concurrency}; ${rates.text}; ` +
      `local stack ${stackVersions()} on loopback; ${cpus().length} CPUs, node ${process.version}`,
  );
  printReport(sized, [...results], speedup, keywardenSet.ledger, naiveSet.ledger);
  printUsage({ keywarden: keywarden.usage, naive: naive.usage }, identities);
  console.log(
    `store probe, nothing else running: one Query takes ${probe.keywarden.queryMs} ms on keywarden's table ` +
      `(${probe.keywarden.items} items after the run) and ${probe.naive.queryMs} ms on an empty table (${probe.naive.items} items)`,
  );
  for (const r of results) {
    for (const f of r.failures.slice(0, 10))
      console.log(`${r.contender} ${f.kind} ${f.identityId}: ${f.reason}`);
    if (r.failures.length > 10)
      console.log(`${r.contender}: ${r.failures.length - 10} more failures in the results file`);
  }
  return {
    identities,
    results,
    speedup,
    bound: boundOf(results),
    phasesMs: { seed: round(seedMs), keywarden: round(keywarden.wallMs), naive: round(naive.wallMs) },
    usage: { keywarden: keywarden.usage, naive: naive.usage },
    motoQueryProbe: probe,
    calls: { keywarden: keywardenSet.ledger.toJSON(), naive: naiveSet.ledger.toJSON() },
  };
}
type SizeRun = Awaited<ReturnType<typeof runSize>>;

/** The rates keywarden's rotations are paced at (see the module comment), and how the header names them. */
interface Rates {
  limits: RateLimits;
  /** Whether every rate was lifted (loopback, none set in the environment): the pace starts full. */
  lifted: boolean;
  text: string;
}

/**
 * Vault has no quota in the model (aws-model.ts): its rate is keywarden's own restraint, set as the
 * revocation bench sets it (400 calls a second) unless the environment does.
 */
function vaultAsRevocationBench(): string[] {
  const name = rateLimitEnvNames('vault').perSecond;
  if (process.env[name] !== undefined) return [];
  process.env[name] = '400';
  return [name];
}

/**
 * The rates in force: `aws` from the model's quota table (Vault as the revocation bench), `loopback` lifted to the most a setting
 * allows (the loopback world models no quota); a KEYWARDEN_RATE_* set in the environment wins.
 */
function benchRates(model: ModelName): Rates {
  const set =
    model === 'aws'
      ? [...Object.keys(applyModelRateLimits(model)), ...vaultAsRevocationBench()]
      : PROVIDER_SERVICES.map((service) => rateLimitEnvNames(service).perSecond).filter((name) => {
          if (process.env[name] !== undefined) return false;
          // The most rateLimitsFromEnv accepts.
          process.env[name] = '10000';
          return true;
        });
  const limits = rateLimitsFromEnv();
  const how =
    model === 'aws'
      ? `${set.join(', ') || 'none'} from the quota table, Vault as the revocation bench`
      : `${set.join(', ') || 'none'} lifted: the loopback world models no quota`;
  const each = PROVIDER_SERVICES.map((service) => `${service} ${limits[service].perSecond}/s`).join(', ');
  const lifted = model === 'loopback' && set.length === PROVIDER_SERVICES.length;
  return {
    limits,
    lifted,
    text: `rotations paced at ${each} (${how}${lifted ? ', from a full bucket' : ''})`,
  };
}

/** A block of Markdown ready for the README's Benchmarks section. */
function markdown(runs: SizeRun[], options: Options, date: Date): string {
  const lines = [
    `Rotation, \`--model ${options.model}\`, ${date.toISOString().slice(0, 10)} (\`npm run bench -- --model ${options.model}` +
      `${runs.length > 1 ? ` --scale ${options.sizes.join(',')}` : ` --identities ${options.sizes[0]}`}\`, ` +
      `concurrency ${options.concurrency}, ${cpus().length} CPUs):`,
    '',
    '| identities | contender | rotated | wall s | identities/s | requests/identity | store req/identity | throttled answers | failed by throttling |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const run of runs) {
    for (const r of run.results) {
      lines.push(
        `| ${run.identities.toLocaleString('en')} | ${r.contender} | ${r.rotated}/${r.identities} | ${(r.wallMs / 1_000).toFixed(1)} | ` +
          `${r.perSecond.toFixed(1)} | ${r.requests.perIdentity} | ${r.requests.storePerIdentity} | ${r.throttled} | ${r.failedByThrottling} |`,
      );
    }
  }
  // Requests by kind only where they were counted (`--by-kind`).
  const countedByKind = runs.some((run) =>
    BENCH_KINDS.some((kind) => run.results[0]?.byKind[kind]?.requestsPerIdentity !== undefined),
  );
  if (countedByKind) {
    lines.push(
      '',
      '| identities | kind | keywarden provider+delivery req/identity | keywarden store req/identity | naive req/identity |',
      '|---|---|---|---|---|',
    );
    for (const run of runs) {
      const [k, n] = run.results;
      for (const kind of BENCH_KINDS) {
        lines.push(
          `| ${run.identities.toLocaleString('en')} | ${kind} | ${k.byKind[kind]?.requestsPerIdentity ?? '–'} | ` +
            `${k.byKind[kind]?.storePerIdentity ?? '–'} | ${n.byKind[kind]?.requestsPerIdentity ?? '–'} |`,
        );
      }
    }
  }
  lines.push('');
  for (const run of runs) {
    lines.push(`- ${summaryLine(run.results, run.speedup, run.bound)}`);
  }
  lines.push('');
  for (const run of runs) {
    const faster =
      run.speedup >= 1
        ? `keywarden ${run.speedup.toFixed(1)}× faster than the naive loop`
        : `keywarden ${(1 / run.speedup).toFixed(1)}× slower than the naive loop`;
    const bound = run.bound
      ? `; ${Math.round(run.bound.share * 100)} % of the quota bound (${run.bound.seconds.toFixed(1)} s, ${run.bound.bucket})`
      : '';
    lines.push(`- ${run.identities.toLocaleString('en')} identities: ${faster}${bound}.`);
  }
  return lines.join('\n');
}

async function main(options: Options, run: BenchRun, sampler: RssSampler) {
  // Read before the stack starts: a bad KEYWARDEN_RATE_* stops the bench at once, naming it.
  const rates = benchRates(options.model);
  const runStarted = performance.now();
  const stack = await run.startStack();
  const stackMs = performance.now() - runStarted;
  const date = new Date();
  const runs: SizeRun[] = [];
  for (const identities of options.sizes)
    runs.push(await runSize(options, rates, identities, stack, sampler));
  if (runs.length > 1) {
    const table = new Table({
      head: ['identities', 'contender', 'wall s', 'identities/s', 'requests/identity', 'throttled'],
      style: { head: [], border: [] },
    });
    for (const r of runs.flatMap((sizeRun) => sizeRun.results)) {
      table.push([
        r.identities,
        r.contender,
        (r.wallMs / 1_000).toFixed(1),
        r.perSecond.toFixed(2),
        r.requests.perIdentity,
        r.throttled,
      ]);
    }
    console.log('\nidentities/s per size:');
    console.log(table.toString());
  }

  const summary = {
    bench: 'rotation',
    model: options.model,
    date: date.toISOString(),
    concurrency: options.concurrency,
    rates: rates.limits,
    sizes: runs.map((r) => ({
      identities: r.identities,
      keywarden: pick(r.results[0]),
      naive: pick(r.results[1]),
      speedup: round(r.speedup, 4),
      keywardenOverNaive: round(1 / r.speedup, 4),
      requestsPerIdentity: {
        keywarden: r.results[0].requests.perIdentity,
        naive: r.results[1].requests.perIdentity,
      },
      quotaBoundShare: r.bound ? round(r.bound.share, 4) : null,
    })),
    peakRssMb: round(sampler.peak / 2 ** 20),
  };
  writeResults(RESULTS_DIR, `rotation-${options.model}`, date, {
    ...summary,
    environment: { cpus: cpus().length, node: process.version, stack: stackVersions() },
    startStackMs: round(stackMs),
    runs,
  });
  console.log(`\nMarkdown for the README:\n\n${markdown(runs, options, date)}\n`);
  console.log(JSON.stringify(summary));
  const short = runs.find((r) => r.results[0].rotated !== r.identities);
  if (short) {
    throw new Error(
      `keywarden rotated ${short.results[0].rotated} of ${short.identities} identities; see the failures above`,
    );
  }
}

/**
 * One line: requests per identity of each contender (keywarden's store part), keywarden's
 * wall time over the naive loop's, and keywarden's share of the quota bound (aws).
 */
function summaryLine(
  results: readonly ContenderResult[],
  speedup: number,
  bound: ReturnType<typeof boundOf>,
): string {
  const [k, n] = results;
  return (
    `${k?.identities} identities: keywarden ${k?.requests.perIdentity} requests/identity (store ${k?.requests.storePerIdentity}), ` +
    `naive ${n?.requests.perIdentity}; keywarden/naive wall ${(1 / speedup).toFixed(2)}× ` +
    `(${speedup >= 1 ? `${speedup.toFixed(1)}× faster` : `${(1 / speedup).toFixed(1)}× slower`}); ` +
    `quota-bound share ${bound ? `${Math.round(bound.share * 100)} %` : 'n/a (loopback)'}`
  );
}

const pick = (r: ContenderResult) => ({
  wallMs: r.wallMs,
  perSecond: r.perSecond,
  p50Ms: r.p50Ms,
  p95Ms: r.p95Ms,
  rotated: r.rotated,
  failed: r.failed,
  requestsPerIdentity: r.requests.perIdentity,
  storeRequestsPerIdentity: r.requests.storePerIdentity,
  throttled: r.throttled,
  failedByThrottling: r.failedByThrottling,
  peakRssMb: r.peakRssMb,
});

const sampler = new RssSampler(100);
await runBench({
  usage:
    'usage: npx tsx bench/rotation.ts [--model loopback|aws] [--identities 500 | --scale 100,500,2000] [--concurrency 64, 32 with --model aws] [--by-kind]',
  parseOptions,
  main: (options, run) => main(options, run, sampler),
  onEnd: () => sampler.stop(),
});
