/**
 * What a break-glass Vault token was used for, read from OpenBao's file audit device.
 *
 * The audit device HMACs sensitive fields, the token accessor among them, with a salt only
 * the server knows; `sys/audit-hash/<device>` computes the same HMAC for a value we hold
 * (the accessor recorded on the grant), so matching lines can be found without the log
 * ever holding, or keywarden ever reading, a clear token.
 */
import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { GrantUsage } from '../../core/grant-report.ts';
import type { VaultClient } from './client.ts';

export interface VaultAuditUsageProps {
  client: VaultClient;
  /** The audit log file the device writes (the local stack's `openbao-audit.log`). */
  logFile: string;
  /** The device's mount path. @default 'file' */
  device?: string;
}

interface AuditLine {
  type?: string;
  time?: string;
  /** Set when the request was refused, e.g. `1 error occurred:\n\t* permission denied\n\n`. */
  error?: string;
  auth?: { accessor?: string; client_token?: string; metadata?: Record<string, unknown> };
  request?: { operation?: string; path?: string; remote_address?: string; client_token?: string };
  /** A login's or token creation's answer: the new token, HMAC'd. */
  response?: { auth?: { accessor?: string; client_token?: string } };
}

/** An AppRole role, by its auth mount and name. */
export interface AuditRole {
  mount: string;
  roleName: string;
}

export class VaultAuditUsage {
  readonly #client: VaultClient;
  readonly #logFile: string;
  readonly #device: string;

  constructor(props: VaultAuditUsageProps) {
    this.#client = props.client;
    this.#logFile = props.logFile;
    this.#device = props.device ?? 'file';
  }

  /** The requests made with the tokens of these accessors, oldest first. */
  async usage(accessors: readonly string[]): Promise<GrantUsage[]> {
    return (await this.usesByAccessor(accessors)).map(({ at, action, source }) => ({ at, action, source }));
  }

  /** The same requests, each with the accessor whose token made it and the address it came from. */
  async usesByAccessor(
    accessors: readonly string[],
  ): Promise<(GrantUsage & { accessor: string; from: string | undefined })[]> {
    return (await this.uses({ accessors })).flatMap(({ accessor, role: _, ...use }) =>
      accessor ? [{ accessor, ...use }] : [],
    );
  }

  /**
   * The requests made with AppRole credentials of these roles: each login at
   * `auth/<mount>/login` (a secret-id presented; the device logs the role's name in clear in the
   * answer's `auth.metadata.role_name`), and every request of the token that login made
   * (followed by its HMAC'd accessor, so no `sys/audit-hash` call and no clear accessor). Which
   * secret-id logged in cannot be told: the device HMACs it and keywarden keeps no secret-id.
   */
  async usesByRole(
    roles: readonly AuditRole[],
  ): Promise<(GrantUsage & { role: AuditRole; from: string | undefined })[]> {
    return (await this.uses({ roles })).flatMap(({ role, accessor: _, ...use }) =>
      role ? [{ role, ...use }] : [],
    );
  }

  /**
   * Both at once, in one pass over the log (it is read whole, ~150 MB/s): the requests of these
   * accessors' tokens and of these roles' logins and login tokens, in the log's order.
   */
  async uses(query: {
    accessors?: readonly string[];
    roles?: readonly AuditRole[];
  }): Promise<(GrantUsage & { accessor?: string; role?: AuditRole; from: string | undefined })[]> {
    const { accessors = [], roles = [] } = query;
    if ((accessors.length === 0 && roles.length === 0) || !existsSync(this.#logFile)) return [];
    const hashed = new Map<string, string>();
    for (const accessor of accessors) {
      const answer = await this.#client.write(`sys/audit-hash/${this.#device}`, { input: accessor });
      const hash = answer.data?.hash;
      if (typeof hash === 'string') hashed.set(hash, accessor);
    }
    const byLogin = new Map(
      roles.map((role) => [`auth/${role.mount.replace(/^\/+|\/+$/g, '')}/login\u0000${role.roleName}`, role]),
    );
    const born = new Map<string, AuditRole>();
    // A request with a dead token (revoked, expired) is refused before the token is looked up:
    // the device logs no `auth.accessor` for it, only `request.client_token` (HMAC'd). The token's
    // earlier lines (its creation's answer, its requests while alive) pair that HMAC with its
    // accessor's, so a refused use of a watched token is still attributed.
    const tokens = new Map<string, string>();
    const pair = (auth: { accessor?: string; client_token?: string } | undefined) => {
      if (auth?.accessor && auth.client_token && (hashed.has(auth.accessor) || born.has(auth.accessor)))
        tokens.set(auth.client_token, auth.accessor);
    };
    const events: (GrantUsage & { accessor?: string; role?: AuditRole; from: string | undefined })[] = [];
    for await (const entry of this.#responses()) {
      pair(entry.auth);
      pair(entry.response?.auth);
      const presented = entry.request?.client_token;
      const tokenHash = entry.auth?.accessor ?? (presented ? tokens.get(presented) : undefined);
      const accessor = tokenHash ? hashed.get(tokenHash) : undefined;
      if (accessor) events.push({ accessor, ...useOf(entry) });
      if (byLogin.size === 0) continue;
      const roleName = entry.auth?.metadata?.role_name;
      const login =
        typeof roleName === 'string'
          ? byLogin.get(`${entry.request?.path ?? ''}\u0000${roleName}`)
          : undefined;
      if (login && tokenHash) {
        born.set(tokenHash, login);
        pair(entry.auth);
      }
      const role = login ?? (tokenHash ? born.get(tokenHash) : undefined);
      if (role) events.push({ role, ...useOf(entry) });
    }
    return events;
  }

  /** The log's answered requests, in order: each request is logged twice (request, response); the response says how it was answered. */
  async *#responses(): AsyncGenerator<AuditLine> {
    const lines = createInterface({
      input: createReadStream(this.#logFile),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    for await (const line of lines) {
      let entry: AuditLine;
      try {
        entry = JSON.parse(line) as AuditLine;
      } catch {
        continue;
      }
      if (entry.type === 'response') yield entry;
    }
  }
}

/** When, what and from where one answered request was; a refused one says why (a refused attempt is still a use). */
const useOf = (entry: AuditLine): GrantUsage & { from: string | undefined } => ({
  from: entry.request?.remote_address,
  at: entry.time ?? '',
  action: `${entry.request?.operation ?? '?'} ${entry.request?.path ?? '?'}${entry.error ? ` (refused: ${refusal(entry.error)})` : ''}`,
  source: 'openbao-audit',
});

/** The reasons of an error as the device writes it (a go-multierror list, `* permission denied`), on one line. */
const refusal = (error: string): string => {
  const listed = [...error.matchAll(/^\s*\*\s*(.+?)\s*$/gm)].map((match) => match[1]);
  return (listed.length ? listed.join('; ') : error.trim()).slice(0, 200);
};
