import { type Generator, GeneratorSchema } from './identity.ts';

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

function generate(generator: Generator, random: RandomBytes): string {
  const pools = generator.classes
    .map((name) => [...CLASSES[name]].filter((c) => !generator.exclude.includes(c)).join(''))
    .filter((pool) => pool.length > 0);
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
