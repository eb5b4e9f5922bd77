import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { makeCredential, randomChars } from '../../bench/support/scan-corpus.ts';
import { encodedSegments, findOwnSecrets, findPlainSecrets } from '../../functions/core/exposure-rules.ts';
import type { DetectedSecret } from '../../functions/core/exposure-types.ts';

/** What a spec compares: the rule, the clear value, the place, the encoding. */
function seen(hits: DetectedSecret[]) {
  return hits.map((hit) => ({
    rule: hit.rule,
    value: hit.value.reveal(),
    line: hit.line,
    column: hit.column,
    encoding: hit.encoding,
    ...(hit.accessKeyId === undefined ? {} : { accessKeyId: hit.accessKeyId }),
  }));
}

describe('exposure rules: Vault/OpenBao tokens', () => {
  it('finds a service token, a namespaced one, a batch token and the hvs./hvb./hvr. forms, each at its line and column', () => {
    // prepare
    const service = makeCredential.vaultServiceToken();
    const namespaced = makeCredential.vaultNamespacedToken();
    const batch = makeCredential.vaultBatchToken();
    const hcp = ['hvs', 'hvb', 'hvr'].map((prefix) => `${prefix}.${randomChars(96)}`);
    const text = [
      `step 1: export VAULT_TOKEN=${service}`,
      `  token=${namespaced} ok`,
      `"${batch}"`,
      ...hcp.map((token) => `X-Vault-Token: ${token}`),
    ].join('\n');

    // act
    const hits = seen(findOwnSecrets(text));

    // assess
    expect(hits).toEqual([
      { rule: 'vault-service-token', value: service, line: 1, column: 28, encoding: 'plain' },
      { rule: 'vault-service-token', value: namespaced, line: 2, column: 9, encoding: 'plain' },
      { rule: 'vault-batch-token', value: batch, line: 3, column: 2, encoding: 'plain' },
      ...hcp.map((value, i) => ({
        rule: 'vault-hcp-token',
        value,
        line: 4 + i,
        column: 16,
        encoding: 'plain',
      })),
    ]);
  });

  it('does not take a dotted name, a lowercase path or a too-short body for a token', () => {
    const text = [
      `import scala.s.${'a'.repeat(24)}`,
      `at s.${'abcdefghijklmnopqrstuvwx'} (Main.java:12)`,
      `s.${randomChars(20)}`,
      `files/b.${randomChars(40)}`,
      `hvs.${randomChars(10)}`,
    ].join('\n');

    expect(findOwnSecrets(text)).toEqual([]);
  });
});

describe('exposure rules: AWS access keys', () => {
  it.each([
    ['env', (id: string, secret: string) => `AWS_ACCESS_KEY_ID=${id}\nAWS_SECRET_ACCESS_KEY=${secret}`],
    [
      'JSON',
      (id: string, secret: string) => `{\n  "AccessKeyId": "${id}",\n  "SecretAccessKey": "${secret}"\n}`,
    ],
    [
      'credentials file',
      (id: string, secret: string) => `[ci]\naws_access_key_id = ${id}\naws_secret_access_key = ${secret}`,
    ],
    ['one line', (id: string, secret: string) => `aws configure set ${id} ${secret}`],
    [
      'secret first',
      (id: string, secret: string) => `AWS_SECRET_ACCESS_KEY=${secret}\nAWS_ACCESS_KEY_ID=${id}`,
    ],
  ])(
    'pairs an id with its secret access key nearby (%s), the value as the IAM provider fingerprints a pair',
    (_form, write) => {
      // prepare
      const accessKeyId = makeCredential.awsAccessKeyId();
      const secretAccessKey = makeCredential.awsSecretAccessKey();

      // act
      const hits = findOwnSecrets(write(accessKeyId, secretAccessKey));

      // assess
      expect(hits).toHaveLength(1);
      expect(hits[0]?.rule).toBe('aws-access-key-pair');
      expect(hits[0]?.accessKeyId).toBe(accessKeyId);
      // Exactly this key order: the fingerprint is over the JSON text.
      expect(hits[0]?.value.reveal()).toBe(JSON.stringify({ accessKeyId, secretAccessKey }));
    },
  );

  it('reports an id alone (AKIA or ASIA) as an access key id, the id as its value', () => {
    const long = makeCredential.awsAccessKeyId('AKIA');
    const temporary = makeCredential.awsAccessKeyId('ASIA');

    const hits = seen(findOwnSecrets(`key ${long}\n\n\n\n\n\nsession ${temporary}`));

    expect(hits).toEqual([
      { rule: 'aws-access-key-id', value: long, accessKeyId: long, line: 1, column: 5, encoding: 'plain' },
      {
        rule: 'aws-access-key-id',
        value: temporary,
        accessKeyId: temporary,
        line: 7,
        column: 9,
        encoding: 'plain',
      },
    ]);
  });

  it('takes the candidate on a line naming the secret over a git SHA or a digest beside the id', () => {
    const accessKeyId = makeCredential.awsAccessKeyId();
    const secretAccessKey = makeCredential.awsSecretAccessKey();
    const blob = Buffer.from(randomBytes(30)).toString('base64');
    const text = [
      `commit ${randomBytes(20).toString('hex')} ${blob}`,
      `id=${accessKeyId}`,
      `secret=${secretAccessKey}`,
    ].join('\n');

    const [hit] = findOwnSecrets(text);

    expect(hit?.value.revealJson()).toEqual({ accessKeyId, secretAccessKey });
  });

  it('does not pair a secret more than three lines away', () => {
    const accessKeyId = makeCredential.awsAccessKeyId();
    const text = `id=${accessKeyId}\n\n\n\n\nsecret=${makeCredential.awsSecretAccessKey()}`;

    expect(findOwnSecrets(text).map((hit) => hit.rule)).toEqual(['aws-access-key-id']);
  });
});

describe('exposure rules: encoded text', () => {
  it('finds a key pair inside a base64 segment, at the segment and with its encoding', () => {
    // prepare
    const accessKeyId = makeCredential.awsAccessKeyId();
    const secretAccessKey = makeCredential.awsSecretAccessKey();
    const encoded = Buffer.from(
      `aws_access_key_id=${accessKeyId}\naws_secret_access_key=${secretAccessKey}\n`,
    ).toString('base64');

    // act
    const hits = findOwnSecrets(`build ok\n+ echo ${encoded} | base64 -d`);

    // assess
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({
      rule: 'aws-access-key-pair',
      accessKeyId,
      line: 2,
      column: 8,
      encoding: 'base64',
    });
    expect(hits[0]?.value.revealJson()).toEqual({ accessKeyId, secretAccessKey });
  });

  it('finds Vault tokens in URL-safe base64 and in percent-encoded text', () => {
    const service = makeCredential.vaultServiceToken();
    const batch = makeCredential.vaultBatchToken();
    const b64url = Buffer.from(`{"token":"${service}","note":"ok??>>"}`).toString('base64url');
    const url = encodeURIComponent(`X-Vault-Token: ${batch}`).replace(/\./g, '%2E');

    const hits = seen(findOwnSecrets(`a ${b64url}\ncurl -d data=${url}`));

    expect(hits).toEqual([
      { rule: 'vault-service-token', value: service, line: 1, column: 3, encoding: 'base64' },
      { rule: 'vault-batch-token', value: batch, line: 2, column: 9, encoding: 'url' },
    ]);
  });

  it('finds a token glued to a percent-escape (`%3D`) through the decoded text', () => {
    const token = makeCredential.vaultServiceToken();

    const hits = seen(findOwnSecrets(`-d "config=${encodeURIComponent(`VAULT_TOKEN=${token}`)}"`));

    expect(hits).toEqual([
      { rule: 'vault-service-token', value: token, line: 1, column: 5, encoding: 'url' },
    ]);
  });

  it('reports a value the encoded segment shows in the clear once, as plain', () => {
    const token = makeCredential.vaultServiceToken();

    const hits = seen(findOwnSecrets(`curl "https://vault/v1/x?token=${token}&path=a%2Fb"`));

    expect(hits).toEqual([
      { rule: 'vault-service-token', value: token, line: 1, column: 32, encoding: 'plain' },
    ]);
  });

  it('does not decode random blobs, hashes or words as text', () => {
    const text = [
      Buffer.from(randomBytes(64)).toString('base64'),
      randomBytes(32).toString('hex'),
      'a-very-long-hyphenated-identifier-name-for-a-package',
    ].join(' ');

    expect(encodedSegments(text)).toEqual([]);
  });
});

describe('exposure rules: passwords', () => {
  it('finds a literal password assignment and skips variables, masks and placeholders', () => {
    const password = `${randomChars(10)}-${randomChars(4)}`;
    const text = [
      `DB_PASSWORD=${password}`,
      `password=${'$'}{DB_PASSWORD}`,
      'password: ********',
      'password = "changeme"',
      '--password-stdin',
    ].join('\n');

    expect(seen(findPlainSecrets(text))).toEqual([
      { rule: 'password-assignment', value: password, line: 1, column: 13, encoding: 'plain' },
    ]);
  });
});

describe('exposure rules: private keys', () => {
  it.each(['rsa', 'ec', 'ed25519'] as const)(
    'finds a %s private key in PEM, the block from BEGIN to END, and one in a JSON string',
    (type) => {
      // prepare
      const pem = makeCredential.privateKey(type).trimEnd();
      const json = JSON.stringify({ private_key: pem });

      // act
      const hits = seen(findOwnSecrets(`deploy\n${pem}\n${json}`));

      // assess
      const jsonLine = pem.split('\n').length + 2;
      expect(hits).toEqual([
        { rule: 'private-key', value: pem, line: 2, column: 1, encoding: 'plain' },
        {
          rule: 'private-key',
          value: pem.replaceAll('\n', '\\n'),
          line: jsonLine,
          column: 17,
          encoding: 'plain',
        },
      ]);
    },
  );

  it('does not take a public key, a certificate or a placeholder block for a private key', () => {
    const text = [
      armor('BEGIN', 'PUBLIC'),
      randomBytes(48).toString('base64'),
      armor('END', 'PUBLIC'),
      armor('BEGIN', 'PRIVATE'),
      '...',
      armor('END', 'PRIVATE'),
    ].join('\n');

    expect(findOwnSecrets(text)).toEqual([]);
  });
});

/** A PEM armour line, assembled at run time (no key-shaped literal in the source). */
function armor(edge: 'BEGIN' | 'END', kind: 'PUBLIC' | 'PRIVATE'): string {
  const dashes = '-'.repeat(5);
  return `${dashes}${edge} ${kind} KEY${dashes}`;
}

describe('exposure rules: look-alikes and bounds', () => {
  it('finds nothing in UUIDs, git SHAs, sha256 digests, SRI hashes and random base64', () => {
    const lines = Array.from({ length: 200 }, (_, i) =>
      [
        randomUUID(),
        randomBytes(20).toString('hex'),
        `sha256:${randomBytes(32).toString('hex')}`,
        `sha512-${randomBytes(64).toString('base64')}`,
        randomBytes(30 + (i % 40)).toString('base64'),
        randomBytes(30).toString('base64url'),
      ].join(' '),
    );

    expect(findOwnSecrets(lines.join('\n'))).toEqual([]);
  });

  it('finds nothing in adversarial text (base64 runs, token prefixes, percent signs, PEM headers without an end), and returns', () => {
    // How fast it is on such text is bench/scan.ts's to measure; the spec holds what it finds.
    const piece = `s.s.s.${'A'.repeat(300)} b.b.${'a-'.repeat(200)} %41%42%4 AKIAAKIA ${'x'.repeat(5_000)} password=\n${`${armor('BEGIN', 'PRIVATE')}\n`.repeat(20)}`;
    const text = piece.repeat(Math.ceil(1e6 / piece.length));

    expect(findOwnSecrets(text)).toEqual([]);
  });
});
