import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RuntimeConfig, RuntimeConfigSchema } from '../functions/adapters/runtime-config.ts';
import { KeywardenError } from '../functions/core/errors.ts';
import { localUser } from '../functions/local/dev.ts';
import { DEFAULT_STATE_DIR } from '../scripts/local-stack.ts';

/** The local stack's state folder: `KEYWARDEN_HOME`, or `.keywarden/dev` in the checkout. */
export const stateDir = (): string => process.env.KEYWARDEN_HOME ?? DEFAULT_STATE_DIR;

/** Where the local runtime keeps its configuration (mode 0600: it holds the dev token and HMAC key). */
export const localConfigFile = (dir = stateDir()): string => join(dir, 'config.json');

/** Who is acting, as recorded in the audit trail. */
export const actor = (): string => `cli:${localUser()}`;

/**
 * The configuration the command runs with: the AWS account named by the
 * environment when `KEYWARDEN_TABLE` is set, otherwise the running local stack.
 */
export function loadConfig(): RuntimeConfig {
  const env = process.env;
  if (env.KEYWARDEN_TABLE) {
    const missing = ['AWS_REGION', 'KEYWARDEN_FINGERPRINT_KEY'].filter((name) => !env[name]);
    if (missing.length) {
      throw new KeywardenError(
        `KEYWARDEN_TABLE is set, so keywarden talks to AWS, but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set; set them or unset KEYWARDEN_TABLE to use the local stack`,
      );
    }
    return RuntimeConfigSchema.parse({
      aws: { region: env.AWS_REGION },
      tableName: env.KEYWARDEN_TABLE,
      reportBucket: env.KEYWARDEN_REPORT_BUCKET,
      fingerprintKey: env.KEYWARDEN_FINGERPRINT_KEY,
      staleAfter: env.KEYWARDEN_STALE_AFTER,
      discovery: {
        iamPathPrefix: env.KEYWARDEN_IAM_PATH_PREFIX,
        secretNamePrefix: env.KEYWARDEN_SECRET_NAME_PREFIX,
      },
      vault: env.VAULT_ADDR && env.VAULT_TOKEN ? { addr: env.VAULT_ADDR, token: env.VAULT_TOKEN } : undefined,
      rotationConcurrency: env.KEYWARDEN_ROTATION_CONCURRENCY,
    });
  }
  const file = localConfigFile();
  if (!existsSync(file)) {
    throw new KeywardenError(
      `no local stack is running (${file} is missing): run \`keywarden dev up\` first, or set KEYWARDEN_TABLE to use AWS`,
    );
  }
  return RuntimeConfigSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}
