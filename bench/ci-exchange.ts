/**
 * Benchmark: CI job credential exchanges per second (p50 / p99) on the local runtime, against
 * a direct OpenBao JWT-auth login of the same kind of token, in the same run (issue #13).
 *
 * `keywarden dev up` starts the local stack and runtime in a temporary KEYWARDEN_HOME; a
 * local OIDC issuer (test/support/oidc-issuer.ts) plays GitHub Actions' token service. Then:
 *
 * - keywarden: `POST /ci/credentials {"grant":"build"}` with `Authorization: Bearer <jwt>`,
 *   the grant synced from an inventory `ci:` section (`keywarden inventory sync`): a Vault
 *   token with policy `ci-build`, TTL 10m, for a pinned `repository_id` on `refs/heads/main`;
 * - OpenBao: `POST /v1/auth/jwt/login {"role":"ci-build","jwt":…}` on a JWT auth mount set up
 *   the same way: `jwks_url` = the issuer's key set, `bound_issuer`, a `jwt` role with
 *   `bound_audiences: keywarden`, `bound_claims` on `repository_id` and `ref`, the same policy
 *   (and no default policy, as keywarden's grant) and `token_ttl: 10m`.
 *
 * Each contender gets its own freshly minted tokens of identical claims (one jti each, minted
 * before its clock starts): keywarden spends a jti, so a token cannot be sent to both. Each
 * request's latency is measured from the client, sequentially (`--concurrency 1`) and from
 * C concurrent clients; a few untimed exchanges of each warm both up first. A reference row
 * times keywarden's own Vault call alone (`auth/token/create-orphan` with the grant's policy
 * and TTL, straight to OpenBao, no JWT): keywarden's p50 minus its p50 is what the rest of an
 * exchange costs (verification, jti, record, audit, the extra hop). The CPU each server
 * process (the runtime, dynalite, OpenBao) used per exchange is read from /proc over each run;
 * and a last phase runs `exchange()` in this process over the runtime's wiring, each port
 * timed (`--breakdown N`, 0 to skip): where keywarden's time goes. Every answer must
 * be a success (201 with a Vault token / 200 with `auth.client_token`); a failure is counted
 * and its status and error printed, never a token or a JWT.
 *
 *   npx tsx bench/ci-exchange.ts [--count 300] [--concurrency 1,8] [--warmup 10]
 *
 * It stops its stack and runtime (`keywarden dev down`) at the end, on error and on Ctrl-C; a
 * watchdog ends the stack's servers should this process be killed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { RuntimeConfigSchema } from '../functions/adapters/runtime-config.ts';
import { wire } from '../functions/adapters/wiring.ts';
import { type CiExchangeDeps, exchange } from '../functions/core/ci-exchange.ts';
import type { StackEndpoints } from '../scripts/local-stack.ts';
import { keywardenAsync, runtimeUrlOf, stackOf } from '../test/e2e/breakglass-support.ts';
import { LocalOidcIssuer, type TokenClaims } from '../test/support/oidc-issuer.ts';
import { round, stopOnSignals, writeResults } from './support/bench-run.ts';
import { CallLedger, percentile, recordAwsCalls, startPhase, timedPort } from './support/measure.ts';
import { startReaper } from './support/stack-reaper.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');
const USAGE =
  'usage: npx tsx bench/ci-exchange.ts [--count 300] [--concurrency 1,8] [--warmup 10] [--breakdown 100]';

/** The job every token describes: a pinned repository on main (ids generated at run time). */
const REPO_ID = String(100_000_000 + Math.floor(Math.random() * 899_999_999));
const POLICY = 'ci-build';
const ROLE = 'ci-build';
const MOUNT = 'jwt';

interface Options {
  count: number;
  concurrency: number[];
  warmup: number;
  breakdown: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string', default: '300' },
      concurrency: { type: 'string', default: '1,8' },
      warmup: { type: 'string', default: '10' },
      breakdown: { type: 'string', default: '100' },
    },
    strict: true,
  });
  const whole = (name: string, text: string | undefined, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(
        `--${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`,
      );
    }
    return n;
  };
  return {
    count: whole('count', values.count, 1, 20_000),
    concurrency: values.concurrency.split(',').map((c) => whole('concurrency', c.trim(), 1, 256)),
    warmup: whole('warmup', values.warmup, 0, 1_000),
    breakdown: whole('breakdown', values.breakdown, 0, 20_000),
  };
}

const CONTENDERS = ['keywarden', 'openbao', 'orphan'] as const;
type ContenderName = (typeof CONTENDERS)[number];
const LABEL: Record<ContenderName, string> = {
  keywarden: 'keywarden POST /ci/credentials',
  openbao: 'OpenBao POST /v1/auth/jwt/login',
  orphan: 'reference: create-orphan alone',
};

/** One request's outcome: success, or a failure as printable text (status and error, never a token). */
type Outcome = { ok: true } | { ok: false; failure: string };

/** Sends one exchange of `jwt`; reads the answer only far enough to tell success. */
type Exchange = (jwt: string) => Promise<Outcome>;

interface Measured {
  contender: ContenderName;
  concurrency: number;
  requests: number;
  failed: number;
  /** The first few failures, as printable text. */
  failures: string[];
  wallMs: number;
  perSecond: number;
  p50: number;
  p99: number;
  /** CPU ms per exchange of each server process over the run (10 ms ticks, other load excluded). */
  cpuMsEach?: Record<ServerName, number>;
}

const SERVERS = ['runtime', 'dynalite', 'openbao'] as const;
type ServerName = (typeof SERVERS)[number];

/** An error body's printable part: keywarden's `error` object or OpenBao's `errors` list. */
function describeFailure(status: number, body: unknown): string {
  const record = (body ?? {}) as {
    error?: { code?: string; reason?: string; message?: string };
    errors?: string[];
  };
  const what = record.error
    ? [record.error.code, record.error.reason, record.error.message].filter(Boolean).join(': ')
    : (record.errors ?? []).join('; ');
  return `${status} ${what.slice(0, 300) || '(no error in the answer)'}`;
}

function keywardenExchange(url: string): Exchange {
  return async (jwt) => {
    const response = await fetch(`${url}/ci/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
      body: JSON.stringify({ grant: 'build' }),
    });
    const body = (await response.json().catch(() => undefined)) as
      | { vault?: { token?: unknown } }
      | undefined;
    if (response.status === 201 && typeof body?.vault?.token === 'string') return { ok: true };
    return { ok: false, failure: describeFailure(response.status, body) };
  };
}

function openbaoExchange(stack: StackEndpoints): Exchange {
  return async (jwt) => {
    const response = await fetch(`${stack.vault.addr}/v1/auth/${MOUNT}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ role: ROLE, jwt }),
    });
    const body = (await response.json().catch(() => undefined)) as
      | { auth?: { client_token?: unknown; policies?: unknown } }
      | undefined;
    if (response.status === 200 && typeof body?.auth?.client_token === 'string') return { ok: true };
    return { ok: false, failure: describeFailure(response.status, body) };
  };
}

/**
 * The reference, not a contender: keywarden's own Vault call alone (the body its CI token
 * issuer sends, with the dev root token standing for keywarden's), no JWT. keywarden's time
 * minus this one is what the rest of the exchange costs.
 */
function orphanCreate(stack: StackEndpoints): Exchange {
  return async () => {
    const response = await fetch(`${stack.vault.addr}/v1/auth/token/create-orphan`, {
      method: 'POST',
      headers: { 'x-vault-token': stack.vault.token, 'content-type': 'application/json' },
      body: JSON.stringify({
        policies: [POLICY],
        no_default_policy: true,
        renewable: false,
        ttl: '600s',
        explicit_max_ttl: '600s',
        num_uses: 0,
        display_name: 'ci-build',
        meta: { keywarden_ci_job: `bench-${crypto.randomUUID()}` },
        type: 'service',
      }),
    });
    const body = (await response.json().catch(() => undefined)) as
      | { auth?: { client_token?: unknown } }
      | undefined;
    if (response.status === 200 && typeof body?.auth?.client_token === 'string') return { ok: true };
    return { ok: false, failure: describeFailure(response.status, body) };
  };
}

/** `jwts.length` exchanges from `concurrency` clients; each request's latency, the wall time, the failures. */
async function load(
  contender: ContenderName,
  exchange: Exchange,
  jwts: string[],
  concurrency: number,
): Promise<Measured> {
  const times: number[] = [];
  const failures: string[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, jwts.length) }, async () => {
      while (next < jwts.length) {
        const jwt = jwts[next] as string;
        next += 1;
        const t0 = performance.now();
        const outcome = await exchange(jwt).catch(
          (error: unknown): Outcome => ({ ok: false, failure: (error as Error).message }),
        );
        times.push(performance.now() - t0);
        if (!outcome.ok) {
          failed += 1;
          if (failures.length < 5) failures.push(outcome.failure);
        }
      }
    }),
  );
  const wallMs = performance.now() - started;
  return {
    contender,
    concurrency,
    requests: jwts.length,
    failed,
    failures,
    wallMs,
    perSecond: (jwts.length / wallMs) * 1_000,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
  };
}

/** A Vault API call as the bench's setup makes it, with the dev root token; throws on a failure. */
async function vaultWrite(stack: StackEndpoints, path: string, body: unknown): Promise<void> {
  const response = await fetch(`${stack.vault.addr}/v1/${path}`, {
    method: 'POST',
    headers: { 'x-vault-token': stack.vault.token, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    throw new Error(
      `OpenBao ${path}: expected success, got ${describeFailure(response.status, await response.json().catch(() => undefined))}`,
    );
  }
}

/** Where an in-process exchange's time goes: per step, mean ms and calls per exchange. */
interface Breakdown {
  exchanges: number;
  p50: number;
  steps: { step: string; callsEach: number; msEach: number }[];
}

/**
 * `n` exchanges, one after the other, through the same use case and wiring as the runtime's
 * (`exchange()` over `wire()` of the dev stack's config), in this process, each port timed:
 * where keywarden's time goes without the HTTP hop. Steps nest (a store call holds its
 * DynamoDB request), so they add up past the total.
 */
async function breakdown(home: string, jwts: string[]): Promise<Breakdown> {
  const services = wire(
    RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8'))),
  );
  const ledger = new CallLedger();
  recordAwsCalls(services.aws.dynamodb, 'dynamodb', ledger);
  const plain = services.ciExchangeDeps;
  const deps: CiExchangeDeps = {
    ...plain,
    config: () => ledger.time('config (ci section)', () => plain.config()),
    verifier: timedPort(plain.verifier, 'verifier', ledger),
    store: timedPort(plain.store, 'store', ledger),
    ...(plain.vault && { vault: timedPort(plain.vault, 'vault', ledger) }),
    audit: timedPort(plain.audit, 'audit', ledger),
  };
  const times: number[] = [];
  for (const jwt of jwts) {
    const t0 = performance.now();
    await ledger.time('exchange (total)', () => exchange(deps, jwt, { grant: 'build' }));
    times.push(performance.now() - t0);
  }
  return {
    exchanges: jwts.length,
    p50: percentile(times, 50),
    steps: ledger.entries().map(([step, stats]) => ({
      step,
      callsEach: stats.calls / jwts.length,
      msEach: stats.totalMs / jwts.length,
    })),
  };
}

/** The same trust as the inventory's grant, in OpenBao's own JWT auth method. */
async function setUpOpenbaoJwt(stack: StackEndpoints, issuer: LocalOidcIssuer): Promise<void> {
  await vaultWrite(stack, `sys/auth/${MOUNT}`, { type: 'jwt' });
  await vaultWrite(stack, `auth/${MOUNT}/config`, { jwks_url: issuer.jwksUrl, bound_issuer: issuer.issuer });
  await vaultWrite(stack, `auth/${MOUNT}/role/${ROLE}`, {
    role_type: 'jwt',
    bound_audiences: ['keywarden'],
    user_claim: 'repository_id',
    bound_claims: { repository_id: REPO_ID, ref: 'refs/heads/main' },
    token_policies: [POLICY],
    token_no_default_policy: true,
    token_ttl: '10m',
  });
}

const INVENTORY = (issuer: LocalOidcIssuer) => `version: 1
identities: []
ci:
  issuers:
    - name: github
      preset: github
      issuer: ${issuer.issuer}
      jwksUrl: ${issuer.jwksUrl}
      audience: keywarden
  grants:
    - name: build
      issuer: github
      stage: build
      claims: { repository_id: "${REPO_ID}", ref: refs/heads/main }
      vault: { policies: [${POLICY}], ttl: 10m, numUses: 0 }
`;

/** What keywarden does per exchange beyond OpenBao's login, so the ratio is read for what it is. */
const ON_TOP = [
  'reads the synced ci section (issuers, grants) from the state table',
  'verifies the JWT with jose: issuer allowlist, RS256 signature against the cached JWKS, audience, alg, exp/nbf/iat and age',
  'spends the jti: a conditional write to DynamoDB (a replay is refused even when two race; OpenBao logs a replayed JWT in)',
  'matches the grant and its claim matchers (and, for a gated grant, the approval; none here)',
  'creates the Vault token: auth/token/create-orphan with the grant policies, TTL, the job in its meta (OpenBao login: its token store write)',
  'writes the exchange record (conditional put) for early end, webhook end and the TTL sweep',
  "appends ci.credentials.issued to the hash-chained audit log (a conditional put after the chain's last record, the head moved; concurrent exchanges share a block)",
  'plus the HTTP hop: client → local runtime → OpenBao (OpenBao: client → OpenBao)',
];

async function main(options: Options): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'keywarden-bench-ci-'));
  const issuer = new LocalOidcIssuer({ platform: 'github' });
  let stopReaper = () => {};
  let cleaning: Promise<void> | undefined;
  const cleanup = () => {
    cleaning ??= (async () => {
      await issuer.stop();
      const down = await keywardenAsync(['dev', 'down'], { KEYWARDEN_HOME: home });
      if (down.code === 0) {
        stopReaper();
        rmSync(home, { recursive: true, force: true });
      } else {
        console.error(`could not stop the local stack in ${home}: ${down.stderr.trim()}`);
      }
    })();
    return cleaning;
  };
  stopOnSignals(cleanup);

  try {
    await issuer.start();
    process.stderr.write(`starting the local stack and runtime in ${home} (keywarden dev up)…\n`);
    const env = { KEYWARDEN_HOME: home, KEYWARDEN_ACTOR: 'bench' };
    const up = await keywardenAsync(['dev', 'up'], env);
    if (up.code !== 0) throw new Error(`keywarden dev up failed: ${up.stderr.trim()}`);
    const stack = stackOf(home);
    stopReaper = startReaper(stack, home).stop;
    const url = runtimeUrlOf(home);
    const runtimePid = (JSON.parse(readFileSync(join(home, 'runtime.json'), 'utf8')) as { pid: number }).pid;
    const pids: Record<ServerName, number> = {
      runtime: runtimePid,
      dynalite: stack.dynamodb.pid,
      openbao: stack.vault.pid,
    };

    await vaultWrite(stack, `sys/policies/acl/${POLICY}`, {
      policy: 'path "secret/data/ci-build/*" { capabilities = ["read"] }',
    });
    const inventory = join(home, 'identities.yaml');
    writeFileSync(inventory, INVENTORY(issuer));
    const synced = await keywardenAsync(['inventory', 'sync', inventory], env, home);
    if (synced.code !== 0) throw new Error(`keywarden inventory sync failed: ${synced.stderr.trim()}`);
    await setUpOpenbaoJwt(stack, issuer);

    const job: TokenClaims = issuer.githubClaims({ repository_id: REPO_ID, aud: 'keywarden' });
    /** `n` tokens of the same job's claims, each its own jti and fresh times. */
    const mintTokens = (n: number) =>
      Promise.all(
        Array.from({ length: n }, () => {
          const iat = Math.floor(Date.now() / 1_000);
          return issuer.mint({ ...job, jti: crypto.randomUUID(), nbf: iat - 5, iat, exp: iat + 300 });
        }),
      );
    const exchanges: Record<ContenderName, Exchange> = {
      keywarden: keywardenExchange(url),
      openbao: openbaoExchange(stack),
      orphan: orphanCreate(stack),
    };

    const results: Measured[] = [];
    for (const concurrency of options.concurrency) {
      for (const contender of CONTENDERS) {
        if (options.warmup > 0) {
          const warm = await load(
            contender,
            exchanges[contender],
            await mintTokens(options.warmup),
            concurrency,
          );
          if (warm.failed > 0) {
            throw new Error(
              `${LABEL[contender]}: the warm-up failed ${warm.failed} time(s): ${warm.failures.join(' | ')}`,
            );
          }
        }
        const jwts = await mintTokens(options.count);
        process.stderr.write(
          `${LABEL[contender]}: ${options.count} exchanges from ${concurrency} client(s)…\n`,
        );
        const phase = startPhase(pids);
        const measured = await load(contender, exchanges[contender], jwts, concurrency);
        const { cpu } = phase();
        measured.cpuMsEach = Object.fromEntries(
          SERVERS.map((name) => [name, ((cpu[name]?.seconds ?? 0) * 1_000) / measured.requests]),
        ) as Record<ServerName, number>;
        results.push(measured);
        process.stderr.write(
          `  ${round(measured.perSecond, 1)}/s, p50 ${round(measured.p50, 1)} ms, p99 ${round(measured.p99, 1)} ms, ${measured.failed} failed\n`,
        );
        for (const failure of measured.failures) process.stderr.write(`  failure: ${failure}\n`);
      }
    }
    let steps: Breakdown | undefined;
    if (options.breakdown > 0) {
      process.stderr.write(`breakdown: ${options.breakdown} exchanges in this process, each port timed…\n`);
      steps = await breakdown(home, await mintTokens(options.breakdown));
    }
    report(options, results, issuer.served.keys, steps);
  } finally {
    await cleanup();
  }
}

const cpuText = (r: Measured) => SERVERS.map((name) => round(r.cpuMsEach?.[name] ?? 0, 1)).join(' / ');

function report(options: Options, results: Measured[], keyFetches: number, steps?: Breakdown): void {
  const load1 = loadavg().map((n) => round(n, 1));
  console.log(
    `\nCI exchange, ${options.count} tokens per contender and concurrency, ${cpus().length} CPUs, load average ${load1.join(' ')}`,
  );
  console.log(
    'Each contender gets its own freshly minted tokens of identical claims (one jti each): keywarden spends a jti, so no token goes to both.',
  );
  const table = new Table({
    head: [
      'contender',
      'clients',
      'requests',
      'failed',
      'wall',
      'exchanges/s',
      'p50',
      'p99',
      'CPU ms each: runtime / dynalite / OpenBao',
    ],
  });
  for (const r of results) {
    table.push([
      LABEL[r.contender],
      r.concurrency,
      r.requests,
      r.failed,
      `${round(r.wallMs / 1_000, 2)} s`,
      round(r.perSecond, 1),
      `${round(r.p50, 1)} ms`,
      `${round(r.p99, 1)} ms`,
      cpuText(r),
    ]);
  }
  console.log(table.toString());
  const ratios = new Table({
    head: ['keywarden / OpenBao', 'exchanges/s', 'p50', 'p99', 'keywarden p50 beyond create-orphan'],
  });
  const markdown = [
    '| clients | contender | exchanges/s | p50 | p99 | CPU ms each: runtime / dynalite / OpenBao |',
    '|---|---|---|---|---|---|',
  ];
  for (const concurrency of options.concurrency) {
    const kw = results.find((r) => r.contender === 'keywarden' && r.concurrency === concurrency);
    const bao = results.find((r) => r.contender === 'openbao' && r.concurrency === concurrency);
    const orphan = results.find((r) => r.contender === 'orphan' && r.concurrency === concurrency);
    if (!kw || !bao || !orphan) continue;
    ratios.push([
      `${concurrency} client(s)`,
      `${round(kw.perSecond / bao.perSecond, 2)}×`,
      `${round(kw.p50 / bao.p50, 1)}×`,
      `${round(kw.p99 / bao.p99, 1)}×`,
      `${round(kw.p50 - orphan.p50, 1)} ms`,
    ]);
    for (const r of [kw, bao, orphan]) {
      markdown.push(
        `| ${concurrency} | ${LABEL[r.contender]} | ${round(r.perSecond, 1)} | ${round(r.p50, 1)} ms | ${round(r.p99, 1)} ms | ${cpuText(r)} |`,
      );
    }
  }
  console.log(ratios.toString());
  console.log('\nWhat keywarden does per exchange that an OpenBao JWT login does not:');
  for (const step of ON_TOP) console.log(`  - ${step}`);
  if (steps) {
    const where = new Table({
      head: [`in-process exchange() × ${steps.exchanges}`, 'calls each', 'ms each'],
    });
    for (const s of steps.steps) where.push([s.step, round(s.callsEach, 2), round(s.msEach, 2)]);
    console.log(
      `\nWhere keywarden's time goes (sequential, in this process, no HTTP hop; p50 ${round(steps.p50, 1)} ms; steps nest):`,
    );
    console.log(where.toString());
  }
  console.log(
    `The issuer's key set was fetched ${keyFetches} time(s) in the run: both verifiers cache it, neither fetches per exchange.`,
  );
  const failed = results.reduce((n, r) => n + r.failed, 0);
  console.log(failed === 0 ? '\nEvery exchange succeeded.' : `\n${failed} exchange(s) FAILED (see above).`);
  console.log(`\n${markdown.join('\n')}\n`);
  writeResults(RESULTS_DIR, 'ci-exchange', new Date(), {
    date: new Date().toISOString(),
    options,
    cpus: cpus().length,
    loadavg: load1,
    keyFetches,
    breakdown: steps,
    results: results.map((r) => ({
      ...r,
      wallMs: round(r.wallMs, 1),
      perSecond: round(r.perSecond, 1),
      p50: round(r.p50, 2),
      p99: round(r.p99, 2),
    })),
  });
  if (failed > 0) process.exitCode = 1;
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  console.error((error as Error).message);
  console.error(USAGE);
  process.exit(2);
}
try {
  await main(options);
} catch (error) {
  console.error(`benchmark failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
// Keep-alive sockets to the stopped servers must not hold the process open.
process.exit(process.exitCode ?? 0);
