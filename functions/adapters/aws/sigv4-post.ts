/**
 * SigV4 for one request shape: a POST to an endpoint's root (`/`, no query), every header given
 * signed. What the wire's JSON requests are (json-wire.ts); synchronous, with node:crypto and the
 * signing key kept for the day, where the SDK's signer (`@smithy/signature-v4`) spends ~0.1 ms of
 * CPU a request on loopback (async hashes, a request clone, an HMAC of the credentials for its key
 * cache): ~0.02 ms here. The same signature as the SDK's for the same request and time
 * (test/unit/sigv4-post.test.ts); any other path goes through the SDK's signer.
 */
import { createHash, createHmac } from 'node:crypto';

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
const hmac = (key: string | Buffer, text: string): Buffer =>
  createHmac('sha256', key).update(text, 'utf8').digest();

/** `20261205T170000Z`: SigV4's time format. */
const amzDate = (date: Date): string => date.toISOString().replace(/[:-]|\.\d{3}/g, '');

/** Signs POSTs to `/` for one region and service; keeps the day's signing key of the last credentials. */
export class PostSigner {
  #key: { day: string; accessKeyId: string; secretAccessKey: string; key: Buffer } | undefined;

  constructor(
    readonly region: string,
    readonly service: string,
  ) {}

  /**
   * The headers to send: `headers` (lower-case names, `host` among them) with the payload's hash,
   * `x-amz-date`, the session token if any, and `authorization`.
   */
  sign(
    credentials: SigningCredentials,
    headers: Record<string, string>,
    body: string,
    date: Date,
  ): Record<string, string> {
    const time = amzDate(date);
    const day = time.slice(0, 8);
    const payloadHash = sha256Hex(body);
    const all: Record<string, string> = {
      ...headers,
      // Sent as the SDK's signer sends it.
      'x-amz-content-sha256': payloadHash,
      'x-amz-date': time,
      ...(credentials.sessionToken ? { 'x-amz-security-token': credentials.sessionToken } : {}),
    };
    const names = Object.keys(all).sort();
    const canonicalHeaders = names
      .map((name) => `${name}:${(all[name] ?? '').trim().replace(/\s+/g, ' ')}\n`)
      .join('');
    const signedHeaders = names.join(';');
    const canonicalRequest = `POST\n/\n\n${canonicalHeaders}\n${signedHeaders}\n${payloadHash}`;
    const scope = `${day}/${this.region}/${this.service}/aws4_request`;
    const stringToSign = `AWS4-HMAC-SHA256\n${time}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const signature = createHmac('sha256', this.#signingKey(credentials, day))
      .update(stringToSign, 'utf8')
      .digest('hex');
    return {
      ...all,
      authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    };
  }

  #signingKey(credentials: SigningCredentials, day: string): Buffer {
    const known = this.#key;
    if (
      known?.day === day &&
      known.accessKeyId === credentials.accessKeyId &&
      known.secretAccessKey === credentials.secretAccessKey
    )
      return known.key;
    const key = hmac(
      hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), this.region), this.service),
      'aws4_request',
    );
    this.#key = {
      day,
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      key,
    };
    return key;
  }
}
