import { describe, expect, it } from 'vitest';
import type { CredentialVersion } from '../../functions/core/credential-version.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import type { Identity } from '../../functions/core/identity.ts';
import {
  matches,
  matchesAny,
  parseSelector,
  parseSelectors,
  type SelectorSubject,
  select,
} from '../../functions/core/selector.ts';
import { credentialVersion, identity } from '../support/fixtures.ts';

/** IAM's access key id prefix, joined at run time so no credential-shaped literal sits in the source. */
const AKIA = 'AKIA';

const subject = (id: Identity, versions: CredentialVersion[] = []): SelectorSubject => ({
  identity: id,
  versions,
});
const hit = (text: string, s: SelectorSubject) => matches(parseSelector(text), s);
const errorOf = (text: string): string => {
  try {
    parseSelector(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
};

const deployProd = identity({
  id: 'app-deploy-prod',
  kind: 'aws-iam-access-key',
  owner: 'team-app',
  pipeline: { repo: 'acme/app', stage: ['publish', 'deploy'], environment: 'prod' },
  tags: { team: 'payments', tier: 'critical' },
});
const buildStaging = identity({
  id: 'docs-build',
  pipeline: { repo: 'acme/docs', stage: 'build', environment: 'staging' },
});
const { owner: _, ...ownerless } = identity({ id: 'orphan', kind: 'vault-token' });

describe('selector: identity terms', () => {
  it('matches by identity id, exactly or with a * wildcard', () => {
    const s = subject(deployProd);
    expect(hit('identity=app-deploy-prod', s)).toBe(true);
    expect(hit('identity=app-*', s)).toBe(true);
    expect(hit('identity=*-prod', s)).toBe(true);
    expect(hit('identity=app', s)).toBe(false);
  });

  it('matches by kind, and a kind wildcard such as vault-*', () => {
    expect(hit('kind=aws-iam-access-key', subject(deployProd))).toBe(true);
    expect(hit('kind=vault-*', subject(deployProd))).toBe(false);
    expect(hit('kind=vault-*', subject(buildStaging))).toBe(true);
  });

  it('matches by owner; an identity without an owner matches only a negated owner term', () => {
    expect(hit('owner=team-app', subject(deployProd))).toBe(true);
    expect(hit('owner=team-*', subject(ownerless))).toBe(false);
    expect(hit('owner!=team-app', subject(ownerless))).toBe(true);
  });

  it('matches by repository, ignoring case, with an org wildcard', () => {
    expect(hit('repo=acme/app', subject(deployProd))).toBe(true);
    expect(hit('repo=ACME/App', subject(deployProd))).toBe(true);
    expect(hit('repo=acme/*', subject(buildStaging))).toBe(true);
    expect(hit('repo=acme/app', subject(buildStaging))).toBe(false);
  });

  it('matches by stage when the identity serves any of its stages', () => {
    expect(hit('stage=deploy', subject(deployProd))).toBe(true);
    expect(hit('stage=publish', subject(deployProd))).toBe(true);
    expect(hit('stage=build', subject(deployProd))).toBe(false);
    expect(hit('stage=deploy,stage=publish', subject(deployProd))).toBe(true);
  });

  it('matches by env, also written environment', () => {
    expect(hit('env=prod', subject(deployProd))).toBe(true);
    expect(hit('environment=prod', subject(deployProd))).toBe(true);
    expect(hit('env=prod', subject(buildStaging))).toBe(false);
  });

  it('matches by tag value, tag presence, and tag absence (tag:NAME!=*)', () => {
    const s = subject(deployProd);
    expect(hit('tag:team=payments', s)).toBe(true);
    expect(hit('tag:team=pay*', s)).toBe(true);
    expect(hit('tag:team=search', s)).toBe(false);
    expect(hit('tag:tier', s)).toBe(true);
    expect(hit('tag:region', s)).toBe(false);
    expect(hit('tag:region!=*', s)).toBe(true);
    expect(hit('tag:team!=search', s)).toBe(true);
  });

  it('accepts a list of values with |, meaning any of them', () => {
    expect(hit('env=prod|staging', subject(deployProd))).toBe(true);
    expect(hit('env=prod|staging', subject(buildStaging))).toBe(true);
    expect(hit('env=dev|test', subject(deployProd))).toBe(false);
  });

  it('negates a whole term with !=, lists included', () => {
    expect(hit('env!=dev', subject(deployProd))).toBe(true);
    expect(hit('env!=prod', subject(deployProd))).toBe(false);
    expect(hit('env!=prod|staging', subject(buildStaging))).toBe(false);
    expect(hit('stage!=deploy', subject(deployProd))).toBe(false);
    expect(hit('kind!=vault-*', subject(deployProd))).toBe(true);
  });

  it('treats * as the only wildcard: regex characters in values are literal', () => {
    const dotted = identity({
      id: 'a.b',
      pipeline: { repo: 'acme/app', stage: 'build', environment: 'x+y' },
    });
    expect(hit('identity=a.b', subject(dotted))).toBe(true);
    expect(hit('identity=a.c', subject(identity({ id: 'abc' })))).toBe(false);
    expect(hit('env=x+y', subject(dotted))).toBe(true);
  });
});

describe('selector: combinations', () => {
  it('ANDs the terms of one selector', () => {
    expect(hit('stage=deploy,env=prod', subject(deployProd))).toBe(true);
    expect(hit('stage=deploy,env=staging', subject(deployProd))).toBe(false);
    expect(hit(' stage = deploy , env = prod ', subject(deployProd))).toBe(true);
  });

  it('ORs a list of selectors', () => {
    const selectors = parseSelectors(['stage=deploy,env=prod', 'repo=acme/docs']);
    expect(matchesAny(selectors, subject(deployProd))).toBe(true);
    expect(matchesAny(selectors, subject(buildStaging))).toBe(true);
    expect(matchesAny(selectors, subject(ownerless))).toBe(false);
  });
});

describe('selector: version terms', () => {
  const old = credentialVersion(deployProd, {
    handle: `${AKIA}OLD0000000000001`,
    stage: 'previous',
    issuedAt: '2026-01-10T08:00:00.000Z',
    fingerprint: 'hmac-sha256:aaaa1111bbbb2222cccc3333dddd4444',
  });
  const fresh = credentialVersion(deployProd, {
    handle: `${AKIA}NEW0000000000002`,
    issuedAt: '2026-03-01T00:00:00.000Z',
    fingerprint: 'hmac-sha256:eeee5555ffff6666',
  });
  const gone = credentialVersion(deployProd, {
    handle: `${AKIA}GONE000000000003`,
    stage: 'revoked',
    issuedAt: '2025-06-01T00:00:00.000Z',
  });
  const s = subject(deployProd, [old, fresh, gone]);

  it('selects versions issued before a date (strictly) or after it (inclusive)', () => {
    expect(select(parseSelectors(['issued-before=2026-02-01']), s)?.versions).toEqual([old]);
    expect(select(parseSelectors(['issued-after=2026-03-01']), s)?.versions).toEqual([fresh]);
    expect(select(parseSelectors(['issued-before=2026-03-01T00:00:00Z']), s)?.versions).toEqual([old]);
    expect(select(parseSelectors(['issued-before=2026-01-10T09:00:00+02:00']), s)).toBeUndefined();
  });

  it('needs one version to satisfy every version term of a selector', () => {
    const january = 'issued-after=2026-01-01,issued-before=2026-02-01';
    expect(select(parseSelectors([january]), s)?.versions).toEqual([old]);
    expect(hit(`issued-after=2026-02-15,fingerprint=${old.fingerprint}`, s)).toBe(false);
  });

  it('never matches a revoked version', () => {
    expect(hit('issued-before=2025-12-31', s)).toBe(false);
    expect(hit(`access-key=${gone.handle}`, s)).toBe(false);
  });

  it('finds the identity that owns an access key id, only among IAM keys', () => {
    expect(select(parseSelectors([`access-key=${AKIA}NEW0000000000002`]), s)?.versions).toEqual([fresh]);
    const kv = identity({ id: 'kv' });
    expect(
      hit(
        `access-key=${AKIA}NEW0000000000002`,
        subject(kv, [credentialVersion(kv, { handle: fresh.handle })]),
      ),
    ).toBe(false);
  });

  it('finds the identity whose credential has a fingerprint, exactly or by prefix with *', () => {
    expect(hit('fingerprint=hmac-sha256:eeee5555ffff6666', s)).toBe(true);
    expect(select(parseSelectors(['fingerprint=hmac-sha256:aaaa1111*']), s)?.versions).toEqual([old]);
    expect(hit('fingerprint=hmac-sha256:0000', s)).toBe(false);
  });

  it('matches any provider handle', () => {
    expect(select(parseSelectors(['handle=AKIAOLD*']), s)?.versions).toEqual([old]);
    expect(select(parseSelectors(['handle!=AKIAOLD*']), s)?.versions).toEqual([fresh]);
  });

  it('needs a live version: an identity with none matches no version term', () => {
    expect(hit('issued-before=2030-01-01', subject(deployProd))).toBe(false);
    expect(hit('handle!=x', subject(deployProd))).toBe(false);
  });

  it('selects the identity whole, with every live version, when a selector has identity terms only', () => {
    expect(select(parseSelectors(['env=prod']), s)).toEqual({ whole: true, versions: [old, fresh] });
  });

  it('unions the versions picked by several selectors, once each, in recorded order', () => {
    const selection = select(parseSelectors([`handle=${fresh.handle}`, 'issued-before=2026-02-01']), s);
    expect(selection).toEqual({ whole: false, versions: [old, fresh] });
  });

  it('matches a lease prefix or role ARN by handle as the whole scope', () => {
    const leases = identity({
      id: 'db-leases',
      kind: 'vault-lease',
      scope: { prefix: '/database/creds/ci/' },
    });
    const role = identity({ id: 'deployer', kind: 'aws-role-session' });
    expect(select(parseSelectors(['handle=database/creds/ci']), subject(leases))).toEqual({
      whole: true,
      versions: [],
    });
    expect(hit('handle=arn:aws:iam::123456789012:role/deployer', subject(role))).toBe(true);
  });
});

describe('selector: errors name the bad term and say what was expected', () => {
  it('rejects a misspelt stage', () => {
    expect(errorOf('stage=deplyo,env=prod')).toBe(
      'selector "stage=deplyo,env=prod": term "stage=deplyo": expected stage build | test | sign | publish | deploy, got "deplyo"',
    );
  });

  it('rejects an unknown key, listing the known ones', () => {
    expect(errorOf('colour=blue')).toBe(
      'selector "colour=blue": term "colour=blue": expected a key identity | kind | owner | repo | stage | env | environment | tag:NAME | issued-before | issued-after | access-key | fingerprint | handle, got "colour"',
    );
  });

  it('rejects an empty selector and an empty list of selectors', () => {
    expect(errorOf('  ')).toBe(
      'selector "  ": expected at least one term such as stage=deploy,env=prod, got nothing',
    );
    expect(() => parseSelectors([])).toThrow(
      'selectors: expected at least one selector such as stage=deploy,env=prod, got none',
    );
  });

  it('rejects an unknown kind, listing the kinds', () => {
    expect(errorOf('kind=iam')).toBe(
      'selector "kind=iam": term "kind=iam": expected kind aws-iam-access-key | aws-secret | aws-role-session | vault-token | vault-approle-secret-id | vault-kv | vault-lease, got "iam"',
    );
    expect(errorOf('kind=gcp-*')).toContain('got "gcp-*"');
  });

  it('rejects a term without = and an empty value or list item', () => {
    expect(errorOf('deploy')).toBe(
      'selector "deploy": term "deploy": expected KEY=VALUE or KEY!=VALUE such as stage=deploy, got "deploy"',
    );
    expect(errorOf('env=')).toBe('selector "env=": term "env=": expected a value after "=", got nothing');
    expect(errorOf('env=prod|')).toBe(
      'selector "env=prod|": term "env=prod|": expected a value on each side of "|", got an empty one',
    );
    expect(errorOf('env=prod,')).toBe(
      'selector "env=prod,": term "": expected a term between commas, got an empty one',
    );
  });

  it('rejects bad dates, date lists and negated dates', () => {
    expect(errorOf('issued-before=yesterday')).toBe(
      'selector "issued-before=yesterday": term "issued-before=yesterday": expected a date such as 2026-11-21 or a date-time such as 2026-11-21T09:30:00Z, got "yesterday"',
    );
    expect(errorOf('issued-before=2026-02-30')).toContain('got "2026-02-30"');
    expect(errorOf('issued-after=2026-01-01T10:00:00')).toContain('got "2026-01-01T10:00:00"');
    expect(errorOf('issued-after=2026-01-01|2026-02-01')).toContain('expected one date, got 2');
    expect(errorOf('issued-before!=2026-01-01')).toContain(
      'expected issued-before=DATE (for the opposite, use issued-after), got "!="',
    );
  });

  it('rejects malformed identity ids, repositories, access keys, fingerprints and tag names', () => {
    expect(errorOf('identity=App')).toContain(
      "expected an identity id of lowercase letters, digits, '.', '_'",
    );
    expect(errorOf('repo=acme')).toContain('expected a repository as owner/name');
    expect(errorOf('access-key=akia123')).toContain(
      'expected an access key id: AKIA or ASIA and 16 upper-case letters or digits',
    );
    expect(errorOf('fingerprint=3f2a')).toContain('expected a fingerprint such as hmac-sha256:');
    expect(errorOf('tag:=x')).toContain('term "tag:=x": expected a tag name after "tag:"');
  });

  it('rejects two exact terms on a one-valued key, which could never both hold', () => {
    expect(errorOf('env=prod,env=staging')).toBe(
      'selector "env=prod,env=staging": term "env=staging": expected at most one exact env=… term in a selector (for either, write env=a|b or pass another selector), got a second one',
    );
    expect(() => parseSelector('env!=dev,env!=test')).not.toThrow();
    expect(() => parseSelector('identity=app-*,identity=*-prod')).not.toThrow();
  });

  it('names the first bad selector of a list', () => {
    expect(() => parseSelectors(['env=prod', 'stage=nope'])).toThrow(
      /^selector "stage=nope": term "stage=nope"/,
    );
  });
});

describe('selector: parse', () => {
  it('keeps the terms as plain data, dates normalized', () => {
    expect(parseSelector('tag:team=a|b,issued-before=2026-01-01,environment!=dev')).toEqual({
      text: 'tag:team=a|b,issued-before=2026-01-01,environment!=dev',
      terms: [
        { text: 'tag:team=a|b', key: 'tag', tag: 'team', negated: false, values: ['a', 'b'] },
        {
          text: 'issued-before=2026-01-01',
          key: 'issued-before',
          negated: false,
          values: ['2026-01-01T00:00:00.000Z'],
        },
        { text: 'environment!=dev', key: 'env', negated: true, values: ['dev'] },
      ],
    });
  });
});
