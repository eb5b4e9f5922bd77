/**
 * The Vault credential providers and the KV delivery against the real OpenBao
 * dev server of the local stack. The server is shared with other test files:
 * every role, mount, policy and KV path made here carries a `uniqueName`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VaultApproleProvider } from '../../functions/adapters/vault/approle-provider.ts';
import { VaultClient, VaultError } from '../../functions/adapters/vault/client.ts';
import {
  kvDataOf,
  kvVersionOf,
  readKvState,
  readKvVersion,
  VaultKvDelivery,
  type VaultKvDeliveryTarget,
} from '../../functions/adapters/vault/kv-delivery.ts';
import { VaultKvProvider } from '../../functions/adapters/vault/kv-provider.ts';
import { VaultTokenProvider } from '../../functions/adapters/vault/token-provider.ts';
import {
  ConflictError,
  NotFoundError,
  ValidationError,
  VerificationError,
} from '../../functions/core/errors.ts';
import type { IdentityOfKind } from '../../functions/core/identity.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { identity } from '../support/fixtures.ts';
import { rejection } from '../support/rejection.ts';
import { newVaultClient, testStack, uniqueName } from '../support/stack.ts';

const versionId = () => uniqueName('v');
/** A value shaped like nothing in particular, made at run time. */
const secretText = () => randomBytes(24).toString('base64url');

describe('provider: vault-token', () => {
  const client = newVaultClient();
  const provider = new VaultTokenProvider({ client });
  const policy = uniqueName('kw-ci-read');
  const who = identity({
    id: uniqueName('kw-token'),
    kind: 'vault-token',
    scope: { policies: [policy], ttl: '10m' },
    policy: { maxAge: '2h', rotateEvery: '1h', grace: '10m' },
  }) as IdentityOfKind<'vault-token'>;
  const issued: string[] = [];

  beforeAll(async () => {
    await client.write(`sys/policies/acl/${policy}`, {
      policy: `path "secret/data/${policy}/*" { capabilities = ["read"] }`,
    });
  });

  afterAll(async () => {
    await Promise.all(issued.map((accessor) => client.revokeAccessor(accessor)));
    await client.delete(`sys/policies/acl/${policy}`);
  });

  const issue = async (version: string) => {
    const credential = await provider.issue(who, { versionId: version });
    issued.push(credential.handle);
    return credential;
  };

  it('issues an orphan token with the scope policies, TTL, explicit max TTL = maxAge and identity meta, then verifies it', async () => {
    // prepare
    const self = await client.lookupSelf();
    const version = versionId();
    // act
    const credential = await issue(version);
    await provider.verify(who, credential);
    // assess
    const token = await client.lookupAccessor(credential.handle);
    expect(token).toMatchObject({
      orphan: true,
      renewable: true,
      explicit_max_ttl: 7_200,
      creation_ttl: 600,
      path: 'auth/token/create-orphan',
      display_name: `token-${who.id}`,
      meta: { 'keywarden-identity': who.id, 'keywarden-version': version },
    });
    expect(token?.policies).toContain(policy);
    expect(Date.parse(credential.expiresAt ?? '') - Date.now()).toBeGreaterThan(590_000);
    expect(Date.parse(credential.expiresAt ?? '') - Date.now()).toBeLessThanOrEqual(600_000);
    // keywarden's own client still is itself.
    expect((await client.lookupSelf()).accessor).toBe(self.accessor);
  });

  it('leaves the previous token working when it issues a new one, and lists both with their version ids', async () => {
    const [first, second] = [versionId(), versionId()];
    const old = await issue(first);
    const fresh = await issue(second);
    await provider.verify(who, old);
    await provider.verify(who, fresh);
    const listed = await provider.list(who);
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ handle: old.handle, versionId: first, status: 'active' }),
        expect.objectContaining({ handle: fresh.handle, versionId: second, status: 'active' }),
      ]),
    );
    expect(Date.parse(listed[0]?.createdAt ?? '')).toBeGreaterThan(Date.now() - 120_000);
    // Only this identity's tokens: not keywarden's own, nor anyone else's.
    expect(listed.every((credential) => issued.includes(credential.handle))).toBe(true);
  });

  it('looks each token up once across listings: another identity’s listing looks up only tokens made since, and a token revoked since is gone from it', async () => {
    // prepare: a fresh provider lists once; then one more token for another identity, and one of ours revoked
    const fresh = new VaultTokenProvider({ client });
    const other = identity({ ...who, id: uniqueName('kw-token-other') }) as IdentityOfKind<'vault-token'>;
    const mine = await issue(versionId());
    const lookups = vi.spyOn(client, 'lookupAccessor');
    await fresh.list(who);
    const seen = new Set(lookups.mock.calls.map(([accessor]) => accessor));
    lookups.mockClear();
    const theirs = await fresh.issue(other, { versionId: versionId() });
    issued.push(theirs.handle);
    await client.revokeAccessor(mine.handle);

    // act
    const listed = await fresh.list(other);

    // assess: nothing the first listing looked up was looked up again (other specs may make tokens meanwhile)
    const again = lookups.mock.calls.map(([accessor]) => accessor);
    lookups.mockRestore();
    expect(seen).toContain(mine.handle);
    expect(again).toContain(theirs.handle);
    expect(again.filter((accessor) => seen.has(accessor))).toEqual([]);
    expect(listed.map((credential) => credential.handle)).toEqual([theirs.handle]);
    expect((await fresh.list(who)).map((credential) => credential.handle)).not.toContain(mine.handle);
  });

  it('revokes by accessor: the token stops authenticating, and a second revoke is already-revoked', async () => {
    const credential = await issue(versionId());
    expect(await provider.revoke(who, credential.handle)).toBe('revoked');
    const refused = await rejection(newVaultClient(credential.secret.reveal()).lookupSelf());
    expect(refused).toBeInstanceOf(VaultError);
    expect(refused).toMatchObject({ status: 403 });
    const failed = await rejection(provider.verify(who, credential));
    expect(failed).toBeInstanceOf(VerificationError);
    expect(failed.message).not.toContain(credential.secret.reveal());
    expect(await provider.revoke(who, credential.handle)).toBe('already-revoked');
    expect((await provider.list(who)).map((listed) => listed.handle)).not.toContain(credential.handle);
  });

  it('refuses a token delivered under another accessor', async () => {
    const [one, other] = [await issue(versionId()), await issue(versionId())];
    const failed = await rejection(provider.verify(who, { handle: one.handle, secret: other.secret }));
    expect(failed).toBeInstanceOf(VerificationError);
    expect(failed.message).toContain(one.handle);
    expect(failed.message).not.toContain(other.secret.reveal());
  });
});

describe('provider: vault-token, tokens made outside keywarden', () => {
  const client = newVaultClient();
  const provider = new VaultTokenProvider({ client });
  const prefix = uniqueName('kw-jenkins');
  const tokenRole = uniqueName('kw-token-role');
  const made: string[] = [];
  const declare = (scope: Record<string, unknown>) =>
    identity({ id: uniqueName('kw-legacy'), kind: 'vault-token', scope }) as IdentityOfKind<'vault-token'>;
  /** As a team's pipeline made its token: straight through the Vault API, no keywarden meta. */
  const makeToken = async (body: Record<string, unknown> = {}) => {
    const created = await client.createToken({ policies: ['default'], ttl: '1h', ...body }, { orphan: true });
    made.push(created.accessor);
    return created;
  };

  beforeAll(async () => {
    await client.write(`auth/token/roles/${tokenRole}`, { allowed_policies: ['default'], orphan: true });
  });

  afterAll(async () => {
    await Promise.all(made.map((accessor) => client.revokeAccessor(accessor)));
    await client.delete(`auth/token/roles/${tokenRole}`);
  });

  it('lists a token declared by accessor, leaves out a declared accessor that is gone, and after revoke-accessor lists nothing', async () => {
    const [live, gone] = [await makeToken(), await makeToken()];
    await client.revokeAccessor(gone.accessor);
    const who = declare({ accessor: [live.accessor, gone.accessor] });

    expect(await provider.list(who)).toEqual([
      { handle: live.accessor, status: 'active', createdAt: expect.any(String) },
    ]);

    expect(await provider.revoke(who, live.accessor)).toBe('revoked');
    expect(await client.lookupAccessor(live.accessor)).toBeUndefined();
    const refused = await rejection(newVaultClient(live.client_token).lookupSelf());
    expect(refused).toMatchObject({ status: 403 });
    expect(await provider.list(who)).toEqual([]);
  });

  it('lists the tokens of a token role and of a display-name prefix, and never keywarden’s own token', async () => {
    const viaRole = (await client.write(`auth/token/create/${tokenRole}`, { ttl: '1h' })).auth;
    made.push(String(viaRole?.accessor));
    const nightly = await makeToken({ display_name: `${prefix}-nightly` });
    await makeToken({ display_name: uniqueName('kw-other') });
    const self = (await client.lookupSelf()).accessor;

    const handles = async (scope: Record<string, unknown>) =>
      (await provider.list(declare(scope))).map((listed) => listed.handle);
    expect(await handles({ tokenRole })).toEqual([viaRole?.accessor]);
    expect(await handles({ displayNamePrefix: prefix })).toEqual([nightly.accessor]);
    expect(await handles({ accessor: self })).toEqual([]);
  });

  it('with policies too, lists what it issued (with version ids) beside the declared tokens the first rotation adopts', async () => {
    const legacy = await makeToken({ display_name: `${prefix}-combined` });
    const who = identity({
      id: uniqueName('kw-combined'),
      kind: 'vault-token',
      scope: { policies: ['default'], ttl: '10m', accessor: legacy.accessor },
    }) as IdentityOfKind<'vault-token'>;
    const version = versionId();
    const issued = await provider.issue(who, { versionId: version });
    made.push(issued.handle);

    const listed = await provider.list(who);
    expect(listed).toHaveLength(2);
    expect(listed).toEqual(
      expect.arrayContaining([
        { handle: legacy.accessor, status: 'active', createdAt: expect.any(String) },
        expect.objectContaining({ handle: issued.handle, versionId: version }),
      ]),
    );
  });

  it('adopts the token a first rotation replaced by its value, without listing every accessor: one issued for the identity earlier, or one made outside keywarden and declared by accessor', async () => {
    const listing = newVaultClient();
    const adopting = new VaultTokenProvider({ client: listing });
    const lists = vi.spyOn(listing, 'list');
    const id = uniqueName('kw-replaced');
    const earlier = await makeToken({ meta: { 'keywarden-identity': id } });
    const legacy = await makeToken();
    const ours = identity({
      id,
      kind: 'vault-token',
      scope: { policies: ['default'], ttl: '10m' },
    }) as IdentityOfKind<'vault-token'>;
    const declared = declare({ policies: ['default'], ttl: '10m', accessor: legacy.accessor });

    const of = async (who: IdentityOfKind<'vault-token'>, token: string, skip: string[] = []) =>
      (await adopting.list(who, { replaced: new SecretValue(token), skip: new Set(skip) })).map(
        (listed) => listed.handle,
      );
    expect(await of(ours, earlier.client_token)).toEqual([earlier.accessor]);
    expect(await of(declared, legacy.client_token)).toEqual([legacy.accessor]);
    expect(lists).not.toHaveBeenCalled();
  });

  it('lists as usual when the replaced value names no token of the identity: a revoked token, another identity’s, one it recorded already (skip), a token role’s scope', async () => {
    const listing = newVaultClient();
    const adopting = new VaultTokenProvider({ client: listing });
    const lists = vi.spyOn(listing, 'list');
    const id = uniqueName('kw-replaced');
    const [live, revoked] = [
      await makeToken({ meta: { 'keywarden-identity': id } }),
      await makeToken({ meta: { 'keywarden-identity': id } }),
    ];
    await client.revokeAccessor(revoked.accessor);
    const someoneElses = await makeToken({ meta: { 'keywarden-identity': uniqueName('kw-other') } });
    const ours = identity({
      id,
      kind: 'vault-token',
      scope: { policies: ['default'], ttl: '10m' },
    }) as IdentityOfKind<'vault-token'>;

    const of = async (who: IdentityOfKind<'vault-token'>, token: string, skip: string[] = []) =>
      (await adopting.list(who, { replaced: new SecretValue(token), skip: new Set(skip) })).map(
        (listed) => listed.handle,
      );
    expect(await of(ours, revoked.client_token)).toEqual([live.accessor]);
    expect(await of(ours, someoneElses.client_token)).toEqual([live.accessor]);
    expect(await of(ours, live.client_token, [live.accessor])).toEqual([live.accessor]);
    expect(lists).toHaveBeenCalledTimes(3);
    const viaRole = (await client.write(`auth/token/create/${tokenRole}`, { ttl: '1h' })).auth;
    made.push(String(viaRole?.accessor));
    // The role may have other tokens (the earlier spec's): the LIST finds them all.
    expect(await of(declare({ tokenRole }), String(viaRole?.client_token))).toContain(viaRole?.accessor);
    expect(lists).toHaveBeenCalledTimes(4);
  });

  it('refuses to issue for an identity that names existing tokens only, saying what to add', async () => {
    const failed = await rejection(
      provider.issue(declare({ accessor: 'hQ9cMrUbYcbfEJ6WswV2mZkE' }), { versionId: versionId() }),
    );
    expect(failed).toBeInstanceOf(ValidationError);
    expect(failed.message).toMatch(/expected scope\.policies to issue a new token/);
  });
});

describe('provider: vault-approle-secret-id', () => {
  const client = newVaultClient();
  const provider = new VaultApproleProvider({ client });
  // A mount of our own, so the login leases under it are ours alone.
  const mount = uniqueName('kw-approle');
  const role = uniqueName('ci-deploy');
  const limitedRole = uniqueName('ci-once');
  const who = identity({
    id: uniqueName('kw-approle-id'),
    kind: 'vault-approle-secret-id',
    scope: { mount, roleName: role, secretIdTtl: '2h' },
  }) as IdentityOfKind<'vault-approle-secret-id'>;
  const once = identity({
    id: uniqueName('kw-approle-once'),
    kind: 'vault-approle-secret-id',
    scope: { mount, roleName: limitedRole, numUses: 1 },
  }) as IdentityOfKind<'vault-approle-secret-id'>;

  /** A real login as the pipeline would do it; its token is revoked straight after. */
  const login = async (secret: SecretValue): Promise<void> => {
    const answer = await client.write(`auth/${mount}/login`, secret.revealJson());
    await client.revokeAccessor(String(answer.auth?.accessor));
  };
  const loginLeases = () => client.list(`sys/leases/lookup/auth/${mount}/login/`);

  beforeAll(async () => {
    await client.write(`sys/auth/${mount}`, { type: 'approle' });
    for (const name of [role, limitedRole])
      await client.write(`auth/${mount}/role/${name}`, { token_ttl: '5m' });
  });

  afterAll(async () => {
    // Disabling the mount destroys its roles, secret-ids and login tokens.
    await client.delete(`sys/auth/${mount}`);
  });

  it('issues a secret-id with TTL, uses and identity metadata, delivered with the role-id; verifying by login leaves no token behind', async () => {
    // prepare
    const version = versionId();
    const roleId = String((await client.read(`auth/${mount}/role/${role}/role-id`))?.data?.role_id);
    // act
    const credential = await provider.issue(who, { versionId: version });
    await provider.verify(who, credential);
    // assess
    expect(Object.keys(credential.secret.revealJson()).sort()).toEqual(['role_id', 'secret_id']);
    expect(credential.secret.revealJson().role_id).toBe(roleId);
    const lookup = await client.write(`auth/${mount}/role/${role}/secret-id-accessor/lookup`, {
      secret_id_accessor: credential.handle,
    });
    expect(lookup.data).toMatchObject({
      secret_id_num_uses: 0,
      secret_id_ttl: 7_200,
      metadata: { 'keywarden-identity': who.id, 'keywarden-version': version },
    });
    expect(Date.parse(credential.expiresAt ?? '') - Date.now()).toBeGreaterThan(7_190_000);
    // The verification login was revoked, lease and all.
    expect(await loginLeases()).toEqual([]);
  });

  it('leaves the previous secret-id working when it issues a new one, and lists both with their version ids', async () => {
    const [first, second] = [versionId(), versionId()];
    const old = await provider.issue(who, { versionId: first });
    const fresh = await provider.issue(who, { versionId: second });
    await login(old.secret);
    await provider.verify(who, old);
    await provider.verify(who, fresh);
    expect(await provider.list(who)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ handle: old.handle, versionId: first, status: 'active' }),
        expect.objectContaining({ handle: fresh.handle, versionId: second, status: 'active' }),
      ]),
    );
  });

  it('lists a secret-id made outside keywarden (to adopt) but not one tagged for another identity', async () => {
    const untagged = await client.write(`auth/${mount}/role/${role}/secret-id`, {});
    const foreign = await client.write(`auth/${mount}/role/${role}/secret-id`, {
      metadata: JSON.stringify({ 'keywarden-identity': 'someone-else' }),
    });
    const handles = (await provider.list(who)).map((listed) => listed.handle);
    expect(handles).toContain(untagged.data?.secret_id_accessor);
    expect(handles).not.toContain(foreign.data?.secret_id_accessor);
    const adopted = (await provider.list(who)).find((l) => l.handle === untagged.data?.secret_id_accessor);
    expect(adopted?.versionId).toBeUndefined();
  });

  it('destroys by accessor: the secret-id no longer logs in, and a second revoke is already-revoked', async () => {
    const credential = await provider.issue(who, { versionId: versionId() });
    expect(await provider.revoke(who, credential.handle)).toBe('revoked');
    const refused = await rejection(login(credential.secret));
    expect(refused).toMatchObject({ name: 'VaultError', status: 400 });
    expect((refused as VaultError).errors.join(' ')).toMatch(/invalid role or secret ID/);
    const failed = await rejection(provider.verify(who, credential));
    expect(failed).toBeInstanceOf(VerificationError);
    expect(failed.message).not.toContain(credential.secret.revealJson().secret_id);
    expect(await provider.revoke(who, credential.handle)).toBe('already-revoked');
    expect((await provider.list(who)).map((listed) => listed.handle)).not.toContain(credential.handle);
  });

  it('verifies a single-use secret-id without spending its use: a later real login still succeeds', async () => {
    const credential = await provider.issue(once, { versionId: versionId() });
    await provider.verify(once, credential);
    await provider.verify(once, credential);
    const lookup = await client.write(`auth/${mount}/role/${limitedRole}/secret-id-accessor/lookup`, {
      secret_id_accessor: credential.handle,
    });
    expect(lookup.data?.secret_id_num_uses).toBe(1);
    // act: the pipeline's one login
    await login(credential.secret);
    // Used up: Vault deleted it, and verification says so.
    expect(await rejection(provider.verify(once, credential))).toBeInstanceOf(VerificationError);
    expect(await provider.revoke(once, credential.handle)).toBe('already-revoked');
  });

  it('refuses a single-use secret-id delivered with a role-id that is not the role’s', async () => {
    const credential = await provider.issue(once, { versionId: versionId() });
    const { secret_id } = credential.secret.revealJson();
    const wrongRole = SecretValue.ofJson({
      role_id: randomBytes(16).toString('hex'),
      secret_id: String(secret_id),
    });
    const failed = await rejection(provider.verify(once, { handle: credential.handle, secret: wrongRole }));
    expect(failed).toBeInstanceOf(VerificationError);
    expect(failed.message).toMatch(/role_id/);
  });

  it('fails to issue for a role that does not exist, creating nothing', async () => {
    const missing = identity({
      id: uniqueName('kw-approle-missing'),
      kind: 'vault-approle-secret-id',
      scope: { mount, roleName: uniqueName('no-such-role') },
    }) as IdentityOfKind<'vault-approle-secret-id'>;
    expect(await rejection(provider.issue(missing, { versionId: versionId() }))).toBeInstanceOf(
      NotFoundError,
    );
  });
});

describe('delivery: vault kv', () => {
  const client = newVaultClient();
  const delivery = new VaultKvDelivery({ client });
  const folder = uniqueName('kw-delivery');
  const paths: string[] = [];
  const target = (name: string): VaultKvDeliveryTarget => {
    const path = `${folder}/${name}`;
    paths.push(path);
    return { type: 'vault-kv', mount: 'secret', path };
  };
  /** What the pipeline reads: the newest version of the secret. */
  const pipelineRead = async (to: VaultKvDeliveryTarget) =>
    (await client.read(`secret/data/${to.path}`))?.data?.data as Record<string, unknown> | undefined;
  const jsonSecret = () => SecretValue.ofJson({ username: 'ci', password: secretText() });

  afterAll(async () => {
    await Promise.all(paths.map((path) => client.delete(`secret/metadata/${path}`)));
  });

  it('stages a value where the pipeline cannot see it until promote', async () => {
    // prepare: a value the pipeline reads today
    const to = target('db');
    const today = { username: 'ci', password: secretText() };
    await client.write(`secret/data/${to.path}`, { data: today });
    const version = versionId();
    const next = jsonSecret();
    // act
    await delivery.stagePending(to, version, next);
    // assess: staged, readable by keywarden, invisible at the pipeline path
    expect((await delivery.readPending(to, version))?.reveal()).toBe(next.reveal());
    expect(await pipelineRead(to)).toEqual(today);
    const current = await delivery.readCurrent(to);
    expect(current?.versionId).toBeUndefined();
    expect(current?.secret.revealJson()).toEqual(today);

    // act: promote
    await delivery.promote(to, version);
    expect(await pipelineRead(to)).toEqual(next.revealJson());
    expect(await delivery.readCurrent(to)).toMatchObject({ versionId: version });
    expect((await delivery.readCurrent(to))?.secret.revealJson()).toEqual(next.revealJson());
    expect(await kvVersionOf(client, 'secret', to.path, version)).toBe(2);
    // The sidecar is gone with all its versions.
    expect(await delivery.readPending(to, version)).toBeUndefined();
    expect(await client.read(`secret/metadata/keywarden-pending/${to.path}/${version}`)).toBeUndefined();
  });

  it('stages idempotently: the same value again writes nothing, another value for the same version is refused', async () => {
    const to = target('stage-twice');
    const version = versionId();
    const value = jsonSecret();
    await delivery.stagePending(to, version, value);
    await delivery.stagePending(to, version, new SecretValue(value.reveal()));
    const sidecar = await readKvState(client, 'secret', `keywarden-pending/${to.path}/${version}`);
    expect(sidecar?.currentVersion).toBe(1);
    const refused = await rejection(delivery.stagePending(to, version, jsonSecret()));
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused.message).not.toContain(value.revealJson().password);
    await delivery.discardPending(to, version);
    expect(await delivery.readPending(to, version)).toBeUndefined();
    // Discarding what is not there is harmless.
    await delivery.discardPending(to, version);
  });

  it('promotes twice without a second version', async () => {
    const to = target('twice');
    const version = versionId();
    await delivery.stagePending(to, version, jsonSecret());
    await delivery.promote(to, version);
    await delivery.promote(to, version);
    const state = await readKvState(client, 'secret', to.path);
    expect(state?.currentVersion).toBe(1);
    expect(state?.customMetadata).toEqual({ 'kw-1': version });
  });

  it('after a crash between the KV write and the metadata update, promotes again without a second version', async () => {
    // prepare: a first promoted version, then the second's write done by "a run that crashed"
    const to = target('crash');
    const first = versionId();
    await delivery.stagePending(to, first, jsonSecret());
    await delivery.promote(to, first);
    const second = versionId();
    const value = jsonSecret();
    await delivery.stagePending(to, second, value);
    await client.write(`secret/data/${to.path}`, { options: { cas: 1 }, data: kvDataOf(value).data });
    // act
    await delivery.promote(to, second);
    // assess
    const state = await readKvState(client, 'secret', to.path);
    expect(state?.currentVersion).toBe(2);
    expect(state?.customMetadata).toEqual({ 'kw-1': first, 'kw-2': second });
    expect(await delivery.readPending(to, second)).toBeUndefined();
    expect((await delivery.readCurrent(to))?.versionId).toBe(second);
  });

  it('keeps a plain (non-JSON) value byte for byte: the pipeline reads it as {value}', async () => {
    const to = target('token');
    const version = versionId();
    const value = new SecretValue(secretText());
    await delivery.stagePending(to, version, value);
    await delivery.promote(to, version);
    expect(await pipelineRead(to)).toEqual({ value: value.reveal() });
    expect((await delivery.readCurrent(to))?.secret.reveal()).toBe(value.reveal());
  });

  it('refuses to promote a version whose value was never staged or was discarded, writing nothing', async () => {
    const to = target('missing');
    expect(await rejection(delivery.promote(to, versionId()))).toBeInstanceOf(NotFoundError);
    const version = versionId();
    await delivery.stagePending(to, version, jsonSecret());
    await delivery.discardPending(to, version);
    expect(await rejection(delivery.promote(to, version))).toBeInstanceOf(NotFoundError);
    expect(await pipelineRead(to)).toBeUndefined();
  });

  it('prunes records of destroyed versions when it records a new one', async () => {
    const to = target('prune');
    const versions = [versionId(), versionId(), versionId()];
    for (const version of versions.slice(0, 2)) {
      await delivery.stagePending(to, version, jsonSecret());
      await delivery.promote(to, version);
    }
    await client.write(`secret/destroy/${to.path}`, { versions: [1] });
    const [, second, third] = versions as [string, string, string];
    await delivery.stagePending(to, third, jsonSecret());
    await delivery.promote(to, third);
    expect((await readKvState(client, 'secret', to.path))?.customMetadata).toEqual({
      'kw-2': second,
      'kw-3': third,
    });
  });

  it('fails with a ConflictError when someone writes the secret or its metadata mid-promote, and promotes cleanly on retry', async () => {
    // prepare: a client that lets "someone else" write just before promote's own write to `path`
    const to = target('conflict');
    const intruder = { path: '', body: {} as Record<string, unknown> };
    class RacingClient extends VaultClient {
      override async write(path: string, data: Record<string, unknown>) {
        if (path === intruder.path) {
          intruder.path = '';
          await super.write(path, intruder.body);
        }
        return super.write(path, data);
      }
    }
    const racing = new VaultKvDelivery({
      client: new RacingClient({ addr: testStack().vault.addr, token: testStack().vault.token }),
    });
    const version = versionId();
    const value = jsonSecret();
    await racing.stagePending(to, version, value);

    // act 1: a pipeline writes the data between our read and our check-and-set write
    const theirs = { value: secretText() };
    Object.assign(intruder, { path: `secret/data/${to.path}`, body: { data: theirs } });
    const dataConflict = await rejection(racing.promote(to, version));
    expect(dataConflict).toBeInstanceOf(ConflictError);
    expect(dataConflict).toMatchObject({ retryable: true });
    expect(await pipelineRead(to)).toEqual(theirs);

    // act 2: someone edits the metadata between our read and our write of it (OpenBao metadata_cas)
    Object.assign(intruder, {
      path: `secret/metadata/${to.path}`,
      body: { custom_metadata: { owner: 'team-data' } },
    });
    expect(await rejection(racing.promote(to, version))).toBeInstanceOf(ConflictError);

    // assess: the retry finds its own write and records it, once
    await racing.promote(to, version);
    const state = await readKvState(client, 'secret', to.path);
    expect(state?.currentVersion).toBe(2);
    expect(state?.customMetadata).toEqual({ owner: 'team-data', 'kw-2': version });
    // The staged fields over theirs: a field the staged value does not set is kept.
    expect(await pipelineRead(to)).toEqual({ ...theirs, ...value.revealJson() });
  });
});

describe('provider: vault-kv', () => {
  const client = newVaultClient();
  const provider = new VaultKvProvider({ client, random: randomBytes });
  const delivery = new VaultKvDelivery({ client });
  const folder = uniqueName('kw-kv');
  const kvIdentity = (name: string) =>
    identity({
      id: uniqueName(`kw-kv-${name}`),
      kind: 'vault-kv',
      scope: { path: `${folder}/${name}`, generator: { length: 32, classes: ['lower', 'digits'] } },
    }) as IdentityOfKind<'vault-kv'>;
  const targetOf = (who: IdentityOfKind<'vault-kv'>): VaultKvDeliveryTarget => ({
    type: 'vault-kv',
    mount: who.scope.mount,
    path: who.scope.path,
  });
  const identities: IdentityOfKind<'vault-kv'>[] = [];

  /** create → set → test → finish, as the rotation engine drives it. */
  const rotate = async (who: IdentityOfKind<'vault-kv'>, previous?: string) => {
    const version = versionId();
    const credential = await provider.issue(who, { versionId: version });
    await delivery.stagePending(targetOf(who), version, credential.secret);
    await provider.verify(who, credential);
    await delivery.promote(targetOf(who), version);
    if (previous) await provider.supersede(who, previous);
    return credential;
  };

  afterAll(async () => {
    await Promise.all(identities.map((who) => client.delete(`secret/metadata/${who.scope.path}`)));
  });

  const fresh = (name: string) => {
    const who = kvIdentity(name);
    identities.push(who);
    return who;
  };

  it('issues a generated {value} with the version id as handle, writing nothing to Vault', async () => {
    const who = fresh('issue');
    const version = versionId();
    const credential = await provider.issue(who, { versionId: version });
    expect(credential.handle).toBe(version);
    expect(credential.secret.revealJson().value).toMatch(/^[a-z0-9]{32}$/);
    expect(await readKvState(client, 'secret', who.scope.path)).toBeUndefined();
    expect(await provider.list(who)).toEqual([]);
  });

  it('verifies a staged value before promotion and the recorded KV version after; refuses another value', async () => {
    const who = fresh('verify');
    const version = versionId();
    const credential = await provider.issue(who, { versionId: version });
    expect(await rejection(provider.verify(who, credential))).toBeInstanceOf(VerificationError);
    await delivery.stagePending(targetOf(who), version, credential.secret);
    await provider.verify(who, credential);
    await delivery.promote(targetOf(who), version);
    await provider.verify(who, credential);
    const other = await provider.issue(who, { versionId: version });
    const failed = await rejection(provider.verify(who, { handle: version, secret: other.secret }));
    expect(failed).toBeInstanceOf(VerificationError);
    expect(failed.message).not.toContain(other.secret.revealJson().value);
    expect(failed.message).not.toContain(credential.secret.revealJson().value);
  });

  it('keeps the previous version readable after a rotation, and supersede destroys only what is older', async () => {
    // prepare: three rotations, as three finishSecret steps would leave them
    const who = fresh('supersede');
    const first = await rotate(who);
    const second = await rotate(who, first.handle);
    // The previous value still works through its grace period.
    await provider.verify(who, first);
    expect(await readKvVersion(client, 'secret', who.scope.path, 1)).toEqual(first.secret.revealJson());
    // act: the third rotation supersedes the second, which becomes previous
    const third = await rotate(who, second.handle);
    // assess
    expect(await readKvVersion(client, 'secret', who.scope.path, 1)).toBeUndefined();
    expect((await readKvState(client, 'secret', who.scope.path))?.versions.get(1)?.destroyed).toBe(true);
    expect(await readKvVersion(client, 'secret', who.scope.path, 2)).toEqual(second.secret.revealJson());
    expect(await readKvVersion(client, 'secret', who.scope.path, 3)).toEqual(third.secret.revealJson());
    expect(await provider.list(who)).toEqual([
      expect.objectContaining({ handle: second.handle, versionId: second.handle, status: 'active' }),
      expect.objectContaining({ handle: third.handle, versionId: third.handle, status: 'active' }),
    ]);
    // Again: nothing left to destroy.
    await provider.supersede(who, second.handle);
    expect(await readKvVersion(client, 'secret', who.scope.path, 2)).toEqual(second.secret.revealJson());
    // An unknown anchor destroys nothing.
    expect(await rejection(provider.supersede(who, versionId()))).toBeInstanceOf(NotFoundError);
  });

  it('revokes by destroying the recorded version; twice is already-revoked', async () => {
    const who = fresh('revoke');
    const old = await rotate(who);
    const current = await rotate(who);
    expect(await provider.revoke(who, old.handle)).toBe('revoked');
    expect(await readKvVersion(client, 'secret', who.scope.path, 1)).toBeUndefined();
    expect(await rejection(provider.verify(who, old))).toBeInstanceOf(VerificationError);
    expect(await provider.revoke(who, old.handle)).toBe('already-revoked');
    expect(await provider.revoke(who, versionId())).toBe('already-revoked');
    // The current value is untouched.
    await provider.verify(who, current);
    expect((await provider.list(who)).map((listed) => listed.handle)).toEqual([current.handle]);
  });

  it('revokes a value that was staged but never promoted by deleting its sidecar', async () => {
    const who = fresh('revoke-pending');
    const version = versionId();
    const credential = await provider.issue(who, { versionId: version });
    await delivery.stagePending(targetOf(who), version, credential.secret);
    expect(await provider.revoke(who, version)).toBe('revoked');
    expect(await delivery.readPending(targetOf(who), version)).toBeUndefined();
    expect(await provider.revoke(who, version)).toBe('already-revoked');
  });

  it('lists versions written outside keywarden as kv-v<n>, which revoke accepts', async () => {
    const who = fresh('adopt');
    await client.write(`secret/data/${who.scope.path}`, { data: { value: secretText() } });
    const ours = await rotate(who);
    await client.write(`secret/data/${who.scope.path}`, { data: { value: secretText() } });
    await client.delete(`secret/data/${who.scope.path}`);
    expect(await provider.list(who)).toEqual([
      expect.objectContaining({ handle: 'kv-v1', status: 'active' }),
      expect.objectContaining({ handle: ours.handle, versionId: ours.handle, status: 'active' }),
      // Soft-deleted: still there (undeletable), but not readable.
      expect.objectContaining({ handle: 'kv-v3', status: 'inactive' }),
    ]);
    expect((await provider.list(who))[0]?.versionId).toBeUndefined();
    expect(await provider.revoke(who, 'kv-v1')).toBe('revoked');
    expect(await provider.revoke(who, 'kv-v1')).toBe('already-revoked');
  });
});

describe('delivery: vault kv, a write whose answer was lost', () => {
  const client = newVaultClient();
  const folder = uniqueName('kw-lost-answer');
  const paths: string[] = [];
  const target = (name: string): VaultKvDeliveryTarget => {
    const path = `${folder}/${name}`;
    paths.push(path);
    return { type: 'vault-kv', mount: 'secret', path };
  };
  const jsonSecret = () => SecretValue.ofJson({ username: 'ci', password: secretText() });

  /**
   * A delivery whose client carries out the first write to `lose.path` (and, with
   * `before`, lets someone else write first), then sends the same request again, as
   * the client's retry does after a lost answer: the caller sees only the retry's answer.
   */
  function losingFirstAnswer() {
    const lose = {
      path: '',
      after: undefined as undefined | (() => Promise<unknown>),
      before: undefined as undefined | (() => Promise<unknown>),
    };
    class LosingClient extends VaultClient {
      override async write(path: string, data: Record<string, unknown>) {
        if (path !== lose.path) return super.write(path, data);
        lose.path = '';
        await lose.before?.();
        await super.write(path, data);
        await lose.after?.();
        return super.write(path, data);
      }
    }
    const delivery = new VaultKvDelivery({
      client: new LosingClient({ addr: testStack().vault.addr, token: testStack().vault.token }),
    });
    return { lose, delivery };
  }

  afterAll(async () => {
    await Promise.all(paths.map((path) => client.delete(`secret/metadata/${path}`)));
  });

  it('counts a check-and-set write that landed as done when its retry meets it', async () => {
    // prepare: the pipeline's value today, and a staged one
    const to = target('data');
    const today = { username: 'ci', password: secretText(), host: 'db.internal' };
    await client.write(`secret/data/${to.path}`, { data: today });
    const { lose, delivery } = losingFirstAnswer();
    const version = versionId();
    const value = jsonSecret();
    await delivery.stagePending(to, version, value);
    lose.path = `secret/data/${to.path}`;

    // act
    await delivery.promote(to, version);

    // assess: one new version, ours, recorded once; nothing left staged
    const state = await readKvState(client, 'secret', to.path);
    expect(state?.currentVersion).toBe(2);
    expect(state?.customMetadata).toEqual({ 'kw-2': version });
    expect(await readKvVersion(client, 'secret', to.path, 2)).toEqual({ ...today, ...value.revealJson() });
    expect(await delivery.readPending(to, version)).toBeUndefined();
  });

  it('counts a metadata record that landed as done when its retry meets it (OpenBao metadata_cas)', async () => {
    // prepare
    const to = target('metadata');
    const { lose, delivery } = losingFirstAnswer();
    const version = versionId();
    const value = new SecretValue(secretText());
    await delivery.stagePending(to, version, value);
    lose.path = `secret/metadata/${to.path}`;

    // act
    await delivery.promote(to, version);

    // assess
    const state = await readKvState(client, 'secret', to.path);
    expect(state?.currentVersion).toBe(1);
    expect(state?.customMetadata).toEqual({ 'kw-1': version, 'kw-1-format': 'text' });
    expect((await delivery.readCurrent(to))?.secret.reveal()).toBe(value.reveal());
    expect(await delivery.readPending(to, version)).toBeUndefined();
  });

  it('a CAS mismatch whose newest version is someone else’s value is still a conflict, naming no value', async () => {
    // prepare: someone else writes instead of us (before), or on top of our landed write (after)
    for (const when of ['before', 'after'] as const) {
      const to = target(`conflict-${when}`);
      const { lose, delivery } = losingFirstAnswer();
      const version = versionId();
      const password = secretText();
      const value = SecretValue.ofJson({ username: 'ci', password });
      await delivery.stagePending(to, version, value);
      const theirs = { value: secretText() };
      lose.path = `secret/data/${to.path}`;
      lose[when] = () => client.write(`secret/data/${to.path}`, { data: theirs });

      // act
      const conflict = await rejection(delivery.promote(to, version));

      // assess: refused, retryably, without a value in the message; theirs stays the newest
      expect(conflict, when).toBeInstanceOf(ConflictError);
      expect(conflict).toMatchObject({ retryable: true });
      expect(conflict.message).toMatch(/someone else wrote it/);
      for (const secret of [theirs.value, password]) {
        expect(conflict.message).not.toContain(secret);
      }
      const state = await readKvState(client, 'secret', to.path);
      expect(await readKvVersion(client, 'secret', to.path, state?.currentVersion ?? 0)).toEqual(theirs);
      expect(state?.customMetadata ?? {}).toEqual({});
      // Still staged: the next promote re-checks.
      expect((await delivery.readPending(to, version))?.reveal()).toBe(value.reveal());
    }
  });
});
