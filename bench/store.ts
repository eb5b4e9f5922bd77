/**
 * Benchmark: the local stack's DynamoDB, side by side — moto's DynamoDB against dynalite
 * in memory (what the local stack runs) and dynalite on LevelDB on disk.
 *
 * Each contender gets a state table (keywarden's own, `ensureStateTable`: key and four
 * GSIs) seeded with `--items` items (3,000) in 30 partitions, then `--concurrency` workers
 * (16) run each operation for `--seconds` (4) through keywarden's `DynamoTable`, over one
 * SDK client configured as the adapters configure theirs, the contenders taking turns:
 *
 * - conditional put — `putRevisioned`, the revisioned write every store port uses (each
 *   worker on items of its own, so every condition holds);
 * - conditional update — `updateIf`: `SET n = n + 1` if the item exists;
 * - partition query — `query(pk)`, every page of one partition (100 items), consistent;
 * - GSI query — `queryIndexPage('gsi1', …)`, a first page of 50 of 300 items.
 *
 *   npx tsx bench/store.ts [--items 3000] [--concurrency 16] [--seconds 4]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import Table from 'cli-table3';
import { dynamoDbClientConfig } from '../functions/adapters/aws/clients.ts';
import {
  DynamoTable,
  ensureStateTable,
  type Item,
  type Key,
} from '../functions/adapters/aws/dynamodb-table.ts';
import type { AwsEndpoint } from '../functions/adapters/aws/endpoint.ts';
import { localAwsEndpoint } from '../functions/local/aws-endpoint.ts';
import { endGroup, startDynalite } from '../scripts/local-stack.ts';
import { type BenchRun, round, runBench, writeResults } from './support/bench-run.ts';
import { percentile } from './support/measure.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');
const PARTITIONS = 30;
const INDEX_PARTITIONS = 10;

interface Options {
  items: number;
  concurrency: number;
  seconds: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      items: { type: 'string', default: '3000' },
      concurrency: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '4' },
    },
  });
  const int = (name: string, value: string, min: number, max: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new RangeError(
        `--${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
  return {
    items: int('items', values.items, PARTITIONS, 100_000),
    concurrency: int('concurrency', values.concurrency, 1, 256),
    seconds: int('seconds', values.seconds, 1, 60),
  };
}

const OPERATIONS = [
  'conditional put',
  'conditional update',
  'partition query (100 items)',
  'GSI query (page of 50)',
] as const;
type Operation = (typeof OPERATIONS)[number];

interface Measured {
  ops: number;
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
  /** The server process's CPU time per operation: what load on the machine does not change. */
  serverCpuMsPerOp?: number;
}

/**
 * CPU seconds (user + system) the process `pid` has used, from /proc (Linux; clock ticks
 * taken as 100 a second, the kernel's USER_HZ); undefined where there is no /proc.
 */
function cpuSeconds(pid: number): number | undefined {
  try {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

const keyOf = (i: number): Key => ({
  pk: `BENCH#${i % PARTITIONS}`,
  sk: `ITEM#${String(i).padStart(6, '0')}`,
});

/** An item of about 400 bytes, listed in gsi1 under one of ten partitions. */
const itemOf = (i: number): Item & Key => ({
  ...keyOf(i),
  rev: 1,
  n: 0,
  gsi1pk: `BENCH#${i % INDEX_PARTITIONS}`,
  gsi1sk: `${new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString()}#${i}`,
  owner: `team-${i % 7}`,
  payload: randomBytes(160).toString('hex'),
});

/** Runs `op` from `concurrency` workers until `seconds` have passed; throughput and latency. */
async function drive(
  concurrency: number,
  seconds: number,
  op: (worker: number, n: number) => Promise<unknown>,
): Promise<Measured> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const until = started + seconds * 1_000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let n = 0; performance.now() < until; n += 1) {
        const t0 = performance.now();
        try {
          await op(worker, n);
          latencies.push(performance.now() - t0);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  const wall = (performance.now() - started) / 1_000;
  return {
    ops: latencies.length,
    perSecond: round(latencies.length / wall),
    p50: round(percentile(latencies, 50), 1),
    p99: round(percentile(latencies, 99), 1),
    errors,
  };
}

interface Contender {
  name: string;
  /** The server's process id, for its CPU time. */
  pid: number;
  seedPerSecond: number;
  ops: Record<Operation, (worker: number, n: number) => Promise<unknown>>;
  results: Partial<Record<Operation, Measured>>;
  close(): void;
}

/** A fresh state table at `endpoint`, seeded, with the operations to measure on it. */
async function prepare(
  name: string,
  pid: number,
  endpoint: AwsEndpoint,
  options: Options,
): Promise<Contender> {
  const client = new DynamoDBClient(dynamoDbClientConfig(endpoint));
  const tableName = `kw-bench-store-${randomBytes(3).toString('hex')}`;
  await ensureStateTable(client, tableName);
  const table = new DynamoTable({ client, tableName });

  process.stderr.write(`${name}: seeding ${options.items} items…\n`);
  const t0 = performance.now();
  const items = Array.from({ length: options.items }, (_, i) => itemOf(i));
  const chunk = Math.ceil(items.length / options.concurrency);
  await Promise.all(
    Array.from({ length: options.concurrency }, (_, w) =>
      table.batchPut(items.slice(w * chunk, (w + 1) * chunk), 'benchmark items'),
    ),
  );
  const seedPerSecond = round(options.items / ((performance.now() - t0) / 1_000));

  // Each worker writes items of its own, so the revision it expects is the one it wrote.
  const revs = new Map<number, number>();
  const perWorker = Math.floor(options.items / options.concurrency);
  const mine = (worker: number, n: number) => worker + (n % perWorker) * options.concurrency;
  return {
    name,
    pid,
    seedPerSecond,
    results: {},
    close: () => client.destroy(),
    ops: {
      'conditional put': async (worker, n) => {
        const i = mine(worker, n);
        const rev = revs.get(i) ?? 1;
        const { pk: _pk, sk: _sk, rev: _rev, ...rest } = itemOf(i);
        await table.putRevisioned(keyOf(i), rest, rev, `item ${i}`);
        revs.set(i, rev + 1);
      },
      'conditional update': async (worker, n) => {
        const ok = await table.updateIf(
          keyOf(mine(worker, n)),
          { expression: 'SET n = n + :one', values: { ':one': 1 } },
          'attribute_exists(pk)',
        );
        if (!ok) throw new Error('condition failed');
      },
      'partition query (100 items)': async (worker, n) => {
        const found = await table.query(`BENCH#${(worker + n) % PARTITIONS}`);
        if (found.length === 0) throw new Error('empty partition');
      },
      'GSI query (page of 50)': async (worker, n) => {
        const { items: page } = await table.queryIndexPage(
          'gsi1',
          `BENCH#${(worker + n) % INDEX_PARTITIONS}`,
          {
            limit: 50,
          },
        );
        if (page.length !== 50) throw new Error(`expected a page of 50, got ${page.length}`);
      },
    },
  };
}

async function main(options: Options, run: BenchRun) {
  const stack = await run.startStack();
  const local = localAwsEndpoint(stack);
  const dataDir = join(run.stateDir, 'dynalite-disk');
  mkdirSync(dataDir);
  const disk = await startDynalite(join(run.stateDir, 'dynalite-disk.log'), dataDir);
  const contenders: Contender[] = [];
  try {
    contenders.push(
      await prepare(
        'moto (before)',
        stack.moto.pid,
        { ...local, dynamodbEndpoint: stack.moto.endpoint },
        options,
      ),
      await prepare('dynalite, in memory (the stack)', stack.dynamodb.pid, local, options),
      await prepare(
        'dynalite, LevelDB on disk',
        disk.pid,
        { ...local, dynamodbEndpoint: disk.endpoint },
        options,
      ),
    );
    // Contenders take turns on each operation, so a change in the machine's load falls on all of them.
    for (const operation of OPERATIONS) {
      for (const contender of contenders) {
        const cpuBefore = cpuSeconds(contender.pid);
        const r = await drive(options.concurrency, options.seconds, contender.ops[operation]);
        const cpuAfter = cpuSeconds(contender.pid);
        if (cpuBefore !== undefined && cpuAfter !== undefined && r.ops > 0) {
          r.serverCpuMsPerOp = round(((cpuAfter - cpuBefore) * 1_000) / r.ops, 2);
        }
        contender.results[operation] = r;
        process.stderr.write(
          `  ${operation}, ${contender.name}: ${r.perSecond}/s (p50 ${r.p50} ms, p99 ${r.p99} ms, server CPU ${r.serverCpuMsPerOp ?? '?'} ms/op${r.errors ? `, ${r.errors} errors` : ''})\n`,
        );
      }
    }
  } finally {
    for (const contender of contenders) contender.close();
    await endGroup(disk.pid);
  }

  const [moto, memory, onDisk] = contenders;
  if (!moto || !memory || !onDisk) throw new Error('a contender was not prepared');
  const ratio = (a: number, b: number) => (b === 0 ? '—' : `${round(a / b, 1)}×`);
  const table = new Table({
    head: [
      `${options.concurrency} concurrent`,
      ...contenders.map((c) => c.name),
      'memory / moto',
      'disk / moto',
    ],
  });
  const measured = (c: Contender, op: Operation): Measured =>
    c.results[op] ?? { ops: 0, perSecond: 0, p50: 0, p99: 0, errors: 0 };
  for (const operation of OPERATIONS) {
    const [a, b, c] = [measured(moto, operation), measured(memory, operation), measured(onDisk, operation)];
    table.push([
      operation,
      ...[a, b, c].map((r) => `${r.perSecond}/s (p50 ${r.p50} ms, p99 ${r.p99} ms)`),
      ratio(b.perSecond, a.perSecond),
      ratio(c.perSecond, a.perSecond),
    ]);
  }
  table.push([
    `seed (BatchWriteItem, ${options.items} items)`,
    ...contenders.map((c) => `${c.seedPerSecond} items/s`),
    ratio(memory.seedPerSecond, moto.seedPerSecond),
    ratio(onDisk.seedPerSecond, moto.seedPerSecond),
  ]);
  console.log(table.toString());
  // Throughput follows the machine's load; the server's CPU per operation much less so.
  const cpu = new Table({
    head: ['server CPU per operation', ...contenders.map((c) => c.name), 'moto / memory', 'moto / disk'],
  });
  const cpuOf = (c: Contender, op: Operation) => measured(c, op).serverCpuMsPerOp;
  for (const operation of OPERATIONS) {
    const [a, b, c] = [cpuOf(moto, operation), cpuOf(memory, operation), cpuOf(onDisk, operation)];
    cpu.push([
      operation,
      ...[a, b, c].map((ms) => (ms === undefined ? '?' : `${ms} ms`)),
      a === undefined || b === undefined ? '?' : ratio(a, b),
      a === undefined || c === undefined ? '?' : ratio(a, c),
    ]);
  }
  console.log(cpu.toString());
  console.log(
    JSON.stringify(
      Object.fromEntries(OPERATIONS.map((op) => [op, contenders.map((c) => measured(c, op).perSecond)])),
    ),
  );
  writeResults(RESULTS_DIR, 'store', new Date(), {
    date: new Date().toISOString(),
    options,
    cpus: cpus().length,
    loadavg: loadavg().map((n) => round(n, 1)),
    contenders: contenders.map(({ name, seedPerSecond, results }) => ({ name, seedPerSecond, results })),
  });
}

await runBench({
  usage: 'usage: npx tsx bench/store.ts [--items 3000] [--concurrency 16] [--seconds 4]',
  parseOptions,
  main,
});
