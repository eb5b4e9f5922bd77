/**
 * Artifact approvals end to end, through the real `keywarden` command against the local runtime
 * (`keywarden dev up`): KMS on moto signs each approval, the ledger is the local DynamoDB, and a
 * job grant behind the promote gate is exchanged with tokens from a local OIDC issuer shaped
 * like GitHub's. The gates go in order, two people per two consecutive gates; the grant issues
 * only on a valid approval of the request's digest by someone other than the job's actor; and
 * `keywarden approvals verify` catches a record altered in the table afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoDbClientConfig } from '../../functions/adapters/aws/clients.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import type { ChainReport } from '../../functions/core/ci-approval.ts';
import type { ApprovalRecord } from '../../functions/core/ci-records.ts';
import type { SecretValue } from '../../functions/core/secret-value.ts';
import { LocalOidcIssuer } from '../support/oidc-issuer.ts';
import {
  type CliRun,
  eventually,
  keywardenAsync,
  postSlack,
  type ResponseCapture,
  runtimeUrlOf,
  slackSecretOf,
  slashCommandBody,
  stackOf,
  startResponseCapture,
  vaultTokenStatus,
} from './breakglass-support.ts';

interface AuditRecord {
  type: string;
  actor: string;
  subject: string;
  details: Record<string, unknown>;
}

describe('artifact approvals: keywarden approve, approvals list|verify, and the gated exchange', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-approvals-'));
  const runs: CliRun[] = [];
  const digest = `sha256:${randomBytes(32).toString('hex')}`;
  const otherDigest = `sha256:${randomBytes(32).toString('hex')}`;
  const repositoryId = '700100300';
  const issued: string[] = [];
  let github: LocalOidcIssuer;
  let capture: ResponseCapture;
  let slackSecret: SecretValue;
  let url: string;

  async function cli(actor: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
    const result = {
      ...(await keywardenAsync(args, { KEYWARDEN_HOME: home, KEYWARDEN_ACTOR: actor, ...env })),
      args,
      actor,
    };
    runs.push(result);
    return result;
  }

  const approve = (actor: string, gate: string, environment = 'prod', of = digest) =>
    cli(actor, ['approve', '--digest', of, '--gate', gate, '--environment', environment]);

  /** The promote job's exchange, with a fresh token of a job started by `actor`. */
  async function exchange(actor: string, of = digest): Promise<CliRun> {
    const token = await github.mint(
      github.githubClaims({ repository_id: repositoryId, aud: 'keywarden', actor }),
    );
    const args = ['ci', 'credentials', '--grant', 'release-promote', '--digest', of, '--format', 'json'];
    return cli('runner', args, { KEYWARDEN_URL: url, KEYWARDEN_ID_TOKEN: token });
  }

  async function auditRecords(): Promise<AuditRecord[]> {
    const listed = await cli('bob', ['audit', 'list', '--limit', '1000', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout) as AuditRecord[];
  }

  beforeAll(async () => {
    github = await new LocalOidcIssuer({ platform: 'github' }).start();
    capture = await startResponseCapture();
    const up = await keywardenAsync(['dev', 'up', '--users', 'bob,carol'], {
      KEYWARDEN_HOME: home,
      KEYWARDEN_ACTOR: 'alice',
    });
    expect(up.code, up.stderr).toBe(0);
    url = runtimeUrlOf(home);
    slackSecret = slackSecretOf(home);
    const everyone = { localUsers: ['alice', 'bob', 'carol'], slackUsers: ['U0ALICE', 'U0BOB', 'U0CAROL'] };
    const inventory = {
      version: 1,
      identities: [],
      breakglass: {
        // alice pushes as alice-gh on GitHub: the directory makes her one person there too.
        people: [
          { name: 'alice', localUsers: ['alice'], slackUsers: ['U0ALICE'], ciUsers: ['alice-gh'] },
          { name: 'bob', localUsers: ['bob'], slackUsers: ['U0BOB'] },
          { name: 'carol', localUsers: ['carol'], slackUsers: ['U0CAROL'] },
        ],
      },
      ci: {
        issuers: [
          {
            name: 'github',
            preset: 'github',
            issuer: github.url,
            jwksUrl: github.jwksUrl,
            audience: 'keywarden',
          },
        ],
        grants: [
          {
            name: 'release-promote',
            issuer: 'github',
            claims: { repository_id: repositoryId, ref: 'refs/heads/main' },
            stage: 'deploy',
            vault: { policies: ['release-promote'], ttl: '5m' },
            gate: { gate: 'promote', environment: 'prod' },
          },
        ],
        gates: [
          { gate: 'sign', environment: 'prod', ...everyone },
          { gate: 'publish', environment: 'prod', ...everyone },
          { gate: 'promote', environment: 'prod', ...everyone, validFor: '1h' },
        ],
      },
    };
    const file = join(home, 'identities.yaml');
    writeFileSync(file, JSON.stringify(inventory));
    const sync = await keywardenAsync(['inventory', 'sync', file], {
      KEYWARDEN_HOME: home,
      KEYWARDEN_ACTOR: 'alice',
    });
    expect(sync.code, sync.stderr).toBe(0);
  });

  afterAll(async () => {
    await github?.stop();
    await capture?.close();
    const down = await keywardenAsync(['dev', 'down'], { KEYWARDEN_HOME: home });
    expect(down.code, down.stderr).toBe(0);
  });

  it('keeps the gates in order and two people per two consecutive gates', async () => {
    // act
    const publishFirst = await approve('bob', 'publish');
    const sign = await approve('alice', 'sign');
    const aliceAgain = await approve('alice', 'publish');
    const stranger = await approve('alice', 'sign', 'moon');
    const publish = await approve('bob', 'publish');

    // assess
    expect(publishFirst.code).toBe(1);
    expect(publishFirst.stderr).toContain(
      `keywarden: gate publish of ${digest} in prod needs a valid, unexpired sign approval first`,
    );
    expect(sign.code, sign.stderr).toBe(0);
    expect(sign.stdout.trim()).toMatch(/^ap-/);
    expect(sign.stderr).toContain(`approved ${digest} for sign in prod as local:alice`);
    expect(aliceAgain.code).toBe(1);
    expect(aliceAgain.stderr).toContain('consecutive gates need two people');
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toContain('no approvers are declared for gate sign in moon');
    expect(publish.code, publish.stderr).toBe(0);
  });

  it('refuses a malformed digest before sending anything', async () => {
    // act
    const bad = await approve('bob', 'sign', 'prod', 'sha256:ABC');

    // assess
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      'approval: digest: expected an artifact digest as sha256:<64 lowercase hex digits>',
    );
  });

  it('refuses the promote grant without an approval; issues it once someone else approves that digest', async () => {
    // act
    const before = await exchange('octocat');
    const promote = await approve('carol', 'promote');
    const otherArtifact = await exchange('octocat', otherDigest);
    const carolsJob = await exchange('carol');
    const afterApproval = await exchange('octocat');

    // assess
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(
      /refused \(HTTP 403, gate\): .*no promote approval of sha256:[0-9a-f]{64} in prod is recorded/,
    );
    expect(promote.code, promote.stderr).toBe(0);
    expect(otherArtifact.code).toBe(1);
    expect(otherArtifact.stderr).toContain(otherDigest);
    expect(otherArtifact.stderr).toContain(`no promote approval of ${otherDigest} in prod is recorded`);
    expect(carolsJob.code).toBe(1);
    expect(carolsJob.stderr).toContain(
      "was given by local:carol, the job's actor: someone else must approve",
    );
    expect(afterApproval.code, afterApproval.stderr).toBe(0);
    const credentials = JSON.parse(afterApproval.stdout) as { vault?: { token: string } };
    expect(credentials.vault?.token).toMatch(/^s\./);
    issued.push(credentials.vault?.token ?? '');
    expect(await vaultTokenStatus(stackOf(home), credentials.vault?.token ?? '')).toBe(200);
  });

  it('refuses the job of the person who approved, under their CI login', async () => {
    // prepare: alice approved sign; a second promote chain has her approve promote instead of carol
    const chain = `sha256:${randomBytes(32).toString('hex')}`;
    for (const [actor, gate] of [
      ['bob', 'sign'],
      ['carol', 'publish'],
      ['alice', 'promote'],
    ] as const) {
      const run = await approve(actor, gate, 'prod', chain);
      expect(run.code, run.stderr).toBe(0);
    }

    // act
    const alicesJob = await exchange('alice-gh', chain);

    // assess
    expect(alicesJob.code).toBe(1);
    expect(alicesJob.stderr).toContain("was given by local:alice, the job's actor");
  });

  it("lists the digest's approvals with their DSSE envelopes, and verifies the chain", async () => {
    // act
    const list = await cli('bob', ['approvals', 'list', '--digest', digest, '--json']);
    const table = await cli('bob', ['approvals', 'list', '--digest', digest]);
    const verify = await cli('bob', ['approvals', 'verify', '--digest', digest]);

    // assess
    expect(list.code, list.stderr).toBe(0);
    const approvals = JSON.parse(list.stdout) as (ApprovalRecord & { envelope: { payload: string } })[];
    expect(approvals.map((a) => [a.gate, a.approver.id])).toEqual([
      ['sign', 'alice'],
      ['publish', 'bob'],
      ['promote', 'carol'],
    ]);
    expect(Buffer.from(approvals[0]?.envelope.payload ?? '', 'base64').toString()).toBe(
      approvals[0]?.statement,
    );
    expect(table.stdout).toMatch(/APPROVAL\s.*GATE\s.*ENVIRONMENT/);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout.split('\n').filter((line) => line.endsWith(': valid'))).toHaveLength(3);
    expect(verify.stderr).toContain(`the chain of ${digest} verifies (3 approval(s))`);
  });

  it('catches an approval record altered in the table, and the gate no longer lets the job through', async () => {
    // prepare: someone with write access to the table makes the publish approval dave's
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    const dynamodb = new DynamoDBClient(dynamoDbClientConfig(config.aws));
    const listed = await cli('bob', ['approvals', 'list', '--digest', digest, '--json']);
    const publish = (JSON.parse(listed.stdout) as ApprovalRecord[]).find((a) => a.gate === 'publish');
    await dynamodb.send(
      new UpdateItemCommand({
        TableName: config.tableName,
        Key: { pk: { S: `CI#APPROVALS#${digest}` }, sk: { S: `APPROVAL#${publish?.id}` } },
        UpdateExpression: 'SET #record.#statement = :statement',
        ExpressionAttributeNames: { '#record': 'record', '#statement': 'statement' },
        ExpressionAttributeValues: {
          ':statement': { S: (publish?.statement ?? '').replace('"id":"bob"', '"id":"dave"') },
        },
      }),
    );

    // act
    const verify = await cli('bob', ['approvals', 'verify', '--digest', digest]);
    const json = await cli('bob', ['approvals', 'verify', '--digest', digest, '--json']);
    const job = await exchange('octocat');

    // assess
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`${publish?.id} publish/prod by local:bob`);
    expect(verify.stdout).toContain('BROKEN');
    expect(verify.stdout).toContain('does not verify the statement');
    expect(verify.stderr).toContain(`the chain of ${digest} is BROKEN: 1 approval(s) fail`);
    expect(json.code).toBe(1);
    expect((JSON.parse(json.stdout) as ChainReport).verdict).toBe('broken');
    expect(job.code).toBe(1);
    expect(job.stderr).toContain('names no verifiable publish approval before it');
  });

  it("takes an approval from Slack: /approve posts the button, a gate approver's click records it", async () => {
    // prepare: sign and publish from the CLI
    const chain = `sha256:${randomBytes(32).toString('hex')}`;
    for (const [actor, gate] of [
      ['alice', 'sign'],
      ['bob', 'publish'],
    ] as const) {
      const run = await approve(actor, gate, 'prod', chain);
      expect(run.code, run.stderr).toBe(0);
    }
    const click = (name: string, userId: string) => {
      const payload = {
        type: 'block_actions',
        user: { id: userId, username: userId.toLowerCase() },
        response_url: capture.url(name),
        actions: [{ action_id: 'ci.approve', value: `${chain} promote prod`, type: 'button' }],
      };
      return postSlack(
        url,
        'interactions',
        new URLSearchParams({ payload: JSON.stringify(payload) }).toString(),
        {
          secret: slackSecret,
        },
      );
    };
    const posted = (name: string) =>
      eventually(`a post to response_url ${name}`, async () => capture.to(name)[0] ?? undefined);

    // act
    const command = await postSlack(
      url,
      'commands',
      slashCommandBody({
        command: '/approve',
        text: `${chain} promote prod`,
        userId: 'U0ALICE',
        responseUrl: capture.url('asked'),
      }),
      { secret: slackSecret },
    );
    const listedBefore = await cli('bob', ['approvals', 'list', '--digest', chain, '--json']);
    const mallory = await click('mallory', 'U0MALLORY');
    const refusal = await posted('mallory');
    const carol = await click('carol', 'U0CAROL');
    const approved = await posted('carol');
    const listed = await cli('bob', ['approvals', 'list', '--digest', chain, '--json']);
    const carolsJob = await exchange('carol', chain);

    // assess
    expect(command.status).toBe(200);
    expect(command.body).toContain(`"action_id":"ci.approve"`);
    expect(command.body).toContain(`"value":"${chain} promote prod"`);
    expect((JSON.parse(listedBefore.stdout) as ApprovalRecord[]).map((a) => a.gate)).toEqual([
      'sign',
      'publish',
    ]);
    expect([mallory.status, carol.status]).toEqual([200, 200]);
    expect(refusal.json.text).toContain('slack:U0MALLORY is not an approver of gate promote in prod');
    expect(approved.json).toMatchObject({
      replace_original: true,
      text: `Approved: ${chain} for promote in prod`,
    });
    const promote = (JSON.parse(listed.stdout) as ApprovalRecord[]).find((a) => a.gate === 'promote');
    expect(promote?.approver).toEqual({ kind: 'slack', id: 'U0CAROL' });
    // U0CAROL is carol in the directory: her own job does not pass on her Slack approval.
    expect(carolsJob.code).toBe(1);
    expect(carolsJob.stderr).toContain("was given by slack:U0CAROL, the job's actor");
  });

  it('audits every approval and every refusal, and never a credential', async () => {
    // act
    const records = await auditRecords();

    // assess
    const recorded = records.filter((r) => r.type === 'ci.approval.recorded');
    const refused = records.filter((r) => r.type === 'ci.approval.refused');
    expect(recorded.filter((r) => r.subject === digest).map((r) => [r.actor, r.details.gate])).toEqual([
      ['local:alice', 'sign'],
      ['local:bob', 'publish'],
      ['local:carol', 'promote'],
    ]);
    expect(refused.map((r) => r.actor).sort()).toEqual([
      'local:alice',
      'local:alice',
      'local:bob',
      'slack:U0MALLORY',
    ]);
    const everything = JSON.stringify(records) + runs.map((r) => r.stderr).join('\n');
    for (const token of issued) expect(everything).not.toContain(token);
  });
});
