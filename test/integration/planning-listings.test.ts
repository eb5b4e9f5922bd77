/**
 * The listings a campaign's planning asks for (functions/adapters/campaign-launcher.ts): only what
 * still grants (`grantingOnly`), and without looking up the tokens recorded as keywarden's own
 * (`issuedByKeywarden`). On moto and OpenBao.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { CreateSecretCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { AwsSecretProvider } from '../../functions/adapters/aws/aws-secret-provider.ts';
import { awsClients } from '../../functions/adapters/aws/clients.ts';
import { VaultTokenProvider } from '../../functions/adapters/vault/token-provider.ts';
import type { IdentityOfKind } from '../../functions/core/identity.ts';
import { identity } from '../support/fixtures.ts';
import { newVaultClient, testAws, uniqueName } from '../support/stack.ts';

/** A value made at run time, so no credential ever sits in the source. */
const value = () => randomBytes(18).toString('base64url');

describe('planning listings: a Secrets Manager secret, only what still grants', () => {
  const secrets = awsClients(testAws()).secrets;
  const provider = new AwsSecretProvider({ secrets, random: randomBytes });
  const secretOf = (secretId: string) =>
    identity({
      id: uniqueName('kw'),
      kind: 'aws-secret',
      scope: { secretId },
    }) as IdentityOfKind<'aws-secret'>;

  it('lists the labelled versions at their stages from DescribeSecret, leaving the unlabelled one out', async () => {
    // prepare: three values, so the first loses every label
    const secretId = `${uniqueName('kw')}/planning`;
    const [first, previous, current] = [randomUUID(), randomUUID(), randomUUID()];
    await secrets.send(
      new CreateSecretCommand({ Name: secretId, SecretString: value(), ClientRequestToken: first }),
    );
    for (const version of [previous, current]) {
      await secrets.send(
        new PutSecretValueCommand({ SecretId: secretId, SecretString: value(), ClientRequestToken: version }),
      );
    }
    const send = vi.spyOn(secrets, 'send');

    // act
    const granting = await provider.list(secretOf(secretId), { grantingOnly: true });
    const calls = send.mock.calls.map(([command]) => command.constructor.name);
    send.mockRestore();
    const every = await provider.list(secretOf(secretId));

    // assess
    expect(calls).toEqual(['DescribeSecretCommand']);
    expect(granting.sort((a, b) => a.handle.localeCompare(b.handle))).toEqual(
      [
        { handle: previous, versionId: previous, status: 'active', stage: 'previous' },
        { handle: current, versionId: current, status: 'active', stage: 'current' },
      ].sort((a, b) => a.handle.localeCompare(b.handle)),
    );
    expect(every.find((listed) => listed.handle === first)).toMatchObject({ stage: 'revoked' });
  });

  it('lists nothing for a secret that does not exist', async () => {
    expect(await provider.list(secretOf(`${uniqueName('kw')}/missing`), { grantingOnly: true })).toEqual([]);
  });
});

describe('planning listings: Vault tokens recorded as keywarden’s own are not looked up', () => {
  const client = newVaultClient();
  const policy = uniqueName('kw-plan-read');
  const issued: string[] = [];
  const tokenIdentity = (scope: Record<string, unknown>) =>
    identity({
      id: uniqueName('kw-token'),
      kind: 'vault-token',
      scope: { ttl: '10m', ...scope },
      policy: { maxAge: '2h', rotateEvery: '1h', grace: '10m' },
    }) as IdentityOfKind<'vault-token'>;

  afterAll(async () => {
    await Promise.all(issued.map((accessor) => client.revokeAccessor(accessor)));
  });

  it('finds the unrecorded token issued for the identity, and another identity still finds a recorded one it declares', async () => {
    // prepare: two tokens keywarden issued for one identity, one of them recorded
    const provider = new VaultTokenProvider({ client });
    const owner = tokenIdentity({ policies: [policy] });
    const recorded = await provider.issue(owner, { versionId: uniqueName('v') });
    const unrecorded = await provider.issue(owner, { versionId: uniqueName('v') });
    issued.push(recorded.handle, unrecorded.handle);
    const declaring = tokenIdentity({ accessor: recorded.handle });
    const known = new Set([recorded.handle]);
    const lookups = vi.spyOn(client, 'lookupAccessor');

    // act: the two listings of one plan, started together
    const [mine, theirs] = await Promise.all([
      provider.list(owner, { skip: known, grantingOnly: true, issuedByKeywarden: known }),
      provider.list(declaring, { skip: new Set(), grantingOnly: true, issuedByKeywarden: known }),
    ]);
    const looked = lookups.mock.calls.map(([accessor]) => accessor);
    lookups.mockRestore();

    // assess
    expect(mine.map((listed) => listed.handle)).toEqual([unrecorded.handle]);
    expect(theirs.map((listed) => listed.handle)).toEqual([recorded.handle]);
    // Looked up once, as the declared accessor it is (afresh), never as a token the LIST named.
    expect(looked.filter((accessor) => accessor === recorded.handle)).toHaveLength(1);
    expect(looked).toContain(unrecorded.handle);
  });
});
