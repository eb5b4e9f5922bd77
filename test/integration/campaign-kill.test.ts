/**
 * Issue #5, "a campaign killed midway and resumed finishes without revoking anything
 * twice or missing anything", with a real kill: the run goes on in a process of its own
 * (test/support/campaign-run-child.ts, the local runtime of the state machine) and gets
 * SIGKILL partway, so nothing in flight is finished or checkpointed (campaign-scale.test.ts
 * stops a run gracefully, with its signal). The responder then resumes it as
 * `keywarden revoke resume` does (`retryFailed`).
 *
 * Every call that revokes is counted where it reaches OpenBao: Vault is reached, by the
 * child and by the resume alike, through a fault proxy (test/support/fault-proxy.ts) whose
 * fault rates are zero, which reads the accessor out of each `auth/token/revoke-accessor`
 * body. The outcome is checked on OpenBao itself (lookup-accessor), not only in the store.
 *
 * The engine's contract (functions/core/campaign-engine.ts): a batch is leased (one
 * conditional write counting a try of each of its targets), its targets revoked, then the
 * batch checkpointed at once. A kill leaves each target settled or pending; the pending ones
 * of a leased batch may have been revoked already, and the resume (once the dead run's
 * lease ran out) revokes those again, which OpenBao answers "no token found"
 * (`already-revoked`). So: at most two calls per credential, two exactly for the targets of
 * the batches in flight that were revoked and not yet checkpointed at the kill, and none
 * missed. What bounds them is the batches a run works at once (the runner's × 25); the spec
 * asserts the exact set.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { campaignIdFor } from '../../functions/adapters/campaign-launcher.ts';
import { DEFAULT_RATE_LIMITS, type RateLimits } from '../../functions/adapters/rate-limits.ts';
import type { RuntimeConfigInput } from '../../functions/adapters/runtime-config.ts';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import type { PlanInput, Target } from '../../functions/core/campaign.ts';
import type { CredentialVersion } from '../../functions/core/credential-version.ts';
import type { Identity } from '../../functions/core/identity.ts';
import type { BatchLeaseRecord } from '../../functions/core/ports.ts';
import { LocalRevocationRunner } from '../../functions/local/revocation-runner.ts';
import { REPO_ROOT } from '../../scripts/local-stack.ts';
import type { ChildRunConfig } from '../support/campaign-run-child.ts';
import { newIncident, testPlan } from '../support/campaigns.ts';
import { type FaultProxy, runtimeConfigThrough, startFaultProxy } from '../support/fault-proxy.ts';
import { identity as makeIdentity } from '../support/fixtures.ts';
import { localConfig, wireLocal } from '../support/local-state.ts';
import { newVaultClient, testStack, uniqueName } from '../support/stack.ts';

const FLEET = 300;
/** The child is killed once the store shows this many targets settled. */
const KILL_AT = 100;
/** …and at the latest once this many are, when no poll caught a revoke awaiting its checkpoint. */
const KILL_LATEST = 160;
/** Vault at a modest pace, so the child's run lasts seconds and the kill lands midway. */
const LIMITS: RateLimits = { ...DEFAULT_RATE_LIMITS, vault: { concurrency: 8, perSecond: 50 } };
const CHILD = join(REPO_ROOT, 'test', 'support', 'campaign-run-child.ts');
const REVOKE_PATH = '/v1/auth/token/revoke-accessor';
const SETTLED = ['revoked', 'already-revoked'];
/**
 * The batch lease of both runs: the resume waits this long at most for the dead run's batches
 * (the engine's 30 s would make the spec wait that long), and a batch renews it twice a lease.
 */
const LEASE_MS = 3_000;
/** Each poll of the store is a Query that moto answers by reading the table: not too often. */
const POLL_MS = 200;

let services: Services;
let vault: VaultClient;
let config: RuntimeConfigInput;
let proxy: FaultProxy;
let workDir: string;
let child: ChildProcess | undefined;
const bucket = uniqueName('kw-kill-plans');

/** Revoke calls that reached OpenBao, per accessor, in order: `child` before the kill, `resume` after. */
const calls = new Map<string, ('child' | 'resume')[]>();
let phase: 'child' | 'resume' = 'child';

/** Counts a revoke on its way through the proxy; never asks for a fault (rates are zero anyway). */
function countRevoke(request: { url: string; body: Buffer }): boolean {
  if (request.url.split('?')[0] !== REVOKE_PATH) return false;
  const { accessor } = JSON.parse(request.body.toString('utf8') || '{}') as { accessor?: string };
  const key = accessor ?? '(none)';
  calls.set(key, [...(calls.get(key) ?? []), phase]);
  return false;
}

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'kw-kill-'));
  config = localConfig('kw-kill');
  services = await wireLocal(config);
  vault = newVaultClient();
  proxy = await startFaultProxy({ target: testStack().vault.addr, match: countRevoke });
});

afterAll(async () => {
  const pid = child?.pid;
  if (pid !== undefined && child?.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  await proxy?.close();
  // The child's config names the dev server's root token: no copy outlives the spec.
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/**
 * `FLEET` orphan tokens on OpenBao, one vault-token identity each in one environment,
 * with the version keywarden would have recorded (its accessor), in the spec's table.
 */
async function tokenFleet(): Promise<{
  environment: string;
  accessors: Map<string, string>;
  subjects: PlanInput['subjects'];
}> {
  const tag = randomBytes(3).toString('hex');
  const environment = `kill-${tag}`;
  const policy = `kw-kill-${tag}-read`;
  await vault.write(`sys/policies/acl/${policy}`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });
  const now = new Date().toISOString();
  const limit = pLimit(8);
  const accessors = new Map<string, string>();
  const subjects: PlanInput['subjects'][number][] = [];
  await Promise.all(
    Array.from({ length: FLEET }, (_, i) =>
      limit(async () => {
        const id = `kw-kill-${tag}-tok-${i}`;
        const token = await vault.createToken(
          { policies: [policy], meta: { 'keywarden-identity': id }, ttl: '720h' },
          { orphan: true },
        );
        const identity: Identity = makeIdentity({
          id,
          kind: 'vault-token',
          scope: { policies: [policy], ttl: '24h' },
          pipeline: { repo: 'acme/app', stage: 'deploy', environment },
          policy: { maxAge: '30d', rotateEvery: '7d', grace: '1h' },
        });
        await services.store.putIdentity(
          { identity, status: 'active', declarationHash: 'test', syncedAt: now },
          undefined,
        );
        const version: CredentialVersion = {
          identityId: id,
          versionId: `${id}-v1`,
          kind: 'vault-token',
          stage: 'current',
          handle: token.accessor,
          origin: 'adopted',
          issuedAt: now,
        };
        await services.store.putVersion(version, undefined);
        accessors.set(id, token.accessor);
        subjects.push({ identity, versions: [version] });
      }),
    ),
  );
  return { environment, accessors, subjects };
}

/** Starts the child on the campaign, in a process group of its own (killed as a group). */
function startChild(campaignId: string) {
  const configPath = join(workDir, 'child.json');
  const childConfig: ChildRunConfig = {
    runtime: runtimeConfigThrough({ vault: proxy }, config),
    campaignId,
    bucket,
    limits: LIMITS,
    leaseMs: LEASE_MS,
    actor: 'test:responder',
    reportsDir: join(workDir, 'reports'),
  };
  writeFileSync(configPath, JSON.stringify(childConfig), { mode: 0o600 });
  const started = spawn(process.execPath, ['--import', 'tsx', CHILD, configPath], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  started.stdout?.on('data', (chunk: Buffer) => {
    output.stdout += chunk.toString('utf8');
  });
  started.stderr?.on('data', (chunk: Buffer) => {
    output.stderr += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    started.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { process: started, output, exited };
}

const sleep = (ms: number) => new Promise<void>((wake) => setTimeout(wake, ms));

/** Polls until `ready` answers a value, or fails saying what it waited for. */
async function until<T>(what: string, timeoutMs: number, ready: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await ready();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

const unsettled = (targets: readonly Target[]) =>
  targets
    .filter((t) => !SETTLED.includes(t.outcome))
    .map((t) => `${t.handle}: ${t.outcome} ${t.error ?? ''}`);

/** The targets with a try counted on a batch lease (leased, not checkpointed), with their batch. */
const triedOn = (leases: readonly BatchLeaseRecord[]): Map<string, string> =>
  new Map(
    leases.flatMap((lease) =>
      Object.entries(lease.tries)
        .filter(([, tries]) => tries > 0)
        .map(([targetId]) => [targetId, lease.batch] as const),
    ),
  );
const leasedBatches = (leased: Map<string, string>): number => new Set(leased.values()).size;

describe('campaign killed midway (SIGKILL) and resumed', () => {
  it('finishes with every credential revoked, none missed, and none revoked twice beyond the claims in flight at the kill', {
    timeout: 180_000,
  }, async () => {
    // prepare: the fleet, the stored campaign, and a child process running it through the proxy.
    const building = Date.now();
    const { environment, accessors, subjects } = await tokenFleet();
    const fleetBuilt = Date.now() - building;
    // The CLI's plan (planAndStoreCampaign), from the recorded versions in hand rather than
    // read back: moto's Query reads the whole table, 300 times over.
    const incident = newIncident();
    const plan = testPlan({
      campaignId: campaignIdFor(incident, new Date()),
      incident,
      selectors: [`env=${environment}`],
      subjects,
    });
    await services.store.createCampaign(plan.campaign, plan.targets);
    const campaignId = plan.campaign.campaignId;
    const built = Date.now() - building;
    const run = startChild(campaignId);
    child = run.process;

    // act 1: SIGKILL the child's process group once the store shows KILL_AT targets settled,
    // at a moment when some claimed target has been revoked on OpenBao but not checkpointed
    // (the case a resume must repeat), or, failing that, once KILL_LATEST are settled.
    const childStarted = Date.now();
    const seen = await until('the child to settle enough targets', 120_000, async () => {
      if (child?.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `the child ended before the kill (exit ${child?.exitCode}, signal ${child?.signalCode}): ${run.output.stderr || run.output.stdout}`,
        );
      }
      // Calls seen before the store is read: revoked before the snapshot the store answers.
      const called = new Set(calls.keys());
      const leased = triedOn(await services.store.listBatchLeases(campaignId));
      const targets = await services.store.listTargets(campaignId);
      const settled = targets.filter((t) => t.outcome !== 'pending').length;
      const unrecorded = targets.filter(
        (t) => t.outcome === 'pending' && leased.has(t.targetId) && called.has(t.handle),
      ).length;
      return settled >= KILL_LATEST || (settled >= KILL_AT && unrecorded > 0)
        ? { settled, unrecorded }
        : undefined;
    });
    process.kill(-(child.pid ?? 0), 'SIGKILL');
    const exit = await run.exited;
    const killedAfter = Date.now() - childStarted;
    // The requests the child had sent before dying are still forwarded by the proxy: wait
    // until OpenBao answered each, so none lands after the resume's calls.
    await until('the proxy to forward what the child sent', 30_000, async () =>
      proxy.counts.forwarded >= proxy.counts.requests ? true : undefined,
    ).catch(() => undefined);
    const leasedAtKill = triedOn(await services.store.listBatchLeases(campaignId));
    const atKill = await services.store.listTargets(campaignId);
    // Which revoke calls had reached OpenBao by then, from the child.
    const revokedByChild = new Set([...calls].filter(([, by]) => by.includes('child')).map(([a]) => a));
    const campaignAtKill = await services.store.getCampaign(campaignId);

    // act 2: the responder resumes it (keywarden revoke resume: retryFailed), Vault still through the proxy.
    phase = 'resume';
    const reportsDir = join(workDir, 'reports');
    process.env.KEYWARDEN_REPORTS_DIR = reportsDir;
    const resumeServices = wire(runtimeConfigThrough({ vault: proxy }, config));
    const resuming = Date.now();
    const resumed = await new LocalRevocationRunner({
      services: resumeServices,
      actor: 'test:responder',
      bucket,
      limits: LIMITS,
      leaseMs: LEASE_MS,
    }).run(campaignId, { retryFailed: true });
    const resumedIn = Date.now() - resuming;

    const settledAtKill = atKill.filter((t) => t.outcome !== 'pending');
    const pendingAtKill = atKill.filter((t) => t.outcome === 'pending');
    // In a leased batch (a try counted on its lease) but not checkpointed: what was in flight at the kill.
    const inFlight = new Set(pendingAtKill.filter((t) => leasedAtKill.has(t.targetId)).map((t) => t.handle));
    const twice = [...calls].filter(([, by]) => by.length > 1);
    const inFlightRevoked = [...inFlight].filter((accessor) => revokedByChild.has(accessor));
    console.log(
      [
        `campaign kill: fleet of ${FLEET} tokens built in ${fleetBuilt} ms, planned and stored in ${built - fleetBuilt} ms`,
        `child killed ${killedAfter} ms after its start, with ${seen.settled} settled and ${seen.unrecorded} revoked but not checkpointed seen by the poll, ${settledAtKill.length} settled in the store, ${pendingAtKill.length} pending, of which ${inFlight.size} claimed (${inFlightRevoked.length} of them already revoked on OpenBao by the child)`,
        `resume settled ${pendingAtKill.length} in ${resumedIn} ms; ${twice.length} credentials got a second revoke call (answered already-revoked), ${[...calls.values()].filter((by) => by.join() === 'resume').length} were first revoked by the resume`,
        `proxy: ${proxy.counts.requests} Vault requests, ${proxy.counts.forwarded} forwarded`,
      ].join('\n'),
    );

    // assess: the kill landed midway.
    expect(exit.signal).toBe('SIGKILL');
    expect(run.output.stdout).toContain(`running ${campaignId}`);
    expect(run.output.stdout).not.toContain('ended');
    expect(atKill).toHaveLength(FLEET);
    expect(settledAtKill.length).toBeGreaterThanOrEqual(KILL_AT);
    expect(pendingAtKill.length).toBeGreaterThan(0);
    expect(campaignAtKill?.status).toBe('running');
    // …every target accounted for, the campaign completed and reported…
    expect(resumed.stopped).toBe(false);
    expect(unsettled(resumed.targets)).toEqual([]);
    expect(resumed.campaign.status).toBe('completed');
    expect(resumed.report?.html).toBeDefined();
    expect(existsSync(resumed.report?.html ?? '')).toBe(true);
    expect(resumed.campaign.reportLocation).toBe(resumed.report?.html);
    // …no credential missed: every token is gone on OpenBao itself…
    const fleet = [...accessors.values()];
    const lookups = pLimit(16);
    const live = (
      await Promise.all(
        fleet.map((accessor) =>
          lookups(async () => ((await vault.lookupAccessor(accessor)) !== undefined ? accessor : undefined)),
        ),
      )
    ).filter((accessor) => accessor !== undefined);
    expect(live).toEqual([]);
    // …each got a revoke call, and no call went to anything outside the fleet…
    expect([...calls.keys()].sort()).toEqual([...fleet].sort());
    // …at most two each, two only for claims in flight at the kill (child, then resume)…
    expect([...calls].filter(([, by]) => by.length > 2)).toEqual([]);
    expect(twice.filter(([accessor]) => !inFlight.has(accessor))).toEqual([]);
    expect(twice.filter(([, by]) => by.join() !== 'child,resume')).toEqual([]);
    // Exactly: a second call went to each claim in flight whose first call had reached OpenBao
    // (their number may pass the concurrency limit: see the module comment).
    expect(twice.map(([accessor]) => accessor).sort()).toEqual(inFlightRevoked.sort());
    // …and the second call found the token gone: those targets, and only those, are already-revoked.
    const outcomeOf = new Map(resumed.targets.map((t) => [t.handle, t]));
    expect(twice.map(([accessor]) => outcomeOf.get(accessor)?.outcome)).toEqual(
      twice.map(() => 'already-revoked'),
    );
    expect(
      resumed.targets
        .filter((t) => t.outcome === 'already-revoked')
        .map((t) => t.handle)
        .sort(),
    ).toEqual(twice.map(([accessor]) => accessor).sort());
    // Targets settled before the kill were not touched by the resume.
    expect(settledAtKill.filter((t) => calls.get(t.handle)?.join() !== 'child')).toEqual([]);
    // Targets of no leased batch at the kill were never called by the child: the lease comes before the revoke.
    expect(
      pendingAtKill.filter((t) => !leasedAtKill.has(t.targetId) && calls.get(t.handle)?.join() !== 'resume'),
    ).toEqual([]);
    // What was in flight is at most the batches the child worked at once.
    expect(inFlight.size).toBeLessThanOrEqual(leasedBatches(leasedAtKill) * 25);
  });
});
