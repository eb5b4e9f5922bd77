/**
 * Rotation under a fault storm: fault proxies (test/support/fault-proxy.ts) in front of
 * BOTH moto and OpenBao throttle, fail and drop a share of keywarden's requests, with a
 * fixed seed, while rotateMany rotates identities of every rotatable kind. A second
 * pass (and, if the storm left anything unfinished, a third once it is over) resumes
 * what failed, as the scheduler's next run would.
 *
 * Principles under test: every target accounted for (each outcome `rotated` or `failed`
 * with a reason, none dropped), never lose the working credential, and converge — one
 * current version, nothing pending, no orphan credential left in the provider. The
 * checks read the real servers directly, never through a proxy.
 */
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IAMClient } from '@aws-sdk/client-iam';
import { DescribeSecretCommand } from '@aws-sdk/client-secrets-manager';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsClientConfig, dynamoDbClientConfig } from '../../functions/adapters/aws/clients.ts';
import { dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import { IamAccessKeyProvider } from '../../functions/adapters/aws/iam-access-key-provider.ts';
import { sha256Hex } from '../../functions/adapters/crypto.ts';
import { bindProvider } from '../../functions/adapters/provider-registry.ts';
import { type RuntimeConfigInput, RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { readKvState } from '../../functions/adapters/vault/kv-delivery.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import { verifyChain } from '../../functions/core/audit.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { deliveryOf } from '../../functions/core/kinds.ts';
import { type RotationDeps, type RotationOutcome, rotateMany } from '../../functions/core/rotation.ts';
import { credentialHarnesses, type KindHarness } from '../support/credential-harness.ts';
import {
  FAULT_KINDS,
  type FaultCounts,
  type FaultRequest,
  faultsByOperation,
  runtimeConfigThrough,
  startFaultProxy,
  startStackProxies,
  summarizeFaults,
} from '../support/fault-proxy.ts';
import { OffsetClock } from '../support/offset-clock.ts';
import { testAws, testStack, uniqueName } from '../support/stack.ts';

/**
 * The storm: fixed seeds, so a run's sequence of fault decisions is reproducible. Each seed draws
 * every fault kind within a proxy's first 30 requests (a proxy sees 80 or more in the first pass),
 * so that the storm's coverage does not hang on how many requests a rotation makes: with the
 * previous moto seed, the first lost answer came at the 100th request.
 */
const STORM = { throttleRate: 0.1, serverErrorRate: 0.05, dropRate: 0.03 };
const SEEDS = { aws: 20_240_626, vault: 20_240_621, dynamodb: 20_240_603 };
const PER_KIND = 6;

const clock = new OffsetClock();
const prefix = uniqueName('kw-faults');
/** Talks to the real servers: setup and every check. */
let direct: Services;
/** Talks through the fault proxies: the rotations. */
let faulty: Services;
/** What the storm's rotations use instead of the wiring's store; see {@link standardRetryStore}. */
let faultyStore: Partial<RotationDeps>;
let vault: VaultClient;
let proxies: Awaited<ReturnType<typeof startStackProxies>>;
let base: RuntimeConfigInput & { tableName: string };

/**
 * The state store, through the proxy, on a DynamoDB client in standard retry mode. The
 * wiring's clients use adaptive retry, whose client-side token bucket every identity of
 * a run shares: under this storm's 10% throttling it slowed the first pass about four
 * times (measured: 165 s against 39 s), which is adaptive retry doing its job, not a
 * fault of the protocol. Providers and deliveries keep the wiring's adaptive clients.
 * `KEYWARDEN_FAULTS_WIRED_STORE=1` runs with the wiring's store, to measure that again.
 */
function standardRetryStore(): Partial<RotationDeps> {
  if (process.env.KEYWARDEN_FAULTS_WIRED_STORE === '1') return {};
  const client = new DynamoDBClient({ ...dynamoDbClientConfig(faulty.config.aws), retryMode: 'standard' });
  const store = dynamoStore({ client, tableName: faulty.config.tableName, clock, digest: sha256Hex });
  return { store, audit: store };
}

beforeAll(async () => {
  const stack = testStack();
  base = {
    aws: testAws(),
    tableName: uniqueName('kw-faults'),
    fingerprintKey: randomBytes(32).toString('hex'),
    discovery: {},
    vault: { addr: stack.vault.addr, token: stack.vault.token },
  };
  proxies = await startStackProxies(stack, {
    aws: { seed: SEEDS.aws },
    dynamodb: { seed: SEEDS.dynamodb },
    vault: { seed: SEEDS.vault },
  });
  direct = wire(RuntimeConfigSchema.parse(base), clock);
  faulty = wire(runtimeConfigThrough(proxies, base), clock);
  faultyStore = standardRetryStore();
  vault = new VaultClient({ addr: stack.vault.addr, token: stack.vault.token });
  await ensureStateTable(direct.aws.dynamodb, base.tableName);
  await vault.write(`sys/policies/acl/${prefix}-read`, {
    policy: 'path "secret/data/nothing" { capabilities = ["read"] }',
  });
});

afterAll(async () => {
  await proxies?.close();
});

const _policy = { maxAge: '30d', rotateEvery: '7d', grace: '1h' };
const _value = () => randomBytes(18).toString('base64url');

const { harnesses, iamKeys, awsSecrets, vaultTokens, approleSecretIds, kvSecrets, readDelivered } =
  credentialHarnesses(() => ({
    services: direct,
    vault,
    prefix,
  }));
const harnessOf = (identity: Identity) => harnesses.find((h) => h.kind === identity.kind) as KindHarness;

/** The delivered value is the one the store records as current (by fingerprint, never by value). */
async function deliveredIsCurrent(identity: Identity): Promise<boolean> {
  const current = (await direct.store.listVersions(identity.id)).find((v) => v.stage === 'current');
  const text = await readDelivered(identity);
  // KV delivery writes a value that is not a JSON object as `{ <delivery.field> }` (`value` unless named).
  const delivery = deliveryOf(identity);
  const field = (delivery?.type === 'vault-kv' && delivery.field) || 'value';
  const parsed = JSON.parse(text.startsWith('{') ? text : '{}') as Record<string, unknown>;
  const plain = parsed[field];
  const candidates = [text, ...(typeof plain === 'string' ? [plain] : [])];
  return candidates.some((candidate) => direct.fingerprinter.of(candidate) === current?.fingerprint);
}

/** Active credentials the provider holds for the identity that the store knows neither as current nor previous. */
async function orphans(identity: Identity): Promise<string[]> {
  const known = new Set(
    (await direct.store.listVersions(identity.id))
      .filter((v) => v.stage === 'current' || v.stage === 'previous')
      .map((v) => v.handle),
  );
  const listed = await direct.rotationDeps('check').providerFor(identity).list();
  return listed.filter((l) => l.status === 'active' && !known.has(l.handle)).map((l) => l.handle);
}

/** Staged values left in the delivery target: KV sidecars, or an `AWSPENDING` label. */
async function leftoverPending(identity: Identity): Promise<string[]> {
  const delivery = deliveryOf(identity);
  if (delivery?.type === 'vault-kv') {
    const staged = await vault.list(`${delivery.mount}/metadata/keywarden-pending/${delivery.path}`);
    return staged.map((versionId) => `sidecar ${versionId}`);
  }
  if (delivery?.type === 'aws-secret') {
    const described = await direct.aws.secrets.send(
      new DescribeSecretCommand({ SecretId: delivery.secretId }),
    );
    return Object.entries(described.VersionIdsToStages ?? {})
      .filter(([, labels]) => labels.includes('AWSPENDING'))
      .map(([versionId]) => `AWSPENDING on ${versionId}`);
  }
  return [];
}

const snapshot = (counts: FaultCounts) => structuredClone(counts);

interface Pass {
  name: string;
  outcomes: RotationOutcome[];
  faults: { aws: FaultCounts; dynamodb: FaultCounts; vault: FaultCounts };
  ms: number;
}

async function runPass(name: string, identities: Identity[], storm: boolean): Promise<Pass> {
  for (const proxy of [proxies.aws, proxies.dynamodb, proxies.vault]) {
    proxy.setRates(storm ? STORM : {});
    proxy.resetCounts();
  }
  const started = Date.now();
  const outcomes = await rotateMany(faulty.rotationDeps(name, faultyStore), identities, {
    owner: name,
    limit: faulty.limit,
  });
  const pass = {
    name,
    outcomes,
    faults: {
      aws: snapshot(proxies.aws.counts),
      dynamodb: snapshot(proxies.dynamodb.counts),
      vault: snapshot(proxies.vault.counts),
    },
    ms: Date.now() - started,
  };
  console.log(
    [
      `${name} (${storm ? 'storm' : 'calm'}, ${pass.ms} ms): ${count(outcomes, 'rotated')} rotated, ${count(outcomes, 'failed')} failed, ${count(outcomes, 'skipped')} skipped`,
      `  ${summarizeFaults('moto proxy', proxies.aws)}`,
      `  ${summarizeFaults('DynamoDB proxy', proxies.dynamodb)}`,
      `  ${summarizeFaults('OpenBao proxy', proxies.vault)}`,
      ...(storm
        ? [
            `  moto faults by operation: ${JSON.stringify(faultsByOperation(proxies.aws))}`,
            `  DynamoDB faults by operation: ${JSON.stringify(faultsByOperation(proxies.dynamodb))}`,
            `  OpenBao faults by operation: ${JSON.stringify(faultsByOperation(proxies.vault, vaultRoute))}`,
          ]
        : []),
      ...outcomes
        .filter((o) => o.status !== 'rotated')
        .map((o) => `  ${o.status} ${o.kind} ${o.identityId}: ${o.reason ?? ''}`),
    ].join('\n'),
  );
  return pass;
}

const checks = pLimit(6);

/** What is wrong with an identity after the passes, checked against the real servers; [] when it converged. */
async function convergence(identity: Identity): Promise<string[]> {
  const problems: string[] = [];
  const versions = await direct.store.listVersions(identity.id);
  const current = versions.filter((v) => v.stage === 'current');
  const pending = versions.filter((v) => v.stage === 'pending');
  const rotation = await direct.store.getRotation(identity.id);
  const label = `${identity.kind} ${identity.id}`;
  if (current.length !== 1) problems.push(`${label}: ${current.length} current versions`);
  if (current[0]?.origin !== 'issued') problems.push(`${label}: current is not one keywarden issued`);
  if (pending.length) problems.push(`${label}: pending ${pending.map((v) => v.versionId).join(', ')}`);
  if (rotation?.step !== 'finished') problems.push(`${label}: rotation at ${rotation?.step}`);
  const orphaned = await orphans(identity);
  if (orphaned.length) problems.push(`${label}: orphans ${orphaned.join(', ')}`);
  const leftover = await leftoverPending(identity);
  if (leftover.length) problems.push(`${label}: left staged ${leftover.join(', ')}`);
  if (!(await harnessOf(identity).works(identity))) problems.push(`${label}: delivered credential fails`);
  if (!(await deliveredIsCurrent(identity)))
    problems.push(`${label}: delivered value is not the current one`);
  return problems;
}

/** A Vault request without the names and version ids in its path: `POST /v1/secret/data/<name>`. */
const vaultRoute = (operation: string) =>
  operation
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<version>')
    .replace(new RegExp(`${prefix}/kw-f-[0-9a-f]{8}`, 'g'), '<name>')
    .replace(/kw-f-[0-9a-f]{8}/g, '<name>');

const count = (outcomes: RotationOutcome[], status: RotationOutcome['status']) =>
  outcomes.filter((o) => o.status === status).length;

describe('rotation: under throttling, server errors and dropped connections', () => {
  // About 45 s; the storm's backoffs make it vary, so it gets more room than the default 60 s.
  it('accounts for every identity, and converges on the next passes with nothing orphaned or pending', {
    timeout: 120_000,
  }, async () => {
    // prepare: 6 identities of each rotatable kind, as pipelines have them before keywarden
    const identities = await Promise.all(
      harnesses.flatMap((harness) =>
        Array.from({ length: PER_KIND }, () => harness.setup(uniqueName('kw-f'))),
      ),
    );
    for (const identity of identities) expect(await harnessOf(identity).works(identity)).toBe(true);
    // IAM stamps key creation to the second, and an untagged key created in an attempt's
    // second is taken for its orphan: keep the setup keys out of that second.
    await new Promise((resolve) => setTimeout(resolve, 1_100));

    // act: a pass in the storm, a second in the storm that resumes what failed, a third once it is over
    const first = await runPass('pass-1', identities, true);
    const second = await runPass('pass-2', identities, true);
    // Only if the storm left something unfinished: the run after it is over.
    const third = second.outcomes.some((o) => o.status === 'failed')
      ? await runPass('pass-3', identities, false)
      : { name: 'pass-3', outcomes: [], faults: first.faults, ms: 0 };

    // assess: every target accounted for in the first pass, none silently dropped
    expect(first.outcomes.map((o) => o.identityId).sort()).toEqual(identities.map((i) => i.id).sort());
    for (const outcome of first.outcomes) {
      expect(['rotated', 'failed'], JSON.stringify(outcome)).toContain(outcome.status);
      if (outcome.status === 'failed') expect(outcome.reason, outcome.identityId).toMatch(/\S/);
    }
    // The storm really happened, through the three proxies (moto, the store, OpenBao), and of every kind.
    for (const proxy of [first.faults.aws, first.faults.dynamodb, first.faults.vault]) {
      for (const kind of FAULT_KINDS) expect(proxy[kind], kind).toBeGreaterThan(0);
    }
    // Passes after the first only resume what failed: nothing rotated twice.
    const failedFirst = new Set(first.outcomes.filter((o) => o.status === 'failed').map((o) => o.identityId));
    for (const outcome of [...second.outcomes, ...third.outcomes]) {
      if (!failedFirst.has(outcome.identityId)) {
        expect(outcome.status, JSON.stringify(outcome)).toBe('skipped');
        expect(outcome.reason).toMatch(/^not due/);
      }
    }
    const rotatedBy = (pass: Pass) =>
      new Set(pass.outcomes.filter((o) => o.status === 'rotated').map((o) => o.identityId));
    const [byFirst, bySecond, byThird] = [rotatedBy(first), rotatedBy(second), rotatedBy(third)];
    console.log(
      `converged: ${byFirst.size} in pass 1, ${bySecond.size} needed pass 2, ${byThird.size} needed pass 3 (calm), of ${identities.length}`,
    );

    // assess: each identity converged, checked against the real servers
    const problems = (
      await Promise.all(identities.map((identity) => checks(() => convergence(identity))))
    ).flat();
    expect(problems).toEqual([]);

    // assess: the audit trail written through the storm is still one unbroken chain
    const { records, head } = await direct.store.readAll();
    expect(verifyChain(records, head, direct.digest)).toMatchObject({ ok: true });
  });
});

describe('rotation: a create whose answer was lost', () => {
  /**
   * Services whose Vault (or AWS) calls go through a proxy that lets the server carry
   * out the first request `matching`, then drops the connection before the answer.
   */
  async function losingFirstAnswer(target: 'moto' | 'vault', matching: (request: FaultRequest) => boolean) {
    let seen = 0;
    const stack = testStack();
    const proxy = await startFaultProxy({
      target: target === 'moto' ? stack.moto.endpoint : stack.vault.addr,
      dropRate: 1,
      dropAfterForwardShare: 1,
      match: (request) => matching(request) && seen++ === 0,
    });
    const services = wire(
      runtimeConfigThrough(target === 'moto' ? { aws: proxy } : { vault: proxy }, base),
      clock,
    );
    return { proxy, services };
  }

  /** Rotates once with `deps` (the answer is lost), then once directly (the next run), and gathers what happened. */
  async function rotateTwice(deps: RotationDeps, identity: Identity, between?: () => Promise<void>) {
    const [lost] = await rotateMany(deps, [identity], { owner: deps.actor, limit: pLimit(1) });
    const state = await direct.store.getRotation(identity.id);
    const leftBehind = (await direct.rotationDeps('check').providerFor(identity).list()).filter(
      (listed) => listed.status === 'active',
    );
    await between?.();
    const [next] = await rotateMany(direct.rotationDeps('next-run'), [identity], {
      owner: 'next-run',
      limit: pLimit(1),
    });
    const revokedAsOrphan = (await direct.store.readAll()).records
      .filter((r) => r.subject === identity.id && r.type === 'credential.revoked')
      .filter((r) => /orphan/.test(String(r.details.reason)))
      .map((r) => String(r.details.handle));
    return { lost, state, leftBehind, next, revokedAsOrphan };
  }

  /**
   * An untagged credential created less than a second before an attempt began is taken
   * for that attempt's orphan (see the known bug below): keep what setup made out of it.
   */
  const pastTheSecond = () => new Promise((resolve) => setTimeout(resolve, 1_100));

  it.each([
    ['vault-token', vaultTokens, (r: FaultRequest) => r.operation === 'POST /v1/auth/token/create-orphan'],
    [
      'vault-approle-secret-id',
      approleSecretIds,
      (r: FaultRequest) => /^POST \/v1\/auth\/approle\/role\/[^/]+\/secret-id$/.test(r.operation),
    ],
  ] as const)(
    '%s: is not retried; the attempt fails retryably and the next run revokes what it made',
    async (_kind, harness, matching) => {
      // prepare
      const identity = await harness.setup(uniqueName('kw-lost'));
      await pastTheSecond();
      const { proxy, services } = await losingFirstAnswer('vault', matching);

      try {
        // act
        const { lost, state, leftBehind, next, revokedAsOrphan } = await rotateTwice(
          services.rotationDeps('lost-run'),
          identity,
        );

        // assess: the lost create was neither retried nor silently survived
        expect(proxy.counts.droppedAfterForward).toBe(1);
        expect(proxy.counts.retriedAfter.droppedAfterForward).toBe(0);
        expect(lost?.status).toBe('failed');
        expect(lost?.reason).toMatch(/got no answer .*ECONNRESET.*progress is kept; the next run resumes/);
        // Vault did create it: tagged with the attempt's version, unknown to the store.
        const made = leftBehind.filter((listed) => listed.versionId === state?.versionId);
        expect(made).toHaveLength(1);
        // The next run resumed, revoked it as the interrupted attempt's orphan, and rotated.
        expect(next).toMatchObject({ status: 'rotated', resumed: true });
        expect(revokedAsOrphan).toEqual([made[0]?.handle]);
        expect(await convergence(identity)).toEqual([]);
      } finally {
        await proxy.close();
      }
    },
  );

  it('aws-iam-access-key: the SDK retries CreateAccessKey into the 2-key quota; the next run revokes the key nobody received', async () => {
    // prepare
    const identity = await iamKeys.setup(uniqueName('kw-lost'));
    await pastTheSecond();
    const { proxy, services } = await losingFirstAnswer('moto', (r) => r.operation === 'CreateAccessKey');
    // Two attempts: the SDK's own retry of the lost create, and no more. The wiring's client
    // would go on to retry IAM's LimitExceeded (the 2-key quota) as throttling, 8 attempts
    // and about 45 s of backoff, to the same end.
    const iam = new IamAccessKeyProvider({
      iam: new IAMClient({ ...awsClientConfig(services.config.aws), maxAttempts: 2 }),
      endpoint: services.config.aws,
    });
    const deps = services.rotationDeps('lost-run', {
      providerFor: (identity) =>
        identity.kind === 'aws-iam-access-key'
          ? bindProvider(iam, identity)
          : services.rotationDeps('lost-run').providerFor(identity),
    });

    try {
      // act
      const { lost, leftBehind, next, revokedAsOrphan } = await rotateTwice(deps as RotationDeps, identity);

      // assess: IAM made a key whose secret nobody received; the SDK's retry hit the quota
      expect(proxy.counts.droppedAfterForward).toBe(1);
      expect(proxy.counts.retriedAfter.droppedAfterForward).toBe(1);
      expect(lost?.status).toBe('failed');
      expect(leftBehind).toHaveLength(2);
      // The next run resumed, revoked that key as the interrupted attempt's orphan, and rotated.
      expect(next).toMatchObject({ status: 'rotated', resumed: true });
      expect(revokedAsOrphan).toHaveLength(1);
      expect(await convergence(identity)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  /**
   * Orphan cleanup after an interrupted attempt revokes only what carries that attempt's
   * tag (tokens and secret-ids always do); an untagged secret-id someone else made in
   * between (an operator, a CI orchestrator minting one per job) is left alone.
   */
  it('a secret-id someone else made after the lost attempt began survives the next run', async () => {
    // prepare
    const identity = await approleSecretIds.setup(uniqueName('kw-lost'));
    await pastTheSecond();
    const { proxy, services } = await losingFirstAnswer('vault', (r) =>
      /^POST \/v1\/auth\/approle\/role\/[^/]+\/secret-id$/.test(r.operation),
    );
    let handMade = '';
    const reissueByHand = async () => {
      // An operator re-issues the pipeline's secret-id by hand, untagged, and delivers it.
      const role = identity.kind === 'vault-approle-secret-id' ? identity.scope.roleName : '';
      const roleId = String((await vault.read(`auth/approle/role/${role}/role-id`))?.data?.role_id);
      const created = await vault.write(`auth/approle/role/${role}/secret-id`, {});
      handMade = String(created.data?.secret_id_accessor);
      const delivery = deliveryOf(identity);
      await vault.write(`secret/data/${delivery?.type === 'vault-kv' ? delivery.path : ''}`, {
        data: { role_id: roleId, secret_id: created.data?.secret_id },
      });
    };

    try {
      // act
      const { revokedAsOrphan } = await rotateTwice(
        services.rotationDeps('lost-run'),
        identity,
        reissueByHand,
      );

      // assess
      expect(handMade).not.toBe('');
      expect(revokedAsOrphan).not.toContain(handMade);
    } finally {
      await proxy.close();
    }
  });
});

describe('rotation: a promotion whose answer was lost', () => {
  /**
   * Rotates `identity` once through a fault proxy in front of `service` that carries out the
   * first request `matching` selects and drops its answer; returns the outcome and the proxy's counts.
   */
  async function rotateLosingFirstAnswer(
    identity: Identity,
    service: 'aws' | 'vault',
    matching: (request: FaultRequest) => boolean,
  ) {
    let seen = 0;
    const proxy = await startFaultProxy({
      target: service === 'aws' ? testStack().moto.endpoint : testStack().vault.addr,
      dropRate: 1,
      dropAfterForwardShare: 1,
      match: (r) => matching(r) && seen++ === 0,
    });
    const services = wire(runtimeConfigThrough({ [service]: proxy }, base), clock);
    try {
      const [outcome] = await rotateMany(services.rotationDeps('lost-run'), [identity], {
        owner: 'lost-run',
        limit: pLimit(1),
      });
      return { outcome, counts: proxy.counts };
    } finally {
      await proxy.close();
    }
  }

  /**
   * When UpdateSecretVersionStage is carried out but its answer is lost, the SDK's retry
   * fails (the label already moved); the delivery reads the labels again and sees the
   * move happened, so the rotation finishes in the same run.
   */
  it('aws-secret finishes the rotation in the same run when the answer to the label move was lost', async () => {
    // prepare
    const identity = await awsSecrets.setup(uniqueName('kw-lost'));

    // act
    const { outcome, counts } = await rotateLosingFirstAnswer(
      identity,
      'aws',
      (r) => r.operation === 'UpdateSecretVersionStage' && r.body.includes('MoveToVersionId'),
    );

    // assess
    expect(counts.droppedAfterForward).toBe(1);
    expect(outcome?.status, outcome?.reason).toBe('rotated');
  });

  /**
   * The KV promote is a check-and-set write of the new version, then a check-and-set
   * write of the metadata record. When either lands but its answer is lost, the Vault
   * client sends it again, and the retry fails its check against the write that landed;
   * the delivery re-reads, finds its own version (or record), and the rotation finishes
   * in the same run.
   */
  it.each([
    [
      'the check-and-set write of the new version',
      (path: string) => (r: FaultRequest) =>
        /^(?:POST|PUT) /.test(r.operation) &&
        r.operation.endsWith(`/v1/secret/data/${path}`) &&
        /"options":\{"cas":\d+\}/.test(r.body.toString('utf8')),
    ],
    [
      'the metadata record of the new version',
      (path: string) => (r: FaultRequest) =>
        /^(?:POST|PUT) /.test(r.operation) &&
        r.operation.endsWith(`/v1/secret/metadata/${path}`) &&
        r.body.toString('utf8').includes('"custom_metadata"'),
    ],
  ] as const)(
    'vault-kv finishes the rotation in the same run when the answer to %s was lost',
    async (_write, matchingFor) => {
      // prepare: a KV secret the pipeline reads today (version 1)
      const identity = await kvSecrets.setup(uniqueName('kw-lost'));
      const path = identity.kind === 'vault-kv' ? identity.scope.path : '';

      // act
      const { outcome, counts } = await rotateLosingFirstAnswer(identity, 'vault', matchingFor(path));

      // assess: the write landed, its answer was lost, and the client's retry met it
      expect(counts.droppedAfterForward).toBe(1);
      expect(counts.retriedAfter.droppedAfterForward).toBe(1);
      expect(outcome?.status, outcome?.reason).toBe('rotated');
      // One new KV version, holding the new value and recorded as the current version.
      const current = (await direct.store.listVersions(identity.id)).find((v) => v.stage === 'current');
      const state = await readKvState(vault, 'secret', path);
      expect(state?.currentVersion).toBe(2);
      expect(state?.customMetadata).toEqual({ 'kw-2': current?.versionId });
      expect(await deliveredIsCurrent(identity)).toBe(true);
      // Nothing pending or orphaned, and the trail has no failure for it.
      expect(await convergence(identity)).toEqual([]);
      const failures = (await direct.store.readAll()).records.filter(
        (r) => r.subject === identity.id && r.type === 'rotation.failed',
      );
      expect(failures).toEqual([]);
    },
  );

  /**
   * The other writes of a delivery already meet their own landed write on retry: staging
   * repeats the same version with the same value (Secrets Manager's ClientRequestToken; a
   * KV sidecar rewritten with what it holds), a label removal the retry finds already
   * gone is re-read as done, and deleting a KV sidecar that is gone answers 204.
   */
  it.each([
    ['aws-secret', 'staging with PutSecretValue', (r: FaultRequest) => r.operation === 'PutSecretValue'],
    [
      'aws-secret',
      'the removal of AWSPENDING',
      (r: FaultRequest) =>
        r.operation === 'UpdateSecretVersionStage' &&
        r.body.includes('AWSPENDING') &&
        !r.body.includes('MoveToVersionId'),
    ],
    [
      'vault-kv',
      'staging the sidecar',
      (r: FaultRequest) => /^(?:POST|PUT) \/v1\/secret\/data\/keywarden-pending\//.test(r.operation),
    ],
    [
      'vault-kv',
      'discarding the sidecar',
      (r: FaultRequest) => r.operation.startsWith('DELETE /v1/secret/metadata/keywarden-pending/'),
    ],
  ] as const)(
    '%s finishes the rotation in the same run when the answer to %s was lost',
    async (kind, _write, matching) => {
      // prepare
      const identity = await (kind === 'aws-secret' ? awsSecrets : kvSecrets).setup(uniqueName('kw-lost'));

      // act
      const { outcome, counts } = await rotateLosingFirstAnswer(
        identity,
        kind === 'aws-secret' ? 'aws' : 'vault',
        matching,
      );

      // assess: the write landed, its answer was lost, the client retried, and the run finished
      expect(counts.droppedAfterForward).toBe(1);
      expect(counts.retriedAfter.droppedAfterForward).toBe(1);
      expect(outcome?.status, outcome?.reason).toBe('rotated');
      expect(await convergence(identity)).toEqual([]);
    },
  );
});
