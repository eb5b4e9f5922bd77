import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { campaignApi } from '../../functions/api/campaigns.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { type ApiEvent, errorResult } from '../../functions/api/responses.ts';
import { ROUTES, routeRequest } from '../../functions/api/routes.ts';
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
      return routeRequest(deps, event).catch((error: unknown) =>
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
