/**
 * A local HTTP server on loopback playing the documented endpoints of GitHub's and GitLab's REST
 * APIs that exposure scanning reads (no network is available here, and neither platform has a
 * local server to run). One server plays both: GitHub's API at its root, GitLab under `/api/v4`.
 *
 * GitHub (`Authorization: Bearer <token>`; `X-GitHub-Api-Version` checked when sent):
 * - `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter&per_page&page`:
 *   `{total_count, jobs: [{id, run_id, name, status, conclusion}]}`;
 * - `GET /repos/{owner}/{repo}/actions/runs/{run_id}/logs`: 302 to a short-lived URL of a zip
 *   laid out as GitHub's: `<n>_<job>.txt` per job (the whole log) and `<job>/<n>_<step>.txt`;
 * - `GET /repos/{owner}/{repo}/actions/jobs/{job_id}`: the job;
 * - `GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs`: 302 to a short-lived URL of the text.
 * The short-lived URLs (`/_blob/<id>?sig=…`) are served without authentication, as storage's are,
 * and expire after {@link ForgeServer.blobTtlMs}.
 *
 * GitLab (`PRIVATE-TOKEN: <token>`), `:id` a number or a URL-encoded path:
 * - `GET /api/v4/projects/:id/jobs/:job_id/trace`: the log as text/plain;
 * - `GET /api/v4/projects/:id/variables?page&per_page`: a page of variables, with `X-Page`,
 *   `X-Per-Page`, `X-Next-Page` (empty on the last), `X-Total`, `X-Total-Pages`; 403 below the
 *   Maintainer role ({@link ForgeServer.gitlabRole}).
 *
 * Errors as the platforms answer them: 401 `Bad credentials` / `401 Unauthorized`, 404
 * `Not Found` / `404 Project Not Found`. {@link ForgeServer.fail} makes the next requests to a
 * path answer a status (5xx, 429…). Tokens are made at run time; nothing here is a real credential.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { strToU8, type Zippable, zipSync } from 'fflate';

export interface GithubStepFixture {
  name: string;
  log: string;
}

export interface GithubJobFixture {
  id: number;
  name: string;
  /** The whole job's log (the archive's top-level file and the job's log endpoint). */
  log: string;
  /** Steps' logs, in the job's folder of the archive. */
  steps?: GithubStepFixture[];
  /** An older archive: the job's folder only, no top-level file. */
  stepsOnly?: boolean;
  conclusion?: string;
}

export interface GithubRunFixture {
  owner: string;
  repo: string;
  runId: number;
  jobs: GithubJobFixture[];
  /** Files added to the archive as they are (a name no listed job has, say). */
  extraFiles?: Record<string, string>;
}

export interface GitlabVariableFixture {
  key: string;
  value: string | null;
  masked: boolean;
  protected: boolean;
  hidden?: boolean;
  raw?: boolean;
  variable_type?: 'env_var' | 'file';
  environment_scope?: string;
}

/** One request as the server saw it (the token headers as booleans: whether they were sent). */
export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  bearer: boolean;
  privateToken: boolean;
  apiVersion: string | undefined;
}

export interface FailRule {
  path: RegExp;
  status: number;
  /** How many requests still fail. */
  times: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface ForgeServer {
  /** `http://127.0.0.1:<port>`: GitHub's API root and GitLab's instance URL. */
  url: string;
  githubToken: string;
  gitlabToken: string;
  /** The role the GitLab token's user has (variables need Maintainer). @default 'maintainer' */
  gitlabRole: 'maintainer' | 'developer';
  /** Where log redirects point (default: this server); a spec may point them elsewhere. */
  redirectBase: string;
  /** How long a short-lived download URL answers. @default 60 000 */
  blobTtlMs: number;
  /** Echo the token sent back in 401 messages (as a careless server might). */
  echoTokenIn401: boolean;
  requests: SeenRequest[];
  addGithubRun(run: GithubRunFixture): void;
  setGitlabTrace(project: string, jobId: number, text: string): void;
  setGitlabVariables(project: string, variables: GitlabVariableFixture[]): void;
  /** The next `times` requests whose path matches answer `status`. */
  fail(path: RegExp, status: number, times?: number, extra?: Pick<FailRule, 'headers' | 'body'>): void;
  close(): Promise<void>;
}

/** A job's name as GitHub writes it into a run's zip (`/` and `:` removed, 90 units, trimmed). */
const zipName = (name: string): string => name.replaceAll('/', '').replaceAll(':', '').slice(0, 90).trim();

/** A token-shaped random string for a spec (never a real credential). */
export const randomToken = (prefix: string): string => `${prefix}${randomBytes(18).toString('base64url')}`;

/** Starts the server on an ephemeral loopback port. */
export async function startForgeServer(): Promise<ForgeServer> {
  const runs = new Map<string, GithubRunFixture>();
  const traces = new Map<string, string>();
  const variables = new Map<string, GitlabVariableFixture[]>();
  const blobs = new Map<string, { body: Uint8Array; type: string; until: number }>();
  const failures: FailRule[] = [];

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  };

  const blobUrl = (body: Uint8Array, type: string): string => {
    const id = randomUUID();
    blobs.set(id, { body, type, until: Date.now() + server.blobTtlMs });
    // Shaped like storage's signed URLs: the signature in the query.
    return `${server.redirectBase}/_blob/${id}?sv=2021-08-06&se=${Date.now() + server.blobTtlMs}&sig=${randomBytes(16).toString('base64url')}`;
  };

  const archiveOf = (run: GithubRunFixture): Uint8Array => {
    const files: Zippable = {};
    run.jobs.forEach((job, index) => {
      const name = zipName(job.name);
      if (!job.stepsOnly) files[`${index}_${name}.txt`] = strToU8(job.log);
      (job.steps ?? []).forEach((step, number) => {
        files[`${name}/${number + 1}_${zipName(step.name)}.txt`] = strToU8(step.log);
      });
    });
    for (const [path, text] of Object.entries(run.extraFiles ?? {})) files[path] = strToU8(text);
    return zipSync(files, { level: 6 });
  };

  const jobOf = (job: GithubJobFixture, run: GithubRunFixture) => ({
    id: job.id,
    run_id: run.runId,
    name: job.name,
    status: 'completed',
    conclusion: job.conclusion ?? 'success',
    html_url: `https://github.invalid/${run.owner}/${run.repo}/actions/runs/${run.runId}/job/${job.id}`,
  });

  const github = (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void => {
    if (req.headers.authorization !== `Bearer ${server.githubToken}`) {
      const message = server.echoTokenIn401
        ? `Bad credentials: ${req.headers.authorization ?? ''}`
        : 'Bad credentials';
      json(res, 401, { message, documentation_url: 'https://docs.github.com/rest', status: '401' });
      return;
    }
    const version = req.headers['x-github-api-version'];
    if (version !== undefined && version !== '2022-11-28') {
      json(res, 400, { message: `Unsupported 'X-GitHub-Api-Version': ${String(version)}` });
      return;
    }
    const notFound = () => json(res, 404, { message: 'Not Found', status: '404' });
    let match = /^\/repos\/([^/]+)\/([^/]+)\/actions\/runs\/(\d+)\/(jobs|logs)$/.exec(path);
    if (match) {
      const run = runs.get(`${match[1]}/${match[2]}/${match[3]}`);
      if (!run) {
        notFound();
        return;
      }
      if (match[4] === 'logs') {
        res.writeHead(302, { location: blobUrl(archiveOf(run), 'application/zip') });
        res.end();
        return;
      }
      const perPage = Math.min(100, Number(query.get('per_page') ?? 30));
      const page = Number(query.get('page') ?? 1);
      const jobs = run.jobs.slice((page - 1) * perPage, page * perPage).map((job) => jobOf(job, run));
      json(res, 200, { total_count: run.jobs.length, jobs });
      return;
    }
    match = /^\/repos\/([^/]+)\/([^/]+)\/actions\/jobs\/(\d+)(\/logs)?$/.exec(path);
    if (match) {
      const jobId = Number(match[3]);
      for (const run of runs.values()) {
        if (run.owner !== match[1] || run.repo !== match[2]) continue;
        const job = run.jobs.find((candidate) => candidate.id === jobId);
        if (!job) continue;
        if (!match[4]) {
          json(res, 200, jobOf(job, run));
          return;
        }
        res.writeHead(302, { location: blobUrl(strToU8(job.log), 'text/plain') });
        res.end();
        return;
      }
      notFound();
      return;
    }
    notFound();
  };

  const gitlab = (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void => {
    if (req.headers['private-token'] !== server.gitlabToken) {
      const message = server.echoTokenIn401
        ? `401 Unauthorized: ${String(req.headers['private-token'] ?? '')}`
        : '401 Unauthorized';
      json(res, 401, { message });
      return;
    }
    let match = /^\/api\/v4\/projects\/([^/]+)\/jobs\/(\d+)\/trace$/.exec(path);
    if (match) {
      const project = decodeURIComponent(match[1] ?? '');
      const trace = traces.get(`${project}#${match[2]}`);
      if (trace === undefined) {
        json(res, 404, {
          message: variables.has(project) || hasTraces(project) ? '404 Not found' : '404 Project Not Found',
        });
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(trace);
      return;
    }
    match = /^\/api\/v4\/projects\/([^/]+)\/variables$/.exec(path);
    if (match) {
      const project = decodeURIComponent(match[1] ?? '');
      const all = variables.get(project);
      if (!all) {
        json(res, 404, { message: '404 Project Not Found' });
        return;
      }
      if (server.gitlabRole !== 'maintainer') {
        json(res, 403, { message: '403 Forbidden' });
        return;
      }
      const perPage = Math.min(100, Number(query.get('per_page') ?? 20));
      const page = Number(query.get('page') ?? 1);
      const pages = Math.max(1, Math.ceil(all.length / perPage));
      const items = all.slice((page - 1) * perPage, page * perPage).map((variable) => ({
        variable_type: variable.variable_type ?? 'env_var',
        key: variable.key,
        value: variable.hidden ? null : variable.value,
        protected: variable.protected,
        masked: variable.masked,
        hidden: variable.hidden ?? false,
        raw: variable.raw ?? false,
        environment_scope: variable.environment_scope ?? '*',
        description: null,
      }));
      json(res, 200, items, {
        'x-page': String(page),
        'x-per-page': String(perPage),
        'x-next-page': page < pages ? String(page + 1) : '',
        'x-prev-page': page > 1 ? String(page - 1) : '',
        'x-total': String(all.length),
        'x-total-pages': String(pages),
      });
      return;
    }
    json(res, 404, { error: '404 Not Found' });
  };

  const hasTraces = (project: string): boolean =>
    [...traces.keys()].some((key) => key.startsWith(`${project}#`));

  const blob = (res: ServerResponse, path: string): void => {
    const found = blobs.get(path.slice('/_blob/'.length));
    if (!found || found.until < Date.now()) {
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<Error><Code>AuthenticationFailed</Code></Error>');
      return;
    }
    res.writeHead(200, { 'content-type': found.type, 'content-length': String(found.body.length) });
    res.end(found.body);
  };

  const http = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://forge.invalid');
    // The raw path: GitLab's `:id` keeps its %2F.
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    server.requests.push({
      method: req.method ?? 'GET',
      path,
      query: Object.fromEntries(url.searchParams),
      bearer: req.headers.authorization !== undefined,
      privateToken: req.headers['private-token'] !== undefined,
      apiVersion: req.headers['x-github-api-version'] as string | undefined,
    });
    const rule = failures.find((candidate) => candidate.times > 0 && candidate.path.test(path));
    if (rule) {
      rule.times--;
      res.writeHead(rule.status, { 'content-type': 'application/json', ...rule.headers });
      res.end(rule.body ?? JSON.stringify({ message: `${rule.status} from the forge server` }));
      return;
    }
    if (path.startsWith('/_blob/')) {
      blob(res, path);
      return;
    }
    if (path.startsWith('/api/v4/')) {
      gitlab(req, res, path, url.searchParams);
      return;
    }
    github(req, res, path, url.searchParams);
    return;
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  const server: ForgeServer = {
    url,
    githubToken: randomToken('gh-test-'),
    gitlabToken: randomToken('gl-test-'),
    gitlabRole: 'maintainer',
    redirectBase: url,
    blobTtlMs: 60_000,
    echoTokenIn401: false,
    requests: [],
    addGithubRun: (run) => runs.set(`${run.owner}/${run.repo}/${run.runId}`, run),
    setGitlabTrace: (project, jobId, text) => traces.set(`${project}#${jobId}`, text),
    setGitlabVariables: (project, list) => variables.set(project, list),
    fail: (path, status, times = 1, extra = {}) => failures.push({ path, status, times, ...extra }),
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
  return server;
}
