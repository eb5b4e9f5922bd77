/**
 * The Slack ingress's Lambda entry point on the local stack: the cold start reads its
 * configuration and Slack's signing secret (Secrets Manager, moto), the state table is
 * dynalite's. The ingress composes only what it answers at once (functions/adapters/wiring.ts
 * `breakglassRequesting`, `campaignAuthorizing`): a `/breakglass` request is recorded and answered
 * with its buttons, a `/revoke` from someone who is no incident responder is refused and audited,
 * and neither needs an issuer, a schedule or the rotation registries (those are the worker's).
 */
import { randomBytes } from 'node:crypto';
import { CreateSecretCommand } from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { dynamoBreakglassStore } from '../../functions/adapters/aws/dynamodb-breakglass-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { signSlackRequest } from '../../functions/adapters/slack/verify.ts';
import { systemClock } from '../../functions/adapters/wiring.ts';
import type { ApiEvent } from '../../functions/api/responses.ts';
import { BreakglassConfigSchema } from '../../functions/core/grant.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { lambdaWorld, useLocalLambdaEnv } from '../support/lambda-world.ts';
import { testStack, uniqueName } from '../support/stack.ts';

const ACCOUNT = '123456789012';

describe('handler: Slack ingress, answered at once from what it composes (on the local stack)', () => {
  // Its state table and store; the function reads no fingerprint key and starts no campaign here.
  const { aws, table, store } = lambdaWorld('kw-slack-ingress');
  const signingSecret = randomBytes(16).toString('hex');

  /** A slash command as Slack posts it, signed now with the app's signing secret. */
  const command = (name: string, text: string, user: string): ApiEvent => {
    const body = new URLSearchParams({
      command: name,
      text,
      user_id: user,
      team_id: 'T1',
      channel_id: 'C0ALERTS',
      response_url: 'http://127.0.0.1:9/hooks',
    }).toString();
    const timestamp = String(Math.floor(Date.now() / 1000));
    return {
      rawPath: '/slack/commands',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': timestamp,
        'x-slack-signature': signSlackRequest(new SecretValue(signingSecret), timestamp, body),
      },
      body,
      isBase64Encoded: false,
      requestContext: { http: { method: 'POST' } },
    } as unknown as ApiEvent;
  };

  beforeAll(async () => {
    const _stack = testStack();
    await ensureStateTable(aws.dynamodb, table);
    const secretArn = async (prefix: string, value: string) =>
      (await aws.secrets.send(new CreateSecretCommand({ Name: uniqueName(prefix), SecretString: value })))
        .ARN;
    await dynamoBreakglassStore({
      client: aws.dynamodb,
      tableName: table,
      clock: systemClock,
    }).putBreakglassConfig(
      BreakglassConfigSchema.parse({
        people: [
          { name: 'alice', slackUsers: ['U0ALICE'] },
          { name: 'bob', slackUsers: ['U0BOB'] },
          { name: 'erin', slackUsers: ['U0ERIN'] },
        ],
        roles: [
          {
            id: 'prod-admin',
            description: 'prod account',
            target: { type: 'aws-role', roleArn: `arn:aws:iam::${ACCOUNT}:role/breakglass/prod-admin` },
            maxDuration: '1h',
            approvers: { slackUsers: ['U0BOB'] },
            requireIncident: false,
          },
        ],
      }),
    );
    useLocalLambdaEnv(table, {
      KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: await secretArn('kw-fp-key', randomBytes(32).toString('hex')),
      KEYWARDEN_SLACK_SIGNING_SECRET_ARN: await secretArn('kw-slack-signing', signingSecret),
      // Never invoked here: neither answer defers a job.
      KEYWARDEN_SLACK_WORKER_FUNCTION_ARN: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:kw-slack-worker`,
    });
  });

  it('records a /breakglass request and answers it with its Approve and Deny buttons', async () => {
    // prepare
    const { handler } = await import('../../functions/handlers/slack-ingress.ts');
    const reason = uniqueName('rollback');

    // act
    const answer = await handler(command('/breakglass', `prod-admin 15m ${reason}`, 'U0ALICE'));

    // assess
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toContain('breakglass.approve');
    const grantId = /"value":"(bg-[^"]+)"/.exec(answer.body)?.[1] ?? '';
    expect(await store.getGrant(grantId)).toMatchObject({
      roleId: 'prod-admin',
      state: 'requested',
      reason,
      requester: { kind: 'slack', id: 'U0ALICE' },
    });
    const { records } = await store.readAll();
    expect(records.filter((r) => r.type === 'grant.requested' && r.subject === grantId)).toHaveLength(1);
  });

  it('answers as the API router does outside its two routes: 404 for another path or method, 413 for a body over 1 MB', async () => {
    // prepare
    const { handler } = await import('../../functions/handlers/slack-ingress.ts');
    const event = command('/breakglass', 'prod-admin 15m reason', 'U0ALICE');
    const with_ = (change: Record<string, unknown>) => ({ ...event, ...change }) as ApiEvent;

    // act
    const elsewhere = await handler(with_({ rawPath: '/grants' }));
    const get = await handler(with_({ requestContext: { http: { method: 'GET' } } }));
    const large = await handler(with_({ body: 'x'.repeat(1_000_001) }));

    // assess
    expect([elsewhere.statusCode, get.statusCode, large.statusCode]).toEqual([404, 404, 413]);
    expect(JSON.parse(get.body)).toMatchObject({
      error: { code: 'not-found', message: 'no route GET "/slack/commands"' },
    });
    expect(JSON.parse(large.body)).toMatchObject({ error: { code: 'payload-too-large' } });
  });

  it('refuses /revoke from someone who is no incident responder, audits it, and defers nothing', async () => {
    // prepare
    const { handler } = await import('../../functions/handlers/slack-ingress.ts');

    // act: erin approves no role and is declared no responder
    const answer = await handler(command('/revoke', 'INC-42 stage=deploy', 'U0ERIN'));

    // assess
    expect(answer.statusCode).toBe(200);
    expect(answer.body).not.toContain('Planning the revocation');
    const { records } = await store.readAll();
    expect(
      records.filter(
        (r) => r.type === 'grant.refused' && r.actor === 'slack:U0ERIN' && r.subject === 'INC-42',
      ),
    ).toHaveLength(1);
  });
});
