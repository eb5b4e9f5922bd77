/**
 * Break-glass Vault tokens against the real OpenBao dev server of the local stack:
 * issued response-wrapped, unwrapped once by the requester, ended by their own TTL or
 * by keywarden's revoke. Policies and KV paths carry a `uniqueName`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VaultClient, VaultError } from '../../functions/adapters/vault/client.ts';
import { SpentWrappingTokenError, unwrapVaultToken } from '../../functions/adapters/vault/unwrap.ts';
import {
  DEFAULT_WRAP_TTL_SECONDS,
  GRANT_META_KEY,
  VaultGrantIssuer,
} from '../../functions/adapters/vault/vault-grant-issuer.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import type { BreakglassTarget } from '../../functions/core/grant.ts';
import type { IssuedGrantCredential } from '../../functions/core/ports.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { type FaultProxy, type FaultProxyOptions, startFaultProxy } from '../support/fault-proxy.ts';
import { rejection } from '../support/rejection.ts';
import { newVaultClient, testStack, uniqueName } from '../support/stack.ts';

type WrappedToken = Extract<IssuedGrantCredential, { type: 'vault-wrapped-token' }>;

function asWrapped(credential: IssuedGrantCredential): WrappedToken {
  if (credential.type !== 'vault-wrapped-token')
    throw new Error(`expected a wrapped token, got ${credential.type}`);
  return credential;
}

const sleep = (ms: number) => new Promise((wake) => setTimeout(wake, ms));

describe('grant issuer: vault-policies', () => {
  const client = newVaultClient();
  const issuer = new VaultGrantIssuer({ client });
  const policy = uniqueName('kw-breakglass');
  const target: BreakglassTarget = { type: 'vault-policies', policies: [policy] };
  const secretPath = `secret/data/${policy}/db`;
  const issuedAccessors: string[] = [];

  const issue = async (grantId: string, seconds: number) => {
    const now = new Date();
    const credential = asWrapped(
      await issuer.issue({ grantId, target, now, expiresAt: new Date(now.getTime() + seconds * 1_000) }),
    );
    issuedAccessors.push(credential.handle);
    return credential;
  };
  const unwrap = (credential: WrappedToken) =>
    unwrapVaultToken({ addr: testStack().vault.addr, wrappingToken: credential.wrappingToken });

  beforeAll(async () => {
    await client.write(`sys/policies/acl/${policy}`, {
      policy: `path "secret/data/${policy}/*" { capabilities = ["read"] }`,
    });
    await client.write(secretPath, { data: { password: 'not-a-real-one' } });
  });

  afterAll(async () => {
    await issuer.revoke({ grantId: 'cleanup', target, handles: issuedAccessors });
    await client.delete(`secret/metadata/${policy}/db`);
    await client.delete(`sys/policies/acl/${policy}`);
  });

  it('issues a wrapped, orphan, non-renewable token that ends at the grant end; unwrapped once it works, then Vault refuses it', async () => {
    // prepare
    const grantId = uniqueName('grant');
    const before = Date.now();
    // act
    const credential = await issue(grantId, 5);
    const token = await unwrap(credential);
    // assess: what keywarden holds
    expect(credential.wrappingToken).toBeInstanceOf(SecretValue);
    expect(JSON.stringify(credential)).not.toContain(credential.wrappingToken.reveal());
    expect(Date.parse(credential.expiresAt)).toBeGreaterThan(before + 3_000);
    expect(Date.parse(credential.expiresAt)).toBeLessThanOrEqual(before + 6_000);
    expect(Date.parse(credential.wrapExpiresAt) - Date.now()).toBeGreaterThan(
      (DEFAULT_WRAP_TTL_SECONDS - 10) * 1_000,
    );
    // assess: what the requester gets
    expect(token.accessor).toBe(credential.handle);
    expect(token.policies).toEqual(expect.arrayContaining(['default', policy]));
    expect(token.expiresAt).toBe(credential.expiresAt);
    const asRequester = newVaultClient(token.token.reveal());
    const self = await asRequester.lookupSelf();
    expect(self).toMatchObject({
      accessor: credential.handle,
      orphan: true,
      renewable: false,
      explicit_max_ttl: 5,
      creation_ttl: 5,
      path: 'auth/token/create-orphan',
      display_name: `token-breakglass-${grantId}`,
      meta: { [GRANT_META_KEY]: grantId },
    });
    expect((await asRequester.read(secretPath))?.data?.data).toEqual({ password: 'not-a-real-one' });
    const renewal = await rejection(asRequester.write('auth/token/renew-self', {}));
    expect(renewal).toBeInstanceOf(VaultError);
    expect(renewal.message).toMatch(/not renewable/);
    // assess: the grant's end is the token's end, whatever keywarden does
    await sleep(Math.max(0, Date.parse(credential.expiresAt) - Date.now()) + 1_000);
    const expired = await rejection(asRequester.lookupSelf());
    expect(expired).toMatchObject({ status: 403 });
    expect(expired.message).not.toContain(token.token.reveal());
  });

  it('refuses a second unwrap with a clear error that leaks no token', async () => {
    // prepare
    const credential = await issue(uniqueName('grant'), 60);
    await unwrap(credential);
    // act
    const second = await rejection(unwrap(credential));
    // assess
    expect(second).toBeInstanceOf(SpentWrappingTokenError);
    expect(second.message).toMatch(/already used or has expired/);
    expect(second.message).toContain('keywarden breakglass credentials');
    expect(second.message).not.toContain(credential.wrappingToken.reveal());
    expect(JSON.stringify(second.cause ?? {})).not.toContain(credential.wrappingToken.reveal());
  });

  it('refuses to unwrap a wrapping token around something other than a token', async () => {
    // prepare: a wrapping token around a plain secret, as an attacker could substitute
    const wrapped = await client.writeWrapped('sys/wrapping/wrap', { anything: 'x' }, 60);
    // act
    const refused = await rejection(
      unwrapVaultToken({ addr: testStack().vault.addr, wrappingToken: new SecretValue(wrapped.token) }),
    );
    // assess: refused, and the wrapping token was not spent
    expect(refused.message).toMatch(/created at sys\/wrapping\/wrap/);
    const stillThere = await newVaultClient(wrapped.token).write('sys/wrapping/lookup', {});
    expect(stillThere.data?.creation_path).toBe('sys/wrapping/wrap');
  });

  it('revokes by accessor: the token stops at once, and revoking again or an unknown accessor is fine', async () => {
    // prepare
    const grantId = uniqueName('grant');
    const credential = await issue(grantId, 600);
    const token = await unwrap(credential);
    const asRequester = newVaultClient(token.token.reveal());
    await asRequester.lookupSelf();
    // act
    await issuer.revoke({ grantId, target, handles: [credential.handle] });
    // assess
    expect(await rejection(asRequester.lookupSelf())).toMatchObject({ status: 403 });
    expect(await client.lookupAccessor(credential.handle)).toBeUndefined();
    await issuer.revoke({ grantId, target, handles: [credential.handle, 'notAnAccessorAtAll123456'] });
  });

  it('revokes a token that was never unwrapped: the later unwrap yields a dead token', async () => {
    const grantId = uniqueName('grant');
    const credential = await issue(grantId, 600);
    await issuer.revoke({ grantId, target, handles: [credential.handle] });
    const token = await unwrap(credential);
    expect(await rejection(newVaultClient(token.token.reveal()).lookupSelf())).toMatchObject({ status: 403 });
  });

  it('refuses other target types and grants that have already ended, before calling Vault', async () => {
    const now = new Date();
    const aws: BreakglassTarget = { type: 'aws-role', roleArn: 'arn:aws:iam::123456789012:role/x' };
    await expect(
      issuer.issue({ grantId: 'g', target: aws, now, expiresAt: new Date(now.getTime() + 60_000) }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(issuer.revoke({ grantId: 'g', target: aws, handles: [] })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(
      issuer.issue({ grantId: 'g', target, now, expiresAt: new Date(now.getTime() + 500) }),
    ).rejects.toThrow(/has ended/);
    expect(() => new VaultGrantIssuer({ client, wrapTtlSeconds: 0 })).toThrow(ValidationError);
  });
});

describe('grant issuer: vault-policies, when the answer of Vault is lost', () => {
  const running: FaultProxy[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((proxy) => proxy.close()));
  });
  const target: BreakglassTarget = { type: 'vault-policies', policies: ['default'] };

  /** An issuer whose token creates go through a fault proxy in front of OpenBao. */
  const issuerThrough = async (rates: Omit<FaultProxyOptions, 'target' | 'match'>) => {
    const proxy = await startFaultProxy({
      ...rates,
      target: testStack().vault.addr,
      match: (request) => request.operation.includes('auth/token/create-orphan'),
    });
    running.push(proxy);
    const issuer = new VaultGrantIssuer({
      client: new VaultClient({ addr: proxy.url, token: testStack().vault.token }),
    });
    return { proxy, issuer };
  };
  const issueOne = (issuer: VaultGrantIssuer) => {
    const now = new Date();
    return issuer.issue({
      grantId: uniqueName('grant'),
      target,
      now,
      expiresAt: new Date(now.getTime() + 60_000),
    });
  };

  it('never sends the wrapped create again after a lost answer, and says it may be retried', async () => {
    // prepare: Vault creates the token, then the connection drops before the answer
    const { proxy, issuer } = await issuerThrough({ dropRate: 1, dropAfterForwardShare: 1 });
    // act
    const failed = await rejection(issueOne(issuer));
    // assess
    expect(failed).toBeInstanceOf(VaultError);
    expect(failed).toMatchObject({ retryable: true });
    expect(failed.message).not.toContain(testStack().vault.token);
    expect(proxy.counts.requests).toBe(1);
    expect(proxy.counts.droppedAfterForward).toBe(1);
  });

  it('tries the wrapped create again when Vault rate-limits it (Vault did nothing)', async () => {
    const { proxy, issuer } = await issuerThrough({ throttleRate: 1 });
    const failed = await rejection(issueOne(issuer));
    expect(failed).toMatchObject({ status: 429 });
    expect(proxy.counts.requests).toBeGreaterThan(1);
    expect(proxy.counts.retriedAfter.throttled).toBeGreaterThan(0);
  });
});
