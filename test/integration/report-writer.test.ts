/**
 * The report writer against the real moto server of the local stack (S3) and a temporary
 * folder (local). Bucket names come from `uniqueName`, because other test files share moto.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { signedPutObject } from '../../functions/adapters/aws/s3-put-object.ts';
import { writeReport } from '../../functions/adapters/report-writer.ts';
import { summarize, type Target } from '../../functions/core/campaign.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import { buildRevocationReport } from '../../functions/core/revocation-report.ts';
import type { RevocationReport } from '../../functions/core/revocation-report-model.ts';
import { type RenderedReport, renderReport } from '../../functions/core/revocation-report-render.ts';
import { identity } from '../support/fixtures.ts';
import { testAws, uniqueName } from '../support/stack.ts';

/** An access key id shaped like IAM's, made at run time so none sits in the source. */
const fakeKeyId = (n: number): string => `${'AKIA'}TEST${String(n).padStart(12, '0')}`;

const START = '2026-11-21T10:00:00.000Z';
const keys = identity({ id: 'app-keys', kind: 'aws-iam-access-key', owner: 'team-app' });
const targets: Target[] = [
  {
    targetId: `app-keys:${fakeKeyId(1)}`,
    identityId: 'app-keys',
    kind: 'aws-iam-access-key',
    owner: 'team-app',
    environment: 'staging',
    handle: fakeKeyId(1),
    action: 'revoke',
    reissue: false,
    outcome: 'revoked',
    attempts: 1,
    finishedAt: '2026-11-21T10:00:01.200Z',
  },
  {
    targetId: `app-keys:${fakeKeyId(2)}`,
    identityId: 'app-keys',
    kind: 'aws-iam-access-key',
    owner: 'team-app',
    environment: 'staging',
    handle: fakeKeyId(2),
    action: 'revoke',
    reissue: false,
    outcome: 'failed',
    error: 'AccessDenied: not authorized to perform iam:DeleteAccessKey',
    attempts: 1,
  },
];

const reportFor = (campaignId: string): RevocationReport =>
  buildRevocationReport({
    campaign: {
      campaignId,
      incident: 'INC-42',
      selectors: ['id=app-keys'],
      requestedBy: 'cli:alice',
      createdAt: START,
      startedAt: START,
      finishedAt: '2026-11-21T10:00:02.000Z',
      status: 'completed',
      reissue: false,
      dryRun: false,
      counts: summarize(targets),
    },
    targets,
    identities: [keys],
    history: [],
    reissued: [],
    generatedAt: '2026-11-21T10:00:03.000Z',
  });

describe('adapter: writeReport to S3 (moto)', () => {
  const aws = awsClients(testAws());
  const putObject = signedPutObject(testAws());
  const bucket = uniqueName('kw-reports');
  const campaignId = uniqueName('c');
  const report = reportFor(campaignId);
  const rendered: RenderedReport = renderReport(report);

  beforeAll(async () => {
    await aws.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    // As in the stack: the bucket encrypts with KMS by default; the writer sends no SSE header.
    await aws.s3.send(
      new PutBucketEncryptionCommand({
        Bucket: bucket,
        ServerSideEncryptionConfiguration: {
          Rules: [
            { ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true },
          ],
        },
      }),
    );
  });

  const read = async (key: string) => {
    const object = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return { body: await object.Body?.transformToString('utf-8'), contentType: object.ContentType };
  };

  it('writes the three renderings under reports/<incident>/<campaignId>/ and reads them back', async () => {
    const locations = await writeReport(report, rendered, { kind: 's3', putObject, bucket });
    const prefix = `reports/INC-42/${campaignId}`;
    expect(locations).toEqual({
      json: `s3://${bucket}/${prefix}/report.json`,
      markdown: `s3://${bucket}/${prefix}/report.md`,
      html: `s3://${bucket}/${prefix}/report.html`,
    });

    const json = await read(`${prefix}/report.json`);
    expect(json.body).toBe(rendered.json);
    expect(JSON.parse(json.body ?? '')).toEqual(report);
    expect(json.contentType).toBe('application/json; charset=utf-8');

    const markdown = await read(`${prefix}/report.md`);
    expect(markdown.body).toBe(rendered.markdown);
    expect(markdown.contentType).toBe('text/markdown; charset=utf-8');

    const html = await read(`${prefix}/report.html`);
    expect(html.body).toBe(rendered.html);
    expect(html.contentType).toBe('text/html; charset=utf-8');

    const head = await aws.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}/report.html` }));
    expect(head.ServerSideEncryption).toBe('aws:kms');
    expect(head.Metadata).toEqual({ incident: 'INC-42', 'campaign-id': campaignId });
  });

  it('honours a custom prefix', async () => {
    const locations = await writeReport(report, rendered, {
      kind: 's3',
      putObject,
      bucket,
      prefix: '/campaigns/reports/',
    });
    expect(locations.json).toBe(`s3://${bucket}/campaigns/reports/INC-42/${campaignId}/report.json`);
    expect((await read(`campaigns/reports/INC-42/${campaignId}/report.json`)).body).toBe(rendered.json);
  });

  it('says which object it could not write when the bucket does not exist', async () => {
    const missing = uniqueName('kw-missing');
    const failure = writeReport(report, rendered, { kind: 's3', putObject, bucket: missing });
    await expect(failure).rejects.toBeInstanceOf(KeywardenError);
    await expect(failure).rejects.toThrow(
      `writing report s3://${missing}/reports/INC-42/${campaignId}/report.json`,
    );
  });
});

describe('adapter: writeReport to a local folder', () => {
  let dir: string;
  const campaignId = uniqueName('c');
  const report = reportFor(campaignId);
  const rendered = renderReport(report);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kw-reports-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes <dir>/<incident>/<campaignId>/report.{json,md,html}, readable by the owner only', async () => {
    const locations = await writeReport(report, rendered, { kind: 'local', dir });
    const folder = join(dir, 'INC-42', campaignId);
    expect(locations).toEqual({
      json: join(folder, 'report.json'),
      markdown: join(folder, 'report.md'),
      html: join(folder, 'report.html'),
    });
    expect(await readFile(locations.json, 'utf-8')).toBe(rendered.json);
    expect(await readFile(locations.markdown, 'utf-8')).toBe(rendered.markdown);
    expect(await readFile(locations.html, 'utf-8')).toBe(rendered.html);
    for (const path of Object.values(locations)) expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(folder)).mode & 0o077).toBe(0);
  });

  it('replaces an earlier report, resetting a widened mode to 0600', async () => {
    const path = join(dir, 'INC-42', campaignId, 'report.md');
    await writeFile(path, 'stale', { mode: 0o644 });
    await writeReport(report, rendered, { kind: 'local', dir });
    expect(await readFile(path, 'utf-8')).toBe(rendered.markdown);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('refuses a campaign id that is not one path segment', async () => {
    const escaping = { ...report, campaign: { ...report.campaign, campaignId: '../../etc' } };
    await expect(writeReport(escaping, rendered, { kind: 'local', dir })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });
});
