/**
 * Incident mass revocation end to end, against the real moto and OpenBao of the local
 * stack: the CLI plans and runs a campaign, the engine stops and resumes, and every
 * outcome is checked against the servers themselves, not only the state store.
 *
 * Each spec builds its own fleet under a unique environment name: for every rotatable
 * kind two identities, each rotated once so it has two live credentials (the adopted
 * original and keywarden's issued one); a vault-lease prefix with real leases from
 * AppRole logins on a mount of its own; an IAM role for aws-role-session; and a decoy in
 * another stage that no selector of the spec matches.
 */
import { readFileSync } from 'node:fs';
import { GetRolePolicyCommand, ListAccessKeysCommand, ListRolePoliciesCommand } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAssumableRole } from '../../bench/support/revocation-fleet.ts';
import { awsClientConfig } from '../../functions/adapters/aws/clients.ts';
import { providerLimiters } from '../../functions/adapters/rate-limits.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import { planCampaign, type Target } from '../../functions/core/campaign.ts';
import { type CampaignDeps, closeCampaign, runCampaign } from '../../functions/core/campaign-engine.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import { BreakglassConfigSchema } from '../../functions/core/grant.ts';
import type { Identity, IdentityKind } from '../../functions/core/identity.ts';
import { rotateIdentity } from '../../functions/core/rotation.ts';
import { countingRevokes, declare, newIncident, testPlan } from '../support/campaigns.ts';
import { credentialHarnesses } from '../support/credential-harness.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { type LocalConfig, localConfig, wireLocal } from '../support/local-state.ts';
import { keywardenAsResponder } from '../support/responder-cli.ts';
import { newVaultClient, testAws, uniqueName } from '../support/stack.ts';

let services: Services;
let vault: VaultClient;
let configInput: LocalConfig;
const prefix = uniqueName('kw-camp');

beforeAll(async () => {
  configInput = localConfig('kw-campaign');
  services = await wireLocal(configInput);
  // The CLI's KEYWARDEN_ACTOR is an incident responder: only responders start campaigns.
  await services.breakglassStore.putBreakglassConfig(
    BreakglassConfigSchema.parse({ incidentResponders: { localUsers: ['responder'] } }),
  );
  vault = newVaultClient();
  await vault.write(`sys/policies/acl/${prefix}-read`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });
});

// ---- the fleet: credentials as pipelines have them, and how to tell they still work ----------

/** The rotation specs' harnesses: how each kind's credential exists before keywarden. */
const base = credentialHarnesses(() => ({ services, vault, prefix }));
const pipeline = (
  environment: string,
  stage: Identity['pipeline']['stage'] = 'deploy',
): Identity['pipeline'] => ({
  repo: 'acme/app',
  stage,
  environment,
});

/** The delivered document, unwrapped from `{ value: "<json>" }` where a delivery wraps it. */
async function deliveredJson<T>(identity: Identity): Promise<T> {
  const parsed = JSON.parse(await base.readDelivered(identity)) as T & { value?: string };
  return typeof parsed.value === 'string' && parsed.value.startsWith('{')
    ? (JSON.parse(parsed.value) as T)
    : parsed;
}

interface KindHarness {
  kind: IdentityKind;
  setup(name: string, environment: string): Promise<Identity>;
  /** Reads the delivered credential and uses it against the server, as the pipeline would. */
  works(identity: Identity): Promise<boolean>;
  /** Whether the server still honours the credential `handle`. */
  live(identity: Identity, handle: string): Promise<boolean>;
  /** The raw values a pipeline holds now (to prove they are dead afterwards); empty where the handle says it all. */
  held?(identity: Identity): Promise<string[]>;
  /** Whether a raw value from `held` still authenticates. */
  authenticates?(identity: Identity, secret: string): Promise<boolean>;
}

const userOf = (identity: Identity) =>
  identity.kind === 'aws-iam-access-key' ? identity.scope.userName : '';

const iamKeys: KindHarness = {
  kind: 'aws-iam-access-key',
  setup: (name, environment) => base.iamKeys.setup(name, pipeline(environment)),
  async works(identity) {
    const key = await deliveredJson<{ accessKeyId: string; secretAccessKey: string }>(identity);
    // moto lets inactive keys authenticate: the key's status is the truth (DESIGN, Known traps).
    const keys = await services.aws.iam.send(new ListAccessKeysCommand({ UserName: userOf(identity) }));
    if (!keys.AccessKeyMetadata?.some((k) => k.AccessKeyId === key.accessKeyId && k.Status === 'Active'))
      return false;
    const sts = new STSClient(awsClientConfig({ ...testAws(), credentials: key }));
    const caller = await sts.send(new GetCallerIdentityCommand({}));
    return Boolean(caller.Arn?.endsWith(`/${userOf(identity)}`));
  },
  async live(identity, handle) {
    // Revocation deletes the key; an inactive one could be switched back on.
    const keys = await services.aws.iam.send(new ListAccessKeysCommand({ UserName: userOf(identity) }));
    return Boolean(keys.AccessKeyMetadata?.some((k) => k.AccessKeyId === handle));
  },
};

const awsSecrets: KindHarness = {
  kind: 'aws-secret',
  setup: (name, environment) => base.awsSecrets.setup(name, pipeline(environment)),
  async works(identity) {
    const delivered = await base.readDelivered(identity);
    const current = (await services.store.listVersions(identity.id)).find((v) => v.stage === 'current');
    return delivered.length > 0 && current?.fingerprint === services.fingerprinter.of(delivered);
  },
  live: (identity, handle) => base.awsSecrets.stillUsable(identity, handle),
};

const vaultTokens: KindHarness = {
  kind: 'vault-token',
  setup: (name, environment) => base.vaultTokens.setup(name, pipeline(environment)),
  async works(identity) {
    const [token] = (await this.held?.(identity)) ?? [];
    return token !== undefined && (await this.authenticates?.(identity, token)) === true;
  },
  live: (identity, handle) => base.vaultTokens.stillUsable(identity, handle),
  async held(identity) {
    const delivered = await deliveredJson<{ token?: string; value?: string }>(identity);
    return [delivered.token ?? delivered.value ?? ''];
  },
  async authenticates(_identity, token) {
    const self = await newVaultClient(token)
      .lookupSelf()
      .catch(() => undefined);
    return Boolean(self?.policies.includes(`${prefix}-read`));
  },
};

/** An AppRole login with a role id and secret id; the token it gives is revoked at once. */
async function approleLogin(mount: string, roleId: string, secretId: string): Promise<boolean> {
  const login = await vault
    .write(`auth/${mount}/login`, { role_id: roleId, secret_id: secretId })
    .catch(() => undefined);
  const accessor = login?.auth?.accessor;
  if (typeof accessor === 'string') await vault.revokeAccessor(accessor);
  return typeof login?.auth?.client_token === 'string';
}

const approleSecretIds: KindHarness = {
  kind: 'vault-approle-secret-id',
  setup: (name, environment) => base.approleSecretIds.setup(name, pipeline(environment)),
  async works(identity) {
    const [secretId] = (await this.held?.(identity)) ?? [];
    return secretId !== undefined && (await this.authenticates?.(identity, secretId)) === true;
  },
  live: (identity, handle) => base.approleSecretIds.stillUsable(identity, handle),
  async held(identity) {
    return [(await deliveredJson<{ secret_id: string }>(identity)).secret_id];
  },
  async authenticates(identity, secretId) {
    const role = identity.kind === 'vault-approle-secret-id' ? identity.scope.roleName : '';
    const roleId = String((await vault.read(`auth/approle/role/${role}/role-id`))?.data?.role_id);
    return approleLogin('approle', roleId, secretId);
  },
};

const kvSecrets: KindHarness = {
  kind: 'vault-kv',
  setup: (name, environment) => base.kvSecrets.setup(name, pipeline(environment)),
  async works(identity) {
    const current = (await services.store.listVersions(identity.id)).find((v) => v.stage === 'current');
    return (
      (await base.readDelivered(identity)) !== '{}' &&
      current !== undefined &&
      this.live(identity, current.handle)
    );
  },
  live: (identity, handle) => base.kvSecrets.stillUsable(identity, handle),
};

const harnesses: KindHarness[] = [iamKeys, awsSecrets, vaultTokens, approleSecretIds, kvSecrets];
const harnessOf = (kind: IdentityKind): KindHarness | undefined => harnesses.find((h) => h.kind === kind);

interface Fleet {
  environment: string;
  selector: string;
  rotatable: Identity[];
  lease: { identity: Identity; mount: string; prefix: string; tokens: string[] };
  role: { identity: Identity; name: string };
  decoy: Identity;
  /** Raw values the pipelines hold before the campaign, by identity. */
  held: Map<string, string[]>;
}

/** Real leases: tokens from AppRole logins on a mount of the fleet's own. */
async function leaseFleet(environment: string): Promise<Fleet['lease']> {
  const mount = uniqueName('kw-leases');
  await vault.write(`sys/auth/${mount}`, { type: 'approle' });
  await vault.write(`auth/${mount}/role/ci`, { token_policies: [`${prefix}-read`], token_ttl: '1h' });
  const roleId = String((await vault.read(`auth/${mount}/role/ci/role-id`))?.data?.role_id);
  const secretId = String((await vault.write(`auth/${mount}/role/ci/secret-id`, {})).data?.secret_id);
  const tokens: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    const login = await vault.write(`auth/${mount}/login`, { role_id: roleId, secret_id: secretId });
    tokens.push(String(login.auth?.client_token));
  }
  const leasePrefix = `auth/${mount}/login`;
  const identity = makeIdentity({
    id: uniqueName('kw-lease'),
    kind: 'vault-lease',
    scope: { prefix: leasePrefix },
    pipeline: pipeline(environment),
  });
  return { identity, mount, prefix: leasePrefix, tokens };
}

async function fleet(): Promise<Fleet> {
  const environment = uniqueName('prod');
  const rotatable = await Promise.all(
    harnesses.flatMap((h) => [
      h.setup(uniqueName('kw'), environment),
      h.setup(uniqueName('kw'), environment),
    ]),
  );
  const decoy = await iamKeys.setup(uniqueName('kw-decoy'), environment);
  const decoyInBuild = { ...decoy, pipeline: pipeline(environment, 'build') } as Identity;
  const roleName = uniqueName('kw-deployer');
  await createAssumableRole(services.aws.iam, prefix, roleName);
  const role = makeIdentity({
    id: roleName,
    kind: 'aws-role-session',
    scope: { roleArn: `arn:aws:iam::123456789012:role/${prefix}/${roleName}` },
    pipeline: pipeline(environment),
  });
  const lease = await leaseFleet(environment);
  for (const identity of [...rotatable, decoyInBuild, role, lease.identity])
    await declare(services.store, identity);
  // Recorded versions come from a first rotation: the original is adopted, a new one issued.
  const held = new Map<string, string[]>();
  for (const identity of [...rotatable, decoyInBuild]) {
    const before = (await harnessOf(identity.kind)?.held?.(identity)) ?? [];
    const outcome = await rotateIdentity(services.rotationDeps('setup'), identity, { owner: 'setup' });
    expect(outcome.status, outcome.reason).toBe('rotated');
    held.set(identity.id, [...before, ...((await harnessOf(identity.kind)?.held?.(identity)) ?? [])]);
  }
  return {
    environment,
    selector: `stage=deploy,env=${environment}`,
    rotatable,
    lease,
    role: { identity: role, name: roleName },
    decoy: decoyInBuild,
    held,
  };
}

/** What the CLI builds: every active identity with its versions. */
async function subjects() {
  const stored = (await services.store.listIdentities()).filter((r) => r.status === 'active');
  return Promise.all(
    stored.map(async ({ identity }) => ({
      identity,
      versions: await services.store.listVersions(identity.id),
    })),
  );
}

async function plan(selector: string, options: { reissue?: boolean; dryRun?: boolean } = {}) {
  const incident = newIncident();
  return testPlan({
    campaignId: `${incident}-test`,
    incident,
    selectors: [selector],
    reissue: options.reissue ?? false,
    dryRun: options.dryRun ?? false,
    subjects: await subjects(),
  });
}

/** Every credential each target names, still honoured by its server? By target id. */
async function liveOnServers(fleetOf: Fleet, targets: readonly Target[]): Promise<Map<string, boolean>> {
  const byId = new Map(
    [...fleetOf.rotatable, fleetOf.role.identity, fleetOf.lease.identity].map((i) => [i.id, i]),
  );
  const live = new Map<string, boolean>();
  for (const target of targets) {
    const identity = byId.get(target.identityId);
    if (!identity) throw new Error(`target ${target.targetId} is not of this fleet`);
    if (target.action === 'revoke-prefix') {
      live.set(target.targetId, (await vault.list(`sys/leases/lookup/${target.handle}/`)).length > 0);
    } else if (target.action === 'deny-sessions') {
      const { PolicyNames = [] } = await services.aws.iam.send(
        new ListRolePoliciesCommand({ RoleName: fleetOf.role.name }),
      );
      live.set(target.targetId, !PolicyNames.some((name) => name.startsWith('keywarden-revoke-')));
    } else {
      live.set(target.targetId, (await harnessOf(identity.kind)?.live(identity, target.handle)) ?? true);
    }
  }
  return live;
}

/** Raw values the pipelines held before the campaign that still authenticate. */
async function stillAuthenticating(fleetOf: Fleet): Promise<string[]> {
  const alive: string[] = [];
  for (const identity of fleetOf.rotatable) {
    const harness = harnessOf(identity.kind);
    for (const secret of fleetOf.held.get(identity.id) ?? []) {
      if (await harness?.authenticates?.(identity, secret)) alive.push(`${identity.id} (${identity.kind})`);
    }
  }
  for (const token of fleetOf.lease.tokens) {
    if (
      await newVaultClient(token)
        .lookupSelf()
        .then(
          () => true,
          () => false,
        )
    )
      alive.push('a lease token');
  }
  return alive;
}

async function denyPolicyOf(fleetOf: Fleet, incident: string) {
  const { PolicyDocument } = await services.aws.iam.send(
    new GetRolePolicyCommand({ RoleName: fleetOf.role.name, PolicyName: `keywarden-revoke-${incident}` }),
  );
  return JSON.parse(decodeURIComponent(PolicyDocument ?? '')) as {
    Statement: { Effect: string; Action: string; Condition: { DateLessThan: Record<string, string> } }[];
  };
}

const limits = () => providerLimiters();

// ---- the CLI ---------------------------------------------------------------------------------

/** Runs the real `keywarden` command against this file's table (or `config`), stdin not a terminal. */
function keywarden(args: string[], config: LocalConfig = configInput) {
  return keywardenAsResponder(args, config, { homePrefix: 'kw-campaign-cli-', timeoutMs: 120_000 });
}

// ---- specs -----------------------------------------------------------------------------------

describe('campaign: dry run', () => {
  it('prints counts per kind and the targets, and changes nothing', async () => {
    const fleetOf = await fleet();
    const targets = (await plan(fleetOf.selector)).targets;
    const before = await liveOnServers(fleetOf, targets);

    const cli = keywarden([
      'revoke',
      '--incident',
      'INC-1',
      '--selector',
      fleetOf.selector,
      '--dry-run',
      '--json',
    ]);

    expect(cli.code, cli.stderr).toBe(0);
    const printed = JSON.parse(cli.stdout) as { counts: { total: number; byKind: Record<string, unknown> } };
    // Two live versions for each of ten identities, one lease prefix, one role.
    expect(printed.counts.total).toBe(22);
    expect(Object.keys(printed.counts.byKind).sort()).toEqual([
      'aws-iam-access-key',
      'aws-role-session',
      'aws-secret',
      'vault-approle-secret-id',
      'vault-kv',
      'vault-lease',
      'vault-token',
    ]);
    expect(cli.stderr).toContain('dry run: nothing changed');
    expect((await services.store.listCampaigns()).filter((c) => c.incident === 'INC-1')).toEqual([]);
    expect(await liveOnServers(fleetOf, targets)).toEqual(before);
    expect([...before.values()].every(Boolean)).toBe(true);
    for (const identity of fleetOf.rotatable)
      expect(await harnessOf(identity.kind)?.works(identity)).toBe(true);
  });

  it('refuses an invalid selector naming the bad term, and says when nothing matches', async () => {
    const noYes = keywarden(['revoke', '--incident', 'INC-2', '--selector', 'env=nowhere-at-all']);
    const bad = keywarden([
      'revoke',
      '--incident',
      'INC-2',
      '--selector',
      'stage=deploy,stge=prod',
      '--dry-run',
    ]);

    expect(noYes.code).toBe(0); // nothing matches: nothing to confirm
    expect(noYes.stderr).toContain('nothing to revoke');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('term "stge=prod"');
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    expect(() =>
      planCampaign({
        campaignId: 'c',
        incident: 'INC-2',
        selectors: ['stage=deplo'],
        requestedBy: 'test',
        now: new Date().toISOString(),
        reissue: false,
        subjects: [],
      }),
    ).toThrow(ValidationError);
  });
});

describe('campaign: revoke', () => {
  it('revokes every target, as moto and OpenBao themselves show; a second run changes nothing', async () => {
    const fleetOf = await fleet();
    const refused = keywarden(['revoke', '--incident', 'INC-3', '--selector', fleetOf.selector]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refusing to revoke 22 credentials for INC-3 without confirmation.*--yes/);

    const started = Date.now();
    const cli = keywarden([
      'revoke',
      '--incident',
      'INC-3',
      '--selector',
      fleetOf.selector,
      '--yes',
      '--json',
    ]);
    const elapsed = Date.now() - started;

    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toMatch(/\[22\/22\] (revoked|already-revoked) /);
    const { campaign } = JSON.parse(cli.stdout) as { campaign: { campaignId: string; status: string } };
    expect(campaign.status).toBe('completed');
    const targets = await services.store.listTargets(campaign.campaignId);
    expect(targets).toHaveLength(22);
    // The post-incident report, in three formats, recorded on the campaign.
    const reportHtml = cli.stderr.match(/report: (\S+report\.html)/)?.[1] ?? '';
    expect(readFileSync(reportHtml, 'utf8')).toContain('INC-3');
    expect(readFileSync(reportHtml.replace(/html$/, 'md'), 'utf8')).toContain('INC-3');
    expect(JSON.parse(readFileSync(reportHtml.replace(/html$/, 'json'), 'utf8')).incident).toBe('INC-3');
    expect((await services.store.getCampaign(campaign.campaignId))?.reportLocation).toBe(reportHtml);
    expect(targets.filter((t) => !['revoked', 'already-revoked'].includes(t.outcome))).toEqual([]);
    // The servers themselves: every key deleted, token and secret-id dead, KV version destroyed,
    // Secrets Manager labels gone, no lease left under the prefix, deny policy on the role.
    const live = await liveOnServers(fleetOf, targets);
    expect([...live].filter(([, alive]) => alive)).toEqual([]);
    expect(await stillAuthenticating(fleetOf)).toEqual([]);
    const deny = await denyPolicyOf(fleetOf, 'INC-3');
    expect(deny.Statement[0]).toMatchObject({ Effect: 'Deny', Action: '*' });
    const stored = await services.store.getCampaign(campaign.campaignId);
    expect(deny.Statement[0]?.Condition.DateLessThan['aws:TokenIssueTime']).toBe(stored?.startedAt);
    const roleTarget = targets.find((t) => t.action === 'deny-sessions');
    expect(roleTarget?.reason).toMatch(/effectiveAfter \d{4}-.*\(IAM propagation\)/);
    // The decoy in another stage was not selected and still works.
    expect(await iamKeys.works(fleetOf.decoy)).toBe(true);
    // Versions are marked, naming the incident; the audit trail has one event per target, no values.
    for (const identity of fleetOf.rotatable) {
      const versions = await services.store.listVersions(identity.id);
      const revoked = versions.filter((v) => targets.some((t) => t.versionId === v.versionId));
      expect(revoked.map((v) => v.stage)).toEqual(['revoked', 'revoked']);
      expect(revoked[0]?.note).toContain('incident INC-3');
    }
    const trail = (await services.store.readAll()).records.filter(
      (r) => r.details.campaignId === campaign.campaignId,
    );
    expect(trail.filter((r) => r.type === 'campaign.started')).toHaveLength(1);
    expect(trail.filter((r) => r.type === 'campaign.target')).toHaveLength(22);
    expect(trail.filter((r) => r.type === 'campaign.completed')).toHaveLength(1);
    const written = JSON.stringify(trail);
    for (const secrets of fleetOf.held.values())
      for (const secret of secrets) expect(written).not.toContain(secret);
    console.log(`campaign of 22 targets through the CLI: ${elapsed} ms (process start included)`);

    const { deps, calls } = countingRevokes(services.campaignDeps('test'));
    const again = await runCampaign(deps, campaign.campaignId, { limitFor: limits().limitFor });

    expect(again.settled).toBe(0);
    expect(calls.size).toBe(0);
    expect(await services.store.listTargets(campaign.campaignId)).toEqual(targets);
    expect(again.campaign).toEqual(stored);
    const status = keywarden(['revoke', 'status', campaign.campaignId, '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).campaign.counts.byOutcome).toMatchObject({ pending: 0, failed: 0 });
  });

  it('stopped after a few targets and resumed, revokes each credential exactly once and misses none', async () => {
    const fleetOf = await fleet();
    const { campaign, targets } = await plan(fleetOf.selector);
    await services.store.createCampaign(campaign, targets);
    const { deps, calls } = countingRevokes(services.campaignDeps('test'));
    const stop = new AbortController();
    const { limitFor } = limits();

    // Stopped as the fifth revoke is about to start: the four in flight finish and are checkpointed.
    let started = 0;
    const first = await runCampaign(deps, campaign.campaignId, {
      limitFor: (kind) => (work) =>
        limitFor(kind)(() => {
          started += 1;
          if (started === 5) stop.abort();
          return work();
        }),
      signal: stop.signal,
    });
    const pendingAfterStop = first.targets.filter((t) => t.outcome === 'pending').length;
    const second = await runCampaign(deps, campaign.campaignId, { limitFor });

    expect(first.stopped).toBe(true);
    expect(first.settled).toBe(4);
    expect(first.campaign.status).toBe('running');
    expect(pendingAfterStop).toBeGreaterThan(0);
    // The tries counted for what was never tried were given back with the lease.
    expect(await services.store.listBatchLeases(campaign.campaignId)).toEqual([]);
    expect(second.stopped).toBe(false);
    expect(second.campaign.status).toBe('completed');
    expect(first.settled + second.settled).toBe(22);
    expect(second.targets.filter((t) => !['revoked', 'already-revoked'].includes(t.outcome))).toEqual([]);
    // Exactly one revoke per target over both runs, none for anything else.
    const expected = targets.map((t) => (t.action === 'revoke' ? `${t.identityId}:${t.handle}` : t.handle));
    expect([...calls.keys()].sort()).toEqual(expected.sort());
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    const live = await liveOnServers(fleetOf, second.targets);
    expect([...live].filter(([, alive]) => alive)).toEqual([]);
    expect(await stillAuthenticating(fleetOf)).toEqual([]);
  });
});

describe('campaign: a run limited to some targets (a revoke-batch worker)', () => {
  it('works only on its batch, refuses ids not in the plan, re-issues after the last batch, and leaves the completion to the report step', async () => {
    const fleetOf = await fleet();
    const { campaign, targets } = await plan(fleetOf.selector, { reissue: true });
    await services.store.createCampaign(campaign, targets);
    const { deps, calls } = countingRevokes(services.campaignDeps('test'));
    const { limitFor } = limits();
    // Alternate targets between two batches, so most identities have a target in each.
    const batches = [0, 1].map((half) => targets.filter((_, i) => i % 2 === half).map((t) => t.targetId));
    const [first = [], second = []] = batches;

    const refused = runCampaign(deps, campaign.campaignId, { limitFor, targetIds: ['no-such-target'] });
    await expect(refused).rejects.toThrow(/has no targets "no-such-target"/);
    const one = await runCampaign(deps, campaign.campaignId, { limitFor, targetIds: first });
    const afterOne = await services.store.listTargets(campaign.campaignId);
    const two = await runCampaign(deps, campaign.campaignId, { limitFor, targetIds: second });

    await expect(refused).rejects.toBeInstanceOf(ValidationError);
    expect(one.settled).toBe(first.length);
    expect(one.stopped).toBe(false);
    expect(one.campaign.status).toBe('running');
    expect(
      afterOne
        .filter((t) => t.outcome === 'pending')
        .map((t) => t.targetId)
        .sort(),
    ).toEqual([...second].sort());
    expect(two.settled).toBe(second.length);
    // A worker knows only its own targets: the report step (closeCampaign) counts and completes.
    expect(two.campaign.status).toBe('running');
    const closed = await closeCampaign(
      { campaigns: services.store, audit: services.store, clock: services.clock, actor: 'test' },
      campaign.campaignId,
    );
    expect(closed.status).toBe('completed');
    expect(closed.counts.byOutcome.pending).toBe(0);
    expect(two.targets.filter((t) => !['revoked', 'already-revoked'].includes(t.outcome))).toEqual([]);
    const expected = targets.map((t) => (t.action === 'revoke' ? `${t.identityId}:${t.handle}` : t.handle));
    expect([...calls.keys()].sort()).toEqual(expected.sort());
    expect([...calls.values()].every((n) => n === 1)).toBe(true);
    // Each re-issuable identity once, after its last target (in either batch) settled.
    const reissues = await services.store.listReissues(campaign.campaignId);
    expect(reissues.map((r) => [r.identityId, r.status]).sort()).toEqual(
      fleetOf.rotatable.map((i) => [i.id, 'reissued']).sort(),
    );
    const trail = (await services.store.readAll()).records.filter(
      (r) => r.details.campaignId === campaign.campaignId,
    );
    expect(trail.filter((r) => r.type === 'campaign.target')).toHaveLength(targets.length);
    expect(trail.filter((r) => r.type === 'campaign.completed')).toHaveLength(1);
    expect(await stillAuthenticating(fleetOf)).toEqual([]);
  });
});

describe('campaign: re-issue', () => {
  it('leaves each re-issuable identity with a fresh, working current credential', async () => {
    const fleetOf = await fleet();
    const { campaign, targets } = await plan(fleetOf.selector, { reissue: true });
    await services.store.createCampaign(campaign, targets);

    const started = Date.now();
    const result = await runCampaign(services.campaignDeps('test'), campaign.campaignId, {
      limitFor: limits().limitFor,
    });
    console.log(`campaign of 22 targets with re-issue of 10 identities: ${Date.now() - started} ms`);

    expect(result.targets.filter((t) => !['revoked', 'already-revoked'].includes(t.outcome))).toEqual([]);
    const reissued = new Map(result.reissues.map((r) => [r.identityId, r]));
    // Lease prefixes and role sessions are issued per lease or grant: never re-issued.
    expect([...reissued.keys()].sort()).toEqual(fleetOf.rotatable.map((i) => i.id).sort());
    const revokedHandles = new Set(targets.map((t) => t.handle));
    for (const identity of fleetOf.rotatable) {
      const record = reissued.get(identity.id);
      expect(record?.status, `${identity.id} (${identity.kind}): ${record?.reason}`).toBe('reissued');
      const current = (await services.store.listVersions(identity.id)).find((v) => v.stage === 'current');
      expect(current?.versionId).toBe(record?.versionId);
      expect(revokedHandles.has(current?.handle ?? '')).toBe(false);
      expect(await harnessOf(identity.kind)?.works(identity), `${identity.kind} works`).toBe(true);
    }
    // The old credentials stay dead.
    expect(await stillAuthenticating(fleetOf)).toEqual([]);
  });
});

describe('campaign: failures', () => {
  it('retries throttling with backoff, fails a refused revoke at once, and a resume finishes what failed retryably', async () => {
    const environment = uniqueName('prod');
    const [flaky, refused, exhausted] = await Promise.all(
      [1, 2, 3].map(() => vaultTokens.setup(uniqueName('kw'), environment)),
    );
    for (const identity of [flaky, refused, exhausted] as Identity[]) {
      await declare(services.store, identity);
      await rotateIdentity(services.rotationDeps('setup'), identity, { owner: 'setup' });
    }
    const planned = await plan(`env=${environment}`, { reissue: true });
    await services.store.createCampaign(planned.campaign, planned.targets);
    const tries = new Map<string, number>();
    const throttled = () =>
      Object.assign(new Error('Vault answered HTTP 429: rate limit quota exceeded'), { retryable: true });
    const base = services.campaignDeps('test');
    const faulty: CampaignDeps = {
      ...base,
      rotation: {
        ...base.rotation,
        providerFor: (identity) => {
          const provider = base.rotation.providerFor(identity);
          return {
            ...provider,
            revoke: async (handle: string) => {
              const n = (tries.get(handle) ?? 0) + 1;
              tries.set(handle, n);
              if (identity.id === flaky?.id && n <= 2) throw throttled();
              if (identity.id === exhausted?.id) throw throttled();
              if (identity.id === refused?.id) throw new ValidationError('permission denied (HTTP 403)');
              return provider.revoke(handle);
            },
          };
        },
      },
    };
    const waits: number[] = [];
    faulty.sleep = async (ms) => {
      waits.push(ms);
    };

    const result = await runCampaign(faulty, planned.campaign.campaignId, {
      limitFor: limits().limitFor,
      maxAttempts: 4,
      baseDelayMs: 100,
    });

    const of = (identity: Identity | undefined) =>
      result.targets.filter((t) => t.identityId === identity?.id);
    expect(of(flaky).map((t) => [t.outcome, t.attempts])).toEqual([
      ['revoked', 3],
      ['revoked', 3],
    ]);
    expect(of(refused).map((t) => [t.outcome, t.attempts, t.retryable])).toEqual([
      ['failed', 1, false],
      ['failed', 1, false],
    ]);
    expect(of(refused)[0]?.error).toContain('permission denied');
    expect(of(exhausted).map((t) => [t.outcome, t.attempts, t.retryable])).toEqual([
      ['failed', 4, true],
      ['failed', 4, true],
    ]);
    // 2 retries for each flaky target, 3 for each exhausted one; full jitter under 100·2^(n−1) ms.
    expect(waits).toHaveLength(2 * 2 + 2 * 3);
    expect(Math.max(...waits)).toBeLessThan(400);
    const reissued = new Map(result.reissues.map((r) => [r.identityId, r.status]));
    expect(reissued.get(flaky?.id ?? '')).toBe('reissued');
    expect(reissued.get(refused?.id ?? '')).toBe('withheld');
    expect(reissued.get(exhausted?.id ?? '')).toBe('withheld');
    expect(result.campaign.status).toBe('completed');

    // The responder fixes the cause and resumes: retryable failures are tried again, the others stand.
    const resumed = keywarden(['revoke', 'resume', planned.campaign.campaignId, '--json']);

    expect(resumed.code).toBe(1);
    const after = await services.store.listTargets(planned.campaign.campaignId);
    const outcomes = (identity: Identity | undefined) =>
      after.filter((t) => t.identityId === identity?.id).map((t) => t.outcome);
    expect(outcomes(exhausted)).toEqual(['revoked', 'revoked']);
    expect(outcomes(refused)).toEqual(['failed', 'failed']);
    expect(await vaultTokens.works(exhausted as Identity)).toBe(true);
    const reissues = await services.store.listReissues(planned.campaign.campaignId);
    expect(reissues.find((r) => r.identityId === exhausted?.id)?.status).toBe('reissued');
  });
});

describe('campaign: the exit code says whether anything is still live', () => {
  it('exits 1 naming what is still live and its owner when Vault is unreachable; 0 once all is revoked', async () => {
    // prepare: a Vault token and an IAM key of one pipeline, each rotated once (two live versions).
    const environment = uniqueName('prod');
    const [token, key] = await Promise.all([
      vaultTokens.setup(uniqueName('kw'), environment),
      iamKeys.setup(uniqueName('kw'), environment),
    ]);
    for (const identity of [token, key]) {
      await declare(services.store, identity);
      const outcome = await rotateIdentity(services.rotationDeps('setup'), identity, { owner: 'setup' });
      expect(outcome.status, outcome.reason).toBe('rotated');
    }
    const vaultDown: LocalConfig = {
      ...configInput,
      ...(configInput.vault ? { vault: { ...configInput.vault, addr: 'http://127.0.0.1:9' } } : {}),
    };

    // act: the whole pipeline, with Vault unreachable.
    const down = keywarden(
      ['revoke', '--incident', 'INC-7', '--selector', `env=${environment}`, '--yes'],
      vaultDown,
    );

    // assess: not 0, and what is still live is named with whom to call.
    expect(down.code, down.stderr).toBe(1);
    expect(down.stdout).toMatch(/STILL LIVE/);
    expect(down.stdout).toContain(token.id);
    expect(down.stderr).toMatch(
      new RegExp(
        `still live: \\d+ credential\\(s\\) not ended \\(${token.id} .*owners: .*${token.owner ?? ''}`,
      ),
    );
    expect(down.stderr).toMatch(/campaign INC-7-\S+ \(INC-7\) completed: /);
    expect(await vaultTokens.works(token)).toBe(true);
    expect(await iamKeys.works(key)).toBe(false);

    // act: Vault answers again; the token is revoked by a campaign of its own.
    const up = keywarden(['revoke', '--incident', 'INC-8', '--selector', `identity=${token.id}`, '--yes']);

    // assess
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).not.toContain('still live');
    expect(up.stderr).toMatch(/completed: \d+ revoked, \d+ already revoked, 0 skipped, 0 failed, 0 pending/);
    expect(await vaultTokens.works(token)).toBe(false);
  });
});
