/**
 * The forge tokens secret the deployed exposure scanner reads finished CI jobs' logs with
 * (functions/adapters/scan/forge-tokens-secret.ts): a token per platform, parsed without quoting
 * it; a platform whose token is still the placeholder is not read, and the secret is read again
 * at most once a minute until the token is set.
 */
import { describe, expect, it } from 'vitest';
import { SECRET_RECHECK_MS } from '../../functions/adapters/rechecked-secret.ts';
import type { FinishedJob } from '../../functions/adapters/scan/finished-job-log.ts';
import {
  forgeSettingsOf,
  jobLogReader,
  parseForgeTokens,
  recheckedForgeSettings,
} from '../../functions/adapters/scan/forge-tokens-secret.ts';
import { ValidationError } from '../../functions/core/errors.ts';

/** How the secret is named to operators: the variable naming its ARN. */
const SECRET = 'KEYWARDEN_FORGE_TOKENS_SECRET_ARN';

const GITHUB_JOB: FinishedJob = { platform: 'github', repository: 'acme/app', jobId: 29679449 };

/** A Vault service token's shape, generated per run (never a literal). */
const generatedToken = () =>
  `hvs.${Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString('base64url')}`;

describe('exposure scanner: the forge tokens secret', () => {
  it('reads a token per platform, an absent one empty, and names the secret as where a refused token came from', () => {
    const github = generatedToken();

    const tokens = parseForgeTokens(JSON.stringify({ github }), SECRET);
    const settings = forgeSettingsOf({ gitlabUrl: 'https://gitlab.example.com' }, tokens, SECRET);

    expect(tokens).toEqual({ github, gitlab: '' });
    expect(settings.github).toMatchObject({ api: 'https://api.github.com', token: github });
    expect(settings.github.tokenSource).toMatch(
      /"github" field of the forge tokens secret \(KEYWARDEN_FORGE_TOKENS_SECRET_ARN\)/,
    );
    expect(settings.gitlab).toMatchObject({ url: 'https://gitlab.example.com', token: '' });
  });

  it.each([
    ['a bare token', () => generatedToken(), /do not parse as JSON/],
    ['a token that is no string', () => JSON.stringify({ github: 12 }), /github: /],
  ])('refuses %s without quoting it', (_name, value, message) => {
    const text = value();
    let refusal: unknown;
    try {
      parseForgeTokens(text, SECRET);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ValidationError);
    expect((refusal as Error).message).toMatch(/expected the forge tokens secret .* to hold JSON/);
    expect((refusal as Error).message).toMatch(message);
    expect((refusal as Error).message).not.toContain(text);
  });

  it('reads the forge tokens secret again while a token is the placeholder, at most once a minute, and keeps a token once set', async () => {
    // prepare: deployed with the placeholder; an operator sets the GitHub token afterwards
    let now = 0;
    let secret = { github: '', gitlab: '' };
    const reads: number[] = [];
    const settingsFor = recheckedForgeSettings(
      forgeSettingsOf({}, secret, SECRET),
      async () => {
        reads.push(now);
        return forgeSettingsOf({}, secret, SECRET);
      },
      () => now,
    );
    const read: FinishedJob[] = [];
    const jobLog = jobLogReader(settingsFor, async (job) => {
      read.push(job);
      return { source: { kind: 'github-run', location: 'acme/app job 1' }, text: 'ok' };
    });
    // act
    const before = await jobLog(GITHUB_JOB);
    secret = { github: generatedToken(), gitlab: '' };
    now = SECRET_RECHECK_MS / 2;
    const soon = await jobLog(GITHUB_JOB);
    now = SECRET_RECHECK_MS;
    const later = await jobLog(GITHUB_JOB);
    now = 10 * SECRET_RECHECK_MS;
    const afterwards = await jobLog(GITHUB_JOB);
    // assess
    expect([before, soon]).toEqual([
      { unread: expect.stringMatching(/^no GitHub token: set the "github" field/) },
      { unread: expect.stringMatching(/^no GitHub token/) },
    ]);
    expect([later, afterwards]).toMatchObject([{ text: 'ok' }, { text: 'ok' }]);
    expect(reads).toEqual([SECRET_RECHECK_MS]);
    expect(read).toEqual([GITHUB_JOB, GITHUB_JOB]);
  });
});
