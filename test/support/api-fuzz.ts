/**
 * What the fuzz specs of the HTTP API share: a world for the local runtime to answer from (a
 * break-glass role, grants in each state, a stored campaign with targets of two kinds), and
 * schemathesis run as its CLI from the project's virtualenv (pinned in
 * scripts/requirements-stack.txt, installed by scripts/local-stack.ts `ensureVenv`).
 *
 * No vitest import here: the world is built from `Services` and a Vault client the caller wires.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import * as breakglass from '../../functions/core/breakglass.ts';
import { BreakglassConfigSchema, type Principal } from '../../functions/core/grant.ts';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { declare, newIncident, testPlan } from './campaigns.ts';
import { credentialVersion, identity } from './fixtures.ts';

/** The development users of the fuzzed runtime: alice asks, bob approves and responds to incidents. */
export const FUZZ_USERS = ['alice', 'bob'] as const;

/** The ids the fuzzer is handed (half of its path parameters come from them), so it reaches real items. */
export interface FuzzWorld {
  roleIds: string[];
  grantIds: string[];
  campaignIds: string[];
}

const local = (id: string): Principal => ({ kind: 'local', id });

/**
 * One vault-policies role (`policy` must exist in OpenBao), grants requested, approved,
 * active, denied and revoked, and a stored campaign over a vault-kv and an aws-secret identity.
 */
export async function seedFuzzWorld(
  services: Services,
  vault: VaultClient,
  names: { policy: string; prefix: string },
): Promise<FuzzWorld> {
  await vault.write(`sys/policies/acl/${names.policy}`, {
    policy: `path "secret/data/${names.prefix}/*" { capabilities = ["read"] }`,
  });
  await services.breakglassStore.putBreakglassConfig(
    BreakglassConfigSchema.parse({
      people: [
        { name: 'alice', localUsers: ['alice'] },
        { name: 'bob', localUsers: ['bob'] },
      ],
      incidentResponders: { localUsers: ['bob'] },
      roles: [
        {
          id: 'prod-db',
          description: 'prod database secrets',
          target: { type: 'vault-policies', policies: [names.policy] },
          maxDuration: '1h',
          approvers: { localUsers: ['bob'] },
          requireIncident: false,
        },
      ],
    }),
  );
  const deps = services.breakglassDeps;
  const ask = async () =>
    (await breakglass.request(deps, local('alice'), { roleId: 'prod-db', duration: '30m', reason: 'fuzz' }))
      .grantId;
  const requested = await ask();
  const approved = await ask();
  await breakglass.approve(deps, local('bob'), approved);
  const active = await ask();
  await breakglass.approve(deps, local('bob'), active);
  await breakglass.issueCredentials(deps, local('alice'), active);
  const denied = await ask();
  await breakglass.deny(deps, local('bob'), denied, 'not now');
  const revoked = await ask();
  await breakglass.approve(deps, local('bob'), revoked);
  await breakglass.revoke(deps, local('bob'), revoked);

  const kv = identity({ id: 'fuzz-kv', kind: 'vault-kv', scope: { path: `${names.prefix}/fuzz-kv` } });
  const secret = identity({
    id: 'fuzz-secret',
    kind: 'aws-secret',
    scope: { secretId: `${names.prefix}/fuzz` },
  });
  const subjects = [];
  for (const [owner, handle] of [
    [kv, '1'],
    [secret, 'v-1'],
  ] as const) {
    await declare(services.store, owner);
    const version = credentialVersion(owner, { handle });
    await services.store.putVersion(version, undefined);
    subjects.push({ identity: owner, versions: [version] });
  }
  const incident = newIncident();
  const plan = testPlan({ campaignId: `${incident}-fuzz`, incident, selectors: ['repo=acme/app'], subjects });
  const stored = await services.store.createCampaign(plan.campaign, plan.targets);
  return {
    roleIds: ['prod-db'],
    grantIds: [requested, approved, active, denied, revoked],
    campaignIds: [stored.campaignId],
  };
}

/** A schemathesis configuration file (TOML) handing the fuzzer the world's ids as dictionaries. */
export function schemathesisConfig(world: FuzzWorld): string {
  const list = (values: readonly string[]) => `[${values.map((value) => JSON.stringify(value)).join(', ')}]`;
  return [
    '[dictionaries.grants]',
    `values = ${list(world.grantIds)}`,
    '[dictionaries.campaigns]',
    `values = ${list(world.campaignIds)}`,
    '[dictionaries.roles]',
    `values = ${list(world.roleIds)}`,
    '[parameters]',
    '"path.grantId" = { dictionary = "grants", probability = 0.5 }',
    '"path.campaignId" = { dictionary = "campaigns", probability = 0.5 }',
    '"body.roleId" = { dictionary = "roles", probability = 0.5 }',
    // A grant's report reads its whole trail (about a second a call on the local stack): fewer cases.
    '[[operations]]',
    'include-operation-id = "getGrantReport"',
    'generation.max-examples = 8',
    '',
  ].join('\n');
}

export interface SchemathesisRun {
  /** The CLI's exit code: 0 when every check passed. */
  code: number;
  /** Its output, the summary and each failure with a curl line to reproduce it. */
  output: string;
  /** Requests the fuzzer sent, from its cassette. */
  requests: number;
  /** Requests per operation (`METHOD /path`). */
  byOperation: Record<string, number>;
  /** Statuses answered, by status code. */
  statuses: Record<string, number>;
}

/** The installed CLI; scripts/local-stack.ts `ensureVenv` puts it there (the stack's global setup runs it). */
export const SCHEMATHESIS = join(REPO_ROOT, '.venv', 'bin', 'schemathesis');

/**
 * Runs `schemathesis run` against `url` with api/openapi.yaml, asynchronously (the runtime
 * under test lives in the caller's event loop), and reads what it sent from its VCR cassette.
 */
export async function runSchemathesis(options: {
  url: string;
  workDir: string;
  name: string;
  args: readonly string[];
  config: string;
  timeoutMs: number;
}): Promise<SchemathesisRun> {
  if (!existsSync(SCHEMATHESIS)) {
    throw new Error(
      `expected schemathesis in .venv (pinned in scripts/requirements-stack.txt), found none at ${SCHEMATHESIS}: run \`keywarden dev up\` or the integration suite once to install it`,
    );
  }
  const configFile = join(options.workDir, `${options.name}.toml`);
  writeFileSync(configFile, options.config);
  const cassette = join(options.workDir, `${options.name}.cassette.yaml`);
  const args = [
    '--config-file',
    configFile,
    'run',
    join(REPO_ROOT, 'api', 'openapi.yaml'),
    '--url',
    options.url,
    '--report',
    'vcr',
    '--report-vcr-path',
    cassette,
    '--no-color',
    ...options.args,
  ];
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve, reject) => {
    const child = spawn(SCHEMATHESIS, args, {
      cwd: options.workDir,
      // No cache or hypothesis database left in the repository; the columns keep lines whole.
      env: { ...process.env, COLUMNS: '160', SCHEMATHESIS_HOOKS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs);
    child.on('error', reject);
    child.on('close', (exit) => {
      clearTimeout(timer);
      resolve({ code: exit ?? -1, output: text });
    });
  });
  return { code, output, ...readCassette(cassette) };
}

/** What a cassette recorded: one `- id:` interaction per request, with its method, URI and status. */
function readCassette(file: string): Pick<SchemathesisRun, 'requests' | 'byOperation' | 'statuses'> {
  const byOperation: Record<string, number> = {};
  const statuses: Record<string, number> = {};
  if (!existsSync(file)) return { requests: 0, byOperation, statuses };
  const interactions = readFileSync(file, 'utf8').split('\n- id: ').slice(1);
  for (const interaction of interactions) {
    const uri = /\n {4}uri: ['"]([^'"\n]+)['"]\n {4}method: '(\w+)'/.exec(interaction);
    const status = /\n {4}status:\n {6}code: '(\d+)'/.exec(interaction)?.[1] ?? 'none';
    const key = uri ? `${uri[2]} ${operationOf(new URL(uri[1] ?? '/', 'http://x').pathname)}` : 'unknown';
    byOperation[key] = (byOperation[key] ?? 0) + 1;
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  return { requests: interactions.length, byOperation, statuses };
}

/** The described path a request path belongs to: `/grants/x/approve` → `/grants/{grantId}/approve`, `/ci/credentials/x` → `/ci/credentials/{exchangeId}`. */
function operationOf(path: string): string {
  const parts = path.split('/');
  if (parts[1] === 'grants' && parts.length >= 3) parts[2] = '{grantId}';
  if (parts[1] === 'campaigns' && parts.length >= 3) parts[2] = '{campaignId}';
  if (parts[1] === 'ci' && parts[2] === 'issuers' && parts.length >= 4) parts[3] = '{issuer}';
  const credentials = parts.indexOf('credentials');
  if (parts[1] === 'ci' && credentials > 0 && parts.length > credentials + 1)
    parts[credentials + 1] = '{exchangeId}';
  return parts.join('/');
}
