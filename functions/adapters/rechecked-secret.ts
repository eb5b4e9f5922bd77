/**
 * A secret deployed as a placeholder and set by an operator afterwards (the forge tokens, the
 * Slack bot token): a warm container must see the value once it is set, without a redeploy, and
 * must not read the secret at every invocation while it is still the placeholder.
 */

/** How long a token secret's placeholder (forge tokens, Slack bot token) is believed before the secret is read again. */
export const SECRET_RECHECK_MS = 60_000;

/**
 * What was read at cold start, and a getter that reads it again (`reload`) when the caller finds
 * it `incomplete` and the last read is {@link SECRET_RECHECK_MS} old: one read a minute at most,
 * and only while something is missing.
 */
export function rereadWhile<T>(
  first: T,
  reload: () => Promise<T>,
  now: () => number,
): (incomplete: (current: T) => boolean) => Promise<T> {
  let current = first;
  let readAt = now();
  return async (incomplete) => {
    if (incomplete(current) && now() - readAt >= SECRET_RECHECK_MS) {
      // Noted before reading: a read that fails (Lambda retries) is not tried again by every call.
      readAt = now();
      current = await reload();
    }
    return current;
  };
}
