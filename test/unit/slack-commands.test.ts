import { describe, expect, it } from 'vitest';
import {
  APPROVE_ACTION_ID,
  DENY_ACTION_ID,
  parseBreakglassCommand,
  parseInteraction,
  parseRevokeCommand,
  parseSlashCommand,
} from '../../functions/adapters/slack/commands.ts';
import { ValidationError } from '../../functions/core/errors.ts';

const RESPONSE_URL = 'https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN';

const form = (fields: Record<string, string>): string => new URLSearchParams(fields).toString();

const slashForm = (over: Record<string, string> = {}): string =>
  form({
    token: 'xyzz0WbapA4vBCDEFasx0q6G',
    team_id: 'T1DC2JH3J',
    team_domain: 'testteamnow',
    channel_id: 'C0INCIDENT',
    channel_name: 'incidents',
    user_id: 'U0ALICE',
    user_name: 'alice',
    command: '/breakglass',
    text: 'prod-deploy 30m INC-42 roll back the release',
    response_url: RESPONSE_URL,
    trigger_id: '398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
    ...over,
  });

/** The ValidationError a call throws, for its message. */
function failure(act: () => unknown): ValidationError {
  try {
    act();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error('expected a ValidationError, got none');
}

describe('slack commands: slash-command forms', () => {
  it('reads the fields keywarden uses, in its own names', () => {
    // act
    const command = parseSlashCommand(slashForm());

    // assess
    expect(command).toEqual({
      command: '/breakglass',
      text: 'prod-deploy 30m INC-42 roll back the release',
      userId: 'U0ALICE',
      userName: 'alice',
      teamId: 'T1DC2JH3J',
      channelId: 'C0INCIDENT',
      responseUrl: RESPONSE_URL,
      triggerId: '398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
    });
  });

  it("drops Slack's deprecated verification token, so nothing downstream can log it", () => {
    expect(JSON.stringify(parseSlashCommand(slashForm()))).not.toContain('xyzz0WbapA4vBCDEFasx0q6G');
  });

  it('decodes + and %-escapes in the text, and accepts an empty text', () => {
    expect(parseSlashCommand(slashForm({ text: 'INC-42 stage=deploy,env=prod' })).text).toBe(
      'INC-42 stage=deploy,env=prod',
    );
    expect(parseSlashCommand(slashForm({ text: '' })).text).toBe('');
  });

  it('decodes the entities Slack writes for &, < and > in typed text', () => {
    expect(parseSlashCommand(slashForm({ text: 'prod-deploy 30m fix A &amp; B &lt;now&gt;' })).text).toBe(
      'prod-deploy 30m fix A & B <now>',
    );
  });

  it('names each missing or malformed field', () => {
    // act
    const error = failure(() => parseSlashCommand(form({ command: '/breakglass', user_id: 'alice' })));

    // assess
    expect(error.message).toContain('expected a Slack slash-command form');
    expect(error.message).toContain('user_id: expected a Slack user id');
    expect(error.message).toContain('response_url');
    expect(error.message).toContain('channel_id');
  });

  it('refuses a response_url that is not http(s)', () => {
    expect(
      failure(() => parseSlashCommand(slashForm({ response_url: 'file:///etc/passwd' }))).message,
    ).toContain('response_url');
  });
});

describe('slack commands: /breakglass ROLE DURATION [INCIDENT] REASON…', () => {
  it('reads role, duration, incident and reason', () => {
    expect(parseBreakglassCommand('prod-deploy 30m INC-42 roll back the failed release')).toEqual({
      roleId: 'prod-deploy',
      duration: '30m',
      incident: 'INC-42',
      reason: 'roll back the failed release',
    });
  });

  it('takes the third word as the incident only when it looks like one', () => {
    // act
    const withSec = parseBreakglassCommand('db-admin 2h SEC-7 rotate the leaked password');
    const without = parseBreakglassCommand('db-admin 2h inc-42 is lowercase, so part of the reason');

    // assess
    expect(withSec).toMatchObject({ incident: 'SEC-7', reason: 'rotate the leaked password' });
    expect(without).toEqual({
      roleId: 'db-admin',
      duration: '2h',
      reason: 'inc-42 is lowercase, so part of the reason',
    });
  });

  it('tolerates extra and non-breaking spaces', () => {
    expect(parseBreakglassCommand('  prod-deploy \u00a015m   INC-42   hotfix  now ')).toEqual({
      roleId: 'prod-deploy',
      duration: '15m',
      incident: 'INC-42',
      reason: 'hotfix now',
    });
  });

  it('shows the usage line and an example for each mistake', () => {
    const cases: [string, string][] = [
      ['', 'got nothing'],
      ['Prod-Deploy 30m INC-42 x', 'role: expected a role id of lowercase letters'],
      ['prod-deploy', 'expected a duration such as 30m or 2h after the role prod-deploy'],
      ['prod-deploy soon INC-42 x', 'duration: expected a duration such as 30m'],
      ['prod-deploy 30m INC-42', 'expected a reason'],
      ['prod-deploy 30m', 'expected a reason'],
    ];
    for (const [text, problem] of cases) {
      // act
      const error = failure(() => parseBreakglassCommand(text));

      // assess
      expect(error.message).toContain(problem);
      expect(error.message).toContain('Usage: /breakglass ROLE DURATION [INCIDENT] REASON…');
      expect(error.message).toContain('for example /breakglass prod-deploy 30m INC-42');
    }
  });
});

describe('slack commands: /revoke INCIDENT SELECTOR… [--reissue]', () => {
  it('reads the incident, the selectors and --reissue', () => {
    expect(parseRevokeCommand('INC-42 stage=deploy,env=prod kind=vault-token --reissue')).toEqual({
      incident: 'INC-42',
      selectors: ['stage=deploy,env=prod', 'kind=vault-token'],
      reissue: true,
    });
  });

  it('does not re-issue unless asked', () => {
    expect(parseRevokeCommand('INC-42 env=prod')).toEqual({
      incident: 'INC-42',
      selectors: ['env=prod'],
      reissue: false,
    });
  });

  it('accepts --reissue anywhere, also as the dash a smart-punctuation client makes of --', () => {
    expect(parseRevokeCommand('INC-42 —reissue env=prod').reissue).toBe(true);
    expect(parseRevokeCommand('INC-42 --reissue env=prod').selectors).toEqual(['env=prod']);
  });

  it("gives an invalid selector the selector module's message, naming the bad term", () => {
    // act
    const error = failure(() => parseRevokeCommand('INC-42 stage=deploy,colour=blue'));

    // assess
    expect(error.message).toContain('selector "stage=deploy,colour=blue"');
    expect(error.message).toContain('term "colour=blue"');
    expect(error.message).toContain('Usage: /revoke INCIDENT SELECTOR');
  });

  it('refuses a selector split by a space instead of ORing its halves', () => {
    // "stage=deploy, env=prod" would otherwise become two selectors, ORed: far more than meant.
    expect(failure(() => parseRevokeCommand('INC-42 stage=deploy, env=prod')).message).toContain('selector');
  });

  it('shows the usage line and an example for each mistake', () => {
    const cases: [string, string][] = [
      ['', 'got nothing'],
      ['INC-42', 'expected at least one selector'],
      ['INC-42 --reissue', 'expected at least one selector'],
      ['42 env=prod', 'incident: expected an incident id such as INC-42'],
      ['INC-42 env=prod --dry-run', 'unknown option "--dry-run"'],
    ];
    for (const [text, problem] of cases) {
      // act
      const error = failure(() => parseRevokeCommand(text));

      // assess
      expect(error.message).toContain(problem);
      expect(error.message).toContain('Usage: /revoke INCIDENT SELECTOR [SELECTOR…] [--reissue]');
      expect(error.message).toContain('for example /revoke INC-42 stage=deploy,env=prod --reissue');
    }
  });
});

describe('slack commands: interactive button payloads', () => {
  const payload = (over: Record<string, unknown> = {}) =>
    form({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: 'U0BOB', username: 'bob', team_id: 'T1DC2JH3J' },
        api_app_id: 'A0KEYWARDEN',
        token: 'xyzz0WbapA4vBCDEFasx0q6G',
        trigger_id: '1.2.3',
        channel: { id: 'C0INCIDENT', name: 'incidents' },
        message: { ts: '1700000000.000100', text: 'Break-glass request g-1' },
        response_url: 'https://hooks.slack.com/actions/T1DC2JH3J/1/abc',
        actions: [{ action_id: APPROVE_ACTION_ID, block_id: 'breakglass:g-1', value: 'g-1', type: 'button' }],
        ...over,
      }),
    });

  it('reads an Approve click: who, which grant, where to answer', () => {
    expect(parseInteraction(payload())).toEqual({
      userId: 'U0BOB',
      userName: 'bob',
      action: 'approve',
      grantId: 'g-1',
      responseUrl: 'https://hooks.slack.com/actions/T1DC2JH3J/1/abc',
    });
  });

  it('reads a Deny click', () => {
    // prepare
    const body = payload({ actions: [{ action_id: DENY_ACTION_ID, value: '01JD3K4M5N6P7Q8R9S0T1V2W3X' }] });

    // act / assess
    expect(parseInteraction(body)).toMatchObject({ action: 'deny', grantId: '01JD3K4M5N6P7Q8R9S0T1V2W3X' });
  });

  it('refuses any other action, payload type or shape', () => {
    const cases: [string, string][] = [
      [
        payload({ actions: [{ action_id: 'campaign.cancel', value: 'g-1' }] }),
        'expected the action breakglass.approve',
      ],
      [payload({ type: 'view_submission' }), 'expected type block_actions'],
      [payload({ actions: [] }), 'expected at least one action'],
      [
        payload({ actions: [{ action_id: APPROVE_ACTION_ID, value: '../../etc' }] }),
        "expected the button's value",
      ],
      [payload({ actions: [{ action_id: APPROVE_ACTION_ID }] }), "expected the button's value"],
      [payload({ user: { id: 'bob' } }), 'user.id: expected a Slack user id'],
      [payload({ response_url: 'gopher://x' }), 'response_url'],
      [form({ payload: '{not json' }), 'to be JSON'],
      [form({ other: 'x' }), 'with a payload field'],
    ];
    for (const [body, problem] of cases) {
      expect(failure(() => parseInteraction(body)).message).toContain(problem);
    }
  });
});
