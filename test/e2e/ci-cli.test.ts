/**
 * What pipelines use, end to end against the local runtime (`keywarden dev up`): the README's
 * `keywarden ci credentials` / `keywarden ci end` lines run in a shell as a runner would, the
 * GitHub Action's built main and post steps with the README workflow's inputs, and the GitLab
 * template's before_script / after_script with the README job's variables, and the GitHub and
 * GitLab job-completion webhooks (signed, unsigned, wrongly signed). Job tokens come from
 * local OIDC issuers (GitHub's and GitLab's shapes) that the inventory trusts; what is issued is
 * checked on OpenBao (the token works, then is dead) and moto (the deny on the role).
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateRoleCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
} from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { awsClientConfig } from '../../functions/adapters/aws/clients.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { signGithubPayload } from '../../functions/api/ci-webhooks.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { REPO_ROOT, type StackEndpoints } from '../../scripts/local-stack.ts';
import { keywardenEntry } from '../support/cli-entry.ts';
import { printed, readmeActionInputs, readmeExample, runStep, stateEnv } from '../support/github-runner.ts';
import { LocalOidcIssuer } from '../support/oidc-issuer.ts';
import { keywardenAsync, runtimeUrlOf, stackOf, vaultTokenStatus } from './breakglass-support.ts';

interface Shell {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a POSIX shell script (a runner's step), asynchronously: the issuers answer from this process. */
function sh(script: string, env: Record<string, string>, cwd: string): Promise<Shell> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', script], { cwd, env, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
    });
  });
}

describe('CI job credentials from a pipeline: keywarden ci, the GitHub Action, the GitLab template', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-ci-'));
  const work = mkdtempSync(join(tmpdir(), 'kw-ci-job-'));
  const bin = join(work, 'bin');
  const secrets = new Set<string>();
  let github: LocalOidcIssuer;
  let gitlab: LocalOidcIssuer;
  let stack: StackEndpoints;
  let url: string;
  let iam: IAMClient;
  // From the README's ci section.
  let repositoryId = '';
  let projectId = '';
  let roleArn = '';
  let roleName = '';

  /** A runner's environment: PATH with `keywarden` on it, and nothing of this machine's keywarden or AWS settings. */
  const runnerEnv = (extra: Record<string, string>) => ({
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    HOME: work,
    KEYWARDEN_HOME: home,
    ...extra,
  });

  beforeAll(async () => {
    github = await new LocalOidcIssuer({ platform: 'github' }).start();
    gitlab = await new LocalOidcIssuer({ platform: 'gitlab' }).start();
    const up = await keywardenAsync(['dev', 'up'], { KEYWARDEN_HOME: home });
    expect(up.code, up.stderr).toBe(0);
    stack = stackOf(home);
    url = runtimeUrlOf(home);
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    iam = new IAMClient(awsClientConfig(config.aws));
    // The README's ci section, its issuers pointed at the two local ones (their iss and keys).
    const ci = parseYaml(readmeExample('ci:\n')).ci as {
      issuers: { name: string }[];
      grants: { name: string; claims: Record<string, unknown>; aws?: { roleArn: string } }[];
    };
    const local: Record<string, LocalOidcIssuer> = { github, gitlab };
    for (const issuer of ci.issuers) {
      const at = local[issuer.name];
      if (!at)
        throw new Error(`the README's ci section names an issuer the spec does not run: ${issuer.name}`);
      Object.assign(issuer, { issuer: at.url, jwksUrl: at.jwksUrl });
    }
    const byName = (name: string) => {
      const grant = ci.grants.find((g) => g.name === name);
      if (!grant) throw new Error(`the README's ci section has no grant ${name}`);
      return grant;
    };
    repositoryId = String(byName('release-publish').claims.repository_id);
    projectId = String(byName('gitlab-publish').claims.project_id);
    roleArn = byName('release-publish').aws?.roleArn ?? '';
    roleName = roleArn.split('/').at(-1) ?? '';
    await iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        Path: '/ci/',
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'sts:AssumeRole' }],
        }),
      }),
    );
    const inventory = { version: 1, identities: [], ci };
    const file = join(work, 'identities.yaml');
    writeFileSync(file, JSON.stringify(inventory));
    const sync = await keywardenAsync(['inventory', 'sync', file], { KEYWARDEN_HOME: home });
    expect(sync.code, sync.stderr).toBe(0);
    // `keywarden` on the runner's PATH, as `npm install -g` would put it.
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'keywarden'),
      `#!/bin/sh\nexec "${process.execPath}" "${keywardenEntry()}" "$@"\n`,
    );
    chmodSync(join(bin, 'keywarden'), 0o755);
  });

  afterAll(async () => {
    await github?.stop();
    await gitlab?.stop();
    const down = await keywardenAsync(['dev', 'down'], { KEYWARDEN_HOME: home });
    expect(down.code, down.stderr).toBe(0);
  });

  it("the README's keywarden ci lines: eval the credentials, use them, end them with a second token", async () => {
    // prepare: the README's two lines, then a use of the token and what is left afterwards
    const [credentialsLine, endLine] = readmeExample('eval "$(keywarden ci credentials')
      .split('\n')
      .filter(Boolean);
    expect(credentialsLine).toBeDefined();
    const claims = github.githubClaims({
      repository_id: repositoryId,
      aud: 'keywarden',
      environment: 'prod',
    });
    const env = runnerEnv({
      KEYWARDEN_URL: url,
      KEYWARDEN_ID_TOKEN: await github.mint(claims),
      KEYWARDEN_END_TOKEN: await github.mint({ ...claims, jti: randomUUID() }),
    });
    const script = [
      'set -e',
      credentialsLine,
      `printf 'vault=%s\\nid=%s\\nkey=%s\\n' "$VAULT_TOKEN" "$KEYWARDEN_CI_ID" "$AWS_ACCESS_KEY_ID" > "${join(work, 'issued')}"`,
      endLine,
    ].join('\n');

    // act
    const job = await sh(script, env, work);

    // assess
    expect(job.code, job.stderr).toBe(0);
    const issued = Object.fromEntries(
      readFileSync(join(work, 'issued'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split('=', 2) as [string, string]),
    );
    expect(issued.vault).toMatch(/^s\./);
    expect(issued.key).toMatch(/^ASIA|^AKIA|^[A-Z0-9]{16,}$/);
    secrets.add(issued.vault ?? '');
    expect(job.stderr).toContain(`keywarden: exchange ${issued.id} ended`);
    expect(await vaultTokenStatus(stack, issued.vault ?? '')).toBe(403);
    const policies = await iam.send(new ListRolePoliciesCommand({ RoleName: roleName }));
    const deny = await Promise.all(
      (policies.PolicyNames ?? []).map((name) =>
        iam.send(new GetRolePolicyCommand({ RoleName: roleName, PolicyName: name })),
      ),
    );
    expect(deny.map((p) => decodeURIComponent(p.PolicyDocument ?? '')).join('\n')).toContain(
      'aws:SourceIdentity',
    );
    for (const secret of secrets) expect(job.stderr).not.toContain(secret);
  });

  it('keywarden ci credentials refuses a job on another ref, naming the claim; and a replayed token', async () => {
    // prepare
    const onBranch = await github.mint(
      github.githubClaims({
        repository_id: repositoryId,
        aud: 'keywarden',
        environment: 'prod',
        ref: 'refs/heads/feature',
      }),
    );
    const good = await github.mint(
      github.githubClaims({ repository_id: repositoryId, aud: 'keywarden', environment: 'prod' }),
    );
    const credentials = (token: string) =>
      sh(
        'keywarden ci credentials --grant release-publish --format json',
        runnerEnv({ KEYWARDEN_URL: url, KEYWARDEN_ID_TOKEN: token }),
        work,
      );

    // act
    const wrongRef = await credentials(onBranch);
    const first = await credentials(good);
    const replayed = await credentials(good);

    // assess
    expect(wrongRef.code).toBe(1);
    expect(wrongRef.stderr).toMatch(/refused \(HTTP 403, claim-mismatch\): .*claim ref/);
    expect(wrongRef.stdout).toBe('');
    expect(first.code, first.stderr).toBe(0);
    const answer = JSON.parse(first.stdout) as { id: string; vault: { token: string } };
    secrets.add(answer.vault.token);
    expect(replayed.code).toBe(1);
    expect(replayed.stderr).toMatch(/refused \(HTTP 403, replayed\)/);
    for (const run of [wrongRef, replayed]) {
      expect(run.stderr).not.toContain(onBranch);
      expect(run.stderr).not.toContain(good);
    }
    // the exchange stays live until its end
    const end = await sh(
      `keywarden ci end ${answer.id} --token-env NEXT`,
      runnerEnv({
        KEYWARDEN_URL: url,
        NEXT: await github.mint(
          github.githubClaims({ repository_id: repositoryId, aud: 'keywarden', environment: 'prod' }),
        ),
      }),
      work,
    );
    // another job's token may not end it
    expect(end.code).toBe(1);
    expect(end.stderr).toMatch(/not-same-job/);
    expect(await vaultTokenStatus(stack, answer.vault.token)).toBe(200);
  });

  it('keywarden ci on a GitHub runner asks the runner for each token (no KEYWARDEN_ID_TOKEN): credentials, then end', async () => {
    // prepare
    const env = runnerEnv({
      KEYWARDEN_URL: url,
      ...github.runnerEnv(github.githubClaims({ repository_id: repositoryId, environment: 'prod' })),
    });
    const tokensBefore = github.served.tokens;

    // act
    const issued = await sh('keywarden ci credentials --grant release-publish --format json', env, work);
    const answer = JSON.parse(issued.stdout || '{}') as { id: string; vault?: { token: string } };
    secrets.add(answer.vault?.token ?? '');
    const ended = await sh(`keywarden ci end ${answer.id}`, env, work);

    // assess
    expect(issued.code, issued.stderr).toBe(0);
    expect(ended.code, ended.stderr).toBe(0);
    expect(github.served.tokens - tokensBefore).toBe(2);
    expect(await vaultTokenStatus(stack, answer.vault?.token ?? '')).toBe(403);
    for (const secret of secrets) expect(`${issued.stderr}${ended.stderr}`).not.toContain(secret);
  });

  it("the GitHub Action's main and post steps with the README workflow's inputs: credentials that work, then are dead", async () => {
    // prepare
    const runner = github.runnerEnv(
      github.githubClaims({ repository_id: repositoryId, environment: 'prod' }),
    );
    const { inputs } = readmeActionInputs({
      'vars.KEYWARDEN_URL': url,
      'steps.build.outputs.digest': `sha256:${randomBytes(32).toString('hex')}`,
    });
    const workspace = mkdtempSync(join(tmpdir(), 'kw-ci-action-'));

    // act
    const main = await runStep('main', workspace, { ...inputs, ...runner });

    // assess: exported to the job, masked, and the token works on OpenBao
    expect(main.code, main.stdout).toBe(0);
    const vaultToken = main.env.VAULT_TOKEN ?? '';
    secrets.add(vaultToken);
    for (const name of ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) secrets.add(main.env[name] ?? '');
    expect(main.env.VAULT_ADDR).toBe(stack.vault.addr);
    expect(main.env.AWS_ACCESS_KEY_ID).toBeTruthy();
    expect(main.stdout).toContain(`::add-mask::${vaultToken}`);
    for (const line of printed(main)) for (const secret of secrets) expect(line).not.toContain(secret);
    expect(await vaultTokenStatus(stack, vaultToken)).toBe(200);

    // act: the post step
    const post = await runStep('post', workspace, { ...inputs, ...runner, ...stateEnv(main.state) });

    // assess
    expect(post.code, post.stdout).toBe(0);
    expect(post.stdout).toContain(`keywarden: exchange ${main.env.KEYWARDEN_CI_ID} ended`);
    expect(post.stdout).not.toContain('::warning::');
    expect(await vaultTokenStatus(stack, vaultToken)).toBe(403);
  });

  it("the GitLab template with the README job's variables: before_script exchanges, the script uses, after_script ends", async () => {
    // prepare: the template's job and the README's job that extends it
    const template = parseYaml(
      readFileSync(join(REPO_ROOT, 'ci', 'gitlab', 'keywarden.gitlab-ci.yml'), 'utf8'),
    ) as Record<
      string,
      { variables: Record<string, string>; before_script: string[]; after_script: string[] }
    >;
    const base = template['.keywarden-credentials'];
    const readmeJob = (
      parseYaml(readmeExample('# .gitlab-ci.yml')) as Record<
        string,
        { extends?: string; variables: Record<string, string> }
      >
    ).publish;
    if (!base || !readmeJob) throw new Error('the template or the README job is missing');
    expect(readmeJob.extends).toBe('.keywarden-credentials');
    const claims = gitlab.gitlabClaims({ project_id: projectId, aud: 'keywarden' });
    const variables = {
      ...base.variables,
      ...readmeJob.variables,
      KEYWARDEN_URL: url,
      // GitLab mints each id_tokens entry at the job's start.
      KEYWARDEN_ID_TOKEN: await gitlab.mint(claims),
      KEYWARDEN_END_TOKEN: await gitlab.mint({ ...claims, jti: randomUUID() }),
    };
    const dir = mkdtempSync(join(tmpdir(), 'kw-ci-gitlab-'));
    const env = runnerEnv(variables);
    const use = `printf '%s' "$VAULT_TOKEN" > issued-token`;

    // act: before_script and script share a shell; after_script runs in a new one
    const job = await sh([...base.before_script, use].join('\n'), env, dir);
    expect(job.code, job.stderr).toBe(0);
    const issued = readFileSync(join(dir, 'issued-token'), 'utf8');
    secrets.add(issued);
    const alive = await vaultTokenStatus(stack, issued);
    const after = await sh(base.after_script.join('\n'), env, dir);

    // assess
    expect(job.code, job.stderr).toBe(0);
    expect(job.stdout).toMatch(
      /^keywarden: grant gitlab-publish issued until .* \(exchange \S+, correlation ci-gitlab-/m,
    );
    expect(alive).toBe(200);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toMatch(/^keywarden: exchange \S+ ended$/m);
    expect(await vaultTokenStatus(stack, issued)).toBe(403);
    for (const secret of secrets)
      expect(`${job.stdout}${job.stderr}${after.stdout}${after.stderr}`).not.toContain(secret);
  });

  it('the GitLab template fails the job with the claim keywarden names, and its after_script has nothing to end', async () => {
    // prepare: a pipeline on an unprotected branch
    const template = parseYaml(
      readFileSync(join(REPO_ROOT, 'ci', 'gitlab', 'keywarden.gitlab-ci.yml'), 'utf8'),
    ) as Record<
      string,
      { variables: Record<string, string>; before_script: string[]; after_script: string[] }
    >;
    const base = template['.keywarden-credentials'];
    if (!base) throw new Error('the template is missing');
    const token = await gitlab.mint(
      gitlab.gitlabClaims({ project_id: projectId, aud: 'keywarden', ref_protected: 'false' }),
    );
    const env = runnerEnv({
      ...base.variables,
      KEYWARDEN_URL: url,
      KEYWARDEN_GRANT: 'gitlab-publish',
      KEYWARDEN_ID_TOKEN: token,
      KEYWARDEN_END_TOKEN: token,
    });
    const dir = mkdtempSync(join(tmpdir(), 'kw-ci-gitlab-'));

    // act
    const job = await sh(base.before_script.join('\n'), env, dir);
    const after = await sh(base.after_script.join('\n'), env, dir);

    // assess
    expect(job.code).toBe(1);
    expect(job.stderr).toMatch(/keywarden refused the exchange \(HTTP 403\): .*ref_protected/);
    expect(job.stderr).not.toContain(token);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain('nothing to end');
  });

  it('the webhooks: a signed workflow_job completed and a GitLab Job Hook end the job; unsigned or wrongly signed ones change nothing', async () => {
    // prepare: a GitHub job whose post step never runs, and a GitLab job whose after_script never runs
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    const githubSecret = new SecretValue(config.ci.githubWebhookSecret ?? '');
    const gitlabSecret = config.ci.gitlabWebhookSecret ?? '';
    const claims = github.githubClaims({ repository_id: repositoryId, environment: 'prod' });
    const { inputs } = readmeActionInputs({
      'vars.KEYWARDEN_URL': url,
      'steps.build.outputs.digest': `sha256:${randomBytes(32).toString('hex')}`,
    });
    const main = await runStep('main', mkdtempSync(join(tmpdir(), 'kw-ci-hook-')), {
      ...inputs,
      ...github.runnerEnv(claims),
    });
    expect(main.code, main.stdout).toBe(0);
    const githubToken = main.env.VAULT_TOKEN ?? '';
    const template = parseYaml(
      readFileSync(join(REPO_ROOT, 'ci', 'gitlab', 'keywarden.gitlab-ci.yml'), 'utf8'),
    ) as Record<string, { variables: Record<string, string>; before_script: string[] }>;
    const base = template['.keywarden-credentials'];
    if (!base) throw new Error('the template is missing');
    const gitlabClaims = gitlab.gitlabClaims({ project_id: projectId, aud: 'keywarden' });
    const dir = mkdtempSync(join(tmpdir(), 'kw-ci-hook-'));
    const job = await sh(
      [...base.before_script, `printf '%s' "$VAULT_TOKEN" > issued-token`].join('\n'),
      runnerEnv({
        ...base.variables,
        KEYWARDEN_URL: url,
        KEYWARDEN_GRANT: 'gitlab-publish',
        KEYWARDEN_ID_TOKEN: await gitlab.mint(gitlabClaims),
      }),
      dir,
    );
    expect(job.code, job.stderr).toBe(0);
    const gitlabToken = readFileSync(join(dir, 'issued-token'), 'utf8');
    const workflowJob = JSON.stringify({
      action: 'completed',
      workflow_job: {
        id: Number(claims.check_run_id),
        run_id: Number(claims.run_id),
        run_attempt: Number(claims.run_attempt),
        check_run_url: `https://api.github.com/repos/octo-org/octo-repo/check-runs/${String(claims.check_run_id)}`,
        status: 'completed',
        conclusion: 'cancelled',
        name: 'publish',
      },
      repository: { id: Number(repositoryId), full_name: 'octo-org/octo-repo' },
    });
    const jobHook = JSON.stringify({
      object_kind: 'build',
      build_id: Number(gitlabClaims.job_id),
      build_status: 'canceled',
      build_name: 'publish',
      project_id: Number(projectId),
      pipeline_id: Number(gitlabClaims.pipeline_id),
    });
    const deliver = async (platform: 'github' | 'gitlab', body: string, headers: Record<string, string>) => {
      const response = await fetch(`${url}/ci/webhooks/${platform}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
      return { status: response.status, body: (await response.json()) as { ended?: number } };
    };
    const otherSecret = new SecretValue(randomBytes(20).toString('hex'));

    // act: deliveries that are not GitHub's or GitLab's
    const refused = [
      await deliver('github', workflowJob, { 'x-github-event': 'workflow_job' }),
      await deliver('github', workflowJob, {
        'x-github-event': 'workflow_job',
        'x-hub-signature-256': signGithubPayload(workflowJob, otherSecret),
      }),
      await deliver('gitlab', jobHook, { 'x-gitlab-event': 'Job Hook' }),
      await deliver('gitlab', jobHook, {
        'x-gitlab-event': 'Job Hook',
        'x-gitlab-token': otherSecret.reveal(),
      }),
    ];

    // assess: refused, and both jobs' credentials still live
    expect(refused.map((r) => r.status)).toEqual([401, 401, 401, 401]);
    expect(await vaultTokenStatus(stack, githubToken)).toBe(200);
    expect(await vaultTokenStatus(stack, gitlabToken)).toBe(200);

    // act: the real deliveries
    const fromGithub = await deliver('github', workflowJob, {
      'x-github-event': 'workflow_job',
      'x-hub-signature-256': signGithubPayload(workflowJob, githubSecret),
    });
    const fromGitlab = await deliver('gitlab', jobHook, {
      'x-gitlab-event': 'Job Hook',
      'x-gitlab-token': gitlabSecret,
    });

    // assess
    expect(fromGithub).toEqual({ status: 200, body: { ended: 1 } });
    expect(fromGitlab).toEqual({ status: 200, body: { ended: 1 } });
    expect(await vaultTokenStatus(stack, githubToken)).toBe(403);
    expect(await vaultTokenStatus(stack, gitlabToken)).toBe(403);
  });
});
