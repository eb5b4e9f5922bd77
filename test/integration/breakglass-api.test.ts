/**
 * Break-glass through the HTTP API handler, on the real local stack: the request, the
 * approvals and their refusals, the issued credentials (a wrapped OpenBao token, an STS
 * session from moto), early revocation, the three expiry paths, and Slack's signature,
 * replay and retry handling. Every refusal must be in the audit trail.
 */
import { randomBytes } from 'node:crypto';
import { GetRolePolicyCommand } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig } from '../../functions/adapters/aws/clients.ts';
import {
  dueGrantSchedules,
  ensureScheduleGroup,
} from '../../functions/adapters/aws/grant-expiry-scheduler.ts';
import { grantDenyPolicyName } from '../../functions/adapters/aws/sts-grant-issuer.ts';
import type { SlackMessage } from '../../functions/adapters/slack/messages.ts';
import { signSlackRequest } from '../../functions/adapters/slack/verify.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { unwrapVaultToken } from '../../functions/adapters/vault/unwrap.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import { campaignApi } from '../../functions/api/campaigns.ts';
import type { DeferredJob } from '../../functions/api/deferred-jobs.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import type { ApiEvent, ApiResult } from '../../functions/api/responses.ts';
import { runDeferred } from '../../functions/api/slack.ts';
import { expire } from '../../functions/core/breakglass.ts';
import { grantFindings } from '../../functions/core/findings.ts';
import { BreakglassConfigSchema, type Grant, MAX_CREDENTIAL_FETCHES } from '../../functions/core/grant.ts';
import { sweep } from '../../functions/core/grant-sweep.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { makeHandler } from '../../functions/handlers/api.ts';
import { createBreakglassRole } from '../support/breakglass-role.ts';
import { declaredKvIdentity, newIncident } from '../support/campaigns.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { OffsetClock } from '../support/offset-clock.ts';
import { newVaultClient, testAws, testStack, uniqueName } from '../support/stack.ts';

const ACCOUNT = '123456789012';
const clock = new OffsetClock();
const signingSecret = new SecretValue(randomBytes(16).toString('hex'));
const roleName = uniqueName('bg-admin');
const policy = uniqueName('bg-db');
let services: Services;
let api: ReturnType<typeof makeHandler>;
const deferred: DeferredJob[] = [];
const posted: { url: string; message: SlackMessage }[] = [];

const config = BreakglassConfigSchema.parse({
  people: [
    { name: 'alice', localUsers: ['alice'], slackUsers: ['U0ALICE'] },
    { name: 'bob', localUsers: ['bob'], slackUsers: ['U0BOB'] },
    { name: 'carol', localUsers: ['carol'] },
    { name: 'dave', localUsers: ['dave'] },
  ],
  roles: [
    {
      id: 'prod-admin',
      description: 'prod account',
      target: { type: 'aws-role', roleArn: `arn:aws:iam::${ACCOUNT}:role/breakglass/${roleName}` },
      maxDuration: '1h',
      approvers: { localUsers: ['bob', 'carol'], slackUsers: ['U0BOB'] },
      requireIncident: true,
    },
    {
      id: 'prod-db',
      description: 'prod database secrets',
      target: { type: 'vault-policies', policies: [policy] },
      maxDuration: '1h',
      approvers: { localUsers: ['bob', 'carol', 'dave'], slackUsers: ['U0BOB', 'U0ALICE'] },
      approvalsRequired: 2,
      requireIncident: false,
    },
  ],
});

function call(method: string, path: string, user?: string, body?: unknown): Promise<ApiResult> {
  return api({
    rawPath: path.split('?')[0],
    queryStringParameters: Object.fromEntries(new URLSearchParams(path.split('?')[1] ?? '')),
    headers: {},
    body: body === undefined ? undefined : JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: {
      http: { method },
      ...(user ? { authorizer: { lambda: { localUser: user } } } : {}),
    },
  } as unknown as ApiEvent);
}

const grantOf = (result: ApiResult) => (JSON.parse(result.body) as { grant: Grant }).grant;
const errorOf = (result: ApiResult) =>
  (JSON.parse(result.body) as { error: { message: string } }).error.message;

async function refusals(subject: string) {
  const { records } = await services.store.readAll();
  return records.filter((r) => r.type === 'grant.refused' && r.subject === subject);
}

/** A grant requested by alice with `request`, then approved by each of `approvers` in turn; its id. */
async function approvedGrant(
  request: Record<string, unknown>,
  approvers: readonly string[],
): Promise<string> {
  const { grantId } = grantOf(await call('POST', '/grants', 'alice', request));
  for (const approver of approvers) await call('POST', `/grants/${grantId}/approve`, approver);
  return grantId;
}

/** The API's Slack dependencies: answers to response_url land in `posted`; deferred jobs go to `defer`. */
const slackDeps = (defer: (job: DeferredJob) => Promise<void>) => ({
  signingSecret,
  ledger: services.breakglassStore,
  respond: async (url: string, message: SlackMessage) => {
    posted.push({ url, message });
  },
  defer,
});

beforeAll(async () => {
  const stack = testStack();
  services = await wireLocal(
    localConfig('kw-breakglass', { breakglass: { scheduleGroup: uniqueName('kw-grants') } }),
    clock,
  );
  await ensureScheduleGroup(services.aws.scheduler, services.config.breakglass.scheduleGroup);
  await services.breakglassStore.putBreakglassConfig(config);
  const root = newVaultClient();
  await root.write(`sys/policies/acl/${policy}`, {
    policy: 'path "secret/data/prod/*" { capabilities = ["read"] }',
  });
  await root.write('secret/data/prod/db', { data: { password: 'not-a-real-one' } });
  await createBreakglassRole(services.aws.iam, roleName);
  api = makeHandler({
    breakglass: services.breakglassDeps,
    acceptLocalPrincipals: true,
    region: services.config.aws.region,
    vaultAddr: stack.vault.addr,
    report: services.grantReportOf,
    slack: slackDeps(async (job) => {
      deferred.push(job);
    }),
  });
});

describe('break-glass API: approvals', () => {
  it('refuses the requester, strangers and a second vote of one approver, and audits each refusal', async () => {
    // prepare
    const requested = await call('POST', '/grants', 'alice', {
      roleId: 'prod-db',
      duration: '30m',
      reason: 'fix',
    });
    expect(requested.statusCode).toBe(201);
    const { grantId } = grantOf(requested);

    // act + assess
    const self = await call('POST', `/grants/${grantId}/approve`, 'alice');
    expect([self.statusCode, errorOf(self)]).toEqual([
      403,
      expect.stringContaining('cannot approve it: someone else must'),
    ]);
    const stranger = await call('POST', `/grants/${grantId}/approve`, 'mallory');
    expect([stranger.statusCode, errorOf(stranger)]).toEqual([
      403,
      'local:mallory is not an approver of role prod-db',
    ]);
    expect(grantOf(await call('POST', `/grants/${grantId}/approve`, 'bob')).state).toBe('requested');
    const twice = await call('POST', `/grants/${grantId}/approve`, 'bob');
    expect(errorOf(twice)).toContain('already approved');
    const approved = grantOf(await call('POST', `/grants/${grantId}/approve`, 'carol'));
    expect(approved).toMatchObject({
      state: 'approved',
      approvals: [{ approver: { id: 'bob' } }, { approver: { id: 'carol' } }],
    });
    expect((await refusals(grantId)).map((r) => r.actor)).toEqual([
      'local:alice',
      'local:mallory',
      'local:bob',
    ]);

    // the one-time expiry schedule exists at the grant's end
    const due = await dueGrantSchedules(
      services.aws.scheduler,
      services.config.breakglass.scheduleGroup,
      new Date(Date.parse(approved.expiresAt as string) + 1_000),
    );
    expect(due.map((d) => d.grantId)).toContain(grantId);
  });

  it('refuses a request without a caller, with a bad state filter, or for an unknown role', async () => {
    expect((await call('GET', '/grants')).statusCode).toBe(401);
    const bad = await call('GET', '/grants?state=bogus', 'bob');
    expect([bad.statusCode, errorOf(bad)]).toEqual([
      400,
      expect.stringContaining('expected state to be one of'),
    ]);
    const unknown = await call('POST', '/grants', 'alice', { roleId: 'nope', duration: '5m', reason: 'x' });
    expect([unknown.statusCode, errorOf(unknown)]).toEqual([
      404,
      expect.stringContaining('the roles are: prod-admin, prod-db'),
    ]);
    const noIncident = await call('POST', '/grants', 'alice', {
      roleId: 'prod-admin',
      duration: '5m',
      reason: 'x',
    });
    expect([noIncident.statusCode, errorOf(noIncident)]).toEqual([
      403,
      expect.stringContaining('requires an incident'),
    ]);
  });
});

describe('break-glass API: credentials', () => {
  it('hands the requester a single-use wrapped Vault token that reads what the policies allow, and nobody else', async () => {
    // prepare
    const grantId = await approvedGrant({ roleId: 'prod-db', duration: '10m', reason: 'x' }, ['bob', 'dave']);

    // act
    const stranger = await call('POST', `/grants/${grantId}/credentials`, 'bob');
    const issued = await call('POST', `/grants/${grantId}/credentials`, 'alice');

    // assess
    expect(stranger.statusCode).toBe(403);
    expect(issued.statusCode).toBe(200);
    const { credential, grant } = JSON.parse(issued.body) as {
      credential: { wrappingToken: string; vaultAddr: string };
      grant: Grant;
    };
    expect(grant.state).toBe('active');
    const token = await unwrapVaultToken({
      addr: credential.vaultAddr,
      wrappingToken: new SecretValue(credential.wrappingToken),
    });
    const asRequester = new VaultClient({ addr: credential.vaultAddr, token: token.token.reveal() });
    expect((await asRequester.read('secret/data/prod/db'))?.data).toBeDefined();
    expect(token.accessor).toBe(grant.credentials[0]?.handle);
    await expect(
      unwrapVaultToken({
        addr: credential.vaultAddr,
        wrappingToken: new SecretValue(credential.wrappingToken),
      }),
    ).rejects.toThrow('already used or has expired');

    // an early revoke ends the token at once
    expect(grantOf(await call('POST', `/grants/${grantId}/revoke`, 'carol')).state).toBe('revoked');
    await expect(asRequester.read('secret/data/prod/db')).rejects.toMatchObject({ status: 403 });
  });

  it('hands out an STS session of the role; revoking one grant denies its SourceIdentity only', async () => {
    // prepare: two overlapping grants of one role
    const open = () =>
      approvedGrant({ roleId: 'prod-admin', duration: '20m', reason: 'x', incident: 'INC-42' }, ['bob']);
    const [first, second] = [await open(), await open()];

    // act
    const issued = JSON.parse((await call('POST', `/grants/${first}/credentials`, 'alice')).body) as {
      credential: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
    };
    await call('POST', `/grants/${first}/revoke`, 'alice');

    // assess
    const sts = new STSClient({
      ...awsClientConfig(testAws()),
      credentials: issued.credential,
    });
    const identity = await sts.send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe(`arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${first}`);
    const deny = await services.aws.iam.send(
      new GetRolePolicyCommand({ RoleName: roleName, PolicyName: grantDenyPolicyName(first) }),
    );
    expect(decodeURIComponent(deny.PolicyDocument ?? '')).toContain(first);
    await expect(
      services.aws.iam.send(
        new GetRolePolicyCommand({ RoleName: roleName, PolicyName: grantDenyPolicyName(second) }),
      ),
    ).rejects.toMatchObject({ name: 'NoSuchEntityException' });
    expect(grantOf(await call('GET', `/grants/${second}`, 'bob')).state).toBe('approved');
  });
});

describe('break-glass: the end, three times over', () => {
  it('is ended once by whichever of the schedule and the sweeper comes first, then a review is due and becomes a finding', async () => {
    // prepare
    const grantId = await approvedGrant({ roleId: 'prod-db', duration: '5m', reason: 'x' }, ['bob', 'carol']);
    expect(await expire(services.breakglassDeps, grantId, 'schedule')).toBe('not-due');

    // act: five minutes later, the sweeper comes first
    clock.advance(5 * 60_000 + 1_000);
    const swept = await sweep(services.breakglassDeps);
    const scheduled = await expire(services.breakglassDeps, grantId, 'schedule');

    // assess
    expect(swept.expired).toContain(grantId);
    expect(scheduled).toBe('already-ended');
    const grant = grantOf(await call('GET', `/grants/${grantId}`, 'bob'));
    expect(grant).toMatchObject({ state: 'expired', endedBy: 'sweeper' });
    clock.advance(3 * 86_400_000);
    expect(grantFindings([grant], clock.now()).map((f) => f.id)).toEqual([
      `breakglass-review-overdue:${grantId}`,
    ]);
    const review = await call('POST', `/grants/${grantId}/review`, 'alice', { notes: 'mine' });
    expect(review.statusCode).toBe(403);
    expect(
      grantOf(await call('POST', `/grants/${grantId}/review`, 'carol', { notes: 'read the db, fine' }))
        .review,
    ).toMatchObject({
      notes: 'read the db, fine',
    });
  });
});

describe('break-glass: tidying up after an early revocation', () => {
  it("removes the deny policy once none of the grant's sessions can be alive", async () => {
    // prepare: a revoked AWS grant whose session was issued now
    const grantId = await approvedGrant(
      { roleId: 'prod-admin', duration: '20m', reason: 'x', incident: 'INC-9' },
      ['bob'],
    );
    await call('POST', `/grants/${grantId}/credentials`, 'alice');
    await call('POST', `/grants/${grantId}/revoke`, 'alice');
    const policy = () =>
      services.aws.iam.send(
        new GetRolePolicyCommand({ RoleName: roleName, PolicyName: grantDenyPolicyName(grantId) }),
      );
    await expect(policy()).resolves.toBeDefined();

    // act + assess: the sweeper keeps it while the session could live, removes it after
    expect((await sweep(services.breakglassDeps)).released).not.toContain(grantId);
    clock.advance(21 * 60_000);
    expect((await sweep(services.breakglassDeps)).released).toContain(grantId);
    await expect(policy()).rejects.toMatchObject({ name: 'NoSuchEntityException' });
    expect(grantOf(await call('GET', `/grants/${grantId}`, 'bob')).releasedAt).toBeDefined();
  });
});

describe('break-glass API: Slack', () => {
  const command = (text: string, user = 'U0ALICE') =>
    new URLSearchParams({
      command: '/breakglass',
      text,
      user_id: user,
      team_id: 'T1',
      channel_id: 'C1',
      response_url: 'http://127.0.0.1:9/hooks',
    }).toString();
  const slack = (path: string, body: string, headers: Record<string, string> = {}, at = clock.now()) => {
    const timestamp = String(Math.floor(at.getTime() / 1000));
    return api({
      rawPath: path,
      headers: {
        'x-slack-request-timestamp': timestamp,
        'x-slack-signature': signSlackRequest(signingSecret, timestamp, body),
        ...headers,
      },
      body,
      isBase64Encoded: false,
      requestContext: { http: { method: 'POST' } },
    } as unknown as ApiEvent);
  };

  it('answers a signed /breakglass with a request carrying Approve and Deny buttons, and drops its replay and retry', async () => {
    const body = command(`prod-db 15m INC-7 ${uniqueName('rollback')}`);
    const first = await slack('/slack/commands', body);
    expect(first.statusCode).toBe(200);
    const message = JSON.parse(first.body) as SlackMessage;
    expect(JSON.stringify(message)).toContain('breakglass.approve');
    const replay = await slack('/slack/commands', body);
    const retry = await slack('/slack/commands', body, {
      'x-slack-retry-num': '1',
      'x-slack-retry-reason': 'http_timeout',
    });
    expect([replay.statusCode, replay.body, retry.statusCode]).toEqual([200, '', 200]);
    const { grants } = await services.store.queryGrants({ limit: 100 });
    expect(grants.filter((g) => g.reason === body.split('+').at(-1))).toHaveLength(0);
    const audit = (await services.store.readAll()).records.filter((r) => r.subject === 'slack:commands');
    expect(audit.map((r) => r.details.reason)).toEqual([
      'a delivery already handled (replayed): ignored',
      expect.stringContaining('Slack retry 1 (http_timeout)'),
    ]);
  });

  it('refuses unsigned, badly signed and stale requests, and audits each', async () => {
    const body = command('prod-db 15m reason');
    const unsigned = await api({
      rawPath: '/slack/commands',
      headers: {},
      body,
      requestContext: { http: { method: 'POST' } },
    } as unknown as ApiEvent);
    const forged = await slack('/slack/commands', body, { 'x-slack-signature': `v0=${'0'.repeat(64)}` });
    const stale = await slack('/slack/commands', body, {}, new Date(clock.now().getTime() - 6 * 60_000));
    expect([unsigned.statusCode, forged.statusCode, stale.statusCode]).toEqual([401, 401, 401]);
    expect(errorOf(stale)).toMatch(/older than 300 s|stale|old/);
    const reasons = (await services.store.readAll()).records
      .filter((r) => r.subject === 'slack:commands' && r.actor === 'slack:unverified')
      .map((r) => String(r.details.reason));
    expect(reasons.length).toBeGreaterThanOrEqual(3);
  });

  it('approves from a button click after the answer, and posts the outcome to the response_url', async () => {
    const requested = await slack('/slack/commands', command(`prod-db 15m ${uniqueName('why')}`));
    const grantId = /"value":"(bg-[^"]+)"/.exec(requested.body)?.[1] ?? '';
    const click = (user: string) =>
      `payload=${encodeURIComponent(
        JSON.stringify({
          type: 'block_actions',
          user: { id: user },
          actions: [{ action_id: 'breakglass.approve', value: grantId }],
          response_url: 'http://127.0.0.1:9/hooks',
        }),
      )}`;
    const self = await slack('/slack/interactions', click('U0ALICE'));
    expect([self.statusCode, self.body]).toEqual([200, '']);
    await runDeferred(
      {
        breakglass: services.breakglassDeps,
        acceptLocalPrincipals: true,
        region: 'us-east-1',
        report: services.grantReportOf,
        slack: slackDeps(async () => {}),
      },
      deferred.at(-1) as DeferredJob,
    );
    expect(JSON.stringify(posted.at(-1)?.message)).toContain('cannot approve it: someone else must');
    expect((await refusals(grantId)).map((r) => r.actor)).toEqual(['slack:U0ALICE']);
  });
});

describe('campaigns: only incident responders start one, on the API and from Slack alike', () => {
  const launched: string[] = [];
  const jobs: DeferredJob[] = [];
  let campaignsApi: ReturnType<typeof makeHandler>;
  let apiDeps: ApiDeps;
  let selector: string;

  beforeAll(async () => {
    // One declared identity, so a responder's campaign has a target and is stored.
    const environment = uniqueName('prod');
    await declaredKvIdentity({ services, vault: newVaultClient() }, uniqueName('kw-resp'), environment);
    selector = `env=${environment}`;
    apiDeps = {
      breakglass: services.breakglassDeps,
      acceptLocalPrincipals: true,
      region: services.config.aws.region,
      report: services.grantReportOf,
      // The launcher is the state machine's port: here it records what it was asked to start.
      campaigns: campaignApi(services, { launch: async (campaignId) => void launched.push(campaignId) }),
      slack: slackDeps(async (job) => void jobs.push(job)),
      progress: { everyMs: 10, deadlineMs: 50 },
    };
    campaignsApi = makeHandler(apiDeps);
  });

  const start = (user: string, incident: string) =>
    campaignsApi({
      rawPath: '/campaigns',
      headers: {},
      body: JSON.stringify({ incident, selectors: [selector] }),
      isBase64Encoded: false,
      requestContext: {
        requestId: 'r',
        http: { method: 'POST' },
        authorizer: { lambda: { localUser: user } },
      },
    } as unknown as ApiEvent);
  const revokeFromSlack = (userId: string, incident: string) => {
    const body = new URLSearchParams({
      command: '/revoke',
      text: `${incident} ${selector}`,
      user_id: userId,
      team_id: 'T1',
      channel_id: 'C1',
      response_url: 'http://127.0.0.1:9/hooks',
    }).toString();
    const timestamp = String(Math.floor(clock.now().getTime() / 1000));
    return campaignsApi({
      rawPath: '/slack/commands',
      headers: {
        'x-slack-request-timestamp': timestamp,
        'x-slack-signature': signSlackRequest(signingSecret, timestamp, body),
      },
      body,
      isBase64Encoded: false,
      requestContext: { http: { method: 'POST' } },
    } as unknown as ApiEvent);
  };
  const refusedStarts = async (incident: string) =>
    (await services.store.readAll()).records
      .filter((r) => r.type === 'grant.refused' && r.subject === incident)
      .map((r) => [r.actor, r.details.action]);

  it('POST /campaigns: 403 in the error shape for a non-responder, audited; 202 for a responder', async () => {
    // prepare: no incidentResponders declared, so the roles' approvers (bob, carol, dave) are the responders.
    const incident = newIncident();

    // act
    const refused = await start('alice', incident);
    const accepted = await start('bob', incident);

    // assess
    expect(refused.statusCode).toBe(403);
    expect(JSON.parse(refused.body)).toEqual({
      error: {
        code: 'refused',
        message: expect.stringMatching(/^local:alice may not start a revocation campaign/),
      },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const { campaign } = JSON.parse(accepted.body) as {
      campaign: { campaignId: string; requestedBy: string };
    };
    expect(campaign.requestedBy).toBe('local:bob');
    expect(launched).toContain(campaign.campaignId);
    expect((await services.store.listCampaigns()).filter((c) => c.incident === incident)).toHaveLength(1);
    expect(await refusedStarts(incident)).toEqual([['local:alice', 'start-campaign']]);
  });

  it('Slack /revoke: a non-responder is refused in the channel, audited; a responder is acknowledged and started', async () => {
    // prepare
    const incident = newIncident();
    const before = launched.length;

    // act
    const refused = await revokeFromSlack('U0MALLORY', incident);
    const accepted = await revokeFromSlack('U0BOB', incident);
    const job = jobs.at(-1) as DeferredJob;
    await runDeferred(apiDeps, job);

    // assess
    expect(refused.statusCode).toBe(200);
    expect(refused.body).toMatch(/slack:U0MALLORY may not start a revocation campaign/);
    expect(accepted.statusCode).toBe(200);
    expect(accepted.body).toContain(`Planning the revocation for ${incident}`);
    expect(jobs.filter((j) => j.kind === 'revoke' && j.incident === incident).map((j) => j.userId)).toEqual([
      'U0BOB',
    ]);
    expect(launched.length).toBe(before + 1);
    const stored = (await services.store.listCampaigns()).filter((c) => c.incident === incident);
    expect(stored.map((c) => c.requestedBy)).toEqual(['slack:U0BOB']);
    expect(await refusedStarts(incident)).toEqual([['slack:U0MALLORY', 'start-campaign']]);
  });
});

describe('break-glass API: bounded input and separation of duties, whole (issue #11)', () => {
  const slackDecision = (action: 'approve' | 'deny', grantId: string, userId: string) =>
    runDeferred(
      {
        breakglass: services.breakglassDeps,
        acceptLocalPrincipals: true,
        region: 'us-east-1',
        report: services.grantReportOf,
        slack: slackDeps(async () => {}),
      },
      { kind: 'decide', action, grantId, userId, responseUrl: 'http://127.0.0.1:9/hooks' },
    );

  it('answers a 400 KB reason and a 450 KB incident with 400 naming the field and its limit, audited small', async () => {
    // act
    const reason = await call('POST', '/grants', 'alice', {
      roleId: 'prod-db',
      duration: '5m',
      reason: 'x'.repeat(400_000),
    });
    const incident = await call('POST', '/grants', 'alice', {
      roleId: 'prod-admin',
      duration: '5m',
      reason: 'x',
      incident: `INC-${'4'.repeat(450_000)}`,
    });
    const notes = await call('POST', '/grants/no-such-grant/deny', 'bob', { reason: 'n'.repeat(1_001) });

    // assess
    expect([reason.statusCode, errorOf(reason)]).toEqual([
      400,
      // The API may check with core's schema itself (GrantRequestInputSchema) or leave it to core: same words.
      expect.stringContaining('reason: expected at most 2000 characters, got 400000'),
    ]);
    expect([incident.statusCode, errorOf(incident)]).toEqual([
      400,
      expect.stringContaining('incident: expected an incident id such as INC-42'),
    ]);
    expect(errorOf(incident).length).toBeLessThan(400);
    expect([notes.statusCode, errorOf(notes)]).toEqual([
      400,
      expect.stringContaining('reason: expected at most 1000 characters'),
    ]);
    const audited = (await services.store.readAll()).records.filter(
      (r) => r.type === 'grant.refused' && r.actor === 'local:alice' && /^role:prod-/.test(r.subject),
    );
    expect(audited.slice(-2).map((r) => JSON.stringify(r).length < 5_000)).toEqual([true, true]);
  });

  it('refuses a blank incident (space, tab, newline) with 400, whether the role requires one or not', async () => {
    for (const roleId of ['prod-admin', 'prod-db']) {
      for (const blank of [' ', '\t', '\n']) {
        const answer = await call('POST', '/grants', 'alice', {
          roleId,
          duration: '5m',
          reason: 'x',
          incident: blank,
        });
        expect([roleId, blank, answer.statusCode, errorOf(answer)]).toEqual([
          roleId,
          blank,
          400,
          expect.stringContaining(
            `incident: expected an incident id such as INC-42 (a letter, then 1 to 63 letters, digits, '-' or '_'), got ${JSON.stringify(blank)}`,
          ),
        ]);
      }
    }
  });

  it("refuses the requester's own deny on the API and from Slack (another name of theirs), audited like self-approval", async () => {
    // prepare: alice asks; as U0ALICE she is an approver of prod-db, and the directory makes both one person
    const { grantId } = grantOf(
      await call('POST', '/grants', 'alice', { roleId: 'prod-db', duration: '5m', reason: 'mine' }),
    );

    // act
    const viaApi = await call('POST', `/grants/${grantId}/deny`, 'alice', { reason: 'never mind' });
    await slackDecision('deny', grantId, 'U0ALICE');

    // assess
    expect([viaApi.statusCode, errorOf(viaApi)]).toEqual([
      403,
      `local:alice requested grant ${grantId} and cannot deny it: an approver decides, or the request lapses`,
    ]);
    expect(JSON.stringify(posted.at(-1)?.message)).toContain(
      `slack:U0ALICE requested grant ${grantId} and cannot deny it`,
    );
    expect((await refusals(grantId)).map((r) => [r.actor, r.details.action])).toEqual([
      ['local:alice', 'deny'],
      ['slack:U0ALICE', 'deny'],
    ]);
    expect(grantOf(await call('GET', `/grants/${grantId}`, 'bob')).state).toBe('requested');
    // another approver still can
    expect(grantOf(await call('POST', `/grants/${grantId}/deny`, 'carol', {})).state).toBe('denied');
  });

  it('refuses the fetch past the cap with 403 refused, audited, and still revokes every token', async () => {
    // prepare
    const grantId = await approvedGrant({ roleId: 'prod-db', duration: '10m', reason: 'x' }, ['bob', 'dave']);
    for (let n = 0; n < MAX_CREDENTIAL_FETCHES; n++) {
      expect((await call('POST', `/grants/${grantId}/credentials`, 'alice')).statusCode).toBe(200);
    }

    // act
    const past = await call('POST', `/grants/${grantId}/credentials`, 'alice');
    const revoked = grantOf(await call('POST', `/grants/${grantId}/revoke`, 'carol'));

    // assess
    expect(past.statusCode).toBe(403);
    expect(JSON.parse(past.body)).toEqual({
      error: {
        code: 'refused',
        message: expect.stringContaining(`the most one grant may (${MAX_CREDENTIAL_FETCHES})`),
      },
    });
    expect((await refusals(grantId)).map((r) => r.details.action)).toEqual(['credentials']);
    expect(revoked).toMatchObject({ state: 'revoked', credentialsEndedAt: expect.any(String) });
    const root = newVaultClient();
    for (const { handle } of revoked.credentials) expect(await root.lookupAccessor(handle)).toBeUndefined();
  });
});
