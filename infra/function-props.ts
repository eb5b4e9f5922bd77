/**
 * The props every function construct shares (Discovery, Rotation, Revocation, BreakGlass, Api),
 * and what the three constructs that reach pipeline credentials in AWS (Discovery, Rotation,
 * Revocation) compute from them before anything else.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { NagPackSuppression } from 'cdk-nag';
import type { Construct } from 'constructs';
import { accountKeysArn, iamRolesArn, iamUsersArn, prefixedSecretsArn } from './arns.ts';
import type { ServiceSecrets } from './constructs/service-secrets.ts';
import type { StateStore } from './constructs/state-store.ts';
import { InfraConfigError } from './errors.ts';
import { DEFAULT_LOG_RETENTION, serviceEnvironment } from './lambda-function.ts';
import { iam5ResourceFinding } from './nag.ts';
import { validateIamPathPrefix, validateSecretNamePrefix, validateVaultAddr } from './settings.ts';

/** The props of every construct made of keywarden functions. */
export interface KeywardenFunctionsProps {
  /**
   * keywarden's state table (inventory, credential versions, locks, grants, campaigns, audit
   * chain); each function is granted only the access it needs.
   */
  readonly stateStore: StateStore;
  /**
   * keywarden's own secrets: every function reads the Vault token and the fingerprint HMAC key,
   * the API also the Slack signing secret.
   */
  readonly secrets: ServiceSecrets;
  /**
   * Vault/OpenBao address (`https://…`, no credentials in it). Empty or absent: Vault is not used,
   * so discovery skips Vault, Vault identities cannot be rotated, Vault targets of a campaign
   * fail (saying so), the API refuses Vault grants and break-glass cannot end them early.
   *
   * @default ''
   */
  readonly vaultAddr?: string | undefined;
  /**
   * How long the functions' logs are kept, and the construct's own log groups (the API's access
   * logs, the revocation state machine's logs).
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays | undefined;
}

/** The props of the constructs whose functions reach pipeline credentials in AWS. */
export interface PipelineCredentialsProps extends KeywardenFunctionsProps {
  /**
   * IAM path of the users whose access keys (and, for revocation, the roles whose sessions) the
   * functions may reach; starts and ends with `/`. Prefer a dedicated path such as `/ci/`.
   *
   * @default '/ci/' (the root path is refused)
   */
  readonly iamPathPrefix?: string | undefined;
  /**
   * Name prefix of the Secrets Manager secrets the functions may reach (discovery reads them to
   * fingerprint, rotation rotates, writes and creates them, revocation revokes their versions).
   * Must not be empty, which would cover every secret in the account; rotation also refuses one
   * that overlaps keywarden's own secrets (`ServiceSecrets.namePrefix`).
   *
   * @default 'ci/'
   */
  readonly secretNamePrefix?: string | undefined;
}

/** {@link PipelineCredentialsProps} validated, with the ARN patterns the functions' policies use. */
export interface PipelineScope {
  readonly iamPathPrefix: string;
  readonly secretNamePrefix: string;
  readonly logRetention: logs.RetentionDays;
  /** Every IAM user under {@link iamPathPrefix}. */
  readonly usersArn: string;
  /** Every IAM role under {@link iamPathPrefix}. */
  readonly rolesArn: string;
  /** Every secret under {@link secretNamePrefix} in this account and region. */
  readonly secretsArn: string;
  /** Every KMS key of this account and region (granted only through Secrets Manager). */
  readonly keysArn: string;
  /** The settings every function of the construct reads, the state table first. */
  readonly environment: {
    readonly table: string;
    readonly iamPathPrefix: string;
    readonly secretNamePrefix: string;
  } & Omit<ReturnType<typeof serviceEnvironment>, 'table'>;
}

/** How a construct takes {@link PipelineCredentialsProps}. */
export interface PipelineScopeOptions {
  /** The IAM path when props give none. */
  readonly defaultIamPathPrefix: string;
  /** Set when the root path `/` is refused: the error message, saying why. */
  readonly rootPathRefusal?: string;
}

/**
 * Validates the shared props (Vault address, IAM path, secret name prefix, in that order) and
 * derives what the construct's functions and policies use. Creates no construct, so a bad value
 * fails before anything is bundled.
 *
 * @param owner the construct's name, which starts every error message
 */
export function pipelineScope(
  scope: Construct,
  owner: string,
  props: PipelineCredentialsProps,
  options: PipelineScopeOptions,
): PipelineScope {
  const vaultAddr = validateVaultAddr(owner, props.vaultAddr);
  const iamPathPrefix = validateIamPathPrefix(owner, props.iamPathPrefix ?? options.defaultIamPathPrefix);
  if (options.rootPathRefusal !== undefined && iamPathPrefix === '/') {
    throw new InfraConfigError(options.rootPathRefusal);
  }
  const secretNamePrefix = validateSecretNamePrefix(owner, props.secretNamePrefix ?? 'ci/');
  const { stateStore, secrets } = props;
  const { table, ...service } = serviceEnvironment({ stateStore, secrets, vaultAddr });
  return {
    iamPathPrefix,
    secretNamePrefix,
    logRetention: props.logRetention ?? DEFAULT_LOG_RETENTION,
    usersArn: iamUsersArn(scope, iamPathPrefix),
    rolesArn: iamRolesArn(scope, iamPathPrefix),
    secretsArn: prefixedSecretsArn(scope, secretNamePrefix),
    keysArn: accountKeysArn(scope),
    environment: { table, iamPathPrefix, secretNamePrefix, ...service },
  };
}

/** What rotating a secret takes (and re-issuing one): read current, put pending, move stages, list versions. */
export const SECRET_VERSION_ACTIONS = [
  'secretsmanager:DescribeSecret',
  'secretsmanager:GetSecretValue',
  'secretsmanager:PutSecretValue',
  'secretsmanager:UpdateSecretVersionStage',
  'secretsmanager:ListSecretVersionIds',
] as const;

/**
 * Lets `role` use the KMS keys of the secrets under the prefix, which may be customer-managed
 * keys unknown at deploy time: only through Secrets Manager, and only for a secret under the
 * prefix (Secrets Manager puts the secret's ARN in the encryption context of every data key).
 *
 * @returns the `AwsSolutions-IAM5` suppression that names this grant, for the role's list
 */
export function grantPrefixedSecretKeys(
  scope: Construct,
  role: iam.Role,
  pipeline: PipelineScope,
  statement: { readonly sid: string; readonly actions: readonly string[] },
): NagPackSuppression {
  const stack = Stack.of(scope);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: statement.sid,
      actions: [...statement.actions],
      resources: [pipeline.keysArn],
      conditions: {
        StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.${stack.urlSuffix}` },
        StringLike: { 'kms:EncryptionContext:SecretARN': pipeline.secretsArn },
      },
    }),
  );
  const allowed = `${statement.actions.join(' and ')} ${statement.actions.length === 1 ? 'is' : 'are'}`;
  return {
    id: 'AwsSolutions-IAM5',
    reason: `Keys protecting the '${pipeline.secretNamePrefix}*' secrets are not known at deploy time. ${allowed} limited to this account's keys, only through Secrets Manager (kms:ViaService) and only for secrets under the prefix (kms:EncryptionContext:SecretARN).`,
    appliesTo: [iam5ResourceFinding(scope, pipeline.keysArn)],
  };
}

/**
 * Lets `role` list what is live of the identities a campaign selects, as planning does before it
 * stores the plan (so a key or version the store never recorded is revoked too; without these
 * the plan carries a failed listing target instead): the access keys of users under the IAM path
 * and, unless `secrets` is false, the versions of secrets under the name prefix — metadata only,
 * never a secret value, no write.
 *
 * @param planned what the campaign is, for the suppressions' reasons ("a containment campaign")
 * @returns the `AwsSolutions-IAM5` suppressions that name these grants, for the role's list
 */
export function grantCampaignListing(
  scope: Construct,
  role: iam.Role,
  pipeline: PipelineScope,
  { planned, secrets = true }: { readonly planned: string; readonly secrets?: boolean },
): NagPackSuppression[] {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'ListAccessKeysUnderPath',
      actions: ['iam:ListAccessKeys'],
      resources: [pipeline.usersArn],
    }),
  );
  const suppressions: NagPackSuppression[] = [
    {
      id: 'AwsSolutions-IAM5',
      reason: `IAM user names come from the inventory, not known at deploy time. Planning ${planned} lists the selected identities' access keys (iam:ListAccessKeys: ids and status, never a secret) of users under the IAM path '${pipeline.iamPathPrefix}' only, in this account. No IAM write: the revocation functions revoke.`,
      appliesTo: [iam5ResourceFinding(scope, pipeline.usersArn)],
    },
  ];
  if (!secrets) return suppressions;
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'ListPrefixedSecretVersions',
      actions: ['secretsmanager:ListSecretVersionIds', 'secretsmanager:DescribeSecret'],
      resources: [pipeline.secretsArn],
    }),
  );
  suppressions.push({
    id: 'AwsSolutions-IAM5',
    reason: `Secret names come from the inventory, not known at deploy time. Planning ${planned} lists the selected secrets' versions (ListSecretVersionIds, DescribeSecret: metadata, never a value) of secrets under the name prefix '${pipeline.secretNamePrefix}' only. No secret value is read or written here.`,
    appliesTo: [iam5ResourceFinding(scope, pipeline.secretsArn)],
  });
  return suppressions;
}
