/**
 * What the benchmark measures besides wall time: latency percentiles, peak RSS, and a
 * ledger of calls (to AWS, to Vault, and across the engine's ports) that says where the
 * time went. The ledger only observes: every call still reaches the same client.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';

/** The value below which `p` percent of `values` lie (nearest rank); 0 for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? 0;
}

/** Samples `process.memoryUsage().rss` every `everyMs` and keeps the peak of each phase. */
export class RssSampler {
  readonly #timer: NodeJS.Timeout;
  #phase = 'idle';
  #peakOfPhase = new Map<string, number>();
  #peak = 0;

  constructor(everyMs = 100) {
    this.#timer = setInterval(() => this.sample(), everyMs);
    // The sampler never keeps the process alive on its own.
    this.#timer.unref();
    this.sample();
  }

  sample(): void {
    const rss = process.memoryUsage().rss;
    this.#peak = Math.max(this.#peak, rss);
    this.#peakOfPhase.set(this.#phase, Math.max(this.#peakOfPhase.get(this.#phase) ?? 0, rss));
  }

  /** Starts a new phase; its peak counts from the current RSS. */
  phase(name: string): void {
    this.sample();
    this.#phase = name;
    this.sample();
  }

  peakOf(phase: string): number {
    return this.#peakOfPhase.get(phase) ?? 0;
  }

  get peak(): number {
    return this.#peak;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Calls, failures and time spent, per name. Concurrent calls overlap, so times add up past wall time. */
export interface CallStats {
  calls: number;
  failures: Record<string, number>;
  totalMs: number;
  /** When the first call began and the last one ended (performance.now()): the span these calls took. */
  firstMs: number;
  lastMs: number;
}

/** A ledger of timed calls, by name (`iam.CreateAccessKey`, `vault.write auth/token/create-orphan`, `audit.append`). */
export class CallLedger {
  readonly #entries = new Map<string, CallStats>();
  #open = true;

  /** Stops logging: what runs after the contender (the probes) is not its work. */
  close(): void {
    this.#open = false;
  }

  async time<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (!this.#open) return work();
    const started = performance.now();
    let failure: string | undefined;
    try {
      return await work();
    } catch (error) {
      failure = error instanceof Error ? error.name : 'Error';
      throw error;
    } finally {
      const ended = performance.now();
      const entry = this.#entries.get(name) ?? {
        calls: 0,
        failures: {},
        totalMs: 0,
        firstMs: started,
        lastMs: ended,
      };
      entry.calls += 1;
      entry.totalMs += ended - started;
      entry.firstMs = Math.min(entry.firstMs, started);
      entry.lastMs = Math.max(entry.lastMs, ended);
      if (failure) entry.failures[failure] = (entry.failures[failure] ?? 0) + 1;
      this.#entries.set(name, entry);
    }
  }

  /** Entries whose name starts with `prefix` (all when empty), most time first. */
  entries(prefix = ''): [string, CallStats][] {
    return [...this.#entries]
      .filter(([name]) => name.startsWith(prefix))
      .sort(([, a], [, b]) => b.totalMs - a.totalMs);
  }

  /** Calls whose name starts with `prefix`. */
  count(prefix: string): number {
    return this.entries(prefix).reduce((sum, [, stats]) => sum + stats.calls, 0);
  }

  /** Time in calls whose name starts with `prefix`. */
  totalMs(prefix: string): number {
    return this.entries(prefix).reduce((sum, [, stats]) => sum + stats.totalMs, 0);
  }

  toJSON(): Record<string, CallStats> {
    return Object.fromEntries(
      this.entries().map(([name, stats]) => [name, { ...stats, totalMs: Math.round(stats.totalMs) }]),
    );
  }
}

/** The part of an AWS SDK v3 client's middleware stack this file uses. */
interface MiddlewareHost {
  middlewareStack: unknown;
}
type Handler = (args: { input: unknown }) => Promise<unknown>;
type AddMiddleware = (
  middleware: (next: Handler, context: { commandName?: string }) => Handler,
  options: { step: 'initialize'; name: string },
) => void;

/**
 * Logs every command of an AWS client as `<service>.<Command>` (SDK retries included in
 * one call). Audit writes are told apart (`dynamodb.PutItem audit-seq` / `audit-head`),
 * so lost races for the audit chain's next sequence number show as their failures.
 */
export function recordAwsCalls(client: MiddlewareHost, service: string, ledger: CallLedger): void {
  const stack = client.middlewareStack as { add: AddMiddleware };
  stack.add(
    (next, context) => (args) => {
      const command = (context.commandName ?? 'Unknown').replace(/Command$/, '');
      return ledger.time(`${service}.${command}${auditTag(command, args.input)}`, () => next(args));
    },
    { step: 'initialize', name: `keywardenBenchLedger-${service}` },
  );
}

function auditTag(command: string, input: unknown): string {
  if (command !== 'PutItem') return '';
  // Plain values from the document client, or attribute values once marshalled.
  type Key = string | { S?: string } | undefined;
  const item = (input as { Item?: { pk?: Key; sk?: Key } }).Item;
  const text = (key: Key) => (typeof key === 'string' ? key : key?.S);
  if (text(item?.pk) !== 'AUDIT') return '';
  return text(item?.sk) === 'HEAD' ? ' audit-head' : ' audit-seq';
}

/**
 * Logs every request a Vault client makes, as `vault.<method> <path shape>`. The path
 * shape replaces the segments that name one identity (they contain `namePart`) and
 * version ids with `*`, so `auth/token/lookup-accessor` and `secret/data/*` add up.
 */
export function recordVaultCalls(client: VaultClient, namePart: string, ledger: CallLedger): void {
  const shape = (path: string) =>
    path
      .split('?')[0]
      ?.split('/')
      .map((segment) =>
        segment.includes(namePart) || /^[0-9a-f]{8}-[0-9a-f]{4}-/.test(segment) ? '*' : segment,
      )
      .join('/') ?? path;
  for (const method of ['read', 'list', 'write', 'delete'] as const) {
    const original = client[method].bind(client) as (...args: unknown[]) => Promise<unknown>;
    // An own property shadows the prototype's method; the adapters hold this same instance.
    Object.defineProperty(client, method, {
      configurable: true,
      writable: true,
      value: (path: string, ...rest: unknown[]) =>
        ledger.time(`vault.${method} ${shape(path)}`, () => original(path, ...rest)),
    });
  }
}

/**
 * Wraps an object so that each of its async methods is logged as `<area>.<method>`;
 * methods run on the original object (private fields intact).
 */
export function timedPort<T extends object>(target: T, area: string, ledger: CallLedger): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value: unknown = Reflect.get(object, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        const result: unknown = value.apply(object, args);
        if (!(result instanceof Promise)) return result;
        return ledger.time(`${area}.${property}`, () => result);
      };
    },
  });
}

/**
 * CPU seconds (user + system) a process has used so far, from /proc (Linux; clock ticks
 * of 1/100 s, the kernel's USER_HZ); undefined where there is no /proc or no such process.
 */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ", field 3 (state) comes first: utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / 100 : undefined;
  } catch {
    return undefined;
  }
}

/** Wall time, CPU used by this process and by each server, and the machine's load, over one phase. */
export interface PhaseUsage {
  wallMs: number;
  /** CPU seconds per process over the phase; `cores` is CPU seconds per wall second. */
  cpu: Record<string, { seconds: number; cores: number }>;
  /** The 1-minute load average at the end of the phase (other processes on the machine included). */
  loadAvg1m: number;
}

/** Measures a phase: wall time, and the CPU this process and the servers (by pid) used in it. */
export function startPhase(pids: Record<string, number>): () => PhaseUsage {
  const wallStart = performance.now();
  const nodeStart = process.cpuUsage();
  const serverStart = Object.fromEntries(
    Object.entries(pids).map(([name, pid]) => [name, cpuSecondsOf(pid)]),
  );
  return () => {
    const wallMs = performance.now() - wallStart;
    const node = process.cpuUsage(nodeStart);
    const cpu: PhaseUsage['cpu'] = {};
    const add = (name: string, seconds: number) => {
      cpu[name] = {
        seconds: Math.round(seconds * 10) / 10,
        cores: Math.round((seconds / (wallMs / 1_000)) * 100) / 100,
      };
    };
    add('node (this benchmark)', (node.user + node.system) / 1e6);
    for (const [name, pid] of Object.entries(pids)) {
      const before = serverStart[name];
      const after = cpuSecondsOf(pid);
      if (before !== undefined && after !== undefined) add(name, after - before);
    }
    return { wallMs, cpu, loadAvg1m: Math.round((loadavg()[0] ?? 0) * 100) / 100 };
  };
}
