import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grant } from '../../functions/core/grant.ts';
import type { SecretValue } from '../../functions/core/secret-value.ts';
import type { StackEndpoints } from '../../scripts/local-stack.ts';
import {
  buttonClickBody,
  type CliRun,
  devTokensOf,
  eventually,
  keywardenAsync,
  parseExports,
  postSlack,
  type ResponseCapture,
  runtimeUrlOf,
  type SlackAnswer,
  type Source,
  secretHits,
  slackSecretOf,
  slashCommandBody,
  stackOf,
  startResponseCapture,
  vaultReadStatus,
  vaultWriteKv,
} from './breakglass-support.ts';

interface AuditRecord {
  type: string;
  actor: string;
  subject: string;
  details: { action?: string; reason?: string };
}

/**
 * Break-glass from Slack, end to end: correctly signed slash commands and button clicks,
 * form-encoded as Slack sends them, posted straight to the local runtime, whose answers to
 * the response_url land in a loopback capture server. The people directory makes U0ALICE
 * and the local user alice one person, so alice fetches her Slack grant's credentials with
 * the CLI. Every refusal is checked in `keywarden audit list`.
 */
describe('break-glass from Slack: signed requests, buttons, refusals, de-duplication, /revoke', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-breakglass-slack-'));
  const runs: CliRun[] = [];
  const answers: { name: string; answer: SlackAnswer }[] = [];
  const secrets = new Set<string>();
  let capture: ResponseCapture;
  let stack: StackEndpoints;
  let url: string;
  let secret: SecretValue;
  let grantId = '';
  let requestBody = '';

  async function cli(actor: string, args: string[]): Promise<CliRun> {
    const env = { KEYWARDEN_HOME: home, KEYWARDEN_ACTOR: actor };
    const result = { ...(await keywardenAsync(args, env, home)), args, actor };
    runs.push(result);
    return result;
  }

  async function slack(
    name: string,
    route: 'commands' | 'interactions',
    body: string,
    options: Parameters<typeof postSlack>[3] = { secret },
  ): Promise<SlackAnswer> {
    const answer = await postSlack(url, route, body, options);
    answers.push({ name, answer });
    return answer;
  }

  async function grantsOf(): Promise<Grant[]> {
    const listed = await cli('alice', ['breakglass', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout) as Grant[];
  }

  async function auditRecords(): Promise<AuditRecord[]> {
    const listed = await cli('bob', ['audit', 'list', '--limit', '1000', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout) as AuditRecord[];
  }

  /** The posts to a response_url, once there are `count` of them. */
  const posted = (name: string, count = 1) =>
    eventually(`${count} post(s) to response_url ${name}`, async () =>
      capture.to(name).length >= count ? capture.to(name) : undefined,
    );

  beforeAll(async () => {
    capture = await startResponseCapture();
    const up = await keywardenAsync(['dev', 'up', '--demo', '--users', 'bob,carol'], {
      KEYWARDEN_HOME: home,
      KEYWARDEN_ACTOR: 'alice',
    });
    expect(up.code, up.stderr).toBe(0);
    stack = stackOf(home);
    url = runtimeUrlOf(home);
    secret = slackSecretOf(home);
    // keywarden has rotated the demo credentials once, so /revoke has live ones to end.
    const [rotated] = await Promise.all([
      cli('alice', ['rotate', '--due']),
      vaultWriteKv(stack.vault.addr, stack.vault.token, 'prod/db', { password: 'prod-db-password-y' }),
    ]);
    expect(rotated.code, rotated.stderr).toBe(0);
  });

  afterAll(async () => {
    await capture?.close();
    const down = await keywardenAsync(['dev', 'down'], { KEYWARDEN_HOME: home });
    expect(down.code, down.stderr).toBe(0);
  });

  it('/breakglass prod-db-read 30s INC-42 … from U0ALICE is posted in the channel with Approve and Deny', async () => {
    requestBody = slashCommandBody({
      command: '/breakglass',
      text: 'prod-db-read 30s INC-42 read the prod db password during the incident',
      userId: 'U0ALICE',
      responseUrl: capture.url('request'),
    });
    const answer = await slack('request', 'commands', requestBody);
    expect(answer.status).toBe(200);
    const message = JSON.parse(answer.body) as { response_type: string; text: string; blocks: unknown[] };
    expect(message.response_type).toBe('in_channel');
    grantId = /Break-glass request (\S+):/.exec(message.text)?.[1] ?? '';
    expect(grantId).toMatch(/^bg-/);
    const buttons = JSON.stringify(message.blocks);
    expect(buttons).toContain('"action_id":"breakglass.approve"');
    expect(buttons).toContain('"action_id":"breakglass.deny"');
    expect(buttons).toContain(`"value":"${grantId}"`);
    const [grant] = (await grantsOf()).filter((g) => g.grantId === grantId);
    expect(grant).toMatchObject({
      state: 'requested',
      incident: 'INC-42',
      requester: { kind: 'slack', id: 'U0ALICE' },
    });
  });

  it('refuses an unsigned request, a stale one and a bad signature with 401 and a clear message', async () => {
    const body = () =>
      slashCommandBody({
        command: '/breakglass',
        text: 'prod-db-read 30s INC-42 should never become a grant',
        userId: 'U0ALICE',
        responseUrl: capture.url('never'),
      });
    const [unsigned, stale, forged] = await Promise.all([
      slack('unsigned', 'commands', body(), {}),
      slack('stale', 'commands', body(), { secret, timestamp: Math.floor(Date.now() / 1_000) - 600 }),
      slack('forged', 'commands', body(), {
        secret,
        headers: { 'x-slack-signature': `v0=${'0'.repeat(64)}` },
      }),
    ]);
    const message = (answer: SlackAnswer) =>
      (JSON.parse(answer.body) as { error: { message: string } }).error.message;
    expect([unsigned.status, stale.status, forged.status]).toEqual([401, 401, 401]);
    expect(message(unsigned)).toMatch(/expected the headers X-Slack-Signature and X-Slack-Request-Timestamp/);
    expect(message(stale)).toMatch(/timestamp is 6\d\d s old; Slack requests older than 300 s are refused/);
    expect(message(forged)).toMatch(/X-Slack-Signature does not match the request body/);
    expect((await grantsOf()).map((g) => g.grantId)).toEqual([grantId]);
  });

  it('answers a replay and a Slack retry of a handled delivery 200 with x-keywarden-duplicate, and makes no second grant', async () => {
    const replay = await slack('replay', 'commands', requestBody);
    const retry = await slack('retry', 'commands', requestBody, {
      secret,
      headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' },
    });
    for (const answer of [replay, retry]) {
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-keywarden-duplicate')).toBe('true');
      expect(answer.body).toBe('');
    }
    expect((await grantsOf()).map((g) => g.grantId)).toEqual([grantId]);
  });

  it("refuses U0ALICE's click on her own request and U0MALLORY's, on the response_url; U0BOB's approves", async () => {
    const click = (name: string, userId: string) =>
      slack(
        name,
        'interactions',
        buttonClickBody({ action: 'approve', grantId, userId, responseUrl: capture.url(name) }),
      );
    const clicks = await Promise.all([click('self', 'U0ALICE'), click('mallory', 'U0MALLORY')]);
    for (const answer of clicks) expect([answer.status, answer.body]).toEqual([200, '']);
    const [self] = await posted('self');
    const [mallory] = await posted('mallory');
    expect(self?.json.text).toContain(
      `slack:U0ALICE requested grant ${grantId} and cannot approve it: someone else must`,
    );
    expect(mallory?.json.text).toContain('slack:U0MALLORY is not an approver of role prod-db-read');
    expect(self?.json.response_type).toBe('ephemeral');

    expect((await click('bob', 'U0BOB')).status).toBe(200);
    const [approved] = await posted('bob');
    expect(approved?.json.text).toBe(`Break-glass grant ${grantId} for role prod-db-read approved`);
    expect(approved?.json.replace_original).toBe(true);
    expect(approved?.body).toContain(`keywarden breakglass credentials ${grantId}`);
    const [grant] = (await grantsOf()).filter((g) => g.grantId === grantId);
    expect(grant?.state).toBe('approved');
    expect(grant?.approvals.map((a) => a.approver)).toEqual([{ kind: 'slack', id: 'U0BOB' }]);
  });

  it('alice (the same person as U0ALICE) fetches the credentials with the CLI, and they work on OpenBao', async () => {
    const fetched = await cli('alice', ['breakglass', 'credentials', grantId]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const token = parseExports(fetched.stdout).VAULT_TOKEN ?? '';
    expect(token).toMatch(/^s\./);
    secrets.add(token);
    expect(await vaultReadStatus(stack.vault.addr, token, 'secret/data/prod/db')).toBe(200);
    // The raw answer of the API: a single-use wrapped token.
    const response = await fetch(`${url}/grants/${grantId}/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${devTokensOf(home).alice}` },
    });
    expect(response.status).toBe(200);
    const { credential } = (await response.json()) as { credential: { wrappingToken: string } };
    expect(credential.wrappingToken.length).toBeGreaterThan(8);
    secrets.add(credential.wrappingToken);
    // Bob approved it; he does not get its credentials.
    const bob = await cli('bob', ['breakglass', 'credentials', grantId]);
    expect(bob.code).toBe(1);
    expect(bob.stderr).toContain(`local:bob did not request grant ${grantId}`);
  });

  it('/revoke from a non-responder is refused; from U0BOB it starts a campaign whose progress reaches the channel', async () => {
    const revoke = (name: string, userId: string) =>
      slack(
        name,
        'commands',
        slashCommandBody({
          command: '/revoke',
          text: 'INC-42 repo=acme/app,stage=deploy',
          userId,
          responseUrl: capture.url(name),
        }),
      );
    const refused = await revoke('revoke-alice', 'U0ALICE');
    expect(refused.status).toBe(200);
    expect(JSON.parse(refused.body)).toMatchObject({ response_type: 'ephemeral' });
    expect(JSON.parse(refused.body).text).toMatch(
      /slack:U0ALICE may not start a revocation campaign: campaigns are started by incident responders only/,
    );

    const started = await revoke('revoke-bob', 'U0BOB');
    expect(started.status).toBe(200);
    expect(JSON.parse(started.body).text).toMatch(/Planning the revocation for INC-42/);
    const posts = await eventually(
      'the campaign started and finished messages',
      async () => {
        const texts = capture.to('revoke-bob').map((p) => p.json.text ?? '');
        return texts.some((t) => /: completed, /.test(t)) ? texts : undefined;
      },
      60_000,
    );
    expect(posts[0]).toMatch(/^Revocation campaign INC-42-\S+ for INC-42: \d+ target\(s\)/);
    expect(posts.at(-1)).toMatch(
      /^Revocation campaign INC-42-\S+ for INC-42: completed, \d+ of \d+ revoked, 0 failed/,
    );
  });

  it('has every refusal and de-duplication in the audit trail as grant.refused', async () => {
    const records = await auditRecords();
    const refused = records.filter((r) => r.type === 'grant.refused');
    const has = (actor: string, reason: RegExp) =>
      refused.some((r) => r.actor === actor && reason.test(r.details.reason ?? ''));
    expect({
      unsigned: has('slack:unverified', /X-Slack-Signature and X-Slack-Request-Timestamp/),
      stale: has('slack:unverified', /s old/),
      badSignature: has('slack:unverified', /does not match/),
      replay: has('slack:unverified', /already handled \(replayed\)/),
      retry: has('slack:unverified', /^Slack retry 1 \(http_timeout\)/),
      selfApproval: has('slack:U0ALICE', /cannot approve it/),
      nonApprover: has('slack:U0MALLORY', /is not an approver/),
      revokeByNonResponder: has('slack:U0ALICE', /may not start a revocation/),
      credentialsByApprover: has('local:bob', /did not request grant/),
    }).toEqual({
      unsigned: true,
      stale: true,
      badSignature: true,
      replay: true,
      retry: true,
      selfApproval: true,
      nonApprover: true,
      revokeByNonResponder: true,
      credentialsByApprover: true,
    });
    // The CLI's table too.
    const table = await cli('bob', ['audit', 'list', '--limit', '1000']);
    expect(table.stdout).toMatch(/grant\.refused .*slack:U0MALLORY/);
  });

  it('no credential, wrapped token or key in any log line, audit record, Slack message or CLI message', async () => {
    const audit = await cli('bob', ['audit', 'list', '--limit', '1000', '--json']);
    const records = JSON.parse(audit.stdout) as AuditRecord[];
    expect(records.filter((r) => r.subject === grantId).map((r) => r.type)).toEqual(
      expect.arrayContaining(['grant.requested', 'grant.refused', 'grant.approved', 'grant.activated']),
    );
    const runtimeLog = readFileSync(join(home, 'runtime.log'), 'utf8');
    expect(runtimeLog).toMatch(/local runtime listening/);
    expect(capture.posts.length).toBeGreaterThanOrEqual(5);
    const sources: Source[] = [
      { name: 'runtime.log', text: runtimeLog },
      { name: 'moto.log', text: readFileSync(stack.moto.log, 'utf8') },
      { name: 'openbao.log', text: readFileSync(stack.vault.log, 'utf8') },
      { name: 'audit list --json', text: audit.stdout },
      ...capture.posts.map((p) => ({ name: `Slack post to ${p.path}`, text: p.body })),
      ...answers.map(({ name, answer }) => ({ name: `answer to Slack delivery ${name}`, text: answer.body })),
      ...runs.map((r) => ({ name: `stderr of ${r.actor}: keywarden ${r.args.join(' ')}`, text: r.stderr })),
      ...runs
        .filter((r) => !r.args.includes('credentials'))
        .map((r) => ({ name: `stdout of ${r.actor}: keywarden ${r.args.join(' ')}`, text: r.stdout })),
    ];
    expect(secrets.size).toBe(2);
    const keys = [...Object.values(devTokensOf(home)), secret.reveal()];
    expect(secretHits([...secrets, ...keys], sources)).toEqual([]);
    const openbaoAudit = readFileSync(stack.vault.auditLog, 'utf8');
    expect(openbaoAudit.length).toBeGreaterThan(0);
    expect(secretHits(secrets, [{ name: 'openbao-audit.log', text: openbaoAudit }])).toEqual([]);
  });
});
