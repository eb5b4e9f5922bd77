import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListAccessKeysCommand } from '@aws-sdk/client-iam';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import { keywardenEntry } from '../support/cli-entry.ts';
import { startForgeServer } from '../support/forge-server.ts';
import { alertSubscriber } from '../support/lambda-world.ts';
import { keywardenAsync } from './breakglass-support.ts';
import { type CliResult, keywarden } from './cli.ts';

/** Every file under a folder, recursively. */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });

/**
 * Issue #14's first "done when", on the demo: keywarden has rotated the demo's credentials once
 * (so it holds every live one's fingerprint); a build log gets a credential of every kind, read
 * from where the pipeline reads it (an IAM key pair from its delivery secret, a Vault token, an
 * AppRole secret-id, a KV value, a Secrets Manager value), among noise and look-alikes.
 * `keywarden scan build.log --contain` fails the build, and afterwards each of them is dead on
 * moto and OpenBao, each identity has a fresh working credential at its delivery target, the
 * incident reports are written, each owner is alerted on the local alert topic, and no output,
 * audit record, report, alert or stored record holds a value. A second scan finds them again,
 * dead, and contains (and alerts) nothing.
 */
describe('keywarden scan --contain: exposed credentials of every kind end, and are replaced', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-scan-'));
  const reports = join(home, 'reports');
  const env = { KEYWARDEN_HOME: home, KEYWARDEN_REPORTS_DIR: reports, KEYWARDEN_ACTOR: 'alice' };
  const run = (...args: string[]) => keywarden(args, env);
  const log = join(home, 'build.log');
  let services: Services;
  let vault: VaultClient;
  /** The live values as the pipelines hold them: only to plant, and to prove them dead and absent. */
  const leaked = {
    accessKeyId: '',
    secretAccessKey: '',
    vaultToken: '',
    roleId: '',
    secretId: '',
    kvToken: '',
    npmToken: '',
  };
  /** A Vault service token of OpenBao's form that keywarden does not manage. */
  const unmanagedToken = `s.${randomBytes(18).toString('base64').replace(/[+/]/g, 'x')}`;
  let first: CliResult;
  let second: CliResult;
  /** What an SQS queue subscribed to the local alert topic received (SNS's envelope, attributes included). */
  let alerts: {
    Subject: string;
    Message: string;
    MessageAttributes: Record<string, { Value: string }>;
  }[] = [];

  const secretString = async (secretId: string) =>
    (
      await services.aws.secrets.send(
        // By label: moto answers an unlabelled read from a default it does not move.
        new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
      )
    ).SecretString ?? '';
  const kvFields = async (path: string) =>
    ((await vault.read(`secret/data/${path}`))?.data as { data?: Record<string, string> } | undefined)
      ?.data ?? {};
  /** A token delivered to KV: under `value` (keywarden's default field) or `token`. */
  const deliveredToken = (fields: Record<string, string>) => fields.value ?? fields.token ?? '';
  const logsIn = (roleId: string, secretId: string) =>
    new VaultClient({ addr: services.config.vault?.addr ?? '', token: 'none' })
      .write('auth/approle/login', { role_id: roleId, secret_id: secretId })
      .then(
        () => true,
        () => false,
      );
  const tokenWorks = (token: string) =>
    new VaultClient({ addr: services.config.vault?.addr ?? '', token }).lookupSelf().then(
      () => true,
      () => false,
    );
  const keyStatus = async (userName: string, accessKeyId: string) =>
    (
      (await services.aws.iam.send(new ListAccessKeysCommand({ UserName: userName }))).AccessKeyMetadata ?? []
    ).find((key) => key.AccessKeyId === accessKeyId)?.Status ?? 'deleted';

  beforeAll(async () => {
    const up = run('dev', 'up', '--demo');
    expect(up.code, up.stderr).toBe(0);
    // keywarden has rotated them once, as its schedule would: it knows every live value's fingerprint.
    expect(run('rotate', '--due').code).toBe(0);
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    services = wire(config);
    // An owner's subscription to the alert topic `dev up` made on moto: an SQS queue, read after the scans.
    expect(config.alerts.topicArn).toMatch(/:keywarden-alerts$/);
    const readAlerts = await alertSubscriber(config.aws, config.alerts.topicArn ?? '', {
      queueName: 'kw-scan-alerts',
    });
    vault = new VaultClient({ addr: config.vault?.addr ?? '', token: config.vault?.token ?? '' });
    const pair = JSON.parse(await secretString('ci/app/build/aws-access-key')) as Record<string, string>;
    leaked.accessKeyId = pair.accessKeyId ?? '';
    leaked.secretAccessKey = pair.secretAccessKey ?? '';
    leaked.vaultToken = deliveredToken(await kvFields('ci/app/build/vault-token'));
    const approle = await kvFields('ci/app/deploy/approle-secret-id');
    leaked.roleId = approle.role_id ?? '';
    leaked.secretId = approle.secret_id ?? '';
    leaked.kvToken = (await kvFields('ci/web/cdn-purge-token')).token ?? '';
    leaked.npmToken = await secretString('ci/web/npm-token');
    for (const [name, value] of Object.entries(leaked)) expect(value, name).not.toBe('');
    expect(await tokenWorks(leaked.vaultToken)).toBe(true);
    expect(await logsIn(leaked.roleId, leaked.secretId)).toBe(true);
    writeFileSync(
      log,
      [
        '2026-12-05T08:00:01.120Z [build] runner ci-7 picked job 4411 (acme/app)',
        `2026-12-05T08:00:01.500Z npm notice integrity sha512-${randomBytes(48).toString('base64')}`,
        `2026-12-05T08:00:02.000Z + export AWS_ACCESS_KEY_ID=${leaked.accessKeyId}`,
        `2026-12-05T08:00:02.001Z + export AWS_SECRET_ACCESS_KEY=${leaked.secretAccessKey}`,
        `2026-12-05T08:00:02.300Z request-id ${randomUUID()} etag ${randomBytes(16).toString('hex')}`,
        `2026-12-05T08:00:03.000Z + vault login -method=token token=${leaked.vaultToken}`,
        `2026-12-05T08:00:03.400Z + vault write auth/approle/login role_id=${leaked.roleId} secret_id=${leaked.secretId}`,
        `2026-12-05T08:00:04.000Z + curl -H "Authorization: Bearer ${leaked.kvToken}" https://cdn.example/purge`,
        `2026-12-05T08:00:05.000Z + echo "//registry.npmjs.org/:_authToken=${leaked.npmToken}" > .npmrc`,
        `2026-12-05T08:00:06.000Z commit ${randomBytes(20).toString('hex')} built in 42s`,
        // A token keywarden never issued: reported, and recorded as a finding.
        `2026-12-05T08:00:07.000Z + VAULT_TOKEN=${unmanagedToken} make smoke`,
      ].join('\n'),
    );
    first = run('scan', log, '--contain', '--json');
    second = run('scan', log, '--contain', '--json');
    // moto delivers to SQS as it publishes: every alert is in the queue once the scans are done.
    for (let read = 0; read < 5; read += 1) {
      const received = await readAlerts(0);
      if (received.length === 0) break;
      alerts = [...alerts, ...(received as typeof alerts)];
    }
  });

  afterAll(() => {
    expect(run('dev', 'down').code).toBe(0);
  });

  it('fails the build, naming each managed credential (identity, owner) and containing it once', () => {
    expect(first.code, first.stderr).toBe(1);
    const { hits, containments } = JSON.parse(first.stdout) as {
      hits: { line: number; status: string; severity: string; managed?: { identityId: string } }[];
      containments: { identityId: string; status: string; campaignId: string; reissuedVersionId?: string }[];
    };
    const managed = hits.filter((h) => h.status === 'managed');
    // One hit or more each (a detector's pair hit sits on the key id's line, the matcher's on the secret's).
    for (const [line, identityId] of [
      [4, 'app-build-aws'],
      [6, 'app-ci-reader'],
      [7, 'app-deployer-approle'],
      [8, 'web-cdn-purge'],
      [9, 'web-npm-token'],
    ] as const) {
      expect(
        managed.some((h) => h.line === line && h.managed?.identityId === identityId),
        `${identityId} on line ${line}`,
      ).toBe(true);
    }
    expect(new Set(managed.map((h) => h.severity))).toEqual(new Set(['critical']));
    expect(containments.map((c) => [c.identityId, c.status, Boolean(c.reissuedVersionId)]).sort()).toEqual([
      ['app-build-aws', 'contained', true],
      ['app-ci-reader', 'contained', true],
      ['app-deployer-approle', 'contained', true],
      ['web-cdn-purge', 'contained', true],
      ['web-npm-token', 'contained', true],
    ]);
    expect(first.stderr).toMatch(
      /alert team-app: app-build-aws's credential was exposed in file .*build\.log:[34];.*; alert sent to SNS topic keywarden-alerts\n/,
    );
  });

  it('alerts each owner once on the local alert topic, with attributes to filter on and no value', () => {
    const { containments } = JSON.parse(first.stdout) as {
      containments: { identityId: string; owner?: string; incident: string; alerted: boolean }[];
    };
    expect(containments.every((c) => c.alerted)).toBe(true);
    const byIdentity = (list: { identity: string; owner: string; incident: string; cause: string }[]) =>
      list.sort((a, b) => a.identity.localeCompare(b.identity));
    expect(
      byIdentity(
        alerts.map(({ MessageAttributes: a }) => ({
          identity: a.identity?.Value ?? '',
          owner: a.owner?.Value ?? '',
          incident: a.incident?.Value ?? '',
          cause: a.cause?.Value ?? '',
        })),
      ),
    ).toEqual(
      byIdentity(
        containments.map((c) => ({
          identity: c.identityId,
          owner: c.owner ?? '',
          incident: c.incident,
          cause: 'exposure',
        })),
      ),
    );
    const build = alerts.find((a) => a.MessageAttributes.identity?.Value === 'app-build-aws');
    expect(build?.Subject).toMatch(
      /^keywarden contained app-build-aws's exposed credential \(EXPOSURE-[0-9a-f]{12}\)$/,
    );
    expect(build?.Message).toMatch(
      /^app-build-aws's credential was exposed \(file .*build\.log:[34]\); ended by EXPOSURE-/,
    );
    expect(build?.Message).toMatch(/Replacement: fresh credential \S+ delivered to its target/);
  });

  it('reports the credential keywarden does not manage, and records it as an exposed-unmanaged finding', () => {
    const { hits } = JSON.parse(first.stdout) as {
      hits: { line: number; status: string; severity: string; prefix: string }[];
    };
    expect(hits.filter((h) => h.status === 'unmanaged').map((h) => [h.line, h.severity, h.prefix])).toEqual([
      [11, 'high', `${unmanagedToken.slice(0, 4)}…`],
    ]);
    const findings = run('findings', '--stored', '--json');
    expect(findings.code, findings.stderr).toBe(0);
    const stored = (JSON.parse(findings.stdout) as { type: string; message: string }[]).filter(
      (f) => f.type === 'exposed-unmanaged',
    );
    expect(stored).toHaveLength(1);
    expect(stored[0]?.message).toMatch(/exposed in file .*build\.log:11/);
    expect(findings.stdout).not.toContain(unmanagedToken);
  });

  it('leaves every leaked credential dead on moto and OpenBao', async () => {
    expect(await keyStatus('ci-app-build', leaked.accessKeyId)).not.toBe('Active');
    expect(await tokenWorks(leaked.vaultToken)).toBe(false);
    expect(await logsIn(leaked.roleId, leaked.secretId)).toBe(false);
    expect((await kvFields('ci/web/cdn-purge-token')).token).not.toBe(leaked.kvToken);
    expect(await secretString('ci/web/npm-token')).not.toBe(leaked.npmToken);
  });

  it('gives each identity a fresh working credential at its delivery target', async () => {
    const pair = JSON.parse(await secretString('ci/app/build/aws-access-key')) as Record<string, string>;
    expect(pair.accessKeyId).not.toBe(leaked.accessKeyId);
    expect(await keyStatus('ci-app-build', pair.accessKeyId ?? '')).toBe('Active');
    const token = deliveredToken(await kvFields('ci/app/build/vault-token'));
    expect(token).not.toBe(leaked.vaultToken);
    expect(await tokenWorks(token)).toBe(true);
    const approle = await kvFields('ci/app/deploy/approle-secret-id');
    expect(approle.secret_id).not.toBe(leaked.secretId);
    expect(await logsIn(approle.role_id ?? '', approle.secret_id ?? '')).toBe(true);
    expect((await kvFields('ci/web/cdn-purge-token')).token).toMatch(/^[0-9a-f]{64}$/);
    expect(await secretString('ci/web/npm-token')).toMatch(/^npm_[A-Za-z0-9]{36}$/);
  });

  it('writes an incident report per credential, naming where it was exposed', () => {
    const written = filesUnder(reports).filter((path) => path.endsWith('report.md'));
    expect(written.length).toBe(5);
    for (const path of written) {
      expect(path).toMatch(/EXPOSURE-[0-9a-f]{12}/);
      expect(readFileSync(path, 'utf8')).toMatch(/exposed in file .*build\.log:\d+/);
    }
  });

  it('audits detected, contained and reissued for each, and keeps no value anywhere', async () => {
    const { records } = await services.store.readAll();
    const exposure = records.filter((r) => r.type.startsWith('exposure.'));
    expect(exposure.filter((r) => r.subject === 'app-ci-reader').map((r) => r.type)).toEqual([
      'exposure.detected',
      'exposure.contained',
      'exposure.reissued',
    ]);
    expect(exposure).toHaveLength(15);
    const secrets = [
      leaked.secretAccessKey,
      leaked.vaultToken,
      leaked.secretId,
      leaked.kvToken,
      leaked.npmToken,
    ];
    const everywhere = [
      first.stdout,
      first.stderr,
      second.stdout,
      second.stderr,
      JSON.stringify(records),
      JSON.stringify(alerts),
      ...filesUnder(reports).map((path) => readFileSync(path, 'utf8')),
    ];
    for (const text of everywhere) for (const secret of secrets) expect(text).not.toContain(secret);
  });

  it('finds a live credential in a folder, standard input, and a repository history (a commit it was removed from), without containing', async () => {
    // prepare: the fresh token, committed once and removed in the next commit
    const token = deliveredToken(await kvFields('ci/app/build/vault-token'));
    const repo = join(home, 'repo');
    mkdirSync(join(repo, 'ci'), { recursive: true });
    const git = (...args: string[]) =>
      execFileSync(
        'git',
        ['-C', repo, '-c', 'user.name=ci', '-c', 'user.email=ci@example.invalid', ...args],
        {
          encoding: 'utf8',
        },
      );
    git('init', '-q');
    writeFileSync(join(repo, 'ci', 'deploy.sh'), `#!/bin/sh\necho start\nexport VAULT_TOKEN=${token}\n`);
    git('add', '.');
    git('commit', '-q', '-m', 'deploy');
    const leakCommit = git('rev-parse', 'HEAD').trim();
    writeFileSync(join(repo, 'ci', 'deploy.sh'), '#!/bin/sh\necho start\n');
    git('commit', '-q', '-am', 'no token');
    writeFileSync(join(repo, 'notes.txt'), `token ${token}\n`);
    // act
    const history = run('scan', '--git', repo, '--json');
    const folder = run('scan', repo, '--json');
    const stdin = spawnSync(process.execPath, [keywardenEntry(), 'scan', '-', '--json'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { ...process.env, KEYWARDEN_TABLE: '', ...env },
      input: `line one\nVAULT_TOKEN=${token}\n`,
    });
    // assess
    type Hit = { place: string; source: { commit?: string }; managed?: { identityId: string } };
    const managedIn = (result: { stdout: string }) =>
      (JSON.parse(result.stdout) as { hits: Hit[] }).hits.filter(
        (h) => h.managed?.identityId === 'app-ci-reader',
      );
    expect(history.code, history.stderr).toBe(1);
    expect(managedIn(history).map((h) => [h.place, h.source.commit])).toEqual([
      [`git ${repo}:ci/deploy.sh@${leakCommit.slice(0, 12)}:3`, leakCommit],
    ]);
    expect(managedIn(folder).map((h) => h.place)).toEqual([`file ${join(repo, 'notes.txt')}:1`]);
    expect(stdin.status, stdin.stderr).toBe(1);
    expect(managedIn(stdin).map((h) => h.place)).toEqual(['stdin -:2']);
    for (const text of [history.stdout, history.stderr, folder.stdout, stdin.stdout, stdin.stderr]) {
      expect(text).not.toContain(token);
    }
    // Reported, not contained: the token still works.
    expect(await tokenWorks(token)).toBe(true);
  });

  it("finds it in a GitHub run's job logs and in a GitLab project's CI/CD variables, naming an unmasked, unprotected one", async () => {
    // prepare: the platforms' endpoints played on loopback, holding the fresh token
    const token = deliveredToken(await kvFields('ci/app/build/vault-token'));
    const forge = await startForgeServer();
    try {
      forge.addGithubRun({
        owner: 'acme',
        repo: 'app',
        runId: 42,
        jobs: [
          {
            id: 7,
            name: 'build',
            log: `2026-12-05T10:00:00Z step 1\n2026-12-05T10:00:01Z VAULT_TOKEN=${token}\n`,
          },
        ],
      });
      forge.setGitlabVariables('acme/app', [
        { key: 'VAULT_TOKEN', value: token, masked: false, protected: false },
        { key: 'REGION', value: 'eu-west-1', masked: false, protected: false },
      ]);
      const forgeEnv = { ...env, GITHUB_TOKEN: forge.githubToken, GITLAB_TOKEN: forge.gitlabToken };

      // act
      // Not spawnSync: the endpoints answer from this process's event loop.
      const scanned = await keywardenAsync(
        [
          'scan',
          '--github-run',
          'acme/app/42',
          '--gitlab-variables',
          'acme/app',
          '--github-api',
          forge.url,
          '--gitlab-url',
          forge.url,
          '--json',
        ],
        forgeEnv,
      );

      // assess
      const places = (
        JSON.parse(scanned.stdout) as { hits: { place: string; managed?: { identityId: string } }[] }
      ).hits
        .filter((h) => h.managed?.identityId === 'app-ci-reader')
        .map((h) => h.place);
      expect(scanned.code, scanned.stderr).toBe(1);
      expect(places).toEqual([
        expect.stringMatching(/^github-run acme\/app\/runs\/42.*:2$/),
        expect.stringMatching(/^gitlab-variable acme\/app:VAULT_TOKEN/),
      ]);
      expect(scanned.stderr).toMatch(/VAULT_TOKEN holds the managed credential of identity app-ci-reader/);
      for (const text of [scanned.stdout, scanned.stderr]) {
        expect(text).not.toContain(token);
        expect(text).not.toContain(forge.githubToken);
        expect(text).not.toContain(forge.gitlabToken);
      }
    } finally {
      await forge.close();
    }
  });

  it('contains nothing new on a second scan: the same values are keywarden’s, revoked already, contained before', async () => {
    const { hits, containments } = JSON.parse(second.stdout) as {
      hits: { status: string; severity: string }[];
      containments: unknown[];
    };
    // Each reported as contained by its first sighting's campaign, none contained again.
    expect(containments.map((c) => (c as { status: string }).status)).toEqual(
      Array(5).fill('already-contained'),
    );
    expect(second.stderr).toMatch(
      /app-ci-reader: already contained \(EXPOSURE-[0-9a-f]{12}, campaign EXPOSURE-/,
    );
    const managed = hits.filter((h) => h.status === 'managed');
    expect(managed.length).toBeGreaterThanOrEqual(5);
    expect(new Set(managed.map((h) => h.severity))).toEqual(new Set(['low']));
  });
});
