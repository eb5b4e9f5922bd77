import { describe, expect, it } from 'vitest';
import { DurationSchema, formatAge, toSeconds } from '../../functions/core/duration.ts';

describe('duration', () => {
  it.each([
    ['30s', 30],
    ['15m', 900],
    ['12h', 43_200],
    ['90d', 7_776_000],
    ['2w', 1_209_600],
  ])('reads %s as %i seconds', (text, seconds) => {
    expect(toSeconds(text)).toBe(seconds);
  });

  it.each(['', '10', 'd', '1.5h', '-1d', '1y', '0m'])('refuses %j', (text) => {
    expect(DurationSchema.safeParse(text).success).toBe(false);
  });

  it('prints ages in the two largest units', () => {
    expect(formatAge(200 * 86_400_000 + 3 * 3_600_000)).toBe('200d 3h');
    expect(formatAge(90 * 60_000)).toBe('1h 30m');
    expect(formatAge(42_000)).toBe('42s');
  });
});
