import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAccessKeyCommand,
  CreateUserCommand,
  GetRolePolicyCommand,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import type { Target } from '../../functions/core/campaign.ts';
import type { Finding } from '../../functions/core/findings.ts';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { type CliResult, keywarden } from './cli.ts';
import { extractCommands, fencedBlocks, type RunbookCommand, toArgv } from './runbook.ts';
import { expectRanAsWritten } from './runbook-checks.ts';

const RUNBOOK = join(REPO_ROOT, 'runbooks', 'compromised-pipeline.md');
const markdown = readFileSync(RUNBOOK, 'utf8');
const runbook = extractCommands(markdown);
const INCIDENT = 'INC-2041';

/** An inventory entry as the runbook writes one: the fields the spec reads. */
interface Declared {
  id: string;
  kind: string;
  scope: Record<string, unknown>;
}

/** The inventory entries step 1 tells the responder to add (its ```yaml block). */
function declaredInStep1(): Declared[] {
  const blocks = fencedBlocks(markdown).filter(
    (b) => b.lang === 'yaml' && b.headings.some((h) => h.startsWith('1. Declare')),
  );
  expect(blocks, 'step 1 shows the inventory entries to add in one ```yaml block').toHaveLength(1);
  return parse(blocks[0]?.lines.join('\n') ?? '') as Declared[];
}

/**
 * The runbook, followed for real: a fresh local stack with the demo company, whose
 * credentials keywarden has rotated once (as the scheduler would have), plus what the deploy
 * pipeline of acme/app held from before keywarden, made straight through the AWS SDK and the
 * Vault API (an IAM user's access key, a Secrets Manager secret, a KV value, a Vault token, a
 * second AppRole secret-id), which keywarden never issued or recorded. Then every ```sh
 * command of the runbook through the real CLI, in order, each exiting as the runbook says,
 * with step 1's inventory entries added to the demo inventory (the token's accessor filled
 * in). The effects are checked on moto and OpenBao themselves: the compromised secret-ids no
 * longer log in, the Secrets Manager versions lost their labels, the role has its deny
 * policy, and each credential made outside keywarden is dead; the re-issued credentials
 * work; the report holds no secret value.
 */
describe('runbook: a pipeline is compromised (runbooks/compromised-pipeline.md)', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-runbook-revoke-'));
  const reports = join(home, 'reports');
  const env = { KEYWARDEN_HOME: home, KEYWARDEN_REPORTS_DIR: reports, KEYWARDEN_ACTOR: 'bob' };
  const run = (...args: string[]) => keywarden(args, env);
  const inventory = join(home, 'identities.yaml');
  const vars: Record<string, string> = { INCIDENT, INVENTORY: inventory };
  const ran = new Set<RunbookCommand>();
  const results = new Map<string, CliResult>();
  let services: Services;
  let vault: VaultClient;
  /** What the compromised pipeline held before the campaign: secret values, to prove them dead. */
  const held = { secretIds: [] as string[], dbPasswords: [] as string[], roleId: '' };
  /** What the pipeline held from before keywarden, by the runbook's names; values only to prove them dead. */
  const legacy = {
    userName: '',
    accessKeyId: '',
    secretId: '',
    secretVersion: '',
    secretValue: '',
    kvPath: '',
    kvValue: '',
    token: '',
    tokenAccessor: '',
    /** A secret-id of the deploy role made with the Vault API, not by keywarden. */
    secretId2: '',
    secretIdAccessor: '',
  };

  function runCommand(command: RunbookCommand): CliResult {
    const argv = toArgv(command, vars);
    const result = run(...argv);
    ran.add(command);
    expectRanAsWritten(command, argv, result);
    results.set(command.text, result);
    return result;
  }

  /** Runs every command under the heading that starts with `heading`. */
  function section(heading: string): void {
    const commands = runbook.commands.filter((c) => c.headings.some((h) => h.startsWith(heading)));
    expect(commands.length, `runbook section "${heading}…" has no commands`).toBeGreaterThan(0);
    for (const command of commands) runCommand(command);
  }
  const result = (text: string): CliResult => {
    const found = results.get(text);
    expect(found, `"${text}" was not run`).toBeDefined();
    return found as CliResult;
  };

  /** Whether an AppRole secret-id still logs in to OpenBao. */
  const logsIn = (secretId: string) =>
    new VaultClient({ addr: services.config.vault?.addr ?? '', token: 'none' })
      .write('auth/approle/login', { role_id: held.roleId, secret_id: secretId })
      .then(
        () => true,
        () => false,
      );

  beforeAll(async () => {
    const up = run('dev', 'up', '--demo');
    expect(up.code, up.stderr).toBe(0);
    // keywarden has been rotating these credentials, so it knows every live one.
    expect(run('rotate', '--due').code).toBe(0);
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    services = wire(config);
    vault = new VaultClient({ addr: config.vault?.addr ?? '', token: config.vault?.token ?? '' });
    const roleId = await vault.read('auth/approle/role/ci-app-deploy/role-id');
    held.roleId = String(roleId?.data?.role_id ?? '');
    // The secret-id the deploy job holds now, as the attacker would.
    const delivered = await vault.read('secret/data/ci/app/deploy/approle-secret-id');
    const document = (delivered?.data as { data?: Record<string, unknown> } | undefined)?.data ?? {};
    // Delivered as {role_id, secret_id}, or wrapped as {value: "<that JSON>"}.
    const fields = (typeof document.value === 'string' ? JSON.parse(document.value) : document) as {
      secret_id?: string;
    };
    held.secretIds = fields.secret_id ? [fields.secret_id] : [];
    expect(held.secretIds).toHaveLength(1);
    expect(await Promise.all(held.secretIds.map(logsIn))).toContain(true);
    const entries = declaredInStep1();
    await makeLegacyCredentials(entries);
    writeInventory(entries);
    expect(await legacyLive()).toEqual(allLive);
  });

  /** Makes what step 1 declares, straight through the SDK and the Vault API, as the pipeline's old scripts did. */
  async function makeLegacyCredentials(entries: Declared[]): Promise<void> {
    const scopeOf = (kind: string) => entries.find((e) => e.kind === kind)?.scope ?? {};
    legacy.userName = String(scopeOf('aws-iam-access-key').userName);
    legacy.secretId = String(scopeOf('aws-secret').secretId);
    legacy.kvPath = String(scopeOf('vault-kv').path);
    await services.aws.iam.send(new CreateUserCommand({ UserName: legacy.userName }));
    const { AccessKey } = await services.aws.iam.send(
      new CreateAccessKeyCommand({ UserName: legacy.userName }),
    );
    legacy.accessKeyId = AccessKey?.AccessKeyId ?? '';
    legacy.secretValue = randomBytes(24).toString('base64url');
    const secret = await services.aws.secrets.send(
      new CreateSecretCommand({ Name: legacy.secretId, SecretString: legacy.secretValue }),
    );
    legacy.secretVersion = secret.VersionId ?? '';
    legacy.kvValue = randomBytes(24).toString('base64url');
    await vault.write(`secret/data/${legacy.kvPath}`, { data: { api_key: legacy.kvValue } });
    const token = await vault.createToken(
      { policies: ['default'], ttl: '720h', display_name: 'ci-app-deploy' },
      { orphan: true },
    );
    legacy.token = token.client_token;
    legacy.tokenAccessor = token.accessor;
    const secretId = await vault.write('auth/approle/role/ci-app-deploy/secret-id', {});
    legacy.secretId2 = String(secretId.data?.secret_id ?? '');
    legacy.secretIdAccessor = String(secretId.data?.secret_id_accessor ?? '');
    for (const value of Object.values(legacy)) expect(value).not.toBe('');
  }

  /** The demo inventory plus step 1's entries, the token's accessor filled in, where $INVENTORY points. */
  function writeInventory(entries: Declared[]): void {
    const demo = parse(readFileSync(join(REPO_ROOT, 'demo', 'identities.yaml'), 'utf8')) as {
      identities: Declared[];
    };
    const added = entries.map((entry) =>
      entry.kind === 'vault-token'
        ? { ...entry, scope: { ...entry.scope, accessor: legacy.tokenAccessor } }
        : entry,
    );
    writeFileSync(inventory, stringify({ ...demo, identities: [...demo.identities, ...added] }));
  }

  /** Whether a credential made outside keywarden still works, by what the servers say. */
  const legacyLive = async () => ({
    accessKey: (
      (await services.aws.iam.send(new ListAccessKeysCommand({ UserName: legacy.userName })))
        .AccessKeyMetadata ?? []
    ).some((k) => k.AccessKeyId === legacy.accessKeyId && k.Status === 'Active'),
    secretVersion:
      (
        (await services.aws.secrets.send(new DescribeSecretCommand({ SecretId: legacy.secretId })))
          .VersionIdsToStages?.[legacy.secretVersion] ?? []
      ).length > 0,
    kvValue: await vault.read(`secret/data/${legacy.kvPath}?version=1`).then(
      (read) => JSON.stringify(read?.data ?? {}).includes(legacy.kvValue),
      () => false,
    ),
    token: (await vault.lookupAccessor(legacy.tokenAccessor)) !== undefined,
    secretId: await logsIn(legacy.secretId2),
  });
  const allLive = { accessKey: true, secretVersion: true, kvValue: true, token: true, secretId: true };
  const allDead = { accessKey: false, secretVersion: false, kvValue: false, token: false, secretId: false };

  afterAll(() => {
    expect(run('dev', 'down').code).toBe(0);
  });

  it('has only keywarden commands the test can run, or lines marked # example (few)', () => {
    const all = { ...vars, CAMPAIGN: 'x' };
    for (const command of runbook.commands) expect(() => toArgv(command, all)).not.toThrow();
    expect(runbook.commands.length).toBeGreaterThanOrEqual(8);
    expect(runbook.examples).toBeGreaterThan(0);
    expect(runbook.examples).toBeLessThanOrEqual(4);
  });

  it('1 starts by declaring what exists: a Vault token by accessor among the entries', () => {
    const first = runbook.commands[0]?.headings.at(-1) ?? '';
    expect(first).toMatch(/^1\. Declare/);
    const entries = declaredInStep1();
    expect(entries.map((e) => e.kind).sort()).toEqual([
      'aws-iam-access-key',
      'aws-secret',
      'vault-kv',
      'vault-token',
    ]);
    expect(entries.find((e) => e.kind === 'vault-token')?.scope).toHaveProperty('accessor');
    for (const entry of entries)
      expect(entry).toMatchObject({ pipeline: { repo: 'acme/app', stage: 'deploy' } });
  });

  it('1–2. declares what the pipeline held, finds nothing of it undeclared, and shows the plan without changing anything', async () => {
    // Before step 1, discovery sees the old credentials, and nobody declares them.
    const before = JSON.parse(run('findings', '--json').stdout) as Finding[];
    const undeclaredBefore = before.filter((f) => f.type === 'undeclared').flatMap((f) => f.handles);
    expect(undeclaredBefore).toEqual(expect.arrayContaining([legacy.accessKeyId, legacy.tokenAccessor]));

    section('1. Declare');
    expect(result('keywarden inventory sync $INVENTORY').stderr).toMatch(/: 4 declared, 0 changed/);
    const listed = result('keywarden inventory list').stdout;
    for (const id of ['app-deployer-approle', ...declaredInStep1().map((e) => e.id)])
      expect(listed).toContain(id);
    expect(result('keywarden findings').stderr).toMatch(/\d+ finding\(s\)/);
    // The run step 1 made: nothing of the pipeline is left undeclared, nothing declared is called missing.
    const after = JSON.parse(run('findings', '--stored', '--json').stdout) as Finding[];
    const legacyNames = [
      legacy.userName,
      legacy.secretId,
      legacy.kvPath,
      legacy.accessKeyId,
      legacy.tokenAccessor,
    ];
    const aboutLegacy = (f: Finding) =>
      legacyNames.some((name) => f.subject.includes(name) || f.handles.includes(name)) ||
      f.identityIds.some((id) => declaredInStep1().some((e) => e.id === id));
    expect(after.filter((f) => f.type === 'undeclared' && aboutLegacy(f))).toEqual([]);
    expect(after.filter((f) => f.type === 'missing' && aboutLegacy(f))).toEqual([]);

    section('2. Dry run');
    const dry = result(
      'keywarden revoke --incident $INCIDENT --selector repo=acme/app,stage=deploy --dry-run',
    );
    // The 5 credentials keywarden rotated, and the 5 it never issued, found live at the providers.
    expect(dry.stderr).toMatch(/dry run: nothing changed \(10 targets for INC-2041\)/);
    expect(dry.stdout).toMatch(/app-deploy-role/);
    for (const handle of [
      legacy.accessKeyId,
      legacy.secretVersion,
      legacy.tokenAccessor,
      legacy.secretIdAccessor,
    ]) {
      expect(dry.stdout).toContain(handle);
    }
    expect(await services.store.listCampaigns()).toEqual([]);
    expect(await Promise.all(held.secretIds.map(logsIn))).toContain(true);
    expect(await legacyLive()).toEqual(allLive);
  });

  it('3–5. revokes and re-issues, the servers show it, the report is written without a secret, the audit trail is intact', async () => {
    section('3. Revoke');
    const revoked = result(
      'keywarden revoke --incident $INCIDENT --selector repo=acme/app,stage=deploy --yes --reissue',
    );
    const campaignId = /campaign (INC-2041-\S+): \d+ to revoke/.exec(revoked.stderr)?.[1] ?? '';
    expect(campaignId).not.toBe('');
    vars.CAMPAIGN = campaignId;
    expect(revoked.stderr).toMatch(/\[10\/10\] /);
    expect(revoked.stderr).toMatch(
      /completed: \d+ revoked, \d+ already revoked, 0 skipped, 0 failed, 0 pending/,
    );

    // On the servers themselves: what keywarden never issued is dead…
    expect(await legacyLive()).toEqual(allDead);
    // The secret keeps a value, a fresh one (asked by label, as AWS answers an unlabelled read:
    // moto answers one from a default it does not move with the AWSCURRENT label).
    const secretNow = await services.aws.secrets.send(
      new GetSecretValueCommand({ SecretId: legacy.secretId, VersionStage: 'AWSCURRENT' }),
    );
    expect(secretNow.SecretString).not.toBe(legacy.secretValue);
    await expect(
      new VaultClient({ addr: services.config.vault?.addr ?? '', token: legacy.token }).lookupSelf(),
    ).rejects.toThrow();
    // …the compromised secret-ids no longer log in…
    expect(await Promise.all(held.secretIds.map(logsIn))).not.toContain(true);
    const targets: Target[] = await services.store.listTargets(campaignId);
    // …the database password's old versions have no label left in Secrets Manager…
    const described = await services.aws.secrets.send(
      new DescribeSecretCommand({ SecretId: 'ci/app/prod/db-password' }),
    );
    for (const target of targets.filter((t) => t.kind === 'aws-secret')) {
      expect(described.VersionIdsToStages?.[target.handle] ?? []).toEqual([]);
    }
    // …and the deploy role denies every session issued before the campaign.
    const { PolicyDocument } = await services.aws.iam.send(
      new GetRolePolicyCommand({ RoleName: 'ci-app-deploy', PolicyName: `keywarden-revoke-${INCIDENT}` }),
    );
    expect(decodeURIComponent(PolicyDocument ?? '')).toMatch(/"Effect":"Deny"/);
    // The re-issued secret-id works: the pipeline can run again.
    const reissued = await vault.read('secret/data/ci/app/deploy/approle-secret-id');
    expect(JSON.stringify(reissued?.data)).not.toBe('');
    expect(
      (await services.store.listReissues(campaignId)).map((r) => [r.identityId, r.status]).sort(),
    ).toEqual([
      ['app-db-prod', 'reissued'],
      // The old secret and KV value are their own delivery targets: a fresh value is in place.
      ['app-deploy-legacy-config', 'reissued'],
      ['app-deploy-legacy-npm', 'reissued'],
      ['app-deployer-approle', 'reissued'],
    ]);

    section('4. Check');
    expect(result('keywarden revoke status $CAMPAIGN').stderr).toMatch(/completed: .* 0 failed, 0 pending/);
    expect(result('keywarden revoke status').stdout).toContain(campaignId);

    section('5. Read the report');
    expect(result('keywarden audit verify').stderr).toContain('audit trail intact');
    const dir = join(reports, INCIDENT, campaignId);
    const files = ['report.html', 'report.md', 'report.json'].map((name) =>
      readFileSync(join(dir, name), 'utf8'),
    );
    for (const text of files) {
      expect(text).toContain(INCIDENT);
      const values = [legacy.secretValue, legacy.kvValue, legacy.token, legacy.secretId2];
      for (const secret of [...held.secretIds, held.roleId, ...values].filter((s) => s.length >= 8)) {
        expect(text).not.toContain(secret);
      }
      expect(text).not.toContain(services.config.vault?.token ?? 'no-token');
      expect(text).not.toContain(services.config.fingerprintKey);
    }
  });

  it('6. resume finishes a campaign with nothing left to do, revoking nothing twice', async () => {
    const before = await services.store.listTargets(vars.CAMPAIGN ?? '');
    section('6. Failed or residual');
    expect(result('keywarden revoke resume $CAMPAIGN').stderr).toMatch(/completed: .* 0 pending/);
    expect(await services.store.listTargets(vars.CAMPAIGN ?? '')).toEqual(before);
  });

  it('ran every command of the runbook', () => {
    expect(runbook.commands.filter((c) => !ran.has(c)).map((c) => `${c.line}: ${c.text}`)).toEqual([]);
  });
});
