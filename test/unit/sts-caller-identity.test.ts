/**
 * What STS GetCallerIdentity over a signed `fetch` (functions/adapters/aws/sts-caller-identity.ts)
 * sends and how it reads the answers moto never gives (a foreign endpoint's odd XML, a message
 * echoing a canonical request). `fetch` is the recording stand-in; the answers moto does give are
 * specified against it in test/integration/sts-caller-identity.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { serviceUrl } from '../../functions/adapters/aws/signed-fetch.ts';
import {
  parseCallerIdentity,
  StsRequestError,
  signedGetCallerIdentity,
} from '../../functions/adapters/aws/sts-caller-identity.ts';
import { noSleep, scriptedFetch } from '../support/scripted-fetch.ts';

const key = () => ({
  accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
  secretAccessKey: randomBytes(30).toString('base64').slice(0, 40),
});

const ANSWER = (result: string) =>
  `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n  <GetCallerIdentityResult>${result}</GetCallerIdentityResult>\n  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>\n</GetCallerIdentityResponse>`;
const FIELDS =
  '<Arn>arn:aws:iam::123456789012:user/ci/deployer</Arn><UserId>AIDAEXAMPLEUSERID</UserId><Account>123456789012</Account>';

describe('sts caller identity: the request', () => {
  it('posts the query form to STS’s regional endpoint, signed for sts in the region with the key given', async () => {
    const pair = key();
    const { requests, fetchFn } = scriptedFetch(() => new Response(ANSWER(FIELDS)));

    const caller = await signedGetCallerIdentity({ region: 'eu-west-1' }, { fetch: fetchFn, env: {} })(pair);

    expect(caller).toEqual({
      arn: 'arn:aws:iam::123456789012:user/ci/deployer',
      account: '123456789012',
      userId: 'AIDAEXAMPLEUSERID',
    });
    const [request] = requests;
    expect(request?.url).toBe('https://sts.eu-west-1.amazonaws.com/');
    expect(request?.init.method).toBe('POST');
    expect(request?.init.body).toBe('Action=GetCallerIdentity&Version=2011-06-15');
    const headers = request?.init.headers as Record<string, string>;
    expect(headers.authorization).toMatch(
      new RegExp(`^AWS4-HMAC-SHA256 Credential=${pair.accessKeyId}/\\d{8}/eu-west-1/sts/aws4_request, `),
    );
  });

  it.each([
    [
      'the configured endpoint first',
      { endpoint: 'http://127.0.0.1:1111' },
      { AWS_ENDPOINT_URL_STS: 'http://127.0.0.1:2222' },
      'http://127.0.0.1:1111/',
    ],
    [
      'then AWS_ENDPOINT_URL_STS',
      {},
      { AWS_ENDPOINT_URL_STS: 'http://127.0.0.1:2222', AWS_ENDPOINT_URL: 'http://127.0.0.1:3333' },
      'http://127.0.0.1:2222/',
    ],
    ['then AWS_ENDPOINT_URL', {}, { AWS_ENDPOINT_URL: 'http://127.0.0.1:3333' }, 'http://127.0.0.1:3333/'],
    [
      'and neither when configured endpoints are ignored',
      {},
      { AWS_ENDPOINT_URL: 'http://127.0.0.1:3333', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' },
      'https://sts.us-east-1.amazonaws.com/',
    ],
  ])('takes %s, as the SDK’s client does', async (_, configured, env, expected) => {
    const { requests, fetchFn } = scriptedFetch(() => new Response(ANSWER(FIELDS)));
    await signedGetCallerIdentity({ region: 'us-east-1', ...configured }, { fetch: fetchFn, env })(key());
    expect(requests[0]?.url).toBe(expected);
  });

  it('uses China’s domain in China’s regions', () => {
    expect(serviceUrl('sts', { region: 'cn-north-1' }, {}).href).toBe(
      'https://sts.cn-north-1.amazonaws.com.cn/',
    );
  });
});

describe('sts caller identity: reading the answer exactly', () => {
  it('resolves XML references in a field', () => {
    expect(parseCallerIdentity(ANSWER(FIELDS.replace('deployer', 'a&amp;b&#x2B;c')))?.arn).toBe(
      'arn:aws:iam::123456789012:user/ci/a&b+c',
    );
  });

  it.each([
    [
      'another operation’s answer',
      FIELDS,
      (xml: string) => xml.replace(/GetCallerIdentityResponse/g, 'AssumeRoleResponse'),
    ],
    ['no Arn', FIELDS.replace(/<Arn>.*<\/Arn>/, ''), (xml: string) => xml],
    ['an empty Account', FIELDS.replace('123456789012</Account>', '</Account>'), (xml: string) => xml],
    ['two Arns', `${FIELDS}<Arn>arn:aws:iam::123456789012:user/other</Arn>`, (xml: string) => xml],
    ['markup in a field', FIELDS.replace('deployer', '<b>deployer</b>'), (xml: string) => xml],
    ['an unknown entity', FIELDS.replace('deployer', 'a&nbsp;b'), (xml: string) => xml],
    [
      'two results',
      FIELDS,
      (xml: string) =>
        xml.replace(
          '</GetCallerIdentityResult>',
          `</GetCallerIdentityResult><GetCallerIdentityResult>${FIELDS}</GetCallerIdentityResult>`,
        ),
    ],
  ])('reads nothing from %s', (_, fields, edit) => {
    expect(parseCallerIdentity(edit(ANSWER(fields)))).toBeUndefined();
  });

  it('fails, not retryable, on a 200 it cannot read, without quoting it', async () => {
    const { fetchFn } = scriptedFetch(() => new Response('<html>captive portal</html>'));
    const failure = await signedGetCallerIdentity(
      { region: 'eu-west-1' },
      { fetch: fetchFn, env: {} },
    )(key()).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StsRequestError);
    expect(failure).toMatchObject({ name: 'UnreadableAnswer', retryable: false });
    expect((failure as Error).message).not.toContain('captive');
  });

  it('keeps a signature mismatch’s message short of any canonical request, and never says the secret', async () => {
    const pair = key();
    const message = `The request signature we calculated does not match the signature you provided. The Canonical String for this request should have been 'POST / ${pair.secretAccessKey}'`;
    const { fetchFn, requests } = scriptedFetch(
      () =>
        new Response(
          `<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>${message}</Message></Error></ErrorResponse>`,
          { status: 403 },
        ),
    );
    const failure = await signedGetCallerIdentity(
      { region: 'eu-west-1' },
      { fetch: fetchFn, env: {}, sleep: noSleep },
    )(pair).catch((error: unknown) => error);

    expect(requests).toHaveLength(1);
    expect(failure).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403, retryable: false });
    expect((failure as Error).message).toBe(
      'The request signature we calculated does not match the signature you provided',
    );
  });
});
