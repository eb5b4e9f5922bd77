import type { z } from 'zod';
import { type GeneratedFormatSchema, type Generator, GeneratorSchema } from './secret-template.ts';

const CLASSES = {
  lower: 'abcdefghijklmnopqrstuvwxyz',
  upper: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  digits: '0123456789',
  symbols: '!#$%&()*+,-.:;<=>?@[]^_{|}~',
} as const;

/** Random bytes from a cryptographic source, injected (node:crypto in the adapters). */
export type RandomBytes = (count: number) => Uint8Array;

/**
 * A new secret value of `generator.length` characters from the chosen classes, at
 * least one of each, none of `exclude`. Rejection sampling keeps every character
 * equally likely (no modulo bias). No generator: the default one (40 characters, every class).
 */
export function generateValue(generator: Generator | undefined, random: RandomBytes): string {
  return generate(generator ?? GeneratorSchema.parse({}), random);
}

/** The characters a generator draws from, one pool per class, excluded ones left out. */
const poolsOf = (generator: Generator): string[] =>
  generator.classes
    .map((name) => [...CLASSES[name]].filter((c) => !generator.exclude.includes(c)).join(''))
    .filter((pool) => pool.length > 0);

function generate(generator: Generator, random: RandomBytes): string {
  const pools = poolsOf(generator);
  if (pools.length === 0) {
    throw new RangeError(
      `generator: every character of ${generator.classes.join(', ')} is excluded; expected some left`,
    );
  }
  const alphabet = pools.join('');
  const pick = (from: string): string => {
    const limit = 256 - (256 % from.length);
    for (;;) {
      for (const byte of random(32)) if (byte < limit) return from[byte % from.length] as string;
    }
  };
  for (;;) {
    const chars = Array.from({ length: generator.length }, () => pick(alphabet));
    // At least one character of each requested class; redraw (rarely) otherwise.
    if (pools.every((pool) => chars.some((c) => pool.includes(c)))) return chars.join('');
  }
}

/** A generated field in its declared format (a template field is rendered from the others, not here). */
export type GeneratedFormat = z.infer<typeof GeneratedFormatSchema>;

/** A new value of one generated field, in `format`, with its prefix. */
export function generateField(format: GeneratedFormat, random: RandomBytes): string {
  const body = (): string => {
    switch (format.format) {
      case 'random':
        return generate(format, random);
      case 'hex':
        return Buffer.from(random(format.bytes)).toString('hex');
      case 'base64':
        return Buffer.from(random(format.bytes)).toString(format.urlSafe ? 'base64url' : 'base64');
      case 'uuid':
        return uuidOf(random(16));
    }
  };
  return `${format.prefix ?? ''}${body()}`;
}

/** An RFC 9562 version 4 UUID from 16 random bytes. */
function uuidOf(bytes: Uint8Array): string {
  const b = Uint8Array.from(bytes);
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const hex = Buffer.from(b).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The pattern a value of `format` matches, whole. */
function patternOf(format: GeneratedFormat): RegExp {
  const prefix = escapeRegex(format.prefix ?? '');
  switch (format.format) {
    case 'random': {
      const alphabet = escapeRegex(poolsOf(format).join('')).replace(/-/g, '\\-');
      return new RegExp(`^${prefix}[${alphabet}]{${format.length}}$`);
    }
    case 'hex':
      return new RegExp(`^${prefix}[0-9a-f]{${format.bytes * 2}}$`);
    case 'base64': {
      const chars = Math.ceil((format.bytes * 4) / 3);
      return format.urlSafe
        ? new RegExp(`^${prefix}[A-Za-z0-9_-]{${chars}}$`)
        : new RegExp(`^${prefix}[A-Za-z0-9+/]{${chars}}={0,2}$`);
    }
    case 'uuid':
      return new RegExp(`^${prefix}[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`);
  }
}

/** What `format` expects, in words, for a message that never shows the value. */
export function describeFormat(format: GeneratedFormat): string {
  const prefix = format.prefix ? ` after the prefix ${JSON.stringify(format.prefix)}` : '';
  switch (format.format) {
    case 'random':
      return `${format.length} characters of ${format.classes.join(', ')}${format.exclude ? ` without ${JSON.stringify(format.exclude)}` : ''}${prefix}`;
    case 'hex':
      return `${format.bytes * 2} lowercase hex digits${prefix}`;
    case 'base64':
      return `${format.bytes} bytes in ${format.urlSafe ? 'URL-safe ' : ''}base64${prefix}`;
    case 'uuid':
      return `a version 4 UUID${prefix}`;
  }
}

/** Whether `value` is in `format` (length, alphabet, prefix). */
export const matchesFormat = (format: GeneratedFormat, value: string): boolean =>
  patternOf(format).test(value);
