import { ValidationError } from '../core/errors.ts';

/**
 * A whole-number option ≥ 1 of an adapter (a concurrency, a timeout, a TTL): the value given,
 * or `fallback` when none was. A bad one is a ValidationError naming where it was given.
 *
 * @param where the adapter and option, as in `VaultClient: … requestTimeoutMs`.
 */
export function wholeNumberOption(
  where: { owner: string; option: string },
  value: number | undefined,
  fallback?: number,
): number {
  const chosen = value ?? fallback;
  if (chosen === undefined || !Number.isInteger(chosen) || chosen < 1) {
    throw new ValidationError(
      `${where.owner}: expected ${where.option} to be a whole number ≥ 1, got ${chosen}`,
    );
  }
  return chosen;
}
