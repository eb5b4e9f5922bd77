/**
 * What the value of an `aws-secret` or `vault-kv` identity looks like, as the inventory
 * declares it: the fields kept as they are, the fields keywarden generates, and the
 * format of each generated one. Only schemas live here; generating and checking values
 * is in generator.ts and secret-shape.ts.
 */
import * as z from 'zod';
import { onFirstUse } from './on-first-use.ts';

/** How a random value is drawn: length, character classes, characters left out. */
const generatorFields = () => ({
  length: z.int().min(16).max(4096).default(40),
  classes: z
    .array(z.enum(['lower', 'upper', 'digits', 'symbols']))
    .min(1)
    .default(['lower', 'upper', 'digits']),
  exclude: z.string().default(''),
});
export const GeneratorSchema = onFirstUse(() => z.strictObject(generatorFields()));
export type Generator = z.infer<typeof GeneratorSchema>;

/** A field name of a structured secret (a JSON key). */
export const FieldNameSchema = onFirstUse(() =>
  z
    .string()
    .min(1)
    .max(256)
    .refine((name) => name.trim() === name, {
      error: (issue) =>
        `expected a field name without leading or trailing spaces, got ${JSON.stringify(issue.input)}`,
    }),
);

/** Printable ASCII put in front of a generated value, such as `npm_`. */
const prefix = () =>
  z
    .string()
    .max(64)
    .regex(/^[\x21-\x7e]*$/, {
      error: (issue) =>
        `expected a prefix of printable characters without spaces, got ${JSON.stringify(issue.input)}`,
    })
    .optional();

/** A placeholder of a template: `{field}` as it is, `{field:url}` percent-encoded. */
export const PLACEHOLDER = /\{([^{}:]+)(:url)?\}/g;

/** The formats of a generated value drawn at random (not built from other fields). */
const generatedFormats = () =>
  [
    z.strictObject({ ...generatorFields(), format: z.literal('random'), prefix: prefix() }),
    z.strictObject({
      format: z.literal('hex'),
      bytes: z.int().min(16).max(2048).default(32),
      prefix: prefix(),
    }),
    z.strictObject({
      format: z.literal('base64'),
      bytes: z.int().min(16).max(2048).default(32),
      /** The URL-safe alphabet (`-_`) without padding, instead of the standard one (`+/` and `=`). */
      urlSafe: z.boolean().default(false),
      prefix: prefix(),
    }),
    z.strictObject({ format: z.literal('uuid'), prefix: prefix() }),
  ] as const;
export const GeneratedFormatSchema = onFirstUse(() => z.discriminatedUnion('format', generatedFormats()));

/** The format of one generated field: drawn at random, or built from the other fields. */
export const FieldFormatSchema = onFirstUse(() =>
  z.discriminatedUnion('format', [
    ...generatedFormats(),
    /** Built from the other fields: `postgres://{username}:{password:url}@{host}:{port}/app`. */
    z.strictObject({ format: z.literal('template'), template: z.string().min(1).max(4096) }),
  ]),
);
export type FieldFormat = z.infer<typeof FieldFormatSchema>;

/** The names a template string refers to, in order. */
const placeholdersOf = (template: string): string[] =>
  [...template.matchAll(PLACEHOLDER)].map((match) => match[1] as string);

/**
 * A structured secret: `keep` names fields that must be there and are never changed,
 * `generate` the fields keywarden writes at each rotation. Every other field of the
 * secret is kept untouched too; `keep` is what the test step checks is still there.
 */
export const SecretTemplateSchema = onFirstUse(() =>
  z
    .strictObject({
      keep: z.array(FieldNameSchema).default([]),
      generate: z.record(FieldNameSchema, FieldFormatSchema),
    })
    .superRefine((template, ctx) => {
      const generated = Object.entries(template.generate);
      if (!generated.some(([, format]) => format.format !== 'template')) {
        ctx.addIssue({
          code: 'custom',
          path: ['generate'],
          message:
            'expected at least one generated field that is not a template (random, hex, base64 or uuid): otherwise nothing changes at rotation',
        });
      }
      for (const name of template.keep.filter((name) => name in template.generate)) {
        ctx.addIssue({
          code: 'custom',
          path: ['keep'],
          message: `expected a field to be kept or generated, not both: ${JSON.stringify(name)}`,
        });
      }
      const known = new Set([
        ...template.keep,
        ...generated.filter(([, format]) => format.format !== 'template').map(([name]) => name),
      ]);
      for (const [name, format] of generated) {
        if (format.format !== 'template') continue;
        const names = placeholdersOf(format.template);
        if (names.length === 0) {
          ctx.addIssue({
            code: 'custom',
            path: ['generate', name, 'template'],
            message: `expected the template of ${JSON.stringify(name)} to use at least one {field}, got none`,
          });
        }
        for (const missing of names.filter((each) => !known.has(each))) {
          ctx.addIssue({
            code: 'custom',
            path: ['generate', name, 'template'],
            message: `expected {${missing}} to name a kept field or a generated field that is not a template (${[...known].join(', ') || 'none declared'})`,
          });
        }
      }
    }),
);
export type SecretTemplate = z.infer<typeof SecretTemplateSchema>;

/**
 * The keys a secret-valued scope takes to say what its value looks like: `template`
 * (a structured secret), or `field` (one generated field of that name) with an optional
 * `generator` or `format`. None: one random value (a plain string in Secrets Manager, the `value`
 * field in KV).
 */
export const valueShapeKeys = {
  generator: GeneratorSchema.optional(),
  /** The format of the one generated value (instead of `generator`): `{ format: random, length: 36, prefix: npm_ }`. */
  format: GeneratedFormatSchema.optional(),
  field: FieldNameSchema.optional(),
  template: SecretTemplateSchema.optional(),
};

/** Refuses a scope that declares a template with `field`/`generator`/`format`, or both of the last two. */
export function refineValueShape(
  scope: { template?: unknown; field?: unknown; generator?: unknown; format?: unknown },
  ctx: z.RefinementCtx,
): void {
  if (scope.generator !== undefined && scope.format !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['format'],
      message:
        'expected either format or generator, not both: a random format takes length, classes and exclude itself',
    });
  }
  if (scope.template === undefined) return;
  for (const key of ['field', 'generator', 'format'] as const) {
    if (scope[key] === undefined) continue;
    ctx.addIssue({
      code: 'custom',
      path: [key],
      message: `expected either template or ${key}, not both: declare the field's format inside template.generate`,
    });
  }
}
