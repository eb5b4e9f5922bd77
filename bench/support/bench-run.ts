/**
 * The life of one benchmark process, shared by bench/rotation.ts and bench/revocation.ts:
 * parse the options (exit 2 with the usage line on a bad one), run the benchmark with a
 * local stack of its own in a temporary directory, and stop that stack (and only it) at
 * the end, on error and on Ctrl-C. A watchdog (stack-reaper.ts) covers the exits that
 * run no handler.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { type StackEndpoints, startStack, stopStack } from '../../scripts/local-stack.ts';
import { startReaper } from './stack-reaper.ts';

/** What a benchmark's `main` gets from the run around it. */
export interface BenchRun {
  /** The temporary directory of the run's local stack (server logs, pids). */
  readonly stateDir: string;
  /** Starts the local stack in `stateDir`, watched by a reaper should this process die. */
  startStack(): Promise<StackEndpoints>;
}

export interface BenchProps<O> {
  /** The usage line printed after an options error, such as `usage: npx tsx bench/x.ts [--n 10]`. */
  usage: string;
  /** Reads the command line; throws with a message naming the bad option. */
  parseOptions(argv: string[]): O;
  /** The benchmark itself. */
  main(options: O, run: BenchRun): Promise<void>;
  /** Called first when the run ends, before the stack stops (a sampler to stop, say). */
  onEnd?(): void;
}

/** Round to `digits` decimals, for the printed and recorded numbers. */
export const round = (n: number, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Runs a benchmark as its whole process: never returns, exits with its code. */
export async function runBench<O>(props: BenchProps<O>): Promise<never> {
  let options: O;
  try {
    options = props.parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    console.error(props.usage);
    process.exit(2);
  }

  const stateDir = mkdtempSync(join(tmpdir(), 'keywarden-bench-'));
  let stopReaper = () => {};
  const run: BenchRun = {
    stateDir,
    async startStack() {
      process.stderr.write(`starting the local stack in ${stateDir}…\n`);
      const stack = await startStack(stateDir, (line) => process.stderr.write(`${line}\n`));
      stopReaper = startReaper(stack, stateDir).stop;
      return stack;
    },
  };
  let keepStateDir = false;
  let cleaning: Promise<void> | undefined;
  /** Stops the stack this run started (and only it); safe to call more than once. */
  const cleanup = () => {
    cleaning ??= (async () => {
      props.onEnd?.();
      const stopped = await stopStack(stateDir).then(
        () => true,
        (error: unknown) => {
          console.error(`could not stop the local stack in ${stateDir}: ${(error as Error).message}`);
          return false;
        },
      );
      // Left running when stopping failed: it ends the servers once this process is gone.
      if (stopped) stopReaper();
      if (keepStateDir) console.error(`server logs kept in ${stateDir}`);
      else rmSync(stateDir, { recursive: true, force: true });
    })();
    return cleaning;
  };
  stopOnSignals(cleanup);

  try {
    await props.main(options, run);
  } catch (error) {
    keepStateDir = true;
    console.error(`benchmark failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
  // Keep-alive sockets to the stopped servers must not hold the process open.
  process.exit(process.exitCode ?? 0);
}

/** Writes a run's record to `<dir>/<bench>-<date>.json` and says where. */
export function writeResults(dir: string, bench: string, date: Date, record: object): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${bench}-${date.toISOString().replace(/:/g, '-').replace(/\..*/, '')}.json`);
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`results: ${relative(process.cwd(), file)}`);
}

/**
 * On SIGINT or SIGTERM, `cleanup` (idempotent: it stops the local stack), then exit with the
 * signal's code. `on`, not `once`: a second signal (tsx relays one when the first is not
 * acknowledged at once) must find a handler here, or tsx's own handler exits before the stack is
 * stopped.
 */
export function stopOnSignals(cleanup: () => Promise<unknown>): void {
  let told = false;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.on(signal, () => {
      if (!told) console.error(`\n${signal}: stopping the local stack…`);
      told = true;
      void cleanup().finally(() => process.exit(code));
    });
  }
}
