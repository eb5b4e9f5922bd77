/**
 * SNS's Publish as one signed POST (functions/adapters/aws/sns-publish.ts): the query protocol's
 * form as the SDK writes it, and SNS's answers read exactly. The delivery itself, attributes and
 * filter policies included, is specified against moto (test/integration/exposure-alerts.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { publishBody, SnsRequestError, signedSnsPublish } from '../../functions/adapters/aws/sns-publish.ts';
import { noSleep, scriptedFetch } from '../support/scripted-fetch.ts';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:keywarden-alerts';
const message = {
  topicArn: TOPIC,
  subject: "keywarden contained app's key (INC-7)",
  message: 'Owner: team-app\nFingerprint: 3f2a…',
  attributes: { owner: 'team-app', status: 'contained' },
};
const aws = {
  region: 'eu-west-1',
  credentials: { accessKeyId: 'test-key-id', secretAccessKey: 'test-secret-key' },
};

describe('sns publish: one signed POST', () => {
  it('writes the query form as the SDK does: RFC 3986 encoding, attributes as numbered String entries', () => {
    const form = new URLSearchParams(publishBody(message));
    expect(Object.fromEntries(form)).toEqual({
      Action: 'Publish',
      Version: '2010-03-31',
      TopicArn: TOPIC,
      Subject: message.subject,
      Message: message.message,
      'MessageAttributes.entry.1.Name': 'owner',
      'MessageAttributes.entry.1.Value.DataType': 'String',
      'MessageAttributes.entry.1.Value.StringValue': 'team-app',
      'MessageAttributes.entry.2.Name': 'status',
      'MessageAttributes.entry.2.Value.DataType': 'String',
      'MessageAttributes.entry.2.Value.StringValue': 'contained',
    });
    expect(publishBody(message)).toContain('Subject=keywarden%20contained%20app%27s%20key%20%28INC-7%29');
  });

  it('posts to the regional endpoint (FIPS when asked), signed for sns, and answers the message id', async () => {
    const { requests, fetchFn } = scriptedFetch(
      () =>
        new Response(
          '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>5b1f-9c</MessageId></PublishResult></PublishResponse>',
        ),
    );
    const publish = signedSnsPublish(aws, { fetch: fetchFn, env: { AWS_USE_FIPS_ENDPOINT: 'true' } });

    await expect(publish(message)).resolves.toEqual({ messageId: '5b1f-9c' });
    expect(requests[0]?.url).toBe('https://sns-fips.eu-west-1.amazonaws.com/');
    expect((requests[0]?.init.headers as Record<string, string> | undefined)?.authorization).toMatch(
      /Credential=test-key-id\/\d{8}\/eu-west-1\/sns\/aws4_request/,
    );
  });

  it('reads a refusal’s code and message, retries throttling, and gives up on a missing topic', async () => {
    const refusal = (code: string, status: number) => () =>
      new Response(
        `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>Topic does not exist.</Message></Error></ErrorResponse>`,
        { status },
      );
    const { requests, fetchFn } = scriptedFetch(refusal('Throttling', 400), refusal('NotFound', 404));
    const error = await signedSnsPublish(aws, { fetch: fetchFn, sleep: noSleep, env: {} })(message).catch(
      (caught: unknown) => caught,
    );

    expect(error).toBeInstanceOf(SnsRequestError);
    expect(error).toMatchObject({
      name: 'NotFound',
      status: 404,
      message: 'Topic does not exist',
      retryable: false,
    });
    expect(requests).toHaveLength(2);
  });
});
