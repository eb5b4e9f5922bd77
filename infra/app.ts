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
import { KEYWARDEN_ENV } from '../functions/handlers/env.ts';
import { InfraConfigError } from './errors.ts';
import { KeywardenStack } from './keywarden-stack.ts';

const app = new App();

/** The settings a deployment may give, each as `keywarden:<key>` or under the functions' variable name. */
type DeploySetting =
  | 'vaultAddr'
  | 'iamPathPrefix'
  | 'secretNamePrefix'
  | 'staleAfterDays'
  | 'rotationConcurrency';

/** How an error names a setting: both ways of giving it. */
const settingName = (key: DeploySetting): string => `keywarden:${key} / ${KEYWARDEN_ENV[key]}`;

/** A setting from cdk context or, failing that, the environment; `undefined` when neither has it. */
function setting(key: DeploySetting): string | undefined {
  const fromContext: unknown = app.node.tryGetContext(`keywarden:${key}`);
  if (fromContext !== undefined) return String(fromContext);
  return process.env[KEYWARDEN_ENV[key]];
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
  vaultAddr: setting('vaultAddr'),
  iamPathPrefix: setting('iamPathPrefix'),
  secretNamePrefix: setting('secretNamePrefix'),
  staleAfterDays: optionalWholeNumber(settingName('staleAfterDays'), setting('staleAfterDays')),
  rotationConcurrency: optionalWholeNumber(
    settingName('rotationConcurrency'),
    setting('rotationConcurrency'),
  ),
});

// Every finding of the AWS Solutions pack is an error or warning at synth unless suppressed
// with a reason next to the resource it concerns.
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
