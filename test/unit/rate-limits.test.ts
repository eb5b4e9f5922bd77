/**
 * Revocation rate limits from the environment (functions/adapters/rate-limits.ts) and their split
 * over revoke-batch workers (functions/core/revocation-batching.ts): a rate may hold a tenth, so
 * IAM's 15 mutating calls a second at two per key revocation is 7.5 revocations a second, not 7.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { rateLimitsFromEnv, serviceLimiter } from '../../functions/adapters/rate-limits.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import { batchConcurrency, workerShare } from '../../functions/core/revocation-batching.ts';

describe('rate limits: a rate with one decimal', () => {
  it('reads KEYWARDEN_RATE_IAM=7.5 as 7.5 revocations a second', () => {
    expect(rateLimitsFromEnv({ KEYWARDEN_RATE_IAM: '7.5' }).iam).toEqual({ concurrency: 4, perSecond: 7.5 });
  });

  it.each(['7.55', '0.5', 'fast', '7,5'])(
    'refuses KEYWARDEN_RATE_IAM=%s, naming the variable and what it expects',
    (text) => {
      expect(() => rateLimitsFromEnv({ KEYWARDEN_RATE_IAM: text })).toThrow(ValidationError);
      expect(() => rateLimitsFromEnv({ KEYWARDEN_RATE_IAM: text })).toThrow(
        /KEYWARDEN_RATE_IAM: expected a number with at most one decimal from 1 to 10000/,
      );
    },
  );

  it('keeps a concurrency a whole number', () => {
    expect(() => rateLimitsFromEnv({ KEYWARDEN_CONCURRENCY_IAM: '2.5' })).toThrow(/expected a whole number/);
  });

  it('splits 7.5 a second over four workers as 1.8 each, never more than the whole', () => {
    const iam = { concurrency: 4, perSecond: 7.5 };
    expect(batchConcurrency([iam, { concurrency: 16, perSecond: 25 }])).toBe(4);
    expect(workerShare(iam, 4)).toEqual({ concurrency: 1, perSecond: 1.8 });
    expect(batchConcurrency([{ concurrency: 16, perSecond: 7.5 }], 7)).toBe(7);
    expect(() => batchConcurrency([{ concurrency: 16, perSecond: 7.5 }], 8)).toThrow(/from 1 to 7/);
  });
});

describe('rate limits: the limiter of a rate with one decimal', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** The most starts in any window of `ms` among the start times. */
  const most = (starts: readonly number[], ms: number): number =>
    Math.max(...starts.map((from) => starts.filter((at) => at >= from && at < from + ms).length));

  it('starts 7.5 a second: at most 15 in any 2 s and never more than 8 in any second (no burst of a window)', async () => {
    vi.useFakeTimers();
    const limit = serviceLimiter({ concurrency: 100, perSecond: 7.5 });
    const starts: number[] = [];

    const all = Promise.all(
      Array.from({ length: 45 }, () =>
        limit(async () => {
          starts.push(Date.now());
        }),
      ),
    );
    await vi.advanceTimersByTimeAsync(10_000);
    await all;

    expect(starts).toHaveLength(45);
    expect(most(starts, 2_000)).toBeLessThanOrEqual(15);
    expect(most(starts, 1_000)).toBeLessThanOrEqual(8);
    // …and the rate is kept: 45 starts take about 6 s, not the 9 s of 5 a second.
    expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(6_500);
  });

  it('takes the turns a work counts as from its schedule: two works of three turns at 2 a second start at 1 and 2.5 s', async () => {
    vi.useFakeTimers();
    const limit = serviceLimiter({ concurrency: 4, perSecond: 2 });
    const began = Date.now();
    const starts: number[] = [];

    const all = Promise.all(
      [3, 3].map((turns) =>
        limit(async () => {
          starts.push(Date.now() - began);
        }, turns),
      ),
    );
    await vi.advanceTimersByTimeAsync(5_000);
    await all;

    // From an empty bucket: turns at 0, 0.5, 1 s (the first work's last), 1.5, 2, 2.5 s (the second's).
    expect(starts).toEqual([1_000, 2_500]);
  });

  it('keeps its schedule when the event loop runs its timers late: the rate is kept over the run, not lost', async () => {
    vi.useFakeTimers();
    const limit = serviceLimiter({ concurrency: 4, perSecond: 7.5 });
    const starts: number[] = [];

    const all = Promise.all(
      Array.from({ length: 31 }, (_, i) =>
        limit(async () => {
          starts.push(Date.now());
          // Every third start, the process is busy for 60 ms: the timers due meanwhile fire late.
          if (i % 3 === 0) vi.setSystemTime(Date.now() + 60);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }),
      ),
    );
    await vi.advanceTimersByTimeAsync(10_000);
    await all;

    // 30 gaps of 133 ms: 4 s on schedule (with a start timed from when it went, the 600 ms of
    // stalls would add up to 4.6 s).
    expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(4_100);
    expect(most(starts, 2_000)).toBeLessThanOrEqual(16);
  });

  it("catches up, a second's worth at most, once slow calls holding every slot have put it behind", async () => {
    vi.useFakeTimers();
    const limit = serviceLimiter({ concurrency: 1, perSecond: 20 });
    const starts: number[] = [];

    const all = Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        limit(async () => {
          starts.push(Date.now());
          // The first five calls are slow (300 ms each, 1.5 s where the schedule gave them 250 ms).
          await new Promise((resolve) => setTimeout(resolve, i < 5 ? 300 : 10));
        }),
      ),
    );
    await vi.advanceTimersByTimeAsync(10_000);
    await all;

    // Back on the schedule (39 gaps of 50 ms) within a little: without catching up, 1.5 s + 35 × 50 ms.
    expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(2_300);
    // The bucket holds a second's worth: never more than two seconds' worth in any second.
    expect(most(starts, 1_000)).toBeLessThanOrEqual(40);
  });

  it("starts a listing limiter's second's worth at once, then keeps the rate", async () => {
    vi.useFakeTimers();
    const limit = serviceLimiter({ concurrency: 100, perSecond: 100 }, { startFull: true });
    const starts: number[] = [];

    const all = Promise.all(
      Array.from({ length: 150 }, () =>
        limit(async () => {
          starts.push(Date.now());
        }),
      ),
    );
    await vi.advanceTimersByTimeAsync(5_000);
    await all;

    const first = Math.min(...starts);
    expect(starts.filter((at) => at === first)).toHaveLength(100);
    expect(Math.max(...starts) - first).toBeGreaterThanOrEqual(490);
    expect(most(starts, 1_000)).toBeLessThanOrEqual(150);
  });
});
