/**
 * `npm run bench:bundles`: how heavy each Lambda function is at a cold start. Synthesizes the
 * stack with bundling on, as `cdk deploy` builds it (infra/bundling.ts through the CDK's
 * esbuild), then for each handler asset prints its minified size, its gzip size and the time
 * a fresh Node process takes to import it (median of several runs; importing builds no client
 * and calls nothing: the handlers compose their parts on the first invocation), against the
 * issue's targets, and writes the figures to bench/results/bundles-<time>.json. The process runs
 * with the function's own NODE_OPTIONS, as Lambda starts it: `--enable-source-maps` makes Node
 * read and parse the bundle's source map while importing it (~10–15 ms more).
 *
 * Options: `--runs N` imports per asset (default 7); `--keep` keeps the synthesized assembly;
 * `--weights N` prints, under the table, what fills each bundle above the size target: its N
 * heaviest packages or source folders, by minified bytes, read from the bundle's own source map.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { App } from 'aws-cdk-lib';
import Table from 'cli-table3';
import { KeywardenStack, type KeywardenStackProps } from '../infra/keywarden-stack.ts';

/** The targets (#12, lean functions). */
export const TARGETS = { minifiedKb: 400, importMs: 80 } as const;

/** What the issue measured before this work, on this machine: seven bundles. */
const BEFORE = { minifiedKb: '1,460–1,580', importMs: '152–174' } as const;

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** One handler asset: the functions that run it and its figures. */
export interface BundleFigures {
  functions: string[];
  asset: string;
  /** The NODE_OPTIONS flags the import ran with (the functions' own). */
  nodeOptions: string[];
  minifiedKb: number;
  gzipKb: number;
  /** Median wall time of the imports. */
  importMs: number;
  /** Median CPU time of the imports. */
  importCpuMs: number;
  importRunsMs: number[];
}

interface TemplateFunction {
  Type: string;
  Properties: {
    Code?: { S3Key?: unknown };
    Handler?: unknown;
    Environment?: { Variables?: Record<string, unknown> };
  };
  Metadata?: Record<string, unknown>;
}

/**
 * The handler assets of a synthesized assembly: each `asset.<hash>/index.mjs` some Lambda
 * function of the stack runs, with the construct paths of those functions.
 */
export function handlerAssets(assemblyDir: string, stackName = 'Keywarden'): Map<string, string[]> {
  const template = JSON.parse(readFileSync(join(assemblyDir, `${stackName}.template.json`), 'utf8')) as {
    Resources: Record<string, TemplateFunction>;
  };
  const assets = new Map<string, string[]>();
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    const key = resource.Properties.Code?.S3Key;
    if (resource.Type !== 'AWS::Lambda::Function' || typeof key !== 'string' || !key.endsWith('.zip'))
      continue;
    const bundle = join(assemblyDir, `asset.${key.replace(/\.zip$/, '')}`, 'index.mjs');
    try {
      statSync(bundle);
    } catch {
      continue; // not a keywarden handler (a CDK-provided function)
    }
    const path = String(resource.Metadata?.['aws:cdk:path'] ?? logicalId)
      .replace(new RegExp(`^${stackName}/`), '')
      .replace(/\/Function\/Resource$|\/Resource$/, '');
    assets.set(bundle, [...(assets.get(bundle) ?? []), path]);
  }
  return assets;
}

/** The NODE_OPTIONS flags the functions of a synthesized assembly run with, per handler asset. */
export function handlerNodeOptions(assemblyDir: string, stackName = 'Keywarden'): Map<string, string[]> {
  const template = JSON.parse(readFileSync(join(assemblyDir, `${stackName}.template.json`), 'utf8')) as {
    Resources: Record<string, TemplateFunction>;
  };
  const options = new Map<string, string[]>();
  for (const resource of Object.values(template.Resources)) {
    const key = resource.Properties.Code?.S3Key;
    if (resource.Type !== 'AWS::Lambda::Function' || typeof key !== 'string') continue;
    const value = resource.Properties.Environment?.Variables?.NODE_OPTIONS;
    const bundle = join(assemblyDir, `asset.${key.replace(/\.zip$/, '')}`, 'index.mjs');
    options.set(bundle, typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : []);
  }
  return options;
}

/**
 * What importing `file` takes in a fresh Node process started with `flags` (the module only,
 * not Node's own start): wall time, and the CPU time the process spent on it, which other work
 * on the machine inflates far less (on a busy machine the wall time is mostly waiting for a core).
 */
function importTime(file: string, flags: readonly string[] = []): { wallMs: number; cpuMs: number } {
  const script = [
    'const cpu = process.cpuUsage(); const t = performance.now();',
    `await import(${JSON.stringify(pathToFileURL(file).href)});`,
    'const wall = performance.now() - t; const { user, system } = process.cpuUsage(cpu);',
    'process.stdout.write(JSON.stringify({ wallMs: wall, cpuMs: (user + system) / 1000 }));',
  ].join(' ');
  const out = execFileSync(process.execPath, [...flags, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return JSON.parse(out) as { wallMs: number; cpuMs: number };
}

/** One package (or keywarden source folder) and the minified bytes of a bundle that came from it. */
export interface BundleWeight {
  from: string;
  bytes: number;
}

const BASE64_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** The fields of one source-map segment (Source Map v3: base64 VLQ, each relative to the previous). */
function decodeSegment(segment: string): number[] {
  const fields: number[] = [];
  let value = 0;
  let shift = 0;
  for (const char of segment) {
    const digit = BASE64_DIGITS.indexOf(char);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
      continue;
    }
    fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
    value = 0;
    shift = 0;
  }
  return fields;
}

/**
 * Where a source file's bytes are counted: the package it belongs to (the innermost
 * `node_modules/<name>` or `node_modules/@scope/<name>`), or its folder two levels down in the
 * repository (`functions/core`, `functions/adapters`).
 */
function weightKey(source: string): string {
  const packages = source.match(/node_modules\/(@[^/]+\/)?[^/]+/g);
  if (packages) return (packages.at(-1) ?? source).replace('node_modules/', '');
  return relative(ROOT, source).split(sep).slice(0, 2).join('/');
}

/**
 * The minified bytes of `bundle` by the package or folder they came from, heaviest first, from
 * the bundle's source map (`<bundle>.map`, which the functions ship): each generated byte counts
 * for the source of the mapping segment it falls in; bytes before a line's first segment or in a
 * segment without a source (esbuild's glue) count as `(bundler)`.
 */
export function bundleWeights(bundle: string): BundleWeight[] {
  const code = readFileSync(bundle, 'utf8').split('\n');
  const map = JSON.parse(readFileSync(`${bundle}.map`, 'utf8')) as { sources: string[]; mappings: string };
  const bytes = new Map<string, number>();
  const add = (from: string, count: number) => bytes.set(from, (bytes.get(from) ?? 0) + count);
  let source = 0;
  map.mappings.split(';').forEach((line, index) => {
    const text = code[index] ?? '';
    let column = 0;
    let previous = { at: 0, from: '(bundler)' };
    for (const segment of line.split(',').filter(Boolean)) {
      const [columnDelta = 0, sourceDelta] = decodeSegment(segment);
      column += columnDelta;
      add(previous.from, Buffer.byteLength(text.slice(previous.at, column)));
      if (sourceDelta !== undefined) source += sourceDelta;
      previous = {
        at: column,
        from:
          sourceDelta === undefined
            ? '(bundler)'
            : weightKey(resolve(dirname(bundle), map.sources[source] ?? '(bundler)')),
      };
    }
    add(previous.from, Buffer.byteLength(text.slice(previous.at)) + 1);
  });
  return [...bytes].map(([from, count]) => ({ from, bytes: count })).sort((a, b) => b.bytes - a.bytes);
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};

const kb = (bytes: number): number => Math.round((bytes / 1024) * 10) / 10;

/**
 * The stack's settings that turn every function on, as the bundling spec
 * (test/infra/bundling.test.ts) synthesizes it: a Vault address (the functions carry their Vault
 * adapters, as a deployment with Vault does), a trusted CI issuer (the API's CI function and the
 * CI credentials' sweeper) and a log group to scan (the exposure scanner). Without the last two
 * those functions are not in the stack at all. The API's grants and campaigns functions are in
 * every stack.
 */
export const EVERY_FUNCTION = {
  vaultAddr: 'https://vault.example.com',
  ciIssuers: [{ preset: 'github', audience: 'keywarden' }],
  exposureLogGroups: ['/aws/codebuild/deploy-app'],
} as const satisfies KeywardenStackProps;

/** Synthesizes the stack with every function bundled into `outdir`, as `cdk synth` does. */
export function synthesizeBundled(outdir: string): string {
  const cdkJson = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  const app = new App({
    outdir,
    context: {
      ...(cdkJson.context ?? {}),
      'aws:cdk:bundling-stacks': ['**'],
      'aws:cdk:enable-path-metadata': true,
    },
  });
  new KeywardenStack(app, 'Keywarden', EVERY_FUNCTION);
  return app.synth().directory;
}

/** Measures every handler asset of an assembly. */
export function measureBundles(assemblyDir: string, runs: number): BundleFigures[] {
  const figures: BundleFigures[] = [];
  const nodeOptions = handlerNodeOptions(assemblyDir);
  for (const [file, functions] of handlerAssets(assemblyDir)) {
    const code = readFileSync(file);
    const flags = nodeOptions.get(file) ?? [];
    importTime(file, flags); // the first read warms the file cache, as the runtime's image has it
    const times = Array.from({ length: runs }, () => importTime(file, flags));
    const importRunsMs = times.map((time) => time.wallMs);
    figures.push({
      functions,
      asset: file.split('/').at(-2) ?? file,
      nodeOptions: flags,
      minifiedKb: kb(code.length),
      gzipKb: kb(gzipSync(code).length),
      importMs: Math.round(median(importRunsMs) * 10) / 10,
      importCpuMs: Math.round(median(times.map((time) => time.cpuMs)) * 10) / 10,
      importRunsMs: importRunsMs.map((ms) => Math.round(ms * 10) / 10),
    });
  }
  return figures.sort((a, b) => a.minifiedKb - b.minifiedKb);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '7' },
      keep: { type: 'boolean', default: false },
      weights: { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs: expected a whole number ≥ 1, got ${values.runs}`);
  if (
    values.weights !== undefined &&
    !(Number.isInteger(Number(values.weights)) && Number(values.weights) >= 1)
  )
    throw new Error(`--weights: expected a whole number ≥ 1, got ${values.weights}`);
  const outdir = mkdtempSync(join(tmpdir(), 'keywarden-bundles-'));
  try {
    const loadBefore = loadavg()[0] ?? 0;
    console.log(`synthesizing with bundling into ${outdir} … (load average ${loadBefore.toFixed(1)})`);
    const assembly = synthesizeBundled(outdir);
    const figures = measureBundles(assembly, runs);
    const mark = (ok: boolean) => (ok ? '✓' : '✗');
    const table = new Table({
      head: [
        'function(s)',
        'minified kB',
        'gzip kB',
        `import ms, wall (median of ${runs}, with the function's NODE_OPTIONS)`,
        'import ms, CPU',
      ],
    });
    for (const bundle of figures) {
      table.push([
        bundle.functions.join('\n'),
        `${bundle.minifiedKb.toFixed(1)} ${mark(bundle.minifiedKb <= TARGETS.minifiedKb)}`,
        bundle.gzipKb.toFixed(1),
        `${bundle.importMs.toFixed(1)} ${mark(bundle.importMs <= TARGETS.importMs)}`,
        bundle.importCpuMs.toFixed(1),
      ]);
    }
    console.log(table.toString());
    /** The heaviest sources of each bundle above the size target, by asset (with `--weights`). */
    const weights: Record<string, BundleWeight[]> = {};
    if (values.weights !== undefined) {
      for (const bundle of figures.filter((each) => each.minifiedKb > TARGETS.minifiedKb)) {
        const heaviest = bundleWeights(join(assembly, bundle.asset, 'index.mjs')).slice(
          0,
          Number(values.weights),
        );
        weights[bundle.asset] = heaviest;
        console.log(
          `${bundle.functions.join(', ')} (${bundle.minifiedKb.toFixed(1)} kB): ${heaviest.map(({ from, bytes }) => `${from} ${kb(bytes).toFixed(1)}`).join(', ')}`,
        );
      }
    }
    const load = loadavg()[0] ?? 0;
    console.log(
      `load average ${loadBefore.toFixed(1)} before, ${load.toFixed(1)} after, on ${cpus().length} cores${Math.max(load, loadBefore) > cpus().length ? ': busy, wall times are inflated (CPU times much less)' : ''}`,
    );
    console.log(
      `${figures.length} handler assets, ${figures.flatMap((bundle) => bundle.functions).length} functions`,
    );
    console.log(
      `targets: ≤ ${TARGETS.minifiedKb} kB minified, ≤ ${TARGETS.importMs} ms import; before (issue #12): ${BEFORE.minifiedKb} kB, ${BEFORE.importMs} ms`,
    );
    const results = join(ROOT, 'bench', 'results');
    mkdirSync(results, { recursive: true });
    const file = join(results, `bundles-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          at: new Date().toISOString(),
          machine: {
            cpus: cpus().length,
            loadavgBefore: loadBefore,
            loadavg: loadavg(),
            node: process.version,
          },
          targets: TARGETS,
          before: BEFORE,
          runs,
          bundles: figures,
          ...(values.weights === undefined ? {} : { weights }),
        },
        null,
        2,
      )}\n`,
    );
    console.log(`figures written to ${file}`);
  } finally {
    if (!values.keep) rmSync(outdir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
