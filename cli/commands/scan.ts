/**
 * `keywarden scan`: find credentials in files, folders, standard input or a repository's
 * history; tell keywarden's own (by keyed fingerprint) from the others; with `--contain`, end
 * each exposed managed one and re-issue its identity (an incident campaign per credential, run
 * here by the local runtime); record the others as `exposed-unmanaged` findings. Prints where,
 * which rule, a prefix of at most 4 characters and the fingerprint; never a value.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import type { FanOutExposureAlerts } from '../../functions/adapters/alerts/index.ts';
import { CombinedSecretDetector } from '../../functions/adapters/scan/detector.ts';
import { forgeSettingsFromEnv } from '../../functions/adapters/scan/finished-job-log.ts';
import {
  type FetchedLog,
  fetchGithubRunLogs,
  parseGithubRun,
} from '../../functions/adapters/scan/github-logs.ts';
import {
  fetchGitlabJobTrace,
  listGitlabVariables,
  parseGitlabJob,
} from '../../functions/adapters/scan/gitlab-api.ts';
import { alerts, Composition, exposure, wire } from '../../functions/adapters/wiring.ts';
import { auditCiVariables, type CiVariable } from '../../functions/core/ci-variable-audit.ts';
import { KeywardenError } from '../../functions/core/errors.ts';
import {
  atOrAbove,
  type Containment,
  type ExposureHit,
  placeOf,
  SHORT_FINGERPRINT,
} from '../../functions/core/exposure.ts';
import { type ScanInput, scanAndContain } from '../../functions/core/exposure-batch.ts';
import { type Severity, SeveritySchema } from '../../functions/core/findings.ts';
import { localContainment } from '../../functions/local/exposure-containment.ts';
import { actor, loadConfig } from '../context.ts';
import { ExitCode } from '../errors.ts';
import { printJson, printTable, say } from '../output.ts';

interface ScanOptions {
  githubRun?: string;
  gitlabJob?: string;
  gitlabVariables?: string;
  githubApi?: string;
  gitlabUrl?: string;
  git?: boolean;
  contain?: boolean;
  json?: boolean;
  failOn: Severity;
}

/** Files larger than this are skipped (said on stderr): a scan reads each file whole. */
const MAX_FILE_BYTES = 256 * 1024 * 1024;
/** A NUL byte in a file's first bytes marks it binary. */
const SNIFF_BYTES = 8_192;

export function registerScan(program: Command): void {
  program
    .command('scan')
    .description(
      'find exposed credentials in files, folders, stdin (-) or a repository history (--git); contain the managed ones with --contain',
    )
    .argument('[paths...]', 'files or folders to scan, - for standard input; with --git, repositories', [])
    .option('--git', "scan each repository's history (every commit of every branch), not its files")
    .option(
      '--contain',
      'end each exposed managed credential and re-issue its identity (an incident campaign, with a report)',
    )
    .option(
      '--github-run <owner/repo/run-id>',
      "a GitHub Actions run's job logs (GITHUB_TOKEN may read them)",
    )
    .option('--gitlab-job <project/job-id>', "a GitLab job's log (GITLAB_TOKEN may read it)")
    .option(
      '--gitlab-variables <project>',
      "a GitLab project's CI/CD variables (GITLAB_TOKEN of a Maintainer): managed credentials stored unmasked or unprotected, and unmanaged ones",
    )
    .option('--github-api <url>', 'the GitHub API (default GITHUB_API_URL, else https://api.github.com)')
    .option('--gitlab-url <url>', 'the GitLab instance (default CI_SERVER_URL, else https://gitlab.com)')
    .option('--json', 'print JSON')
    .addOption(
      new Option('--fail-on <severity>', 'exit 1 when a hit at or above this severity exists')
        .choices(SeveritySchema.options)
        .default('high'),
    )
    .action(async (paths: string[], options: ScanOptions, command: Command) => {
      const usage = (message: string): never => command.error(`keywarden scan: ${message}`, { exitCode: 2 });
      const forge = Boolean(options.githubRun || options.gitlabJob || options.gitlabVariables);
      if (paths.length === 0 && !forge) {
        if (process.stdin.isTTY)
          usage('expected PATH… or - for standard input (or --github-run, --gitlab-job, --gitlab-variables)');
        paths = ['-'];
      }
      if (options.git && paths.includes('-'))
        usage('--git scans repositories; - (standard input) is not one');
      if (options.contain && process.env.KEYWARDEN_TABLE) {
        usage(
          '--contain runs containment on the local runtime; in AWS the deployed scanner contains (or run keywarden revoke --selector fingerprint=… for a hit)',
        );
      }
      await scan(paths, options);
    });
}

async function scan(paths: readonly string[], options: ScanOptions): Promise<void> {
  const config = loadConfig();
  const services = wire(config);
  const composition = new Composition(config, services.clock);
  // Owners are told only of what is contained: the alert topic and Slack, where configured.
  const channels = options.contain ? composition.get(alerts) : undefined;
  const fetched = await forgeTexts(options);
  let bytes = 0;
  function* counted(): Generator<ScanInput> {
    // One text at a time: a folder's files are read as the scan reaches them.
    for (const list of [texts(paths, Boolean(options.git)), fetched.texts]) {
      for (const input of list) {
        bytes += Buffer.byteLength(input.text);
        yield input;
      }
    }
  }
  const { hits, containments, findings, scanMs } = await scanAndContain(
    {
      exposure: composition.get(exposure),
      // secretlint's recommended preset and keywarden's own rules; managed values are found without them too.
      detector: new CombinedSecretDetector(),
      containment: localContainment(services, actor(), say),
      actor: actor(),
      alerts: channels,
    },
    counted(),
    { contain: Boolean(options.contain) },
  );
  print(hits, containments, options, { bytes, seconds: scanMs / 1_000, channels });
  const unprotected = fetched.variables ? variableProblems(fetched.variables, hits) : [];
  for (const problem of unprotected) say(`${problem.severity}: ${problem.message}; fix: ${problem.fix}`);
  if (findings.length) {
    say(
      `${findings.length} unmanaged credential(s) recorded as exposed-unmanaged findings (keywarden findings --stored)`,
    );
  }
  const failing = (severity: Severity) =>
    SeveritySchema.options.indexOf(severity) >= SeveritySchema.options.indexOf(options.failOn);
  if (hits.some((hit) => atOrAbove(hit, options.failOn)) || unprotected.some((p) => failing(p.severity))) {
    throw new ExitCode(1);
  }
}

/**
 * The texts the platforms hold: a GitHub run's job logs, a GitLab job's log, a GitLab project's
 * CI/CD variables (one text per variable, its source naming project and key). Tokens come from
 * GITHUB_TOKEN / GITLAB_TOKEN and never appear in a message.
 */
async function forgeTexts(options: ScanOptions): Promise<{ texts: ScanInput[]; variables?: CiVariable[] }> {
  if (!options.githubRun && !options.gitlabJob && !options.gitlabVariables) return { texts: [] };
  const settings = forgeSettingsFromEnv(process.env, {
    githubApi: options.githubApi,
    gitlabUrl: options.gitlabUrl,
  });
  const logs: FetchedLog[] = [];
  if (options.githubRun)
    logs.push(...(await fetchGithubRunLogs({ ...settings.github, ...parseGithubRun(options.githubRun) })));
  if (options.gitlabJob)
    logs.push(await fetchGitlabJobTrace({ ...settings.gitlab, ...parseGitlabJob(options.gitlabJob) }));
  for (const log of logs) if (log.note) say(`${log.source.location}: ${log.note}`);
  const variables = options.gitlabVariables
    ? await listGitlabVariables({ ...settings.gitlab, project: options.gitlabVariables })
    : undefined;
  const valued = (variables ?? []).flatMap((v) =>
    v.value ? [{ text: v.value.reveal(), source: v.source }] : [],
  );
  return {
    texts: [...logs.map(({ source, text }) => ({ source, text })), ...valued],
    ...(variables ? { variables } : {}),
  };
}

/** Managed credentials kept in CI/CD variables that are not both masked and protected (ci-variable-audit.ts). */
function variableProblems(variables: readonly CiVariable[], hits: readonly ExposureHit[]) {
  const managedAt = new Map(
    hits.flatMap((hit) =>
      hit.status === 'managed' && hit.managed ? [[hit.source.location, hit.managed] as const] : [],
    ),
  );
  const byValue = new Map(
    variables.flatMap((v) => {
      const ref = managedAt.get(v.source.location);
      return v.value && ref ? [[v.value.reveal(), ref] as const] : [];
    }),
  );
  return auditCiVariables({ variables, isManaged: (value) => byValue.get(value.reveal()) }).problems.filter(
    (problem) => problem.kind === 'managed-unprotected',
  );
}

function* texts(paths: readonly string[], git: boolean): Generator<ScanInput> {
  for (const path of paths) {
    if (git) yield* gitHistory(path);
    else if (path === '-') yield { text: readFileSync(0, 'utf8'), source: { kind: 'stdin', location: '-' } };
    else yield* files(path);
  }
}

function* files(path: string): Generator<ScanInput> {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    throw new KeywardenError(`cannot read ${path}: expected a file or folder that exists`);
  }
  if (stat.isDirectory()) {
    for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      if (entry.name === '.git') continue;
      if (entry.isDirectory() || entry.isFile()) yield* files(join(path, entry.name));
    }
    return;
  }
  if (!stat.isFile()) return;
  if (stat.size > MAX_FILE_BYTES) {
    say(`skipped ${path}: ${stat.size} bytes, over ${MAX_FILE_BYTES}`);
    return;
  }
  if (isBinary(path)) return;
  yield { text: readFileSync(path, 'utf8'), source: { kind: 'file', location: path } };
}

function isBinary(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const read = readSync(fd, buffer, 0, SNIFF_BYTES, 0);
    return buffer.subarray(0, read).includes(0);
  } finally {
    closeSync(fd);
  }
}

/**
 * The lines each commit added, per file, from `git log -p --all` (every branch and tag): a
 * credential committed once and removed later is still in the history, under that commit.
 */
function* gitHistory(repo: string): Generator<ScanInput> {
  const log = spawnSync(
    'git',
    ['-C', repo, 'log', '-p', '--all', '--no-color', '--no-ext-diff', '--format=commit %H', '--unified=0'],
    { encoding: 'utf8', maxBuffer: 2 * 1024 * 1024 * 1024 },
  );
  if (log.status !== 0) {
    throw new KeywardenError(
      `git log in ${repo} failed: ${(log.stderr || log.error?.message || '').trim()}; expected a git repository`,
    );
  }
  let commit = '';
  let file = '';
  let next = 0;
  let lines: string[] = [];
  let numbers: number[] = [];
  function* flush(): Generator<ScanInput> {
    if (lines.length && file) {
      const mapped = numbers;
      yield {
        text: lines.join('\n'),
        source: { kind: 'git', location: `${repo}:${file}`, commit },
        line: (line) => mapped[line - 1] ?? line,
      };
    }
    lines = [];
    numbers = [];
  }
  for (const line of log.stdout.split('\n')) {
    if (line.startsWith('commit ') && /^commit [0-9a-f]{40}$/.test(line)) {
      yield* flush();
      commit = line.slice(7);
      file = '';
    } else if (line.startsWith('+++ ')) {
      yield* flush();
      file = line === '+++ /dev/null' ? '' : line.replace(/^\+\+\+ (b\/)?/, '');
    } else if (line.startsWith('@@')) {
      next = Number(/\+(\d+)/.exec(line)?.[1] ?? 1);
    } else if (line.startsWith('+') && file) {
      lines.push(line.slice(1));
      numbers.push(next++);
    }
  }
  yield* flush();
}

const managedText = (hit: ExposureHit): string => {
  const m = hit.managed;
  if (!m) return `unmanaged${hit.note ? ` (${hit.note})` : ''}`;
  return `${m.identityId} (owner ${m.owner ?? 'none declared'}, ${m.repo} ${m.stage}, ${m.environment}, version ${m.versionId} ${m.versionStage === 'revoked' ? 'revoked already' : m.versionStage})`;
};

/** Where the owner's alert went, or why it did not (the containment stands either way). */
function alerted(c: Containment, channels: FanOutExposureAlerts | undefined): string {
  if (c.alerted) return `alert sent to ${channels?.description ?? 'the alert channels'}`;
  if (c.alerted === false) return `alert NOT sent: ${c.alertError}`;
  // Channels but no alert: a failure its owner was told of when it first failed.
  if (channels) return 'its owner was alerted when it first failed: not again';
  return 'no alert channel configured (keywarden dev up creates the alert topic)';
}

/** What a containment did, in the alert line (`started`: the deployed scanner's state machine). */
const ENDED: Record<'contained' | 'started' | 'failed', string> = {
  contained: 'ended',
  started: 'containment started',
  failed: 'NOT fully ended',
};

const shortFingerprint = (fingerprint: string): string => `${fingerprint.slice(0, SHORT_FINGERPRINT)}…`;

function print(
  hits: readonly ExposureHit[],
  containments: readonly Containment[],
  options: ScanOptions,
  measured: { bytes: number; seconds: number; channels: FanOutExposureAlerts | undefined },
): void {
  if (options.json) {
    printJson({
      hits: hits.map(({ managed, ...hit }) => ({
        ...hit,
        place: placeOf(hit),
        ...(managed ? { managed } : {}),
      })),
      containments,
      scanned: { bytes: measured.bytes, seconds: measured.seconds },
    });
  } else if (hits.length) {
    printTable(
      ['SEVERITY', 'WHERE', 'RULE', 'PREFIX', 'FINGERPRINT', 'MANAGED'],
      hits.map((hit) => [
        hit.severity,
        placeOf(hit),
        hit.rule,
        hit.prefix,
        shortFingerprint(hit.fingerprint),
        managedText(hit),
      ]),
    );
  }
  for (const c of containments) {
    const owner = c.owner ?? '(no owner declared)';
    if (c.status === 'already-contained') {
      say(
        `${c.identityId}: already contained (${c.incident}, campaign ${c.campaignId ?? '?'}; first seen in ${c.firstSeen}); nothing to do`,
      );
      continue;
    }
    if (c.status === 'in-progress') {
      say(
        `${c.identityId}: being contained by another scan at this moment (${c.incident}; first seen in ${c.firstSeen}); nothing to do`,
      );
      continue;
    }
    say(
      `alert ${owner}: ${c.identityId}'s credential was exposed in ${c.firstSeen}; ${ENDED[c.status]} by ${c.incident} (campaign ${c.campaignId})` +
        `${c.reissuedVersionId ? `, fresh credential ${c.reissuedVersionId} delivered` : c.reissue ? `, re-issue ${c.reissue}` : ''}` +
        `${c.report ? `; report ${c.report}` : ''}${c.failures.length ? `; failed: ${c.failures.join('; ')}` : ''}` +
        `; ${alerted(c, measured.channels)}`,
    );
  }
  const live = hits.filter((h) => h.severity === 'critical').length;
  if (live && !options.contain) {
    say(`${live} live keywarden credential(s) exposed: run again with --contain to end and replace them`);
  }
  const managed = hits.filter((h) => h.status === 'managed').length;
  say(
    `scanned ${(measured.bytes / 1_048_576).toFixed(1)} MB in ${measured.seconds.toFixed(1)} s: ${hits.length} hit(s), ${managed} managed, ${hits.length - managed} unmanaged`,
  );
}
