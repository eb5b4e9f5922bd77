/**
 * Writes a revocation report's three renderings side by side: to the report bucket in S3
 * (`<prefix>/<incident>/<campaignId>/report.{json,md,html}`, encrypted by the bucket's
 * default KMS key) or, locally, to `<dir>/<incident>/<campaignId>/` with owner-only
 * permissions. Reports hold no secret value, but they map owners, environments and handles
 * of credentials that were just compromised, so they are kept private all the same.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ValidationError } from '../core/errors.ts';
import type { RevocationReport } from '../core/revocation-report-model.ts';
import type { RenderedReport } from '../core/revocation-report-render.ts';
import type { PutObject } from './aws/s3-put-object.ts';

/** Where a report goes. */
export type ReportTarget =
  | { kind: 'local'; dir: string }
  | {
      kind: 's3';
      /** S3 PutObject (s3-put-object.ts). */
      putObject: PutObject;
      bucket: string;
      /** Key prefix; `reports` unless given. An empty string writes at the bucket root. */
      prefix?: string;
    };

/** Where each rendering was written: absolute paths, or `s3://bucket/key`. */
export interface ReportLocations {
  json: string;
  markdown: string;
  html: string;
}

/** The default key prefix of campaign reports in the report bucket. */
export const REPORT_PREFIX = 'reports';

const FILES = [
  { format: 'json', name: 'report.json', contentType: 'application/json; charset=utf-8' },
  { format: 'markdown', name: 'report.md', contentType: 'text/markdown; charset=utf-8' },
  { format: 'html', name: 'report.html', contentType: 'text/html; charset=utf-8' },
] as const;

/** One path segment: no separator, no `.` or `..`, nothing a shell or S3 console would misread. */
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function segmentsOf(report: RevocationReport): [string, string] {
  const incident = report.incident;
  const campaignId = report.campaign.campaignId;
  for (const [name, value] of [
    ['incident', incident],
    ['campaign id', campaignId],
  ] as const) {
    if (!SEGMENT.test(value) || value.includes('..')) {
      throw new ValidationError(
        `report writer: expected the ${name} to be one path segment of letters, digits, '.', '_' or '-', got ${JSON.stringify(value)}`,
      );
    }
  }
  return [incident, campaignId];
}

/** The object key of one rendering. */
export const reportKey = (prefix: string, incident: string, campaignId: string, file: string): string =>
  [prefix.replace(/^\/+|\/+$/g, ''), incident, campaignId, file].filter((part) => part !== '').join('/');

/**
 * Writes the three renderings of `report` and returns where each went. Local files are
 * written to a temporary name with mode 0600 and renamed into place, so a reader never sees
 * half a report and an existing report's permissions are reset too.
 *
 * @throws ValidationError when the incident or campaign id is not a safe path segment.
 * @throws KeywardenError when S3 refuses a write (retryable for throttling and 5xx).
 */
export async function writeReport(
  report: RevocationReport,
  rendered: RenderedReport,
  target: ReportTarget,
): Promise<ReportLocations> {
  const [incident, campaignId] = segmentsOf(report);
  const locations: Partial<Record<keyof ReportLocations, string>> = {};

  if (target.kind === 'local') {
    const dir = resolve(target.dir, incident, campaignId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const file of FILES) {
      const path = join(dir, file.name);
      const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await writeFile(temporary, rendered[file.format], { mode: 0o600, flag: 'wx' });
        // The process umask cannot widen 0600, but say it explicitly: the mode is the contract.
        await chmod(temporary, 0o600);
        await rename(temporary, path);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
      locations[file.format] = path;
    }
    return locations as ReportLocations;
  }

  const prefix = target.prefix ?? REPORT_PREFIX;
  for (const file of FILES) {
    const key = reportKey(prefix, incident, campaignId, file.name);
    // No encryption header: the bucket's default (its own KMS key, bucket key on) applies,
    // whereas 'aws:kms' without a key id would pick the AWS-managed key instead.
    await target.putObject({
      bucket: target.bucket,
      key,
      body: rendered[file.format],
      contentType: file.contentType,
      cacheControl: 'no-store',
      metadata: { incident, 'campaign-id': campaignId },
      what: 'report',
    });
    locations[file.format] = `s3://${target.bucket}/${key}`;
  }
  return locations as ReportLocations;
}
