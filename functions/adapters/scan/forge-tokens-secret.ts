/**
 * How the deployed exposure scanner reads finished CI jobs' logs: with the tokens of the forge
 * tokens secret (JSON `{"github": "<token>", "gitlab": "<token>"}`), deployed as a placeholder
 * and set by an operator afterwards. A platform whose token is still empty is not read (the
 * answer says which field to set), and the secret is read again at most once a minute while a
 * token is missing ({@link rereadWhile}). No token is logged, quoted or returned.
 */
import * as z from 'zod';
import { ValidationError } from '../../core/errors.ts';
import { rereadWhile } from '../rechecked-secret.ts';
import { type FinishedJob, type ForgeSettings, finishedJobLog } from './finished-job-log.ts';
import type { FetchedLog } from './forge-http.ts';
import { DEFAULT_GITHUB_API } from './github-logs.ts';
import { DEFAULT_GITLAB_URL } from './gitlab-api.ts';

/** What the forge tokens secret holds: a token per platform, either may be empty (that platform is not read). */
const ForgeTokensSchema = z.object({
  github: z.string().optional(),
  gitlab: z.string().optional(),
});

/**
 * The tokens of the forge tokens secret, JSON `{"github": "<token>", "gitlab": "<token>"}`.
 * Nothing of the value is quoted in an error: it is a token.
 *
 * @param secretName how an operator finds the secret (the variable naming its ARN), for the errors.
 * @throws ValidationError when the value is not that JSON, saying how to set it.
 */
export function parseForgeTokens(value: string, secretName: string): { github: string; gitlab: string } {
  const expected = `expected the forge tokens secret (${secretName}) to hold JSON {"github": "<token>", "gitlab": "<token>"}`;
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    // JSON.parse's message quotes the text: not passed on.
    throw new ValidationError(
      `${expected}, got ${value.length} characters that do not parse as JSON; set it with aws secretsmanager put-secret-value`,
    );
  }
  const parsed = ForgeTokensSchema.safeParse(json);
  if (!parsed.success) {
    throw new ValidationError(
      `${expected}, got ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(value)'}: ${issue.message}`).join('; ')}`,
    );
  }
  return { github: parsed.data.github ?? '', gitlab: parsed.data.gitlab ?? '' };
}

/** Where the scanner reaches GitHub and GitLab (its environment's API roots; unset, the public ones). */
export interface ForgeUrls {
  githubApiUrl?: string | undefined;
  gitlabUrl?: string | undefined;
}

/**
 * How the scanner reaches GitHub and GitLab: the API roots given, the tokens from the secret
 * (`secretName` is how an operator finds it: a refused token's source names its field there).
 */
export function forgeSettingsOf(
  urls: ForgeUrls,
  tokens: { github: string; gitlab: string },
  secretName: string,
): ForgeSettings {
  const source = (field: string) => `the "${field}" field of the forge tokens secret (${secretName})`;
  return {
    github: {
      api: urls.githubApiUrl ?? DEFAULT_GITHUB_API,
      token: tokens.github,
      tokenSource: source('github'),
    },
    gitlab: {
      url: urls.gitlabUrl ?? DEFAULT_GITLAB_URL,
      token: tokens.gitlab,
      tokenSource: source('gitlab'),
    },
  };
}

/** The forge settings a job of a platform is read with (see {@link recheckedForgeSettings}). */
export type ForgeSettingsFor = (platform: FinishedJob['platform']) => Promise<ForgeSettings>;

/**
 * The forge settings read at cold start, read again (`reload`) when a job's platform has an empty
 * token and the last read is a minute old (see {@link rereadWhile}): the secret is deployed as a
 * placeholder and set by an operator afterwards, and a warm container must see it without a
 * redeploy. A token that is set is kept: one read per minute at most, and only while one is missing.
 */
export function recheckedForgeSettings(
  first: ForgeSettings,
  reload: () => Promise<ForgeSettings>,
  now: () => number = Date.now,
): ForgeSettingsFor {
  const settings = rereadWhile(first, reload, now);
  return (platform) => settings((current) => !current[platform].token);
}

/**
 * Reads finished jobs' logs with the settings `settingsFor` gives (finished-job-log.ts); a job of
 * a platform whose token is empty (the forge tokens secret's placeholder) is not read, and the
 * answer says which field to set.
 */
export function jobLogReader(
  settingsFor: ForgeSettingsFor,
  read: (job: FinishedJob, settings: ForgeSettings) => Promise<FetchedLog> = finishedJobLog,
): (job: FinishedJob) => Promise<FetchedLog | { unread: string }> {
  return async (job) => {
    const forge = await settingsFor(job.platform);
    return forge[job.platform].token
      ? read(job, forge)
      : {
          unread: `no ${job.platform === 'github' ? 'GitHub' : 'GitLab'} token: set ${forge[job.platform].tokenSource} to read its jobs' logs (read again at most a minute after it is set)`,
        };
  };
}
