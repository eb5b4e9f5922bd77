import type { CredentialVersion } from '../../functions/core/credential-version.ts';
import { type BreakglassRole, BreakglassRoleSchema } from '../../functions/core/grant.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { IdentitySchema } from '../../functions/core/identity.ts';
import type { BreakglassConfigStore, Clock } from '../../functions/core/ports.ts';

/** A clock that stays where a test puts it. */
export class FixedClock implements Clock {
  constructor(private current: Date) {}
  now(): Date {
    return new Date(this.current);
  }
  set(date: Date | string): void {
    this.current = new Date(date);
  }
  advance(millis: number): void {
    this.current = new Date(this.current.getTime() + millis);
  }
}

/** A valid identity of the given kind with sensible defaults; override any field. */
export function identity(
  overrides: Partial<Record<string, unknown>> & { id: string; kind?: Identity['kind'] },
): Identity {
  const kind = overrides.kind ?? 'vault-kv';
  const scopes: Record<Identity['kind'], unknown> = {
    'aws-iam-access-key': { userName: `${overrides.id}-user` },
    'aws-secret': { secretId: `ci/${overrides.id}` },
    'aws-role-session': { roleArn: `arn:aws:iam::123456789012:role/${overrides.id}` },
    'vault-token': { policies: ['ci-read'] },
    'vault-approle-secret-id': { roleName: overrides.id },
    'vault-kv': { path: `ci/${overrides.id}` },
    'vault-lease': { prefix: 'auth/approle/login' },
  };
  return IdentitySchema.parse({
    owner: 'team-platform',
    purpose: 'test identity',
    pipeline: { repo: 'acme/app', stage: 'build', environment: 'staging' },
    scope: scopes[kind],
    ...overrides,
    kind,
  });
}

/** A current, issued version of `owner`'s credential with the given handle; override any field. */
export const credentialVersion = (
  owner: Identity,
  over: Partial<CredentialVersion> & Pick<CredentialVersion, 'handle'>,
): CredentialVersion => ({
  identityId: owner.id,
  versionId: `v-${over.handle}`,
  kind: owner.kind,
  stage: 'current',
  origin: 'issued',
  issuedAt: '2026-11-01T00:00:00.000Z',
  ...over,
});

/** A break-glass role `id` granting `target` for an hour at most, approved by the local user bob. */
export const breakglassRole = (id: string, target: BreakglassRole['target']): BreakglassRole =>
  BreakglassRoleSchema.parse({
    id,
    description: 'incident access',
    target,
    maxDuration: '1h',
    approvers: { localUsers: ['bob'] },
  });

/** The stored `breakglass` section holding only `roles`: no people, no pinned session roles. */
export const breakglassSectionOf = (
  ...roles: BreakglassRole[]
): Pick<BreakglassConfigStore, 'getBreakglassConfig'> => ({
  getBreakglassConfig: async () => ({ roles, people: [], pinnedSessionRoles: [] }),
});
