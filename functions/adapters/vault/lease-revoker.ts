/**
 * Ends Vault / OpenBao leases (dynamic secrets, login tokens) by prefix or by id: the
 * vault-lease targets of a revocation campaign, which have no per-credential handle in
 * the inventory.
 *
 * The endpoints are `sys/leases/revoke-prefix/<prefix>` and `sys/leases/revoke`; the
 * old `sys/revoke-prefix` is gone from OpenBao (DESIGN, Known traps). Both answer 204
 * whether or not anything was there, so the outcome is read from `sys/leases/lookup`
 * first: nothing under the prefix (or an unknown lease id) is `already-revoked`.
 */

import { ValidationError } from '../../core/errors.ts';
import type { LeaseRevoker, RevokeResult } from '../../core/ports.ts';
import { trimSlashes } from '../../core/resource-key.ts';
import { type VaultClient, VaultError } from './client.ts';

export interface VaultLeaseRevokerProps {
  client: VaultClient;
}

/** Percent-encodes each segment of a lease path, keeping the slashes. */
const encodePath = (path: string): string => path.split('/').map(encodeURIComponent).join('/');

export class VaultLeaseRevoker implements LeaseRevoker {
  readonly #client: VaultClient;

  constructor(props: VaultLeaseRevokerProps) {
    this.#client = props.client;
  }

  /**
   * Revokes every lease under `prefix` (a path such as `auth/approle/login` or
   * `database/creds/ci`, matched by whole segments), synchronously: when this returns,
   * the leases and the tokens or credentials behind them are gone.
   */
  async revokePrefix(prefix: string): Promise<RevokeResult> {
    const path = trimSlashes(prefix);
    if (path === '') {
      throw new ValidationError(
        'vault-lease: expected a lease prefix such as auth/approle/login, got an empty one (it would revoke every lease in Vault)',
      );
    }
    const under = await this.#client.list(`sys/leases/lookup/${encodePath(path)}/`);
    if (under.length === 0) return { result: 'already-revoked' };
    await this.#client.write(`sys/leases/revoke-prefix/${encodePath(path)}`, {});
    return { result: 'revoked', note: `${under.length} lease(s) or folder(s) under ${path}/ revoked` };
  }

  /** Revokes one lease by its id; a lease Vault does not know (expired, revoked) is `already-revoked`. */
  async revokeLease(leaseId: string): Promise<RevokeResult> {
    try {
      await this.#client.write('sys/leases/lookup', { lease_id: leaseId });
    } catch (error) {
      if (
        error instanceof VaultError &&
        error.status === 400 &&
        error.errors.some((e) => /invalid lease/i.test(e))
      )
        return { result: 'already-revoked' };
      throw error;
    }
    await this.#client.write('sys/leases/revoke', { lease_id: leaseId });
    return { result: 'revoked' };
  }
}
