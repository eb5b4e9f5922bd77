/**
 * A received value quoted for a message: JSON-quoted, and clipped so that an oversized input
 * (a 400 KB field, a fuzzer's string) never makes the message, the audit record that keeps
 * it, or the answer that shows it, oversized too.
 */
export function quote(value: unknown, max = 80): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  if (text.length <= max) return typeof value === 'string' ? JSON.stringify(value) : text;
  return `${JSON.stringify(text.slice(0, max))}… (${text.length} characters)`;
}
