/**
 * A keyed fingerprint as people are shown it (a hit, a finding, an alert, a failure's message):
 * its first characters, enough to match it against the audit trail and the store.
 */

/** How long a fingerprint people are shown is. */
export const SHORT_FINGERPRINT = 24;
