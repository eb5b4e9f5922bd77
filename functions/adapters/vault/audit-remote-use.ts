/**
 * The managed tokens' uses, with the address each came from, read from OpenBao's file audit
 * device: a `UseTrail` over `VaultAuditUsage.usesByAccessor`, which matches the device's
 * HMAC'd accessors through `sys/audit-hash/<device>` (the log never holds a clear accessor,
 * let alone a token). `request.remote_address` is the address the server saw: behind a proxy
 * or load balancer that is the proxy's, unless OpenBao's listener is told to trust
 * `X-Forwarded-For` (`x_forwarded_for_authorized_addrs`).
 */
import type { HandleUse, UseTrail, WatchedHandle } from '../../core/unexpected-use.ts';
import { VaultAuditUsage } from './audit-usage.ts';
import type { VaultClient } from './client.ts';

export interface VaultAuditRemoteUseProps {
  client: VaultClient;
  /** The audit log file the device writes. */
  logFile: string;
  /** The device's mount path. @default 'file' */
  device?: string;
}

export class VaultAuditRemoteUse implements UseTrail {
  readonly name = 'openbao-audit';
  readonly reads = ['vault-accessor', 'vault-approle-role'] as const;
  readonly #usage: VaultAuditUsage;

  constructor(props: VaultAuditRemoteUseProps) {
    this.#usage = new VaultAuditUsage(props);
  }

  /**
   * Every answered request of these accessors' tokens, and every login of these AppRole roles
   * (`<mount>/<role name>`) with its token's requests: when, what, from which address.
   */
  async usesOf(handles: readonly WatchedHandle[]): Promise<HandleUse[]> {
    const accessors = handles.filter((h) => h.kind === 'vault-accessor').map((h) => h.handle);
    const roles = handles
      .filter((h) => h.kind === 'vault-approle-role')
      .map((h) => {
        const slash = h.handle.lastIndexOf('/');
        return { mount: h.handle.slice(0, slash), roleName: h.handle.slice(slash + 1) };
      });
    // One pass over the log for both kinds.
    return (await this.#usage.uses({ accessors, roles })).map(({ accessor, role, ...use }) => ({
      handle: accessor ?? `${role?.mount}/${role?.roleName}`,
      ...use,
    }));
  }
}
