/**
 * GitLab job logs and CI/CD variables, read through GitLab's REST API (v4) for exposure
 * scanning (`keywarden scan --gitlab-job PROJECT/JOB_ID`, `--gitlab-variables PROJECT`, and the
 * webhook on a finished job). The token goes in `PRIVATE-TOKEN`.
 *
 * - `GET /projects/:id/jobs/:job_id/trace`: the job's log as text (read up to the log limit);
 * - `GET /projects/:id/variables?page=N&per_page=100`: the project's variables, a page at a
 *   time, the next page's number in `X-Next-Page` (empty on the last). Values come back to
 *   Maintainers; a hidden variable's value does not come back at all.
 *
 * `:id` is the project's number or its path (`group/sub/project`), URL-encoded as one segment.
 */
import * as z from 'zod';
import type { CiVariable } from '../../core/ci-variable-audit.ts';
import { ValidationError } from '../../core/errors.ts';
import { SecretValue } from '../../core/secret-value.ts';
import {
  apiRoot,
  apiUrl,
  download,
  type FetchedLog,
  type ForgeAccess,
  ForgeError,
  type ForgeLimits,
  getJson,
  limitsOf,
  type Purpose,
  textOf,
  withRetries,
} from './forge-http.ts';

/** How to reach a GitLab instance's API. */
export interface GitlabAccessOptions {
  /** The instance: `https://gitlab.example.com` (`/api/v4` is added when missing). @default https://gitlab.com */
  url?: string;
  /** A token of a user who can read the project's jobs (and, for variables, a Maintainer); never logged. */
  token: string;
  /** Where the token came from, for messages. @default GITLAB_TOKEN */
  tokenSource?: string;
  limits?: Partial<ForgeLimits>;
}

/** A project: its number or its path. */
export interface GitlabProjectOptions extends GitlabAccessOptions {
  project: string | number;
}

/** A job of a project. */
export interface GitlabJobOptions extends GitlabProjectOptions {
  jobId: string | number;
}

export const DEFAULT_GITLAB_URL = 'https://gitlab.com';

const PROJECT_PATH = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9_.][A-Za-z0-9_.-]*)+$/;
const ID = /^[1-9]\d{0,19}$/;

function checkedProject(project: string | number): string {
  const text = String(project);
  if (ID.test(text)) return text;
  if (PROJECT_PATH.test(text) && !text.split('/').some((part) => part === '.' || part === '..')) return text;
  throw new ValidationError(
    `expected a GitLab project as its number or its path GROUP/PROJECT (subgroups allowed), got ${JSON.stringify(text)}`,
  );
}

function checkedId(name: string, id: string | number): string {
  const text = String(id);
  if (!ID.test(text)) {
    throw new ValidationError(
      `expected the ${name} to be a positive whole number, got ${JSON.stringify(text)}`,
    );
  }
  return text;
}

/**
 * `PROJECT/JOB_ID` (what `keywarden scan --gitlab-job` takes: `group/project/789`, or `42/789`)
 * as its parts.
 * @throws ValidationError naming the expected form.
 */
export function parseGitlabJob(text: string): { project: string; jobId: string } {
  const cut = text.lastIndexOf('/');
  if (cut <= 0) {
    throw new ValidationError(
      `expected a GitLab job as PROJECT/JOB_ID (group/project/789), got ${JSON.stringify(text)}`,
    );
  }
  return { project: checkedProject(text.slice(0, cut)), jobId: checkedId('job id', text.slice(cut + 1)) };
}

function accessOf(options: GitlabAccessOptions): ForgeAccess {
  const tokenSource = options.tokenSource ?? 'GITLAB_TOKEN';
  if (!options.token) {
    throw new ValidationError(`expected a GitLab token in ${tokenSource} (scope read_api), got none`);
  }
  const api = apiRoot('GitLab', '--gitlab-url', options.url ?? DEFAULT_GITLAB_URL);
  const root = api.pathname.replace(/\/+$/, '');
  if (!root.endsWith('/api/v4')) api.pathname = `${root}/api/v4`;
  return {
    forge: 'GitLab',
    api,
    token: options.token,
    tokenSource,
    authorize: (token) => ({ 'private-token': token }),
    headers: { accept: 'application/json', 'user-agent': 'keywarden' },
    limits: limitsOf('GitLab', options.limits),
  };
}

const projectPath = (project: string): string => `/projects/${encodeURIComponent(project)}`;

/** The job's log (its trace), up to the log limit. */
export async function fetchGitlabJobTrace(options: GitlabJobOptions): Promise<FetchedLog> {
  const project = checkedProject(options.project);
  const jobId = checkedId('job id', options.jobId);
  const access = accessOf(options);
  const purpose: Purpose = {
    what: `the log of job ${jobId} of ${project}`,
    needs: `the jobs of ${project} (scope read_api, and at least the Reporter role on a private project)`,
    missing: `no job ${jobId} with a log in project ${project}`,
  };
  const limit = access.limits.maxLogBytes;
  const body = await withRetries(access, () =>
    download(access, apiUrl(access, `${projectPath(project)}/jobs/${jobId}/trace`), purpose, limit),
  );
  const { text, note } = textOf(body, limit);
  return {
    source: { kind: 'gitlab-job', location: `${project}/jobs/${jobId}` },
    text,
    ...(note === undefined ? {} : { note }),
  };
}

/** A variable as `GET /projects/:id/variables` lists it (the parts read here; `hidden` since GitLab 17.4). */
export const GitlabVariableSchema = z.looseObject({
  key: z.string().min(1),
  value: z.string().nullable().optional(),
  variable_type: z.string().default('env_var'),
  protected: z.boolean(),
  masked: z.boolean(),
  hidden: z.boolean().optional(),
  raw: z.boolean().optional(),
  environment_scope: z.string().default('*'),
});

const PER_PAGE = 100;
/** 10,000 variables: far past GitLab's own limit per project; a server that goes on is wrong. */
const MAX_PAGES = 100;

/** `group/project:KEY`, and ` (environment SCOPE)` for a scoped one (one key may have several). */
export function gitlabVariableLocation(project: string, key: string, scope: string): string {
  return `${project}:${key}${scope === '*' ? '' : ` (environment ${scope})`}`;
}

/**
 * Every CI/CD variable of a project, all pages, each value wrapped as a {@link SecretValue} (it is
 * a secret until shown otherwise).
 */
export async function listGitlabVariables(options: GitlabProjectOptions): Promise<CiVariable[]> {
  const project = checkedProject(options.project);
  const access = accessOf(options);
  const purpose: Purpose = {
    what: `the CI/CD variables of ${project}`,
    needs: `the CI/CD variables of ${project} (scope read_api or api, and the Maintainer role)`,
    missing: `no project ${project}`,
  };
  const variables: CiVariable[] = [];
  let page = 1;
  for (let pages = 0; ; pages++) {
    if (pages >= MAX_PAGES) {
      throw new ForgeError(
        `GitLab kept offering further pages of ${purpose.what} after ${MAX_PAGES} pages of ${PER_PAGE}; expected the last page to have an empty X-Next-Page`,
        { forge: 'GitLab' },
      );
    }
    const url = apiUrl(access, `${projectPath(project)}/variables`, { page, per_page: PER_PAGE });
    const { body, headers } = await withRetries(access, () => getJson(access, url, purpose));
    const parsed = z.array(GitlabVariableSchema).safeParse(body);
    if (!parsed.success) {
      const where = parsed.error.issues.map((issue) => issue.path.join('.') || '(body)').join(', ');
      throw new ValidationError(
        `expected GitLab's answer for ${purpose.what} as a list of variables (key, value, masked, protected…), got one off at ${where}`,
      );
    }
    for (const item of parsed.data) {
      variables.push({
        key: item.key,
        environmentScope: item.environment_scope,
        value: item.value ? new SecretValue(item.value) : undefined,
        masked: item.masked,
        protected: item.protected,
        hidden: item.hidden ?? false,
        variableType: item.variable_type,
        source: {
          kind: 'gitlab-variable',
          location: gitlabVariableLocation(project, item.key, item.environment_scope),
        },
      });
    }
    const next = nextPage(headers.get('x-next-page'), page, parsed.data.length);
    if (next === undefined) break;
    page = next;
  }
  return variables;
}

/**
 * The next page: GitLab's `X-Next-Page` (empty on the last page); without the header, another
 * page only while pages come back full. A next page that does not move forward ends the listing.
 */
function nextPage(header: string | null, page: number, count: number): number | undefined {
  if (header === null) return count < PER_PAGE ? undefined : page + 1;
  if (header.trim() === '') return undefined;
  const next = Number(header);
  return Number.isInteger(next) && next > page ? next : undefined;
}
