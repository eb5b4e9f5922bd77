/**
 * Vault discovery and the Vault client against the real OpenBao dev server of
 * the local stack. The server is shared with other test files: everything made
 * here carries a `uniqueName`, and assertions look at those resources only.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fingerprinter } from '../../functions/adapters/crypto.ts';
import { VaultClient, VaultError } from '../../functions/adapters/vault/client.ts';
import { VaultDiscovery } from '../../functions/adapters/vault/vault-discovery.ts';
import type { DiscoveredCredential } from '../../functions/core/discovery.ts';
import { assessFindings } from '../../functions/core/findings.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { identity as declare } from '../support/fixtures.ts';
import { newVaultClient, testStack, uniqueName } from '../support/stack.ts';

/** A value shaped like nothing in particular, made at run time. */
const secretValue = () => randomBytes(24).toString('base64url');

describe('discovery: vault', () => {
  const client = newVaultClient();
  const mount = uniqueName('kw-approle');
  const roles = { two: uniqueName('ci-two'), none: uniqueName('ci-none'), login: uniqueName('ci-login') };
  const kvPrefix = uniqueName('kw-kv');
  const identity = uniqueName('kw-token-id');
  const orphanName = uniqueName('ci-orphan');
  const kvPaths = ['app/db', 'app/api', 'app/with space', 'nested/deeper/db-copy', 'app/removed'];
  /** Every secret made here; none may appear in discovery's output. */
  const secrets: string[] = [];

  let result: DiscoveredCredential[];
  let started: number;
  let selfAccessor: string;
  const secretIds: { accessor: string; ttl?: string }[] = [];
  const tokens = { declared: '', orphan: '', login: '' };
  let apiV2CreatedTime: string;
  /** Made directly through the Vault API, as a team's pipelines did, then declared. */
  const outside = { byAccessor: '', byRole: '', byPrefix: '', gone: '' };
  const tokenRole = uniqueName('kw-token-role');
  const displayPrefix = uniqueName('kw-jenkins');
  const otherMount = uniqueName('kw-approle-other');
  const outsideKv = uniqueName('kw-kv-outside');
  const ids = {
    byAccessor: uniqueName('kw-legacy-token'),
    byRole: uniqueName('kw-role-token'),
    byPrefix: uniqueName('kw-prefix-token'),
    gone: uniqueName('kw-gone-token'),
    approle: uniqueName('kw-outside-approle'),
    approleMissing: uniqueName('kw-missing-approle'),
    kv: uniqueName('kw-outside-kv'),
    kvMissing: uniqueName('kw-missing-kv'),
  };
  let inventory: Identity[];

  const byKey = (key: string) => result.filter((credential) => credential.key === key);

  beforeAll(async () => {
    // prepare
    started = Date.now();
    const fingerprinter = new Fingerprinter(randomBytes(32));
    selfAccessor = (await client.lookupSelf()).accessor;

    // An AppRole mount of our own, so role listings hold our roles only.
    await client.write(`sys/auth/${mount}`, { type: 'approle' });
    for (const role of Object.values(roles))
      await client.write(`auth/${mount}/role/${role}`, { token_ttl: '1h' });
    for (const body of [{ ttl: '2h', num_uses: 3 }, {}]) {
      const answer = await client.write(`auth/${mount}/role/${roles.two}/secret-id`, body);
      secrets.push(String(answer.data?.secret_id));
      secretIds.push({
        accessor: String(answer.data?.secret_id_accessor),
        ...('ttl' in body ? { ttl: body.ttl } : {}),
      });
    }
    const roleId = String((await client.read(`auth/${mount}/role/${roles.login}/role-id`))?.data?.role_id);
    const loginSecret = String(
      (await client.write(`auth/${mount}/role/${roles.login}/secret-id`, {})).data?.secret_id,
    );
    // A plain write: node-vault's approleLogin would make the login token the client's own.
    const login = await client.write(`auth/${mount}/login`, { role_id: roleId, secret_id: loginSecret });
    tokens.login = String(login.auth?.accessor);
    secrets.push(loginSecret, String(login.auth?.client_token));

    const declared = await client.createToken({
      policies: ['default'],
      ttl: '1h',
      display_name: uniqueName('ci-declared'),
      meta: { 'keywarden-identity': identity },
    });
    const orphan = await client.createToken(
      { policies: ['default'], ttl: '1h', display_name: orphanName },
      { orphan: true },
    );
    tokens.declared = declared.accessor;
    tokens.orphan = orphan.accessor;
    secrets.push(declared.client_token, orphan.client_token);

    // Equal data at two paths (one in a nested folder), two versions of another.
    const writeKv = (path: string, data: Record<string, string>) =>
      client.write(`secret/data/${kvPrefix}/${encodeURI(path)}`, { data });
    const kvSecret = () => {
      const value = secretValue();
      secrets.push(value);
      return value;
    };
    const password = kvSecret();
    await writeKv('app/db', { user: 'ci', password });
    await writeKv('nested/deeper/db-copy', { password, user: 'ci' });
    await writeKv('app/api', { token: kvSecret() });
    apiV2CreatedTime = String((await writeKv('app/api', { token: kvSecret() })).data?.created_time);
    await writeKv('app/with space', { key: kvSecret() });
    await writeKv('app/removed', { key: kvSecret() });
    await client.delete(`secret/data/${kvPrefix}/app/removed`);

    // Tokens made outside keywarden: a plain one, one from a token role, one by display name; one gone.
    const plain = await client.createToken({ policies: ['default'], ttl: '1h', display_name: 'pipeline' });
    await client.write(`auth/token/roles/${tokenRole}`, { allowed_policies: ['default'], orphan: true });
    const viaRole = (await client.write(`auth/token/create/${tokenRole}`, { ttl: '1h' })).auth;
    const viaPrefix = await client.createToken(
      { policies: ['default'], ttl: '1h', display_name: `${displayPrefix}-nightly` },
      { orphan: true },
    );
    const gone = await client.createToken({ policies: ['default'], ttl: '1h' }, { orphan: true });
    await client.revokeAccessor(gone.accessor);
    Object.assign(outside, {
      byAccessor: plain.accessor,
      byRole: String(viaRole?.accessor),
      byPrefix: viaPrefix.accessor,
      gone: gone.accessor,
    });
    secrets.push(
      plain.client_token,
      String(viaRole?.client_token),
      viaPrefix.client_token,
      gone.client_token,
    );
    // An AppRole role on a mount discovery is not configured with, and a KV path outside its prefixes.
    await client.write(`sys/auth/${otherMount}`, { type: 'approle' });
    await client.write(`auth/${otherMount}/role/ci-outside`, { token_ttl: '1h' });
    const outsideSecretId = await client.write(`auth/${otherMount}/role/ci-outside/secret-id`, {});
    secrets.push(String(outsideSecretId.data?.secret_id));
    await client.write(`secret/data/${outsideKv}/db`, { data: { password: kvSecret() } });
    inventory = [
      declare({ id: ids.byAccessor, kind: 'vault-token', scope: { accessor: outside.byAccessor } }),
      declare({ id: ids.byRole, kind: 'vault-token', scope: { tokenRole } }),
      declare({ id: ids.byPrefix, kind: 'vault-token', scope: { displayNamePrefix: displayPrefix } }),
      declare({ id: ids.gone, kind: 'vault-token', scope: { accessor: [outside.gone] } }),
      declare({
        id: ids.approle,
        kind: 'vault-approle-secret-id',
        scope: { mount: otherMount, roleName: 'ci-outside' },
      }),
      declare({
        id: ids.approleMissing,
        kind: 'vault-approle-secret-id',
        scope: { mount: otherMount, roleName: 'ci-never-made' },
      }),
      declare({ id: ids.kv, kind: 'vault-kv', scope: { path: `${outsideKv}/db` } }),
      declare({ id: ids.kvMissing, kind: 'vault-kv', scope: { path: `${outsideKv}/never-written` } }),
    ];

    // act
    const discovery = new VaultDiscovery({
      client,
      approleMounts: [mount],
      kvPrefixes: [`secret/${kvPrefix}/`],
      fingerprinter,
      concurrency: 4,
    });
    result = await discovery.discover({
      leasePrefixes: [`auth/${mount}/login`],
      identities: inventory,
      breakglassRoleArns: [],
    });
  });

  afterAll(async () => {
    await Promise.all(
      [tokens.declared, tokens.orphan, outside.byAccessor, outside.byRole, outside.byPrefix]
        .filter(Boolean)
        .map((a) => client.revokeAccessor(a)),
    );
    await client.delete(`auth/token/roles/${tokenRole}`);
    await client.delete(`secret/metadata/${outsideKv}/db`);
    await client.delete(`sys/auth/${otherMount}`);
    // Disabling the mount revokes its login token and lease too.
    await client.delete(`sys/auth/${mount}`);
    await Promise.all(kvPaths.map((path) => client.delete(`secret/metadata/${kvPrefix}/${encodeURI(path)}`)));
  });

  it('finds each AppRole secret-id with its accessor and creation time', () => {
    const found = byKey(`vault-approle:${mount}/${roles.two}`);
    expect(found.map((credential) => credential.handle).sort()).toEqual(
      secretIds.map((s) => s.accessor).sort(),
    );
    for (const credential of found) {
      expect(credential).toMatchObject({ kind: 'vault-approle-secret-id', status: 'active' });
      expect(credential.label).toBe(
        `approle ${mount}/${roles.two} secret-id ${credential.handle.slice(0, 8)}…`,
      );
      expect(Date.parse(credential.createdAt ?? '')).toBeGreaterThanOrEqual(started - 5_000);
      expect(credential.details).toMatchObject({ mount, role: roles.two });
    }
    const withTtl = found.find((credential) => credential.handle === secretIds[0]?.accessor);
    expect(withTtl?.details.secretIdNumUses).toBe(3);
    const lifetime = Date.parse(withTtl?.expiresAt ?? '') - Date.parse(withTtl?.createdAt ?? '');
    expect(lifetime).toBeGreaterThan(2 * 3_600_000 - 5_000);
    expect(lifetime).toBeLessThan(2 * 3_600_000 + 5_000);
    // No TTL: Vault's zero time is not an expiry.
    expect(
      found.find((credential) => credential.handle === secretIds[1]?.accessor)?.expiresAt,
    ).toBeUndefined();
  });

  it('reports a role without secret-ids as one inactive credential, so the role still counts as existing', () => {
    expect(byKey(`vault-approle:${mount}/${roles.none}`)).toEqual([
      expect.objectContaining({
        kind: 'vault-approle-secret-id',
        handle: `${mount}/${roles.none}`,
        status: 'inactive',
      }),
    ]);
  });

  it('keys a token to the identity named in its keywarden-identity meta', () => {
    const [token, ...more] = byKey(`vault-token:${identity}`);
    expect(more).toEqual([]);
    expect(token).toMatchObject({ kind: 'vault-token', handle: tokens.declared, status: 'active' });
    expect(token?.details).toMatchObject({ policies: 'default', orphan: false, renewable: true });
    expect(Date.parse(token?.expiresAt ?? '')).toBeGreaterThan(Date.now() + 3_500_000);
  });

  it('keys an orphan token without meta as undeclared/<display name>/<accessor prefix>', () => {
    // Vault prefixes display names of created tokens with `token-`.
    const key = `vault-token:undeclared/token-${orphanName}/${tokens.orphan.slice(0, 8)}`;
    expect(byKey(key)).toEqual([
      expect.objectContaining({
        handle: tokens.orphan,
        label: `token token-${orphanName} (default)`,
        details: expect.objectContaining({ orphan: true, displayName: `token-${orphanName}` }),
      }),
    ]);
  });

  it('keys tokens made outside keywarden to the identity declaring them by accessor, token role or display-name prefix', () => {
    for (const [id, accessor] of [
      [ids.byAccessor, outside.byAccessor],
      [ids.byRole, outside.byRole],
      [ids.byPrefix, outside.byPrefix],
    ] as const) {
      expect(byKey(`vault-token:${id}`)).toEqual([
        expect.objectContaining({ kind: 'vault-token', handle: accessor, status: 'active' }),
      ]);
    }
    const undeclared = result.filter((credential) => credential.key.startsWith('vault-token:undeclared/'));
    for (const accessor of [outside.byAccessor, outside.byRole, outside.byPrefix]) {
      expect(undeclared.map((credential) => credential.handle)).not.toContain(accessor);
    }
  });

  it('looks up declared AppRole roles and KV paths outside its mounts and prefixes directly', () => {
    expect(byKey(`vault-approle:${otherMount}/ci-outside`)).toEqual([
      expect.objectContaining({ kind: 'vault-approle-secret-id', status: 'active' }),
    ]);
    expect(byKey(`vault-kv:secret/${outsideKv}/db`)).toEqual([
      expect.objectContaining({ kind: 'vault-kv', status: 'active', fingerprint: expect.any(String) }),
    ]);
  });

  it('leaves missing exactly what really does not exist: a revoked accessor, a role and a path never made', () => {
    const findings = assessFindings(inventory, result, { now: new Date(), staleAfter: '90d' });
    expect(
      findings
        .filter((finding) => finding.type === 'missing')
        .map((finding) => finding.subject)
        .sort(),
    ).toEqual([ids.approleMissing, ids.gone, ids.kvMissing].sort());
    expect(
      findings.filter(
        (finding) =>
          finding.type === 'undeclared' && finding.handles.some((h) => Object.values(outside).includes(h)),
      ),
    ).toEqual([]);
  });

  it("leaves out keywarden's own token", () => {
    expect(result.filter((credential) => credential.handle === selfAccessor)).toEqual([]);
  });

  it('shows an AppRole login as a lease under auth/<mount>/login, not as a token', () => {
    expect(result.filter((credential) => credential.handle === tokens.login)).toEqual([]);
    const [lease, ...more] = byKey(`vault-lease:auth/${mount}/login`);
    expect(more).toEqual([]);
    expect(lease).toMatchObject({ kind: 'vault-lease', status: 'active' });
    expect(lease?.handle.startsWith(`auth/${mount}/login/`)).toBe(true);
    expect(Date.parse(lease?.createdAt ?? '')).toBeGreaterThanOrEqual(started - 5_000);
    expect(Date.parse(lease?.expiresAt ?? '')).toBeGreaterThan(Date.now() + 3_500_000);
  });

  it('finds KV secrets under the prefix, nested folders included, with versions and fingerprints', () => {
    const kv = (path: string) => byKey(`vault-kv:secret/${kvPrefix}/${path}`);
    for (const path of kvPaths) expect(kv(path)).toHaveLength(1);
    const [db] = kv('app/db');
    const [copy] = kv('nested/deeper/db-copy');
    const [api] = kv('app/api');
    expect(api).toMatchObject({
      kind: 'vault-kv',
      handle: `secret/${kvPrefix}/app/api@v2`,
      label: `kv secret/${kvPrefix}/app/api`,
      status: 'active',
      createdAt: new Date(apiV2CreatedTime).toISOString(),
      details: { version: 2 },
    });
    // Equal data, written with keys in another order: equal fingerprint; other data: another one.
    expect(db?.fingerprint).toMatch(/^hmac-sha256:[0-9a-f]{32}$/);
    expect(copy?.fingerprint).toBe(db?.fingerprint);
    expect(api?.fingerprint).not.toBe(db?.fingerprint);
    expect(kv('app/with space')[0]?.status).toBe('active');
    // Its current version deleted: still there (undeletable), but not live.
    expect(kv('app/removed')[0]).toMatchObject({ status: 'inactive', details: { version: 1 } });
    expect(kv('app/removed')[0]?.fingerprint).toBeUndefined();
  });

  it('carries no secret value anywhere in its output', () => {
    const text = JSON.stringify(result);
    expect(secrets.length).toBeGreaterThanOrEqual(10);
    for (const secret of [...secrets, testStack().vault.token]) expect(text).not.toContain(secret);
  });
});

describe('vault: client', () => {
  const client = newVaultClient();

  it("keeps its own token when it creates one (node-vault's tokenCreate would swap it)", async () => {
    const before = await client.lookupSelf();
    const created = await client.createToken({ policies: ['default'], ttl: '5m' });
    const after = await client.lookupSelf();
    expect(after.accessor).toBe(before.accessor);
    expect(created.accessor).not.toBe(before.accessor);
    // lookup-self answers with the token in `id`; the client strips it.
    expect(JSON.stringify(after)).not.toContain(testStack().vault.token);
    expect(await client.revokeAccessor(created.accessor)).toBe('revoked');
    expect(await client.revokeAccessor(created.accessor)).toBe('already-revoked');
    expect(await client.lookupAccessor(created.accessor)).toBeUndefined();
  });

  it('answers "nothing there" with undefined and [], but fails on a path no mount serves', async () => {
    const missing = uniqueName('kw-missing');
    expect(await client.read(`secret/data/${missing}`)).toBeUndefined();
    expect(await client.list(`secret/metadata/${missing}/`)).toEqual([]);
    const error = await client.list(`auth/${missing}/role`).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(VaultError);
    expect(error).toMatchObject({
      status: 404,
      retryable: false,
      method: 'list',
      path: `auth/${missing}/role`,
    });
    expect((error as VaultError).message).toContain('no handler for route');
  });

  it('never echoes a request value in an error, even when Vault quotes it back whole or in part', async () => {
    // Ends in a letter that is no duration unit: a trailing s, m, h or d makes Vault read the rest as a number.
    const letters = `${Array.from(randomBytes(20), (byte) => String.fromCharCode(97 + (byte % 26))).join('')}x`;
    // Go's duration parser quotes the whole value ("invalid duration") or, after a leading
    // number, only the part it could not read ("unknown unit").
    for (const [value, said, fragment] of [
      [`x${letters}`, 'invalid duration', letters],
      [`7${letters}`, 'unknown unit', letters.slice(0, 8)],
    ] as const) {
      const error = (await client
        .write('auth/token/create', { ttl: value })
        .catch((caught: unknown) => caught)) as VaultError;
      expect(error).toMatchObject({ name: 'VaultError', status: 400, retryable: false });
      expect(error.message).toContain('write auth/token/create');
      expect(error.message).toContain(said);
      expect(error.message).toContain('"[redacted]"');
      const everything = JSON.stringify({ ...error, message: error.message, cause: String(error.cause) });
      expect(everything).not.toContain(fragment);
    }
  });

  it('marks an unreachable Vault as retryable, without a status', async () => {
    const dead = new VaultClient({
      addr: 'http://127.0.0.1:9',
      token: testStack().vault.token,
      requestTimeoutMs: 2_000,
    });
    const error = (await dead.read('sys/mounts').catch((caught: unknown) => caught)) as VaultError;
    expect(error).toBeInstanceOf(VaultError);
    expect(error).toMatchObject({ status: undefined, retryable: true });
    expect(error.message).toContain('sys/mounts');
    expect(`${error.message} ${String(error.cause)}`).not.toContain(testStack().vault.token);
  });
});

describe('discovery: vault, with a token that may not read a declared resource', () => {
  const root = newVaultClient();
  const policy = uniqueName('kw-no-role-read');
  const roleName = uniqueName('ci-hidden');
  let accessor = '';
  let result: DiscoveredCredential[];

  beforeAll(async () => {
    // prepare: a discovery token that may list tokens but not read the declared AppRole role
    await root.write(`sys/policies/acl/${policy}`, {
      policy: [
        'path "auth/token/accessors" { capabilities = ["list", "sudo"] }',
        'path "auth/token/lookup-accessor" { capabilities = ["update"] }',
      ].join('\n'),
    });
    const limited = await root.createToken({ policies: [policy], ttl: '10m' });
    accessor = limited.accessor;
    const discovery = new VaultDiscovery({
      client: new VaultClient({ addr: root.addr, token: limited.client_token }),
      approleMounts: [],
      kvPrefixes: [],
      fingerprinter: new Fingerprinter('k'.repeat(32)),
    });
    // act
    result = await discovery.discover({
      leasePrefixes: [],
      identities: [declare({ id: 'hidden-role', kind: 'vault-approle-secret-id', scope: { roleName } })],
      breakglassRoleArns: [],
    });
  });

  afterAll(async () => {
    if (accessor) await root.revokeAccessor(accessor);
    await root.delete(`sys/policies/acl/${policy}`);
  });

  it('reports the refused lookup as unreadable, naming the capability, and calls nothing missing', () => {
    const key = `vault-approle:approle/${roleName}`;
    expect(result.filter((credential) => credential.key === key)).toEqual([
      expect.objectContaining({
        status: 'inactive',
        details: {
          lookupDenied: `the 'read' capability on auth/approle/role/${roleName}`,
          lookupAnswer: 'permission denied',
        },
      }),
    ]);
    const declared = [declare({ id: 'hidden-role', kind: 'vault-approle-secret-id', scope: { roleName } })];
    const findings = assessFindings(declared, result, { now: new Date(), staleAfter: '90d' });
    expect(findings.map((finding) => finding.type)).toContain('unreadable');
    expect(findings.map((finding) => finding.type)).not.toContain('missing');
  });
});
