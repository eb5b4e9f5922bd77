/**
 * The shared vocabulary of exposure scanning (issue #14): where a text came from, and what a
 * detector found in it. Whether a found value is a credential keywarden manages is decided
 * afterwards (exposure.ts), by its keyed fingerprint, never by keeping or comparing values.
 */
import * as z from 'zod';
import { onFirstUse } from './on-first-use.ts';
import type { SecretValue } from './secret-value.ts';

/** Where a scanned text came from; `location` names it (a path, a log group/stream, `owner/repo/run`…). */
export const ExposureSourceSchema = onFirstUse(() =>
  z.strictObject({
    kind: z.enum(['file', 'stdin', 'git', 'cloudwatch-logs', 'gitlab-variable', 'github-run', 'gitlab-job']),
    location: z.string().min(1).max(2_048),
    /** The commit a `git` hit was found in (its history, not the work tree). */
    commit: z.string().max(64).optional(),
  }),
);
export type ExposureSource = z.infer<typeof ExposureSourceSchema>;

/** How a found value was written in the text. */
export type Encoding = 'plain' | 'base64' | 'url';

/** One credential-looking value a detector found (detection only). */
export interface DetectedSecret {
  /** The rule that found it: keywarden's own (`vault-service-token`, `aws-access-key-pair`…) or the engine's (`secretlint:<rule id>`). */
  rule: string;
  /**
   * The value as keywarden would fingerprint it: a token as is; an AWS key pair as
   * `SecretValue.ofJson({ accessKeyId, secretAccessKey })` (the IAM provider's form).
   */
  value: SecretValue;
  /** AWS: the access key id (not a secret), when one was found. */
  accessKeyId?: string | undefined;
  /** 1-based line and column of the value's start in the text. */
  line: number;
  column: number;
  encoding: Encoding;
}
