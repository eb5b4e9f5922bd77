/**
 * Containment alerts to every configured channel at once (the alert topic, Slack): an alert
 * resolves when each channel took it, and otherwise rejects naming the channels that did not
 * (and the ones that did), so the caller can say where the owner was told and where not.
 */
import { KeywardenError } from '../../core/errors.ts';
import type { ExposureAlert, ExposureAlerts } from '../../core/ports.ts';

/** One channel alerts go to, with the name people know it by (`SNS topic keywarden-alerts`). */
export interface AlertChannel extends ExposureAlerts {
  readonly channel: string;
}

/** Some channels did not take an alert; the message names them and why, never a value. */
export class AlertDeliveryError extends KeywardenError {
  override readonly name = 'AlertDeliveryError';
  constructor(
    message: string,
    /** The channels that did not take it. */
    readonly failed: readonly string[],
  ) {
    super(message, { retryable: true });
  }
}

/** {@link ExposureAlerts} over every configured channel. */
export class FanOutExposureAlerts implements ExposureAlerts {
  constructor(readonly channels: readonly AlertChannel[]) {}

  /** Where an alert goes, for people: `SNS topic keywarden-alerts and Slack channel C0123456789`. */
  get description(): string {
    return this.channels.map((c) => c.channel).join(' and ') || 'nowhere';
  }

  async alert(alert: ExposureAlert): Promise<void> {
    const settled = await Promise.allSettled(this.channels.map((c) => c.alert(alert)));
    const failed = settled.flatMap((result, i) =>
      result.status === 'rejected'
        ? [
            `${this.channels[i]?.channel}: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`,
          ]
        : [],
    );
    if (failed.length === 0) return;
    const delivered = settled.flatMap((result, i) =>
      result.status === 'fulfilled' ? [this.channels[i]?.channel] : [],
    );
    throw new AlertDeliveryError(
      `the alert of ${alert.identityId} (${alert.incident}) did not reach ${failed.join('; ')}${delivered.length ? `; it reached ${delivered.join(' and ')}` : ''}`,
      settled.flatMap((result, i) =>
        result.status === 'rejected' ? [this.channels[i]?.channel ?? '?'] : [],
      ),
    );
  }
}
