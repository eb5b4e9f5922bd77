/**
 * The local stack, on free loopback ports: a real moto server (S3, IAM, STS, Secrets
 * Manager, Scheduler), dynalite for DynamoDB, and a real OpenBao dev server.
 *
 * Why dynalite beside moto: the state store is the hottest path of every engine, and
 * moto's DynamoDB spends 4–7× dynalite's server CPU on a conditional write and 70–100× on
 * a query (moto's Query reads the whole table), while dynalite keeps DynamoDB's validation
 * and atomic conditional writes (test/integration/local-dynamodb.test.ts; `npm run
 * bench:store` measures both). Its data lives in memory and goes with the process, like
 * moto's: on LevelDB on disk it was no faster and spent more CPU per query.
 *
 * - `ensureVenv` installs the pinned moto and OpenBao into `.venv/` when missing
 *   (dynalite is an npm dependency).
 * - `startStack` starts the three, waits until they answer, enables AppRole, and
 *   records the endpoints in `<stateDir>/stack.json` (mode 0600: it holds the
 *   dev root token) where the CLI and the tests find them.
 * - `stopStack` ends the three process groups and waits until they are gone.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const VENV = join(REPO_ROOT, '.venv');
const REQUIREMENTS = join(REPO_ROOT, 'scripts', 'requirements-stack.txt');
const MOTO_LAUNCHER = join(REPO_ROOT, 'scripts', 'moto-server.py');
const DYNALITE_LAUNCHER = join(REPO_ROOT, 'scripts', 'dynalite-server.mjs');

/** Where `keywarden dev` keeps the running stack's state unless told otherwise. */
export const DEFAULT_STATE_DIR = join(REPO_ROOT, '.keywarden', 'dev');

export const StackEndpointsSchema = z.object({
  region: z.string(),
  moto: z.object({ endpoint: z.url(), pid: z.number().int(), log: z.string() }),
  /** dynalite, serving DynamoDB alone (moto serves the other AWS services). */
  dynamodb: z.object({ endpoint: z.url(), pid: z.number().int(), log: z.string() }),
  vault: z.object({
    addr: z.url(),
    token: z.string(),
    pid: z.number().int(),
    log: z.string(),
    auditLog: z.string(),
  }),
  startedAt: z.iso.datetime(),
});
/** What a running local stack publishes to its clients. */
export type StackEndpoints = z.infer<typeof StackEndpointsSchema>;

/** The stack could not be installed, started or reached. */
export class LocalStackError extends Error {
  override readonly name = 'LocalStackError';
  readonly retryable = false;
}

const stackFile = (stateDir: string) => join(stateDir, 'stack.json');

/** Installs the pinned moto and OpenBao into `.venv/` unless they are already there. */
export function ensureVenv(log: (line: string) => void = () => {}): void {
  const pins = readFileSync(REQUIREMENTS, 'utf8');
  const marker = join(VENV, `.keywarden-${createHash('sha256').update(pins).digest('hex').slice(0, 12)}`);
  if (existsSync(marker)) return;
  log('installing moto, OpenBao and schemathesis into .venv/ (first run only)…');
  try {
    if (!existsSync(join(VENV, 'bin', 'python'))) {
      execFileSync('python3', ['-m', 'venv', VENV], { stdio: 'inherit' });
    }
    // --no-compile: pip would byte-compile every module of every package (moto's thousands)
    // up front, 14 of its 36 s here; Python compiles and caches the few a server imports, once.
    execFileSync(
      join(VENV, 'bin', 'pip'),
      ['install', '--quiet', '--disable-pip-version-check', '--no-compile', '-r', REQUIREMENTS],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
  } catch (cause) {
    throw new LocalStackError(
      'could not install the local stack into .venv/: expected python3 with venv and pip, and access to PyPI. ' +
        'Check `python3 -m venv --help`, then run `keywarden dev up` again.',
      { cause },
    );
  }
  writeFileSync(marker, pins);
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port')),
      );
    });
  });
}

export function launch(
  command: string,
  args: string[],
  logPath: string,
  env: NodeJS.ProcessEnv = {},
): ChildProcess {
  const fd = openSync(logPath, 'a');
  // detached: the server gets its own process group, so stopStack can end it and its children together.
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...env },
    cwd: REPO_ROOT,
  });
  closeSync(fd);
  child.unref();
  return child;
}

/** How long a server of the stack may take to listen and answer, in all. */
const STARTUP_MS = 60_000;

async function waitFor(
  what: string,
  url: string,
  logPath: string,
  pid: number,
  {
    headers = {},
    deadline = Date.now() + STARTUP_MS,
  }: { headers?: Record<string, string>; deadline?: number } = {},
) {
  let last: unknown;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) throw exitedWhileStarting(what, logPath);
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new LocalStackError(
    `${what} did not answer at ${url} within ${STARTUP_MS / 1000} s of its start (last: ${String(last)}); see ${logPath}`,
  );
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The process ids a `stack.json` records, read loosely: one written by an older keywarden
 * (before dynalite) must still be stoppable.
 */
const RecordedPidsSchema = z.object({
  moto: z.object({ pid: z.number().int() }).optional(),
  dynamodb: z.object({ pid: z.number().int() }).optional(),
  vault: z.object({ pid: z.number().int() }).optional(),
});

const readStackFile = (stateDir: string): unknown => {
  const file = stackFile(stateDir);
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
};

/**
 * Reads the endpoints of the stack in `stateDir`, or undefined when none was started.
 * @throws LocalStackError when the record is not one this keywarden writes (an older one).
 */
export function readStack(stateDir = DEFAULT_STATE_DIR): StackEndpoints | undefined {
  const recorded = readStackFile(stateDir);
  if (recorded === undefined) return undefined;
  const parsed = StackEndpointsSchema.safeParse(recorded);
  if (parsed.success) return parsed.data;
  throw new LocalStackError(
    `the local stack recorded in ${stackFile(stateDir)} was started by another version of keywarden ` +
      `(${parsed.error.issues[0]?.path.join('.') ?? 'its shape'} does not match); ` +
      'run `keywarden dev down`, then `keywarden dev up`.',
  );
}

/** Whether each server of the stack in `stateDir` is running and answering. */
export async function stackStatus(stateDir = DEFAULT_STATE_DIR) {
  const stack = readStack(stateDir);
  if (!stack) return { running: false as const };
  const answers = async (url: string) => {
    try {
      return (await fetch(url, { signal: AbortSignal.timeout(2_000) })).ok;
    } catch {
      return false;
    }
  };
  return {
    running: true as const,
    stack,
    moto: isAlive(stack.moto.pid) && (await answers(`${stack.moto.endpoint}/moto-api/data.json`)),
    // DynamoDB answers a plain GET of its root with `healthy: …`, and so does dynalite.
    dynamodb: isAlive(stack.dynamodb.pid) && (await answers(stack.dynamodb.endpoint)),
    vault: isAlive(stack.vault.pid) && (await answers(`${stack.vault.addr}/v1/sys/health`)),
  };
}

/**
 * Starts moto, dynalite and OpenBao on free loopback ports and records them in `stateDir`.
 * A stack already recorded there and still running is returned as it is.
 */
export async function startStack(
  stateDir = DEFAULT_STATE_DIR,
  log: (line: string) => void = () => {},
): Promise<StackEndpoints> {
  // A stack recorded by another version is stopped and started anew, not reused.
  const recorded = readStackFile(stateDir);
  if (recorded !== undefined && !StackEndpointsSchema.safeParse(recorded).success) await stopStack(stateDir);
  const status = await stackStatus(stateDir);
  if (status.running && status.moto && status.dynamodb && status.vault) return status.stack;
  if (status.running) await stopStack(stateDir);
  ensureVenv(log);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });

  const motoLog = join(stateDir, 'moto.log');
  const dynamoLog = join(stateDir, 'dynalite.log');
  const vaultLog = join(stateDir, 'openbao.log');
  const auditLog = join(stateDir, 'openbao-audit.log');
  // Custom root token ids may not use the server's own `s.` prefix.
  const token = `kwdev-${randomBytes(18).toString('hex')}`;
  const started = await Promise.allSettled([
    startMoto(motoLog),
    startOwnPort('dynalite', dynaliteCommand(), dynamoLog),
    startOpenBao(stateDir, token, vaultLog, auditLog),
  ]);
  const [moto, dynamo, vault] = started;
  if (moto.status === 'rejected' || dynamo.status === 'rejected' || vault.status === 'rejected') {
    await Promise.all(
      started.map((one) => (one.status === 'fulfilled' ? endGroup(one.value.pid) : undefined)),
    );
    throw started.find((one) => one.status === 'rejected')?.reason;
  }
  const stack: StackEndpoints = {
    region: 'us-east-1',
    moto: { endpoint: moto.value.endpoint, pid: moto.value.pid, log: motoLog },
    dynamodb: { endpoint: dynamo.value.endpoint, pid: dynamo.value.pid, log: dynamoLog },
    vault: { addr: vault.value.endpoint, token, pid: vault.value.pid, log: vaultLog, auditLog },
    startedAt: new Date().toISOString(),
  };
  writeFileSync(stackFile(stateDir), JSON.stringify(stack, null, 2), { mode: 0o600 });
  try {
    const enable = await fetch(`${stack.vault.addr}/v1/sys/auth/approle`, {
      method: 'POST',
      headers: { 'X-Vault-Token': token },
      body: JSON.stringify({ type: 'approle' }),
    });
    if (!enable.ok) throw new LocalStackError(`enabling AppRole failed: HTTP ${enable.status}`);
  } catch (error) {
    await stopStack(stateDir);
    throw error;
  }
  return stack;
}

/** A server started and answering: where, and its process group. */
interface Started {
  endpoint: string;
  pid: number;
}

/** How to run one of the stack's servers: the command and its arguments but the port. */
interface ServerCommand {
  command: string;
  args: (port: number) => string[];
  env?: NodeJS.ProcessEnv;
}

const motoCommand: ServerCommand = {
  command: join(VENV, 'bin', 'python'),
  args: (port) => [MOTO_LAUNCHER, '127.0.0.1', String(port)],
};

/** dynalite, in memory, or on LevelDB in `dataDir` when given. */
const dynaliteCommand = (dataDir?: string): ServerCommand => ({
  command: process.execPath,
  args: (port) => [DYNALITE_LAUNCHER, '127.0.0.1', String(port), ...(dataDir === undefined ? [] : [dataDir])],
});

/**
 * Starts a server on a port it binds itself (`0`) and writes to the file named by
 * KEYWARDEN_PORT_FILE (moto's and dynalite's launchers do), then waits until it answers. A port
 * picked here and handed over could be taken by another process while the server starts (moto
 * takes 1–2 s to import), and the readiness check would then hear that other process: a CI run
 * once created the local alert topic on a server that was not its moto.
 */
async function startOwnPort(
  what: string,
  server: ServerCommand,
  logPath: string,
  readyPath = '/',
): Promise<Started> {
  const portFile = `${logPath}.port`;
  rmSync(portFile, { force: true });
  const child = launch(server.command, server.args(0), logPath, {
    ...server.env,
    KEYWARDEN_PORT_FILE: portFile,
  });
  const pid = child.pid;
  if (pid === undefined) throw new LocalStackError(`could not start ${what}; see ${logPath}`);
  // One deadline for listening and answering: this settles (and ends the server) within it.
  const deadline = Date.now() + STARTUP_MS;
  try {
    const port = await waitForPortFile(what, portFile, logPath, pid, deadline);
    const endpoint = `http://127.0.0.1:${port}`;
    await waitFor(what, new URL(readyPath, endpoint).href, logPath, pid, { deadline });
    return { endpoint, pid };
  } catch (error) {
    await endGroup(pid);
    throw error;
  } finally {
    rmSync(portFile, { force: true });
  }
}

/** The moto launcher (scripts/moto-server.py) on a port of its own, answering. */
export const startMoto = (logPath: string): Promise<Started> =>
  startOwnPort('moto server', motoCommand, logPath, '/moto-api/data.json');

async function waitForPortFile(
  what: string,
  portFile: string,
  logPath: string,
  pid: number,
  deadline: number,
): Promise<number> {
  while (Date.now() < deadline) {
    if (existsSync(portFile)) return Number(readFileSync(portFile, 'utf8'));
    if (!isAlive(pid)) throw exitedWhileStarting(what, logPath);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new LocalStackError(`${what} did not listen within ${STARTUP_MS / 1000} s; see ${logPath}`);
}

const exitedWhileStarting = (what: string, logPath: string) =>
  new LocalStackError(`${what} exited while starting: ${logTail(logPath)} (full log: ${logPath})`);

const logTail = (logPath: string) => readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ');

/**
 * The OpenBao dev server. It takes its address only from its command line and says the port it
 * bound only in its log, so it gets a free port picked here: it binds within milliseconds, and
 * when another process took the port meanwhile it exits at once and is started again on another.
 * Ready means it knows this stack's root token: no other server on that port would.
 */
export async function startOpenBao(
  stateDir: string,
  token: string,
  logPath: string,
  auditLog: string,
  /** The port each start tries; a test hands one that is taken first. */
  pickPort: () => Promise<number> = freePort,
): Promise<Started> {
  const config = join(stateDir, 'openbao.hcl');
  // OpenBao accepts audit devices only from its configuration file.
  writeFileSync(
    config,
    `audit "file" "file" {\n  description = "keywarden local audit log"\n  options {\n    file_path = ${JSON.stringify(auditLog)}\n  }\n}\n`,
  );
  for (let attempt = 1; ; attempt++) {
    const port = await pickPort();
    const child = launch(
      join(VENV, 'bin', 'bao'),
      [
        'server',
        '-dev',
        `-dev-root-token-id=${token}`,
        `-dev-listen-address=127.0.0.1:${port}`,
        `-config=${config}`,
      ],
      logPath,
      { BAO_DISABLE_MLOCK: 'true', HOME: stateDir },
    );
    const pid = child.pid;
    if (pid === undefined) throw new LocalStackError(`could not start OpenBao; see ${logPath}`);
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await waitFor('OpenBao', `${endpoint}/v1/auth/token/lookup-self`, logPath, pid, {
        headers: { 'X-Vault-Token': token },
      });
      return { endpoint, pid };
    } catch (error) {
      await endGroup(pid);
      if (attempt === 3 || !/address already in use/.test(logTail(logPath))) throw error;
    }
  }
}

/**
 * A dynalite of its own, beside any stack: on a free loopback port, in memory or on
 * LevelDB in `dataDir`, answering when this resolves. The caller ends it with `endGroup(pid)`.
 * `npm run bench:store` uses it to measure the on-disk store against the stack's in-memory one.
 */
export async function startDynalite(
  logPath: string,
  dataDir?: string,
): Promise<{ endpoint: string; pid: number; log: string }> {
  const started = await startOwnPort('dynalite', dynaliteCommand(dataDir), logPath);
  return { ...started, log: logPath };
}

export async function endGroup(pid: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  for (let waited = 0; waited < 10_000 && isAlive(pid); waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
  }
  if (isAlive(pid)) signal('SIGKILL');
}

/** Stops the stack recorded in `stateDir` (its three process groups) and forgets it. */
export async function stopStack(stateDir = DEFAULT_STATE_DIR): Promise<boolean> {
  const recorded = readStackFile(stateDir);
  if (recorded === undefined) return false;
  const { moto, dynamodb, vault } = RecordedPidsSchema.parse(recorded);
  await Promise.all([moto, dynamodb, vault].flatMap((server) => (server ? [endGroup(server.pid)] : [])));
  rmSync(stackFile(stateDir), { force: true });
  return true;
}
