/**
 * The wire's SigV4 signer (functions/adapters/aws/sigv4-post.ts): for a POST to `/`, the same
 * headers and signature as the SDK's signer for the same request, credentials and time, with and
 * without a session token, across a change of day and of credentials.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { Sha256 } from '../../functions/adapters/aws/sha256.ts';
import { PostSigner, type SigningCredentials } from '../../functions/adapters/aws/sigv4-post.ts';

// Not credentials: the signer only hashes them.
const KEY_ID = ['AKIA', 'EXAMPLEKEYID0001'].join('');
const fakeSecret = (n: number) => `test-signing-material-${n}`.padEnd(40, 'x');

const body = JSON.stringify({
  TableName: 'kw-state',
  Key: { pk: { S: 'IDENTITY#a' }, sk: { S: 'ROTATION' } },
});
const headers = {
  host: '127.0.0.1:4566',
  'content-type': 'application/x-amz-json-1.0',
  'x-amz-target': 'DynamoDB_20120810.GetItem',
  'content-length': String(Buffer.byteLength(body)),
};

/** Credentials as the SDK's signer takes them. */
type Credentials = SigningCredentials & { sessionToken?: string };

async function sdkSigned(credentials: Credentials, date: Date, service = 'dynamodb') {
  const signer = new SignatureV4({ service, region: 'eu-west-1', credentials, sha256: Sha256 });
  const signed = await signer.sign(
    {
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 4566,
      path: '/',
      query: {},
      headers: { ...headers },
      body,
    },
    { signingDate: date },
  );
  return signed.headers;
}

describe('sigv4 post signer', () => {
  it('signs as the SDK signs, without and with a session token', async () => {
    // prepare
    const signer = new PostSigner('eu-west-1', 'dynamodb');
    const date = new Date('2026-12-05T17:20:31.456Z');
    const plain = { accessKeyId: KEY_ID, secretAccessKey: fakeSecret(1) };
    const session = { ...plain, sessionToken: 'test-session-token/with+odd=chars' };

    // act
    const ours = [signer.sign(plain, headers, body, date), signer.sign(session, headers, body, date)];
    const sdk = [await sdkSigned(plain, date), await sdkSigned(session, date)];

    // assess
    expect(ours[0]).toEqual(sdk[0]);
    expect(ours[1]).toEqual(sdk[1]);
    expect(ours[1]?.['x-amz-security-token']).toBe(session.sessionToken);
  });

  it('makes a new signing key when the day or the credentials change', async () => {
    // prepare
    const signer = new PostSigner('eu-west-1', 'secretsmanager');
    const first = { accessKeyId: KEY_ID, secretAccessKey: fakeSecret(1) };
    const rotated = { accessKeyId: KEY_ID, secretAccessKey: fakeSecret(2) };
    const today = new Date('2026-12-05T23:59:59.000Z');
    const tomorrow = new Date('2026-12-06T00:00:01.000Z');

    // act
    const signed = [
      signer.sign(first, headers, body, today),
      signer.sign(first, headers, body, tomorrow),
      signer.sign(rotated, headers, body, tomorrow),
    ];

    // assess
    expect(signed[0]).toEqual(await sdkSigned(first, today, 'secretsmanager'));
    expect(signed[1]).toEqual(await sdkSigned(first, tomorrow, 'secretsmanager'));
    expect(signed[2]).toEqual(await sdkSigned(rotated, tomorrow, 'secretsmanager'));
  });
});
