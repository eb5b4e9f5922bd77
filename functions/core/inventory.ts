import * as z from 'zod';
import { CiConfigSchema, ciProblems } from './ci-policy.ts';
import { BreakglassConfigSchema } from './grant.ts';
import { IdentitySchema } from './identity.ts';

/** The `identities.yaml` file: the declared inventory of pipeline identities. */
export const InventorySchema = z.strictObject({
  version: z.literal(1),
  identities: z.array(IdentitySchema),
  /** Break-glass roles: temporary elevated access with approval (see grant.ts). */
  breakglass: BreakglassConfigSchema.optional(),
  /** CI job credentials: trusted OIDC issuers, job grants, approval gates (see ci-policy.ts). */
  ci: CiConfigSchema.optional(),
});
export type Inventory = z.infer<typeof InventorySchema>;

/** One problem in an input document, located by its path. */
export interface Problem {
  path: (string | number)[];
  message: string;
}

const describe = (value: unknown): string => {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  return `${typeof value} ${String(value)}`;
};

/**
 * The parse context {@link toProblems} needs: the received value on every issue, and a
 * discriminated union's accepted values named on its "no matching discriminator" issue.
 */
export const REPORTING: z.core.ParseContext<z.core.$ZodIssue> = {
  reportInput: true,
  error: (issue) => {
    if (issue.code !== 'invalid_union' || !('discriminator' in issue) || !issue.discriminator)
      return undefined;
    const values = (issue.inst as z.core.$ZodDiscriminatedUnion | undefined)?._zod.propValues?.[
      issue.discriminator
    ];
    return values ? `expected ${[...values].map((v) => JSON.stringify(v)).join(' | ')}` : undefined;
  },
};

/**
 * Turns zod issues into "expected …, got …" problems. Needs issues parsed with
 * {@link REPORTING} so the received value is known.
 */
export function toProblems(issues: readonly z.core.$ZodIssue[], base: (string | number)[] = []): Problem[] {
  return issues.flatMap((issue): Problem[] => {
    const path = [...base, ...issue.path.filter((p): p is string | number => typeof p !== 'symbol')];
    const got = describe(issue.input);
    switch (issue.code) {
      case 'invalid_type':
        return [
          {
            path,
            message: `expected ${issue.expected}, got ${issue.input === undefined ? 'nothing (required)' : got}`,
          },
        ];
      case 'invalid_value':
        return [
          { path, message: `expected ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${got}` },
        ];
      case 'unrecognized_keys':
        return issue.keys.map((key) => ({
          path: [...path, key],
          message: `expected no field ${JSON.stringify(key)} here (misspelt?), got one`,
        }));
      case 'invalid_union': {
        if ('discriminator' in issue && issue.discriminator) {
          const value = (issue.input as Record<string, unknown> | undefined)?.[issue.discriminator];
          const expected = issue.message.startsWith('expected') ? issue.message : 'expected a known value';
          return [
            {
              path: path.at(-1) === issue.discriminator ? path : [...path, issue.discriminator],
              message: `${expected}, got ${describe(value)}`,
            },
          ];
        }
        // Explain through the first accepted form: it is the simplest one by convention.
        const first = issue.errors[0];
        return first
          ? toProblems(first, path)
          : [{ path, message: `expected one of the accepted forms, got ${got}` }];
      }
      case 'too_small':
      case 'too_big': {
        const bound = issue.code === 'too_small' ? 'at least' : 'at most';
        const limit = issue.code === 'too_small' ? issue.minimum : issue.maximum;
        const size =
          Array.isArray(issue.input) || typeof issue.input === 'string' ? issue.input.length : undefined;
        const unit = issue.origin === 'array' ? ' item(s)' : issue.origin === 'string' ? ' character(s)' : '';
        return [{ path, message: `expected ${bound} ${String(limit)}${unit}, got ${size ?? got}` }];
      }
      default:
        return [
          {
            path,
            message: issue.message.startsWith('expected') ? issue.message : `${issue.message}, got ${got}`,
          },
        ];
    }
  });
}

/** Ids declared more than once in a list; checked on the raw document so it is reported beside every other problem. */
function duplicateIds(raw: unknown, path: readonly string[]): Problem[] {
  let list: unknown = raw;
  for (const key of path) list = (list as Record<string, unknown> | null | undefined)?.[key];
  if (!Array.isArray(list)) return [];
  const seen = new Map<string, number>();
  return list.flatMap((entry, index): Problem[] => {
    const id = (entry as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') return [];
    const first = seen.get(id);
    if (first === undefined) {
      seen.set(id, index);
      return [];
    }
    return [
      {
        path: [...path, index, 'id'],
        message: `expected a unique id, got ${JSON.stringify(id)} again (first at ${path.join('.')}.${first})`,
      },
    ];
  });
}

/** Validates a parsed inventory document, returning every problem found. */
export function validateInventory(
  raw: unknown,
): { ok: true; inventory: Inventory } | { ok: false; problems: Problem[] } {
  const result = InventorySchema.safeParse(raw, REPORTING);
  const problems = [
    ...(result.success ? [] : toProblems(result.error.issues)),
    ...duplicateIds(raw, ['identities']),
    ...duplicateIds(raw, ['breakglass', 'roles']),
    ...(result.success && result.data.ci
      ? ciProblems(result.data.ci).map((problem) => ({ ...problem, path: ['ci', ...problem.path] }))
      : []),
  ];
  if (result.success && problems.length === 0) return { ok: true, inventory: result.data };
  return { ok: false, problems };
}
