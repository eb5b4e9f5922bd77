/**
 * Break-glass access to Vault / OpenBao: a {@link GrantIssuer} for `vault-policies` targets.
 *
 * Each grant gets one orphan token (revoking keywarden's own token never cuts it, and
 * revoking it cuts nothing else) that carries the grant's end itself (principle 2):
 * `ttl` = `explicit_max_ttl` = the whole seconds left until the grant's end, rounded
 * down so it never outlives the grant, and not renewable, so nobody can stretch it.
 *
 * The token never reaches keywarden in clear: it is created response-wrapped, so what
 * keywarden holds and hands on is a single-use wrapping token that lives a couple of
 * minutes. The requester's CLI unwraps it (./unwrap.ts); if anyone else unwrapped it
 * first, the requester's unwrap fails loudly, which is the tamper signal response
 * wrapping exists for. keywarden records only the wrapped token's accessor, which is
 * all it needs to end the token early.
 */
import { ValidationError } from '../../core/errors.ts';
import { type BreakglassTarget, targetOfType } from '../../core/grant.ts';
import type { GrantIssueRequest, GrantIssuer, IssuedGrantCredential } from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { wholeNumberOption } from '../options.ts';
import { type VaultClient, VaultError } from './client.ts';

/** Token meta key naming the grant that a break-glass token was issued for. */
export const GRANT_META_KEY = 'keywarden_grant';

/** How long the wrapping token lives unless told otherwise: time for the CLI to fetch and unwrap it. */
export const DEFAULT_WRAP_TTL_SECONDS = 120;

/** What {@link VaultGrantIssuer} needs. */
export interface VaultGrantIssuerProps {
  /** keywarden's own client: creates and revokes the grant tokens. */
  client: VaultClient;
  /** Seconds the single-use wrapping token lives; default {@link DEFAULT_WRAP_TTL_SECONDS}. */
  wrapTtlSeconds?: number;
}

/** The display name of a grant's token; Vault shows it as `token-breakglass-<grantId>`. */
export const grantDisplayName = (grantId: string): string => `breakglass-${grantId}`;

/** {@link GrantIssuer} for `vault-policies`; see the module comment. */
export class VaultGrantIssuer implements GrantIssuer {
  readonly #client: VaultClient;
  readonly #wrapTtlSeconds: number;

  constructor(props: VaultGrantIssuerProps) {
    const wrapTtl = wholeNumberOption(
      { owner: 'VaultGrantIssuer', option: 'wrapTtlSeconds' },
      props.wrapTtlSeconds,
      DEFAULT_WRAP_TTL_SECONDS,
    );
    this.#client = props.client;
    this.#wrapTtlSeconds = wrapTtl;
  }

  /**
   * Creates the grant's orphan token, response-wrapped. Returns the wrapping token and
   * the wrapped token's accessor; `expiresAt` is when Vault ends the token: the grant's
   * end rounded down to the whole second, counted from when Vault created it.
   */
  async issue(request: GrantIssueRequest): Promise<IssuedGrantCredential> {
    const target = targetOfType(request.target, 'vault-policies', {
      issuer: 'VaultGrantIssuer',
      doing: `issuing grant ${request.grantId}`,
    });
    // Rounded down: a token that outlived its grant by a fraction of a second would break the promise.
    const seconds = Math.floor((request.expiresAt.getTime() - request.now.getTime()) / 1_000);
    if (seconds < 1) {
      // A ttl of 0 would mean "the default TTL" to Vault: far longer, never what is meant.
      throw new ValidationError(
        `grant ${request.grantId}: expected an end at least 1 s after now (${request.now.toISOString()}), got ${request.expiresAt.toISOString()}; the grant has ended, request a new one`,
      );
    }
    const path = 'auth/token/create-orphan';
    const wrap = await this.#client.writeWrapped(
      path,
      {
        policies: target.policies,
        no_default_policy: false,
        renewable: false,
        ttl: `${seconds}s`,
        explicit_max_ttl: `${seconds}s`,
        display_name: grantDisplayName(request.grantId),
        meta: { [GRANT_META_KEY]: request.grantId },
      },
      this.#wrapTtlSeconds,
    );
    if (!wrap.wrapped_accessor) {
      throw new VaultError(
        `Vault write ${path} answered without wrapped_accessor; expected the accessor of the wrapped token (a Vault/OpenBao server of a supported version)`,
        { method: 'write', path },
      );
    }
    // Vault creates the token and its wrapping in one request: the wrapping's creation
    // time is the token's, to well within a millisecond. The token's real end is reported,
    // which is the grant's end give or take the request's latency (the rounding down above
    // makes up for up to a second of it).
    const created = Date.parse(wrap.creation_time);
    const createdAt = Number.isNaN(created) ? request.now.getTime() : created;
    const tokenEnd = createdAt + seconds * 1_000;
    return {
      type: 'vault-wrapped-token',
      handle: wrap.wrapped_accessor,
      expiresAt: new Date(tokenEnd).toISOString(),
      wrappingToken: new SecretValue(wrap.token),
      wrapExpiresAt: new Date(createdAt + wrap.ttl * 1_000).toISOString(),
    };
  }

  /**
   * Revokes each token by accessor. A token that is already gone (revoked, expired, or
   * never unwrapped and since expired) counts as ended: OpenBao answers 200 with the
   * warning "No token found with this accessor", Vault 400 "invalid accessor"
   * ({@link VaultClient.revokeAccessor} handles both).
   */
  async revoke(request: {
    grantId: string;
    target: BreakglassTarget;
    handles: readonly string[];
  }): Promise<void> {
    targetOfType(request.target, 'vault-policies', {
      issuer: 'VaultGrantIssuer',
      doing: `revoking grant ${request.grantId}`,
    });
    for (const handle of request.handles) {
      await this.#client.revokeAccessor(handle);
    }
  }
}
