/**
 * What Slack sends keywarden, parsed and checked: slash commands (`/breakglass`,
 * `/revoke`, `/approve`) and interactive button clicks (Approve / Deny on a break-glass
 * request, Approve on an artifact approval request).
 *
 * Both arrive as `application/x-www-form-urlencoded` bodies whose signature has already
 * been verified (verify.ts). Fields keywarden does not use are dropped here, the
 * deprecated verification `token` among them, so nothing downstream can log it.
 * Every usage error is a ValidationError whose message shows the usage line and an
 * example, fit to be shown to the Slack user as is.
 */
import * as z from 'zod';
import { ApproveInputSchema } from '../../core/ci-approval.ts';
import { DurationSchema } from '../../core/duration.ts';
import { ValidationError } from '../../core/errors.ts';
import { GrantRequestInputSchema, RoleIdSchema } from '../../core/grant.ts';
import { IncidentSchema } from '../../core/incident.ts';
import { parseSelectors } from '../../core/selector.ts';

/** The issues of a failed parse, as `field: message; …`. */
const describeIssues = (error: z.ZodError): string =>
  error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`).join('; ');

/** A slash command as Slack posts it (snake_case form fields). */
const SlashCommandFormSchema = z.object({
  command: z.string().regex(/^\/[a-z0-9_-]+$/i, { error: 'expected a slash command such as /breakglass' }),
  text: z.string().default(''),
  user_id: z.string().regex(/^[UW][A-Z0-9]+$/, { error: 'expected a Slack user id such as U024BE7LH' }),
  user_name: z.string().optional(),
  team_id: z.string().min(1),
  channel_id: z.string().min(1),
  response_url: z.url({ protocol: /^https?$/, error: 'expected the http(s) URL Slack answers on' }),
  trigger_id: z.string().optional(),
});

/** A slash command, in keywarden's names. */
export interface SlashCommand {
  command: string;
  text: string;
  userId: string;
  userName?: string;
  teamId: string;
  channelId: string;
  /** Where to post answers for the next 30 minutes; checked against the allowed hosts before use (responder.ts). */
  responseUrl: string;
  triggerId?: string;
}

/**
 * Slack writes `&`, `<` and `>` in typed text as entities. Decoded here, so a reason is
 * stored as the person typed it; messages.ts escapes it again on the way out.
 */
const unescapeSlack = (text: string): string =>
  text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/**
 * Parses a slash-command form body.
 *
 * @throws ValidationError naming each missing or malformed field.
 */
export function parseSlashCommand(rawBody: string): SlashCommand {
  const form = Object.fromEntries(new URLSearchParams(rawBody));
  const parsed = SlashCommandFormSchema.safeParse(form);
  if (!parsed.success) {
    throw new ValidationError(
      `expected a Slack slash-command form (command, text, user_id, team_id, channel_id, response_url), got: ${describeIssues(parsed.error)}`,
    );
  }
  const f = parsed.data;
  return {
    command: f.command,
    text: unescapeSlack(f.text).trim(),
    userId: f.user_id,
    ...(f.user_name ? { userName: f.user_name } : {}),
    teamId: f.team_id,
    channelId: f.channel_id,
    responseUrl: f.response_url,
    ...(f.trigger_id ? { triggerId: f.trigger_id } : {}),
  };
}

/** Words of a command's text; Slack sends non-breaking spaces from some clients. */
const words = (text: string): string[] => text.split(/[\s\u00a0]+/).filter((word) => word !== '');

export const BREAKGLASS_USAGE = '/breakglass ROLE DURATION [INCIDENT] REASON…';
export const BREAKGLASS_EXAMPLE = '/breakglass prod-deploy 30m INC-42 roll back the failed release';

/** An incident token in `/breakglass`: optional, so it must look like one (INC-42, SEC-7) to be taken as one. */
const INCIDENT_TOKEN = /^[A-Z][A-Z0-9]*-\d+$/;

/** A `/breakglass` request, before it meets its role (core's requestGrant checks the rest). */
export interface BreakglassCommand {
  roleId: string;
  duration: string;
  incident?: string;
  reason: string;
}

const breakglassUsage = (problem: string): ValidationError =>
  new ValidationError(`${problem}. Usage: ${BREAKGLASS_USAGE}, for example ${BREAKGLASS_EXAMPLE}`);

/**
 * Parses the text of `/breakglass ROLE DURATION [INCIDENT] REASON…`. The incident is
 * taken only when the third word looks like one (`^[A-Z][A-Z0-9]*-\d+$`); otherwise it
 * is the start of the reason.
 *
 * @throws ValidationError with the usage line and an example.
 */
export function parseBreakglassCommand(text: string): BreakglassCommand {
  const [roleId, duration, ...rest] = words(text);
  if (!roleId) throw breakglassUsage('expected a role, a duration and a reason, got nothing');
  const role = RoleIdSchema.safeParse(roleId);
  if (!role.success) throw breakglassUsage(`role: ${role.error.issues[0]?.message ?? 'invalid role id'}`);
  if (!duration)
    throw breakglassUsage(`expected a duration such as 30m or 2h after the role ${roleId}, got none`);
  const parsedDuration = DurationSchema.safeParse(duration);
  if (!parsedDuration.success) {
    throw breakglassUsage(`duration: ${parsedDuration.error.issues[0]?.message ?? 'invalid duration'}`);
  }
  let incident: string | undefined;
  if (rest[0] !== undefined && INCIDENT_TOKEN.test(rest[0])) {
    const checked = IncidentSchema.safeParse(rest[0]);
    if (!checked.success) throw breakglassUsage(`incident: ${checked.error.issues[0]?.message}`);
    incident = checked.data;
    rest.shift();
  }
  const reason = rest.join(' ').trim();
  if (!reason) throw breakglassUsage('expected a reason after the duration (and incident), got none');
  // The bounds every channel shares (core's one request schema): the reason's length, above all.
  const checked = GrantRequestInputSchema.safeParse({
    roleId,
    duration,
    ...(incident ? { incident } : {}),
    reason,
  });
  if (!checked.success) throw breakglassUsage(describeIssues(checked.error));
  return { roleId, duration, ...(incident ? { incident } : {}), reason };
}

export const REVOKE_USAGE = '/revoke INCIDENT SELECTOR [SELECTOR…] [--reissue]';
export const REVOKE_EXAMPLE = '/revoke INC-42 stage=deploy,env=prod --reissue';

/** A `/revoke` request: the campaign to plan. Selectors are ORed, as on the CLI. */
export interface RevokeCommand {
  incident: string;
  selectors: string[];
  reissue: boolean;
}

const revokeUsage = (problem: string): ValidationError =>
  new ValidationError(`${problem}. Usage: ${REVOKE_USAGE}, for example ${REVOKE_EXAMPLE}`);

/** `--reissue`, also as typed by clients that turn `--` into a dash (macOS smart punctuation). */
const REISSUE_FLAG = /^(--|—|–)reissue$/;

/**
 * Parses the text of `/revoke INCIDENT SELECTOR… [--reissue]`: one selector per word
 * (terms inside a selector are joined by commas, without spaces).
 *
 * @throws ValidationError with the usage line and an example; an invalid selector gets
 *   the selector module's message, which names the bad term.
 */
export function parseRevokeCommand(text: string): RevokeCommand {
  const [incidentWord, ...rest] = words(text);
  if (!incidentWord) throw revokeUsage('expected an incident and at least one selector, got nothing');
  const incident = IncidentSchema.safeParse(incidentWord);
  if (!incident.success) throw revokeUsage(`incident: ${incident.error.issues[0]?.message}`);
  let reissue = false;
  const selectors: string[] = [];
  for (const word of rest) {
    if (REISSUE_FLAG.test(word)) reissue = true;
    else if (/^(--|—|–)/.test(word))
      throw revokeUsage(`unknown option ${JSON.stringify(word)}; the one option is --reissue`);
    else selectors.push(word);
  }
  if (selectors.length === 0)
    throw revokeUsage('expected at least one selector such as stage=deploy,env=prod, got none');
  try {
    parseSelectors(selectors);
  } catch (error) {
    if (error instanceof ValidationError) throw revokeUsage(error.message);
    throw error;
  }
  return { incident: incident.data, selectors, reissue };
}

export const APPROVE_USAGE = '/approve DIGEST GATE ENVIRONMENT';
export const APPROVE_EXAMPLE = `/approve sha256:${'0123456789abcdef'.repeat(4)} promote prod`;

/** An artifact approval asked for in Slack: what the Approve button will approve. */
export interface ApproveCommand {
  digest: string;
  gate: 'sign' | 'publish' | 'promote';
  environment: string;
}

const approveUsage = (problem: string): ValidationError =>
  new ValidationError(`${problem}. Usage: ${APPROVE_USAGE}, for example ${APPROVE_EXAMPLE}`);

/**
 * Parses the text of `/approve DIGEST GATE ENVIRONMENT` with the schema every channel uses
 * (core's ApproveInputSchema).
 *
 * @throws ValidationError with the usage line and an example.
 */
export function parseApproveCommand(text: string): ApproveCommand {
  const parts = words(text);
  if (parts.length !== 3)
    throw approveUsage(`expected a digest, a gate and an environment, got ${parts.length} word(s)`);
  const [digest, gate, environment] = parts;
  const checked = ApproveInputSchema.safeParse({ digest, gate, environment });
  if (!checked.success) throw approveUsage(describeIssues(checked.error));
  return checked.data;
}

/** The action ids of the buttons on a break-glass request (messages.ts). */
export const APPROVE_ACTION_ID = 'breakglass.approve';
export const DENY_ACTION_ID = 'breakglass.deny';
/** The action id of the Approve button on an artifact approval request; its value is `DIGEST GATE ENVIRONMENT`. */
export const APPROVE_ARTIFACT_ACTION_ID = 'ci.approve';

const BlockActionsSchema = z.object({
  type: z.literal('block_actions', {
    error: (issue) => `expected type block_actions, got ${JSON.stringify(issue.input)}`,
  }),
  user: z.object({
    id: z.string().regex(/^[UW][A-Z0-9]+$/, { error: 'expected a Slack user id such as U024BE7LH' }),
    username: z.string().optional(),
  }),
  actions: z
    .array(z.object({ action_id: z.string(), value: z.string().optional() }))
    .min(1, { error: 'expected at least one action' }),
  response_url: z.url({ protocol: /^https?$/, error: 'expected the http(s) URL Slack answers on' }),
  message: z.unknown().optional(),
  channel: z.object({ id: z.string() }).optional(),
});

/** A click on Approve or Deny. */
export interface GrantDecisionAction {
  userId: string;
  userName?: string;
  action: 'approve' | 'deny';
  grantId: string;
  responseUrl: string;
}

/** What a grant id in a button value may look like: it is echoed into messages and store keys. */
const GRANT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A click on Approve under an artifact approval request. */
export interface ArtifactApprovalAction extends ApproveCommand {
  userId: string;
  userName?: string;
  responseUrl: string;
}

/**
 * The click on an artifact approval request's Approve button, or undefined when the payload
 * is about another button (a break-glass decision: {@link parseInteraction}).
 *
 * @throws ValidationError for a malformed payload, or a button value that is not `DIGEST GATE ENVIRONMENT`.
 */
export function parseArtifactApproval(rawBody: string): ArtifactApprovalAction | undefined {
  const p = blockActions(rawBody);
  const [first] = p.actions;
  if (first?.action_id !== APPROVE_ARTIFACT_ACTION_ID) return undefined;
  const [digest, gate, environment, ...rest] = (first.value ?? '').split(' ');
  const checked = ApproveInputSchema.safeParse({ digest, gate, environment });
  if (!checked.success || rest.length > 0) {
    throw new ValidationError(
      `expected the button's value to be DIGEST GATE ENVIRONMENT, got ${JSON.stringify(first.value?.slice(0, 120))}`,
    );
  }
  return {
    ...checked.data,
    userId: p.user.id,
    ...(p.user.username ? { userName: p.user.username } : {}),
    responseUrl: p.response_url,
  };
}

function blockActions(rawBody: string): z.infer<typeof BlockActionsSchema> {
  const payloadText = new URLSearchParams(rawBody).get('payload');
  if (!payloadText)
    throw new ValidationError('expected a Slack interaction form with a payload field, got none');
  let payload: unknown;
  try {
    payload = JSON.parse(payloadText);
  } catch {
    throw new ValidationError(
      'expected the payload field of a Slack interaction to be JSON, got something else',
    );
  }
  const parsed = BlockActionsSchema.safeParse(payload);
  if (!parsed.success) {
    throw new ValidationError(`expected a Slack block_actions payload, got: ${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * Parses an interactive payload (`payload=<json>` form field) of type `block_actions`
 * from the buttons of a break-glass request.
 *
 * @throws ValidationError for another payload type, another action, or a malformed payload.
 */
export function parseInteraction(rawBody: string): GrantDecisionAction {
  const p = blockActions(rawBody);
  const [first] = p.actions;
  const action =
    first?.action_id === APPROVE_ACTION_ID
      ? 'approve'
      : first?.action_id === DENY_ACTION_ID
        ? 'deny'
        : undefined;
  if (!first || !action) {
    throw new ValidationError(
      `expected the action ${APPROVE_ACTION_ID} or ${DENY_ACTION_ID}, got ${JSON.stringify(first?.action_id)}`,
    );
  }
  if (!first.value || !GRANT_ID.test(first.value)) {
    throw new ValidationError(
      `expected the button's value to be a grant id (letters, digits, '.', '_', ':' or '-'), got ${JSON.stringify(first.value?.slice(0, 40))}`,
    );
  }
  return {
    userId: p.user.id,
    ...(p.user.username ? { userName: p.user.username } : {}),
    action,
    grantId: first.value,
    responseUrl: p.response_url,
  };
}
