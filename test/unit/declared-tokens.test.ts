import { describe, expect, it } from 'vitest';
import { declaringIdentity, needsEveryToken, type TokenSeen } from '../../functions/core/declared-tokens.ts';
import type { Identity, IdentityOfKind } from '../../functions/core/identity.ts';
import { identity } from '../support/fixtures.ts';

const token = (over: Partial<TokenSeen> = {}): TokenSeen => ({
  accessor: 'AccessorOfAToken0000001',
  path: 'auth/token/create',
  displayName: 'token',
  ...over,
});
const tokenIdentity = (id: string, scope: Record<string, unknown>) =>
  identity({ id, kind: 'vault-token', scope }) as IdentityOfKind<'vault-token'>;

describe('vault tokens: which declared identity a token belongs to', () => {
  const issued = tokenIdentity('issued', { policies: ['ci'] });
  const byAccessor = tokenIdentity('by-accessor', {
    accessor: ['AccessorOfAToken0000001', 'Other000000000000000000'],
  });
  const byRole = tokenIdentity('by-role', { tokenRole: 'ci-terraform' });
  const byPrefix = tokenIdentity('by-prefix', { displayNamePrefix: 'jenkins-' });
  const all: Identity[] = [issued, byRole, byPrefix, byAccessor];

  it('attributes a token keywarden issued to the identity in its meta', () => {
    expect(declaringIdentity(all, token({ accessor: 'x', issuedFor: 'issued' }))?.id).toBe('issued');
  });

  it('attributes a token made outside keywarden by declared accessor, token role or display-name prefix', () => {
    expect(declaringIdentity(all, token())?.id).toBe('by-accessor');
    expect(declaringIdentity(all, token({ accessor: 'x', path: 'auth/token/create/ci-terraform' }))?.id).toBe(
      'by-role',
    );
    // A role with a path suffix makes tokens under auth/token/create/<role>/<suffix>.
    expect(
      declaringIdentity(all, token({ accessor: 'x', path: 'auth/token/create/ci-terraform/prod' }))?.id,
    ).toBe('by-role');
    expect(declaringIdentity(all, token({ accessor: 'x', path: 'auth/token/create/ci-terraform-old' }))).toBe(
      undefined,
    );
    // Vault stores display names as token-<name>; either form of the prefix matches.
    expect(declaringIdentity(all, token({ accessor: 'x', displayName: 'token-jenkins-nightly' }))?.id).toBe(
      'by-prefix',
    );
    expect(
      declaringIdentity([tokenIdentity('full', { displayNamePrefix: 'token-jenkins-' })], {
        ...token({ accessor: 'x', displayName: 'token-jenkins-nightly' }),
      })?.id,
    ).toBe('full');
  });

  it('lets an explicit accessor win over every other way, and a stronger way over a weaker one', () => {
    const claimedTwice = token({ path: 'auth/token/create/ci-terraform', displayName: 'token-jenkins-x' });
    expect(declaringIdentity(all, claimedTwice)?.id).toBe('by-accessor');
    expect(declaringIdentity([byPrefix, byRole], { ...claimedTwice, accessor: 'x' })?.id).toBe('by-role');
    // A tie goes to the first identity by id, whatever the inventory's order.
    const twin = tokenIdentity('a-twin', { displayNamePrefix: 'jenkins' });
    expect(
      declaringIdentity([byPrefix, twin], token({ accessor: 'x', displayName: 'token-jenkins-1' }))?.id,
    ).toBe('a-twin');
  });

  it('never lets a role or prefix claim a token keywarden issued for another identity or a break-glass grant', () => {
    const ours = { accessor: 'x', path: 'auth/token/create/ci-terraform', displayName: 'token-jenkins-1' };
    expect(declaringIdentity([byRole, byPrefix], token({ ...ours, issuedFor: 'issued' }))).toBeUndefined();
    expect(
      declaringIdentity([byRole, byPrefix], token({ ...ours, issuedFor: 'breakglass-grant:bg-1' })),
    ).toBeUndefined();
  });

  it('claims a login token of another auth method by declared accessor only', () => {
    const login = { path: 'auth/approle/login', displayName: 'approle' };
    expect(declaringIdentity(all, token(login))?.id).toBe('by-accessor');
    const prefixed = tokenIdentity('approle-prefix', { displayNamePrefix: 'approle' });
    expect(declaringIdentity([prefixed], token({ ...login, accessor: 'x' }))).toBeUndefined();
  });

  it('looks up every token only for the forms Vault cannot answer by accessor', () => {
    expect(needsEveryToken(byAccessor.scope)).toBe(false);
    expect([issued, byRole, byPrefix].map((item) => needsEveryToken(item.scope))).toEqual([true, true, true]);
  });
});
