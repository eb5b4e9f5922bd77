/**
 * A model of AWS (and Vault) as a benchmark meets them: every request takes a latency
 * drawn from its service's distribution, and every API draws from a token bucket at its
 * documented (or commonly measured) quota, so a burst past the quota is refused exactly as
 * AWS refuses it. The fault proxy (test/support/fault-proxy.ts) applies it: the model
 * decides, the proxy waits and answers (a throttled request gets its service's own
 * throttling error, see `throttleAnswer` there).
 *
 * Why: on loopback every call is ~1 ms and nothing throttles, so concurrency buys little
 * and a sequential loop looks good; in AWS each call costs tens of milliseconds and the
 * limit is the quotas (issue #12). The model makes both visible on the local stack.
 *
 * Everything here is pure and seeded (no clock of its own: `now` comes from the caller),
 * so the bucket and the latency draw are specified by unit tests (test/unit/aws-model.test.ts).
 * No vitest import: the benchmarks use it.
 */
import { z } from 'zod';
import type { FaultRequest, TrafficModel } from './fault-proxy.ts';
import { seededRandom } from './fault-proxy.ts';

/** The services the model knows, by the name the SigV4 credential scope gives them (the fault proxy's `service`). */
export const MODEL_SERVICES = [
  'iam',
  'sts',
  'secretsmanager',
  'dynamodb',
  's3',
  'scheduler',
  'vault',
] as const;
export type ModelService = (typeof MODEL_SERVICES)[number];

const QuotaSchema = z.strictObject({
  /** The bucket's name: calls sharing a quota share one bucket. */
  bucket: z.string().min(1),
  service: z.enum(MODEL_SERVICES),
  /** The operations that draw from this bucket: names, or a pattern over the name. */
  operations: z.union([z.array(z.string().min(1)).min(1), z.instanceof(RegExp)]),
  /** Requests admitted per second, on average; null for no quota at all. */
  perSecond: z.number().positive().nullable(),
  /** Requests admitted at once after a quiet second (the bucket's size). @default perSecond */
  burst: z.number().positive().optional(),
  /** Where the figure comes from. */
  source: z.string().min(1),
});
export type Quota = z.infer<typeof QuotaSchema>;

const SM_QUOTAS =
  'AWS Secrets Manager quotas, docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html';

/**
 * The quotas, one row per bucket; the first row matching a request's service and
 * operation takes it. A request no row matches is never throttled.
 */
export const AWS_QUOTAS: readonly Quota[] = z.array(QuotaSchema).parse([
  {
    bucket: 'secretsmanager:writes',
    service: 'secretsmanager',
    operations: [
      'PutSecretValue',
      'RemoveRegionsFromReplication',
      'ReplicateSecretToRegions',
      'StopReplicationToReplica',
      'UpdateSecret',
      'UpdateSecretVersionStage',
    ],
    perSecond: 50,
    source: `${SM_QUOTAS}: "Combined rate of PutSecretValue, …, UpdateSecret, and UpdateSecretVersionStage API requests: 50 per second", not adjustable`,
  },
  {
    bucket: 'secretsmanager:rotate',
    service: 'secretsmanager',
    operations: ['RotateSecret', 'CancelRotateSecret'],
    perSecond: 50,
    source: `${SM_QUOTAS}: "Combined rate of RotateSecret and CancelRotateSecret API requests: 50 per second"`,
  },
  {
    bucket: 'secretsmanager:reads',
    service: 'secretsmanager',
    operations: ['DescribeSecret', 'GetSecretValue'],
    perSecond: 10_000,
    source: `${SM_QUOTAS}: "Combined rate of DescribeSecret and GetSecretValue API requests: 10,000 per second"`,
  },
  {
    bucket: 'secretsmanager:tags',
    service: 'secretsmanager',
    operations: ['TagResource', 'UntagResource'],
    perSecond: 50,
    source: `${SM_QUOTAS}: "Combined rate of TagResource and UntagResource API requests: 50 per second"`,
  },
  {
    bucket: 'secretsmanager:list-versions',
    service: 'secretsmanager',
    operations: ['ListSecretVersionIds'],
    perSecond: 50,
    source:
      'AWS Secrets Manager quotas as published in awsdocs/aws-secrets-manager-docs (doc_source/reference_limits.md, "Rate quotas"): ' +
      '"ListSecrets and ListSecretVersionIds, combined: 50" per second; ListSecrets alone has had 100 since November 2022 (AWS What\'s New), ListSecretVersionIds kept 50',
  },
  {
    bucket: 'secretsmanager:other',
    service: 'secretsmanager',
    operations: /.*/,
    perSecond: 50,
    source: `${SM_QUOTAS}: the other control-plane APIs (CreateSecret, DeleteSecret, ListSecrets) taken at 50 per second like the rows above; assumed, not read off the page`,
  },
  {
    bucket: 'iam:mutating',
    service: 'iam',
    operations:
      /^(?:Create|Delete|Update|Put|Attach|Detach|Add|Remove|Tag|Untag|Set|Change|Reset|Enable|Deactivate|Upload)/,
    perSecond: 15,
    source:
      'not published: AWS says only that IAM calls "contribute to a maximum rate limit for your AWS account" (re:Post knowledge center, iam-sts-throttling-error); ' +
      'commonly measured at 10–20 mutating calls per second per account (issue #12), taken at the middle, one bucket shared by every mutating call',
  },
  {
    bucket: 'iam:reads',
    service: 'iam',
    operations: /.*/,
    perSecond: 100,
    source: 'not published; reads throttle much later than writes in practice; assumed',
  },
  {
    bucket: 'sts:AssumeRole',
    service: 'sts',
    operations: ['AssumeRole', 'AssumeRoleWithWebIdentity', 'AssumeRoleWithSAML'],
    perSecond: 600,
    source:
      'STS AssumeRole 600 requests per second per account and Region (issue #12; the figure AWS support quotes)',
  },
  {
    bucket: 'sts:other',
    service: 'sts',
    operations: /.*/,
    perSecond: 600,
    source: 'GetCallerIdentity and the rest taken at the AssumeRole figure; assumed',
  },
  {
    bucket: 'dynamodb:writes',
    service: 'dynamodb',
    operations: ['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems'],
    perSecond: 4_000,
    source:
      'DynamoDB on demand: a new table serves up to 4,000 write request units per second at once (DynamoDB developer guide, "Initial throughput for on-demand capacity mode"); ' +
      'counted per request, ample for one bench table at a time',
  },
  {
    bucket: 'dynamodb:reads',
    service: 'dynamodb',
    operations: /.*/,
    perSecond: 12_000,
    source:
      'DynamoDB on demand: a new table serves up to 12,000 read request units per second at once (same page)',
  },
  {
    bucket: 'vault',
    service: 'vault',
    operations: /.*/,
    perSecond: null,
    source: 'Vault and OpenBao have no rate-limit quota unless an operator sets one (sys/quotas/rate-limit)',
  },
]);

const LatencySchema = z.strictObject({
  service: z.enum(MODEL_SERVICES),
  /** Half the requests take less. */
  medianMs: z.number().positive(),
  /** 99 % of the requests take less: the tail. */
  p99Ms: z.number().positive(),
  source: z.string().min(1),
});
export type Latency = z.infer<typeof LatencySchema>;

/** Per-service latency as seen from a Lambda function in the same Region: log-normal, median and p99. */
export const AWS_LATENCIES: readonly Latency[] = z.array(LatencySchema).parse([
  {
    service: 'iam',
    medianMs: 50,
    p99Ms: 250,
    source: 'issue #12 (IAM ~50 ms; a global service in us-east-1); tail assumed',
  },
  {
    service: 'sts',
    medianMs: 30,
    p99Ms: 150,
    source: 'issue #12 (STS ~30 ms, Regional endpoint); tail assumed',
  },
  {
    service: 'secretsmanager',
    medianMs: 30,
    p99Ms: 150,
    source: 'issue #12 (Secrets Manager ~30 ms); tail assumed',
  },
  {
    service: 'dynamodb',
    medianMs: 6,
    p99Ms: 25,
    source: 'issue #12 (DynamoDB ~6 ms, single-digit ms in Region); tail assumed',
  },
  {
    service: 'vault',
    medianMs: 5,
    p99Ms: 25,
    source: 'issue #12 (Vault ~5 ms, a cluster near the functions); tail assumed',
  },
  { service: 's3', medianMs: 20, p99Ms: 100, source: 'assumed, like the others' },
  { service: 'scheduler', medianMs: 30, p99Ms: 150, source: 'assumed, like the others' },
]);

/**
 * A token bucket: `burst` tokens at most, refilled at `perSecond`; a request takes one or
 * is refused. The algorithm AWS names for its API throttling (EC2 API reference, "Request
 * token bucket"), used here for every service.
 */
export class TokenBucket {
  readonly perSecond: number;
  readonly burst: number;
  #tokens: number;
  #last: number;

  /** Starts full at `now` (milliseconds, any monotonic origin). */
  constructor(props: { perSecond: number; burst?: number | undefined }, now: number) {
    if (!(props.perSecond > 0))
      throw new RangeError(`token bucket: expected perSecond > 0, got ${props.perSecond}`);
    this.perSecond = props.perSecond;
    this.burst = props.burst ?? props.perSecond;
    if (!(this.burst >= 1)) throw new RangeError(`token bucket: expected burst ≥ 1, got ${this.burst}`);
    this.#tokens = this.burst;
    this.#last = now;
  }

  /** Takes a token at `now` if there is one: true when the request is admitted. */
  take(now: number): boolean {
    const elapsed = Math.max(0, now - this.#last);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.perSecond) / 1_000);
    this.#last = Math.max(this.#last, now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** z such that 99 % of a standard normal lies below it. */
const Z_99 = 2.326_347_874;

/**
 * A log-normal latency draw with the given median and p99, from a uniform source
 * (`random` in [0, 1)): exp(μ + σz), μ = ln(median), σ = ln(p99 / median) / z₉₉, z by Box–Muller.
 */
export function logNormalDraw(
  latency: { medianMs: number; p99Ms: number },
  random: () => number,
): () => number {
  if (!(latency.p99Ms >= latency.medianMs)) {
    throw new RangeError(`latency: expected p99 ≥ median, got ${latency.p99Ms} < ${latency.medianMs}`);
  }
  const mu = Math.log(latency.medianMs);
  const sigma = Math.log(latency.p99Ms / latency.medianMs) / Z_99;
  return () => {
    const u1 = 1 - random(); // (0, 1]: the logarithm stays finite
    const u2 = random();
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    return Math.exp(mu + sigma * z);
  };
}

/** Requests a bucket admitted and refused, for the bench's report. */
export interface BucketCount {
  admitted: number;
  throttled: number;
}

export interface AwsModelProps {
  /** Seed of the latency draws. @default 1 */
  seed?: number;
  quotas?: readonly Quota[];
  latencies?: readonly Latency[];
  /** Milliseconds, monotonic. @default performance.now */
  now?: () => number;
  /** Latencies multiplied by this (0 keeps the quotas and drops the latency). @default 1 */
  latencyScale?: number;
}

/** The model as the fault proxy applies it (`startFaultProxy({ model })`); one instance may serve several proxies. */
export class AwsModel implements TrafficModel {
  readonly quotas: readonly Quota[];
  readonly #now: () => number;
  readonly #draws = new Map<string, () => number>();
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #counts = new Map<string, BucketCount>();
  readonly #scale: number;

  constructor(props: AwsModelProps = {}) {
    this.quotas = props.quotas ?? AWS_QUOTAS;
    this.#now = props.now ?? (() => performance.now());
    this.#scale = props.latencyScale ?? 1;
    const random = seededRandom(props.seed ?? 1);
    for (const latency of props.latencies ?? AWS_LATENCIES) {
      this.#draws.set(latency.service, logNormalDraw(latency, random));
    }
  }

  /** The quota row a request draws from, if any. */
  quotaOf(service: string, operation: string): Quota | undefined {
    return this.quotas.find(
      (quota) =>
        quota.service === service &&
        (quota.operations instanceof RegExp
          ? quota.operations.test(operation)
          : quota.operations.includes(operation)),
    );
  }

  decide(request: Pick<FaultRequest, 'service' | 'operation'>): { latencyMs: number; throttled: boolean } {
    const latencyMs = (this.#draws.get(request.service)?.() ?? 0) * this.#scale;
    const quota = this.quotaOf(request.service, request.operation);
    if (!quota) return { latencyMs, throttled: false };
    const count = this.#counts.get(quota.bucket) ?? { admitted: 0, throttled: 0 };
    this.#counts.set(quota.bucket, count);
    let admitted = true;
    if (quota.perSecond !== null) {
      let bucket = this.#buckets.get(quota.bucket);
      if (!bucket) {
        bucket = new TokenBucket({ perSecond: quota.perSecond, burst: quota.burst }, this.#now());
        this.#buckets.set(quota.bucket, bucket);
      }
      admitted = bucket.take(this.#now());
    }
    count[admitted ? 'admitted' : 'throttled'] += 1;
    return { latencyMs, throttled: !admitted };
  }

  /** Requests admitted and throttled so far, by bucket. */
  counts(): Record<string, BucketCount> {
    return Object.fromEntries([...this.#counts].map(([bucket, count]) => [bucket, { ...count }]));
  }
}

/** The bucket's quota in requests per second, or undefined for a bucket without one. */
export const perSecondOf = (quotas: readonly Quota[], bucket: string): number | undefined =>
  quotas.find((quota) => quota.bucket === bucket)?.perSecond ?? undefined;

/**
 * The quota bound of a piece of work: the least wall time any client could take, given
 * the calls it must make per bucket — max over buckets with a quota of calls / quota
 * (seconds). `calls` counts admitted requests only (a throttled try is not work).
 */
export function quotaBound(
  calls: Readonly<Record<string, BucketCount>>,
  quotas: readonly Quota[] = AWS_QUOTAS,
): { seconds: number; bucket: string | undefined } {
  let seconds = 0;
  let bucket: string | undefined;
  for (const [name, count] of Object.entries(calls)) {
    const perSecond = perSecondOf(quotas, name);
    if (perSecond === undefined) continue;
    const needed = count.admitted / perSecond;
    if (needed > seconds) {
      seconds = needed;
      bucket = name;
    }
  }
  return { seconds, bucket };
}

/**
 * Mutating calls one turn of keywarden's rate stands for, by provider service
 * (functions/adapters/rate-limits.ts): an IAM key revocation, deactivated then deleted (2); a
 * Secrets Manager write (1: a target takes a turn per write, four for a current value it replaces).
 */
const WRITES_PER_TURN = { iam: 2, 'secrets-manager': 1 } as const;

/**
 * keywarden's rate limits (the KEYWARDEN_RATE_* variables of functions/adapters/rate-limits.ts)
 * taken from the quota table, so a campaign paces itself at the quotas: turns per second = the
 * service's write quota / the writes one turn makes, to a tenth rounded down (IAM: 15 / 2 = 7.5;
 * Secrets Manager: 50).
 * Vault has no quota: left to the caller.
 */
export function rateLimitEnvFromQuotas(quotas: readonly Quota[] = AWS_QUOTAS): Record<string, string> {
  const iam = perSecondOf(quotas, 'iam:mutating');
  const secrets = perSecondOf(quotas, 'secretsmanager:writes');
  return {
    ...(iam && {
      KEYWARDEN_RATE_IAM: String(Math.max(1, Math.floor((iam * 10) / WRITES_PER_TURN.iam) / 10)),
    }),
    ...(secrets && {
      KEYWARDEN_RATE_SECRETS_MANAGER: String(
        Math.max(1, Math.floor(secrets / WRITES_PER_TURN['secrets-manager'])),
      ),
    }),
  };
}
