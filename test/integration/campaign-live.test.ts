/**
 * Campaigns reach what is live, not only what keywarden recorded: credentials a team's
 * pipelines made directly with the AWS SDK and the Vault API, before keywarden (IAM access
 * keys, a Secrets Manager secret with two versions, AppRole secret-ids, KV versions, Vault
 * tokens named by accessor and by display-name prefix), are declared in an inventory,
 * synced, shown by the dry run, revoked by one campaign, and recorded as adopted, as moto,
 * OpenBao and `keywarden status` show. A provider that cannot be listed fails its targets
 * with the reason instead of skipping them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  ListAccessKeysCommand,
  UpdateAccessKeyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  PutSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { planAndStoreCampaign } from '../../functions/adapters/campaign-launcher.ts';
import { Composition, liveListing, secrets } from '../../functions/adapters/composition.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import type { Target } from '../../functions/core/campaign.ts';
import { declare, newIncident } from '../support/campaigns.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { type LocalConfig, localConfig, wireLocal } from '../support/local-state.ts';
import { keywardenAsResponder } from '../support/responder-cli.ts';
import { newVaultClient, uniqueName } from '../support/stack.ts';

let services: Services;
let vault: VaultClient;
let configInput: LocalConfig;
const prefix = uniqueName('kw-live');

beforeAll(async () => {
  configInput = localConfig('kw-campaign-live');
  services = await wireLocal(configInput);
  vault = newVaultClient();
  await vault.write(`sys/policies/acl/${prefix}-read`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });
});

const value = () => randomBytes(18).toString('base64url');

/** Runs the real `keywarden` command against `config`, as the incident responder, stdin not a terminal. */
function keywarden(args: string[], config: LocalConfig = configInput) {
  return keywardenAsResponder(args, config, { homePrefix: 'kw-campaign-live-cli-', timeoutMs: 180_000 });
}

/** What a team's pipelines made before keywarden, and the inventory entries that declare it. */
interface Preexisting {
  repo: string;
  userName: string;
  accessKeys: string[];
  secretId: string;
  /** The secret's versions, oldest first (AWSPREVIOUS, AWSCURRENT). */
  secretVersions: string[];
  roleName: string;
  secretIdAccessors: string[];
  kvPath: string;
  tokenAccessors: string[];
  /** Every raw value made, to check none reaches the audit trail. */
  values: string[];
  identities: Record<string, unknown>[];
}

/** Creates one pipeline's credentials directly with the AWS SDK and the Vault API, as its pipelines did. */
async function preexisting(): Promise<Preexisting> {
  const name = uniqueName('kwl');
  const repo = `acme/${name}`;
  const values: string[] = [];
  const { iam, secrets } = services.aws;

  // Two access keys of one IAM user; one switched off (it could be switched on again).
  await iam.send(new CreateUserCommand({ UserName: name, Path: `/${prefix}/` }));
  const accessKeys: string[] = [];
  for (let i = 0; i < 2; i += 1) {
    const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: name }));
    accessKeys.push(String(AccessKey?.AccessKeyId));
    values.push(String(AccessKey?.SecretAccessKey));
  }
  await iam.send(
    new UpdateAccessKeyCommand({ UserName: name, AccessKeyId: accessKeys[1], Status: 'Inactive' }),
  );

  // A secret whose value was changed once: AWSPREVIOUS and AWSCURRENT.
  const secretId = `${prefix}/${name}/db-password`;
  const first = value();
  const created = await secrets.send(new CreateSecretCommand({ Name: secretId, SecretString: first }));
  const second = value();
  const put = await secrets.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: second }));
  values.push(first, second);

  // An AppRole role with two secret-ids.
  await vault.write(`auth/approle/role/${name}`, { token_policies: [`${prefix}-read`], token_ttl: '5m' });
  const secretIdAccessors: string[] = [];
  for (let i = 0; i < 2; i += 1) {
    const made = await vault.write(`auth/approle/role/${name}/secret-id`, {});
    secretIdAccessors.push(String(made.data?.secret_id_accessor));
    values.push(String(made.data?.secret_id));
  }

  // A KV path written twice.
  const kvPath = `${prefix}/${name}/api-key`;
  for (let i = 0; i < 2; i += 1) {
    const kv = value();
    await vault.write(`secret/data/${kvPath}`, { data: { value: kv } });
    values.push(kv);
  }

  // Two tokens: one declared by its accessor, one by the display name the pipeline gave it.
  const byAccessor = await vault.createToken({ policies: [`${prefix}-read`], ttl: '720h' });
  const byName = await vault.createToken({
    policies: [`${prefix}-read`],
    ttl: '720h',
    display_name: `${name}-deploy`,
  });
  values.push(byAccessor.client_token, byName.client_token);

  const common = (suffix: string, purpose: string) => ({
    id: `${name}-${suffix}`,
    owner: 'team-payments',
    purpose,
    pipeline: { repo, stage: 'deploy', environment: 'prod' },
  });
  return {
    repo,
    userName: name,
    accessKeys,
    secretId,
    secretVersions: [String(created.VersionId), String(put.VersionId)],
    roleName: name,
    secretIdAccessors,
    kvPath,
    tokenAccessors: [byAccessor.accessor, byName.accessor],
    values,
    identities: [
      { ...common('keys', 'deploy to prod'), kind: 'aws-iam-access-key', scope: { userName: name } },
      { ...common('db', 'database password'), kind: 'aws-secret', scope: { secretId } },
      {
        ...common('approle', 'vault login'),
        kind: 'vault-approle-secret-id',
        scope: { roleName: name },
      },
      { ...common('kv', 'api key'), kind: 'vault-kv', scope: { path: kvPath } },
      {
        ...common('token', 'vault token'),
        kind: 'vault-token',
        scope: { accessor: byAccessor.accessor },
      },
      {
        ...common('deploy-token', 'vault token'),
        kind: 'vault-token',
        scope: { displayNamePrefix: `${name}-deploy` },
      },
    ],
  };
}

/** Writes the inventory (JSON is YAML) with the responder declared, and syncs it through the CLI. */
function syncInventory(fleet: Preexisting, config: LocalConfig = configInput): void {
  const file = join(mkdtempSync(join(tmpdir(), 'kw-live-inventory-')), 'identities.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      version: 1,
      identities: fleet.identities,
      breakglass: { roles: [], incidentResponders: { localUsers: ['responder'] } },
    }),
  );
  const synced = keywarden(['inventory', 'sync', file], config);
  expect(synced.code, synced.stderr).toBe(0);
}

/** Every credential of the fleet that moto or OpenBao still honours, named. */
async function stillLive(fleet: Preexisting): Promise<string[]> {
  const live: string[] = [];
  const keys = await services.aws.iam.send(new ListAccessKeysCommand({ UserName: fleet.userName }));
  for (const key of keys.AccessKeyMetadata ?? []) live.push(`access key ${key.AccessKeyId}`);
  const secret = await services.aws.secrets.send(new DescribeSecretCommand({ SecretId: fleet.secretId }));
  for (const version of fleet.secretVersions) {
    if ((secret.VersionIdsToStages?.[version] ?? []).length > 0) live.push(`secret version ${version}`);
  }
  for (const accessor of fleet.secretIdAccessors) {
    const found = await vault
      .write(`auth/approle/role/${fleet.roleName}/secret-id-accessor/lookup`, {
        secret_id_accessor: accessor,
      })
      .catch(() => undefined);
    if (found?.data) live.push(`secret-id ${accessor}`);
  }
  const metadata = await vault.read(`secret/metadata/${fleet.kvPath}`);
  const versions = (metadata?.data?.versions ?? {}) as Record<string, { destroyed: boolean }>;
  for (const [number, version] of Object.entries(versions)) {
    if (!version.destroyed) live.push(`kv version ${number}`);
  }
  for (const accessor of fleet.tokenAccessors) {
    if (await vault.lookupAccessor(accessor)) live.push(`token ${accessor}`);
  }
  return live;
}

describe('campaign: credentials keywarden never issued', () => {
  it('are declared, shown by the dry run, revoked by one campaign and recorded as adopted', async () => {
    // prepare: the credentials exist, the inventory declares them, nothing is recorded yet.
    const fleet = await preexisting();
    syncInventory(fleet);
    const selector = `repo=${fleet.repo}`;
    const ids = fleet.identities.map((i) => String(i.id));
    expect(await stillLive(fleet)).toHaveLength(10);

    // act 1: the dry run shows every live credential as a pending target, and writes nothing.
    const dry = keywarden([
      'revoke',
      '--incident',
      'INC-LIVE-1',
      '--selector',
      selector,
      '--dry-run',
      '--json',
    ]);

    // assess 1
    expect(dry.code, dry.stderr).toBe(0);
    const planned = JSON.parse(dry.stdout) as {
      counts: { total: number; byOutcome: Record<string, number> };
      targets: Target[];
    };
    expect(planned.counts.total).toBe(10);
    expect(planned.counts.byOutcome).toMatchObject({ pending: 10, skipped: 0, failed: 0 });
    expect(new Set(planned.targets.map((t) => t.handle))).toEqual(
      new Set([
        ...fleet.accessKeys,
        ...fleet.secretVersions,
        ...fleet.secretIdAccessors,
        'kv-v1',
        'kv-v2',
        ...fleet.tokenAccessors,
      ]),
    );
    for (const id of ids) expect(await services.store.listVersions(id)).toEqual([]);
    expect((await services.store.readAll()).records.filter((r) => r.type === 'credential.adopted')).toEqual(
      [],
    );
    expect(await stillLive(fleet)).toHaveLength(10);

    // act 2: one campaign by selector.
    const cli = keywarden(['revoke', '--incident', 'INC-LIVE-2', '--selector', selector, '--yes', '--json']);

    // assess 2: completed, every target revoked, and moto and OpenBao agree.
    expect(cli.code, cli.stderr).toBe(0);
    const { campaign } = JSON.parse(cli.stdout) as { campaign: { campaignId: string; status: string } };
    expect(campaign.status).toBe('completed');
    const targets = await services.store.listTargets(campaign.campaignId);
    // The secret's AWSPREVIOUS version may have lost its label already when its target runs: replacing
    // the current value moves AWSPREVIOUS to it (Secrets Manager keeps each label on one version).
    const previousSecretVersion = fleet.secretVersions[0];
    expect(
      targets
        .map((t) => [t.handle, t.outcome])
        .filter(
          ([handle, outcome]) =>
            outcome !== 'revoked' && !(handle === previousSecretVersion && outcome === 'already-revoked'),
        ),
    ).toEqual([]);
    expect(targets).toHaveLength(10);
    expect(await stillLive(fleet)).toEqual([]);
    // A secret always keeps a value: a fresh random one replaced the compromised current one.
    const secret = await services.aws.secrets.send(new DescribeSecretCommand({ SecretId: fleet.secretId }));
    const current = Object.entries(secret.VersionIdsToStages ?? {}).find(([, s]) => s.includes('AWSCURRENT'));
    expect(current?.[0]).toBeDefined();
    expect(fleet.secretVersions).not.toContain(current?.[0]);

    // Recorded as adopted, at the stage each was live in, then revoked naming the incident.
    const secretVersions = await services.store.listVersions(`${fleet.userName}-db`);
    const adoptedCurrent = secretVersions.find((v) => v.handle === fleet.secretVersions[1]);
    expect(adoptedCurrent).toMatchObject({ origin: 'adopted', stage: 'revoked' });
    expect(adoptedCurrent?.fingerprint).toMatch(/^hmac-sha256:/);
    const keyVersions = await services.store.listVersions(`${fleet.userName}-keys`);
    expect(keyVersions.map((v) => [v.handle, v.origin, v.stage]).sort()).toEqual(
      fleet.accessKeys.map((k) => [k, 'adopted', 'revoked']).sort(),
    );
    expect(keyVersions[0]?.note).toContain('incident INC-LIVE-2');
    const trail = (await services.store.readAll()).records;
    const adoptions = trail.filter((r) => r.type === 'credential.adopted');
    expect(adoptions).toHaveLength(10);
    expect(adoptions.find((r) => r.details.handle === fleet.accessKeys[1])?.details).toMatchObject({
      stage: 'disabled',
      campaignId: campaign.campaignId,
      incident: 'INC-LIVE-2',
    });
    const written = JSON.stringify(trail);
    for (const secretValue of fleet.values) expect(written).not.toContain(secretValue);

    // `keywarden status` and the report's credential history show them.
    const status = keywarden(['status', `${fleet.userName}-token`, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const shown = JSON.parse(status.stdout) as {
      versions: { handle: string; origin: string; stage: string }[];
    };
    expect(shown.versions).toEqual([
      expect.objectContaining({ handle: fleet.tokenAccessors[0], origin: 'adopted', stage: 'revoked' }),
    ]);
    const reportHtml = cli.stderr.match(/report: (\S+report\.html)/)?.[1] ?? '';
    const report = JSON.parse(readFileSync(reportHtml.replace(/html$/, 'json'), 'utf8')) as {
      credentialHistory: { handle?: string; events: { type: string }[] }[];
    };
    const adoptedKey = report.credentialHistory.find((h) => h.handle === fleet.accessKeys[0]);
    expect(adoptedKey?.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['credential.adopted', 'campaign.target']),
    );
  });

  it('fails, with the reason, the target of an identity whose provider cannot be listed; the others stay pending', async () => {
    // prepare: Vault at a port nothing listens on; AWS as usual.
    const closed = await closedPort();
    const unreachable: LocalConfig = {
      ...configInput,
      vault: { addr: `http://127.0.0.1:${closed}`, token: 'unused' },
    };
    const cut = await wireLocal(unreachable);
    const fleet = await preexisting();
    const keys = makeIdentity({
      id: `${fleet.userName}-keys`,
      kind: 'aws-iam-access-key',
      scope: { userName: fleet.userName },
      pipeline: { repo: fleet.repo, stage: 'deploy', environment: 'prod' },
    });
    const approle = makeIdentity({
      id: `${fleet.userName}-approle`,
      kind: 'vault-approle-secret-id',
      scope: { roleName: fleet.roleName },
      pipeline: { repo: fleet.repo, stage: 'deploy', environment: 'prod' },
    });
    for (const identity of [keys, approle]) await declare(cut.store, identity);

    // act: the plan, as the API and the CLI make it.
    const planned = await planAndStoreCampaign(cut, {
      incident: newIncident(),
      selectors: [`repo=${fleet.repo}`],
      reissue: false,
      actor: 'test:responder',
      dryRun: true,
    });

    // assess: the AppRole's target failed, naming Vault and the error; the keys are pending.
    expect(planned.summary.targets.map((t) => [t.identityId, t.outcome])).toEqual([
      [keys.id, 'pending'],
      [keys.id, 'pending'],
      [approle.id, 'failed'],
    ]);
    const failed = planned.summary.targets.find((t) => t.outcome === 'failed');
    expect(failed?.reason).toMatch(/could not be listed in vault.*transient: plan the campaign again/);
    expect(failed?.error).toMatch(/ECONNREFUSED|connect/i);
    expect(failed?.retryable).toBe(false);
  });

  it('is planned by a Lambda planner without reading a Secrets Manager value (its role may not); a Vault KV value, which its Vault token may read, is fingerprinted', async () => {
    // prepare: the planning a Lambda planner composes; every GetSecretValue its Secrets Manager
    // client sends is counted.
    const composition = new Composition(RuntimeConfigSchema.parse(configInput));
    const reads: string[] = [];
    composition.get(secrets).middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetSecretValueCommand') reads.push(context.commandName);
        return next(args);
      },
      { step: 'initialize', name: 'countValueReads' },
    );
    const fleet = await preexisting();
    const pipeline = { repo: fleet.repo, stage: 'deploy', environment: 'prod' };
    const secret = makeIdentity({
      id: `${fleet.userName}-db`,
      kind: 'aws-secret',
      scope: { secretId: fleet.secretId },
      pipeline,
    });
    const kv = makeIdentity({
      id: `${fleet.userName}-kv`,
      kind: 'vault-kv',
      scope: { path: fleet.kvPath },
      pipeline,
    });
    for (const identity of [secret, kv]) await declare(services.store, identity);

    // act: planned and stored as the campaigns function does (not run).
    const planned = await planAndStoreCampaign(
      { ...services, rotationDeps: composition.get(liveListing) },
      {
        incident: newIncident(),
        selectors: [`repo=${fleet.repo}`],
        reissue: false,
        actor: 'test:responder',
        dryRun: false,
      },
    );

    // assess: every live version adopted; the secret's without a fingerprint and no value read,
    // the KV path's current version with its fingerprint.
    expect(planned.status).toBe('stored');
    const secretVersions = await services.store.listVersions(secret.id);
    expect(secretVersions.map((v) => [v.handle, v.origin]).sort()).toEqual(
      fleet.secretVersions.map((handle) => [handle, 'adopted']).sort(),
    );
    expect(secretVersions.map((v) => v.fingerprint)).toEqual([undefined, undefined]);
    expect(reads).toEqual([]);
    const kvVersions = await services.store.listVersions(kv.id);
    expect(kvVersions.map((v) => v.origin)).toEqual(['adopted', 'adopted']);
    expect(kvVersions.find((v) => v.stage === 'current')?.fingerprint).toMatch(/^hmac-sha256:/);
  });

  it('lists the providers within their read quotas, not at the revocation limits', async () => {
    // prepare: IAM revocations one at a time, one a second; six IAM users to list.
    const saved = { rate: process.env.KEYWARDEN_RATE_IAM, at: process.env.KEYWARDEN_CONCURRENCY_IAM };
    process.env.KEYWARDEN_RATE_IAM = '1';
    process.env.KEYWARDEN_CONCURRENCY_IAM = '1';
    const name = uniqueName('kw-live-pace');
    const repo = `acme/${name}`;
    const users = Array.from({ length: 6 }, (_, n) => `${name}-${n}`);
    for (const userName of users) {
      await services.aws.iam.send(new CreateUserCommand({ UserName: userName }));
      await declare(
        services.store,
        makeIdentity({
          id: `${userName}-keys`,
          kind: 'aws-iam-access-key',
          scope: { userName },
          pipeline: { repo, stage: 'deploy', environment: 'prod' },
        }),
      );
    }
    let inFlight = 0;
    let most = 0;
    const counted: Services = {
      ...services,
      rotationDeps: (actor) => {
        const deps = services.rotationDeps(actor);
        return {
          ...deps,
          providerFor: (identity) => {
            const provider = deps.providerFor(identity);
            return {
              ...provider,
              list: async (...args: Parameters<typeof provider.list>) => {
                inFlight += 1;
                most = Math.max(most, inFlight);
                try {
                  return await provider.list(...args);
                } finally {
                  inFlight -= 1;
                }
              },
            };
          },
        };
      },
    };

    // act
    try {
      const planned = await planAndStoreCampaign(counted, {
        incident: newIncident(),
        selectors: [`repo=${repo}`],
        reissue: false,
        actor: 'test:responder',
        dryRun: true,
      });

      // assess: each user listed (no key: nothing live), the listings side by side.
      expect(planned.summary.targets.map((t) => [t.outcome, t.reason])).toEqual(
        users.map(() => ['skipped', 'nothing live: its provider lists no credential and none is recorded']),
      );
      expect(most).toBeGreaterThan(1);
    } finally {
      for (const [name, value] of [
        ['KEYWARDEN_RATE_IAM', saved.rate],
        ['KEYWARDEN_CONCURRENCY_IAM', saved.at],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('makes the CLI exit non-zero with a provider unreachable, naming what is still live', async () => {
    const closed = await closedPort();
    const unreachable: LocalConfig = {
      ...localConfig('kw-campaign-live-cut'),
      vault: { addr: `http://127.0.0.1:${closed}`, token: 'unused' },
    };
    await wireLocal(unreachable);
    const fleet = await preexisting();
    const reachable = {
      ...fleet,
      identities: fleet.identities.filter((i) => i.kind === 'aws-iam-access-key' || i.kind === 'vault-kv'),
    };
    syncInventory(reachable, unreachable);

    const cli = keywarden(
      ['revoke', '--incident', 'INC-LIVE-3', '--selector', `repo=${fleet.repo}`, '--yes', '--json'],
      unreachable,
    );

    expect(cli.code).not.toBe(0);
    expect(`${cli.stdout}\n${cli.stderr}`).toContain(`${fleet.userName}-kv`);
    // The IAM keys were reached and revoked all the same; the KV versions are still there.
    const live = await stillLive({ ...fleet, secretIdAccessors: [], tokenAccessors: [], secretVersions: [] });
    expect(live.filter((l) => l.startsWith('access key'))).toEqual([]);
    expect(live.filter((l) => l.startsWith('kv version'))).toHaveLength(2);
  });
});

/** A local port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 1;
}
