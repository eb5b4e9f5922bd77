import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../functions/core/grant.ts';
import { REPO_ROOT, type StackEndpoints } from '../../scripts/local-stack.ts';
import {
  type CliRun,
  devTokensOf,
  eventually,
  filesUnder,
  keywardenAsync,
  parseExports,
  runtimeUrlOf,
  type Source,
  secretHits,
  slackSecretOf,
  stackOf,
  vaultReadStatus,
  vaultWriteKv,
} from './breakglass-support.ts';
import { extractCommands, type RunbookCommand, toArgv } from './runbook.ts';

const RUNBOOK = join(REPO_ROOT, 'runbooks', 'break-glass.md');
const runbook = extractCommands(readFileSync(RUNBOOK, 'utf8'));
const INCIDENT = 'INC-42';
const ROLE_ARN_NAME = 'prod-admin';

/**
 * The break-glass runbook, followed for real on a fresh demo stack: alice is on call, bob
 * approves, carol reviews. Every ```sh command runs through the real CLI as the person its
 * section is for, exiting as the runbook says; the effects are checked on OpenBao and moto
 * themselves. Two grants go through it: a Vault one that ends by itself (its schedule), and
 * an AWS one revoked early while a second grant of the same role, carol's, goes on.
 */
describe('runbook: break-glass access (runbooks/break-glass.md)', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-runbook-breakglass-'));
  const runs: CliRun[] = [];
  /** Every credential value and wrapping token the scenario was handed. */
  const secrets = new Set<string>();
  const ran = new Set<RunbookCommand>();
  const grants = { db: '', aws: '', aws2: '' };
  let stack: StackEndpoints;
  let sts: (credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string }) => STSClient;
  let iam: IAMClient;

  async function cli(actor: string, args: string[]): Promise<CliRun> {
    const env = { KEYWARDEN_HOME: home, KEYWARDEN_ACTOR: actor, HOME: home };
    const result = { ...(await keywardenAsync(args, env, home)), args, actor };
    runs.push(result);
    return result;
  }

  async function runCommand(command: RunbookCommand, actor: string, vars: Record<string, string>) {
    const argv = toArgv(command, vars);
    const result = await cli(actor, argv);
    ran.add(command);
    const where = `runbook line ${command.line} as ${actor}: ${command.text}  (keywarden ${argv.join(' ')})`;
    expect(result.stderr, where).not.toMatch(/^error: /m);
    expect(result.code, `${where}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(
      command.expectedExit,
    );
    return result;
  }

  /** The commands of the section whose heading starts with `heading`, optionally only those matching. */
  function section(heading: string, only?: RegExp): RunbookCommand[] {
    const commands = runbook.commands.filter(
      (c) => c.headings.some((h) => h.startsWith(heading)) && (!only || only.test(c.text)),
    );
    expect(commands.length, `runbook section "${heading}…" has no commands matching ${only}`).toBeGreaterThan(
      0,
    );
    return commands;
  }

  async function grantOf(id: string): Promise<Grant> {
    const shown = await cli('alice', ['breakglass', 'show', id]);
    expect(shown.code, shown.stderr).toBe(0);
    return JSON.parse(shown.stdout) as Grant;
  }

  const collect = (exports: Record<string, string>) => {
    for (const name of ['VAULT_TOKEN', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) {
      const value = exports[name];
      if (value) secrets.add(value);
    }
  };

  beforeAll(async () => {
    const up = await keywardenAsync(['dev', 'up', '--demo', '--users', 'bob,carol'], {
      KEYWARDEN_HOME: home,
      KEYWARDEN_ACTOR: 'alice',
      // Step 7 shows the schedule ending the grant: a sweeper round landing in the second between
      // the grant's end and its schedule's (rounded up to the whole second) would end it first.
      // The sweeper's own guarantee has its spec (breakglass-schedules-off.test.ts).
      KEYWARDEN_SWEEP_EVERY: '3600',
    });
    expect(up.code, up.stderr).toBe(0);
    stack = stackOf(home);
    // What the prod-db-read role is for: a secret under secret/data/prod/.
    await vaultWriteKv(stack.vault.addr, stack.vault.token, 'prod/db', { password: 'prod-db-password-x' });
    const aws = { region: stack.region, endpoint: stack.moto.endpoint };
    sts = (credentials) => new STSClient({ ...aws, credentials });
    iam = new IAMClient({
      ...aws,
      credentials: { accessKeyId: 'keywarden-local', secretAccessKey: 'keywarden-local' },
    });
  });

  afterAll(async () => {
    const down = await keywardenAsync(['dev', 'down'], { KEYWARDEN_HOME: home });
    expect(down.code, down.stderr).toBe(0);
  });

  it('has only keywarden commands the test can run, or lines marked # example (few)', () => {
    const all = { DURATION: '30m', INCIDENT, GRANT: 'bg-x' };
    for (const command of runbook.commands) expect(() => toArgv(command, all)).not.toThrow();
    expect(runbook.commands.length).toBeGreaterThanOrEqual(12);
    expect(runbook.examples).toBeGreaterThan(0);
    expect(runbook.examples).toBeLessThanOrEqual(6);
  });

  it('1–3. alice sees the roles and asks; her own approval is refused; bob approves', async () => {
    const [roles] = section('1. On call');
    const listed = await runCommand(roles as RunbookCommand, 'alice', {});
    expect(listed.stdout).toMatch(
      /prod-admin .*required .*arn:aws:iam::123456789012:role\/breakglass\/prod-admin/,
    );
    expect(listed.stdout).toMatch(/prod-db-read .*optional .*vault: breakglass-prod-db/);

    // The Vault grant is short, so that it ends by itself during the test; the AWS one is not.
    const [requestDb] = section('2. On call', /request prod-db-read/);
    const [requestAws] = section('2. On call', /request prod-admin/);
    const [db, aws, noIncident, second] = await Promise.all([
      runCommand(requestDb as RunbookCommand, 'alice', { DURATION: '20s' }),
      runCommand(requestAws as RunbookCommand, 'alice', { DURATION: '10m', INCIDENT }),
      // Without the incident the AWS role refuses.
      cli('alice', ['breakglass', 'request', 'prod-admin', '--for', '10m', '--reason', 'no incident']),
      // A second, overlapping grant of the same role: carol's, approved by bob.
      cli('carol', [
        'breakglass',
        'request',
        'prod-admin',
        '--for',
        '10m',
        '--incident',
        INCIDENT,
        '--reason',
        'second responder',
      ]),
    ]);
    grants.db = db.stdout.trim();
    grants.aws = aws.stdout.trim();
    grants.aws2 = second.stdout.trim();
    expect(grants.db).toMatch(/^bg-\S+$/);
    expect(grants.aws).toMatch(/^bg-\S+$/);
    expect(second.code, second.stderr).toBe(0);
    expect(db.stderr).toMatch(
      /requested .* requested: prod-db-read for 20s by local:alice \(approvals: none\)/,
    );
    expect(noIncident.code).toBe(1);
    expect(noIncident.stderr).toMatch(/role prod-admin requires an incident reference/);

    const selfApprovals = section('2. On call', /approve/).flatMap((command) =>
      [grants.db, grants.aws].map(async (grant) => {
        const refused = await runCommand(command, 'alice', { GRANT: grant });
        expect(refused.stderr).toContain(
          `local:alice requested grant ${grant} and cannot approve it: someone else must`,
        );
      }),
    );
    await Promise.all(selfApprovals);

    const approveAll = async (grant: string) => {
      for (const command of section('3. Approver')) {
        const result = await runCommand(command, 'bob', { GRANT: grant });
        if (/show/.test(command.text)) expect(JSON.parse(result.stdout).state).toBe('requested');
        else expect(result.stderr).toMatch(/approved: \S+ approved: .*approvals: local:bob, ends /);
      }
    };
    const other = await cli('bob', ['breakglass', 'approve', grants.aws2]);
    expect(other.code, other.stderr).toBe(0);
    await Promise.all([approveAll(grants.aws), approveAll(grants.db)]);
  });

  it('4–5. alice fetches credentials: the Vault token reads secret/data/prod/*, the STS session is prod-admin with the grant id', async () => {
    // Vault: exports, unwrapped by the CLI.
    const [plain] = section('4. On call', /credentials \$GRANT$/);
    const vault = parseExports(
      (await runCommand(plain as RunbookCommand, 'alice', { GRANT: grants.db })).stdout,
    );
    collect(vault);
    expect(vault.VAULT_ADDR).toBe(stack.vault.addr);
    expect(vault.VAULT_TOKEN).toMatch(/^s\./);
    expect(await vaultReadStatus(stack.vault.addr, vault.VAULT_TOKEN ?? '', 'secret/data/prod/db')).toBe(200);
    // The policy is that one path, nothing else.
    expect(
      await vaultReadStatus(
        stack.vault.addr,
        vault.VAULT_TOKEN ?? '',
        'secret/data/ci/app/deploy/approle-secret-id',
      ),
    ).toBe(403);

    // The API itself hands out only a wrapped token, which works once.
    const response = await fetch(`${runtimeUrlOf(home)}/grants/${grants.db}/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${devTokensOf(home).alice}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { credential } = (await response.json()) as {
      credential: { type: string; wrappingToken: string; vaultAddr: string };
    };
    expect(credential.type).toBe('vault-wrapped-token');
    secrets.add(credential.wrappingToken);
    const unwrap = () =>
      fetch(`${stack.vault.addr}/v1/sys/wrapping/unwrap`, {
        method: 'POST',
        headers: { 'x-vault-token': credential.wrappingToken },
      });
    const first = await unwrap();
    expect(first.status).toBe(200);
    const token = ((await first.json()) as { auth: { client_token: string } }).auth.client_token;
    secrets.add(token);
    expect(await vaultReadStatus(stack.vault.addr, token, 'secret/data/prod/db')).toBe(200);
    const again = await unwrap();
    expect(again.status).toBe(400);
    expect(await again.text()).toMatch(/wrapping token is not valid or does not exist/);

    // AWS: exports, then a profile; both are sessions of prod-admin named after the grant.
    const awsExports = parseExports(
      (await runCommand(plain as RunbookCommand, 'alice', { GRANT: grants.aws })).stdout,
    );
    collect(awsExports);
    expect(awsExports.AWS_REGION).toBe(stack.region);
    const identity = await sts({
      accessKeyId: awsExports.AWS_ACCESS_KEY_ID ?? '',
      secretAccessKey: awsExports.AWS_SECRET_ACCESS_KEY ?? '',
      sessionToken: awsExports.AWS_SESSION_TOKEN ?? '',
    }).send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe(`arn:aws:sts::123456789012:assumed-role/${ROLE_ARN_NAME}/${grants.aws}`);

    const [profile] = section('4. On call', /--profile/);
    const wrote = await runCommand(profile as RunbookCommand, 'alice', { GRANT: grants.aws });
    expect(wrote.stdout).toBe('');
    expect(wrote.stderr).toMatch(/wrote profile breakglass to .*\.aws\/credentials; it ends /);
    const file = readFileSync(join(home, '.aws', 'credentials'), 'utf8');
    const field = (name: string) => new RegExp(`^${name} = (\\S+)$`, 'm').exec(file)?.[1] ?? '';
    const fromProfile = {
      accessKeyId: field('aws_access_key_id'),
      secretAccessKey: field('aws_secret_access_key'),
      sessionToken: field('aws_session_token'),
    };
    for (const value of Object.values(fromProfile)) secrets.add(value);
    expect((await sts(fromProfile).send(new GetCallerIdentityCommand({}))).Arn).toBe(
      `arn:aws:sts::123456789012:assumed-role/${ROLE_ARN_NAME}/${grants.aws}`,
    );

    // Carol's overlapping grant has its own session.
    const carol = await cli('carol', ['breakglass', 'credentials', grants.aws2]);
    expect(carol.code, carol.stderr).toBe(0);
    collect(parseExports(carol.stdout));
    expect(secrets.size).toBeGreaterThanOrEqual(12);
  });

  it('6. revoking early denies the grant on the role; the overlapping grant has no deny and stays active', async () => {
    const [revoke] = section('6. End it early');
    const result = await runCommand(revoke as RunbookCommand, 'alice', { GRANT: grants.aws });
    expect(result.stderr).toMatch(new RegExp(`revoked: ${grants.aws} revoked: .*; review due `));
    const { PolicyDocument } = await iam.send(
      new GetRolePolicyCommand({ RoleName: ROLE_ARN_NAME, PolicyName: `keywarden-breakglass-${grants.aws}` }),
    );
    const document = decodeURIComponent(PolicyDocument ?? '');
    expect(document).toMatch(/"Effect":\s*"Deny"/);
    expect(document).toContain(grants.aws);
    const other = await iam
      .send(
        new GetRolePolicyCommand({
          RoleName: ROLE_ARN_NAME,
          PolicyName: `keywarden-breakglass-${grants.aws2}`,
        }),
      )
      .then(
        () => 'present',
        (error: Error) => error.name,
      );
    expect(other).toBe('NoSuchEntityException');
    const [revoked, going] = [await grantOf(grants.aws), await grantOf(grants.aws2)];
    expect([revoked.state, revoked.endedBy]).toEqual(['revoked', 'principal']);
    expect(going.state).toBe('active');
  });

  it('7. at the end nobody acts: OpenBao refuses the token and the schedule records the grant expired', async () => {
    const vaultToken = runs
      .filter((r) => r.args.includes('credentials') && r.args.includes(grants.db))
      .map((r) => parseExports(r.stdout).VAULT_TOKEN ?? '')[0];
    expect(vaultToken).toMatch(/^s\./);
    const [refused, expired] = await Promise.all([
      eventually('OpenBao refuses the grant token', async () =>
        (await vaultReadStatus(stack.vault.addr, vaultToken ?? '', 'secret/data/prod/db')) === 403
          ? true
          : undefined,
      ),
      eventually('the grant is expired', async () => {
        const grant = await grantOf(grants.db);
        return grant.state === 'expired' ? grant : undefined;
      }),
    ]);
    expect(refused).toBe(true);
    expect(expired.endedBy).toBe('schedule');
    expect(expired.review?.dueAt).toBeDefined();

    const [all, active] = section('7. At the end');
    const listed = await runCommand(all as RunbookCommand, 'alice', {});
    expect(listed.stdout).toMatch(new RegExp(`${grants.db} .*expired .*due `));
    expect(listed.stdout).toMatch(new RegExp(`${grants.aws} .*revoked `));
    const running = await runCommand(active as RunbookCommand, 'alice', {});
    expect(running.stdout).toContain(grants.aws2);
    expect(running.stdout).not.toContain(grants.db);
  });

  it('8–9. carol reviews (alice may not) and the report tells the whole story without a secret', async () => {
    const selfReview = await cli('alice', ['breakglass', 'review', grants.db, '--notes', 'all fine']);
    expect(selfReview.code).toBe(1);
    expect(selfReview.stderr).toContain(
      `local:alice used grant ${grants.db} and cannot review it: someone else must`,
    );
    const reviewAndReport = async (grant: string) => {
      for (const command of section('8. Reviewer')) {
        const result = await runCommand(command, 'carol', { GRANT: grant });
        expect(result.stderr).toMatch(/reviewed: /);
      }
      for (const command of section('9. The report')) await runCommand(command, 'carol', { GRANT: grant });
    };
    await Promise.all([reviewAndReport(grants.db), reviewAndReport(grants.aws)]);
    const reports = join(home, 'reports', 'breakglass');
    const markdown = readFileSync(join(reports, `breakglass-${grants.db}.md`), 'utf8');
    expect(markdown).toContain('check the prod database credentials');
    expect(markdown).toMatch(/approvals \| local:bob at /);
    expect(markdown).toMatch(/\(schedule\)/);
    expect(markdown).toContain('rolled back release 4.2.1');
    expect(markdown).toMatch(/openbao-audit/);
    const json = JSON.parse(readFileSync(join(reports, `breakglass-${grants.aws}.json`), 'utf8'));
    expect(JSON.stringify(json)).toContain(INCIDENT);
    expect((await grantOf(grants.db)).review?.reviewer).toEqual({ kind: 'local', id: 'carol' });
  });

  it('no credential or wrapped token in any log line, audit record, report or CLI message', async () => {
    const audit = await cli('carol', ['audit', 'list', '--limit', '1000', '--json']);
    expect(audit.code, audit.stderr).toBe(0);
    const records = JSON.parse(audit.stdout) as { type: string; subject: string }[];
    // The search reads what it should: the sources hold the scenario's events.
    for (const grant of Object.values(grants)) {
      expect(records.filter((r) => r.subject === grant).length, grant).toBeGreaterThanOrEqual(3);
    }
    expect(records.map((r) => r.type)).toEqual(
      expect.arrayContaining([
        'grant.requested',
        'grant.refused',
        'grant.approved',
        'grant.activated',
        'grant.revoked',
        'grant.expired',
        'grant.reviewed',
      ]),
    );
    const runtimeLog = readFileSync(join(home, 'runtime.log'), 'utf8');
    expect(runtimeLog).toMatch(/fired: expired/);
    const reports = filesUnder(join(home, 'reports'), 'report');
    expect(reports.length).toBe(4);
    const sources: Source[] = [
      { name: 'runtime.log', text: runtimeLog },
      { name: 'moto.log', text: readFileSync(stack.moto.log, 'utf8') },
      { name: 'openbao.log', text: readFileSync(stack.vault.log, 'utf8') },
      { name: 'audit list --json', text: audit.stdout },
      ...reports,
      // Every CLI message; stdout too, except where `credentials` is asked for them.
      ...runs.map((r) => ({ name: `stderr of ${r.actor}: keywarden ${r.args.join(' ')}`, text: r.stderr })),
      ...runs
        .filter((r) => !r.args.includes('credentials'))
        .map((r) => ({ name: `stdout of ${r.actor}: keywarden ${r.args.join(' ')}`, text: r.stdout })),
    ];
    const openbaoAudit = readFileSync(stack.vault.auditLog, 'utf8');
    expect(openbaoAudit.length).toBeGreaterThan(0);
    const keys = [...Object.values(devTokensOf(home)), slackSecretOf(home).reveal()];
    expect(secrets.size).toBeGreaterThanOrEqual(12);
    expect(secretHits([...secrets, ...keys], sources)).toEqual([]);
    // OpenBao's audit device HMACs what it records: no clear token there either.
    expect(secretHits(secrets, [{ name: 'openbao-audit.log', text: openbaoAudit }])).toEqual([]);
  });

  it('ran every command of the runbook', () => {
    expect(runbook.commands.filter((c) => !ran.has(c)).map((c) => `${c.line}: ${c.text}`)).toEqual([]);
  });
});
