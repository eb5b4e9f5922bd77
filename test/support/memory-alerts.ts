import type { ExposureAlert, ExposureAlerts } from '../../functions/core/ports.ts';

/** The alerts port in memory: every alert it took, in order; with `failWith`, it takes none and rejects. */
export class MemoryExposureAlerts implements ExposureAlerts {
  readonly sent: ExposureAlert[] = [];
  constructor(private readonly failWith?: string) {}
  async alert(alert: ExposureAlert): Promise<void> {
    if (this.failWith) throw new Error(this.failWith);
    // A copy, as a channel would keep it: later changes to the caller's object do not show here.
    this.sent.push(structuredClone(alert));
  }
}
