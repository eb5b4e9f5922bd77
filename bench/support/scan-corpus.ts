/**
 * A generated corpus for the exposure-scanning benchmark (bench/scan.ts) and the detector specs:
 * build logs with planted credentials of every kind (Vault/OpenBao service, namespaced, batch
 * and HCP-style tokens, AWS key pairs, GitHub PATs, Slack tokens, private keys, `password=`),
 * in the clear and base64- and URL-encoded, among look-alikes (UUIDs, git SHAs, sha256 digests,
 * base64 blobs). Optionally also keywarden-managed credentials ({@link makeManaged}): one
 * identity per plant, whose value only keyed fingerprint matching can tell from others (a KV
 * password, a UUID-shaped AppRole secret-id). Every credential is made at run time; none is
 * written in the source.
 */
import { generateKeyPairSync, randomBytes, randomInt, randomUUID } from 'node:crypto';
import type { Identity } from '../../functions/core/identity.ts';
import type { StoredValue } from '../../functions/core/secret-shape.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { identity } from '../../test/support/fixtures.ts';

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const BASE32_UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** `n` random characters of `alphabet`, mixed case guaranteed for the base62 alphabet. */
export function randomChars(n: number, alphabet = BASE62): string {
  for (;;) {
    const s = Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');
    if (alphabet !== BASE62 || n < 8 || (/[a-z]/.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s))) return s;
  }
}

/** Credential makers: the shapes each kind has in the wild, with random bodies. */
export const makeCredential = {
  vaultServiceToken: () => `s.${randomChars(24)}`,
  vaultNamespacedToken: () => `s.${randomChars(24)}.${randomChars(5)}`,
  vaultBatchToken: () => `b.${randomChars(randomInt(100, 141), `${BASE62}_-`)}`,
  vaultHcpToken: () =>
    `${['hvs', 'hvb', 'hvr'][randomInt(3)]}.${randomChars(randomInt(90, 130), `${BASE62}_-`)}`,
  awsAccessKeyId: (prefix: 'AKIA' | 'ASIA' = 'AKIA') => `${prefix}${randomChars(16, BASE32_UPPER)}`,
  /** 40 characters of base64, with a `/` or `+` somewhere as real ones mostly have. */
  awsSecretAccessKey: () => {
    const body = randomChars(39, `${BASE62}/+`);
    const at = randomInt(1, 39);
    return `${body.slice(0, at)}${randomInt(2) === 0 ? '/' : '+'}${body.slice(at)}`.slice(0, 40);
  },
  githubPat: () => `ghp_${randomChars(36)}`,
  slackToken: () => `xoxb-${randomInt(1e9, 1e10)}-${randomInt(1e12, 1e13)}-${randomChars(24)}`,
  password: () => `${randomChars(12)}-${randomChars(6)}`,
  privateKey: (type: 'rsa' | 'ec' | 'ed25519' = 'ed25519') => {
    if (type === 'rsa') {
      return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
        type: 'pkcs1',
        format: 'pem',
      }) as string;
    }
    if (type === 'ec') {
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
        type: 'sec1',
        format: 'pem',
      }) as string;
    }
    return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  },
};

/** The kinds planted, as the bench reports them. */
export const PLANT_KINDS = [
  'vault-service',
  'vault-namespaced',
  'vault-batch',
  'vault-hcp',
  'aws-key-pair',
  'github-pat',
  'slack-token',
  'private-key',
  'password',
] as const;
export type PlantKind = (typeof PLANT_KINDS)[number];
export const PLANT_ENCODINGS = ['plain', 'base64', 'url'] as const;
export type PlantEncoding = (typeof PLANT_ENCODINGS)[number];

/** One planted credential: where it is, and the value a detector must report (never printed). */
export interface Plant {
  kind: PlantKind;
  encoding: PlantEncoding;
  file: string;
  /** 1-based lines it occupies (a hit on any of them counts as found by line). */
  lines: number[];
  /** The value as keywarden fingerprints it (an AWS pair as its JSON). */
  value: SecretValue;
}

/** The clear text of a planted credential (the lines a log would show) and its value. */
export function plantText(kind: PlantKind): { text: string; value: SecretValue } {
  switch (kind) {
    case 'vault-service': {
      const token = makeCredential.vaultServiceToken();
      return { text: `export VAULT_TOKEN=${token}`, value: new SecretValue(token) };
    }
    case 'vault-namespaced': {
      const token = makeCredential.vaultNamespacedToken();
      return { text: `vault login -method=token token=${token}`, value: new SecretValue(token) };
    }
    case 'vault-batch': {
      const token = makeCredential.vaultBatchToken();
      return {
        text: `+ curl -H "X-Vault-Token: ${token}" $VAULT_ADDR/v1/secret/data/ci`,
        value: new SecretValue(token),
      };
    }
    case 'vault-hcp': {
      const token = makeCredential.vaultHcpToken();
      return { text: `BAO_TOKEN=${token}`, value: new SecretValue(token) };
    }
    case 'aws-key-pair': {
      const accessKeyId = makeCredential.awsAccessKeyId(randomInt(3) === 0 ? 'ASIA' : 'AKIA');
      const secretAccessKey = makeCredential.awsSecretAccessKey();
      const forms = [
        `AWS_ACCESS_KEY_ID=${accessKeyId}\nAWS_SECRET_ACCESS_KEY=${secretAccessKey}`,
        `"AccessKeyId": "${accessKeyId}",\n"SecretAccessKey": "${secretAccessKey}",`,
        `aws_access_key_id = ${accessKeyId}\naws_secret_access_key = ${secretAccessKey}`,
      ];
      return {
        text: forms[randomInt(forms.length)] ?? '',
        value: SecretValue.ofJson({ accessKeyId, secretAccessKey }),
      };
    }
    case 'github-pat': {
      const token = makeCredential.githubPat();
      return {
        text: `git clone https://x-access-token:${token}@github.com/acme/app.git`,
        value: new SecretValue(token),
      };
    }
    case 'slack-token': {
      const token = makeCredential.slackToken();
      return { text: `SLACK_BOT_TOKEN=${token}`, value: new SecretValue(token) };
    }
    case 'private-key': {
      const pem = makeCredential
        .privateKey(['rsa', 'ec', 'ed25519'][randomInt(3)] as 'rsa' | 'ec' | 'ed25519')
        .trimEnd();
      return { text: pem, value: new SecretValue(pem) };
    }
    case 'password': {
      const password = makeCredential.password();
      return { text: `DB_PASSWORD=${password}`, value: new SecretValue(password) };
    }
  }
}

/** A planted credential's text as the log writes it, in one encoding. */
export function encodePlant(text: string, encoding: PlantEncoding): string {
  if (encoding === 'base64')
    return `+ echo ${Buffer.from(`${text}\n`).toString('base64')} | base64 -d > .env`;
  if (encoding === 'url')
    return `+ curl -s -X POST -d "config=${encodeURIComponent(text)}" https://deploy.internal/hook`;
  return text;
}

// ---- managed credentials: keywarden's own, of every kind ----

/**
 * The managed kinds planted: each identity kind keywarden fingerprints a delivered value of,
 * in each form the matcher reads (a whole value, a KV `field`, a template's one generated field,
 * an AppRole `{role_id, secret_id}`, an AWS pair).
 */
export const MANAGED_KINDS = [
  'vault-token',
  'vault-kv-field',
  'aws-secret-template',
  'aws-secret-text',
  'vault-approle-secret-id',
  'aws-iam-access-key',
] as const;
export type ManagedKind = (typeof MANAGED_KINDS)[number];

/** A managed credential: its identity and version as keywarden records them, and its log text. */
export interface ManagedCredential {
  kind: ManagedKind;
  encoding: PlantEncoding;
  identity: Identity;
  /** The version's handle (a token accessor, an access key id, a secret's version id). */
  handle: string;
  /** The value as the delivery holds it: what `credentialPart` picks the credential from. */
  stored: StoredValue;
  /** AppRole: the role's role-id (not a secret). */
  roleId?: string;
  /** The lines a log would show (never printed). */
  text: string;
}

/** One managed credential of `kind`, identity `id`, to be planted in `encoding`. */
export function makeManaged(kind: ManagedKind, id: string, encoding: PlantEncoding): ManagedCredential {
  const base = { kind, encoding };
  switch (kind) {
    case 'vault-token': {
      const token = randomInt(2) === 0 ? makeCredential.vaultHcpToken() : makeCredential.vaultServiceToken();
      return {
        ...base,
        identity: identity({ id, kind: 'vault-token' }),
        handle: `acc-${randomChars(24)}`,
        stored: token,
        text: `export VAULT_TOKEN=${token}`,
      };
    }
    case 'vault-kv-field': {
      // A generated password no rule knows, written where no `password=` rule looks.
      const password = randomChars(24);
      return {
        ...base,
        identity: identity({ id, kind: 'vault-kv', scope: { path: `ci/${id}`, field: 'password' } }),
        handle: String(randomInt(1, 50)),
        stored: { password, user: 'deploy' },
        text: `+ lftp -u deploy,${password} sftp://files.internal -e "mirror -R dist /www"`,
      };
    }
    case 'aws-secret-template': {
      const password = randomChars(32);
      return {
        ...base,
        identity: identity({
          id,
          kind: 'aws-secret',
          scope: {
            secretId: `ci/${id}`,
            template: {
              keep: ['username', 'host'],
              generate: {
                password: { format: 'random', length: 32 },
                url: { format: 'template', template: 'postgres://{username}:{password:url}@{host}/app' },
              },
            },
          },
        }),
        handle: `sm-${randomUUID()}`,
        stored: JSON.stringify({
          username: 'app',
          host: 'db.internal',
          password,
          url: `postgres://app:${password}@db.internal/app`,
        }),
        text: `[migrate] connecting to postgres://app:${password}@db.internal/app`,
      };
    }
    case 'aws-secret-text': {
      const value = randomChars(40);
      return {
        ...base,
        identity: identity({ id, kind: 'aws-secret' }),
        handle: `sm-${randomUUID()}`,
        stored: value,
        text: `+ curl -sf -H "X-Api-Key: ${value}" https://registry.internal/v2/`,
      };
    }
    case 'vault-approle-secret-id': {
      const roleId = randomUUID();
      const secretId = randomUUID();
      return {
        ...base,
        identity: identity({ id, kind: 'vault-approle-secret-id' }),
        handle: `sid-${randomChars(24)}`,
        stored: JSON.stringify({ role_id: roleId, secret_id: secretId }),
        roleId,
        text: `+ vault write auth/approle/login role_id=${roleId} secret_id=${secretId}`,
      };
    }
    case 'aws-iam-access-key': {
      const accessKeyId = makeCredential.awsAccessKeyId();
      const secretAccessKey = makeCredential.awsSecretAccessKey();
      return {
        ...base,
        identity: identity({ id, kind: 'aws-iam-access-key' }),
        handle: accessKeyId,
        stored: JSON.stringify({ accessKeyId, secretAccessKey }),
        text: `AWS_ACCESS_KEY_ID=${accessKeyId}\nAWS_SECRET_ACCESS_KEY=${secretAccessKey}`,
      };
    }
  }
}

/** Where a managed credential was planted (scored by its identity, never its value). */
export interface ManagedPlant {
  kind: ManagedKind;
  encoding: PlantEncoding;
  identityId: string;
  file: string;
  lines: number[];
}

// ---- filler: build-log lines and look-alikes ----

const STEPS = ['install', 'lint', 'compile', 'test', 'package', 'publish', 'deploy'];
const WORDS = [
  'resolving',
  'fetched',
  'linking',
  'building',
  'checking',
  'wrote',
  'cached',
  'skipped',
  'passed',
];

/** A cheap stream of random hex (filler needs volume, not cryptographic quality). */
class HexPool {
  #pool = '';
  #at = 0;
  take(n: number): string {
    if (this.#at + n > this.#pool.length) {
      this.#pool = randomBytes(1 << 20).toString('hex');
      this.#at = 0;
    }
    const s = this.#pool.slice(this.#at, this.#at + n);
    this.#at += n;
    return s;
  }
}

/** One build-log line, a look-alike among every few (`lookalike` says which). */
function fillerLine(hex: HexPool, n: number): { text: string; lookalike: boolean } {
  const stamp = `2026-12-05T08:${String(n % 60).padStart(2, '0')}:${String((n * 7) % 60).padStart(2, '0')}.${hex.take(3)}Z`;
  const step = STEPS[n % STEPS.length];
  switch (n % 10) {
    case 0:
      return { text: `${stamp} [${step}] request-id ${randomUUID()} trace ${randomUUID()}`, lookalike: true };
    case 1:
      return {
        text: `${stamp} [${step}] HEAD is now at ${hex.take(40)} merge ${hex.take(7)}`,
        lookalike: true,
      };
    case 2:
      return { text: `${stamp} [${step}] sha256:${hex.take(64)} layer pushed`, lookalike: true };
    case 3:
      return {
        text: `${stamp} [${step}] artifact digest ${Buffer.from(hex.take(96), 'hex').toString('base64')}`,
        lookalike: true,
      };
    case 4:
      return {
        text: `${stamp} [${step}] integrity sha512-${Buffer.from(hex.take(128), 'hex').toString('base64')}`,
        lookalike: true,
      };
    default:
      return {
        text: `${stamp} [${step}] ${WORDS[n % WORDS.length]} node_modules/pkg-${hex.take(6)}/dist/index.js (${n % 997} ms) ok`,
        lookalike: false,
      };
  }
}

/** Options of {@link generateCorpus}. */
export interface CorpusOptions {
  /** Total size, in MB (10^6 characters). */
  mb: number;
  /** Size of each log file, in MB. */
  fileMb: number;
  /** Plants of each kind in each encoding. */
  perKindEncoding: number;
  /** Managed credentials to plant too, each once in its own encoding. */
  managed?: readonly ManagedCredential[];
}

/** A generated corpus: its files (name → text) and what was planted where. */
export interface Corpus {
  files: Map<string, string>;
  plants: Plant[];
  managedPlants: ManagedPlant[];
  lookalikeLines: number;
  bytes: number;
}

/** Builds the corpus in memory: filler lines, with the plants spread evenly at random lines. */
export function generateCorpus(options: CorpusOptions): Corpus {
  const totalChars = Math.round(options.mb * 1e6);
  const fileCount = Math.max(1, Math.ceil(options.mb / options.fileMb));
  type Queued = { kind: PlantKind; encoding: PlantEncoding } | { managed: ManagedCredential };
  const queue: Queued[] = [];
  for (const kind of PLANT_KINDS) {
    for (const encoding of PLANT_ENCODINGS) {
      for (let i = 0; i < options.perKindEncoding; i++) queue.push({ kind, encoding });
    }
  }
  for (const managed of options.managed ?? []) queue.push({ managed });
  // Shuffle, so every file holds every kind.
  for (let i = queue.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [queue[i], queue[j]] = [queue[j] as (typeof queue)[number], queue[i] as (typeof queue)[number]];
  }
  const hex = new HexPool();
  const files = new Map<string, string>();
  const plants: Plant[] = [];
  const managedPlants: ManagedPlant[] = [];
  let lookalikeLines = 0;
  let bytes = 0;
  const perFile = Math.ceil(totalChars / fileCount);
  const plantsPerFile = Math.ceil(queue.length / fileCount);
  for (let f = 0; f < fileCount; f++) {
    const file = `build-${String(f + 1).padStart(3, '0')}.log`;
    const mine = queue.slice(f * plantsPerFile, (f + 1) * plantsPerFile);
    const every = Math.max(2, Math.floor(perFile / 130 / (mine.length + 1)));
    const parts: string[] = [];
    let line = 1;
    let size = 0;
    let n = 0;
    while (size < perFile || mine.length > 0) {
      n++;
      const next = n % every === 0 ? mine.shift() : undefined;
      if (next !== undefined) {
        const made = 'managed' in next ? undefined : plantText(next.kind);
        const text = 'managed' in next ? next.managed.text : (made?.text ?? '');
        const encoding = 'managed' in next ? next.managed.encoding : next.encoding;
        const written = encodePlant(text, encoding);
        const count = written.split('\n').length;
        const lines = Array.from({ length: count }, (_, i) => line + i);
        if ('managed' in next) {
          const { kind, identity } = next.managed;
          managedPlants.push({ kind, encoding, identityId: identity.id, file, lines });
        } else if (made) {
          plants.push({ kind: next.kind, encoding, file, lines, value: made.value });
        }
        parts.push(written);
        line += count;
        size += written.length + 1;
        continue;
      }
      const filler = fillerLine(hex, n);
      if (filler.lookalike) lookalikeLines++;
      parts.push(filler.text);
      line++;
      size += filler.text.length + 1;
    }
    const text = `${parts.join('\n')}\n`;
    files.set(file, text);
    bytes += text.length;
  }
  return { files, plants, managedPlants, lookalikeLines, bytes };
}
