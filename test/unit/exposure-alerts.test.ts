import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Fingerprinter } from '../../functions/adapters/crypto.ts';
import {
  type ContainDeps,
  containHits,
  type ExposureDeps,
  loadMatcher,
  SHORT_FINGERPRINT,
  scanText,
} from '../../functions/core/exposure.ts';
import { alertSubject, alertText, deliverAlert } from '../../functions/core/exposure-alert.ts';
import { scanAndContain } from '../../functions/core/exposure-batch.ts';
import type { Identity } from '../../functions/core/identity.ts';
import type { ExposureContainment } from '../../functions/core/ports.ts';
import { containUnexpectedUse } from '../../functions/core/unexpected-use.ts';
import { credentialVersion, FixedClock, identity } from '../support/fixtures.ts';
import { MemoryExposureAlerts } from '../support/memory-alerts.ts';
import {
  MemoryAuditLog,
  MemoryExposureStore,
  MemoryFindings,
  MemoryIdentityStore,
  MemoryRotationStore,
} from '../support/memory-stores.ts';

/** A Vault token of OpenBao's form, generated: no credential-looking literal in the spec. */
const token = () =>
  `hvs.${Array.from(randomBytes(90), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[b % 62]).join('')}`;

/**
 * Two managed Vault tokens (`release-token` owned by team-release, `broken-token` whose
 * containment fails), a containment that records what it was asked, and the alerts in memory.
 */
async function world(alerts = new MemoryExposureAlerts()) {
  const clock = new FixedClock(new Date('2026-12-05T08:00:00Z'));
  const fingerprinter = new Fingerprinter(randomBytes(32));
  const identities = new MemoryIdentityStore();
  const versions = new MemoryRotationStore();
  const values = { release: token(), broken: token() };
  const declared: [Identity, string][] = [
    [identity({ id: 'release-token', kind: 'vault-token', owner: 'team-release' }), values.release],
    [identity({ id: 'broken-token', kind: 'vault-token', owner: 'team-ops' }), values.broken],
  ];
  for (const [declaredIdentity, value] of declared) {
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
      credentialVersion(declaredIdentity, {
        handle: `acc-${declaredIdentity.id}`,
        fingerprint: fingerprinter.of(value),
      }),
      undefined,
    );
  }
  const asked: string[] = [];
  const containment: ExposureContainment = {
    async contain({ incident, identityId }) {
      asked.push(identityId);
      if (identityId === 'broken-token') throw new Error('vault unreachable');
      return {
        campaignId: `${incident}-c1`,
        outcome: 'contained',
        revoked: 1,
        failures: [],
        reissuedVersionId: 'v-new',
        report: 'reports/x.html',
      };
    },
  };
  const exposure: ExposureDeps = {
    identities,
    versions,
    fingerprint: (text) => fingerprinter.of(text),
    exposures: new MemoryExposureStore(),
    audit: new MemoryAuditLog(clock),
    findings: new MemoryFindings(),
    clock,
  };
  const contain: ContainDeps = { ...exposure, containment, actor: 'cli:alice', alerts };
  const matcher = await loadMatcher(exposure);
  const hitsIn = (text: string, location = 'build.log') =>
    scanText(matcher, undefined, exposure.fingerprint, text, { kind: 'file', location });
  return { values, exposure, contain, containment, alerts, asked, hitsIn };
}

describe('deliverAlert: one builder of the alert for both causes', () => {
  it('builds the alert of an attempted containment from its facts: the fingerprint shortened, nothing else of what it was handed', async () => {
    // prepare: an exposure's containment as containHits keeps it, and an unexpected use's as containUnexpectedUse does
    const fingerprint = `hmac-sha256:${randomBytes(32).toString('hex')}`;
    const exposed = {
      identityId: 'release-token',
      owner: 'team-release',
      incident: 'EXPOSURE-0123456789ab',
      status: 'failed',
      where: 'file build.log:3',
      firstSeen: 'file build.log:3',
      fingerprint,
      failures: ['Vault answered 503'],
      alerted: false,
    };
    const used = {
      identityId: 'deploy-prod',
      handle: 'access-key-1',
      findingId: 'used-from-unexpected-runner:deploy-prod:access-key-1',
      owner: undefined,
      incident: 'UNEXPECTED-USE-0123456789ab',
      where: '198.51.100.7 at 2026-12-05T08:00:00Z',
      fingerprint,
      campaignId: 'c-1',
      reissuedVersionId: 'v-2',
      failures: [],
    };
    const channel = new MemoryExposureAlerts();

    // act
    const delivered = [
      await deliverAlert(channel, 'exposure', 'failed', exposed),
      await deliverAlert(channel, 'unexpected-use', 'contained', used),
    ];

    // assess
    // every field of an alert, each cause's too (an absent one undefined), and nothing else
    const fields = [
      'campaignId',
      'cause',
      'failures',
      'fingerprint',
      'identityId',
      'incident',
      'owner',
      'reissue',
      'reissuedVersionId',
      'report',
      'status',
      'where',
    ];
    expect(delivered).toEqual([{ alerted: true }, { alerted: true }]);
    expect(channel.sent.map((alert) => Object.keys(alert).sort())).toEqual([fields, fields]);
    expect(channel.sent[0]).toMatchObject({
      cause: 'exposure',
      status: 'failed',
      failures: ['Vault answered 503'],
    });
    expect(channel.sent[1]).toMatchObject({
      cause: 'unexpected-use',
      status: 'contained',
      reissuedVersionId: 'v-2',
    });
    for (const alert of channel.sent) expect(alert.fingerprint).toBe(fingerprint.slice(0, SHORT_FINGERPRINT));
  });
});

describe('exposure containment: the owner is alerted once per containment attempted', () => {
  it('alerts a contained and a failed credential once each, where first seen, by a short fingerprint, never the value', async () => {
    // prepare: each token twice in the log (two hits, one fingerprint each)
    const { values, contain, alerts, hitsIn } = await world();
    const hits = await hitsIn(
      [`a ${values.release}`, `b ${values.broken}`, `c ${values.release}`, `d ${values.broken}`].join('\n'),
    );
    // act
    const results = await containHits(contain, hits);
    // assess
    expect(results.map((c) => [c.identityId, c.status, c.alerted])).toEqual([
      ['release-token', 'contained', true],
      ['broken-token', 'failed', true],
    ]);
    expect(alerts.sent.map((a) => [a.identityId, a.owner, a.status, a.cause, a.where])).toEqual([
      ['release-token', 'team-release', 'contained', 'exposure', 'file build.log:1'],
      ['broken-token', 'team-ops', 'failed', 'exposure', 'file build.log:2'],
    ]);
    const [release, broken] = alerts.sent;
    expect(release).toMatchObject({
      incident: results[0]?.incident,
      campaignId: `${results[0]?.incident}-c1`,
      reissuedVersionId: 'v-new',
      report: 'reports/x.html',
      failures: [],
    });
    expect(release?.fingerprint).toBe(results[0]?.fingerprint.slice(0, SHORT_FINGERPRINT));
    expect(broken?.failures).toEqual(['vault unreachable']);
    const said = JSON.stringify([alerts.sent, alerts.sent.map(alertText), alerts.sent.map(alertSubject)]);
    for (const value of Object.values(values)) expect(said).not.toContain(value);
    expect(said).not.toContain(results[0]?.fingerprint);
    for (const subject of alerts.sent.map(alertSubject)) expect(subject.length).toBeLessThanOrEqual(100);
  });

  it('alerts nothing for a credential contained before: seen again, or found revoked', async () => {
    // prepare
    const { values, contain, alerts, hitsIn } = await world();
    const hits = await hitsIn(`x ${values.release}`);
    await containHits(contain, hits);
    // act
    const again = await containHits(contain, await hitsIn(`y ${values.release}`, 'other.log'));
    const revoked = await containHits(
      contain,
      hits.map((hit) =>
        hit.managed ? { ...hit, managed: { ...hit.managed, versionStage: 'revoked' } } : hit,
      ),
    );
    // assess
    expect([...again, ...revoked].map((c) => [c.status, c.alerted])).toEqual([
      ['already-contained', undefined],
      ['already-contained', undefined],
    ]);
    expect(alerts.sent).toHaveLength(1);
  });

  it('contains when the alert cannot be sent, and says so on the result', async () => {
    // prepare
    const { values, contain, asked, hitsIn } = await world(
      new MemoryExposureAlerts('alert topic: AuthorizationError'),
    );
    // act
    const [result] = await containHits(contain, await hitsIn(`x ${values.release}`));
    const again = await containHits(contain, await hitsIn(`x ${values.release}`));
    // assess: ended and marked (the next sighting contains nothing), the alert's failure said
    expect(result).toMatchObject({
      status: 'contained',
      alerted: false,
      alertError: 'alert topic: AuthorizationError',
    });
    expect(again.map((c) => c.status)).toEqual(['already-contained']);
    expect(asked).toEqual(['release-token']);
  });

  it('alerts a failure once however often it is retried (Lambda retries a failed batch twice), then the containment that succeeds', async () => {
    // prepare: a containment that fails three times, then works
    const { values, contain, alerts, hitsIn } = await world();
    let attempts = 0;
    const flaky: ExposureContainment = {
      async contain({ incident }) {
        attempts += 1;
        if (attempts <= 3) throw new Error('state machine throttled');
        return { campaignId: `${incident}-c1`, outcome: 'contained', revoked: 1, failures: [] };
      },
    };
    const hits = await hitsIn(`x ${values.release}`);
    // act: the first run and Lambda's two retries fail, a later sighting contains
    const runs = [];
    for (let run = 0; run < 4; run += 1)
      runs.push(await containHits({ ...contain, containment: flaky }, hits));
    // assess
    expect(runs.map(([c]) => [c?.status, c?.alerted])).toEqual([
      ['failed', true],
      ['failed', undefined],
      ['failed', undefined],
      ['contained', true],
    ]);
    expect(alerts.sent.map((a) => a.status)).toEqual(['failed', 'contained']);
  });

  it('alerts once when two scanners see one leak at once: the one that contains it', async () => {
    // prepare
    const { values, contain, alerts, hitsIn, asked } = await world();
    const hits = await hitsIn(`x ${values.release}`);
    // act
    const results = (await Promise.all([containHits(contain, hits), containHits(contain, hits)])).flat();
    // assess
    expect(results.map((c) => [c.status, c.alerted]).sort()).toEqual([
      ['contained', true],
      ['in-progress', undefined],
    ]);
    expect(alerts.sent).toHaveLength(1);
    expect(asked).toEqual(['release-token']);
  });

  it('says a containment the state machine started as started, not as ended', async () => {
    // prepare: the deployed containment returns once the execution starts
    const { values, contain, alerts, hitsIn } = await world();
    const stateMachine: ExposureContainment = {
      async contain({ incident }) {
        return {
          campaignId: `${incident}-c1`,
          outcome: 'started',
          revoked: 0,
          failures: [],
          reissue: `by the revocation state machine (campaign ${incident}-c1)`,
        };
      },
    };
    // act
    const [result] = await containHits(
      { ...contain, containment: stateMachine },
      await hitsIn(`x ${values.release}`),
    );
    // assess
    expect(result).toMatchObject({ status: 'started', alerted: true });
    const [alert] = alerts.sent;
    if (!alert) throw new Error('expected an alert');
    expect(alert.status).toBe('started');
    expect(alertText(alert)).toContain(
      `containment started by ${result?.incident} (campaign ${result?.campaignId})`,
    );
    expect(alertText(alert)).not.toMatch(/\bended\b/);
    expect(alertSubject(alert)).toBe(
      `keywarden is containing release-token's exposed credential (${result?.incident})`,
    );
  });

  it('says nothing about alerts when none are configured', async () => {
    const { values, contain, hitsIn } = await world();
    const [result] = await containHits(
      { ...contain, alerts: undefined },
      await hitsIn(`x ${values.release}`),
    );
    expect(result?.status).toBe('contained');
    expect(result && 'alerted' in result).toBe(false);
  });
});

describe('containUnexpectedUse: the owner is alerted of each containment attempted', () => {
  it('alerts a contained and a failed one (its owner, where it was first used from), not a skipped one', async () => {
    // prepare
    const { containment, alerts, contain } = await world();
    const where = '203.0.113.9 at 2026-12-05T07:59:00.000Z';
    // act
    const results = await containUnexpectedUse(
      { containment, audit: new MemoryAuditLog(new FixedClock(new Date())), actor: contain.actor, alerts },
      [
        {
          findingId: 'f1',
          identityId: 'release-token',
          handle: 'acc',
          fingerprint: 'hmac-sha256:0123456789abcdef',
          owner: 'team-release',
          where,
        },
        {
          findingId: 'f2',
          identityId: 'broken-token',
          handle: 'acc',
          fingerprint: 'hmac-sha256:fedcba9876543210',
          owner: 'team-ops',
          where,
        },
        { findingId: 'f3', identityId: 'declared', handle: 'acc-declared', where },
      ],
    );
    // assess
    expect(results.map((r) => [r.identityId, r.status, r.alerted])).toEqual([
      ['release-token', 'contained', true],
      ['broken-token', 'failed', true],
      ['declared', 'skipped', undefined],
    ]);
    expect(alerts.sent.map((a) => [a.cause, a.identityId, a.owner, a.status, a.incident, a.where])).toEqual([
      [
        'unexpected-use',
        'release-token',
        'team-release',
        'contained',
        'UNEXPECTED-USE-0123456789ab',
        '203.0.113.9 at 2026-12-05T07:59:00.000Z',
      ],
      [
        'unexpected-use',
        'broken-token',
        'team-ops',
        'failed',
        'UNEXPECTED-USE-fedcba987654',
        '203.0.113.9 at 2026-12-05T07:59:00.000Z',
      ],
    ]);
    expect(alerts.sent[1]?.failures).toEqual(['vault unreachable']);
  });
});

describe('scanAndContain: one scan→contain→save flow for files, job logs and log batches', () => {
  it('keeps a file’s own lines, maps lines given as a function, places a batch’s hits at its events', async () => {
    // prepare
    const { values, contain, containment, exposure, alerts } = await world();
    const deps = { exposure, containment, actor: contain.actor, alerts };
    // act
    const outcome = await scanAndContain(
      deps,
      [
        { source: { kind: 'file', location: 'a.log' }, text: `one\ntwo ${values.release}` },
        {
          source: { kind: 'git', location: 'repo:deploy.sh', commit: 'c'.repeat(40) },
          text: `added ${values.release}`,
          line: (line) => line + 41,
        },
        { source: { kind: 'cloudwatch-logs', location: 'g/s' }, text: 'first event', line: 1 },
        { source: { kind: 'cloudwatch-logs', location: 'g/s' }, text: `second\n${values.broken}`, line: 2 },
      ],
      { contain: true },
    );
    // assess
    expect(
      outcome.hits.filter((h) => h.status === 'managed').map((h) => `${h.source.kind}:${h.line}`),
    ).toEqual(['file:2', 'git:42', 'cloudwatch-logs:2']);
    expect(outcome.containments.map((c) => [c.identityId, c.status, c.firstSeen, c.alerted])).toEqual([
      ['release-token', 'contained', 'file a.log:2', true],
      ['broken-token', 'failed', 'cloudwatch-logs g/s:2', true],
    ]);
    expect(alerts.sent).toHaveLength(2);
    expect(outcome.scanMs).toBe(0);
  });

  it('contains nothing and alerts no one without contain', async () => {
    const { values, contain, containment, exposure, alerts, asked } = await world();
    const outcome = await scanAndContain(
      { exposure, containment, actor: contain.actor, alerts },
      [{ source: { kind: 'file', location: 'a.log' }, text: values.release }],
      { contain: false },
    );
    expect(outcome.hits).toHaveLength(1);
    expect(outcome.containments).toEqual([]);
    expect([asked, alerts.sent]).toEqual([[], []]);
  });
});
