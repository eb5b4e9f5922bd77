import * as z from 'zod';

const UNIT_SECONDS = { s: 1, m: 60, h: 3_600, d: 86_400, w: 604_800 } as const;
const DURATION = /^(\d+)([smhdw])$/;

/** A duration written as a whole number and one unit: `30s`, `15m`, `12h`, `90d`, `2w`. */
export const DurationSchema = z
  .string()
  .regex(DURATION, {
    error: (issue) => `expected a duration such as 30m, 12h or 90d, got ${JSON.stringify(issue.input)}`,
  })
  .refine((text) => !DURATION.test(text) || toSeconds(text) > 0, {
    error: 'expected a duration greater than zero',
  });

/** Whether a string is a well-formed duration. */
export const isDuration = (text: string): boolean => DURATION.test(text);

/** Seconds in a duration string already accepted by {@link DurationSchema}. */
export function toSeconds(duration: string): number {
  const match = DURATION.exec(duration);
  if (!match)
    throw new RangeError(`expected a duration such as 30m, 12h or 90d, got ${JSON.stringify(duration)}`);
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_SECONDS];
  return Number(amount) * UNIT_SECONDS[unit];
}

/** Milliseconds in a duration string. */
export const toMillis = (duration: string): number => toSeconds(duration) * 1_000;

/** A short human form of a number of milliseconds: `3d 4h`, `12m`, `40s`. */
export function formatAge(millis: number): string {
  const seconds = Math.max(0, Math.floor(millis / 1_000));
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3_600);
  const minutes = Math.floor((seconds % 3_600) / 60);
  if (days > 0) return hours > 0 ? `${days}d ${hours}h` : `${days}d`;
  if (hours > 0) return minutes > 0 ? `${hours}h ${minutes}m` : `${hours}h`;
  if (minutes > 0) return `${minutes}m`;
  return `${seconds}s`;
}
