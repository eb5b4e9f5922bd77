import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type CiCredentials,
  CiExchangeError,
  environmentOf,
  missingGithubIdToken,
  requestCredentials,
  secretsOf,
  shellExports,
  shellQuote,
} from '../../action/src/exchange.ts';

const made = (bytes = 18) => randomBytes(bytes).toString('base64url');

/** An exchange's answer with made-up values (nothing here is a credential). */
function answer(parts: { vault?: boolean; addr?: boolean; aws?: boolean }): CiCredentials {
  const expiresAt = '2026-12-05T08:00:00.000Z';
  return {
    id: 'ci-6f1c',
    grant: 'release-publish',
    correlationId: 'ci-github-700100200.1.1.5',
    expiresAt,
    ...(parts.vault
      ? {
          vault: {
            token: `s.${made()}`,
            accessor: made(),
            expiresAt,
            ...(parts.addr ? { addr: 'http://127.0.0.1:8200' } : {}),
          },
        }
      : {}),
    ...(parts.aws
      ? {
          aws: {
            accessKeyId: `ASIA${made(8)}`,
            secretAccessKey: made(30),
            sessionToken: made(90),
            expiresAt,
            region: 'eu-west-1',
          },
        }
      : {}),
  };
}

describe('ci exchange client: what the credentials become in a job', () => {
  it('exports what was issued, under the names the Vault and AWS CLIs read, and the exchange id', () => {
    // act
    const both = environmentOf(answer({ vault: true, addr: true, aws: true }));
    const vaultOnly = environmentOf(answer({ vault: true }));
    const awsOnly = environmentOf(answer({ aws: true }));
    // assess
    expect(Object.keys(both)).toEqual([
      'KEYWARDEN_CI_ID',
      'VAULT_ADDR',
      'VAULT_TOKEN',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_REGION',
      'AWS_DEFAULT_REGION',
    ]);
    // A deployment that names no Vault address leaves the job's own VAULT_ADDR alone.
    expect(Object.keys(vaultOnly)).toEqual(['KEYWARDEN_CI_ID', 'VAULT_TOKEN']);
    expect(Object.keys(awsOnly)).not.toContain('VAULT_TOKEN');
  });

  it('names every secret value to mask, and nothing that is only an id', () => {
    // prepare
    const credentials = answer({ vault: true, addr: true, aws: true });
    // act
    const secrets = secretsOf(credentials);
    // assess
    expect(secrets).toEqual([
      credentials.vault?.token,
      credentials.aws?.accessKeyId,
      credentials.aws?.secretAccessKey,
      credentials.aws?.sessionToken,
    ]);
    expect(secrets).not.toContain(credentials.vault?.accessor);
    expect(secrets).not.toContain(credentials.id);
  });
});

describe('ci exchange client: export lines for eval', () => {
  it.each([
    ['a plain value', 's.abc123', "'s.abc123'"],
    ['a single quote', "it's", "'it'\\''s'"],
    ['a command substitution', '$(touch /tmp/x)`id`', "'$(touch /tmp/x)`id`'"],
    ['a newline and a backslash', 'a\nb\\c', "'a\nb\\c'"],
  ])('quotes %s so the shell expands nothing', (_, value, quoted) => {
    expect(shellQuote(value)).toBe(quoted);
  });

  it('writes one export line per variable', () => {
    expect(shellExports({ VAULT_TOKEN: 's.x', AWS_REGION: "eu-west-1'" })).toBe(
      "export VAULT_TOKEN='s.x'\nexport AWS_REGION='eu-west-1'\\'''",
    );
  });
});

describe('ci exchange client: refusing before asking keywarden', () => {
  it('a malformed digest or URL is refused without a request, saying what was expected', async () => {
    // act / assess
    await expect(
      requestCredentials({
        url: 'http://127.0.0.1:9',
        token: 'unused',
        grant: 'g',
        artifactDigest: 'sha1:abc',
      }),
    ).rejects.toThrow(/expected an artifact digest as sha256:<64 lowercase hex digits>, got "sha1:abc"/);
    await expect(requestCredentials({ url: 'keywarden', token: 'unused', grant: 'g' })).rejects.toThrow(
      CiExchangeError,
    );
  });

  it('a GitHub job without id-token: write is told what to grant', () => {
    expect(missingGithubIdToken({})).toMatch(/permissions: id-token: write/);
    expect(
      missingGithubIdToken({ ACTIONS_ID_TOKEN_REQUEST_URL: 'http://x', ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'y' }),
    ).toBeUndefined();
  });
});
