/**
 * S3 PutObject as one signed `fetch` (functions/adapters/aws/s3-put-object.ts), against moto's
 * S3: what the revocation plan, the report step and discovery write with, instead of the SDK's
 * S3 client. The object is read back with the SDK's client, as an auditor would read it; faults
 * come from the fault proxy in front of moto (moto never throttles).
 */
import { createHash } from 'node:crypto';
import {
  ChecksumMode,
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutBucketEncryptionCommand,
} from '@aws-sdk/client-s3';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { signedPutObject } from '../../functions/adapters/aws/s3-put-object.ts';
import { KeywardenError } from '../../functions/core/errors.ts';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

const aws = awsClients(testAws());
const bucket = uniqueName('kw-put-object');
const noSleep = async () => {};

const running: FaultProxy[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((proxy) => proxy.close()));
});

/** A proxy in front of moto faulting the first `faulted` S3 requests with `fault`, then passing all. */
async function faultyS3(fault: 'throttleRate' | 'serverErrorRate' | 'dropRate', faulted: number) {
  let seen = 0;
  const proxy = await startFaultProxy({
    target: testStack().moto.endpoint,
    [fault]: 1,
    ...(fault === 'dropRate' ? { dropAfterForwardShare: 1 } : {}),
    match: (request) => request.service === 's3' && seen++ < faulted,
  });
  running.push(proxy);
  return proxy;
}

const read = async (key: string) => {
  const object = await aws.s3.send(
    new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: ChecksumMode.ENABLED }),
  );
  return { ...object, text: await object.Body?.transformToString('utf-8') };
};

beforeAll(async () => {
  await aws.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  // As in the stack: the bucket encrypts with KMS by default; the writer sends no SSE header.
  await aws.s3.send(
    new PutBucketEncryptionCommand({
      Bucket: bucket,
      ServerSideEncryptionConfiguration: {
        Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }],
      },
    }),
  );
});

describe('s3: signedPutObject on moto', () => {
  it('writes the object, readable with its type, cache control, metadata, the bucket’s encryption and a SHA-256 checksum', async () => {
    const put = signedPutObject(testAws());
    const key = `reports/INC-7/${uniqueName('c')}/report.json`;
    const body = JSON.stringify({ owner: 'équipe-paiements', note: 'naïve ✓' });

    await put({
      bucket,
      key,
      body,
      contentType: 'application/json; charset=utf-8',
      cacheControl: 'no-store',
      metadata: { incident: 'INC-7', 'campaign-id': 'c-1' },
    });

    const object = await read(key);
    expect(object.text).toBe(body);
    expect(object.ContentType).toBe('application/json; charset=utf-8');
    expect(object.CacheControl).toBe('no-store');
    expect(object.Metadata).toEqual({ incident: 'INC-7', 'campaign-id': 'c-1' });
    expect(object.ServerSideEncryption).toBe('aws:kms');
    expect(object.ChecksumSHA256).toBe(createHash('sha256').update(body).digest('base64'));
  });

  it('writes keys that need encoding under exactly the key given', async () => {
    const put = signedPutObject(testAws());
    const prefix = `${uniqueName('odd')}/`;
    const keys = [
      `${prefix}with space+plus=eq&amp.json`,
      `${prefix}(paren)!'*~.md`,
      `${prefix}ünïcödé/日本.html`,
      `${prefix}a//double-slash`,
    ];

    for (const key of keys) await put({ bucket, key, body: key, contentType: 'text/plain' });

    const listed = await aws.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    expect((listed.Contents ?? []).map((object) => object.Key).sort()).toEqual([...keys].sort());
    for (const key of keys) expect((await read(key)).text).toBe(key);
  });

  it('refuses a key with a . or .. segment, which a URL would resolve elsewhere', async () => {
    const put = signedPutObject(testAws());
    await expect(
      put({ bucket, key: 'reports/../campaigns/x.json', body: '{}', contentType: 'application/json' }),
    ).rejects.toThrow(/no '\.' or '\.\.' segment/);
  });

  it('says which object it could not write when the bucket does not exist, with no credential in the message', async () => {
    const endpoint = testAws();
    const put = signedPutObject(endpoint, { sleep: noSleep });
    const missing = uniqueName('kw-missing');

    const failure = await put({
      bucket: missing,
      key: 'discovery/2026-12-05/run.json',
      body: '{}',
      contentType: 'application/json',
      what: 'discovery report',
    }).then(
      () => undefined,
      (error: unknown) => error,
    );

    expect(failure).toBeInstanceOf(KeywardenError);
    const { message, retryable } = failure as KeywardenError;
    expect(message).toContain(`writing discovery report s3://${missing}/discovery/2026-12-05/run.json`);
    expect(message).toMatch(/NoSuchBucket \(HTTP 404\): The specified bucket does not exist\. /);
    expect(retryable).toBe(false);
    for (const secret of [endpoint.credentials?.secretAccessKey, 'Signature=', 'AWS4-HMAC-SHA256']) {
      if (secret) expect(message).not.toContain(secret);
    }
  });
});

describe('s3: signedPutObject retries as the SDK does (fault proxy in front of moto)', () => {
  it.each([
    ['a throttle (503 SlowDown)', 'throttleRate'],
    ['a server error (500/503)', 'serverErrorRate'],
    ['a connection lost after S3 did the work', 'dropRate'],
  ] as const)('writes the object after %s, twice in a row', async (_, fault) => {
    const proxy = await faultyS3(fault, 2);
    const put = signedPutObject({ ...testAws(), endpoint: proxy.url }, { sleep: noSleep });
    const key = `campaigns/${uniqueName('c')}/targets.json`;

    await put({ bucket, key, body: '[{"targetId":"t-1"}]', contentType: 'application/json' });

    expect(proxy.counts.requests).toBe(3);
    expect(proxy.faults).toHaveLength(2);
    expect((await read(key)).text).toBe('[{"targetId":"t-1"}]');
  });

  it('gives up after its attempts with a retryable error naming S3’s answer', async () => {
    const proxy = await faultyS3('throttleRate', 100);
    const put = signedPutObject({ ...testAws(), endpoint: proxy.url }, { sleep: noSleep, maxAttempts: 3 });

    const failure = put({
      bucket,
      key: 'campaigns/x/targets.json',
      body: '[]',
      contentType: 'application/json',
    });

    await expect(failure).rejects.toMatchObject({ retryable: true });
    await expect(failure).rejects.toThrow(/SlowDown \(HTTP 503\): Please reduce your request rate/);
    expect(proxy.counts.requests).toBe(3);
  });
});
