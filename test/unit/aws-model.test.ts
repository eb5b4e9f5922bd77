/**
 * The AWS model of the benchmarks (test/support/aws-model.ts): token buckets admit a
 * burst then the quota's rate, latency draws have the median and tail they were given,
 * the quota table routes each call to its bucket, and the quota bound and keywarden's
 * pacing follow from the table.
 */
import { describe, expect, it } from 'vitest';
import {
  AWS_QUOTAS,
  AwsModel,
  logNormalDraw,
  quotaBound,
  rateLimitEnvFromQuotas,
  TokenBucket,
} from '../support/aws-model.ts';
import { seededRandom } from '../support/fault-proxy.ts';

const percentileOf = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.floor((p / 100) * values.length)] ?? 0;

describe('aws model: token bucket', () => {
  it('admits a full burst at once, then refuses until a token has dripped back', () => {
    const bucket = new TokenBucket({ perSecond: 10, burst: 5 }, 0);

    const burst = Array.from({ length: 7 }, () => bucket.take(0));

    expect(burst).toEqual([true, true, true, true, true, false, false]);
    expect(bucket.take(50)).toBe(false); // half a token
    expect(bucket.take(100)).toBe(true); // one token after 1/10 s
    expect(bucket.take(100)).toBe(false);
  });

  it('admits the quota per second over a long run, whatever the demand, and never stores past its burst', () => {
    const bucket = new TokenBucket({ perSecond: 50 }, 0);
    let admitted = 0;
    // 1,000 requests a second for 10 s: 50 a second get through, plus the first burst.
    for (let ms = 0; ms < 10_000; ms += 1) if (bucket.take(ms)) admitted += 1;

    expect(admitted).toBeGreaterThanOrEqual(10 * 50);
    expect(admitted).toBeLessThanOrEqual(10 * 50 + 50);
    // A quiet minute refills the bucket to its burst, no more.
    const afterQuiet = Array.from({ length: 60 }, () => bucket.take(70_000)).filter(Boolean).length;
    expect(afterQuiet).toBe(50);
  });

  it('refuses a rate or burst that cannot admit anything', () => {
    expect(() => new TokenBucket({ perSecond: 0 }, 0)).toThrow(/perSecond > 0, got 0/);
    expect(() => new TokenBucket({ perSecond: 1, burst: 0.5 }, 0)).toThrow(/burst ≥ 1, got 0.5/);
  });
});

describe('aws model: latency draw', () => {
  it('draws log-normal latencies with the given median and p99, the same from the same seed', () => {
    const draw = logNormalDraw({ medianMs: 50, p99Ms: 250 }, seededRandom(7));
    const values = Array.from({ length: 20_000 }, draw);

    expect(percentileOf(values, 50)).toBeGreaterThan(47);
    expect(percentileOf(values, 50)).toBeLessThan(53);
    expect(percentileOf(values, 99)).toBeGreaterThan(220);
    expect(percentileOf(values, 99)).toBeLessThan(285);
    expect(Math.min(...values)).toBeGreaterThan(0);
    const again = logNormalDraw({ medianMs: 50, p99Ms: 250 }, seededRandom(7));
    expect(Array.from({ length: 5 }, again)).toEqual(values.slice(0, 5));
  });

  it('refuses a p99 below the median', () => {
    expect(() => logNormalDraw({ medianMs: 50, p99Ms: 10 }, Math.random)).toThrow(
      /p99 ≥ median, got 10 < 50/,
    );
  });
});

describe('aws model: quotas', () => {
  it('routes each call to its bucket: Secrets Manager writes share one, reads another, Vault has none', () => {
    const model = new AwsModel();

    expect(model.quotaOf('secretsmanager', 'PutSecretValue')?.bucket).toBe('secretsmanager:writes');
    expect(model.quotaOf('secretsmanager', 'UpdateSecretVersionStage')?.bucket).toBe('secretsmanager:writes');
    expect(model.quotaOf('secretsmanager', 'GetSecretValue')?.bucket).toBe('secretsmanager:reads');
    expect(model.quotaOf('iam', 'DeleteAccessKey')?.bucket).toBe('iam:mutating');
    expect(model.quotaOf('iam', 'ListAccessKeys')?.bucket).toBe('iam:reads');
    expect(model.quotaOf('sts', 'AssumeRole')?.perSecond).toBe(600);
    expect(model.quotaOf('vault', 'POST /v1/auth/token/revoke-accessor')?.perSecond).toBeNull();
    for (const quota of AWS_QUOTAS) expect(quota.source.length).toBeGreaterThan(10);
  });

  it('throttles a burst past the quota, bucket by bucket, and counts what each admitted and refused', () => {
    let now = 0;
    const model = new AwsModel({ now: () => now, latencyScale: 0 });

    const writes = Array.from({ length: 60 }, () =>
      model.decide({ service: 'secretsmanager', operation: 'PutSecretValue' }),
    );
    const reads = Array.from({ length: 60 }, () =>
      model.decide({ service: 'secretsmanager', operation: 'GetSecretValue' }),
    );
    now = 1_000;
    const later = model.decide({ service: 'secretsmanager', operation: 'UpdateSecretVersionStage' });

    expect(writes.filter((d) => d.throttled)).toHaveLength(10);
    expect(reads.filter((d) => d.throttled)).toHaveLength(0);
    expect(later.throttled).toBe(false);
    expect(model.counts()).toEqual({
      'secretsmanager:writes': { admitted: 51, throttled: 10 },
      'secretsmanager:reads': { admitted: 60, throttled: 0 },
    });
  });

  it('gives the quota bound as the slowest bucket: calls admitted / quota', () => {
    const bound = quotaBound({
      'iam:mutating': { admitted: 300, throttled: 12 },
      'secretsmanager:writes': { admitted: 400, throttled: 0 },
      vault: { admitted: 5_000, throttled: 0 },
    });

    expect(bound).toEqual({ seconds: 20, bucket: 'iam:mutating' });
  });

  it("paces keywarden at the quotas: writes per second / writes per turn (an IAM key revocation's two, a Secrets Manager write)", () => {
    expect(rateLimitEnvFromQuotas()).toEqual({
      KEYWARDEN_RATE_IAM: '7.5',
      KEYWARDEN_RATE_SECRETS_MANAGER: '50',
    });
  });
});
