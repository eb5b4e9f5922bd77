/**
 * Benchmark: listing break-glass grants with many stored, and what the sweeper reads.
 *
 * On a local stack of its own (moto; OpenBao starts too but is not used), one state table
 * holds `--grants` grants (10,000 by default): `--live` of them approved or active (100),
 * the rest finished (expired or revoked, credentials ended, deny released, reviewed). Then,
 * in the same run:
 *
 * - `GET /grants` through the API's router in-process over the DynamoDB grant store, from
 *   `--clients` concurrent clients (20): the first page (50 grants), the first page of
 *   `?state=active`, and, as the contender to beat, the listing as it was before grants were
 *   indexed (every grant read through index gsi1, page after page, then filtered in memory
 *   and answered whole; kept here only, behind the same router);
 * - one sweep (core/grant-sweep.ts) over that table and over a second one with only 100
 *   finished grants and the same live ones, counting the DynamoDB requests each sends; and
 *   the requests of the old sweep's reads (three reads of every grant) for comparison.
 *
 *   npx tsx bench/grants.ts [--grants 10000] [--live 100] [--clients 20] [--requests 400] [--old-requests 20]
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import Table from 'cli-table3';
import { awsClients } from '../functions/adapters/aws/clients.ts';
import { grantItem } from '../functions/adapters/aws/dynamodb-grant-store.ts';
import { type DynamoStore, dynamoStore } from '../functions/adapters/aws/dynamodb-store.ts';
import { DynamoTable, ensureStateTable } from '../functions/adapters/aws/dynamodb-table.ts';
import { sha256Hex } from '../functions/adapters/crypto.ts';
import type { ApiDeps } from '../functions/api/deps.ts';
import { type ApiEvent, errorResult } from '../functions/api/responses.ts';
import { GRANT_ROUTES, routeRequest } from '../functions/api/routes.ts';
import type { BreakglassDeps } from '../functions/core/breakglass.ts';
import { BreakglassConfigSchema, type Grant, GrantSchema } from '../functions/core/grant.ts';
import { sweep } from '../functions/core/grant-sweep.ts';
import type { GrantStore } from '../functions/core/ports.ts';
import { localAwsEndpoint } from '../functions/local/aws-endpoint.ts';
import { round, runBench, writeResults } from './support/bench-run.ts';
import { percentile } from './support/measure.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

interface Options {
  grants: number;
  live: number;
  clients: number;
  requests: number;
  oldRequests: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      grants: { type: 'string', default: '10000' },
      live: { type: 'string', default: '100' },
      clients: { type: 'string', default: '20' },
      requests: { type: 'string', default: '400' },
      'old-requests': { type: 'string', default: '20' },
    },
    strict: true,
  });
  const whole = (name: string, text: string | undefined, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name}: expected a whole number of at least ${min}, got ${text}`);
    return n;
  };
  const options = {
    grants: whole('grants', values.grants, 1),
    live: whole('live', values.live, 0),
    clients: whole('clients', values.clients, 1),
    requests: whole('requests', values.requests, 1),
    oldRequests: whole('old-requests', values['old-requests'], 1),
  };
  if (options.live > options.grants)
    throw new Error(`--live: expected at most --grants (${options.grants}), got ${options.live}`);
  return options;
}

const config = BreakglassConfigSchema.parse({
  roles: [
    {
      id: 'prod-db',
      description: 'prod database secrets',
      target: { type: 'vault-policies', policies: ['prod-db'] },
      maxDuration: '12h',
      approvers: { localUsers: ['bob'] },
      requireIncident: false,
    },
  ],
});

const NOW = Date.now();
const at = (minutes: number) => new Date(NOW + minutes * 60_000).toISOString();

/** The grants of a table: `live` approved or active ones (a tenth of them past their end), the rest finished. */
function grantsOf(prefix: string, finished: number, live: number): Grant[] {
  const base = (i: number, minutesAgo: number): Grant => ({
    grantId: `${prefix}-${String(i).padStart(6, '0')}`,
    roleId: 'prod-db',
    requester: { kind: 'local', id: `user-${i % 40}` },
    reason: 'rollback of a failed deploy, see the incident channel',
    incident: `INC-${1000 + (i % 500)}`,
    duration: '1h',
    state: 'active',
    requestedAt: at(-minutesAgo),
    approvals: [{ approver: { kind: 'local', id: 'bob' }, at: at(-minutesAgo + 1) }],
    approvedAt: at(-minutesAgo + 1),
    expiresAt: at(-minutesAgo + 61),
    activatedAt: at(-minutesAgo + 2),
    credentials: [
      {
        type: 'vault-wrapped-token',
        handle: `acc-${prefix}-${i}`,
        issuedAt: at(-minutesAgo + 2),
        expiresAt: at(-minutesAgo + 61),
      },
    ],
  });
  const grants: Grant[] = [];
  for (let i = 0; i < finished; i++) {
    const g = base(i, 600 + i); // one a minute, further back
    grants.push({
      ...g,
      state: i % 3 ? 'expired' : 'revoked',
      endedAt: at(-(600 + i) + 30),
      endedBy: i % 3 ? 'schedule' : 'principal',
      credentialsEndedAt: at(-(600 + i) + 30),
      releasedAt: at(-(600 + i) + 62),
      review: {
        dueAt: at(-(600 + i) + 30 + 2880),
        reviewedAt: at(-(600 + i) + 40),
        reviewer: { kind: 'local', id: 'bob' },
        notes: 'checked the audit trail: as asked',
      },
    });
  }
  for (let i = 0; i < live; i++) {
    // A tenth past their end (due for the sweeper), the others running for a while yet.
    const g = base(finished + i, i % 10 === 0 ? 70 : 10);
    grants.push(i % 2 ? g : ({ ...g, state: 'approved', credentials: [], activatedAt: undefined } as Grant));
  }
  return grants.map((g) => GrantSchema.parse(JSON.parse(JSON.stringify(g))));
}

/** A DynamoDB client that counts its requests (SDK retries included in one). */
function countingClient(endpoint: ReturnType<typeof localAwsEndpoint>) {
  const client = awsClients(endpoint).dynamodb;
  const counts: Record<string, number> = {};
  /** Items the reads answered with. */
  const read = { items: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = (context.commandName ?? '?').replace(/Command$/, '');
      counts[command] = (counts[command] ?? 0) + 1;
      const result = await next(args);
      read.items += Number((result.output as { Count?: number }).Count ?? 0);
      return result;
    },
    { step: 'initialize', name: 'benchCount' },
  );
  const reset = () => {
    for (const key of Object.keys(counts)) delete counts[key];
    read.items = 0;
  };
  const total = () => Object.values(counts).reduce((a, b) => a + b, 0);
  return { client, counts, read, reset, total };
}

async function seed(client: DynamoDBClient, tableName: string, grants: Grant[]) {
  await ensureStateTable(client, tableName);
  await new DynamoTable({ client, tableName }).batchPut(
    grants.map((g) => grantItem(g)),
    'grants',
  );
}

/**
 * The listing before grants were indexed, for comparison only: every grant read through
 * gsi1 (`GRANTS`), page after page, filtered in memory, answered whole.
 */
function fullReadStore(store: DynamoStore, table: DynamoTable): GrantStore {
  return {
    ...store,
    async queryGrants(query = {}) {
      const all = (await table.queryIndex('GRANTS')).map((item) => ({
        ...GrantSchema.parse(item),
        rev: Number(item.rev),
      }));
      return { grants: query.state ? all.filter((g) => g.state === query.state) : all };
    },
  };
}

/** `total` GET requests for `path` from `clients` concurrent clients; each one's time. */
async function load(deps: ApiDeps, path: string, clients: number, total: number) {
  const [rawPath, query = ''] = path.split('?');
  const times: number[] = [];
  let sent = 0;
  let bytes = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (sent < total) {
        sent += 1;
        const event = {
          rawPath,
          rawQueryString: query,
          queryStringParameters: Object.fromEntries(new URLSearchParams(query)),
          headers: {},
          isBase64Encoded: false,
          requestContext: {
            requestId: 'bench',
            http: { method: 'GET' },
            authorizer: { lambda: { localUser: 'bob' } },
          },
        } as unknown as ApiEvent;
        const t0 = performance.now();
        const result = await routeRequest(deps, event, GRANT_ROUTES).catch((error: unknown) =>
          errorResult(error, 'bench', () => {}),
        );
        times.push(performance.now() - t0);
        if (result.statusCode !== 200)
          throw new Error(`GET ${path} answered ${result.statusCode}: ${result.body}`);
        bytes = result.body.length;
      }
    }),
  );
  const wall = (performance.now() - started) / 1000;
  return { requests: times.length, p50: percentile(times, 50), p99: percentile(times, 99), wall, bytes };
}

async function sweepRequests(
  counted: ReturnType<typeof countingClient>,
  tableName: string,
): Promise<{ requests: number; items: number; byCommand: Record<string, number>; expired: number }> {
  const store = dynamoStore({
    client: counted.client,
    tableName,
    clock: { now: () => new Date() },
    digest: sha256Hex,
  });
  const deps: BreakglassDeps = {
    grants: store,
    audit: store,
    clock: { now: () => new Date() },
    config: async () => config,
    issuer: () => ({
      // The bench's grants hold Vault handles that exist nowhere: ending them succeeds at once.
      issue: async () => {
        throw new Error('the bench issues nothing');
      },
      revoke: async () => {},
    }),
    scheduler: { scheduleExpiry: async () => {}, cancelExpiry: async () => {} },
    newGrantId: () => randomBytes(8).toString('hex'),
  };
  counted.reset();
  const result = await sweep(deps);
  if (result.failed.length) throw new Error(`the sweep failed on ${result.failed.join(', ')}`);
  return {
    requests: counted.total(),
    items: counted.read.items,
    byCommand: { ...counted.counts },
    expired: result.expired.length,
  };
}

async function main(
  options: Options,
  run: { startStack: () => Promise<Parameters<typeof localAwsEndpoint>[0]> },
) {
  const stack = await run.startStack();
  const endpoint = localAwsEndpoint(stack);
  const counted = countingClient(endpoint);
  const prefix = `kw-bench-grants-${randomBytes(3).toString('hex')}`;
  const big = `${prefix}-big`;
  const small = `${prefix}-small`;
  const finished = options.grants - options.live;

  process.stderr.write(`seeding ${options.grants} grants (${finished} finished, ${options.live} live)…\n`);
  let t0 = performance.now();
  await seed(counted.client, big, grantsOf('g', finished, options.live));
  await seed(counted.client, small, grantsOf('g', 100, options.live));
  process.stderr.write(`seeded in ${round((performance.now() - t0) / 1000, 1)} s\n`);

  const store = dynamoStore({
    client: counted.client,
    tableName: big,
    clock: { now: () => new Date() },
    digest: sha256Hex,
  });
  const depsWith = (grants: GrantStore) =>
    ({
      breakglass: { grants, clock: { now: () => new Date() } },
      acceptLocalPrincipals: true,
    }) as unknown as ApiDeps;
  const indexed = depsWith(store);
  const fullRead = depsWith(
    fullReadStore(store, new DynamoTable({ client: counted.client, tableName: big })),
  );

  // The old sweep read every grant three times; one full read's requests and items, times three.
  const oldSweep = async (tableName: string) => {
    counted.reset();
    await new DynamoTable({ client: counted.client, tableName }).queryIndex('GRANTS');
    return { requests: counted.total() * 3, items: counted.read.items * 3 };
  };
  const oldSweepBig = await oldSweep(big);
  const oldSweepSmall = await oldSweep(small);
  t0 = performance.now();
  const sweepBig = await sweepRequests(counted, big);
  const sweepBigSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const sweepSmall = await sweepRequests(counted, small);
  const sweepSmallSeconds = (performance.now() - t0) / 1000;
  process.stderr.write(
    `one sweep: ${sweepBig.requests} requests with ${finished} finished grants, ${sweepSmall.requests} with 100\n`,
  );

  const rows: {
    contender: string;
    requests: number;
    p50: number;
    p99: number;
    wall: number;
    perRequest: number;
    bytes: number;
  }[] = [];
  for (const [contender, deps, path, total] of [
    ['indexed: GET /grants (first page, 50)', indexed, '/grants', options.requests],
    ['indexed: GET /grants?state=active', indexed, '/grants?state=active', options.requests],
    ['full read (before): GET /grants', fullRead, '/grants', options.oldRequests],
  ] as const) {
    process.stderr.write(`${contender}: ${total} requests from ${options.clients} clients…\n`);
    counted.reset();
    const result = await load(deps, path, options.clients, total);
    rows.push({ contender, ...result, perRequest: round(counted.total() / result.requests, 1) });
    process.stderr.write(
      `  p50 ${round(result.p50)} ms, p99 ${round(result.p99)} ms, ${round(counted.total() / result.requests, 1)} DynamoDB calls each\n`,
    );
  }

  const table = new Table({
    head: ['GET /grants', 'requests', 'p50', 'p99', 'req/s', 'DynamoDB calls each', 'body'],
  });
  for (const r of rows)
    table.push([
      r.contender,
      r.requests,
      `${round(r.p50)} ms`,
      `${round(r.p99)} ms`,
      round(r.requests / r.wall, 1),
      r.perRequest,
      `${round(r.bytes / 1024)} KB`,
    ]);
  console.log(table.toString());
  const [page, , old] = rows;
  if (page && old) {
    console.log(
      `full read / indexed first page: p50 ${round(old.p50 / page.p50, 1)}×, p99 ${round(old.p99 / page.p99, 1)}×`,
    );
  }
  const sweeps = new Table({ head: ['sweep', `${finished} finished`, '100 finished'] });
  sweeps.push(
    ['indexed (due query): DynamoDB requests', sweepBig.requests, sweepSmall.requests],
    ['  of which Query', sweepBig.byCommand.Query ?? 0, sweepSmall.byCommand.Query ?? 0],
    ['  items read (due grants, audit tail)', sweepBig.items, sweepSmall.items],
    ['  grants it expired', sweepBig.expired, sweepSmall.expired],
    ['  time', `${round(sweepBigSeconds, 2)} s`, `${round(sweepSmallSeconds, 2)} s`],
    ['before: requests of its three full reads', oldSweepBig.requests, oldSweepSmall.requests],
    ['before: items those reads answered with', oldSweepBig.items, oldSweepSmall.items],
  );
  console.log(sweeps.toString());
  const record = {
    date: new Date().toISOString(),
    options,
    cpus: cpus().length,
    loadavg: loadavg().map((n) => round(n, 1)),
    rows,
    sweep: {
      big: { ...sweepBig, seconds: sweepBigSeconds },
      small: { ...sweepSmall, seconds: sweepSmallSeconds },
      oldSweepBig,
      oldSweepSmall,
    },
  };
  console.log(
    JSON.stringify({
      p50: rows.map((r) => round(r.p50)),
      p99: rows.map((r) => round(r.p99)),
      sweep: [sweepBig.requests, sweepSmall.requests],
    }),
  );
  writeResults(RESULTS_DIR, 'grants', new Date(), record);
}

await runBench({
  usage:
    'usage: npx tsx bench/grants.ts [--grants 10000] [--live 100] [--clients 20] [--requests 400] [--old-requests 20]',
  parseOptions,
  main: (options, run) => main(options, run),
});
