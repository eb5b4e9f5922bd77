import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../functions/core/audit.ts';
import { type Campaign, NO_LIVE_CREDENTIAL, summarize, type Target } from '../../functions/core/campaign.ts';
import type { Identity } from '../../functions/core/identity.ts';
import {
  buildRevocationReport,
  printableDetails,
  type RevocationReportInput,
} from '../../functions/core/revocation-report.ts';
import { escapeHtml, renderHtml } from '../../functions/core/revocation-report-html.ts';
import { renderMarkdown } from '../../functions/core/revocation-report-markdown.ts';
import {
  type RevocationReport,
  RevocationReportSchema,
} from '../../functions/core/revocation-report-model.ts';
import { failureCause, remediationHint } from '../../functions/core/revocation-report-remediation.ts';
import { renderJson, renderReport } from '../../functions/core/revocation-report-render.ts';
import { identity } from '../support/fixtures.ts';

/** IAM's access key id prefix, joined at run time so no credential-shaped literal sits in the source. */
const AKIA = 'AKIA';

const START = '2026-11-21T10:00:00.000Z';
const at = (ms: number) => new Date(Date.parse(START) + ms).toISOString();
const prod = { repo: 'acme/app', stage: 'deploy', environment: 'prod' };
const EVIL = '<script>alert(1)</script>';

const keys = identity({ id: 'app-keys', kind: 'aws-iam-access-key', pipeline: prod, owner: 'team-app' });
const token = identity({ id: 'ci-token', kind: 'vault-token', pipeline: prod, owner: 'team-ci' });
const secret = identity({
  id: 'deploy-secret',
  kind: 'aws-secret',
  pipeline: prod,
  owner: EVIL,
  purpose: '<img src=x onerror=alert(2)>',
  delivery: { type: 'aws-secret', secretId: 'ci/deploy' },
});
const kv = identity({ id: 'kv-app', kind: 'vault-kv', pipeline: prod, owner: 'team-app' });
const approle = identity({ id: 'app-role', kind: 'vault-approle-secret-id', pipeline: prod });
const leases = identity({
  id: 'db-leases',
  kind: 'vault-lease',
  pipeline: prod,
  scope: { prefix: 'database/creds/ci/' },
});
const identities: Identity[] = [keys, token, secret, kv, approle, leases];

const target = (who: Identity, handle: string, over: Partial<Target> & Pick<Target, 'outcome'>): Target => ({
  targetId: `${who.id}:${handle}`,
  identityId: who.id,
  kind: who.kind,
  ...(who.owner === undefined ? {} : { owner: who.owner }),
  environment: who.pipeline.environment,
  handle,
  action: 'revoke',
  reissue: false,
  attempts: 1,
  ...over,
});

/** A finished campaign with every outcome: revoked, already-revoked, skipped and failed. */
const targets: Target[] = [
  target(keys, `${AKIA}EXAMPLE000000001`, { outcome: 'revoked', finishedAt: at(1000), reissue: true }),
  target(keys, `${AKIA}EXAMPLE000000002`, { outcome: 'revoked', finishedAt: at(3000), reissue: true }),
  target(token, 'acc-1', { outcome: 'already-revoked', finishedAt: at(2000) }),
  target(token, 'acc-2', {
    outcome: 'failed',
    error: 'ThrottlingException: Rate exceeded',
    retryable: true,
    attempts: 5,
    finishedAt: at(4000),
  }),
  target(secret, 'v-7', {
    outcome: 'failed',
    error: `AccessDeniedException: not authorized to perform secretsmanager:UpdateSecretVersionStage ${EVIL}`,
    retryable: false,
    finishedAt: at(4500),
  }),
  target(kv, 'secret/ci/kv-app', { outcome: 'skipped', reason: `${NO_LIVE_CREDENTIAL} ${EVIL}` }),
  target(approle, 'sid-acc-9', {
    outcome: 'failed',
    error: 'secret-id accessor not found',
    retryable: false,
  }),
  target(leases, 'database/creds/ci', {
    targetId: 'db-leases:prefix:database/creds/ci',
    action: 'revoke-prefix',
    outcome: 'revoked',
    finishedAt: at(5000),
  }),
];

const campaign: Campaign = {
  campaignId: 'c-20261121-01',
  incident: 'INC-42',
  selectors: ['env=prod', 'repo=acme/app'],
  requestedBy: 'cli:alice',
  createdAt: '2026-11-21T09:59:30.000Z',
  startedAt: START,
  finishedAt: at(6000),
  status: 'completed',
  reissue: true,
  dryRun: false,
  counts: summarize(targets),
};

const SECRETS = ['SUPERSECRETVALUE-1', 'SUPERSECRETVALUE-2', 'SUPERSECRETVALUE-3', 'SUPERSECRETVALUE-4'];

let seq = 0;
const record = (
  over: Pick<AuditRecord, 'type' | 'subject' | 'details'> & Partial<AuditRecord>,
): AuditRecord => {
  seq += 1;
  return {
    seq,
    id: `evt-${seq}`,
    at: at(-86_400_000 + seq * 1000),
    actor: 'scheduler:rotation',
    prevHash: String(seq - 1).padStart(64, '0'),
    hash: `${String(seq).padStart(2, '0')}`.repeat(32),
    ...over,
  };
};

const history: AuditRecord[] = [
  record({
    type: 'credential.issued',
    subject: 'app-keys',
    details: {
      handle: `${AKIA}EXAMPLE000000001`,
      versionId: 'v-1',
      fingerprint: 'f'.repeat(64),
      value: SECRETS[0],
    },
  }),
  record({
    type: 'credential.used',
    subject: 'app-keys',
    actor: 'discovery',
    details: {
      handle: `${AKIA}EXAMPLE000000001`,
      secret: SECRETS[1],
      token: SECRETS[2],
      nested: { value: 'x' },
    },
  }),
  record({
    type: 'credential.revoked',
    subject: 'app-keys',
    actor: 'campaign:c-20261121-01',
    details: { handle: `${AKIA}EXAMPLE000000001`, outcome: 'revoked', reason: 'INC-42' },
  }),
  record({ type: 'identity.changed', subject: 'app-keys', details: { field: 'owner' } }),
  record({
    type: 'campaign.target',
    subject: 'ci-token',
    actor: 'campaign:c-20261121-01',
    details: { handle: 'acc-1', result: 'already-revoked', password: SECRETS[3] },
  }),
  // Not an affected identity: left out entirely.
  record({ type: 'credential.issued', subject: 'unrelated', details: { handle: 'UNRELATED-HANDLE' } }),
];

const input = (over: Partial<RevocationReportInput> = {}): RevocationReportInput => ({
  campaign,
  targets,
  identities,
  history,
  reissued: ['app-keys', 'deploy-secret'],
  generatedAt: at(7000),
  ...over,
});

/** The ids of the controls every report states, in its order; each rendering shows all of them. */
const CONTROL_IDS = [
  'NHI3:2025',
  'NHI2:2025',
  'NHI7:2025',
  'PR.AA-01',
  'PR.AA-05',
  'RS.MI-01',
  'RS.MI-02',
  'RS.AN-03',
  'RS.AN-06',
];

const report: RevocationReport = buildRevocationReport(input());
const rendered = renderReport(report);

describe('revocation report: buildRevocationReport', () => {
  it('names the incident, who ran it and when', () => {
    expect(report.incident).toBe('INC-42');
    expect(report.campaign).toEqual({
      campaignId: 'c-20261121-01',
      status: 'completed',
      requestedBy: 'cli:alice',
      createdAt: '2026-11-21T09:59:30.000Z',
      startedAt: START,
      finishedAt: at(6000),
      durationMs: 6000,
      dryRun: false,
    });
    expect(report.generatedAt).toBe(at(7000));
  });

  it('shows the selectors and the plan counted per kind and per action', () => {
    expect(report.plan.selectors).toEqual(['env=prod', 'repo=acme/app']);
    expect(report.plan.targets).toBe(8);
    expect(report.plan.byKind).toEqual([
      { kind: 'aws-iam-access-key', targets: 2 },
      { kind: 'aws-secret', targets: 1 },
      { kind: 'vault-token', targets: 2 },
      { kind: 'vault-approle-secret-id', targets: 1 },
      { kind: 'vault-kv', targets: 1 },
      { kind: 'vault-lease', targets: 1 },
    ]);
    expect(report.plan.byAction).toEqual({ revoke: 7, 'revoke-prefix': 1, 'deny-sessions': 0 });
  });

  it('counts every target by kind and outcome', () => {
    expect(report.outcomes.byOutcome).toEqual({
      pending: 0,
      revoked: 3,
      'already-revoked': 1,
      skipped: 1,
      failed: 3,
    });
    expect(report.outcomes.byKind.find((k) => k.kind === 'vault-token')).toEqual({
      kind: 'vault-token',
      total: 2,
      pending: 0,
      revoked: 0,
      'already-revoked': 1,
      skipped: 0,
      failed: 1,
    });
  });

  it('measures time to revoke from the campaign start over revoked and already-revoked targets', () => {
    // 1000, 2000, 3000, 5000 ms: nearest rank p50 = 2nd, p95 = 4th.
    expect(report.timeToRevoke).toEqual({ measured: 4, p50Ms: 2000, p95Ms: 5000, maxMs: 5000 });
    expect(report.targets.find((t) => t.handle === 'acc-2')?.sinceStartMs).toBe(4000);
  });

  it('takes nearest-rank percentiles over many targets', () => {
    const many = Array.from({ length: 20 }, (_, i) =>
      target(keys, `AKIAMANY${String(i).padStart(12, '0')}`, {
        outcome: 'revoked',
        finishedAt: at((i + 1) * 100),
      }),
    );
    const r = buildRevocationReport(
      input({ targets: many, campaign: { ...campaign, counts: summarize(many) } }),
    );
    expect(r.timeToRevoke).toEqual({ measured: 20, p50Ms: 1000, p95Ms: 1900, maxMs: 2000 });
  });

  it('leaves time to revoke out when nothing was revoked', () => {
    const none = targets.filter((t) => t.outcome === 'failed');
    const r = buildRevocationReport(input({ targets: none }));
    expect(r.timeToRevoke).toBeUndefined();
    expect(renderMarkdown(r)).toContain('No target has been revoked yet.');
  });

  it('gives each failure its error and a remediation derived from it', () => {
    const hints = Object.fromEntries(report.failures.map((f) => [f.identityId, f]));
    expect(hints['ci-token']).toMatchObject({
      error: 'ThrottlingException: Rate exceeded',
      cause: 'throttling',
      remediation: 're-run `keywarden revoke resume c-20261121-01`; the rate limit backs off',
      attempts: 5,
      retryable: true,
      owner: 'team-ci',
    });
    expect(hints['deploy-secret']?.cause).toBe('access-denied');
    expect(hints['deploy-secret']?.remediation).toMatch(
      /^grant keywarden the permission to revoke it \(secretsmanager:UpdateSecretVersionStage .* on secret ci\/deploy-secret\)/,
    );
    expect(hints['app-role']?.cause).toBe('not-found');
    expect(hints['app-role']?.remediation).toMatch(/^already gone; verify in the provider/);
  });

  it('lists as residual exposure what could not be revoked, with owners and environments', () => {
    expect(report.residualExposure.map((r) => [r.identityId, r.outcome, r.owner, r.environment])).toEqual([
      ['deploy-secret', 'failed', EVIL, 'prod'],
      ['ci-token', 'failed', 'team-ci', 'prod'],
      ['app-role', 'failed', 'team-platform', 'prod'],
      ['kv-app', 'skipped', 'team-app', 'prod'],
    ]);
    expect(report.residualExposure.find((r) => r.identityId === 'kv-app')?.why).toBe(
      `skipped: ${NO_LIVE_CREDENTIAL} ${EVIL}`,
    );
  });

  it('groups the audit history by identity and handle, keeping only affected identities', () => {
    expect(
      report.credentialHistory.map((g) => [g.identityId, g.handle, g.events.map((e) => e.type)]),
    ).toEqual([
      ['app-keys', undefined, ['identity.changed']],
      ['app-keys', `${AKIA}EXAMPLE000000001`, ['credential.issued', 'credential.used', 'credential.revoked']],
      ['ci-token', 'acc-1', ['campaign.target']],
    ]);
    const events = report.credentialHistory[1]?.events ?? [];
    expect(events.map((e) => e.phase)).toEqual(['issuance', 'use', 'revocation']);
    expect(events[2]).toMatchObject({ actor: 'campaign:c-20261121-01', details: { outcome: 'revoked' } });
  });

  it('lists the re-issued identities with where their fresh credential went', () => {
    expect(report.reissued).toEqual([
      { identityId: 'app-keys', kind: 'aws-iam-access-key', owner: 'team-app', environment: 'prod' },
      {
        identityId: 'deploy-secret',
        kind: 'aws-secret',
        owner: EVIL,
        environment: 'prod',
        delivery: 'aws-secret:ci/deploy',
      },
    ]);
  });

  it('states the controls it evidences, each with the figures of this campaign', () => {
    expect(report.controls.map((c) => [c.framework, c.id, c.title])).toEqual([
      ['OWASP Non-Human Identities Top 10 (2025)', 'NHI3:2025', 'Vulnerable Third-Party NHI'],
      ['OWASP Non-Human Identities Top 10 (2025)', 'NHI2:2025', 'Secret Leakage'],
      ['OWASP Non-Human Identities Top 10 (2025)', 'NHI7:2025', 'Long-Lived Secrets'],
      [
        'NIST CSF 2.0',
        'PR.AA-01',
        'Identities and credentials for authorized users, services, and hardware are managed by the organization',
      ],
      [
        'NIST CSF 2.0',
        'PR.AA-05',
        'Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and reviewed, and incorporate the principles of least privilege and separation of duties',
      ],
      ['NIST CSF 2.0', 'RS.MI-01', 'Incidents are contained'],
      ['NIST CSF 2.0', 'RS.MI-02', 'Incidents are eradicated'],
      [
        'NIST CSF 2.0',
        'RS.AN-03',
        'Analysis is performed to establish what has taken place during an incident and the root cause of the incident',
      ],
      [
        'NIST CSF 2.0',
        'RS.AN-06',
        "Actions performed during an investigation are recorded, and the records' integrity and provenance are preserved",
      ],
    ]);
    const byId = Object.fromEntries(report.controls.map((c) => [c.id, c]));
    // Four targets are left exposed, so containment is shown only in part.
    expect(byId['RS.MI-01']?.status).toBe('partial');
    expect(byId['RS.MI-01']?.evidence).toBe(
      '4 of 8 targets revoked (3 revoked, 1 already revoked), p95 5.00 s and max 5.00 s after the campaign started; 4 targets could not be revoked and are listed under residual exposure with their owners.',
    );
    expect(byId['NHI3:2025']?.evidence).toContain('INC-42');
    expect(byId['RS.AN-03']).toMatchObject({ status: 'evidenced' });
    expect(byId['RS.AN-03']?.evidence).toContain('2 credentials');
  });

  it('shows containment as evidenced once nothing is left exposed', () => {
    const clean = targets.filter((t) => t.outcome === 'revoked' || t.outcome === 'already-revoked');
    const r = buildRevocationReport(input({ targets: clean }));
    expect(r.residualExposure).toEqual([]);
    expect(r.controls.filter((c) => c.status !== 'evidenced')).toEqual([]);
  });

  it('lists a pending target of an unfinished campaign as exposed', () => {
    const pending = [target(keys, `${AKIA}EXAMPLE000000009`, { outcome: 'pending', attempts: 0 })];
    const r = buildRevocationReport(
      input({ targets: pending, campaign: { ...campaign, status: 'running' } }),
    );
    expect(r.residualExposure[0]).toMatchObject({
      outcome: 'pending',
      why: 'not attempted yet (campaign running)',
    });
  });

  it('does not depend on the order of its inputs', () => {
    const shuffled = buildRevocationReport(
      input({
        targets: [...targets].reverse(),
        history: [...history].reverse(),
        reissued: ['deploy-secret', 'app-keys'],
      }),
    );
    expect(renderJson(shuffled)).toBe(rendered.json);
  });
});

describe('revocation report: remediation hints', () => {
  const context = {
    campaignId: 'c-1',
    kind: 'aws-iam-access-key' as const,
    handle: `${AKIA}EXAMPLE000000001`,
  };
  it.each([
    ['ThrottlingException: Rate exceeded', 'throttling'],
    ['SlowDown: Please reduce your request rate', 'throttling'],
    ['HTTP 429 Too Many Requests', 'throttling'],
    ['AccessDenied: User is not authorized to perform iam:DeleteAccessKey', 'access-denied'],
    ['permission denied (HTTP 403)', 'access-denied'],
    ['NoSuchEntity: The Access Key with id AKIA… cannot be found', 'not-found'],
    ['ResourceNotFoundException: Secrets Manager can’t find the specified secret', 'not-found'],
    ['socket hang up', 'transient'],
    ['HTTP 503 Service Unavailable', 'transient'],
    ['the provider answered something odd', 'other'],
  ])('classifies %j as %s', (error, cause) => {
    expect(failureCause(error)).toBe(cause);
  });

  it('names the permission per kind for access denied', () => {
    expect(remediationHint('access-denied', { ...context, identity: keys })).toBe(
      'grant keywarden the permission to revoke it (iam:UpdateAccessKey and iam:DeleteAccessKey on IAM user app-keys-user), then re-run `keywarden revoke resume c-1`',
    );
    expect(
      remediationHint('access-denied', { ...context, kind: 'vault-lease', handle: 'database/creds/ci' }),
    ).toContain('sys/leases/revoke-prefix/database/creds/ci');
  });

  it('falls back to a generic hint', () => {
    expect(remediationHint('other', context)).toMatch(
      /^read the error, fix its cause, then re-run `keywarden revoke resume c-1`/,
    );
  });
});

describe('revocation report: no secret value', () => {
  it('prints only allow-listed detail keys, and only a fingerprint prefix', () => {
    expect(
      printableDetails({
        handle: 'h',
        value: 'v',
        secret: 's',
        token: 't',
        password: 'p',
        fingerprint: 'a'.repeat(64),
        outcome: { nested: 'x' },
        versionId: 3,
      }),
    ).toEqual({ handle: 'h', fingerprint: `${'a'.repeat(12)}…`, versionId: '3' });
  });

  it('drops value, secret, token and every other unlisted key from every format', () => {
    for (const text of [rendered.json, rendered.markdown, rendered.html]) {
      for (const value of SECRETS) expect(text).not.toContain(value);
      expect(text).not.toContain('f'.repeat(13));
      expect(text).not.toMatch(/"(value|secret|token|password|nested)"/);
      expect(text).not.toContain('UNRELATED-HANDLE');
    }
    expect(rendered.json).toContain(`"fingerprint": "${'f'.repeat(12)}…"`);
  });
});

describe('revocation report: JSON', () => {
  it('is the report itself, keys in schema order, stable across renders', () => {
    const parsed = JSON.parse(rendered.json);
    expect(parsed).toEqual(report);
    expect(Object.keys(parsed)).toEqual(Object.keys(RevocationReportSchema.shape));
    expect(Object.keys(parsed.campaign)).toEqual([
      'campaignId',
      'status',
      'requestedBy',
      'createdAt',
      'startedAt',
      'finishedAt',
      'durationMs',
      'dryRun',
    ]);
    expect(renderJson(RevocationReportSchema.parse(parsed))).toBe(rendered.json);
  });
});

describe('revocation report: Markdown', () => {
  const md = rendered.markdown;
  it('has every section with its figures', () => {
    expect(md).toMatch(/^# Revocation report INC-42 — campaign c-20261121-01/);
    for (const heading of [
      '## Who ran it and when',
      '## Selectors and plan',
      '## Outcomes',
      '## Time to revoke',
      '## Failures',
      '## Residual exposure',
      '## Credential history',
      '## Re-issued identities',
      '## Controls evidenced',
    ]) {
      expect(md).toContain(heading);
    }
    expect(md).toContain('| Requested by | cli:alice |');
    expect(md).toContain('| 4 | 2.00 s | 5.00 s | 5.00 s |');
    expect(md).toContain('| aws-iam-access-key | 2 | 2 | 0 | 0 | 0 | 0 |');
    expect(md).toContain('| all | 8 | 3 | 1 | 1 | 3 | 0 |');
    expect(md).toContain('| re-run `keywarden revoke resume c-20261121-01`; the rate limit backs off |');
    expect(md).toContain('| Field | Value |');
    for (const id of CONTROL_IDS) {
      expect(md).toContain(`| ${id} |`);
    }
  });

  it('escapes markup and pipes in values', () => {
    expect(md).not.toContain(EVIL);
    expect(md).toContain('\\<script\\>alert(1)\\</script\\>');
    const piped = buildRevocationReport(
      input({ targets: [target(kv, 'a|b', { outcome: 'skipped', reason: 'x | y\nz' })] }),
    );
    expect(renderMarkdown(piped)).toContain('skipped: x \\| y z');
  });
});

describe('revocation report: HTML', () => {
  const page = rendered.html;

  it('is self-contained: no script, no external resource, no URL', () => {
    expect(page).not.toMatch(/<script/i);
    expect(page).not.toContain('http://');
    expect(page).not.toContain('https://');
    // No element pulls anything in, by absolute, protocol-relative or relative URL.
    expect(page).not.toMatch(/<[^>]*\s(src|href|xlink:href|action|data|poster)\s*=/i);
    expect(page).not.toMatch(/<(link|img|iframe|object|embed|image|use|source|video|audio)\b/i);
    expect(page).not.toMatch(/url\(|@import|@font-face/i);
    expect(page).not.toMatch(/=\s*["']?\/\//);
    expect(page).toMatch(/<style>[^<]*<\/style>/);
    expect(page).toContain(`content="default-src 'none'; style-src 'unsafe-inline'`);
  });

  it('escapes every interpolated string', () => {
    expect(page).not.toContain(EVIL);
    expect(page).not.toContain('<img');
    expect(page).toContain(escapeHtml(EVIL));
    expect(escapeHtml(EVIL)).toBe('&#60;script&#62;alert(1)&#60;/script&#62;');
    expect(page).toContain(escapeHtml('<img src=x onerror=alert(2)>'));
    // The only tags are the page's own.
    const tags = new Set([...page.matchAll(/<\/?([a-zA-Z][a-zA-Z0-9-]*)/g)].map((m) => m[1]?.toLowerCase()));
    expect([...tags].sort()).toEqual(
      [
        'b',
        'body',
        'circle',
        'code',
        'desc',
        'div',
        'figcaption',
        'figure',
        'h1',
        'h2',
        'h3',
        'head',
        'header',
        'html',
        'li',
        'line',
        'main',
        'meta',
        'p',
        'path',
        'rect',
        'section',
        'span',
        'style',
        'svg',
        'table',
        'tbody',
        'td',
        'text',
        'th',
        'thead',
        'title',
        'tr',
        'ul',
      ].sort(),
    );
  });

  it('draws the timeline as inline SVG with a mark per finished target and p50 / p95 lines', () => {
    const svg = page.slice(page.indexOf('<svg'), page.indexOf('</svg>'));
    expect(svg).toContain('role="img"');
    expect(svg).toContain('p50 2.00 s');
    expect(svg).toContain('p95 5.00 s');
    // Revoked: filled circle; already-revoked: hollow circle; failed: a cross; skipped has no finish time.
    const marks = (shape: RegExp) =>
      svg.match(new RegExp(`${shape.source}[^>]*><title>[^<]* after `, 'g')) ?? [];
    expect(marks(/<circle [^>]*fill="#1a7f37"/)).toHaveLength(3);
    expect(marks(/<circle [^>]*fill="none"/)).toHaveLength(1);
    expect(marks(/<path /)).toHaveLength(2);
    expect(marks(/<rect /)).toHaveLength(0);
    expect(svg).toContain('<title>ci-token:acc-2: failed after 4.00 s</title>');
    for (const kind of ['aws-iam-access-key', 'vault-token', 'vault-lease'])
      expect(svg).toContain(`>${kind}</text>`);
  });

  it('has every section, the failures with hints, and the controls', () => {
    for (const heading of [
      'Who ran it and when',
      'Selectors and plan',
      'Outcomes',
      'Time to revoke',
      'Failures',
      'Residual exposure',
      'Credential history',
      'Re-issued identities',
      'Controls evidenced',
    ]) {
      expect(page).toContain(`<h2>${heading}</h2>`);
    }
    expect(page).toContain(
      're-run <code>keywarden revoke resume c-20261121-01</code>; the rate limit backs off',
    );
    for (const id of CONTROL_IDS) {
      expect(page).toContain(`<b>${id}</b>`);
    }
    expect(page).toContain('<span class="status partial">partial</span>');
  });

  it('renders the same page for the same report', () => {
    expect(renderHtml(report)).toBe(page);
  });
});
