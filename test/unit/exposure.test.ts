import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Fingerprinter } from '../../functions/adapters/crypto.ts';
import { canonicalJson } from '../../functions/core/canonical-json.ts';
import {
  CONTAINMENT_LEASE_MS,
  type ContainDeps,
  containHits,
  exposureIncident,
  loadMatcher,
  MANAGED_VALUE_RULE,
  saveUnmanagedFindings,
  scanText,
  unmanagedFindings,
} from '../../functions/core/exposure.ts';
import { candidatesOf, redactedPrefix } from '../../functions/core/exposure-match.ts';
import type { DetectedSecret, ExposureSource } from '../../functions/core/exposure-types.ts';
import type { Finding } from '../../functions/core/findings.ts';
import type { Identity } from '../../functions/core/identity.ts';
import type { ContainmentResult, ExposureContainment, SecretDetector } from '../../functions/core/ports.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { credentialVersion, FixedClock, identity } from '../support/fixtures.ts';
import {
  MemoryAuditLog,
  MemoryExposureStore,
  MemoryFindings,
  MemoryIdentityStore,
  MemoryRotationStore,
} from '../support/memory-stores.ts';

/** Letters and digits, generated: no credential-looking literal in the spec. */
const alnum = (length: number, alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789') =>
  Array.from(randomBytes(length), (byte) => alphabet[byte % alphabet.length]).join('');
const upper = (length: number) => alnum(length, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567');

const fingerprinter = new Fingerprinter(randomBytes(32));
const fingerprint = (text: string) => fingerprinter.of(text);

/** The managed credentials of every kind, as keywarden holds them: fingerprints of their credential parts. */
async function managedWorld() {
  const clock = new FixedClock(new Date('2026-12-05T08:00:00Z'));
  const identities = new MemoryIdentityStore();
  const versions = new MemoryRotationStore();
  const values = {
    token: `hvs.${alnum(90)}`,
    kvPassword: alnum(24),
    dbPassword: alnum(32),
    secretId: randomUUID(),
    roleId: randomUUID(),
    accessKeyId: `AKIA${upper(16)}`,
    secretAccessKey: randomBytes(30).toString('base64'),
    revoked: `hvs.${alnum(90)}`,
  };
  const declared: [Identity, string, string][] = [
    [identity({ id: 'release-token', kind: 'vault-token', owner: 'team-release' }), 'acc-1', values.token],
    [
      identity({ id: 'ftp', kind: 'vault-kv', scope: { path: 'ci/ftp', field: 'password' } }),
      '3',
      canonicalJson({ password: values.kvPassword }),
    ],
    [
      identity({
        id: 'app-db',
        kind: 'aws-secret',
        scope: {
          secretId: 'ci/app/db',
          template: {
            keep: ['username', 'host'],
            generate: {
              password: { format: 'random', length: 32 },
              url: { format: 'template', template: 'postgres://{username}:{password:url}@{host}/app' },
            },
          },
        },
      }),
      'sm-v1',
      canonicalJson({ password: values.dbPassword }),
    ],
    [
      identity({ id: 'deployer', kind: 'vault-approle-secret-id' }),
      'sid-acc-1',
      JSON.stringify({ role_id: values.roleId, secret_id: values.secretId }),
    ],
    [
      identity({ id: 'build-aws', kind: 'aws-iam-access-key', owner: 'team-app' }),
      values.accessKeyId,
      JSON.stringify({ accessKeyId: values.accessKeyId, secretAccessKey: values.secretAccessKey }),
    ],
  ];
  for (const [declaredIdentity, handle, part] of declared) {
    await identities.putIdentity(
      {
        identity: declaredIdentity,
        status: 'active',
        declarationHash: 'h',
        syncedAt: clock.now().toISOString(),
      },
      undefined,
    );
    await versions.putVersion(
      credentialVersion(declaredIdentity, { handle, fingerprint: fingerprint(part) }),
      undefined,
    );
  }
  const [token] = declared[0] as [Identity, string, string];
  await versions.putVersion(
    credentialVersion(token, {
      handle: 'acc-0',
      versionId: 'v-old',
      stage: 'revoked',
      fingerprint: fingerprint(values.revoked),
    }),
    undefined,
  );
  const matcher = await loadMatcher({
    identities,
    versions,
    fingerprint,
    roleIdOf: async (id) => (id.kind === 'vault-approle-secret-id' ? values.roleId : undefined),
  });
  return { clock, values, matcher };
}

const source: ExposureSource = { kind: 'file', location: 'build.log' };

/** A build log: noise, look-alikes, and every managed value in the form a pipeline prints it. */
function buildLog(values: Awaited<ReturnType<typeof managedWorld>>['values']): string {
  return [
    '2026-12-05T08:00:01.123Z [build] starting job 4411 on runner-7',
    `noise ${randomUUID()} sha256:${randomBytes(32).toString('hex')} ${randomBytes(48).toString('base64')}`,
    `export VAULT_TOKEN=${values.token}`,
    `ftp password: "${values.kvPassword}"`,
    `DATABASE_URL=postgres://app:${encodeURIComponent(values.dbPassword)}@db.internal/app`,
    `login with role_id=${values.roleId} secret_id=${values.secretId}`,
    `aws_access_key_id=${values.accessKeyId}`,
    `aws_secret_access_key=${values.secretAccessKey}`,
    `old token ${values.revoked} (revoked long ago)`,
    'done in 42s',
  ].join('\n');
}

describe('exposure matching: managed credentials by keyed fingerprint', () => {
  it('finds every managed kind in a log with no detector: plain token, field, template field, AppRole secret-id, AWS pair', async () => {
    // prepare
    const { values, matcher } = await managedWorld();
    // act
    const hits = await scanText(matcher, undefined, fingerprint, buildLog(values), source);
    // assess
    expect(hits.map((h) => [h.line, h.managed?.identityId, h.status, h.severity, h.rule])).toEqual([
      [3, 'release-token', 'managed', 'critical', MANAGED_VALUE_RULE],
      [4, 'ftp', 'managed', 'critical', MANAGED_VALUE_RULE],
      [5, 'app-db', 'managed', 'critical', MANAGED_VALUE_RULE],
      [6, 'deployer', 'managed', 'critical', MANAGED_VALUE_RULE],
      [8, 'build-aws', 'managed', 'critical', MANAGED_VALUE_RULE],
      // keywarden's, but dead: reported, nothing to contain
      [9, 'release-token', 'managed', 'low', MANAGED_VALUE_RULE],
    ]);
    expect(hits[0]?.managed).toMatchObject({ owner: 'team-release', stage: 'build', environment: 'staging' });
    expect(hits[0]?.column).toBe('export VAULT_TOKEN='.length + 1);
  });

  it('never puts a value in a hit: prefixes are 4 characters at most, fingerprints are HMACs', async () => {
    const { values, matcher } = await managedWorld();
    const hits = await scanText(matcher, undefined, fingerprint, buildLog(values), source);
    const printed = JSON.stringify(hits);
    for (const value of Object.values(values)) {
      if (value === values.accessKeyId || value === values.roleId) continue; // not secrets
      expect(printed).not.toContain(value);
      expect(printed).not.toContain(value.slice(0, 8));
    }
    for (const hit of hits) expect(hit.prefix.replace('…', '').length).toBeLessThanOrEqual(4);
    expect(redactedPrefix('abcdefgh')).toBe('ab…');
  });

  it('matches what a detector found, and says why an AWS pair with a managed key id is not keywarden’s', async () => {
    // prepare: a detector that reports an unknown token and a pair whose secret is another
    const { values, matcher } = await managedWorld();
    const otherToken = `hvs.${alnum(90)}`;
    const otherSecret = randomBytes(30).toString('base64');
    const text = `a ${otherToken}\nb ${values.accessKeyId} ${otherSecret}\nc ${values.token}`;
    const detector: SecretDetector = {
      detect: async (): Promise<DetectedSecret[]> => [
        {
          rule: 'vault-service-token',
          value: new SecretValue(otherToken),
          line: 1,
          column: 3,
          encoding: 'plain',
        },
        {
          rule: 'aws-access-key-pair',
          value: SecretValue.ofJson({ accessKeyId: values.accessKeyId, secretAccessKey: otherSecret }),
          accessKeyId: values.accessKeyId,
          line: 2,
          column: 3,
          encoding: 'plain',
        },
        {
          rule: 'vault-service-token',
          value: new SecretValue(values.token),
          line: 3,
          column: 3,
          encoding: 'plain',
        },
      ],
    };
    // act
    const hits = await scanText(matcher, detector, fingerprint, text, source);
    // assess
    expect(hits.map((h) => [h.line, h.rule, h.status, h.severity])).toEqual([
      [1, 'vault-service-token', 'unmanaged', 'high'],
      [2, 'aws-access-key-pair', 'unmanaged', 'high'],
      [3, 'vault-service-token', 'managed', 'critical'],
    ]);
    expect(hits[1]?.prefix).toBe('AKIA…');
    expect(hits[1]?.note).toMatch(/is build-aws's .* not that key's/);
    expect(hits[0]?.fingerprint).toBe(fingerprint(otherToken));
  });

  it('finds managed values no rule knows inside base64 (a KV password, an AppRole secret-id), placed at the segment', async () => {
    const { values, matcher } = await managedWorld();
    const encoded = (text: string) => Buffer.from(text).toString('base64');
    const text = `one\nconfig: ${encoded(`password=${values.kvPassword}\nuser=ci`)}\nid ${encoded(values.secretId)}`;
    const hits = await scanText(matcher, undefined, fingerprint, text, source);
    expect(hits.map((h) => [h.line, h.column, h.encoding, h.managed?.identityId])).toEqual([
      [2, 9, 'base64', 'ftp'],
      [3, 4, 'base64', 'deployer'],
    ]);
  });

  it('splits tokens at delimiters and URL-decodes, without keeping words, numbers or time stamps', () => {
    const value = alnum(20);
    const texts = [...candidatesOf(`KEY=${value}; at 2026-12-05T08:00:01Z user keywarden-demo`, 1)].map(
      (c) => c.text,
    );
    expect(texts).toContain(value);
    expect(texts).not.toContain('2026-12-05T08:00:01Z');
    expect(texts).not.toContain('keywarden-demo');
    const lowercase = alnum(20, 'abcdefghijklmnopqrstuvwxyz');
    expect([...candidatesOf(`compiling ${lowercase}`, 1)].map((c) => c.text)).toEqual([lowercase]);
    const encoded = [...candidatesOf(`p=${encodeURIComponent(`${value}/+=`)}`, 1)];
    expect(encoded.some((c) => c.text === `${value}/+=` && c.encoding === 'url')).toBe(true);
  });
});

describe('exposure containment: once per fingerprint, audited in three events', () => {
  function containDeps(clock: FixedClock) {
    const exposures = new MemoryExposureStore();
    const audit = new MemoryAuditLog(clock);
    const calls: string[] = [];
    const containment: ExposureContainment = {
      async contain({ incident, fingerprint: fp }): Promise<ContainmentResult> {
        calls.push(fp);
        return {
          campaignId: `${incident}-c1`,
          outcome: 'contained',
          revoked: 1,
          failures: [],
          reissuedVersionId: 'v-new',
        };
      },
    };
    const deps: ContainDeps = { exposures, containment, audit, clock, actor: 'cli:alice' };
    return { deps, exposures, audit, calls };
  }

  it('contains each managed credential once, even seen twice in a text, in another file, in another run', async () => {
    // prepare
    const { clock, values, matcher } = await managedWorld();
    const { deps, audit, calls } = containDeps(clock);
    const log = buildLog(values);
    const hits = await scanText(matcher, undefined, fingerprint, `${log}\n${log}`, source);
    // act
    const first = await containHits(deps, hits);
    const again = await containHits(
      deps,
      await scanText(matcher, undefined, fingerprint, log, { kind: 'file', location: 'other.log' }),
    );
    // assess
    expect(first.map((c) => [c.identityId, c.status])).toEqual([
      ['release-token', 'contained'],
      ['ftp', 'contained'],
      ['app-db', 'contained'],
      ['deployer', 'contained'],
      ['build-aws', 'contained'],
    ]);
    expect(calls).toHaveLength(5);
    expect(
      again.every((c) => c.status === 'already-contained' && c.firstSeen.startsWith('file build.log:')),
    ).toBe(true);
    expect(calls).toHaveLength(5);
    // Once revoked, the same values are dead keywarden credentials: still reported as contained before.
    const revoked = hits.map((hit) =>
      hit.managed
        ? { ...hit, severity: 'low' as const, managed: { ...hit.managed, versionStage: 'revoked' } }
        : hit,
    );
    const later = await containHits(deps, revoked);
    expect(later.map((c) => [c.identityId, c.status])).toEqual([
      ['release-token', 'already-contained'],
      ['ftp', 'already-contained'],
      ['app-db', 'already-contained'],
      ['deployer', 'already-contained'],
      ['build-aws', 'already-contained'],
    ]);
    expect(calls).toHaveLength(5);
    const { records } = await audit.readAll();
    const token = records.filter((r) => r.subject === 'release-token');
    expect(token.map((r) => r.type)).toEqual([
      'exposure.detected',
      'exposure.contained',
      'exposure.reissued',
    ]);
    expect(token[0]?.details).toMatchObject({
      source: 'file',
      location: 'build.log',
      line: 3,
      rule: MANAGED_VALUE_RULE,
      identity: 'release-token',
    });
    expect(token[0]?.details.reason).toBe(
      `exposed in file build.log:3 (rule ${MANAGED_VALUE_RULE}); contained as ${exposureIncident(String(token[0]?.details.fingerprint))}`,
    );
    expect(token[1]?.details).toMatchObject({
      campaignId: expect.stringMatching(/^EXPOSURE-[0-9a-f]{12}-c1$/),
      outcome: 'contained',
    });
    expect(token[2]?.details).toMatchObject({ versionId: 'v-new' });
    const printed = JSON.stringify(records);
    for (const value of [
      values.token,
      values.kvPassword,
      values.dbPassword,
      values.secretId,
      values.secretAccessKey,
    ]) {
      expect(printed).not.toContain(value);
    }
  });

  it('tries again a containment that failed before it ran to the end', async () => {
    const { clock, values, matcher } = await managedWorld();
    const { deps, calls } = containDeps(clock);
    const hits = await scanText(matcher, undefined, fingerprint, `x ${values.token}`, source);
    const failing: ExposureContainment = { contain: () => Promise.reject(new Error('vault unreachable')) };
    const failed = await containHits({ ...deps, containment: failing }, hits);
    expect(failed.map((c) => [c.status, c.failures])).toEqual([['failed', ['vault unreachable']]]);
    const retried = await containHits(deps, hits);
    expect(retried.map((c) => c.status)).toEqual(['contained']);
    expect(calls).toHaveLength(1);
  });

  it('contains a leak two scanners see at once once: the other says in-progress and does nothing', async () => {
    // prepare: a containment slow enough for the second scanner to arrive while the first runs
    const { clock, values, matcher } = await managedWorld();
    const { deps, audit } = containDeps(clock);
    const asked: string[] = [];
    const slow: ExposureContainment = {
      async contain({ incident, fingerprint: fp }) {
        asked.push(fp);
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { campaignId: `${incident}-c1`, outcome: 'contained', revoked: 1, failures: [] };
      },
    };
    const hits = await scanText(matcher, undefined, fingerprint, `x ${values.token}`, source);
    // act
    const [a, b] = await Promise.all([
      containHits({ ...deps, containment: slow }, hits),
      containHits({ ...deps, containment: slow }, hits),
    ]);
    // assess
    expect([...(a ?? []), ...(b ?? [])].map((c) => c.status).sort()).toEqual(['contained', 'in-progress']);
    expect(asked).toHaveLength(1);
    const { records } = await audit.readAll();
    expect(records.filter((r) => r.type === 'exposure.contained')).toHaveLength(1);
  });

  it('leaves a containment that died holding its claim to the next sighting once the lease ran out', async () => {
    // prepare: a scanner recorded and claimed it, then died (no result, no mark)
    const { clock, values, matcher } = await managedWorld();
    const { deps, exposures, calls } = containDeps(clock);
    const hits = await scanText(matcher, undefined, fingerprint, `x ${values.token}`, source);
    const [hit] = hits;
    if (!hit?.managed) throw new Error('expected a managed hit');
    await exposures.recordExposure({
      fingerprint: hit.fingerprint,
      identityId: hit.managed.identityId,
      kind: hit.managed.kind,
      versionId: hit.managed.versionId,
      handle: hit.managed.handle,
      source,
      line: 1,
      rule: hit.rule,
      detectedAt: clock.now().toISOString(),
    });
    await exposures.claimContainment(hit.fingerprint, {
      at: clock.now().toISOString(),
      until: new Date(clock.now().getTime() + CONTAINMENT_LEASE_MS).toISOString(),
    });
    // act
    clock.advance(60_000);
    const during = await containHits(deps, hits);
    clock.advance(CONTAINMENT_LEASE_MS);
    const after = await containHits(deps, hits);
    // assess
    expect(during.map((c) => c.status)).toEqual(['in-progress']);
    expect(after.map((c) => c.status)).toEqual(['contained']);
    expect(calls).toHaveLength(1);
  });

  it('counts a containment the state machine started as handled: audited started, nothing revoked yet, not contained again', async () => {
    // prepare: the deployed containment returns once the execution starts
    const { clock, values, matcher } = await managedWorld();
    const { deps, audit } = containDeps(clock);
    const started: string[] = [];
    const stateMachine: ExposureContainment = {
      async contain({ incident, fingerprint: fp }) {
        started.push(fp);
        return {
          campaignId: `${incident}-c1`,
          outcome: 'started',
          revoked: 0,
          failures: [],
          reissue: `by the revocation state machine (campaign ${incident}-c1)`,
        };
      },
    };
    const hits = await scanText(matcher, undefined, fingerprint, `x ${values.token}`, source);
    // act
    const first = await containHits({ ...deps, containment: stateMachine }, hits);
    const again = await containHits({ ...deps, containment: stateMachine }, hits);
    // assess
    expect(first.map((c) => c.status)).toEqual(['started']);
    expect(again.map((c) => [c.status, c.campaignId])).toEqual([['already-contained', first[0]?.campaignId]]);
    expect(started).toHaveLength(1);
    const { records } = await audit.readAll();
    const [contained] = records.filter((r) => r.type === 'exposure.contained');
    expect(contained?.details).toMatchObject({
      outcome: 'started',
      revoked: 0,
      reason: `containment started (campaign ${first[0]?.campaignId})`,
    });
  });
});

describe('exposure findings: unmanaged hits join the latest findings', () => {
  it('records one exposed-unmanaged finding per fingerprint, with its places, beside the findings already there', async () => {
    // prepare
    const { clock, matcher } = await managedWorld();
    const unknown = `hvs.${alnum(90)}`;
    const detector: SecretDetector = {
      detect: async (text) =>
        text.split('\n').flatMap((line, i) =>
          line.includes(unknown)
            ? [
                {
                  rule: 'vault-service-token',
                  value: new SecretValue(unknown),
                  line: i + 1,
                  column: 1,
                  encoding: 'plain' as const,
                },
              ]
            : [],
        ),
    };
    const hits = await scanText(matcher, detector, fingerprint, `${unknown}\nnothing\n${unknown}`, source);
    const findings = new MemoryFindings();
    const earlier: Finding = {
      id: 'stale:x',
      type: 'stale',
      severity: 'medium',
      subject: 'x',
      identityIds: ['x'],
      handles: [],
      message: 'stale',
    };
    findings.latest = { runId: 'r1', at: '2026-12-04T00:00:00.000Z', findings: [earlier] };
    // act
    await saveUnmanagedFindings({ findings, clock }, unmanagedFindings(hits));
    // assess
    const saved = findings.latest?.findings ?? [];
    expect(saved.map((f) => [f.type, f.severity])).toEqual([
      ['stale', 'medium'],
      ['exposed-unmanaged', 'high'],
    ]);
    expect(saved[1]?.message).toContain('file build.log:1, file build.log:3');
    expect(JSON.stringify(saved)).not.toContain(unknown);
  });
});
