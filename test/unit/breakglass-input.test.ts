import { describe, expect, it } from 'vitest';
import { parseBreakglassCommand } from '../../functions/adapters/slack/commands.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import {
  GrantDenyInputSchema,
  GrantRequestInputSchema,
  GrantReviewInputSchema,
  parseInput,
  TEXT_LIMITS,
} from '../../functions/core/grant.ts';
import { IncidentSchema } from '../../functions/core/incident.ts';

/** The one check the API (through core), the CLI (before sending) and Slack (`/breakglass`) make. */
const requestInput = (over: Record<string, unknown> = {}) =>
  parseInput(
    GrantRequestInputSchema,
    { roleId: 'prod-deploy', duration: '30m', reason: 'roll back', incident: 'INC-42', ...over },
    'break-glass request',
  );

describe('break-glass input: one schema for every channel', () => {
  it('accepts each field at its limit and refuses one character more, naming the field and the limit', () => {
    expect(requestInput({ reason: 'r'.repeat(TEXT_LIMITS.reason) }).reason).toHaveLength(TEXT_LIMITS.reason);
    expect(() => requestInput({ reason: 'r'.repeat(TEXT_LIMITS.reason + 1) })).toThrow(
      `break-glass request: reason: expected at most ${TEXT_LIMITS.reason} characters, got ${TEXT_LIMITS.reason + 1}`,
    );
    expect(() => parseInput(GrantDenyInputSchema, { reason: 'd'.repeat(1_001) }, 'denial')).toThrow(
      'denial: reason: expected at most 1000 characters, got 1001',
    );
    expect(() => parseInput(GrantReviewInputSchema, { notes: 'n'.repeat(4_001) }, 'review')).toThrow(
      'review: notes: expected at most 4000 characters, got 4001',
    );
  });

  it('refuses a blank incident (space, tab, newline) and an oversized one, quoting it clipped', () => {
    for (const blank of [' ', '\t', '\n', '']) {
      expect(() => requestInput({ incident: blank })).toThrow(ValidationError);
      expect(IncidentSchema.safeParse(blank).success).toBe(false);
    }
    const huge = IncidentSchema.safeParse(`INC-${'4'.repeat(450_000)}`);
    expect(huge.success).toBe(false);
    expect(huge.error?.issues[0]?.message.length).toBeLessThan(300);
  });

  it('refuses an oversized role id or duration without echoing it whole', () => {
    expect(() => requestInput({ roleId: 'r'.repeat(100_000) })).toThrow(
      /roleId: expected a role id .*\(100000 characters\)/,
    );
    expect(() => requestInput({ duration: '9'.repeat(100_000) })).toThrow(
      /duration: expected a duration .*\(100000 characters\)/,
    );
  });

  it('Slack /breakglass: a reason over its limit is a usage error naming the field and the limit', () => {
    const long = parseBreakglassCommand.bind(
      undefined,
      `prod-deploy 30m INC-42 ${'r'.repeat(TEXT_LIMITS.reason + 1)}`,
    );
    expect(long).toThrow(`reason: expected at most ${TEXT_LIMITS.reason} characters`);
    expect(long).toThrow('Usage: /breakglass ROLE DURATION [INCIDENT] REASON');
    expect(
      parseBreakglassCommand(`prod-deploy 30m INC-42 ${'r'.repeat(TEXT_LIMITS.reason)}`).reason,
    ).toHaveLength(TEXT_LIMITS.reason);
  });
});
