/**
 * The incident id: the one schema every channel checks an incident against (the API's
 * grant requests and campaigns, the CLI, Slack `/breakglass` and `/revoke`, stored grants
 * and campaigns). It names S3 keys, report files, IAM policy names and Slack threads, so no
 * spaces, slashes or dots; and never blank: `" "`, a tab or a newline is refused.
 */
import * as z from 'zod';
import { quote } from './quote.ts';

/** A letter, then 1 to 63 letters, digits, `-` or `_` (INC-42, SEC_2026_0042). */
export const INCIDENT_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{1,63}$/;

/** An incident id such as INC-42; the message quotes what was received (clipped). */
export const IncidentSchema = z.string().regex(INCIDENT_PATTERN, {
  error: (issue) =>
    `expected an incident id such as INC-42 (a letter, then 1 to 63 letters, digits, '-' or '_'), got ${quote(issue.input)}`,
});
