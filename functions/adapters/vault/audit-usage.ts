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
  auth?: { accessor?: string };
  request?: { operation?: string; path?: string; remote_address?: string };
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
    if (accessors.length === 0 || !existsSync(this.#logFile)) return [];
    const hashed = new Map<string, string>();
    for (const accessor of accessors) {
      const answer = await this.#client.write(`sys/audit-hash/${this.#device}`, { input: accessor });
      const hash = answer.data?.hash;
      if (typeof hash === 'string') hashed.set(hash, accessor);
    }
    const events: (GrantUsage & { accessor: string; from: string | undefined })[] = [];
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
      // Each request is logged twice (request, response); the response says it was served.
      const accessor = entry.auth?.accessor ? hashed.get(entry.auth.accessor) : undefined;
      if (entry.type !== 'response' || !accessor) continue;
      events.push({
        accessor,
        from: entry.request?.remote_address,
        at: entry.time ?? '',
        action: `${entry.request?.operation ?? '?'} ${entry.request?.path ?? '?'}`,
        source: 'openbao-audit',
      });
    }
    return events;
  }
}
