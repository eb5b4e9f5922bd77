/**
 * Where leaks happen, read through the platforms' APIs: GitHub Actions run and job logs (the
 * redirect to a short-lived URL, the zip of a run's logs), GitLab job traces and CI/CD variables
 * (all pages), against a local server playing those documented endpoints
 * (test/support/forge-server.ts). No error may hold a token, a signed URL or a line of a log.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { finishedJobLog, forgeSettingsFromEnv } from '../../functions/adapters/scan/finished-job-log.ts';
import { ForgeError } from '../../functions/adapters/scan/forge-http.ts';
import {
  fetchGithubJobLog,
  fetchGithubRunLogs,
  parseGithubRun,
} from '../../functions/adapters/scan/github-logs.ts';
import {
  fetchGitlabJobTrace,
  listGitlabVariables,
  parseGitlabJob,
} from '../../functions/adapters/scan/gitlab-api.ts';
import { auditCiVariables } from '../../functions/core/ci-variable-audit.ts';
import { type ForgeServer, randomToken, startForgeServer } from '../support/forge-server.ts';
import { rejection } from '../support/rejection.ts';

/** A credential-looking value made at run time. */
const planted = (prefix: string): string => `${prefix}${randomBytes(18).toString('base64url')}`;

/** Retries that do not make a spec wait. */
const fast = { retry: { baseDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 } };

let forge: ForgeServer;

beforeAll(async () => {
  forge = await startForgeServer();
});
afterAll(async () => {
  await forge.close();
});
beforeEach(() => {
  forge.requests.length = 0;
  forge.redirectBase = forge.url;
  forge.blobTtlMs = 60_000;
  forge.echoTokenIn401 = false;
  forge.gitlabRole = 'maintainer';
});

const github = () => ({ api: forge.url, token: forge.githubToken, limits: fast });
const gitlab = () => ({ url: forge.url, token: forge.gitlabToken, limits: fast });

/** The message of what `promise` rejects with, checked to hold no secret. */
async function failure(promise: Promise<unknown>, secrets: readonly string[]): Promise<ForgeError> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(ForgeError);
  const text = `${(error as Error).message} ${JSON.stringify(error)}`;
  for (const secret of secrets) expect(text).not.toContain(secret);
  return error as ForgeError;
}

describe('github: a run’s logs through the redirect and the zip', () => {
  it('gives one text per job, named by the run’s jobs, read from the archive the 302 points to', async () => {
    // prepare: three jobs, one of them with a "/" in its name, one archived as steps only
    const secrets = [planted('hvs.'), planted('hvs.'), planted('hvs.')];
    forge.addGithubRun({
      owner: 'octo',
      repo: 'app',
      runId: 1001,
      jobs: [
        { id: 11, name: 'build', log: `compiling\nexport VAULT_TOKEN=${secrets[0]}\ndone\n` },
        { id: 12, name: 'test / unit', log: `running specs\ntoken ${secrets[1]}\n` },
        {
          id: 13,
          name: 'deploy: prod',
          log: '',
          stepsOnly: true,
          steps: [
            { name: 'Set up job', log: 'runner 2.330\n' },
            { name: 'Deploy', log: `using ${secrets[2]}\n` },
          ],
        },
      ],
    });

    // act
    const logs = await fetchGithubRunLogs({ ...github(), owner: 'octo', repo: 'app', runId: 1001 });

    // assess: every job, located by name and id, its secret in its text
    expect(logs.map((log) => log.source)).toEqual([
      { kind: 'github-run', location: 'octo/app/runs/1001/jobs/build (job 11)' },
      { kind: 'github-run', location: 'octo/app/runs/1001/jobs/test / unit (job 12)' },
      { kind: 'github-run', location: 'octo/app/runs/1001/jobs/deploy: prod (job 13)' },
    ]);
    for (const [index, log] of logs.entries()) expect(log.text).toContain(secrets[index]);
    expect(logs[2]?.text.indexOf('runner 2.330')).toBeLessThan(logs[2]?.text.indexOf('using ') ?? 0);
    expect(logs.every((log) => log.note === undefined)).toBe(true);
    // the API was asked with the token and the API version; the short-lived URL without the token
    const api = forge.requests.filter((request) => request.path.startsWith('/repos/'));
    expect(api.every((request) => request.bearer && request.apiVersion === '2022-11-28')).toBe(true);
    const downloads = forge.requests.filter((request) => request.path.startsWith('/_blob/'));
    expect(downloads).toHaveLength(1);
    expect(downloads[0]?.bearer).toBe(false);
  });

  it('reads every page of a run’s jobs (100 a page)', async () => {
    // prepare: 120 jobs
    const jobs = Array.from({ length: 120 }, (_, index) => ({
      id: 5000 + index,
      name: `shard ${index}`,
      log: `shard ${index} ok\n`,
    }));
    forge.addGithubRun({ owner: 'octo', repo: 'wide', runId: 1002, jobs });

    // act
    const logs = await fetchGithubRunLogs({ ...github(), owner: 'octo', repo: 'wide', runId: 1002 });

    // assess
    expect(logs).toHaveLength(120);
    expect(logs[119]?.source.location).toBe('octo/wide/runs/1002/jobs/shard 119 (job 5119)');
    const pages = forge.requests.filter((request) => request.path.endsWith('/jobs')).map((r) => r.query.page);
    expect(pages).toEqual(['1', '2']);
  });

  it('reads a job log over the limit from the job’s endpoint, keeps its start and says so', async () => {
    // prepare: one small job, one of 5 000 bytes, a limit of 1 000
    const secret = planted('hvs.');
    forge.addGithubRun({
      owner: 'octo',
      repo: 'big',
      runId: 1003,
      jobs: [
        { id: 21, name: 'small', log: 'fine\n' },
        { id: 22, name: 'chatty', log: `${secret}\n${'x'.repeat(4_999)}` },
      ],
    });

    // act
    const logs = await fetchGithubRunLogs({
      ...github(),
      limits: { ...fast, maxLogBytes: 1_000 },
      owner: 'octo',
      repo: 'big',
      runId: 1003,
    });

    // assess
    const chatty = logs.find((log) => log.source.location.endsWith('(job 22)'));
    expect(chatty?.text).toHaveLength(1_000);
    expect(chatty?.text).toContain(secret);
    expect(chatty?.note).toBe('the log is 5028 bytes: only its first 1000 bytes were read and scanned');
    expect(logs.find((log) => log.source.location.endsWith('(job 21)'))?.note).toBeUndefined();
    expect(forge.requests.some((request) => request.path === '/repos/octo/big/actions/jobs/22/logs')).toBe(
      true,
    );
  });

  it('reads each job from its own endpoint when the archive is over the run’s limit', async () => {
    // prepare: an archive of some kilobytes, a run limit of 512 bytes
    const secret = planted('hvs.');
    forge.addGithubRun({
      owner: 'octo',
      repo: 'huge',
      runId: 1005,
      jobs: [
        { id: 71, name: 'one', log: `${randomBytes(2_048).toString('base64')}\n` },
        { id: 72, name: 'two', log: `token ${secret}\n` },
      ],
    });

    // act
    const logs = await fetchGithubRunLogs({
      ...github(),
      limits: { ...fast, maxRunBytes: 512 },
      owner: 'octo',
      repo: 'huge',
      runId: 1005,
    });

    // assess
    expect(logs.map((log) => log.source.location)).toEqual([
      'octo/huge/runs/1005/jobs/one (job 71)',
      'octo/huge/runs/1005/jobs/two (job 72)',
    ]);
    expect(logs[1]?.text).toContain(secret);
    const jobLogs = forge.requests.filter((request) => /\/actions\/jobs\/\d+\/logs$/.test(request.path));
    expect(jobLogs.map((request) => request.path)).toEqual([
      '/repos/octo/huge/actions/jobs/71/logs',
      '/repos/octo/huge/actions/jobs/72/logs',
    ]);
  });

  it('scans what the archive holds under a name no listed job has, named as the archive names it', async () => {
    // prepare
    const secret = planted('hvs.');
    forge.addGithubRun({
      owner: 'octo',
      repo: 'odd',
      runId: 1004,
      jobs: [{ id: 31, name: 'build', log: 'ok\n' }],
      extraFiles: { '7_renamed job.txt': `leak ${secret}\n` },
    });

    // act
    const logs = await fetchGithubRunLogs({ ...github(), owner: 'octo', repo: 'odd', runId: 1004 });

    // assess
    expect(logs.map((log) => log.source.location)).toEqual([
      'octo/odd/runs/1004/jobs/build (job 31)',
      'octo/odd/runs/1004/jobs/renamed job',
    ]);
    expect(logs[1]?.text).toContain(secret);
  });
});

describe('github: one job’s log', () => {
  it('follows the redirect to the text and names the job by its run and name', async () => {
    // prepare
    const secret = planted('hvs.');
    forge.addGithubRun({
      owner: 'octo',
      repo: 'app',
      runId: 1010,
      jobs: [{ id: 41, name: 'release', log: `pushing with ${secret}\n` }],
    });

    // act
    const log = await fetchGithubJobLog({ ...github(), owner: 'octo', repo: 'app', jobId: 41 });

    // assess
    expect(log.source).toEqual({ kind: 'github-run', location: 'octo/app/runs/1010/jobs/release (job 41)' });
    expect(log.text).toContain(secret);
    expect(forge.requests.find((request) => request.path.startsWith('/_blob/'))?.bearer).toBe(false);
  });

  it('refuses a redirect to plain http off loopback, naming only the host', async () => {
    // prepare
    forge.addGithubRun({ owner: 'octo', repo: 'app', runId: 1011, jobs: [{ id: 42, name: 'x', log: 'x' }] });
    forge.redirectBase = 'http://logs.example.net';

    // act
    const error = await failure(fetchGithubJobLog({ ...github(), owner: 'octo', repo: 'app', jobId: 42 }), [
      forge.githubToken,
      'sig=',
      '_blob',
    ]);

    // assess
    expect(error.message).toBe(
      "refused to follow GitHub's redirect for the log of job 42 of octo/app to http://logs.example.net: expected an https URL (http only on loopback)",
    );
    expect(error.retryable).toBe(false);
  });

  it('tries again when the short-lived URL has expired, then says so', async () => {
    // prepare: every download URL is already expired
    forge.addGithubRun({ owner: 'octo', repo: 'app', runId: 1012, jobs: [{ id: 43, name: 'x', log: 'x' }] });
    forge.blobTtlMs = -1;

    // act
    const error = await failure(fetchGithubJobLog({ ...github(), owner: 'octo', repo: 'app', jobId: 43 }), [
      forge.githubToken,
      'sig=',
    ]);

    // assess: three whole exchanges (API call and download), each with a fresh URL
    expect(error.message).toBe(
      `the download URL GitHub gave for the log of job 43 of octo/app (http://${new URL(forge.url).host}) answered 403; it lives about a minute, try again`,
    );
    expect(error.retryable).toBe(true);
    expect(
      forge.requests.filter((request) => request.path === '/repos/octo/app/actions/jobs/43/logs'),
    ).toHaveLength(3);
  });
});

describe('github: failures say what to do and hold no secret', () => {
  it('401: the token may not read the Actions logs (even when the server echoes the token)', async () => {
    // prepare
    forge.echoTokenIn401 = true;
    const wrong = randomToken('gh-wrong-');

    // act
    const error = await failure(
      fetchGithubRunLogs({ ...github(), token: wrong, owner: 'octo', repo: 'app', runId: 1001 }),
      [wrong],
    );

    // assess
    expect(error.status).toBe(401);
    expect(error.message).toBe(
      'GitHub answered 401 to the request for the jobs of run 1001 of octo/app (it says "Bad credentials: Bearer [token]"): the token in GITHUB_TOKEN may not read the Actions logs of octo/app (a fine-grained token with Actions: read, or a classic token with repo scope); it may be expired or revoked, or not a GitHub token',
    );
  });

  it('404: names the run and the repository', async () => {
    const error = await failure(fetchGithubRunLogs({ ...github(), owner: 'octo', repo: 'app', runId: 999 }), [
      forge.githubToken,
    ]);
    expect(error.message).toBe(
      'GitHub has no workflow run 999 in octo/app (it says "Not Found"), or the token in GITHUB_TOKEN cannot see it; check the names and the token\'s access',
    );
  });

  it('5xx: tried again, and answered once it passes', async () => {
    // prepare: the jobs listing fails twice, the archive once
    forge.addGithubRun({
      owner: 'octo',
      repo: 'flaky',
      runId: 1020,
      jobs: [{ id: 51, name: 'a', log: 'ok' }],
    });
    forge.fail(/\/runs\/1020\/jobs$/, 502, 2);
    forge.fail(/\/runs\/1020\/logs$/, 503, 1);

    // act
    const logs = await fetchGithubRunLogs({ ...github(), owner: 'octo', repo: 'flaky', runId: 1020 });

    // assess
    expect(logs.map((log) => log.text)).toEqual(['ok']);
  });

  it('5xx that does not pass: retryable, says to try later', async () => {
    forge.fail(/\/runs\/1021\/jobs$/, 503, 10);
    const error = await failure(
      fetchGithubRunLogs({ ...github(), owner: 'octo', repo: 'app', runId: 1021 }),
      [forge.githubToken],
    );
    expect(error.message).toBe(
      'GitHub answered 503 to the request for the jobs of run 1021 of octo/app (it says "503 from the forge server"); try again later',
    );
    expect(error.retryable).toBe(true);
  });

  it('a rate limit: retryable later, not hammered', async () => {
    forge.fail(/\/runs\/1022\/jobs$/, 403, 1, {
      headers: { 'x-ratelimit-remaining': '0', 'retry-after': '60' },
    });
    const error = await failure(
      fetchGithubRunLogs({ ...github(), owner: 'octo', repo: 'app', runId: 1022 }),
      [forge.githubToken],
    );
    expect(error.message).toBe(
      'GitHub limited the rate of requests (HTTP 403) when asked for the jobs of run 1022 of octo/app; try again after 60 s',
    );
    expect([error.retryable, error.rateLimited]).toEqual([true, true]);
    expect(forge.requests.filter((request) => request.path.endsWith('/runs/1022/jobs'))).toHaveLength(1);
  });

  it('no answer at all: retryable, names the address only', async () => {
    const closed = await startForgeServer();
    const api = closed.url;
    await closed.close();
    const error = await failure(
      fetchGithubRunLogs({
        api,
        token: forge.githubToken,
        limits: fast,
        owner: 'octo',
        repo: 'app',
        runId: 1,
      }),
      [forge.githubToken],
    );
    expect(error.message).toBe(
      `could not reach GitHub at ${api} for the jobs of run 1 of octo/app: ECONNREFUSED`,
    );
    expect(error.retryable).toBe(true);
  });

  it('refuses an API root that would send the token in clear, and bad names, before any request', async () => {
    await expect(
      fetchGithubRunLogs({
        ...github(),
        api: 'http://api.example.net',
        owner: 'octo',
        repo: 'app',
        runId: 1,
      }),
    ).rejects.toThrow(
      'GitHub: expected --github-api to be an https URL (http only on loopback) without credentials or query, got http://api.example.net',
    );
    await expect(fetchGithubRunLogs({ ...github(), owner: 'octo', repo: '../x', runId: 1 })).rejects.toThrow(
      'expected a GitHub repository as OWNER/REPO',
    );
    expect(() => parseGithubRun('octo/app')).toThrow(
      'expected a GitHub run as OWNER/REPO/RUN_ID, got "octo/app"',
    );
    expect(parseGithubRun('octo/app/77')).toEqual({ owner: 'octo', repo: 'app', runId: '77' });
    expect(forge.requests).toHaveLength(0);
  });
});

describe('gitlab: a job’s trace', () => {
  it('reads the log as text, the project path encoded as one segment, with PRIVATE-TOKEN', async () => {
    // prepare
    const secret = planted('glpat-');
    forge.setGitlabTrace('group/sub/project', 789, `$ deploy\nGITLAB_TOKEN=${secret}\n`);

    // act
    const log = await fetchGitlabJobTrace({ ...gitlab(), ...parseGitlabJob('group/sub/project/789') });

    // assess
    expect(log.source).toEqual({ kind: 'gitlab-job', location: 'group/sub/project/jobs/789' });
    expect(log.text).toContain(secret);
    expect(forge.requests.map((request) => [request.path, request.privateToken, request.bearer])).toEqual([
      ['/api/v4/projects/group%2Fsub%2Fproject/jobs/789/trace', true, false],
    ]);
  });

  it('truncates a trace over the limit with a note', async () => {
    forge.setGitlabTrace('group/project', 790, 'y'.repeat(3_000));
    const log = await fetchGitlabJobTrace({
      ...gitlab(),
      limits: { ...fast, maxLogBytes: 2_048 },
      project: 'group/project',
      jobId: 790,
    });
    expect(log.text).toHaveLength(2_048);
    expect(log.note).toBe('the log is longer: only its first 2048 bytes were read and scanned');
  });

  it('401, 404 and 5xx say what to do and hold no token', async () => {
    // 401, with a server that echoes the token
    forge.echoTokenIn401 = true;
    const wrong = randomToken('gl-wrong-');
    let error = await failure(
      fetchGitlabJobTrace({ ...gitlab(), token: wrong, project: 'group/project', jobId: 1 }),
      [wrong],
    );
    expect(error.message).toBe(
      'GitLab answered 401 to the request for the log of job 1 of group/project (it says "401 Unauthorized: [token]"): the token in GITLAB_TOKEN may not read the jobs of group/project (scope read_api, and at least the Reporter role on a private project); it may be expired or revoked, or not a GitLab token',
    );
    // 404
    error = await failure(fetchGitlabJobTrace({ ...gitlab(), project: 'nobody/nothing', jobId: 2 }), [
      forge.gitlabToken,
    ]);
    expect(error.message).toBe(
      'GitLab has no job 2 with a log in project nobody/nothing (it says "404 Project Not Found"), or the token in GITLAB_TOKEN cannot see it; check the names and the token\'s access',
    );
    // 5xx, passing after two
    forge.setGitlabTrace('group/project', 791, 'fine');
    forge.fail(/\/jobs\/791\/trace$/, 500, 2);
    const log = await fetchGitlabJobTrace({ ...gitlab(), project: 'group/project', jobId: 791 });
    expect(log.text).toBe('fine');
  });
});

describe('gitlab: a project’s CI/CD variables', () => {
  it('lists every page (X-Next-Page), each value a SecretValue, hidden ones without a value', async () => {
    // prepare: 250 variables, one hidden, one scoped
    const list = Array.from({ length: 250 }, (_, index) => ({
      key: `VAR_${index}`,
      value: `value-${index}`,
      masked: index % 2 === 0,
      protected: index % 3 === 0,
    }));
    list.push({ key: 'HIDDEN', value: planted('x'), masked: true, protected: true, hidden: true } as never);
    list.push({
      key: 'DEPLOY',
      value: 'v',
      masked: false,
      protected: false,
      environment_scope: 'production',
    } as never);
    forge.setGitlabVariables('group/project', list);

    // act
    const variables = await listGitlabVariables({ ...gitlab(), project: 'group/project' });

    // assess
    expect(variables).toHaveLength(252);
    expect(forge.requests.map((request) => request.query.page)).toEqual(['1', '2', '3']);
    expect(variables[0]).toMatchObject({ key: 'VAR_0', masked: true, protected: true, hidden: false });
    expect(variables[0]?.value?.reveal()).toBe('value-0');
    expect(JSON.stringify(variables)).not.toContain('value-0');
    const hidden = variables.find((variable) => variable.key === 'HIDDEN');
    expect([hidden?.value, hidden?.hidden]).toEqual([undefined, true]);
    expect(variables.find((variable) => variable.key === 'DEPLOY')?.source).toEqual({
      kind: 'gitlab-variable',
      location: 'group/project:DEPLOY (environment production)',
    });
  });

  it('classifies managed credentials stored unmasked or unprotected, and unmanaged ones', async () => {
    // prepare: a managed token in three settings, an unmanaged credential, a plain value
    const managed = planted('hvs.');
    const unmanaged = planted('glpat-');
    forge.setGitlabVariables('group/audited', [
      { key: 'VAULT_TOKEN', value: managed, masked: false, protected: false },
      { key: 'VAULT_TOKEN_MASKED', value: managed, masked: true, protected: false },
      { key: 'VAULT_TOKEN_SAFE', value: managed, masked: true, protected: true },
      { key: 'OTHER_TOKEN', value: unmanaged, masked: true, protected: false },
      { key: 'REGION', value: 'eu-west-1', masked: false, protected: false },
    ]);
    const variables = await listGitlabVariables({ ...gitlab(), project: 'group/audited' });

    // act
    const audit = auditCiVariables({
      variables,
      isManaged: (value) =>
        value.reveal() === managed ? { identityId: 'deploy-token', owner: 'platform' } : undefined,
      detected: (variable) =>
        variable.value?.reveal() === unmanaged
          ? [
              {
                rule: 'secretlint:gitlab-token',
                value: variable.value,
                line: 1,
                column: 1,
                encoding: 'plain',
              },
            ]
          : [],
    });

    // assess
    expect(
      audit.problems.map((problem) => [problem.kind, problem.source.location, problem.severity]),
    ).toEqual([
      ['managed-unprotected', 'group/audited:VAULT_TOKEN', 'critical'],
      ['managed-unprotected', 'group/audited:VAULT_TOKEN_MASKED', 'high'],
      ['unmanaged-credential', 'group/audited:OTHER_TOKEN', 'high'],
    ]);
    expect(audit.managedStoredSafely.map((stored) => stored.variable)).toEqual(['VAULT_TOKEN_SAFE']);
    expect(JSON.stringify(audit)).not.toContain(managed);
    expect(JSON.stringify(audit)).not.toContain(unmanaged);
  });

  it('403 below Maintainer, 404 for an unknown project, 401 for a bad token: clear and token-free', async () => {
    forge.setGitlabVariables('group/locked', []);
    forge.gitlabRole = 'developer';
    let error = await failure(listGitlabVariables({ ...gitlab(), project: 'group/locked' }), [
      forge.gitlabToken,
    ]);
    expect(error.message).toBe(
      'GitLab answered 403 to the request for the CI/CD variables of group/locked (it says "403 Forbidden"): the token in GITLAB_TOKEN may not read the CI/CD variables of group/locked (scope read_api or api, and the Maintainer role)',
    );
    error = await failure(listGitlabVariables({ ...gitlab(), project: 'group/none' }), [forge.gitlabToken]);
    expect(error.message).toContain('GitLab has no project group/none (it says "404 Project Not Found")');
    const wrong = randomToken('gl-wrong-');
    error = await failure(listGitlabVariables({ ...gitlab(), token: wrong, project: 'group/locked' }), [
      wrong,
    ]);
    expect(error.status).toBe(401);
    expect(error.message).toContain(
      'the token in GITLAB_TOKEN may not read the CI/CD variables of group/locked',
    );
  });
});

describe('finishedJobLog: the log a completion webhook scans', () => {
  it('reads a GitHub job by its id and a GitLab job’s trace, with settings from the environment', async () => {
    // prepare
    forge.addGithubRun({
      owner: 'octo',
      repo: 'hooks',
      runId: 1030,
      jobs: [{ id: 61, name: 'ci', log: 'gh done' }],
    });
    forge.setGitlabTrace('42', 62, 'gl done');
    const settings = {
      ...forgeSettingsFromEnv(
        { GITHUB_TOKEN: forge.githubToken, GITLAB_TOKEN: forge.gitlabToken },
        { githubApi: forge.url, gitlabUrl: forge.url },
      ),
      limits: fast,
    };

    // act
    const fromGithub = await finishedJobLog(
      { platform: 'github', repository: 'octo/hooks', jobId: '61' },
      settings,
    );
    const fromGitlab = await finishedJobLog({ platform: 'gitlab', project: '42', jobId: '62' }, settings);

    // assess
    expect([fromGithub.source.location, fromGithub.text]).toEqual([
      'octo/hooks/runs/1030/jobs/ci (job 61)',
      'gh done',
    ]);
    expect([fromGitlab.source.location, fromGitlab.text]).toEqual(['42/jobs/62', 'gl done']);
  });

  it('says which variable to set when a token is missing', async () => {
    const settings = forgeSettingsFromEnv({}, { githubApi: forge.url });
    await expect(
      finishedJobLog({ platform: 'github', repository: 'octo/hooks', jobId: 61 }, settings),
    ).rejects.toThrow('expected a GitHub token in GITHUB_TOKEN that can read Actions logs, got none');
    expect(forgeSettingsFromEnv({ CI_SERVER_URL: 'https://gitlab.example.com' }).gitlab.url).toBe(
      'https://gitlab.example.com',
    );
  });
});
