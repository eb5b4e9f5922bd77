import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ERROR_CODES } from '../../functions/api/responses.ts';
import { CampaignCountsSchema, CampaignSchema, TargetSchema } from '../../functions/core/campaign.ts';
import {
  BreakglassRoleSchema,
  GrantSchema,
  GrantStateSchema,
  PrincipalSchema,
  TEXT_LIMITS,
} from '../../functions/core/grant.ts';
import { IdentityKindSchema } from '../../functions/core/identity.ts';
import { API_ROUTE_KEYS } from '../support/api-route-keys.ts';

type Json = Record<string, unknown>;

const text = readFileSync(new URL('../../api/openapi.yaml', import.meta.url), 'utf8');
const spec = parse(text) as Json;

const at = (value: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>(
    (node, key) => (node && typeof node === 'object' ? (node as Json)[key] : undefined),
    value,
  );
const schema = (name: string) => at(spec, 'components', 'schemas', name) as Json;
const properties = (name: string) => Object.keys((schema(name).properties ?? {}) as Json).sort();

/** Every `$ref` in the document, with where it was found. */
function refs(node: unknown, where = '#'): { ref: string; where: string }[] {
  if (Array.isArray(node)) return node.flatMap((item, i) => refs(item, `${where}/${i}`));
  if (!node || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([key, value]) =>
    key === '$ref' && typeof value === 'string' ? [{ ref: value, where }] : refs(value, `${where}/${key}`),
  );
}

/** A local JSON pointer (`#/components/schemas/Grant`), or undefined when nothing is there. */
function resolve(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  const keys = ref
    .slice(2)
    .split('/')
    .map((key) => decodeURIComponent(key).replace(/~1/g, '/').replace(/~0/g, '~'));
  return at(spec, ...keys);
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const operations = Object.entries(spec.paths as Json).flatMap(([path, item]) =>
  Object.entries(item as Json)
    .filter(([method]) => METHODS.includes(method))
    .map(([method, operation]) => ({ path, method, operation: operation as Json, item: item as Json })),
);

describe('api/openapi.yaml: the document', () => {
  it('is OpenAPI 3.1', () => {
    expect(spec.openapi).toMatch(/^3\.1\.\d+$/);
  });

  it('has every $ref pointing at something in the document', () => {
    // act
    const all = refs(spec);
    const dangling = all.filter(({ ref }) => resolve(ref) === undefined);

    // assess
    expect(all.length).toBeGreaterThan(50);
    expect(dangling).toEqual([]);
  });

  it('gives each operation a unique operationId, responses, and declared path parameters', () => {
    // prepare
    const ids = operations.map(({ operation }) => operation.operationId);

    // assess
    expect(new Set(ids).size).toBe(ids.length);
    for (const { path, method, operation, item } of operations) {
      expect(operation.responses, `${method} ${path}`).toBeTruthy();
      const declared = [...((item.parameters as Json[]) ?? []), ...((operation.parameters as Json[]) ?? [])]
        .map((p) => (p.$ref ? (resolve(p.$ref as string) as Json) : p))
        .filter((p) => p.in === 'path')
        .map((p) => p.name);
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      expect(declared.sort(), `${method} ${path}`).toEqual(inPath.sort());
    }
  });
});

describe('api/openapi.yaml: the routes', () => {
  it('describes the routes of issues #4, #5 and #13', () => {
    expect(operations.map(({ method, path }) => `${method.toUpperCase()} ${path}`).sort()).toEqual(
      API_ROUTE_KEYS,
    );
  });

  it('signs every grant, role and campaign route with SigV4 (or the local development token)', () => {
    // assess
    expect(at(spec, 'components', 'securitySchemes', 'sigv4', 'x-amazon-apigateway-authtype')).toBe(
      'awsSigv4',
    );
    expect(at(spec, 'components', 'securitySchemes', 'devToken')).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
    expect(spec.security).toEqual([{ sigv4: [] }, { devToken: [] }]);
    for (const { path, operation } of operations.filter(({ path }) => !/^\/(slack|ci)\//.test(path))) {
      expect(operation.security, path).toBeUndefined();
    }
  });

  it("takes a CI job's OIDC token on the exchange routes, and the platforms' signatures on the webhooks", () => {
    // assess
    expect(at(spec, 'components', 'securitySchemes', 'ciOidc')).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
    for (const { path, operation } of operations.filter(({ path }) => path.startsWith('/ci/credentials'))) {
      expect(operation.security, path).toEqual([{ ciOidc: [] }]);
    }
    for (const { path, operation } of operations.filter(({ path }) => path.startsWith('/ci/webhooks/'))) {
      expect(operation.security, path).toEqual([]);
    }
  });

  it("leaves the Slack routes to Slack's signature, and documents its headers", () => {
    for (const { path, operation } of operations.filter(({ path }) => path.startsWith('/slack/'))) {
      // prepare
      const headers = (operation.parameters as Json[])
        .map((p) => resolve(p.$ref as string) as Json)
        .filter((p) => p.in === 'header')
        .map((p) => p.name);

      // assess
      expect(operation.security, path).toEqual([]);
      expect(headers, path).toEqual(
        expect.arrayContaining(['X-Slack-Signature', 'X-Slack-Request-Timestamp', 'X-Slack-Retry-Num']),
      );
      expect(Object.keys(operation.responses as Json), path).toContain('401');
    }
  });

  it('marks the credential response no-store, and offers the two credential shapes', () => {
    // prepare
    const ok = at(spec, 'paths', '/grants/{grantId}/credentials', 'post', 'responses', '200') as Json;

    // assess
    expect(at(ok, 'headers', 'Cache-Control', 'schema', 'const')).toBe('no-store');
    expect(properties('AwsSessionCredential')).toEqual(
      ['type', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'expiresAt', 'region'].sort(),
    );
    expect(properties('VaultWrappedTokenCredential')).toEqual(
      ['type', 'wrappingToken', 'wrapExpiresAt', 'expiresAt', 'vaultAddr'].sort(),
    );
  });

  it('answers errors as { error: { code, message } } with 400, 401, 403, 404, 409 and 429', () => {
    // prepare
    const statuses = new Set(operations.flatMap(({ operation }) => Object.keys(operation.responses as Json)));

    // assess
    expect(properties('Error')).toEqual(['error']);
    expect(Object.keys(at(schema('Error'), 'properties', 'error', 'properties') as Json)).toEqual([
      'code',
      'message',
      'reason',
      'claim',
    ]);
    for (const status of ['400', '401', '403', '404', '409', '429']) expect(statuses).toContain(status);
    expect(at(spec, 'paths', '/grants', 'post', 'responses', '201')).toBeTruthy();
    expect(at(spec, 'paths', '/campaigns', 'post', 'responses', '202')).toBeTruthy();
  });

  it('refuses a campaign start by anyone but an incident responder with 403 in the error shape', () => {
    // prepare
    const refused = at(spec, 'paths', '/campaigns', 'post', 'responses', '403') as Json;

    // assess
    expect(at(refused, 'content', 'application/json', 'schema', '$ref')).toBe('#/components/schemas/Error');
    expect(String(refused.description)).toContain('incidentResponders');
    expect(at(refused, 'content', 'application/json', 'example', 'error', 'code')).toBe('refused');
    expect(String(at(spec, 'paths', '/campaigns', 'post', 'description'))).toContain('execute-api:Invoke');
  });
});

describe('api/openapi.yaml: the schemas match the zod schemas in core', () => {
  it.each([
    ['Principal', PrincipalSchema.unwrap().shape],
    ['BreakglassRole', BreakglassRoleSchema.unwrap().shape],
    ['Grant', GrantSchema.unwrap().shape],
    ['Campaign', CampaignSchema.shape],
    ['CampaignCounts', CampaignCountsSchema.shape],
    ['Target', TargetSchema.shape],
  ])('%s has exactly the fields of its zod schema', (name, shape) => {
    expect(properties(name)).toEqual(Object.keys(shape).sort());
  });

  it('lists the same grant states and identity kinds', () => {
    expect(schema('GrantState').enum).toEqual(GrantStateSchema.options);
    expect(schema('IdentityKind').enum).toEqual(IdentityKindSchema.options);
  });
});

describe('api/openapi.yaml: what the server answers', () => {
  it('lists exactly the error codes the handler sends', () => {
    expect(at(schema('Error'), 'properties', 'error', 'properties', 'code', 'enum')).toEqual([
      ...ERROR_CODES,
    ]);
  });

  it('describes every 4xx answer an operation gives as an Error (API Gateway throttling aside)', () => {
    for (const { path, method, operation } of operations) {
      for (const [status, response] of Object.entries(operation.responses as Json)) {
        if (!status.startsWith('4') || status === '429') continue;
        const resolved = (
          (response as Json).$ref ? resolve((response as Json).$ref as string) : response
        ) as Json;
        expect(
          at(resolved, 'content', 'application/json', 'schema', '$ref'),
          `${method} ${path} ${status}`,
        ).toBe('#/components/schemas/Error');
      }
    }
  });

  it('answers 413 on every operation that takes a body, and 400 on every one with a path parameter', () => {
    for (const { path, method, operation } of operations) {
      const statuses = Object.keys(operation.responses as Json);
      if (method === 'post') expect(statuses, `${method} ${path}`).toContain('413');
      if (path.includes('{') && !path.startsWith('/slack/'))
        expect(statuses, `${method} ${path}`).toContain('400');
    }
  });

  it('counts targets per kind with their total, as summarize() does (no allOf over a closed object)', () => {
    expect(at(schema('CampaignCounts'), 'properties', 'byKind', 'additionalProperties', '$ref')).toBe(
      '#/components/schemas/KindCounts',
    );
    expect(properties('KindCounts')).toEqual(
      ['total', ...Object.keys(CampaignCountsSchema.shape.byOutcome.shape)].sort(),
    );
  });

  it("never lets a grant or a campaign carry the store's revision, or anything else undescribed", () => {
    for (const name of ['Grant', 'Campaign']) {
      expect(schema(name).additionalProperties, name).toBe(false);
      expect(properties(name), name).not.toContain('rev');
    }
  });

  it('describes an empty Slack acknowledgement (text/plain) beside a Slack message (JSON)', () => {
    const answer = at(spec, 'components', 'responses', 'SlackAnswer', 'content') as Json;
    expect(Object.keys(answer).sort()).toEqual(['application/json', 'text/plain']);
    expect(at(answer, 'text/plain', 'schema', 'maxLength')).toBe(0);
  });

  it("bounds the free text of requests at core's limits (TEXT_LIMITS)", () => {
    const body = (path: string) =>
      at(spec, 'paths', path, 'post', 'requestBody', 'content', 'application/json', 'schema');
    expect(at(schema('GrantRequest'), 'properties', 'reason', 'maxLength')).toBe(TEXT_LIMITS.reason);
    expect(at(body('/grants/{grantId}/deny'), 'properties', 'reason', 'maxLength')).toBe(
      TEXT_LIMITS.denialReason,
    );
    expect(at(body('/grants/{grantId}/review'), 'properties', 'notes', 'maxLength')).toBe(
      TEXT_LIMITS.reviewNotes,
    );
  });

  it('documents the IAM route policies for AWS', () => {
    const description = String(at(spec, 'info', 'description'));
    expect(description).toContain('execute-api:Invoke');
    expect(description).toMatch(/arn:aws:execute-api:[^\n]*\/\$default\//);
  });
});
