import type { Clock } from '../../functions/core/ports.ts';

/**
 * Real time plus an offset a test can advance: providers stamp real times (key
 * creation, token expiry), and a test still needs to jump past a grace period.
 */
export class OffsetClock implements Clock {
  #offset = 0;
  now(): Date {
    return new Date(Date.now() + this.#offset);
  }
  advance(millis: number): void {
    this.#offset += millis;
  }
}
