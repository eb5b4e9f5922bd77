/**
 * Telling an owner that keywarden contained their credential, or started to (issue #14: "alerts the owner"):
 * what an alert says, in words shared by every channel (the alert topic's subject and plain-text
 * body, Slack's message), and sending it so that a channel's failure never undoes a containment.
 * An alert is built from handles, places and a short fingerprint only (see {@link ExposureAlert}):
 * no value can reach it.
 */
import type { ExposureAlert, ExposureAlerts } from './ports.ts';
import { SHORT_FINGERPRINT } from './short-fingerprint.ts';

/** How sending one alert went: not asked (no alerts configured), sent, or failed (why, in words). */
export type AlertDelivery =
  | { alerted?: never; alertError?: never }
  | { alerted: true }
  | { alerted: false; alertError: string };

/**
 * What an owner is told of one attempted containment, however it was found (exposed in a text,
 * used from outside its allowedRunners): the handles, places and outcome of an
 * {@link ExposureAlert}, its fingerprint whole (the alert carries its first SHORT_FINGERPRINT
 * characters).
 */
export type AlertFacts = Omit<ExposureAlert, 'cause' | 'status'>;

/**
 * Builds the alert of `facts` (the one place an {@link ExposureAlert} is built: the fingerprint
 * shortened, nothing else of what it is handed) and sends it through `alerts`, when configured.
 * A failure is returned, never thrown: the credential is ended whether or not its owner could be
 * told, and the caller says so. Which attempts alert is the caller's: a containment that ended or
 * started alerts each time it does, a failed one only the first time (a retry that fails again
 * tells nobody anything new).
 */
export async function deliverAlert(
  alerts: ExposureAlerts | undefined,
  cause: ExposureAlert['cause'],
  status: ExposureAlert['status'],
  facts: AlertFacts,
): Promise<AlertDelivery> {
  if (!alerts) return {};
  try {
    await alerts.alert({
      cause,
      identityId: facts.identityId,
      owner: facts.owner,
      incident: facts.incident,
      status,
      where: facts.where,
      fingerprint: facts.fingerprint.slice(0, SHORT_FINGERPRINT),
      campaignId: facts.campaignId,
      reissuedVersionId: facts.reissuedVersionId,
      reissue: facts.reissue,
      report: facts.report,
      failures: facts.failures,
    });
    return { alerted: true };
  } catch (error) {
    return { alerted: false, alertError: error instanceof Error ? error.message : String(error) };
  }
}

const CAUSE: Record<ExposureAlert['cause'], string> = {
  exposure: 'exposed',
  'unexpected-use': 'used from outside its allowedRunners',
};

/** One line: what happened to whose credential, and under which incident. */
export function alertSummary(alert: ExposureAlert): string {
  const what = `${alert.identityId}'s credential was ${CAUSE[alert.cause]} (${alert.where})`;
  if (alert.status === 'started') {
    return `${what}; containment started by ${alert.incident} (campaign ${alert.campaignId ?? '?'})`;
  }
  return `${what}; ${alert.status === 'contained' ? 'ended' : 'NOT fully ended'} by ${alert.incident}`;
}

const VERB: Record<ExposureAlert['status'], string> = {
  contained: 'contained',
  started: 'is containing',
  failed: 'could not fully contain',
};

/** A subject line (an email's, the topic's: at most 100 characters). */
export function alertSubject(alert: ExposureAlert): string {
  const verb = VERB[alert.status];
  const what = alert.cause === 'exposure' ? 'exposed' : 'misused';
  return `keywarden ${verb} ${alert.identityId}'s ${what} credential (${alert.incident})`;
}

/** The facts of an alert as label and text, in the order a responder reads them. */
export function alertFacts(alert: ExposureAlert): [label: string, text: string][] {
  return [
    ['Identity', alert.identityId],
    ['Owner', alert.owner ?? '(none declared)'],
    [alert.cause === 'exposure' ? 'Seen in' : 'Used from', alert.where],
    ['Incident', alert.incident],
    ['Campaign', alert.campaignId ?? '(none started)'],
    ['Fingerprint', `${alert.fingerprint}…`],
    [
      'Replacement',
      alert.reissuedVersionId
        ? `fresh credential ${alert.reissuedVersionId} delivered to its target`
        : (alert.reissue ?? 'none re-issued'),
    ],
    ...(alert.report ? [['Report', alert.report] as [string, string]] : []),
    ...(alert.failures.length ? [['Failed', alert.failures.join('; ')] as [string, string]] : []),
  ];
}

/** What the owner should do next. */
export function alertAdvice(alert: ExposureAlert): string {
  const fix =
    alert.cause === 'exposure'
      ? 'remove the credential from where it was seen (a log, a file, a commit) and find what printed it'
      : 'check who used it from there, and fix allowedRunners if that runner is yours';
  const retry =
    alert.status === 'failed'
      ? `; the containment did not finish (${alert.campaignId ? `keywarden revoke status ${alert.campaignId}` : 'no campaign started'}): keywarden tries again when it sees the credential next`
      : alert.status === 'started' && alert.campaignId
        ? `; follow its revocation and re-issue with keywarden revoke status ${alert.campaignId}`
        : '';
  return `${fix}${retry}. The value itself is never sent: match the fingerprint in the audit trail.`;
}

/** The whole alert as plain text (an email subscriber's body). */
export function alertText(alert: ExposureAlert): string {
  return [
    `${alertSummary(alert)}.`,
    '',
    ...alertFacts(alert).map(([label, text]) => `${label}: ${text}`),
    '',
    `Next: ${alertAdvice(alert)}`,
  ].join('\n');
}
