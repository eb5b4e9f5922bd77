/**
 * The HTTP API against its description, by a real schema-based fuzzer: schemathesis (pinned
 * in scripts/requirements-stack.txt) generates requests from api/openapi.yaml, valid and
 * invalid, for every operation, and sends them to the local runtime on the real local stack
 * — once with a development token, once without. Any 5xx, any response that does not match
 * its schema, any status or content type the description does not list fails the spec, with
 * schemathesis's own report (and a curl line per failure) as the message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../functions/adapters/wiring.ts';
import { ensureDevUsers, type LocalRuntime, startLocalRuntime } from '../../functions/local/runtime.ts';
import {
  type FuzzWorld,
  runSchemathesis,
  type SchemathesisRun,
  schemathesisConfig,
  seedFuzzWorld,
} from '../support/api-fuzz.ts';
import { API_ROUTE_KEYS } from '../support/api-route-keys.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { newVaultClient, uniqueName } from '../support/stack.ts';

/** What every pass checks: no 5xx, each response as described, nothing undescribed. */
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
].join(',');

/**
 * Fuzzing cases per operation and pass; the coverage phase adds its boundary cases, and
 * schemathesis probes each path with undescribed methods: about 1,000 requests a pass.
 */
const MAX_EXAMPLES = 40;

let services: Services;
let runtime: LocalRuntime;
let world: FuzzWorld;
let token: string;
const workDir = mkdtempSync(join(tmpdir(), 'kw-api-fuzz-'));
const failures: string[] = [];

beforeAll(async () => {
  services = await wireLocal(
    localConfig('kw-fuzz', { breakglass: { scheduleGroup: uniqueName('kw-fuzz-grants') } }),
  );
  world = await seedFuzzWorld(services, newVaultClient(), {
    policy: uniqueName('fuzz-db'),
    prefix: uniqueName('fuzz'),
  });
  token = ensureDevUsers(workDir, ['alice', 'bob']).users.alice ?? '';
  runtime = await startLocalRuntime({ stateDir: workDir, services, log: (line) => failures.push(line) });
});

afterAll(async () => {
  await runtime?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

/** One bounded schemathesis pass; `headers` are sent with every request. */
async function fuzz(name: string, headers: readonly string[]) {
  const started = Date.now();
  const run = await runSchemathesis({
    url: runtime.url,
    workDir,
    name,
    config: schemathesisConfig(world),
    timeoutMs: 150_000,
    args: [
      '--checks',
      CHECKS,
      '--phases',
      'examples,coverage,fuzzing',
      '--max-examples',
      String(MAX_EXAMPLES),
      '--seed',
      '1101',
      // One worker: hypothesis parses sources while drawing, and CPython 3.11.7's parser is not
      // safe across threads ("AST constructor recursion depth mismatch"); the API is the bottleneck anyway.
      '--workers',
      '1',
      '--generation-database',
      'none',
      '--suppress-health-check',
      'all',
      '--request-timeout',
      '20',
      ...headers.flatMap((header) => ['-H', header]),
    ],
  });
  const seconds = ((Date.now() - started) / 1_000).toFixed(1);
  console.log(
    `schemathesis ${name}: ${run.requests} requests in ${seconds} s, statuses ${JSON.stringify(run.statuses)}`,
  );
  return run;
}

/** Every described operation was sent at least `floor` requests (`GET /roles` takes no input: a few cases). */
function expectEveryOperation(run: SchemathesisRun, floor: number) {
  const short = API_ROUTE_KEYS.filter((key) => (run.byOperation[key] ?? 0) < floor);
  expect(short, `operations the fuzzer barely reached: ${JSON.stringify(run.byOperation)}`).toEqual([]);
}

describe('HTTP API: schemathesis against api/openapi.yaml, on the local runtime', () => {
  // The two passes at once: each is bound by a single-threaded side (the fuzzer, or the API in
  // this process), so together they take little more than one.
  it.concurrent('answers a caller with a development token as described: no 5xx, no schema violation', async () => {
    // act
    const run = await fuzz('with-token', [`Authorization: Bearer ${token}`]);

    // assess
    expect(run.code, run.output).toBe(0);
    expect(Object.keys(run.statuses).filter((status) => status.startsWith('5'))).toEqual([]);
    expect(run.requests).toBeGreaterThanOrEqual(500);
    expectEveryOperation(run, 3);
    // the seeded grants and campaign were reached, not only refusals
    expect(run.statuses['200']).toBeGreaterThan(50);
    expect(failures).toEqual([]);
  }, 180_000);

  it.concurrent('answers a caller without a token as described: 401 on every signed route, never a 5xx', async () => {
    // act
    const run = await fuzz('without-token', []);

    // assess
    expect(run.code, run.output).toBe(0);
    expect(Object.keys(run.statuses).filter((status) => status.startsWith('5'))).toEqual([]);
    expect(run.requests).toBeGreaterThanOrEqual(500);
    expectEveryOperation(run, 3);
    expect(run.statuses['200'] ?? 0).toBe(0);
    expect(run.statuses['401']).toBeGreaterThan(400);
    expect(failures).toEqual([]);
  }, 180_000);
});
