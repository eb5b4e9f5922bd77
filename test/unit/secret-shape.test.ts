import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeFormat, generateField, matchesFormat } from '../../functions/core/generator.ts';
import { type Identity, IdentitySchema } from '../../functions/core/identity.ts';
import {
  credentialPart,
  renderValue,
  shapeProblems,
  valueShapeOf,
} from '../../functions/core/secret-shape.ts';
import { FieldFormatSchema } from '../../functions/core/secret-template.ts';

const base = {
  purpose: 'test',
  pipeline: { repo: 'acme/app', stage: 'deploy', environment: 'prod' },
};
const kv = (scope: Record<string, unknown>): Identity =>
  IdentitySchema.parse({ ...base, id: 'kv', kind: 'vault-kv', scope: { path: 'ci/app/db', ...scope } });
const sm = (scope: Record<string, unknown>): Identity =>
  IdentitySchema.parse({ ...base, id: 'sm', kind: 'aws-secret', scope: { secretId: 'ci/app/db', ...scope } });

const database = {
  keep: ['username', 'host', 'port'],
  generate: {
    password: { format: 'random', length: 32 },
    url: { format: 'template', template: 'postgres://{username}:{password:url}@{host}:{port}/app' },
  },
};

describe('field formats', () => {
  it.each([
    [{ format: 'random', length: 20, classes: ['digits'], prefix: 'x-' }, /^x-\d{20}$/],
    [{ format: 'hex', bytes: 16 }, /^[0-9a-f]{32}$/],
    [{ format: 'base64', bytes: 18 }, /^[A-Za-z0-9+/]{24}$/],
    [{ format: 'base64', bytes: 16, urlSafe: true }, /^[A-Za-z0-9_-]{22}$/],
    [{ format: 'uuid' }, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/],
    [{ format: 'random', length: 36, prefix: 'npm_' }, /^npm_[A-Za-z0-9]{36}$/],
  ])('%o makes values that match it and its own check', (declared, pattern) => {
    const format = FieldFormatSchema.parse(declared);
    if (format.format === 'template') throw new Error('not a generated format');
    for (let i = 0; i < 50; i += 1) {
      const value = generateField(format, randomBytes);
      expect(value).toMatch(pattern);
      expect(matchesFormat(format, value)).toBe(true);
    }
    expect(matchesFormat(format, 'not-it')).toBe(false);
    expect(describeFormat(format)).not.toBe('');
  });

  it('refuses formats too weak to be a credential', () => {
    expect(() => FieldFormatSchema.parse({ format: 'hex', bytes: 8 })).toThrow();
    expect(() => FieldFormatSchema.parse({ format: 'random', length: 8 })).toThrow();
    expect(() => FieldFormatSchema.parse({ format: 'uuid', prefix: 'with space' })).toThrow(/printable/);
  });
});

describe('secret templates in the inventory', () => {
  it('accepts a database credential: kept fields, a generated password, a URL built from them', () => {
    expect(valueShapeOf(sm({ template: database }))).toMatchObject({ type: 'fields', keep: database.keep });
  });

  it.each([
    [{ keep: ['a'], generate: { a: { format: 'uuid' } } }, /kept or generated, not both/],
    [
      { generate: { url: { format: 'template', template: 'x://{host}' } } },
      /at least one generated field that is not a template/,
    ],
    [
      { generate: { key: { format: 'hex' }, url: { format: 'template', template: 'x://{host}/{key}' } } },
      /\{host\} to name a kept field/,
    ],
    [
      { generate: { key: { format: 'hex' }, url: { format: 'template', template: 'constant' } } },
      /at least one \{field\}/,
    ],
  ])('refuses %o with a message that says what was expected', (template, message) => {
    expect(() => kv({ template })).toThrow(message);
  });

  it('takes the format of a single value: a plain npm token keeps its prefix', () => {
    const identity = sm({ format: { format: 'random', length: 36, prefix: 'npm_' } });
    expect(renderValue(identity, `npm_${'a'.repeat(36)}`, randomBytes)).toMatch(/^npm_[A-Za-z0-9]{36}$/);
    expect(() => sm({ format: { format: 'uuid' }, generator: { length: 20 } })).toThrow(
      /either format or generator/,
    );
    expect(() => sm({ format: { format: 'template', template: '{x}' } })).toThrow();
  });

  it('refuses a template together with field or generator', () => {
    expect(() => kv({ template: database, field: 'password' })).toThrow(/either template or field/);
    expect(() => sm({ template: database, generator: { length: 20 } })).toThrow(
      /either template or generator/,
    );
  });

  it('keeps the old forms: no template is one random value, a plain string in Secrets Manager and field `value` in KV, and field renames it', () => {
    expect(valueShapeOf(sm({}))).toMatchObject({ type: 'text', format: { format: 'random', length: 40 } });
    expect(valueShapeOf(kv({ generator: { length: 64 } }))).toMatchObject({
      type: 'fields',
      generate: [['value', { format: 'random', length: 64 }]],
    });
    expect(valueShapeOf(kv({ field: 'key' }))).toMatchObject({ generate: [['key', { format: 'random' }]] });
    expect(valueShapeOf(sm({ field: 'token' }))).toMatchObject({ type: 'fields', generate: [['token', {}]] });
  });
});

describe('rendering the next value', () => {
  const current = {
    username: 'app',
    host: 'db.internal',
    port: 5432,
    password: 'old',
    url: 'old',
    note: 'ops owns this',
  };

  it('changes only the generated fields and keeps every other field as it was', () => {
    const next = renderValue(kv({ template: database }), current, randomBytes) as Record<string, unknown>;
    expect(Object.keys(next)).toEqual(Object.keys(current));
    expect(next).toMatchObject({ username: 'app', host: 'db.internal', port: 5432, note: 'ops owns this' });
    expect(next.password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(next.url).toBe(`postgres://app:${next.password}@db.internal:5432/app`);
    expect(shapeProblems(kv({ template: database }), next)).toEqual([]);
  });

  it('writes a Secrets Manager JSON string back as a JSON string, other keys untouched', () => {
    const next = renderValue(sm({ template: database }), JSON.stringify(current), randomBytes);
    expect(typeof next).toBe('string');
    const parsed = JSON.parse(next as string);
    expect(parsed).toMatchObject({ username: 'app', port: 5432, note: 'ops owns this' });
    expect(parsed.password).not.toBe('old');
  });

  it('percent-encodes a {field:url} placeholder', () => {
    const identity = kv({
      template: {
        keep: ['host'],
        generate: {
          password: { format: 'random', length: 16, classes: ['symbols'] },
          url: { format: 'template', template: 'x://u:{password:url}@{host}' },
        },
      },
    });
    const next = renderValue(identity, { host: 'h' }, randomBytes) as Record<string, string>;
    expect(next.url).toBe(`x://u:${encodeURIComponent(next.password as string)}@h`);
  });

  it('refuses, naming fields and never values, when the current value does not fit the shape', () => {
    const identity = kv({ template: database });
    expect(() => renderValue(identity, { username: 'app', password: 'hunter2' }, randomBytes)).toThrow(
      /no field "host", "port", which its template keeps/,
    );
    expect(() => renderValue(sm({ template: database }), 'hunter2', randomBytes)).toThrow(
      /holds a plain value/,
    );
    expect(() => renderValue(sm({}), JSON.stringify({ password: 'hunter2' }), randomBytes)).toThrow(
      /holds a JSON object with fields "password", but the inventory declares a plain value/,
    );
    for (const attempt of [
      () => renderValue(identity, { username: 'app', password: 'hunter2' }, randomBytes),
      () => renderValue(sm({}), JSON.stringify({ password: 'hunter2' }), randomBytes),
    ]) {
      expect(attempt).toThrow(expect.not.objectContaining({ message: expect.stringContaining('hunter2') }));
    }
  });

  it('refuses to write `value` beside a credential kept in another field (which would stay unrotated)', () => {
    expect(() => renderValue(kv({}), { key: 'cosign-key' }, randomBytes)).toThrow(
      /holds fields "key" but none of "value", which rotation generates; name the field/,
    );
    expect(renderValue(kv({ field: 'key' }), { key: 'cosign-key' }, randomBytes)).toEqual({
      key: expect.stringMatching(/^[A-Za-z0-9]{40}$/),
    });
  });

  it('creates a secret that does not exist yet from its generated fields alone', () => {
    expect(renderValue(kv({}), undefined, randomBytes)).toEqual({ value: expect.any(String) });
    expect(typeof renderValue(sm({}), undefined, randomBytes)).toBe('string');
    expect(JSON.parse(renderValue(sm({ field: 'token' }), undefined, randomBytes) as string)).toEqual({
      token: expect.any(String),
    });
  });
});

describe('checking a delivered value', () => {
  it('names each field that is missing, of the wrong type, or not in its format', () => {
    const identity = kv({ template: database });
    expect(
      shapeProblems(identity, { username: 'app', host: 'h', password: 'short', url: 'postgres://elsewhere' }),
    ).toEqual([
      'field "port" (kept) is missing',
      'field "password": expected 32 characters of lower, upper, digits',
      'field "url" does not follow its template',
    ]);
    expect(shapeProblems(sm({}), '{}')).toEqual(['expected 40 characters of lower, upper, digits']);
  });
});

describe('the credential part of a value (what fingerprints compare)', () => {
  it('is the generated fields only, so one password shared by two database credentials is seen as reuse', () => {
    const identity = sm({ template: database });
    const staging = JSON.stringify({
      username: 'app',
      host: 'staging',
      port: 5432,
      password: 'same',
      url: 'a',
    });
    const prod = JSON.stringify({ username: 'app', host: 'prod', port: 5432, password: 'same', url: 'b' });
    expect(credentialPart(identity, staging)).toBe(credentialPart(identity, prod));
    expect(credentialPart(identity, staging)).toBe('{"password":"same"}');
  });

  it('is the whole value for a plain secret, an undeclared one, or one without its generated fields', () => {
    expect(credentialPart(sm({}), 'plain')).toBe('plain');
    expect(credentialPart(undefined, { b: '1', a: '2' })).toBe('{"a":"2","b":"1"}');
    expect(credentialPart(kv({}), { key: 'x' })).toBe('{"key":"x"}');
    expect(credentialPart(kv({}), { value: 'x' })).toBe('{"value":"x"}');
  });
});
