/**
 * Discovery of IAM users' access keys and IAM roles under one path prefix: what
 * exists in IAM, as `DiscoveredCredential`s keyed the way resource-key.ts keys
 * declared identities; declared users and roles outside the prefix are looked up
 * directly (GetUser, GetRole). Reads only; IAM never returns a key's secret, so no
 * credential here carries a fingerprint. A declared user or role IAM refuses to show
 * (AccessDenied) is reported as a refused lookup naming the permission, not as missing,
 * and the run goes on; a refusal while reading what the prefix listed fails the run.
 */
import {
  type AccessKeyMetadata,
  GetAccessKeyLastUsedCommand,
  GetRoleCommand,
  GetUserCommand,
  type IAMClient,
  paginateListAccessKeys,
  paginateListRoles,
  paginateListUsers,
  type User,
} from '@aws-sdk/client-iam';
import pLimit, { type LimitFunction } from 'p-limit';
import { deniedLookup } from '../../core/denied-lookup.ts';
import type { DiscoveredCredential } from '../../core/discovery.ts';
import { ValidationError } from '../../core/errors.ts';
import { AccessDeniedError, awsCallFailure } from './access-denied.ts';
import { awsErrorName, awsFailure } from './clients.ts';

/** Options of {@link IamDiscovery}. */
export interface IamDiscoveryProps {
  iam: IAMClient;
  /** IAM path prefix owned by keywarden's scope, such as `/ci/`; must start and end with `/`. */
  pathPrefix: string;
  /** IAM calls in flight at once for this source (default 8): IAM throttles per API. */
  concurrency?: number;
}

/** IAM users and roles declared in the inventory, by name: looked up directly when the listing misses them. */
export interface IamDeclared {
  userNames?: readonly string[];
  roleNames?: readonly string[];
}

/** Default bound on concurrent IAM calls; low enough to stay under IAM's per-API buckets. */
export const DEFAULT_IAM_CONCURRENCY = 8;

/**
 * Lists IAM users (one credential per access key) and IAM roles (one credential
 * per role) under a path prefix.
 */
export class IamDiscovery {
  readonly #iam: IAMClient;
  readonly #pathPrefix: string;
  readonly #limit: LimitFunction;

  constructor(props: IamDiscoveryProps) {
    // A prefix without the trailing slash would also match siblings: `/ci` matches `/ci-other/`.
    if (!/^\/(.*\/)?$/.test(props.pathPrefix)) {
      throw new ValidationError(
        `expected an IAM path prefix that starts and ends with '/', such as '/ci/', got ${JSON.stringify(props.pathPrefix)}`,
      );
    }
    const concurrency = props.concurrency ?? DEFAULT_IAM_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ValidationError(`expected an IAM concurrency of at least 1, got ${concurrency}`);
    }
    this.#iam = props.iam;
    this.#pathPrefix = props.pathPrefix;
    this.#limit = pLimit(concurrency);
  }

  /**
   * Every access key of every user, and every role, under the path prefix; then each declared
   * user and role the listing did not find, looked up directly wherever its path (a refused
   * lookup stands for one IAM would not show). Sorted by key then handle.
   */
  async discover(declared: IamDeclared = {}): Promise<DiscoveredCredential[]> {
    const [keys, roles] = await Promise.all([this.#accessKeys(), this.#roles()]);
    const seen = new Set([...keys, ...roles].map((credential) => credential.key));
    const users = [...new Set(declared.userNames)].filter((name) => !seen.has(`aws-iam-user:${name}`));
    const roleNames = [...new Set(declared.roleNames)].filter((name) => !seen.has(`aws-role:${name}`));
    const [declaredKeys, declaredRoles] = await Promise.all([
      Promise.all(users.map((name) => this.#declaredUser(name))),
      Promise.all(roleNames.map((name) => this.#declaredRole(name))),
    ]);
    return [
      ...keys,
      ...roles,
      ...declaredKeys.flat(),
      ...declaredRoles.filter((role) => role !== undefined),
    ].sort((a, b) => a.key.localeCompare(b.key) || a.handle.localeCompare(b.handle));
  }

  async #accessKeys(): Promise<DiscoveredCredential[]> {
    const users = await this.#collect(`listing IAM users under path ${this.#pathPrefix}`, () =>
      allPages(
        paginateListUsers({ client: this.#iam }, { PathPrefix: this.#pathPrefix }),
        (page) => page.Users,
      ),
    );
    const perUser = await Promise.all(users.map((user) => this.#userKeys(user)));
    return perUser.flat();
  }

  /**
   * A declared user, wherever its path: GetUser, then its keys; nothing when it does not exist;
   * one refused lookup when IAM refuses any of those reads (its keys cannot all be seen).
   */
  async #declaredUser(userName: string): Promise<DiscoveredCredential[]> {
    try {
      const user = await this.#limited(
        'iam:GetUser',
        `reading declared IAM user ${userName}`,
        async () => (await this.#iam.send(new GetUserCommand({ UserName: userName }))).User,
      );
      return user ? await this.#userKeys(user) : [];
    } catch (error) {
      if (!(error instanceof AccessDeniedError)) throw error;
      const { permission, answer } = error;
      return [
        deniedLookup({
          key: `aws-iam-user:${userName}`,
          kind: 'aws-iam-access-key',
          handle: userName,
          label: `iam user ${userName}`,
          permission,
          answer,
        }),
      ];
    }
  }

  /** A declared role, wherever its path; a refused lookup when IAM refuses GetRole. */
  async #declaredRole(roleName: string): Promise<DiscoveredCredential | undefined> {
    try {
      return await this.#role(roleName);
    } catch (error) {
      if (!(error instanceof AccessDeniedError)) throw error;
      const { permission, answer } = error;
      return deniedLookup({
        key: `aws-role:${roleName}`,
        kind: 'aws-role-session',
        handle: roleName,
        label: `iam role ${roleName}`,
        permission,
        answer,
      });
    }
  }

  async #userKeys(user: User): Promise<DiscoveredCredential[]> {
    // The user's listing takes a slot, then releases it before its keys queue for theirs:
    // a task never waits on the limiter while holding a slot, so the limiter cannot deadlock.
    const keys = await this.#limited(
      'iam:ListAccessKeys',
      `listing the access keys of IAM user ${user.UserName}`,
      async () => {
        const found: AccessKeyMetadata[] = [];
        for await (const page of paginateListAccessKeys({ client: this.#iam }, { UserName: user.UserName })) {
          found.push(...(page.AccessKeyMetadata ?? []));
        }
        return found;
      },
    );
    const described = await Promise.all((keys ?? []).map((key) => this.#accessKey(user, key)));
    return described.filter((credential) => credential !== undefined);
  }

  async #accessKey(user: User, key: AccessKeyMetadata): Promise<DiscoveredCredential | undefined> {
    const userName = user.UserName ?? key.UserName ?? '';
    const accessKeyId = key.AccessKeyId ?? '';
    const lastUsed = await this.#limited(
      'iam:GetAccessKeyLastUsed',
      `reading when access key ${accessKeyId} of IAM user ${userName} was last used`,
      async () =>
        (await this.#iam.send(new GetAccessKeyLastUsedCommand({ AccessKeyId: accessKeyId })))
          .AccessKeyLastUsed,
    );
    if (lastUsed === undefined) return undefined; // deleted since it was listed
    // IAM answers `N/A` for the service and region of a key that was never used.
    const service = lastUsed.ServiceName && lastUsed.ServiceName !== 'N/A' ? lastUsed.ServiceName : undefined;
    return {
      key: `aws-iam-user:${userName}`,
      kind: 'aws-iam-access-key',
      handle: accessKeyId,
      label: `iam user ${userName} key ${accessKeyId}`,
      status: key.Status === 'Active' ? 'active' : 'inactive',
      ...(key.CreateDate && { createdAt: key.CreateDate.toISOString() }),
      ...(lastUsed.LastUsedDate && { lastUsedAt: lastUsed.LastUsedDate.toISOString() }),
      details: { userName, ...(service === undefined ? {} : { service }) },
    };
  }

  async #roles(): Promise<DiscoveredCredential[]> {
    const roles = await this.#collect(`listing IAM roles under path ${this.#pathPrefix}`, () =>
      allPages(
        paginateListRoles({ client: this.#iam }, { PathPrefix: this.#pathPrefix }),
        (page) => page.Roles,
      ),
    );
    const described = await Promise.all(roles.map((role) => this.#role(role.RoleName ?? '')));
    return described.filter((credential) => credential !== undefined);
  }

  /** One role, listed or declared: GetRole; undefined when it does not exist (any more). */
  async #role(roleName: string): Promise<DiscoveredCredential | undefined> {
    // ListRoles never includes RoleLastUsed (in AWS as in moto); only GetRole does.
    const role = await this.#limited(
      'iam:GetRole',
      `reading IAM role ${roleName}`,
      async () => (await this.#iam.send(new GetRoleCommand({ RoleName: roleName }))).Role,
    );
    if (role === undefined) return undefined; // deleted since it was listed, or never existed
    return {
      key: `aws-role:${role.RoleName}`,
      kind: 'aws-role-session',
      handle: role.Arn ?? '',
      label: `iam role ${role.RoleName}`,
      status: 'active',
      ...(role.CreateDate && { createdAt: role.CreateDate.toISOString() }),
      ...(role.RoleLastUsed?.LastUsedDate && { lastUsedAt: role.RoleLastUsed.LastUsedDate.toISOString() }),
      details: { roleName: role.RoleName ?? '', path: role.Path ?? this.#pathPrefix },
    };
  }

  /** Runs one listing under the limiter; any failure fails the run, wrapped with what was listed. */
  async #collect<T>(doing: string, list: () => Promise<T>): Promise<T> {
    try {
      return await this.#limit(list);
    } catch (error) {
      throw awsFailure(doing, error);
    }
  }

  /**
   * Runs one call about a single user, key or role under the limiter. That thing may
   * have been deleted between the listing and this call, or be declared but never made:
   * IAM then answers NoSuchEntity, and the result is `undefined` (it does not exist, so
   * it is not reported, and a declared one is `missing`). A refusal of `permission` throws
   * an {@link AccessDeniedError}; any other failure a KeywardenError saying what was being done.
   */
  async #limited<T>(permission: string, doing: string, call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await this.#limit(call);
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchEntityException') return undefined;
      throw awsCallFailure(permission, doing, error);
    }
  }
}

/** Every item of every page of a paginated listing. */
async function allPages<P, T>(pages: AsyncIterable<P>, items: (page: P) => T[] | undefined): Promise<T[]> {
  const found: T[] = [];
  for await (const page of pages) found.push(...(items(page) ?? []));
  return found;
}
