/**
 * What the campaign and revocation specs share: declaring identities as an inventory sync
 * does, planning a campaign as the CLI does, and counting the revoke calls a run makes.
 */
import { randomBytes } from 'node:crypto';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import type { Services } from '../../functions/adapters/wiring.ts';
import { type PlanInput, planCampaign } from '../../functions/core/campaign.ts';
import type { CampaignDeps } from '../../functions/core/campaign-engine.ts';
import type { Identity } from '../../functions/core/identity.ts';
import type { BoundProvider, RevokeResult } from '../../functions/core/ports.ts';
import { identity as makeIdentity } from './fixtures.ts';
import { uniqueName } from './stack.ts';

/** A fresh incident id, `INC-<6 hex>`. */
export const newIncident = (): string => `INC-${randomBytes(3).toString('hex')}`;

/** Stores `identity` as declared and active, as `inventory sync` leaves it. */
export async function declare(
  store: Pick<Services['store'], 'putIdentity'>,
  identity: Identity,
): Promise<void> {
  await store.putIdentity(
    { identity, status: 'active', declarationHash: 'test', syncedAt: new Date().toISOString() },
    undefined,
  );
}

/** The CLI's plan as a test responder makes it now: no re-issue unless asked. */
export function testPlan(
  input: Omit<PlanInput, 'requestedBy' | 'now' | 'reissue'> &
    Partial<Pick<PlanInput, 'requestedBy' | 'reissue'>>,
) {
  return planCampaign({
    requestedBy: 'test:responder',
    now: new Date().toISOString(),
    reissue: false,
    ...input,
  });
}

/**
 * The campaign's dependencies with every call that revokes counted: provider revokes by
 * `identity:handle`, lease and session revokes by their prefix, lease id or role ARN.
 */
export function countingRevokes(deps: CampaignDeps): { deps: CampaignDeps; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const count = (key: string) => calls.set(key, (calls.get(key) ?? 0) + 1);
  const wrap = (identity: Identity, provider: BoundProvider): BoundProvider => ({
    ...provider,
    revoke: (handle: string) => {
      count(`${identity.id}:${handle}`);
      return provider.revoke(handle);
    },
  });
  const { leases, sessions } = deps;
  const counted: CampaignDeps = {
    ...deps,
    rotation: {
      ...deps.rotation,
      providerFor: (identity) => wrap(identity, deps.rotation.providerFor(identity)),
    },
    ...(leases && {
      leases: {
        revokePrefix: (prefix: string): Promise<RevokeResult> => {
          count(prefix);
          return leases.revokePrefix(prefix);
        },
        revokeLease: (leaseId: string): Promise<RevokeResult> => {
          count(leaseId);
          return leases.revokeLease(leaseId);
        },
      },
    }),
    ...(sessions && {
      sessions: {
        denySessions: (roleArn: string, options: { incident: string; issuedBefore: string }) => {
          count(roleArn);
          return sessions.denySessions(roleArn, options);
        },
      },
    }),
  };
  return { deps: counted, calls };
}

/**
 * A vault-kv identity of the deploy stage of `environment`, with one value on OpenBao at
 * `<prefix>/<name>/api-key`, declared in the store (not yet rotated).
 */
export async function declaredKvIdentity(
  on: { services: Pick<Services, 'store'>; vault: VaultClient },
  prefix: string,
  environment: string,
): Promise<Identity> {
  const name = uniqueName('kw');
  const path = `${prefix}/${name}/api-key`;
  await on.vault.write(`secret/data/${path}`, { data: { value: randomBytes(18).toString('base64url') } });
  const identity = makeIdentity({
    id: name,
    kind: 'vault-kv',
    scope: { path },
    pipeline: { repo: 'acme/app', stage: 'deploy', environment },
    policy: { maxAge: '30d', rotateEvery: '7d', grace: '1h' },
  });
  await declare(on.services.store, identity);
  return identity;
}

/**
 * A campaign over one fresh vault-kv identity (see declaredKvIdentity) of a new environment
 * named `<environmentPrefix>-<random>`, planned (not stored) for a new incident as
 * `<incident>-empty`: nothing is recorded for the identity, so planning settles every target
 * and a run has nothing to revoke.
 */
export async function planNothingToRevoke(
  on: { services: Pick<Services, 'store'>; vault: VaultClient },
  prefix: string,
  environmentPrefix: string,
): Promise<ReturnType<typeof testPlan>> {
  const environment = uniqueName(environmentPrefix);
  const identity = await declaredKvIdentity(on, prefix, environment);
  const incident = newIncident();
  return testPlan({
    campaignId: `${incident}-empty`,
    incident,
    selectors: [`env=${environment}`],
    subjects: [{ identity, versions: await on.services.store.listVersions(identity.id) }],
  });
}
