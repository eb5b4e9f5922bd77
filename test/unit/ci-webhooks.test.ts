import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  githubJobEnded,
  gitlabJobEnded,
  signGithubPayload,
  verifyGithubSignature,
  verifyGitlabToken,
} from '../../functions/api/ci-webhooks.ts';
import { jobOf, PRESETS, resolveIssuer } from '../../functions/core/ci-policy.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';

// GitHub's worked example in "Validating webhook deliveries" (a published test vector, not a live secret).
const DOC_SECRET = new SecretValue("It's a Secret to Everybody");
const DOC_BODY = 'Hello, World!';
const DOC_SIGNATURE = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';

const secretText = randomBytes(20).toString('hex');
const secret = new SecretValue(secretText);

/** A `workflow_job` delivery as GitHub documents it (trimmed to a realistic subset). */
const workflowJob = (action: string, overrides: Record<string, unknown> = {}) => ({
  action,
  workflow_job: {
    id: 29679449,
    run_id: 10171458981,
    workflow_name: 'release',
    head_branch: 'main',
    run_url: 'https://api.github.com/repos/acme/app/actions/runs/10171458981',
    run_attempt: 2,
    node_id: 'CR_kwDOABCD8M4Bxyz',
    head_sha: '0b4a3d1f6c2e8a9b7d5c3e1f0a2b4c6d8e0f1a2b',
    url: 'https://api.github.com/repos/acme/app/actions/jobs/29679449',
    html_url: 'https://github.com/acme/app/actions/runs/10171458981/job/29679449',
    status: action === 'completed' ? 'completed' : 'in_progress',
    conclusion: action === 'completed' ? 'cancelled' : null,
    created_at: '2026-12-05T07:00:00Z',
    started_at: '2026-12-05T07:00:05Z',
    completed_at: action === 'completed' ? '2026-12-05T07:03:10Z' : null,
    name: 'publish',
    steps: [],
    check_run_url: 'https://api.github.com/repos/acme/app/check-runs/29679449',
    labels: ['ubuntu-latest'],
    runner_id: 7,
    runner_name: 'GitHub Actions 7',
    runner_group_id: 1,
    runner_group_name: 'GitHub Actions',
    ...overrides,
  },
  repository: { id: 123456789, node_id: 'R_kgDOabc', name: 'app', full_name: 'acme/app', private: true },
  sender: { login: 'octocat', id: 1, type: 'User' },
});

/** A Job Hook delivery as GitLab documents it (`X-Gitlab-Event: Job Hook`, trimmed). */
const jobHook = (status: string, overrides: Record<string, unknown> = {}) => ({
  object_kind: 'build',
  ref: 'main',
  tag: false,
  before_sha: '2293ada6b400935a1378653304eaf6221e0fdb8f',
  sha: '2293ada6b400935a1378653304eaf6221e0fdb8f',
  retries_count: 0,
  build_id: 1977,
  build_name: 'publish',
  build_stage: 'publish',
  build_status: status,
  build_created_at: '2026-12-05 07:00:00 UTC',
  build_started_at: '2026-12-05 07:00:05 UTC',
  build_finished_at: null,
  build_duration: null,
  build_allow_failure: false,
  build_failure_reason: 'unknown_failure',
  pipeline_id: 2366,
  runner: { id: 380987, description: 'shared-runners-manager-6.gitlab.com', active: true, is_shared: true },
  project_id: 380,
  project_name: 'gitlab-org/gitlab-test',
  user: { id: 3, name: 'User', username: 'user', email: '[REDACTED]' },
  commit: { id: 2366, sha: '2293ada6b400935a1378653304eaf6221e0fdb8f', status: status },
  repository: { name: 'gitlab_test', homepage: 'http://192.168.64.1:3005/gitlab-org/gitlab-test' },
  project: { id: 380, name: 'gitlab-test', path_with_namespace: 'gitlab-org/gitlab-test' },
  environment: null,
  ...overrides,
});

describe('ci webhooks: GitHub signatures (X-Hub-Signature-256)', () => {
  it("signs GitHub's own worked example exactly as GitHub does", () => {
    // act
    const signature = signGithubPayload(DOC_BODY, DOC_SECRET);
    // assess
    expect(signature).toBe(DOC_SIGNATURE);
    expect(verifyGithubSignature(DOC_BODY, DOC_SIGNATURE, DOC_SECRET)).toEqual({ ok: true });
  });

  it('accepts a delivery signed with the secret over the raw body', () => {
    // prepare
    const body = JSON.stringify(workflowJob('completed'));
    // act
    const verdict = verifyGithubSignature(body, signGithubPayload(body, secret), secret);
    // assess
    expect(verdict).toEqual({ ok: true });
  });

  it.each([
    ['no header', undefined, 'missing-signature', /expected an X-Hub-Signature-256 header/],
    ['an empty header', '  ', 'missing-signature', /got none/],
    ['the old SHA-1 form', `sha1=${'a'.repeat(40)}`, 'bad-signature', /sha256=<64 hex digits>/],
    ['hex of the wrong length', 'sha256=abcd', 'bad-signature', /sha256=<64 hex digits>/],
  ])('refuses %s, saying what was expected', (_, header, reason, message) => {
    // act
    const verdict = verifyGithubSignature('{}', header, secret);
    // assess
    expect(verdict).toMatchObject({ ok: false, reason });
    expect(verdict.ok ? '' : verdict.message).toMatch(message);
  });

  it('refuses a body changed after signing, another secret, and a signature of another body', () => {
    // prepare
    const body = JSON.stringify(workflowJob('completed'));
    const signature = signGithubPayload(body, secret);
    const other = new SecretValue(randomBytes(20).toString('hex'));
    // act
    const verdicts = [
      verifyGithubSignature(body.replace('29679449', '29679450'), signature, secret),
      verifyGithubSignature(body, signGithubPayload(body, other), secret),
      verifyGithubSignature(body, signGithubPayload(`${body} `, secret), secret),
    ];
    // assess
    for (const verdict of verdicts) {
      expect(verdict).toMatchObject({ ok: false, reason: 'bad-signature' });
      const message = verdict.ok ? '' : verdict.message;
      expect(message).toMatch(/does not match/);
      expect(message).not.toContain(secretText);
      expect(message).not.toContain(signature.slice(7));
    }
  });
});

describe('ci webhooks: GitLab secret tokens (X-Gitlab-Token)', () => {
  it('accepts the secret token, and refuses none, another, a prefix of it and a longer one', () => {
    // act
    const verdicts = {
      same: verifyGitlabToken(secretText, secret),
      none: verifyGitlabToken(undefined, secret),
      other: verifyGitlabToken(randomBytes(20).toString('hex'), secret),
      prefix: verifyGitlabToken(secretText.slice(0, 10), secret),
      longer: verifyGitlabToken(`${secretText}x`, secret),
    };
    // assess
    expect(verdicts.same).toEqual({ ok: true });
    expect(verdicts.none).toMatchObject({ ok: false, reason: 'missing-signature' });
    for (const verdict of [verdicts.other, verdicts.prefix, verdicts.longer]) {
      expect(verdict).toMatchObject({ ok: false, reason: 'bad-signature' });
      expect(verdict.ok ? '' : verdict.message).not.toContain(secretText);
    }
  });
});

describe('ci webhooks: which GitHub deliveries end a job', () => {
  it('a completed workflow_job names the job by the github preset job claims, as text', () => {
    // act
    const ids = githubJobEnded(workflowJob('completed'));
    // assess
    expect(ids).toEqual({
      repository_id: '123456789',
      run_id: '10171458981',
      run_attempt: '2',
      check_run_id: '29679449',
    });
    expect(Object.keys(ids ?? {})).toEqual(PRESETS.github.jobClaims);
  });

  it("gives the same job key as the job's own token (its claims are strings)", () => {
    // prepare
    const issuer = resolveIssuer({
      name: 'github',
      preset: 'github',
      audience: 'keywarden',
      algorithms: ['RS256'],
      clockSkew: '60s',
      maxTokenAge: '10m',
    });
    const claims = {
      repository_id: '123456789',
      run_id: '10171458981',
      run_attempt: '2',
      check_run_id: '29679449',
      actor: 'octocat',
    };
    // act
    const fromHook = jobOf(issuer, githubJobEnded(workflowJob('completed')) ?? {});
    // assess
    expect(fromHook.key).toBe(jobOf(issuer, claims).key);
  });

  it.each([
    ['queued', workflowJob('queued')],
    ['in_progress', workflowJob('in_progress')],
    ['waiting', workflowJob('waiting')],
    ['a ping', { zen: 'Keep it logically awesome.', hook_id: 1, hook: { type: 'Repository' } }],
    ['a workflow_run event', { action: 'completed', workflow_run: { id: 1 }, repository: { id: 2 } }],
    ['not an object', 'completed'],
  ])('%s ends nothing', (_, payload) => {
    expect(githubJobEnded(payload)).toBeUndefined();
  });

  it('a completed workflow_job without the ids is refused, naming what is missing', () => {
    // prepare
    const { repository: _repository, ...noRepository } = workflowJob('completed');
    // act / assess
    expect(() => githubJobEnded(noRepository)).toThrow(ValidationError);
    expect(() => githubJobEnded(noRepository)).toThrow(/repository/);
    expect(() => githubJobEnded(workflowJob('completed', { run_id: 'ten' }))).toThrow(/workflow_job\.run_id/);
  });

  it("a check_run_url that does not end with the job's id is refused", () => {
    // prepare
    const payload = workflowJob('completed', {
      check_run_url: 'https://api.github.com/repos/acme/app/check-runs/1',
    });
    // act / assess
    expect(() => githubJobEnded(payload)).toThrow(/end with the job's id 29679449, got one ending with 1/);
  });
});

describe('ci webhooks: which GitLab deliveries end a job', () => {
  it.each(['success', 'failed', 'canceled', 'skipped'])('build_status %s ends the job', (status) => {
    // act
    const ids = gitlabJobEnded(jobHook(status));
    // assess
    expect(ids).toEqual({ project_id: '380', job_id: '1977' });
    expect(Object.keys(ids ?? {})).toEqual(PRESETS.gitlab.jobClaims);
  });

  it.each(['created', 'pending', 'running', 'manual', 'canceling'])(
    'build_status %s ends nothing',
    (status) => {
      expect(gitlabJobEnded(jobHook(status))).toBeUndefined();
    },
  );

  it('a pipeline hook ends nothing', () => {
    expect(gitlabJobEnded({ object_kind: 'pipeline', object_attributes: { id: 1 } })).toBeUndefined();
  });

  it('a Job Hook without its ids is refused, naming what is missing', () => {
    // prepare
    const { build_id: _id, ...noId } = jobHook('success');
    // act / assess
    expect(() => gitlabJobEnded(noId)).toThrow(/build_id/);
    expect(() => gitlabJobEnded(jobHook('success', { project_id: -3 }))).toThrow(ValidationError);
  });
});
