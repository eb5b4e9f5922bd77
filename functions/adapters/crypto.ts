import { createHash, createHmac } from 'node:crypto';
import type { Digest } from '../core/audit.ts';
import { canonicalJson } from '../core/canonical-json.ts';

/** SHA-256, hex: the digest of the audit chain and of declarations. */
export const sha256Hex: Digest = (text) => createHash('sha256').update(text).digest('hex');

/**
 * Fingerprints credential values with a keyed HMAC, so equal values can be found
 * without storing them, and a leaked fingerprint cannot be brute-forced offline
 * without the key. The clear value is dropped by the caller right after.
 */
export class Fingerprinter {
  readonly #key: Buffer;
  constructor(key: string | Buffer) {
    if (key.length < 16)
      throw new RangeError(`expected a fingerprint key of at least 16 bytes, got ${key.length}`);
    this.#key = Buffer.isBuffer(key) ? key : Buffer.from(key, 'utf8');
  }

  /** `hmac-sha256:<32 hex>`; objects are serialized canonically first. */
  of(value: string | Record<string, unknown>): string {
    const text = typeof value === 'string' ? value : canonicalJson(value);
    return `hmac-sha256:${createHmac('sha256', this.#key).update(text).digest('hex').slice(0, 32)}`;
  }
}
