/**
 * The keywarden CDK app (`cdk.json`: `npx tsx infra/app.ts`).
 *
 * Settings come from cdk context (`-c keywarden:vaultAddr=…`) first, then from the
 * environment (`KEYWARDEN_VAULT_ADDR=…`), then from the constructs' defaults. The discovery and
 * rotation schedules are context only: cdk.json sets `keywarden:discoverySchedule` and
 * `keywarden:rotationSchedule`, `-c` overrides them.
 * Nothing here looks anything up in AWS, so `cdk synth` works offline and without credentials;
 * the stack is bound to an account and region only when the CLI provides them.
 */
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { InfraConfigError } from './errors.ts';
import { KeywardenStack } from './keywarden-stack.ts';

const app = new App();

/** A setting from cdk context or, failing that, the environment; `undefined` when neither has it. */
function setting(contextKey: string, envKey: string): string | undefined {
  const fromContext: unknown = app.node.tryGetContext(contextKey);
  if (fromContext !== undefined) return String(fromContext);
  return process.env[envKey];
}

function optionalWholeNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) {
    throw new InfraConfigError(`${name} must be a whole number, received '${value}'.`);
  }
  return parsed;
}

const account = process.env.CDK_DEFAULT_ACCOUNT;
const region = process.env.CDK_DEFAULT_REGION;

new KeywardenStack(app, 'Keywarden', {
  description: 'keywarden: rotates, expires and revokes CI/CD pipeline credentials in Vault/OpenBao and AWS',
  ...(account !== undefined || region !== undefined
    ? { env: { ...(account !== undefined ? { account } : {}), ...(region !== undefined ? { region } : {}) } }
    : {}),
  vaultAddr: setting('keywarden:vaultAddr', 'KEYWARDEN_VAULT_ADDR'),
  iamPathPrefix: setting('keywarden:iamPathPrefix', 'KEYWARDEN_IAM_PATH_PREFIX'),
  secretNamePrefix: setting('keywarden:secretNamePrefix', 'KEYWARDEN_SECRET_NAME_PREFIX'),
  staleAfterDays: optionalWholeNumber(
    'keywarden:staleAfterDays / KEYWARDEN_STALE_AFTER_DAYS',
    setting('keywarden:staleAfterDays', 'KEYWARDEN_STALE_AFTER_DAYS'),
  ),
  rotationConcurrency: optionalWholeNumber(
    'keywarden:rotationConcurrency / KEYWARDEN_ROTATION_CONCURRENCY',
    setting('keywarden:rotationConcurrency', 'KEYWARDEN_ROTATION_CONCURRENCY'),
  ),
});

// Every finding of the AWS Solutions pack is an error or warning at synth unless suppressed
// with a reason next to the resource it concerns.
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
