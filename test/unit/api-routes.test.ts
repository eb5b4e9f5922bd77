import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { campaignApi } from '../../functions/api/campaigns.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { type ApiEvent, errorResult, MAX_BODY_BYTES } from '../../functions/api/responses.ts';
import type { Route } from '../../functions/api/route.ts';
import {
  CAMPAIGN_ROUTES,
  CI_ROUTES,
  GRANT_ROUTES,
  ROUTES,
  routeRequest,
} from '../../functions/api/routes.ts';
import { BreakglassConfigSchema } from '../../functions/core/grant.ts';
import { identity } from '../support/fixtures.ts';
import { MemoryWorld } from '../support/memory-providers.ts';

const spec = parse(readFileSync(new URL('../../api/openapi.yaml', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, unknown>>;
};
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options']);

describe('HTTP API: the handler serves exactly the routes api/openapi.yaml describes', () => {
  it('has one route per described operation, and no other', () => {
    const described = Object.entries(spec.paths)
      .flatMap(([path, item]) =>
        Object.keys(item)
          .filter((method) => HTTP_METHODS.has(method))
          .map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    const served = ROUTES.map((route) => `${route.method} ${route.path}`).sort();
    expect(served).toEqual(described);
  });
});

describe('HTTP API: POST /campaigns is for incident responders only', () => {
  const RESPONDER_ROLE = 'arn:aws:sts::123456789012:assumed-role/incident-responder/*';
  const config = BreakglassConfigSchema.parse({
    incidentResponders: { localUsers: ['bob'], awsPrincipals: [RESPONDER_ROLE] },
  });

  /** The API over in-memory stores: one declared identity, a launcher that records what it starts. */
  async function api() {
    const world = new MemoryWorld();
    await world.identities.putIdentity(
      {
        identity: identity({
          id: 'app-token',
          pipeline: { repo: 'acme/app', stage: 'deploy', environment: 'prod' },
        }),
        status: 'active',
        declarationHash: 'spec',
        syncedAt: world.clock.now().toISOString(),
      },
      undefined,
    );
    const launched: string[] = [];
    const responders = { config: async () => config, audit: world.audit };
    const campaigns = campaignApi(
      {
        store: {
          listIdentities: () => world.identities.listIdentities(),
          listVersions: (id) => world.store.listVersions(id),
          putVersion: (version, rev) => world.store.putVersion(version, rev),
          createCampaign: (campaign, targets) => world.campaigns.createCampaign(campaign, targets),
          getCampaign: (id) => world.campaigns.getCampaign(id),
          listTargets: (id) => world.campaigns.listTargets(id),
        },
        clock: world.clock,
        rotationDeps: (actor) => world.rotationDeps(actor),
        breakglassDeps: responders,
      },
      { launch: async (campaignId) => void launched.push(campaignId) },
    );
    // Only what the campaign routes read of the break-glass deps.
    const deps = {
      breakglass: { ...responders, clock: world.clock },
      acceptLocalPrincipals: true,
      region: 'eu-west-1',
      report: async () => ({ report: {}, markdown: '' }),
      campaigns,
    } as unknown as ApiDeps;
    const post = async (caller: { localUser: string } | { userArn: string }, body: object) => {
      const event = {
        rawPath: '/campaigns',
        body: JSON.stringify(body),
        isBase64Encoded: false,
        requestContext: {
          requestId: 'req-1',
          http: { method: 'POST' },
          authorizer: 'userArn' in caller ? { iam: caller } : { lambda: caller },
        },
      } as unknown as ApiEvent;
      return routeRequest(deps, event, ROUTES).catch((error: unknown) =>
        errorResult(error, 'req-1', (line) => console.log(line)),
      );
    };
    return { world, launched, post };
  }
  const request = { incident: 'INC-42', selectors: ['repo=acme/app'] };

  it('refuses a caller who is not a responder with 403 in the error shape, audits it, and starts nothing', async () => {
    // prepare
    const { world, launched, post } = await api();

    // act
    const local = await post({ localUser: 'mallory' }, request);
    const aws = await post({ userArn: 'arn:aws:sts::123456789012:assumed-role/developer/mallory' }, request);

    // assess
    for (const result of [local, aws]) {
      expect(result.statusCode).toBe(403);
      expect(JSON.parse(result.body)).toEqual({
        error: { code: 'refused', message: expect.stringMatching(/may not start a revocation campaign/) },
      });
    }
    const refused = (await world.audit.readAll()).records.filter((r) => r.type === 'grant.refused');
    expect(refused.map((r) => [r.actor, r.subject, r.details.action])).toEqual([
      ['local:mallory', 'INC-42', 'start-campaign'],
      ['aws:arn:aws:sts::123456789012:assumed-role/developer/mallory', 'INC-42', 'start-campaign'],
    ]);
    expect(launched).toEqual([]);
    expect(await world.campaigns.listCampaigns()).toEqual([]);
  });

  it('starts the campaign of a responder (a local user, or a session of the responder role): 202', async () => {
    // prepare
    const { world, launched, post } = await api();

    // act
    const local = await post({ localUser: 'bob' }, request);
    const aws = await post(
      { userArn: 'arn:aws:sts::123456789012:assumed-role/incident-responder/carol' },
      request,
    );

    // assess
    expect([local.statusCode, aws.statusCode]).toEqual([202, 202]);
    expect(launched).toHaveLength(2);
    expect((await world.campaigns.listCampaigns()).map((c) => c.requestedBy).sort()).toEqual([
      'aws:arn:aws:sts::123456789012:assumed-role/incident-responder/carol',
      'local:bob',
    ]);
    expect((await world.audit.readAll()).records.filter((r) => r.type === 'grant.refused')).toEqual([]);
  });

  it('lets anyone authenticated see a dry run, which starts nothing', async () => {
    const { launched, post } = await api();
    const result = await post({ localUser: 'mallory' }, { ...request, dryRun: true });
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body).status).toBe('dry-run');
    expect(launched).toEqual([]);
  });
});

describe('HTTP API: bad input is a 4xx in the Error shape, never a 5xx', () => {
  const world = new MemoryWorld();
  const deps = {
    breakglass: {
      config: async () => BreakglassConfigSchema.parse({}),
      clock: world.clock,
      audit: world.audit,
    },
    acceptLocalPrincipals: true,
    region: 'eu-west-1',
    report: async () => ({ report: {}, markdown: '' }),
  } as unknown as ApiDeps;
  const logged: string[] = [];
  /** The handler's answer, failures mapped as the Lambda wrapper maps them. */
  const answer = (
    method: string,
    rawPath: string,
    options: {
      body?: string;
      base64?: boolean;
      lambda?: { localUser?: string; unknownToken?: boolean };
    } = {},
  ) =>
    routeRequest(
      deps,
      {
        rawPath,
        body: options.body,
        isBase64Encoded: options.base64 ?? false,
        requestContext: {
          requestId: 'req-1',
          http: { method },
          ...(options.lambda ? { authorizer: { lambda: options.lambda } } : {}),
        },
      } as unknown as ApiEvent,
      ROUTES,
    ).catch((error: unknown) => errorResult(error, 'req-1', (line) => logged.push(line)));
  const errorOf = (result: { body: string }) =>
    (JSON.parse(result.body) as { error: { code: string } }).error;

  it('answers a path parameter that does not percent-decode with 400, with or without a caller', async () => {
    // act
    const results = [
      await answer('GET', '/grants/%ZZ'),
      await answer('GET', '/grants/%ZZ', { lambda: { localUser: 'alice' } }),
      await answer('POST', '/grants/%E0%A4%A/approve', { lambda: { localUser: 'alice' } }),
      await answer('GET', '/campaigns/%', { lambda: { localUser: 'alice' } }),
    ];

    // assess
    for (const result of results) {
      expect(result.statusCode).toBe(400);
      expect(errorOf(result)).toEqual({
        code: 'bad-request',
        message: expect.stringMatching(/percent-encoded/),
      });
    }
    expect(logged).toEqual([]);
  });

  it('answers an id off its pattern (too long, a slash, a space) with 400 before the store sees it', async () => {
    for (const path of [`/grants/${'a'.repeat(3_000)}`, '/grants/a%2Fb', '/campaigns/%20x']) {
      const result = await answer('GET', path, { lambda: { localUser: 'alice' } });
      expect([result.statusCode, errorOf(result).code], path).toEqual([400, 'bad-request']);
    }
  });

  it('answers a body over 1 MB with 413 on every route, base64-encoded or not, before authentication', async () => {
    // prepare
    const over = 'a'.repeat(MAX_BODY_BYTES + 1);

    // act
    const results = [
      await answer('POST', '/grants', { body: over }),
      await answer('POST', '/slack/commands', { body: over }),
      await answer('POST', '/grants', { body: Buffer.from(over).toString('base64'), base64: true }),
      await answer('GET', '/nowhere', { body: over }),
    ];

    // assess
    for (const result of results) {
      expect([result.statusCode, errorOf(result).code]).toEqual([413, 'payload-too-large']);
    }
    expect((await answer('POST', '/grants', { body: 'a'.repeat(MAX_BODY_BYTES) })).statusCode).toBe(401);
  });

  it('refuses every signed route without a caller, GET /roles included: 401 unauthenticated', async () => {
    for (const route of ROUTES.filter((r) => r.auth === 'signed')) {
      const path = route.path.replace('{grantId}', 'bg-1').replace('{campaignId}', 'INC-1-x');
      for (const lambda of [undefined, { unknownToken: true }]) {
        const result = await answer(route.method, path, lambda ? { lambda } : {});
        expect([result.statusCode, errorOf(result).code], `${route.method} ${route.path}`).toEqual([
          401,
          'unauthenticated',
        ]);
      }
    }
    const unknown = await answer('GET', '/roles', { lambda: { unknownToken: true } });
    expect(errorOf(unknown)).toMatchObject({ message: expect.stringContaining('no local user holds') });
    expect((await answer('GET', '/roles', { lambda: { localUser: 'alice' } })).statusCode).toBe(200);
  });

  it('answers an unknown route with 404 not-found', async () => {
    const result = await answer('DELETE', '/roles', { lambda: { localUser: 'alice' } });
    expect([result.statusCode, errorOf(result).code]).toEqual([404, 'not-found']);
  });

  it('maps only keywarden errors to 4xx: anything else is 500 internal, its cause in the log only', () => {
    // act
    const result = errorResult(new TypeError('secret detail'), 'req-9', (line) => logged.push(line));

    // assess
    expect(result.statusCode).toBe(500);
    expect(errorOf(result)).toEqual({ code: 'internal', message: expect.stringContaining('req-9') });
    expect(result.body).not.toContain('secret detail');
    expect(logged.at(-1)).toContain('TypeError: secret detail');
  });
});

describe('HTTP API: one function per capability, each routing over its own table only', () => {
  const world = new MemoryWorld();
  const logged: string[] = [];
  const keyOf = (route: Route) => `${route.method} ${route.path}`;
  /** A signed caller's request through `routes`, failures mapped as the Lambda wrapper maps them. */
  const answer = (deps: ApiDeps, routes: readonly Route[], key: string) => {
    const [method, rawPath] = key.split(' ');
    return routeRequest(
      deps,
      {
        rawPath,
        isBase64Encoded: false,
        requestContext: {
          requestId: 'req-1',
          http: { method },
          authorizer: { lambda: { localUser: 'alice' } },
        },
      } as unknown as ApiEvent,
      routes,
    ).catch((error: unknown) => errorResult(error, 'req-1', (line) => logged.push(line)));
  };
  const errorOf = (result: { body: string }) =>
    (JSON.parse(result.body) as { error: { code: string; message: string } }).error;

  it('puts every route in exactly one table: grants, campaigns, CI; Slack’s two are the ingress’s', () => {
    const served = [GRANT_ROUTES, CAMPAIGN_ROUTES, CI_ROUTES].flat().map(keyOf);
    expect(new Set(served).size).toBe(served.length);
    expect(ROUTES.map(keyOf).filter((key) => !served.includes(key))).toEqual([
      'POST /slack/commands',
      'POST /slack/interactions',
    ]);
    expect(GRANT_ROUTES.map((route) => route.path).every((path) => /^\/(roles|grants)\b/.test(path))).toBe(
      true,
    );
    expect(CAMPAIGN_ROUTES.map((route) => route.path).every((path) => path.startsWith('/campaigns'))).toBe(
      true,
    );
    expect(CI_ROUTES.map((route) => route.path).every((path) => path.startsWith('/ci/'))).toBe(true);
  });

  it('answers another capability’s route with 404 not-found, even when the deps could serve it', async () => {
    // prepare: deps holding every capability, so only the table can refuse
    const never = () => {
      throw new Error('a route outside the table ran');
    };
    const deps = {
      breakglass: { config: never, clock: world.clock, audit: world.audit },
      acceptLocalPrincipals: true,
      region: 'eu-west-1',
      report: never,
      campaigns: { start: never, authorize: never, status: never },
      ci: { exchange: {}, webhookSecrets: {} },
      approvals: {},
    } as unknown as ApiDeps;
    const foreign: [readonly Route[], string[]][] = [
      [
        GRANT_ROUTES,
        ['POST /campaigns', 'POST /ci/credentials', 'GET /ci/approvals', 'POST /slack/commands'],
      ],
      [CAMPAIGN_ROUTES, ['GET /roles', 'POST /grants/bg-1/credentials', 'POST /ci/webhooks/github']],
      [CI_ROUTES, ['GET /roles', 'GET /grants', 'GET /campaigns/INC-1-x', 'POST /slack/interactions']],
    ];

    for (const [routes, keys] of foreign) {
      for (const key of keys) {
        // act
        const result = await answer(deps, routes, key);

        // assess
        expect([result.statusCode, errorOf(result).code], key).toEqual([404, 'not-found']);
        expect(errorOf(result).message).toMatch(/^no route /);
      }
    }
    expect(logged).toEqual([]);
  });

  it('answers a route whose capability the deps lack with a 404 naming it, never a 5xx', async () => {
    // prepare: the local router's every route, over deps of no capability
    const deps: ApiDeps = { acceptLocalPrincipals: true, region: 'eu-west-1' };
    const expected: Record<string, RegExp> = {
      'GET /roles': /break-glass grants are not served/,
      'GET /grants/bg-1': /break-glass grants are not served/,
      'GET /grants/bg-1/report': /grant reports are not served/,
      'GET /campaigns/INC-1-x': /campaigns are not served/,
      'POST /ci/credentials': /CI job credentials are not served/,
      'POST /slack/commands': /Slack is not configured/,
    };

    for (const [key, message] of Object.entries(expected)) {
      // act
      const result = await answer(deps, ROUTES, key);

      // assess
      expect([result.statusCode, errorOf(result).code], key).toEqual([404, 'not-found']);
      expect(errorOf(result).message, key).toMatch(message);
    }
    expect(logged).toEqual([]);
  });
});
