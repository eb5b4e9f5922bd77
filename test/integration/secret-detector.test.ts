import { describe, expect, it } from 'vitest';
import { makeCredential } from '../../bench/support/scan-corpus.ts';
import { CombinedSecretDetector } from '../../functions/adapters/scan/detector.ts';
import { SecretlintDetector } from '../../functions/adapters/scan/secretlint-detector.ts';
import type { DetectedSecret } from '../../functions/core/exposure-types.ts';
import type { SecretDetector } from '../../functions/core/ports.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';

/** Hits without their values, plus whether each is the expected one (no value in a failure message). */
function described(hits: DetectedSecret[]) {
  return hits.map((hit) => ({ rule: hit.rule, line: hit.line, column: hit.column, encoding: hit.encoding }));
}

describe('secret detection: secretlint, loaded for real', () => {
  it('finds a GitHub token and a private key, the values sliced from the text at their place', async () => {
    // prepare
    const github = makeCredential.githubPat();
    const pem = makeCredential.privateKey('rsa').trimEnd();
    const text = `npm ci\n+ git clone https://x-access-token:${github}@github.com/acme/app\n${pem}\ndone\n`;

    // act
    const hits = await new SecretlintDetector().detect(text);

    // assess
    expect(described(hits)).toEqual([
      { rule: 'secretlint:github', line: 2, column: 36, encoding: 'plain' },
      { rule: 'secretlint:privatekey', line: 3, column: 1, encoding: 'plain' },
    ]);
    expect(hits[0]?.value.reveal() === github).toBe(true);
    expect(hits[1]?.value.reveal() === pem).toBe(true);
  });

  it('keeps a PEM block whole and shifts positions across chunks', async () => {
    const pem = makeCredential.privateKey('rsa').trimEnd();
    const filler = Array.from({ length: 200 }, (_, i) => `line ${i} ${'-'.repeat(20)}`).join('\n');
    const slack = makeCredential.slackToken();
    const text = `${filler}\n${pem}\n${filler}\nSLACK_BOT_TOKEN=${slack}\n`;

    const hits = await new SecretlintDetector({ chunkSize: 4_096 }).detect(text);

    expect(described(hits)).toEqual([
      { rule: 'secretlint:privatekey', line: 201, column: 1, encoding: 'plain' },
      { rule: 'secretlint:slack', line: 201 + pem.split('\n').length + 200, column: 17, encoding: 'plain' },
    ]);
    expect(hits.map((hit) => hit.value.reveal()).join('|') === `${pem}|${slack}`).toBe(true);
  });

  it('refuses a chunk size too small to hold a line', () => {
    expect(() => new SecretlintDetector({ chunkSize: 10 })).toThrow(
      /expected chunkSize an integer ≥ 1024, got 10/,
    );
  });
});

describe('secret detection: the combined detector', () => {
  it('finds the engine’s kinds and keywarden’s own in one text, ordered by position', async () => {
    // prepare
    const github = makeCredential.githubPat();
    const token = makeCredential.vaultNamespacedToken();
    const accessKeyId = makeCredential.awsAccessKeyId();
    const secretAccessKey = makeCredential.awsSecretAccessKey();
    const text = [
      `GITHUB_TOKEN=${github}`,
      `VAULT_TOKEN=${token}`,
      `AWS_ACCESS_KEY_ID=${accessKeyId}`,
      `AWS_SECRET_ACCESS_KEY=${secretAccessKey}`,
    ].join('\n');

    // act
    const hits = await new CombinedSecretDetector().detect(text);

    // assess
    expect(described(hits)).toEqual([
      { rule: 'secretlint:github', line: 1, column: 14, encoding: 'plain' },
      { rule: 'vault-service-token', line: 2, column: 13, encoding: 'plain' },
      { rule: 'aws-access-key-pair', line: 3, column: 19, encoding: 'plain' },
    ]);
    expect(hits[2]?.accessKeyId).toBe(accessKeyId);
  });

  it('runs the engine over decoded segments: a base64-encoded and a URL-encoded GitHub token', async () => {
    // prepare
    const inBase64 = makeCredential.githubPat();
    const inUrl = makeCredential.githubPat();
    const text = [
      'kubectl apply -f secret.yaml',
      `  token: ${Buffer.from(`GITHUB_TOKEN=${inBase64}\n`).toString('base64')}`,
      // `_` is left as is by encodeURIComponent; a form encoder may escape it, hiding the token.
      `curl -d "c=${encodeURIComponent(`token: ${inUrl}`).replace('_', '%5F')}"`,
    ].join('\n');

    // act
    const hits = await new CombinedSecretDetector().detect(text);

    // assess
    expect(described(hits)).toEqual([
      { rule: 'secretlint:github', line: 2, column: 10, encoding: 'base64' },
      { rule: 'secretlint:github', line: 3, column: 10, encoding: 'url' },
    ]);
    expect(hits.map((hit) => hit.value.reveal()).join('|') === `${inBase64}|${inUrl}`).toBe(true);
  });

  it('finds the private keys secretlint passes by (Ed25519, P-256 in SEC1) by keywarden’s own rule', async () => {
    const ed25519 = makeCredential.privateKey('ed25519').trimEnd();
    const ec = makeCredential.privateKey('ec').trimEnd();

    const hits = await new CombinedSecretDetector().detect(`${ed25519}\n${ec}\n`);

    expect(described(hits)).toEqual([
      { rule: 'private-key', line: 1, column: 1, encoding: 'plain' },
      { rule: 'private-key', line: ed25519.split('\n').length + 1, column: 1, encoding: 'plain' },
    ]);
  });

  it('reports a value found by two detectors at the same place once, under keywarden’s rule name', async () => {
    const token = makeCredential.vaultServiceToken();
    const echo: SecretDetector = {
      // An engine that reports the same token at the same place, twice, and one more value elsewhere.
      detect: async (text) => [
        { rule: 'other:vault', value: new SecretValue(token), line: 1, column: 7, encoding: 'plain' },
        {
          rule: 'other:vault',
          value: new SecretValue(text.slice(0, 5)),
          line: 1,
          column: 1,
          encoding: 'plain',
        },
      ],
    };

    const hits = await new CombinedSecretDetector({ engines: [echo, echo], enginesOnEncoded: false }).detect(
      `token=${token}`,
    );

    expect(described(hits)).toEqual([
      { rule: 'other:vault', line: 1, column: 1, encoding: 'plain' },
      { rule: 'vault-service-token', line: 1, column: 7, encoding: 'plain' },
    ]);
  });

  it('drops an AWS key id found alone where the same id was found with its (URL-encoded) secret', async () => {
    const accessKeyId = makeCredential.awsAccessKeyId();
    const secretAccessKey = makeCredential.awsSecretAccessKey();
    const text = `curl -d "${encodeURIComponent(`aws_access_key_id=${accessKeyId}&aws_secret_access_key=${secretAccessKey}`)}"`;

    const hits = await new CombinedSecretDetector().detect(text);

    expect(described(hits)).toEqual([{ rule: 'aws-access-key-pair', line: 1, column: 10, encoding: 'url' }]);
    expect(hits[0]?.value.revealJson()).toEqual({ accessKeyId, secretAccessKey });
  });

  it('prints no value when a hit is logged or serialized', async () => {
    const token = makeCredential.vaultHcpToken();

    const [hit] = await new CombinedSecretDetector().detect(`t=${token}`);

    expect(JSON.stringify(hit)).not.toContain(token.slice(4, 20));
    expect(String(hit?.value)).toBe('[secret]');
  });
});
