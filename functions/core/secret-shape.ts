/**
 * The shape of a secret-valued identity (`aws-secret`, `vault-kv`) and the three things
 * rotation does with it: render the next value from the current one (keeping every field
 * it does not generate), check a delivered value against the shape, and pick the part
 * that is the credential (what fingerprints compare). No value ever appears in an error.
 */
import { canonicalJson } from './canonical-json.ts';
import { ValidationError } from './errors.ts';
import {
  describeFormat,
  type GeneratedFormat,
  generateField,
  matchesFormat,
  type RandomBytes,
} from './generator.ts';
import type { Identity } from './identity.ts';
import { type FieldFormat, GeneratorSchema, PLACEHOLDER } from './secret-template.ts';

/**
 * `text`: the whole value is one generated string (a Secrets Manager secret with no
 * template). `fields`: a JSON object whose `generate` fields keywarden writes; every
 * other field is kept, and `keep` ones must be there.
 */
export type ValueShape =
  | { type: 'text'; format: GeneratedFormat }
  | { type: 'fields'; keep: readonly string[]; generate: readonly (readonly [string, FieldFormat])[] };

/** A value as a delivery holds it: a Secrets Manager string, or KV fields. */
export type StoredValue = string | Record<string, unknown>;

/** The shape the inventory declares for a secret-valued identity; undefined for other kinds. */
export function valueShapeOf(identity: Identity): ValueShape | undefined {
  if (identity.kind !== 'aws-secret' && identity.kind !== 'vault-kv') return undefined;
  const { template, field, generator } = identity.scope;
  if (template) return { type: 'fields', keep: template.keep, generate: Object.entries(template.generate) };
  const format: GeneratedFormat = identity.scope.format ?? {
    format: 'random',
    ...(generator ?? GeneratorSchema.parse({})),
  };
  if (identity.kind === 'aws-secret' && field === undefined) return { type: 'text', format };
  return { type: 'fields', keep: [], generate: [[field ?? 'value', format]] };
}

/** Where a value lives, for messages: `secret ci/app/db`, `kv secret/ci/web/sentry`. */
const whereOf = (identity: Identity): string =>
  identity.kind === 'vault-kv'
    ? `kv ${identity.scope.mount}/${identity.scope.path}`
    : identity.kind === 'aws-secret'
      ? `secret ${identity.scope.secretId}`
      : identity.id;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A Secrets Manager string that is a JSON object, as fields; anything else undefined. */
function jsonFields(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

const fieldList = (fields: Record<string, unknown>): string =>
  Object.keys(fields)
    .map((name) => JSON.stringify(name))
    .join(', ') || 'none';

/**
 * The next value of `identity`: its shape's generated fields new, every other field of
 * `current` (undefined: the secret does not exist yet) as it was, byte for byte. Throws
 * a {@link ValidationError} naming fields (never values) when the current value does not
 * fit the declared shape, rather than rename or silently leave the credential unrotated.
 */
export function renderValue(
  identity: Identity,
  current: StoredValue | undefined,
  random: RandomBytes,
): StoredValue {
  const shape = valueShapeOf(identity);
  if (!shape)
    throw new ValidationError(`${identity.id}: a ${identity.kind} identity has no secret value to render`);
  const where = whereOf(identity);
  if (shape.type === 'text') {
    const fields = typeof current === 'string' ? jsonFields(current) : current;
    if (fields) {
      throw new ValidationError(
        `${identity.id}: ${where} holds a JSON object with fields ${fieldList(fields)}, but the inventory declares a plain value; declare scope.template (the fields to keep and to generate) or scope.field, so rotation keeps its shape`,
      );
    }
    return generateField(shape.format, random);
  }
  const before = typeof current === 'string' ? jsonFields(current) : current;
  if (typeof current === 'string' && !before) {
    throw new ValidationError(
      `${identity.id}: ${where} holds a plain value, but the inventory declares fields (${shape.generate.map(([name]) => name).join(', ')}); expected a JSON object — convert the secret, or drop the template`,
    );
  }
  const fields: Record<string, unknown> = { ...(before ?? {}) };
  const missing = shape.keep.filter((name) => !(name in fields));
  if (missing.length > 0) {
    throw new ValidationError(
      `${identity.id}: ${where} has no field ${missing.map((name) => JSON.stringify(name)).join(', ')}, which its template keeps (it has ${fieldList(fields)}); add the field to the secret, or drop it from template.keep`,
    );
  }
  const generated = shape.generate.filter(([, format]) => format.format !== 'template').map(([name]) => name);
  const undeclared = Object.keys(fields).filter(
    (name) => !shape.keep.includes(name) && !shape.generate.some(([each]) => each === name),
  );
  if (before && generated.every((name) => !(name in fields)) && undeclared.length > 0) {
    // The credential probably lives in a field of another name: writing ours beside it would leave it unrotated.
    throw new ValidationError(
      `${identity.id}: ${where} holds fields ${fieldList(fields)} but none of ${generated.map((name) => JSON.stringify(name)).join(', ')}, which rotation generates; name the field that holds the credential (scope.field, or scope.template.generate), and list the others in template.keep`,
    );
  }
  for (const [name, format] of shape.generate) {
    if (format.format !== 'template') fields[name] = generateField(format, random);
  }
  for (const [name, format] of shape.generate) {
    if (format.format === 'template') fields[name] = renderTemplate(identity, name, format.template, fields);
  }
  return typeof current === 'string' || (current === undefined && identity.kind === 'aws-secret')
    ? JSON.stringify(fields)
    : fields;
}

/** A template string with its placeholders filled from `fields` (`:url` percent-encodes). */
function renderTemplate(
  identity: Identity,
  name: string,
  template: string,
  fields: Record<string, unknown>,
): string {
  return template.replace(PLACEHOLDER, (_match, field: string, url: string | undefined) => {
    const value = fields[field];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new ValidationError(
        `${identity.id}: the template of field ${JSON.stringify(name)} uses {${field}}, but ${whereOf(identity)} has ${value === undefined ? 'no such field' : 'no string, number or boolean there'}; add it to the secret`,
      );
    }
    return url ? encodeURIComponent(String(value)) : String(value);
  });
}

/**
 * What is wrong with a delivered value against the declared shape: one line per field
 * missing, of the wrong type, or not in its format. Empty when it fits.
 */
export function shapeProblems(identity: Identity, stored: StoredValue): string[] {
  const shape = valueShapeOf(identity);
  if (!shape) return [];
  if (shape.type === 'text') {
    if (typeof stored !== 'string') return ['expected a plain value, found fields'];
    return matchesFormat(shape.format, stored) ? [] : [`expected ${describeFormat(shape.format)}`];
  }
  const fields = typeof stored === 'string' ? jsonFields(stored) : stored;
  if (!fields)
    return [`expected a JSON object with fields ${shape.generate.map(([name]) => name).join(', ')}`];
  const problems: string[] = [];
  for (const name of shape.keep)
    if (!(name in fields)) problems.push(`field ${JSON.stringify(name)} (kept) is missing`);
  for (const [name, format] of shape.generate) {
    const value = fields[name];
    if (typeof value !== 'string') {
      problems.push(`field ${JSON.stringify(name)} is ${value === undefined ? 'missing' : 'not a string'}`);
      continue;
    }
    if (format.format === 'template') {
      let expected: string | undefined;
      try {
        expected = renderTemplate(identity, name, format.template, fields);
      } catch {
        expected = undefined;
      }
      if (expected !== value) problems.push(`field ${JSON.stringify(name)} does not follow its template`);
    } else if (!matchesFormat(format, value)) {
      problems.push(`field ${JSON.stringify(name)}: expected ${describeFormat(format)}`);
    }
  }
  return problems;
}

/**
 * The part of a value that is the credential, as text to fingerprint: the whole value for
 * a plain one; for fields, the generated fields that are not templates (a database
 * credential's password, not its host), canonical JSON. A value that has none of them
 * (it does not follow its shape yet) is taken whole, so two such values never look alike.
 */
export function credentialPart(identity: Identity | undefined, stored: StoredValue): string {
  const shape = identity && valueShapeOf(identity);
  const fields = typeof stored === 'string' ? jsonFields(stored) : stored;
  const whole = typeof stored === 'string' ? stored : canonicalJson(stored);
  if (!shape || shape.type === 'text' || !fields) return whole;
  const part = Object.fromEntries(
    shape.generate
      .filter(([name, format]) => format.format !== 'template' && fields[name] !== undefined)
      .map(([name]) => [name, fields[name]]),
  );
  return Object.keys(part).length > 0 ? canonicalJson(part) : whole;
}

/**
 * Why delivering `staged` over `current` would rename what the pipeline reads: the target
 * holds fields, none of them one the new value sets (a token kept as `token`, delivered as
 * `value`). Undefined when it keeps the shape. Names fields, never values.
 */
export function renamedFields(
  current: Record<string, unknown> | undefined,
  staged: Record<string, unknown>,
): string | undefined {
  if (!current || Object.keys(current).length === 0) return undefined;
  if (Object.keys(staged).some((name) => name in current)) return undefined;
  return `it holds fields ${fieldList(current)}, the new credential has ${fieldList(staged)}: delivering it would leave the pipeline reading the old one`;
}
