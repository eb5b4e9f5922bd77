/**
 * The AWS side of discovery: IAM access keys and roles under one path prefix, and
 * Secrets Manager secrets under one name prefix, as one `DiscoverySource`; declared
 * users, roles (break-glass ones too) and secrets outside them are looked up directly.
 */
import type { IAMClient } from '@aws-sdk/client-iam';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { DiscoveredCredential, DiscoveryHints } from '../../core/discovery.ts';
import type { IdentityOfKind } from '../../core/identity.ts';
import { roleNameOf } from '../../core/kinds.ts';
import type { DiscoverySource } from '../../core/ports.ts';
import type { Fingerprinter } from '../crypto.ts';
import { IamDiscovery } from './iam-discovery.ts';
import { SecretsDiscovery } from './secrets-discovery.ts';

/** Options of {@link AwsDiscovery}; the clients usually come from `awsClients()`. */
export interface AwsDiscoveryProps {
  iam: IAMClient;
  secrets: SecretsManagerClient;
  /** IAM path prefix of keywarden's scope, such as `/ci/`. */
  iamPathPrefix: string;
  /** Secrets Manager name prefix of keywarden's scope, such as `ci/`. */
  secretNamePrefix: string;
  fingerprinter: Fingerprinter;
  /** Calls in flight at once, per service (default 8 each). */
  concurrency?: number;
}

/**
 * Discovers every IAM access key, IAM role and Secrets Manager secret in scope.
 * IAM and Secrets Manager are listed at the same time: they throttle on separate
 * buckets, so neither slows the other.
 */
export class AwsDiscovery implements DiscoverySource {
  readonly name = 'aws';
  readonly #iam: IamDiscovery;
  readonly #secrets: SecretsDiscovery;

  constructor(props: AwsDiscoveryProps) {
    const concurrency = props.concurrency === undefined ? {} : { concurrency: props.concurrency };
    this.#iam = new IamDiscovery({ iam: props.iam, pathPrefix: props.iamPathPrefix, ...concurrency });
    this.#secrets = new SecretsDiscovery({
      secrets: props.secrets,
      namePrefix: props.secretNamePrefix,
      fingerprinter: props.fingerprinter,
      ...concurrency,
    });
  }

  /**
   * Everything in scope, and every declared IAM user, IAM role (an aws-role-session's, a
   * break-glass role's) and secret, IAM first then secrets. Fails as a whole if either side
   * fails: a partial picture would report declared credentials as missing. A declared resource
   * AWS refuses to show (AccessDenied on its direct lookup) is not a failure: it comes back as
   * a refused lookup naming the permission (core/denied-lookup.ts), and everything else with
   * it. Lease prefixes concern Vault only.
   */
  async discover(hints: DiscoveryHints): Promise<DiscoveredCredential[]> {
    const userNames: string[] = [];
    const roleNames = hints.breakglassRoleArns.map(roleNameOf);
    const secrets: IdentityOfKind<'aws-secret'>[] = [];
    for (const identity of hints.identities) {
      if (identity.kind === 'aws-iam-access-key') userNames.push(identity.scope.userName);
      if (identity.kind === 'aws-role-session') roleNames.push(roleNameOf(identity.scope.roleArn));
      if (identity.kind === 'aws-secret') secrets.push(identity);
    }
    // allSettled, not all: a failure of one side must not leave the other still running unobserved.
    const [iam, secretsFound] = await Promise.allSettled([
      this.#iam.discover({ userNames, roleNames }),
      this.#secrets.discover({ secrets }),
    ]);
    if (iam.status === 'rejected') throw iam.reason;
    if (secretsFound.status === 'rejected') throw secretsFound.reason;
    return [...iam.value, ...secretsFound.value];
  }
}
