/**
 * A CI job's Vault/OpenBao token: the {@link CiVaultIssuer} of the exchange.
 *
 * Each exchange gets one orphan token (revoking keywarden's own token never cuts it, and
 * revoking it cuts nothing else) that carries its own end, as break-glass tokens do
 * (./vault-grant-issuer.ts): `ttl` = `explicit_max_ttl` = the grant's ttl, not renewable,
 * and at most `num_uses` requests. Unlike a break-glass token it is not response-wrapped:
 * the job receives it in the exchange's answer and the Action masks it at once, so a
 * wrapping token would only add a round trip to the same place.
 *
 * The token's meta names the exchange, the job and the grant, and the job's ids (run,
 * job, project…), so OpenBao's audit log and `lookup-accessor` say whose token it is
 * without keywarden's records. keywarden keeps only the accessor, which is all it needs
 * to end the token early and to find its uses in the audit log (./audit-usage.ts).
 */
import { CI_MAX_TTL_SECONDS, type CiJob, type CiVaultIssue } from '../../core/ci-policy.ts';
import { toSeconds } from '../../core/duration.ts';
import { ValidationError } from '../../core/errors.ts';
import type { CiVaultIssuer } from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import type { VaultClient } from './client.ts';

/** Token meta keys naming the exchange, the job (its correlation id) and the grant. */
export const CI_META = {
  exchange: 'keywarden_ci_exchange',
  job: 'keywarden_ci_job',
  grant: 'keywarden_ci_grant',
} as const;

/** What {@link VaultCiTokenIssuer} needs. */
export interface VaultCiTokenIssuerProps {
  /** keywarden's own client: creates and revokes the job tokens (auth/token/create-orphan, revoke-accessor). */
  client: VaultClient;
}

/** The display name of a grant's tokens; Vault shows it as `token-ci-<grant>`. */
export const ciDisplayName = (grant: string): string => `ci-${grant}`;

/**
 * The token's meta: the exchange, job and grant, then each job id as `ci_<claim>` (claim
 * names reduced to `[A-Za-z0-9_]`, so a custom issuer's `urn:…` claim still makes a plain key).
 */
export function ciTokenMeta(request: {
  exchangeId: string;
  grant: string;
  job: CiJob;
}): Record<string, string> {
  const meta: Record<string, string> = {
    [CI_META.exchange]: request.exchangeId,
    [CI_META.job]: request.job.correlationId,
    [CI_META.grant]: request.grant,
  };
  for (const [claim, value] of Object.entries(request.job.ids)) {
    meta[`ci_${claim.replace(/[^A-Za-z0-9_]/g, '_')}`] = value;
  }
  return meta;
}

/** {@link CiVaultIssuer} on Vault/OpenBao's token store; see the module comment. */
export class VaultCiTokenIssuer implements CiVaultIssuer {
  readonly #client: VaultClient;

  constructor(props: VaultCiTokenIssuerProps) {
    this.#client = props.client;
  }

  /**
   * Creates the job's orphan token. `expiresAt` is `now` plus the lifetime Vault granted
   * (`lease_duration`: the grant's ttl, or less if the mount's max TTL is lower), which is
   * the token's end to within the request's latency.
   *
   * @throws ValidationError for a ttl outside 1 s … 15 min (the inventory check's cap, kept here too).
   */
  async issue(request: {
    exchangeId: string;
    grant: string;
    vault: CiVaultIssue;
    job: CiJob;
    now: Date;
  }): Promise<{ token: SecretValue; accessor: string; expiresAt: string }> {
    const { grant, vault, now } = request;
    const seconds = toSeconds(vault.ttl);
    if (seconds < 1 || seconds > CI_MAX_TTL_SECONDS) {
      throw new ValidationError(
        `CI grant ${grant}: expected a Vault token ttl of 1s to 15m, got ${vault.ttl}; shorten the grant's vault.ttl`,
      );
    }
    const created = await this.#client.createToken(
      {
        policies: [...vault.policies],
        // Exactly the grant's policies: `default` (lookup-self, renew-self…) only when declared.
        no_default_policy: true,
        renewable: false,
        ttl: `${seconds}s`,
        explicit_max_ttl: `${seconds}s`,
        num_uses: vault.numUses,
        display_name: ciDisplayName(grant),
        meta: ciTokenMeta(request),
        // A service token: batch tokens have no accessor and cannot be revoked early.
        type: 'service',
      },
      { orphan: true },
    );
    return {
      token: new SecretValue(created.client_token),
      accessor: created.accessor,
      expiresAt: new Date(now.getTime() + created.lease_duration * 1_000).toISOString(),
    };
  }

  /**
   * Revokes the token by accessor. A token already gone (revoked, expired, used up) is
   * `already-revoked`: OpenBao answers 200 with a warning, Vault 400 `invalid accessor`
   * ({@link VaultClient.revokeAccessor} reads both).
   */
  revoke(accessor: string): Promise<'revoked' | 'already-revoked'> {
    return this.#client.revokeAccessor(accessor);
  }
}
