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
 * false positives per MB (hits on no planted line; a hit on a managed plant is neither).
 *
 * Also planted, in the same corpus: keywarden-managed credentials of every kind (bench/support/
 * scan-corpus.ts `makeManaged`: Vault tokens, a KV field, a template secret's generated field, a
 * whole Secrets Manager string, AppRole `{role_id, secret_id}` and AWS key pairs), one identity
 * per plant, held in keywarden's own ports in memory (test/support/memory-stores.ts) with a
 * current version whose fingerprint is `Fingerprinter.of(credentialPart(identity, value))` as
 * keywarden records it. keywarden's full scan (`loadMatcher` + `scanText` with the combined
 * detector, what `keywarden scan` runs) is then scored on them: managed recall (a `managed` hit
 * naming the planted identity, on one of its lines), per kind and encoding, its MB/s, and false
 * managed matches (a `managed` hit anywhere else or naming another identity; must be 0).
 * detect-secrets cannot know what keywarden manages: it has no such row. A plant is found "by line" when a hit is on
 * one of its lines; keywarden is also scored "by value" (a hit whose value is the planted one —
 * what fingerprint matching needs; detect-secrets reports only a line and a SHA-1). No value is
 * ever printed or written; the corpus is written to a temporary folder and removed at the end
 * (`--keep` keeps it).
 *
 *   npx tsx bench/scan.ts [--mb 50] [--file-mb 5] [--plants 40] [--managed 40] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import { Fingerprinter } from '../functions/adapters/crypto.ts';
import { CombinedSecretDetector } from '../functions/adapters/scan/detector.ts';
import { type ExposureHit, loadMatcher, scanText } from '../functions/core/exposure.ts';
import type { ManagedMatcher } from '../functions/core/exposure-match.ts';
import type { DetectedSecret } from '../functions/core/exposure-types.ts';
import { credentialPart } from '../functions/core/secret-shape.ts';
import { credentialVersion } from '../test/support/fixtures.ts';
import { MemoryIdentityStore, MemoryRotationStore } from '../test/support/memory-stores.ts';
import { round, writeResults } from './support/bench-run.ts';
import {
  generateCorpus,
  MANAGED_KINDS,
  type ManagedCredential,
  type ManagedPlant,
  makeManaged,
  PLANT_ENCODINGS,
  PLANT_KINDS,
  type Plant,
} from './support/scan-corpus.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_DIR = join(ROOT, 'bench', 'results');
const DETECT_SECRETS = join(ROOT, '.venv', 'bin', 'detect-secrets');
const USAGE = 'usage: npx tsx bench/scan.ts [--mb 50] [--file-mb 5] [--plants 40] [--managed 40] [--keep]';

interface Options {
  mb: number;
  fileMb: number;
  plants: number;
  /** Managed identities of each managed kind in each encoding. */
  managed: number;
  keep: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      mb: { type: 'string', default: '50' },
      'file-mb': { type: 'string', default: '5' },
      plants: { type: 'string', default: '40' },
      managed: { type: 'string', default: '40' },
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
    managed: Math.round(number('managed', values.managed, 0, 10_000)),
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

/** `file:line` of each line a managed credential was planted on. */
const managedLines = (plants: readonly ManagedPlant[]): Set<string> =>
  new Set(plants.flatMap((plant) => plant.lines.map((line) => `${plant.file}:${line}`)));

function score(
  contender: string,
  hits: Hit[],
  plants: Plant[],
  mb: number,
  seconds: number,
  managed: ReadonlySet<string>,
): Scored {
  const plantAt = new Map<string, Plant>();
  for (const plant of plants) for (const line of plant.lines) plantAt.set(`${plant.file}:${line}`, plant);
  const foundByLine = new Map(plants.map((plant) => [plant, false]));
  const foundByValue = new Map(plants.map((plant) => [plant, false]));
  let falsePositives = 0;
  for (const hit of hits) {
    const plant = plantAt.get(`${hit.file}:${hit.line}`);
    if (plant === undefined) {
      // A managed credential is a credential too: found, not a false positive (scored below).
      if (!managed.has(`${hit.file}:${hit.line}`)) falsePositives++;
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

/**
 * keywarden's own ports in memory, holding one identity per managed credential with a current
 * version fingerprinted as keywarden fingerprints it, and the matcher `keywarden scan` loads.
 */
async function managedWorld(
  credentials: readonly ManagedCredential[],
): Promise<{ matcher: ManagedMatcher; fingerprint: (text: string) => string; loadSeconds: number }> {
  const fingerprinter = new Fingerprinter(randomBytes(32));
  const fingerprint = (text: string) => fingerprinter.of(text);
  const identities = new MemoryIdentityStore();
  const versions = new MemoryRotationStore();
  const roleIds = new Map<string, string>();
  const at = new Date().toISOString();
  for (const credential of credentials) {
    const { identity, handle, stored, roleId } = credential;
    await identities.putIdentity(
      { identity, status: 'active', declarationHash: 'bench', syncedAt: at },
      undefined,
    );
    await versions.putVersion(
      credentialVersion(identity, { handle, fingerprint: fingerprint(credentialPart(identity, stored)) }),
      undefined,
    );
    if (roleId !== undefined) roleIds.set(identity.id, roleId);
  }
  const started = performance.now();
  const matcher = await loadMatcher({
    identities,
    versions,
    fingerprint,
    roleIdOf: async (identity) => roleIds.get(identity.id),
  });
  return { matcher, fingerprint, loadSeconds: (performance.now() - started) / 1000 };
}

/** keywarden's full scan, as `keywarden scan` runs it: the detector and the managed matcher. */
async function scanFull(
  dir: string,
  files: string[],
  matcher: ManagedMatcher,
  fingerprint: (text: string) => string,
): Promise<{ hits: Array<ExposureHit & { file: string }>; seconds: number; cpuSeconds: number }> {
  const detector = new CombinedSecretDetector();
  await detector.detect('warm up');
  const hits: Array<ExposureHit & { file: string }> = [];
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    const found = await scanText(matcher, detector, fingerprint, text, { kind: 'file', location: file });
    for (const hit of found) hits.push({ ...hit, file });
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { hits, seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

/** Managed recall: each plant found as `managed` naming its identity; every other managed hit is false. */
function scoreManaged(hits: ReadonlyArray<ExposureHit & { file: string }>, plants: readonly ManagedPlant[]) {
  const plantAt = new Map<string, ManagedPlant>();
  for (const plant of plants) for (const line of plant.lines) plantAt.set(`${plant.file}:${line}`, plant);
  const found = new Map(plants.map((plant) => [plant, false]));
  const asUnmanaged = new Set<ManagedPlant>();
  let falseManaged = 0;
  let managedHits = 0;
  for (const hit of hits) {
    const plant = plantAt.get(`${hit.file}:${hit.line}`);
    if (hit.status !== 'managed') {
      if (plant) asUnmanaged.add(plant);
      continue;
    }
    managedHits++;
    if (plant && hit.managed?.identityId === plant.identityId) found.set(plant, true);
    else falseManaged++;
  }
  const missedButSeen = [...asUnmanaged].filter((plant) => !found.get(plant)).length;
  return { found, falseManaged, managedHits, missedButSeen };
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
const count = <P>(map: Map<P, boolean> | undefined, keep: (plant: P) => boolean) => {
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
const recall = <P>(map: Map<P, boolean> | undefined, keep: (plant: P) => boolean) => {
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
  const managedCredentials = MANAGED_KINDS.flatMap((kind) =>
    PLANT_ENCODINGS.flatMap((encoding) =>
      Array.from({ length: options.managed }, (_, i) =>
        makeManaged(kind, `${kind}-${encoding}-${String(i + 1).padStart(4, '0')}`, encoding),
      ),
    ),
  );
  const corpus = generateCorpus({
    mb: options.mb,
    fileMb: options.fileMb,
    perKindEncoding: options.plants,
    managed: managedCredentials,
  });
  const dir = mkdtempSync(join(tmpdir(), 'keywarden-scan-corpus-'));
  const files = [...corpus.files.keys()];
  for (const [file, text] of corpus.files) writeFileSync(join(dir, file), text);
  corpus.files.clear();
  const mb = corpus.bytes / 1e6;
  console.log(
    `corpus: ${round(mb, 1)} MB in ${files.length} files, ${corpus.plants.length} planted credentials ` +
      `(${PLANT_KINDS.length} kinds × ${PLANT_ENCODINGS.length} encodings × ${options.plants}), ` +
      `${corpus.managedPlants.length} managed (${MANAGED_KINDS.length} kinds × ${PLANT_ENCODINGS.length} encodings × ${options.managed}, one identity each), ` +
      `${corpus.lookalikeLines.toLocaleString('en')} look-alike lines; generated in ${round((performance.now() - generated) / 1000, 1)} s` +
      (options.keep ? ` at ${dir}` : ''),
  );
  try {
    const onManaged = managedLines(corpus.managedPlants);
    console.log('scanning with keywarden…');
    const keywarden = await scanWithKeywarden(dir, files);
    console.log(`loading ${managedCredentials.length} managed identities into memory ports…`);
    const world = await managedWorld(managedCredentials);
    console.log("scanning with keywarden's full scan (detector + managed matcher)…");
    const full = await scanFull(dir, files, world.matcher, world.fingerprint);
    const managed = scoreManaged(full.hits, corpus.managedPlants);
    console.log('scanning with detect-secrets…');
    const detectSecrets = scanWithDetectSecrets(dir);
    const results = [
      score('keywarden', keywarden.hits, corpus.plants, mb, keywarden.seconds, onManaged),
      score('detect-secrets 1.5.0', detectSecrets.hits, corpus.plants, mb, detectSecrets.seconds, onManaged),
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

    const managedCount = count(managed.found, () => true);
    const fullTable = new Table({
      head: [
        'keywarden full scan',
        'seconds',
        'MB/s',
        'managed hits',
        'managed recall',
        'false managed matches',
        'missed, seen unmanaged',
      ],
    });
    fullTable.push([
      `${managedCredentials.length} managed identities`,
      round(full.seconds, 1),
      round(mb / full.seconds, 2),
      managed.managedHits,
      `${recall(managed.found, () => true)} (${managedCount?.found ?? 0}/${managedCount?.of ?? 0})`,
      managed.falseManaged,
      managed.missedButSeen,
    ]);
    console.log(fullTable.toString());
    console.log(
      `full scan CPU: ${round(full.cpuSeconds, 1)} s (${round(mb / full.cpuSeconds, 2)} MB per CPU-second); ` +
        `matcher loaded in ${round(world.loadSeconds, 2)} s, ${world.matcher.lookups.toLocaleString('en')} candidates fingerprinted; ` +
        'detect-secrets cannot know what keywarden manages (no managed row)',
    );
    const managedPerKind = new Table({ head: ['managed kind', ...PLANT_ENCODINGS] });
    for (const kind of MANAGED_KINDS) {
      managedPerKind.push([
        kind,
        ...PLANT_ENCODINGS.map((encoding) =>
          recall(managed.found, (plant) => plant.kind === kind && plant.encoding === encoding),
        ),
      ]);
    }
    console.log('managed recall per kind and encoding (a managed hit naming the planted identity)');
    console.log(managedPerKind.toString());

    mkdirSync(RESULTS_DIR, { recursive: true });
    writeResults(RESULTS_DIR, 'scan', date, {
      date: date.toISOString(),
      machine: { cpus: cpus().length, loadavg: loadavg().map((n) => round(n, 2)) },
      options,
      corpus: {
        mb: round(mb, 2),
        files: files.length,
        plants: corpus.plants.length,
        managedPlants: corpus.managedPlants.length,
        lookalikeLines: corpus.lookalikeLines,
      },
      keywardenCpuSeconds: round(keywarden.cpuSeconds, 2),
      fullScan: {
        managedIdentities: managedCredentials.length,
        seconds: round(full.seconds, 2),
        cpuSeconds: round(full.cpuSeconds, 2),
        mbPerSecond: round(mb / full.seconds, 2),
        matcherLoadSeconds: round(world.loadSeconds, 3),
        lookups: world.matcher.lookups,
        managedHits: managed.managedHits,
        falseManaged: managed.falseManaged,
        missedSeenUnmanaged: managed.missedButSeen,
        recall: Object.fromEntries(
          MANAGED_KINDS.map((kind) => [
            kind,
            Object.fromEntries(
              PLANT_ENCODINGS.map((encoding) => [
                encoding,
                count(managed.found, (plant) => plant.kind === kind && plant.encoding === encoding),
              ]),
            ),
          ]),
        ),
      },
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
