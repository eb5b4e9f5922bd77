import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { PrincipalSchema } from '../../functions/core/grant.ts';
import { IdentitySchema } from '../../functions/core/identity.ts';
import { onFirstUse } from '../../functions/core/on-first-use.ts';

describe('core: onFirstUse (schemas built on first use, not at import)', () => {
  it('builds the schema at the first parse, once, and not when it is declared or composed', () => {
    // prepare
    let builds = 0;
    const Name = onFirstUse(() => {
      builds += 1;
      return z.string().min(1);
    });
    const Person = z.object({ name: Name, nickname: Name.optional() });
    expect(builds).toBe(0);

    // act
    const parsed = Person.parse({ name: 'ada' });
    Person.parse({ name: 'grace', nickname: 'amazing' });
    Name.parse('edsger');

    // assess
    expect(parsed).toEqual({ name: 'ada' });
    expect(builds).toBe(1);
  });

  it('refuses as the built schema does, with its messages and paths', () => {
    const Port = onFirstUse(() => z.int().min(1).max(65_535, { error: 'expected a port up to 65535' }));
    const result = z.object({ port: Port }).safeParse({ port: 70_000 });
    expect(result.success).toBe(false);
    expect(result.error?.issues).toMatchObject([{ path: ['port'], message: 'expected a port up to 65535' }]);
  });

  it('hands out the one built schema through unwrap(), for its class-specific parts (.shape)', () => {
    const first = PrincipalSchema.unwrap();
    expect(PrincipalSchema.unwrap()).toBe(first);
    expect(Object.keys(first.shape)).toEqual(['kind', 'id', 'name']);
  });

  it('keeps a lazily built discriminated union telling which kinds it expects', () => {
    // The inventory's problem reporter reads the union's discriminator values from the issue.
    const result = IdentitySchema.safeParse({ kind: 'ftp-password' });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]).toMatchObject({ code: 'invalid_union', path: ['kind'] });
  });
});
