import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerDev } from '../../cli/commands/dev.ts';
import { chooseLocalSlackSecret, SLACK_SIGNING_SECRET_ENV } from '../../functions/local/dev.ts';
import { ensureSlackSecret, slackSecretFile } from '../../functions/local/runtime.ts';

describe('dev up: the local Slack signing secret is settable', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keywarden-slack-secret-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const stored = () => readFileSync(slackSecretFile(dir), 'utf8');

  it('stores the given secret (mode 0600), which the local runtime then verifies Slack requests with', () => {
    // act
    const changed = chooseLocalSlackSecret(dir, '8f14e45fceea167a5a36dedd4bea2543', {});

    // assess
    expect(changed).toBe(true);
    expect(stored()).toBe('8f14e45fceea167a5a36dedd4bea2543');
    expect(statSync(slackSecretFile(dir)).mode & 0o777).toBe(0o600);
    expect(ensureSlackSecret(dir).reveal()).toBe('8f14e45fceea167a5a36dedd4bea2543');
    expect(chooseLocalSlackSecret(dir, '8f14e45fceea167a5a36dedd4bea2543', {})).toBe(false);
  });

  it(`takes ${SLACK_SIGNING_SECRET_ENV} when no option is given; the option wins over it`, () => {
    expect(
      chooseLocalSlackSecret(dir, undefined, { [SLACK_SIGNING_SECRET_ENV]: 'from-the-environment-1234' }),
    ).toBe(true);
    expect(stored()).toBe('from-the-environment-1234');
    chooseLocalSlackSecret(dir, 'from-the-option-123456', {
      [SLACK_SIGNING_SECRET_ENV]: 'from-the-environment-1234',
    });
    expect(stored()).toBe('from-the-option-123456');
  });

  it('keeps the stored secret, or makes a random one, when neither is given', () => {
    expect(chooseLocalSlackSecret(dir, undefined, {})).toBe(false);
    const generated = stored();
    expect(generated).toMatch(/^[0-9a-f]{64}$/);
    expect(chooseLocalSlackSecret(dir, undefined, {})).toBe(false);
    expect(stored()).toBe(generated);
  });

  it('refuses a short or spaced secret, saying what it expects and never echoing it', () => {
    expect(() => chooseLocalSlackSecret(dir, 'hunter2', {})).toThrow(
      /--slack-signing-secret: expected a Slack signing secret of 16 to 256 printable characters.*got 7 character/,
    );
    expect(() => chooseLocalSlackSecret(dir, 'hunter2', {})).not.toThrow(/hunter2/);
    expect(() =>
      chooseLocalSlackSecret(dir, undefined, { [SLACK_SIGNING_SECRET_ENV]: 'with a space inside it' }),
    ).toThrow(new RegExp(`^${SLACK_SIGNING_SECRET_ENV}: expected`));
  });

  it('is an option of `keywarden dev up`', () => {
    const program = new Command();
    registerDev(program);
    const up = program.commands.find((c) => c.name() === 'dev')?.commands.find((c) => c.name() === 'up');
    expect(up?.options.map((o) => o.long)).toContain('--slack-signing-secret');
  });
});
