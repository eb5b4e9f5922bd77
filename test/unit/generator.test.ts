import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateValue } from '../../functions/core/generator.ts';
import { GeneratorSchema } from '../../functions/core/identity.ts';

describe('generator', () => {
  it('makes values of the requested length with at least one character of each class', () => {
    const generator = GeneratorSchema.parse({ length: 24, classes: ['lower', 'upper', 'digits', 'symbols'] });
    for (let i = 0; i < 200; i += 1) {
      const value = generateValue(generator, randomBytes);
      expect(value).toHaveLength(24);
      expect(value).toMatch(/[a-z]/);
      expect(value).toMatch(/[A-Z]/);
      expect(value).toMatch(/[0-9]/);
      expect(value).toMatch(/[^a-zA-Z0-9]/);
    }
  });

  it('never uses an excluded character', () => {
    const generator = GeneratorSchema.parse({ length: 64, classes: ['digits'], exclude: '0123456' });
    expect(generateValue(generator, randomBytes)).toMatch(/^[789]{64}$/);
  });

  it('refuses a generator whose classes are all excluded', () => {
    const generator = GeneratorSchema.parse({ length: 16, classes: ['digits'], exclude: '0123456789' });
    expect(() => generateValue(generator, randomBytes)).toThrow(/every character of digits is excluded/);
  });

  it('gives different values each time', () => {
    const generator = GeneratorSchema.parse({});
    expect(generateValue(generator, randomBytes)).not.toBe(generateValue(generator, randomBytes));
  });
});
