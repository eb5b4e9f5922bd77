/**
 * GitHub Actions logs, read through GitHub's REST API for exposure scanning
 * (`keywarden scan --github-run OWNER/REPO/RUN_ID`, and the webhook on a finished job):
 *
 * - `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs` names the run's jobs (id, name);
 * - `GET /repos/{owner}/{repo}/actions/runs/{run_id}/logs` answers 302 with a short-lived URL
 *   (about a minute) of a zip: a top-level `<n>_<job name>.txt` per job holding the whole job's
 *   log, and a folder per job with a `<n>_<step name>.txt` per step. Each job's top-level file is
 *   its log; a job with only a folder (older archives) gets its step files joined in order;
 * - `GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs` answers 302 with a short-lived URL of
 *   one job's log as text; `GET …/actions/jobs/{job_id}` gives the job's name and run.
 *
 * Names in the archive are the job names as GitHub writes them into a zip (`/` and `:` removed,
 * cut at 90 UTF-16 units, trimmed), the same rule GitHub's own CLI matches them by. A job log
 * the archive holds bigger than the limit, or an archive over the run's limit, is read from the
 * job's own endpoint instead, up to the limit (truncated, with a note).
 *
 * Why fflate for the zip: Node has no zip reader; fflate (MIT, no dependencies, ~8 kB, a
 * hundred million downloads a month) reads the central directory and lets a filter see each
 * entry's declared sizes before anything is inflated, and it inflates into a buffer of the
 * declared size, so an entry that lies about its size cannot grow past it.
 */
import { unzipSync } from 'fflate';
import * as z from 'zod';
import { ValidationError } from '../../core/errors.ts';
import {
  apiRoot,
  apiUrl,
  download,
  type FetchedLog,
  type ForgeAccess,
  type ForgeLimits,
  getJson,
  limitsOf,
  type Purpose,
  sizeOf,
  textOf,
  withRetries,
} from './forge-http.ts';

export type { FetchedLog } from './forge-http.ts';

/** How to reach GitHub's API. */
export interface GithubAccessOptions {
  /** The API root. @default https://api.github.com (GitHub Enterprise Server: https://HOST/api/v3) */
  api?: string;
  /** A token that can read the repository's Actions logs; never logged. */
  token: string;
  /** Where the token came from, for messages. @default GITHUB_TOKEN */
  tokenSource?: string;
  limits?: Partial<ForgeLimits>;
}

/** A workflow run. */
export interface GithubRunOptions extends GithubAccessOptions {
  owner: string;
  repo: string;
  runId: number | string;
}

/** A job. */
export interface GithubJobOptions extends GithubAccessOptions {
  owner: string;
  repo: string;
  jobId: number | string;
}

export const DEFAULT_GITHUB_API = 'https://api.github.com';
/** The REST API version keywarden is written against (GitHub's `X-GitHub-Api-Version`). */
export const GITHUB_API_VERSION = '2022-11-28';

const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const REPO = /^[A-Za-z0-9._-]{1,100}$/;
const ID = /^[1-9]\d{0,19}$/;

function checked(owner: string, repo: string, ids: Record<string, number | string>): void {
  if (!OWNER.test(owner) || !REPO.test(repo) || repo === '.' || repo === '..') {
    throw new ValidationError(
      `expected a GitHub repository as OWNER/REPO (letters, digits, '-', '.', '_'), got ${JSON.stringify(`${owner}/${repo}`)}`,
    );
  }
  for (const [name, id] of Object.entries(ids)) {
    if (!ID.test(String(id))) {
      throw new ValidationError(
        `expected the ${name} to be a positive whole number, got ${JSON.stringify(String(id))}`,
      );
    }
  }
}

/**
 * `OWNER/REPO/RUN_ID` (what `keywarden scan --github-run` takes) as its parts.
 * @throws ValidationError naming the expected form.
 */
export function parseGithubRun(text: string): { owner: string; repo: string; runId: string } {
  const [owner = '', repo = '', runId = '', ...rest] = text.split('/');
  if (rest.length > 0 || !owner || !repo || !runId) {
    throw new ValidationError(`expected a GitHub run as OWNER/REPO/RUN_ID, got ${JSON.stringify(text)}`);
  }
  checked(owner, repo, { 'run id': runId });
  return { owner, repo, runId };
}

function accessOf(options: GithubAccessOptions): ForgeAccess {
  const tokenSource = options.tokenSource ?? 'GITHUB_TOKEN';
  if (!options.token) {
    throw new ValidationError(
      `expected a GitHub token in ${tokenSource} that can read Actions logs, got none`,
    );
  }
  return {
    forge: 'GitHub',
    api: apiRoot('GitHub', '--github-api', options.api ?? DEFAULT_GITHUB_API),
    token: options.token,
    tokenSource,
    authorize: (token) => ({ authorization: `Bearer ${token}` }),
    headers: {
      accept: 'application/vnd.github+json',
      'x-github-api-version': GITHUB_API_VERSION,
      'user-agent': 'keywarden',
    },
    limits: limitsOf('GitHub', options.limits),
  };
}

/** A job of a run, as `…/runs/{run_id}/jobs` and `…/jobs/{job_id}` list it (the parts read here). */
export const GithubJobSchema = z.looseObject({
  id: z.number().int().positive(),
  run_id: z.number().int().positive(),
  name: z.string(),
  status: z.string().optional(),
  conclusion: z.string().nullable().optional(),
});
export type GithubJob = z.infer<typeof GithubJobSchema>;

const JobsPageSchema = z.looseObject({
  total_count: z.number().int().nonnegative(),
  jobs: z.array(GithubJobSchema),
});

const PER_PAGE = 100;
/** A run has at most 256 jobs from a matrix; a few more pages than that is a server gone wrong. */
const MAX_JOB_PAGES = 10;

const runPurpose = (owner: string, repo: string, runId: string, what: string): Purpose => ({
  what: `${what} of run ${runId} of ${owner}/${repo}`,
  needs: `the Actions logs of ${owner}/${repo} (a fine-grained token with Actions: read, or a classic token with repo scope)`,
  missing: `no workflow run ${runId} in ${owner}/${repo}`,
});

const jobPurpose = (owner: string, repo: string, jobId: string, what: string): Purpose => ({
  what: `${what} of job ${jobId} of ${owner}/${repo}`,
  needs: `the Actions logs of ${owner}/${repo} (a fine-grained token with Actions: read, or a classic token with repo scope)`,
  missing: `no Actions job ${jobId} in ${owner}/${repo}`,
});

function parsed<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const where = result.error.issues.map((issue) => issue.path.join('.') || '(body)').join(', ');
    throw new ValidationError(
      `expected GitHub's answer for ${what} in its documented shape, got one off at ${where}`,
    );
  }
  return result.data;
}

/** The latest attempt's jobs of a run (all pages). */
export async function listGithubRunJobs(options: GithubRunOptions): Promise<GithubJob[]> {
  const { owner, repo } = options;
  const runId = String(options.runId);
  checked(owner, repo, { 'run id': runId });
  const access = accessOf(options);
  return listJobs(access, owner, repo, runId);
}

async function listJobs(
  access: ForgeAccess,
  owner: string,
  repo: string,
  runId: string,
): Promise<GithubJob[]> {
  const purpose = runPurpose(owner, repo, runId, 'the jobs');
  const jobs: GithubJob[] = [];
  for (let page = 1; page <= MAX_JOB_PAGES; page++) {
    const url = apiUrl(access, `/repos/${owner}/${repo}/actions/runs/${runId}/jobs`, {
      filter: 'latest',
      per_page: PER_PAGE,
      page,
    });
    const { body } = await withRetries(access, () => getJson(access, url, purpose));
    const answer = parsed(JobsPageSchema, body, purpose.what);
    jobs.push(...answer.jobs);
    if (answer.jobs.length < PER_PAGE || jobs.length >= answer.total_count) break;
  }
  return jobs;
}

/** A location as hits name it: `owner/repo/runs/123/jobs/build (job 456)`. */
export function githubJobLocation(
  owner: string,
  repo: string,
  runId: string,
  job: { name: string; id?: number | string | undefined },
): string {
  const id = job.id === undefined ? '' : ` (job ${job.id})`;
  return `${owner}/${repo}/runs/${runId}/jobs/${job.name}${id}`;
}

/**
 * One job's log: `…/actions/jobs/{job_id}` for its name and run, then its log through the
 * redirect, up to the log limit.
 */
export async function fetchGithubJobLog(options: GithubJobOptions): Promise<FetchedLog> {
  const { owner, repo } = options;
  const jobId = String(options.jobId);
  checked(owner, repo, { 'job id': jobId });
  const access = accessOf(options);
  const purpose = jobPurpose(owner, repo, jobId, 'the job');
  const { body } = await withRetries(access, () =>
    getJson(access, apiUrl(access, `/repos/${owner}/${repo}/actions/jobs/${jobId}`), purpose),
  );
  const job = parsed(GithubJobSchema, body, purpose.what);
  return jobLog(access, owner, repo, String(job.run_id), job);
}

async function jobLog(
  access: ForgeAccess,
  owner: string,
  repo: string,
  runId: string,
  job: { id: number; name: string },
): Promise<FetchedLog> {
  const purpose = jobPurpose(owner, repo, String(job.id), 'the log');
  const limit = access.limits.maxLogBytes;
  const body = await withRetries(access, () =>
    download(access, apiUrl(access, `/repos/${owner}/${repo}/actions/jobs/${job.id}/logs`), purpose, limit),
  );
  const { text, note } = textOf(body, limit);
  return {
    source: { kind: 'github-run', location: githubJobLocation(owner, repo, runId, job) },
    text,
    ...(note === undefined ? {} : { note }),
  };
}

/** A job's name as GitHub writes it into the run's zip (the rule GitHub's CLI matches by). */
export function zipNameOf(jobName: string): string {
  const stripped = jobName.replaceAll('/', '').replaceAll(':', '');
  // String length and slice count UTF-16 units, as the server (C#) does.
  return (stripped.length > 90 ? stripped.slice(0, 90) : stripped).trim();
}

const TOP_LEVEL_LOG = /^-?\d+_(.+)\.txt$/;
const STEP_LOG = /^(.+)\/(\d+)_[^/]*\.txt$/;

/** What the archive holds, by zip name: the job's whole log, or its steps' logs. */
interface ArchiveJob {
  whole?: { entry: string; size: number };
  steps: { entry: string; number: number; size: number }[];
}

/**
 * Every job log of a run: the run's archive (through the redirect), one text per job, named by
 * the run's job list. Jobs whose log the archive cannot give within the limits (too big, or the
 * archive itself too big) are read one by one from the job's own endpoint, truncated if needed.
 */
export async function fetchGithubRunLogs(options: GithubRunOptions): Promise<FetchedLog[]> {
  const { owner, repo } = options;
  const runId = String(options.runId);
  checked(owner, repo, { 'run id': runId });
  const access = accessOf(options);
  const { maxLogBytes, maxRunBytes } = access.limits;
  const jobs = await listJobs(access, owner, repo, runId);
  const purpose = runPurpose(owner, repo, runId, 'the logs');
  const archive = await withRetries(access, () =>
    download(
      access,
      apiUrl(access, `/repos/${owner}/${repo}/actions/runs/${runId}/logs`),
      purpose,
      maxRunBytes,
    ),
  );
  if (archive.truncated) {
    // Over the run's limit: each job on its own, each bounded.
    return sequentially(jobs, (job) => jobLog(access, owner, repo, runId, job));
  }

  const byName = new Map<string, ArchiveJob>();
  const entry = (name: string): ArchiveJob => {
    const found = byName.get(name) ?? { steps: [] };
    byName.set(name, found);
    return found;
  };
  let budget = maxRunBytes;
  const wanted = new Set<string>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(archive.bytes, {
      filter: (file) => {
        const whole = file.name.includes('/') ? undefined : TOP_LEVEL_LOG.exec(file.name);
        const step = whole ? undefined : STEP_LOG.exec(file.name);
        if (whole?.[1]) entry(whole[1]).whole = { entry: file.name, size: file.originalSize };
        else if (step?.[1] && !step[1].includes('/'))
          entry(step[1]).steps.push({ entry: file.name, number: Number(step[2]), size: file.originalSize });
        else return false;
        // Inflated only when it fits both limits; the rest is read from the job's endpoint.
        if (file.originalSize > maxLogBytes || file.originalSize > budget) return false;
        budget -= file.originalSize;
        wanted.add(file.name);
        return true;
      },
    });
  } catch {
    throw new ValidationError(
      `expected GitHub's log archive of run ${runId} of ${owner}/${repo} to be a zip file, got ${sizeOf(archive.bytes.length)} that is not one`,
    );
  }

  const decoder = new TextDecoder('utf-8');
  const logs: FetchedLog[] = [];
  const unnamed = new Set(byName.keys());
  const fromEndpoint: GithubJob[] = [];
  const read = (name: string, archived: ArchiveJob, job: GithubJob | undefined): void => {
    const parts = archived.whole ? [archived.whole] : [...archived.steps].sort((a, b) => a.number - b.number);
    const complete = parts.every((part) => wanted.has(part.entry) && files[part.entry]);
    if (!complete || parts.reduce((sum, part) => sum + part.size, 0) > maxLogBytes) {
      if (job) fromEndpoint.push(job);
      else
        logs.push({
          source: { kind: 'github-run', location: githubJobLocation(owner, repo, runId, { name }) },
          text: '',
          note: `the log is over ${sizeOf(maxLogBytes)} and GitHub did not name its job: it was not read`,
        });
      return;
    }
    const text = parts.map((part) => decoder.decode(files[part.entry])).join('\n');
    logs.push({
      source: { kind: 'github-run', location: githubJobLocation(owner, repo, runId, job ?? { name }) },
      text,
    });
  };
  for (const job of jobs) {
    const name = zipNameOf(job.name);
    const archived = byName.get(name);
    if (!archived || !unnamed.has(name)) continue; // a skipped job has no log
    unnamed.delete(name);
    read(name, archived, job);
  }
  // What the archive holds under a name no listed job has is scanned too, named as the archive names it.
  for (const name of unnamed) {
    const archived = byName.get(name);
    if (archived) read(name, archived, undefined);
  }
  logs.push(...(await sequentially(fromEndpoint, (job) => jobLog(access, owner, repo, runId, job))));
  return logs;
}

/** One at a time: these are big downloads, and GitHub's rate limits count each. */
async function sequentially<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (const item of items) results.push(await work(item));
  return results;
}
