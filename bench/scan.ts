/**
 * Benchmark: exposure scanning (issue #14, part 5). A generated corpus of build logs (~50 MB,
 * bench/support/scan-corpus.ts) with planted credentials of every kind (Vault/OpenBao service,
 * namespaced, batch and hvs./hvb./hvr. tokens, AWS key pairs, GitHub PATs, Slack tokens,
 * private keys, `password=`), each in the clear, base64- and URL-encoded, among look-alikes
 * (UUIDs, git SHAs, sha256 digests, SRI hashes, base64 blobs) is scanned in the same run by:
 *
 * - keywarden: the combined detector (secretlint's recommended preset + keywarden's own rules,
 *   over the text and its decoded segments), each file read and scanned in this process;
 * - detect-secrets (PyPI, `.venv/bin/detect-secrets scan --all-files` over the corpus folder,
 *   its JSON baseline read back), with its default plugins and filters.
 *
 * For each: MB/s (wall), recall on the planted credentials (per kind and per encoding), and
 * false positives per MB (hits on no planted line). A plant is found "by line" when a hit is on
 * one of its lines; keywarden is also scored "by value" (a hit whose value is the planted one —
 * what fingerprint matching needs; detect-secrets reports only a line and a SHA-1). No value is
 * ever printed or written; the corpus is written to a temporary folder and removed at the end
 * (`--keep` keeps it).
 *
 *   npx tsx bench/scan.ts [--mb 50] [--file-mb 5] [--plants 40] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { CombinedSecretDetector } from '../functions/adapters/scan/detector.ts';
import type { DetectedSecret } from '../functions/core/exposure-types.ts';
import { round, writeResults } from './support/bench-run.ts';
import { generateCorpus, PLANT_ENCODINGS, PLANT_KINDS, type Plant } from './support/scan-corpus.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_DIR = join(ROOT, 'bench', 'results');
const DETECT_SECRETS = join(ROOT, '.venv', 'bin', 'detect-secrets');
const USAGE = 'usage: npx tsx bench/scan.ts [--mb 50] [--file-mb 5] [--plants 40] [--keep]';

interface Options {
  mb: number;
  fileMb: number;
  plants: number;
  keep: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      mb: { type: 'string', default: '50' },
      'file-mb': { type: 'string', default: '5' },
      plants: { type: 'string', default: '40' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const number = (name: string, text: string | undefined, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new Error(`--${name}: expected a number from ${min} to ${max}, got ${text}`);
    return n;
  };
  return {
    mb: number('mb', values.mb, 0.1, 2_000),
    fileMb: number('file-mb', values['file-mb'], 0.1, 500),
    plants: Math.round(number('plants', values.plants, 1, 10_000)),
    keep: values.keep ?? false,
  };
}

/** A hit as the scoring needs it: its file and line, and (keywarden) its value. */
interface Hit {
  file: string;
  line: number;
  value?: string;
}

interface Scored {
  contender: string;
  seconds: number;
  mbPerSecond: number;
  hits: number;
  foundByLine: Map<Plant, boolean>;
  foundByValue?: Map<Plant, boolean>;
  falsePositives: number;
  falsePositivesPerMb: number;
}

function score(contender: string, hits: Hit[], plants: Plant[], mb: number, seconds: number): Scored {
  const plantAt = new Map<string, Plant>();
  for (const plant of plants) for (const line of plant.lines) plantAt.set(`${plant.file}:${line}`, plant);
  const foundByLine = new Map(plants.map((plant) => [plant, false]));
  const foundByValue = new Map(plants.map((plant) => [plant, false]));
  let falsePositives = 0;
  for (const hit of hits) {
    const plant = plantAt.get(`${hit.file}:${hit.line}`);
    if (plant === undefined) {
      falsePositives++;
      continue;
    }
    foundByLine.set(plant, true);
    if (hit.value !== undefined && hit.value === plant.value.reveal()) foundByValue.set(plant, true);
  }
  return {
    contender,
    seconds,
    mbPerSecond: mb / seconds,
    hits: hits.length,
    foundByLine,
    ...(hits.some((hit) => hit.value !== undefined) ? { foundByValue } : {}),
    falsePositives,
    falsePositivesPerMb: falsePositives / mb,
  };
}

async function scanWithKeywarden(
  dir: string,
  files: string[],
): Promise<{ hits: Hit[]; seconds: number; cpuSeconds: number }> {
  const detector = new CombinedSecretDetector();
  await detector.detect('warm up'); // loads secretlint's rules once, outside the clock
  const hits: Hit[] = [];
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    const found: DetectedSecret[] = await detector.detect(text);
    for (const hit of found) hits.push({ file, line: hit.line, value: hit.value.reveal() });
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { hits, seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

function scanWithDetectSecrets(dir: string): { hits: Hit[]; seconds: number } {
  if (!existsSync(DETECT_SECRETS)) {
    throw new Error(
      `expected detect-secrets at ${DETECT_SECRETS}: run scripts/local-stack.ts (it installs scripts/requirements-stack.txt into .venv)`,
    );
  }
  const started = performance.now();
  const run = spawnSync(DETECT_SECRETS, ['scan', '--all-files', '.'], {
    cwd: dir,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const seconds = (performance.now() - started) / 1000;
  if (run.status !== 0) throw new Error(`detect-secrets exited ${run.status}: ${run.stderr.slice(0, 500)}`);
  const baseline = JSON.parse(run.stdout) as { results: Record<string, Array<{ line_number: number }>> };
  const hits: Hit[] = [];
  for (const [file, found] of Object.entries(baseline.results)) {
    for (const hit of found) hits.push({ file: file.replace(/^\.\//, ''), line: hit.line_number });
  }
  return { hits, seconds };
}

const pct = (found: number, of: number) => (of === 0 ? '–' : `${round((100 * found) / of, 1)} %`);
const count = (map: Map<Plant, boolean> | undefined, keep: (plant: Plant) => boolean) => {
  if (map === undefined) return undefined;
  let found = 0;
  let of = 0;
  for (const [plant, hit] of map) {
    if (!keep(plant)) continue;
    of++;
    if (hit) found++;
  }
  return { found, of };
};
const recall = (map: Map<Plant, boolean> | undefined, keep: (plant: Plant) => boolean) => {
  const c = count(map, keep);
  return c === undefined ? 'n/a' : pct(c.found, c.of);
};

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    console.error(USAGE);
    process.exit(2);
  }
  const date = new Date();
  const generated = performance.now();
  const corpus = generateCorpus({ mb: options.mb, fileMb: options.fileMb, perKindEncoding: options.plants });
  const dir = mkdtempSync(join(tmpdir(), 'keywarden-scan-corpus-'));
  const files = [...corpus.files.keys()];
  for (const [file, text] of corpus.files) writeFileSync(join(dir, file), text);
  corpus.files.clear();
  const mb = corpus.bytes / 1e6;
  console.log(
    `corpus: ${round(mb, 1)} MB in ${files.length} files, ${corpus.plants.length} planted credentials ` +
      `(${PLANT_KINDS.length} kinds × ${PLANT_ENCODINGS.length} encodings × ${options.plants}), ` +
      `${corpus.lookalikeLines.toLocaleString('en')} look-alike lines; generated in ${round((performance.now() - generated) / 1000, 1)} s` +
      (options.keep ? ` at ${dir}` : ''),
  );
  try {
    console.log('scanning with keywarden…');
    const keywarden = await scanWithKeywarden(dir, files);
    console.log('scanning with detect-secrets…');
    const detectSecrets = scanWithDetectSecrets(dir);
    const results = [
      score('keywarden', keywarden.hits, corpus.plants, mb, keywarden.seconds),
      score('detect-secrets 1.5.0', detectSecrets.hits, corpus.plants, mb, detectSecrets.seconds),
    ];

    const summary = new Table({
      head: [
        'contender',
        'seconds',
        'MB/s',
        'hits',
        'recall, by line',
        'recall, by value',
        'false positives',
        'FP per MB',
      ],
    });
    for (const r of results) {
      summary.push([
        r.contender,
        round(r.seconds, 1),
        round(r.mbPerSecond, 2),
        r.hits,
        recall(r.foundByLine, () => true),
        recall(r.foundByValue, () => true),
        r.falsePositives,
        round(r.falsePositivesPerMb, 2),
      ]);
    }
    console.log(summary.toString());
    console.log(
      `keywarden CPU: ${round(keywarden.cpuSeconds, 1)} s (${round(mb / keywarden.cpuSeconds, 2)} MB per CPU-second)`,
    );

    const perKind = new Table({
      head: [
        'kind',
        ...results.flatMap((r) =>
          PLANT_ENCODINGS.map((encoding) => `${r.contender.split(' ')[0]} ${encoding}`),
        ),
      ],
    });
    for (const kind of PLANT_KINDS) {
      perKind.push([
        kind,
        ...results.flatMap((r) =>
          PLANT_ENCODINGS.map((encoding) => {
            const keep = (plant: Plant) => plant.kind === kind && plant.encoding === encoding;
            const byLine = recall(r.foundByLine, keep);
            return r.foundByValue === undefined ? byLine : `${byLine} (${recall(r.foundByValue, keep)})`;
          }),
        ),
      ]);
    }
    console.log('recall per kind and encoding, by line (keywarden: by value in brackets)');
    console.log(perKind.toString());

    mkdirSync(RESULTS_DIR, { recursive: true });
    writeResults(RESULTS_DIR, 'scan', date, {
      date: date.toISOString(),
      machine: { cpus: cpus().length, loadavg: loadavg().map((n) => round(n, 2)) },
      options,
      corpus: {
        mb: round(mb, 2),
        files: files.length,
        plants: corpus.plants.length,
        lookalikeLines: corpus.lookalikeLines,
      },
      keywardenCpuSeconds: round(keywarden.cpuSeconds, 2),
      results: results.map((r) => ({
        contender: r.contender,
        seconds: round(r.seconds, 2),
        mbPerSecond: round(r.mbPerSecond, 2),
        hits: r.hits,
        falsePositives: r.falsePositives,
        falsePositivesPerMb: round(r.falsePositivesPerMb, 3),
        recall: Object.fromEntries(
          PLANT_KINDS.map((kind) => [
            kind,
            Object.fromEntries(
              PLANT_ENCODINGS.map((encoding) => {
                const keep = (plant: Plant) => plant.kind === kind && plant.encoding === encoding;
                return [
                  encoding,
                  { byLine: count(r.foundByLine, keep), byValue: count(r.foundByValue, keep) },
                ];
              }),
            ),
          ]),
        ),
      })),
    });
  } finally {
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
