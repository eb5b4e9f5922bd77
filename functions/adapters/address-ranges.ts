/**
 * CIDR matching for `allowedRunners`, on Node's own `net.BlockList` (IPv4 and IPv6, no
 * dependency). An IPv4-mapped IPv6 address (`::ffff:10.0.0.7`, what a dual-stack listener
 * reports for an IPv4 client) is matched as the IPv4 address it carries.
 */
import { BlockList, isIP } from 'node:net';
import type { AddressRanges } from '../core/unexpected-use.ts';

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** A range check that builds one `BlockList` per distinct list of ranges and keeps it. */
export class BlockListRanges implements AddressRanges {
  readonly #lists = new Map<string, BlockList>();

  contains(cidrs: readonly string[], address: string): boolean | undefined {
    const plain = MAPPED_V4.exec(address)?.[1] ?? address;
    const family = isIP(plain);
    if (family === 0) return undefined;
    return this.#listOf(cidrs).check(plain, family === 4 ? 'ipv4' : 'ipv6');
  }

  #listOf(cidrs: readonly string[]): BlockList {
    const key = cidrs.join(',');
    let list = this.#lists.get(key);
    if (!list) {
      list = new BlockList();
      for (const cidr of cidrs) {
        const [network = '', prefix = ''] = cidr.split('/');
        // The inventory's schema validated each range (zod cidrv4 / cidrv6).
        list.addSubnet(network, Number(prefix), isIP(network) === 4 ? 'ipv4' : 'ipv6');
      }
      this.#lists.set(key, list);
    }
    return list;
  }
}
