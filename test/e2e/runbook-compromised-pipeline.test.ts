import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetRolePolicyCommand } from '@aws-sdk/client-iam';
import { DescribeSecretCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import type { Target } from '../../functions/core/campaign.ts';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { type CliResult, keywarden } from './cli.ts';
import { extractCommands, type RunbookCommand, toArgv } from './runbook.ts';
import { expectRanAsWritten } from './runbook-checks.ts';

const RUNBOOK = join(REPO_ROOT, 'runbooks', 'compromised-pipeline.md');
const runbook = extractCommands(readFileSync(RUNBOOK, 'utf8'));
const INCIDENT = 'INC-2041';

/**
 * The runbook, followed for real: a fresh local stack with the demo company, whose
 * credentials keywarden has rotated once (as the scheduler would have), then every ```sh
 * command of the runbook through the real CLI, in order, each exiting as the runbook says.
 * The effects are checked on moto and OpenBao themselves: the compromised secret-ids no
 * longer log in, the Secrets Manager versions lost their labels, the role has its deny
 * policy; the re-issued credentials work; the report holds no secret value.
 */
describe('runbook: a pipeline is compromised (runbooks/compromised-pipeline.md)', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-runbook-revoke-'));
  const reports = join(home, 'reports');
  const env = { KEYWARDEN_HOME: home, KEYWARDEN_REPORTS_DIR: reports, KEYWARDEN_ACTOR: 'bob' };
  const run = (...args: string[]) => keywarden(args, env);
  const vars: Record<string, string> = { INCIDENT };
  const ran = new Set<RunbookCommand>();
  const results = new Map<string, CliResult>();
  let services: Services;
  let vault: VaultClient;
  /** What the compromised pipeline held before the campaign: secret values, to prove them dead. */
  const held = { secretIds: [] as string[], dbPasswords: [] as string[], roleId: '' };

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
  });

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

  it('1–2. scopes the pipeline and shows the plan without changing anything', async () => {
    section('1. Scope');
    expect(result('keywarden inventory list').stdout).toMatch(/app-deployer-approle/);
    expect(result('keywarden findings').stderr).toMatch(/\d+ finding\(s\)/);

    section('2. Dry run');
    const dry = result(
      'keywarden revoke --incident $INCIDENT --selector repo=acme/app,stage=deploy --dry-run',
    );
    expect(dry.stderr).toMatch(/dry run: nothing changed \(5 targets for INC-2041\)/);
    expect(dry.stdout).toMatch(/app-deploy-role/);
    expect(await services.store.listCampaigns()).toEqual([]);
    expect(await Promise.all(held.secretIds.map(logsIn))).toContain(true);
  });

  it('3–5. revokes and re-issues, the servers show it, the report is written without a secret, the audit trail is intact', async () => {
    section('3. Revoke');
    const revoked = result(
      'keywarden revoke --incident $INCIDENT --selector repo=acme/app,stage=deploy --yes --reissue',
    );
    const campaignId = /campaign (INC-2041-\S+): \d+ to revoke/.exec(revoked.stderr)?.[1] ?? '';
    expect(campaignId).not.toBe('');
    vars.CAMPAIGN = campaignId;
    expect(revoked.stderr).toMatch(/\[5\/5\] /);
    expect(revoked.stderr).toMatch(
      /completed: \d+ revoked, \d+ already revoked, 0 skipped, 0 failed, 0 pending/,
    );

    // On the servers themselves: the compromised secret-ids no longer log in…
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
      for (const secret of [...held.secretIds, held.roleId].filter((s) => s.length >= 8)) {
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
