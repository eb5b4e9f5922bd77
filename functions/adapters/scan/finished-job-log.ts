/**
 * The log of a CI job that has just finished, for the job-completion webhooks
 * (`POST /ci/webhooks/github|gitlab`) to scan, and the settings the CLI (`keywarden scan
 * --github-run / --gitlab-job / --gitlab-variables`) and the webhooks reach GitHub and GitLab with.
 *
 * Tokens come from the environment (`GITHUB_TOKEN`, `GITLAB_TOKEN`) or the caller, never from an
 * option on a command line (where `ps` and shell history would keep them), and are never logged.
 */
import { ValidationError } from '../../core/errors.ts';
import type { FetchedLog, ForgeLimits } from './forge-http.ts';
import { DEFAULT_GITHUB_API, fetchGithubJobLog } from './github-logs.ts';
import { DEFAULT_GITLAB_URL, fetchGitlabJobTrace } from './gitlab-api.ts';

/** How to reach each platform; a platform without a token cannot be read (the error says which variable to set). */
export interface ForgeSettings {
  github: { api: string; token: string; tokenSource: string };
  gitlab: { url: string; token: string; tokenSource: string };
  limits?: Partial<ForgeLimits>;
}

/** The options a command takes for where the APIs are (`--github-api`, `--gitlab-url`). */
export interface ForgeUrlOptions {
  githubApi?: string | undefined;
  gitlabUrl?: string | undefined;
}

/**
 * The settings from options and the environment: `--github-api`, else `GITHUB_API_URL` (set in
 * GitHub Actions jobs), else https://api.github.com; `--gitlab-url`, else `CI_SERVER_URL` (set
 * in GitLab jobs), else https://gitlab.com; tokens from `GITHUB_TOKEN` and `GITLAB_TOKEN`.
 */
export function forgeSettingsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  options: ForgeUrlOptions = {},
): ForgeSettings {
  return {
    github: {
      api: options.githubApi || env.GITHUB_API_URL || DEFAULT_GITHUB_API,
      token: env.GITHUB_TOKEN ?? '',
      tokenSource: 'GITHUB_TOKEN',
    },
    gitlab: {
      url: options.gitlabUrl || env.CI_SERVER_URL || DEFAULT_GITLAB_URL,
      token: env.GITLAB_TOKEN ?? '',
      tokenSource: 'GITLAB_TOKEN',
    },
  };
}

/** A job a completion webhook named. */
export type FinishedJob =
  | {
      platform: 'github';
      /** `owner/repo`: the `workflow_job` event's `repository.full_name`. */
      repository: string;
      /** `workflow_job.id`. */
      jobId: string | number;
    }
  | {
      platform: 'gitlab';
      /** The Job Hook's `project_id` (or the project's path). */
      project: string | number;
      /** The Job Hook's `build_id`. */
      jobId: string | number;
    };

/** A finished job as messages name it: its platform, repository or project, and id (no token, no log). */
export const finishedJobName = (job: FinishedJob): string =>
  job.platform === 'github'
    ? `GitHub ${job.repository} job ${job.jobId}`
    : `GitLab project ${job.project} job ${job.jobId}`;

/**
 * The finished job's log: GitHub's job logs by job id (through the redirect), GitLab's trace.
 * @throws ValidationError for a malformed job or a platform without a token; ForgeError when the
 *   platform refuses or fails (`retryable` says whether a later try may help).
 */
export async function finishedJobLog(job: FinishedJob, settings: ForgeSettings): Promise<FetchedLog> {
  const limits = settings.limits === undefined ? {} : { limits: settings.limits };
  if (job.platform === 'github') {
    const [owner = '', repo = '', ...rest] = job.repository.split('/');
    if (!owner || !repo || rest.length > 0) {
      throw new ValidationError(
        `expected the job's repository as OWNER/REPO, got ${JSON.stringify(job.repository)}`,
      );
    }
    return fetchGithubJobLog({ ...settings.github, ...limits, owner, repo, jobId: job.jobId });
  }
  return fetchGitlabJobTrace({ ...settings.gitlab, ...limits, project: job.project, jobId: job.jobId });
}
