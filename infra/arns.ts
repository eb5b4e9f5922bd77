import { ArnFormat, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * ARN patterns keywarden's policies are scoped to. Built from validated settings only (see
 * `settings.ts`), so the one `*` in each is the trailing one written here.
 */

/** Every IAM user under `iamPathPrefix` (`/` or `/ci/`): `arn:…:iam::<account>:user/ci/*`. */
export function iamUsersArn(scope: IConstruct, iamPathPrefix: string): string {
  return Stack.of(scope).formatArn({
    service: 'iam',
    region: '',
    resource: 'user',
    resourceName: `${iamPathPrefix.slice(1)}*`,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}

/** Every IAM role under `iamPathPrefix`: `arn:…:iam::<account>:role/ci/*`. */
export function iamRolesArn(scope: IConstruct, iamPathPrefix: string): string {
  return Stack.of(scope).formatArn({
    service: 'iam',
    region: '',
    resource: 'role',
    resourceName: `${iamPathPrefix.slice(1)}*`,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}

/** Every secret in this account and region whose name starts with `namePrefix`. */
export function prefixedSecretsArn(scope: IConstruct, namePrefix: string): string {
  return Stack.of(scope).formatArn({
    service: 'secretsmanager',
    resource: 'secret',
    resourceName: `${namePrefix}*`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/**
 * Every KMS key of this account and region. Only for grants that a `kms:ViaService` and a
 * `kms:EncryptionContext:…` condition narrow to one service and one set of resources.
 */
export function accountKeysArn(scope: IConstruct): string {
  return Stack.of(scope).formatArn({
    service: 'kms',
    resource: 'key',
    resourceName: '*',
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}
