/**
 * Break-glass bounded, and its revocation unblockable (issue #11), on the real local stack:
 * grants whose every field holds the largest value accepted, with every approval and every
 * credential fetch the grant allows, stored in DynamoDB (moto) and issued by OpenBao and
 * STS (moto). The approver's early revoke must still end everything; a revoke whose Vault
 * or IAM call fails must be audited and finished by the sweeper.
 */
import { GetRolePolicyCommand } from '@aws-sdk/client-iam';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureScheduleGroup } from '../../functions/adapters/aws/grant-expiry-scheduler.ts';
import { grantDenyPolicyName } from '../../functions/adapters/aws/sts-grant-issuer.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { unwrapVaultToken } from '../../functions/adapters/vault/unwrap.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import type { BreakglassDeps } from '../../functions/core/breakglass.ts';
import * as breakglass from '../../functions/core/breakglass.ts';
import { KeywardenError, ValidationError } from '../../functions/core/errors.ts';
import {
  BreakglassConfigSchema,
  FetchLimitError,
  MAX_CREDENTIAL_FETCHES,
  type Principal,
  TEXT_LIMITS,
} from '../../functions/core/grant.ts';
import { sweep } from '../../functions/core/grant-sweep.ts';
import type { GrantIssuer } from '../../functions/core/ports.ts';
import { createBreakglassRole } from '../support/breakglass-role.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { OffsetClock } from '../support/offset-clock.ts';
import { newVaultClient, testStack, uniqueName } from '../support/stack.ts';

const ACCOUNT = '123456789012';
const clock = new OffsetClock();
const roleName = uniqueName('bg-bounds');
const policy = uniqueName('bg-bounds-db');
let services: Services;
let deps: BreakglassDeps;

/** Text of `length` UTF-16 units, each three bytes in UTF-8: the most bytes a bounded field can hold. */
const widest = (length: number) => '€'.repeat(length);
/** The longest incident id the incident format accepts. */
const LONGEST_INCIDENT = `I${'9'.repeat(63)}`;

/** Local users, each with the longest display name accepted. */
const person = (id: string): Principal => ({ kind: 'local', id, name: widest(TEXT_LIMITS.principalName) });
const [alice, bob, carol, dave, erin, frank] = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map(
  person,
) as [Principal, Principal, Principal, Principal, Principal, Principal];
const approvers = [bob, carol, dave, erin, frank];

const config = BreakglassConfigSchema.parse({
  people: ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((name) => ({ name, localUsers: [name] })),
  roles: [
    {
      id: 'bounds-db',
      description: 'prod database secrets',
      target: { type: 'vault-policies', policies: [policy] },
      maxDuration: '12h',
      approvers: { localUsers: approvers.map((a) => a.id) },
      approvalsRequired: 5,
      requireIncident: true,
    },
    {
      id: 'bounds-admin',
      description: 'prod account',
      target: { type: 'aws-role', roleArn: `arn:aws:iam::${ACCOUNT}:role/breakglass/${roleName}` },
      maxDuration: '12h',
      approvers: { localUsers: approvers.map((a) => a.id) },
      approvalsRequired: 5,
      requireIncident: true,
    },
  ],
});

/** A grant of `roleId` with the largest reason and incident, approved by all five approvers. */
async function largestApprovedGrant(roleId: string): Promise<string> {
  const { grantId } = await breakglass.request(deps, alice, {
    roleId,
    duration: '12h',
    reason: widest(TEXT_LIMITS.reason),
    incident: LONGEST_INCIDENT,
  });
  for (const approver of approvers) await breakglass.approve(deps, approver, grantId);
  return grantId;
}

async function auditOf(grantId: string) {
  const { records } = await services.store.readAll();
  return records.filter((r) => r.subject === grantId);
}

/** What DynamoDB holds for the grant, as JSON bytes: above the item's real size (names and quotes). */
async function storedBytes(grantId: string): Promise<number> {
  return Buffer.byteLength(JSON.stringify(await deps.grants.getGrant(grantId)), 'utf8');
}

/** `deps` whose issuer of `type` fails every revoke, as an unreachable Vault or a throttled IAM would. */
function failingRevoke(type: 'vault-policies' | 'aws-role'): BreakglassDeps {
  return {
    ...deps,
    issuer: (asked) => {
      const real = deps.issuer(asked);
      if (asked !== type) return real;
      const failing: GrantIssuer = {
        issue: (request) => real.issue(request),
        revoke: async () => {
          throw new KeywardenError(`injected: ${type} revoke unreachable (connect ECONNREFUSED)`, {
            retryable: true,
          });
        },
      };
      return failing;
    },
  };
}

beforeAll(async () => {
  services = await wireLocal(
    localConfig('kw-bg-bounds', { breakglass: { scheduleGroup: uniqueName('kw-bounds') } }),
    clock,
  );
  deps = services.breakglassDeps;
  await ensureScheduleGroup(services.aws.scheduler, services.config.breakglass.scheduleGroup);
  await services.breakglassStore.putBreakglassConfig(config);
  await newVaultClient().write(`sys/policies/acl/${policy}`, {
    policy: 'path "secret/data/prod/*" { capabilities = ["read"] }',
  });
  await createBreakglassRole(services.aws.iam, roleName);
});

describe('break-glass bounds: the largest grant fits, and its approver can always revoke it', () => {
  it(`a Vault grant at every limit, fetched ${MAX_CREDENTIAL_FETCHES} times, is revoked by its approver: every token dead on OpenBao`, async () => {
    // prepare: the largest grant, and every credential it allows, each unwrapped as the requester would
    const grantId = await largestApprovedGrant('bounds-db');
    const tokens: VaultClient[] = [];
    for (let n = 0; n < MAX_CREDENTIAL_FETCHES; n++) {
      const { credential } = await breakglass.issueCredentials(deps, alice, grantId);
      if (credential.type !== 'vault-wrapped-token') throw new Error('expected a wrapped Vault token');
      const { token } = await unwrapVaultToken({
        addr: testStack().vault.addr,
        wrappingToken: credential.wrappingToken,
      });
      tokens.push(new VaultClient({ addr: testStack().vault.addr, token: token.reveal() }));
    }
    await expect(breakglass.issueCredentials(deps, alice, grantId)).rejects.toThrow(FetchLimitError);
    for (const token of tokens) await expect(token.lookupSelf()).resolves.toBeDefined();
    expect(await storedBytes(grantId)).toBeLessThan(40_000);

    // act: the approver's early revoke
    const revoked = await breakglass.revoke(deps, carol, grantId);

    // assess
    expect(revoked).toMatchObject({ state: 'revoked', revokedBy: { id: 'carol' } });
    expect(revoked.credentials).toHaveLength(MAX_CREDENTIAL_FETCHES);
    expect(revoked.credentialsEndedAt).toBeDefined();
    for (const token of tokens) await expect(token.lookupSelf()).rejects.toMatchObject({ status: 403 });
    const audit = await auditOf(grantId);
    expect(audit.filter((r) => r.type === 'grant.activated')).toHaveLength(MAX_CREDENTIAL_FETCHES);
    expect(audit.filter((r) => r.type === 'grant.refused').map((r) => r.details.action)).toEqual([
      'credentials',
    ]);
    expect(audit.filter((r) => r.type === 'grant.revoked')).toEqual([
      expect.objectContaining({
        actor: 'local:carol',
        details: expect.objectContaining({ credentialsEnded: true }),
      }),
    ]);

    // and the review at its limit still fits the item
    clock.advance(60_000);
    const reviewed = await breakglass.review(deps, bob, grantId, widest(TEXT_LIMITS.reviewNotes));
    expect(reviewed.review?.notes).toHaveLength(TEXT_LIMITS.reviewNotes);
    expect(await storedBytes(grantId)).toBeLessThan(40_000);
  });

  it(`an AWS grant at every limit, fetched ${MAX_CREDENTIAL_FETCHES} times, is revoked by its approver: the deny policy is on the role`, async () => {
    // prepare
    const grantId = await largestApprovedGrant('bounds-admin');
    for (let n = 0; n < MAX_CREDENTIAL_FETCHES; n++) await breakglass.issueCredentials(deps, alice, grantId);
    await expect(breakglass.issueCredentials(deps, alice, grantId)).rejects.toThrow(
      `has handed out ${MAX_CREDENTIAL_FETCHES} credentials`,
    );

    // act
    const revoked = await breakglass.revoke(deps, dave, grantId);

    // assess
    expect(revoked).toMatchObject({ state: 'revoked', revokedBy: { id: 'dave' } });
    expect(revoked.credentialsEndedAt).toBeDefined();
    const deny = await services.aws.iam.send(
      new GetRolePolicyCommand({ RoleName: roleName, PolicyName: grantDenyPolicyName(grantId) }),
    );
    expect(decodeURIComponent(deny.PolicyDocument ?? '')).toContain(`"aws:SourceIdentity":"${grantId}"`);
    expect((await auditOf(grantId)).map((r) => r.type)).toContain('grant.revoked');
    expect(await storedBytes(grantId)).toBeLessThan(40_000);
  });

  it('a denial at its limit fits, and a field over its limit is refused with its name and limit, audited small', async () => {
    // a denial with the longest reason
    const { grantId } = await breakglass.request(deps, alice, {
      roleId: 'bounds-db',
      duration: '1h',
      reason: widest(TEXT_LIMITS.reason),
      incident: LONGEST_INCIDENT,
    });
    const denied = await breakglass.deny(deps, bob, grantId, widest(TEXT_LIMITS.denialReason));
    expect(denied.denialReason).toHaveLength(TEXT_LIMITS.denialReason);
    expect(await storedBytes(grantId)).toBeLessThan(40_000);

    // the issue's 400 KB reason (and a 450 KB incident) are refused before anything is stored
    const huge = breakglass.request(deps, alice, {
      roleId: 'bounds-db',
      duration: '1h',
      reason: 'x'.repeat(400_000),
      incident: 'I'.repeat(450_000),
    });
    await expect(huge).rejects.toThrow(ValidationError);
    await expect(huge).rejects.toThrow(
      `reason: expected at most ${TEXT_LIMITS.reason} characters, got 400000`,
    );
    const refusal = (await auditOf('role:bounds-db')).filter((r) => r.type === 'grant.refused').at(-1);
    expect(String(refusal?.details.reason)).toContain('reason: expected at most');
    expect(JSON.stringify(refusal).length).toBeLessThan(5_000);
  });
});

describe('break-glass bounds: a revoke whose Vault or IAM call fails', () => {
  it('is audited with the reason, recorded as revoked, and finished by the sweeper (Vault down)', async () => {
    // prepare
    const grantId = await largestApprovedGrant('bounds-db');
    const { credential } = await breakglass.issueCredentials(deps, alice, grantId);
    if (credential.type !== 'vault-wrapped-token') throw new Error('expected a wrapped Vault token');
    const { token } = await unwrapVaultToken({
      addr: testStack().vault.addr,
      wrappingToken: credential.wrappingToken,
    });
    const asRequester = new VaultClient({ addr: testStack().vault.addr, token: token.reveal() });

    // act: Vault cannot be reached
    const revoked = await breakglass.revoke(failingRevoke('vault-policies'), carol, grantId);

    // assess: revoked (no new credential is issued), the failure audited, the token still to end
    expect(revoked.state).toBe('revoked');
    expect(revoked.credentialsEndedAt).toBeUndefined();
    await expect(breakglass.issueCredentials(deps, alice, grantId)).rejects.toThrow('is revoked');
    const failed = (await auditOf(grantId)).filter((r) => r.type === 'grant.revoke-failed');
    expect(failed).toEqual([
      expect.objectContaining({
        actor: 'local:carol',
        details: expect.objectContaining({
          step: 'end-credentials',
          error: 'KeywardenError',
          reason: expect.stringContaining('injected: vault-policies revoke unreachable'),
        }),
      }),
    ]);
    expect(JSON.stringify(failed)).not.toContain(token.reveal());
    await expect(asRequester.lookupSelf()).resolves.toBeDefined();

    // the sweeper finishes it once the ender has had its minute
    clock.advance(61_000);
    await sweep(deps);
    await expect(asRequester.lookupSelf()).rejects.toMatchObject({ status: 403 });
    expect((await deps.grants.getGrant(grantId))?.credentialsEndedAt).toBeDefined();
    expect((await auditOf(grantId)).map((r) => r.type)).toContain('grant.credentials-ended');
  });

  it('is audited, and revoking again finishes it (IAM refuses PutRolePolicy)', async () => {
    // prepare
    const grantId = await largestApprovedGrant('bounds-admin');
    await breakglass.issueCredentials(deps, alice, grantId);
    const denyPolicy = () =>
      services.aws.iam.send(
        new GetRolePolicyCommand({ RoleName: roleName, PolicyName: grantDenyPolicyName(grantId) }),
      );

    // act
    const first = await breakglass.revoke(failingRevoke('aws-role'), bob, grantId);

    // assess
    expect([first.state, first.credentialsEndedAt]).toEqual(['revoked', undefined]);
    await expect(denyPolicy()).rejects.toMatchObject({ name: 'NoSuchEntityException' });
    expect(
      (await auditOf(grantId)).filter((r) => r.type === 'grant.revoke-failed').map((r) => r.details.step),
    ).toEqual(['end-credentials']);

    // a stranger's retry is refused; the approver's finishes the ending
    await expect(breakglass.revoke(deps, person('mallory'), grantId)).rejects.toThrow('may not revoke');
    const second = await breakglass.revoke(deps, bob, grantId);
    expect(second.credentialsEndedAt).toBeDefined();
    await expect(denyPolicy()).resolves.toBeDefined();
    const types = (await auditOf(grantId)).map((r) => r.type);
    expect(types.filter((t) => t === 'grant.revoked')).toHaveLength(1);
    expect(types).toContain('grant.credentials-ended');
  });
});
