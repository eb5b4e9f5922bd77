import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Fingerprinter } from '../../functions/adapters/crypto.ts';
import { buildManagedIndex, ManagedMatcher, ROLE_WINDOW } from '../../functions/core/exposure-match.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { identity } from '../support/fixtures.ts';

const fingerprinter = new Fingerprinter(randomBytes(32));
const fingerprint = (text: string) => fingerprinter.of(text);

/** `count` managed AppRole identities, each with its role-id and one live secret-id. */
function approles(count: number) {
  const roles = Array.from({ length: count }, (_, i) => ({
    id: `deployer-${i}`,
    roleId: randomUUID(),
    secretId: randomUUID(),
  }));
  const index = buildManagedIndex(
    roles.map(({ id, roleId, secretId }) => ({
      identity: identity({ id, kind: 'vault-approle-secret-id' }),
      roleId,
      versions: [
        {
          versionId: 'v1',
          handle: `acc-${id}`,
          stage: 'current',
          fingerprint: fingerprint(JSON.stringify({ role_id: roleId, secret_id: secretId })),
        },
      ],
    })),
  );
  return { roles, matcher: new ManagedMatcher(index, fingerprint) };
}

const noise = (lines: number) =>
  Array.from({ length: lines }, () => `step ${randomUUID()} sha ${randomBytes(20).toString('hex')}`);

describe('matching AppRole secret-ids among many managed roles', () => {
  it('pairs a UUID with the role-ids written near it, not with every managed role', () => {
    // prepare: more roles than are tried against every UUID, a log of unrelated UUIDs
    const { roles, matcher } = approles(200);
    const [leaked] = roles as [(typeof roles)[0]];
    const text = [
      ...noise(50),
      `vault write auth/approle/login role_id=${leaked.roleId}`,
      '  (retrying)',
      `  secret_id=${leaked.secretId}`,
      ...noise(50),
    ].join('\n');

    // act
    const found = [...matcher.scan(text)];

    // assess: found, and the 100 noise UUIDs were not each tried against 200 roles
    expect(found.map((f) => [f.ref.identityId, f.candidate.line])).toEqual([[leaked.id, 53]]);
    expect(matcher.lookups).toBeLessThan(2_000);
  });

  it(`does not pair a secret-id with a role-id more than ${ROLE_WINDOW} lines away`, () => {
    const { roles, matcher } = approles(40);
    const [leaked] = roles as [(typeof roles)[0]];
    const text = [`role_id=${leaked.roleId}`, ...noise(ROLE_WINDOW + 1), `secret_id=${leaked.secretId}`].join(
      '\n',
    );
    expect([...matcher.scan(text)]).toEqual([]);
  });

  it('tries every role when few are managed, and a role-id written in upper case', () => {
    const few = approles(3);
    const [lone] = few.roles as [(typeof few.roles)[0]];
    expect([...few.matcher.scan(`secret_id=${lone.secretId}`)].map((f) => f.ref.identityId)).toEqual([
      lone.id,
    ]);

    const many = approles(40);
    const [upper] = many.roles as [(typeof many.roles)[0]];
    const text = `ROLE_ID=${upper.roleId.toUpperCase()} SECRET_ID=${upper.secretId}`;
    expect([...many.matcher.scan(text)].map((f) => f.ref.identityId)).toEqual([upper.id]);
  });

  it('finds a URL-encoded login, whose role-id follows an escape', () => {
    const { roles, matcher } = approles(40);
    const [leaked] = roles as [(typeof roles)[0]];
    const text = `GET /login?q=${encodeURIComponent(`role_id=${leaked.roleId} secret_id=${leaked.secretId}`)}`;
    expect([...matcher.scan(text)].map((f) => [f.ref.identityId, f.candidate.encoding])).toEqual([
      [leaked.id, 'url'],
    ]);
  });

  it('finds a base64-encoded pair, and a pair a detector found whole', () => {
    const { roles, matcher } = approles(40);
    const [leaked] = roles as [(typeof roles)[0]];
    const pair = JSON.stringify({ role_id: leaked.roleId, secret_id: leaked.secretId });
    const encoded = `config=${Buffer.from(`role_id: ${leaked.roleId}\nsecret_id: ${leaked.secretId}\n`).toString('base64')}`;
    expect([...matcher.scan(encoded)].map((f) => [f.ref.identityId, f.candidate.encoding])).toEqual([
      [leaked.id, 'base64'],
    ]);
    const detected = matcher.matchDetected({
      rule: 'test',
      value: new SecretValue(pair),
      line: 1,
      column: 1,
      encoding: 'plain',
    });
    expect(detected.ref?.identityId).toBe(leaked.id);
  });
});
