import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type CiExchangeDeps,
  endExchange,
  endJob,
  exchange,
  type GateVerdict,
  recordUse,
  sweepCi,
} from '../../functions/core/ci-exchange.ts';
import {
  type CiConfig,
  CiConfigSchema,
  type CiIssuer,
  CiRefusalError,
  type Claims,
} from '../../functions/core/ci-policy.ts';
import type {
  CiAwsIssuer,
  CiTokenVerifier,
  CiVaultIssuer,
  VerifiedCiToken,
} from '../../functions/core/ports.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { MemoryCiStore } from '../../test/support/memory-ci-stores.ts';
import { MemoryAuditLog } from '../../test/support/memory-stores.ts';
import { OffsetClock } from '../../test/support/offset-clock.ts';

const REPO_ID = '123456789';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

const config: CiConfig = CiConfigSchema.parse({
  issuers: [{ name: 'github', preset: 'github', audience: 'keywarden' }],
  grants: [
    {
      name: 'build',
      issuer: 'github',
      stage: 'build',
      claims: { repository_id: REPO_ID, ref: 'refs/heads/main' },
      vault: { policies: ['ci-build'], ttl: '10m' },
    },
    {
      name: 'deploy',
      issuer: 'github',
      stage: 'deploy',
      claims: { repository_id: REPO_ID, environment: 'prod' },
      vault: { policies: ['ci-deploy'] },
      aws: { roleArn: 'arn:aws:iam::123456789012:role/ci/deploy' },
      gate: { gate: 'promote', environment: 'prod' },
    },
  ],
  gates: [{ gate: 'promote', environment: 'prod', localUsers: ['alice'] }],
});

/**
 * A verifier of this spec's own tokens: the "token" names claims registered with it. The real
 * verifier (jose, against a local OIDC issuer) has its own spec; here only the use cases are.
 */
class RegisteredTokens implements CiTokenVerifier {
  readonly #claims = new Map<string, Claims>();
  constructor(readonly clock: OffsetClock) {}
  mint(claims: Partial<Record<string, string>> = {}): string {
    const token = `t-${randomUUID()}`;
    this.#claims.set(token, {
      repository_id: REPO_ID,
      ref: 'refs/heads/main',
      run_id: '9001',
      run_attempt: '1',
      check_run_id: '777',
      actor: 'octocat',
      jti: randomUUID(),
      ...claims,
    });
    return token;
  }
  async verify(token: string, issuers: readonly CiIssuer[]): Promise<VerifiedCiToken> {
    const claims = this.#claims.get(token);
    const issuer = issuers[0];
    if (!claims || !issuer) throw new CiRefusalError('token-invalid', 'expected a token this spec minted');
    const now = this.clock.now();
    return {
      issuer,
      claims,
      jti: String(claims.jti),
      issuedAt: now,
      expiresAt: new Date(now.getTime() + 300_000),
    };
  }
}

/** Issuers that remember what is live: the real ones have their specs against OpenBao and moto. */
function issuers(clock: OffsetClock) {
  const liveTokens = new Set<string>();
  const denied = new Set<string>();
  const vault: CiVaultIssuer = {
    async issue({ now }) {
      const accessor = randomBytes(12).toString('hex');
      liveTokens.add(accessor);
      return {
        token: new SecretValue(randomBytes(16).toString('hex')),
        accessor,
        expiresAt: new Date(now.getTime() + 600_000).toISOString(),
      };
    },
    async revoke(accessor) {
      return liveTokens.delete(accessor) ? 'revoked' : 'already-revoked';
    },
  };
  let failAws = false;
  const aws: CiAwsIssuer = {
    async issue({ job }) {
      if (failAws) throw new Error('STS is down');
      return {
        credentials: SecretValue.ofJson({ accessKeyId: 'ASIA', secretAccessKey: 's', sessionToken: 't' }),
        expiresAt: new Date(clock.now().getTime() + 900_000).toISOString(),
        sourceIdentity: job.correlationId,
        sessionName: job.correlationId,
      };
    },
    async end({ sourceIdentity }) {
      denied.add(sourceIdentity);
    },
    async release({ sourceIdentity }) {
      denied.delete(sourceIdentity);
    },
  };
  return { vault, aws, liveTokens, denied, failAwsNext: () => (failAws = true) };
}

function setup(
  gate: (digest: string, actor: string | undefined) => GateVerdict = () => ({ ok: true, approvalId: 'a1' }),
) {
  const clock = new OffsetClock();
  const tokens = new RegisteredTokens(clock);
  const store = new MemoryCiStore();
  const audit = new MemoryAuditLog(clock);
  const fakes = issuers(clock);
  const deps: CiExchangeDeps = {
    config: async () => config,
    verifier: tokens,
    store,
    vault: fakes.vault,
    aws: fakes.aws,
    gate: async (_requirement, digest, actor) => gate(digest, actor),
    audit,
    clock,
    newId: () => `x-${randomUUID()}`,
  };
  const events = async () => (await audit.readAll()).records;
  return { deps, tokens, store, audit, clock, fakes, events };
}

const refusal = async (work: Promise<unknown>): Promise<CiRefusalError> => {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CiRefusalError);
  return error as CiRefusalError;
};

describe('ci exchange: issuing', () => {
  it("issues a grant's Vault token to a job whose claims match, recorded and audited under the job's correlation id", async () => {
    // prepare
    const { deps, tokens, store, events, fakes } = setup();

    // act
    const issued = await exchange(deps, tokens.mint(), { grant: 'build' });

    // assess
    expect(issued.vault?.accessor).toBeDefined();
    expect(fakes.liveTokens.has(issued.vault?.accessor as string)).toBe(true);
    expect(issued.record).toMatchObject({
      grant: 'build',
      state: 'active',
      correlationId: 'ci-github-123456789.9001.1.777',
    });
    expect((await store.getCredential(issued.record.id))?.vault?.accessor).toBe(issued.vault?.accessor);
    const [event] = await events();
    expect(event).toMatchObject({ type: 'ci.credentials.issued', subject: issued.record.correlationId });
    expect(JSON.stringify(await events())).not.toContain(issued.vault?.token.reveal());
  });

  it('refuses a replayed token (same jti), even when the first exchange succeeded', async () => {
    // prepare
    const { deps, tokens, events } = setup();
    const token = tokens.mint();
    await exchange(deps, token, { grant: 'build' });

    // act
    const error = await refusal(exchange(deps, token, { grant: 'build' }));

    // assess
    expect(error.reason).toBe('replayed');
    expect((await events()).map((e) => e.type)).toEqual(['ci.credentials.issued', 'ci.credentials.refused']);
  });

  it('refuses a job whose claim does not match, naming the claim (never the token) in the error and the audit', async () => {
    // prepare
    const { deps, tokens, events } = setup();
    const token = tokens.mint({ ref: 'refs/heads/feature' });

    // act
    const error = await refusal(exchange(deps, token, { grant: 'build' }));

    // assess
    expect(error).toMatchObject({ reason: 'claim-mismatch', claim: 'ref' });
    expect(error.message).toContain('expected claim ref to be "refs/heads/main"');
    const refused = (await events()).at(-1);
    expect(refused).toMatchObject({
      type: 'ci.credentials.refused',
      details: { reason: 'claim-mismatch', claim: 'ref' },
    });
    expect(JSON.stringify(refused)).not.toContain(token);
  });

  it('refuses an unknown grant and a token the verifier refuses, auditing both', async () => {
    // prepare
    const { deps, tokens, events } = setup();

    // act
    const unknown = await refusal(exchange(deps, tokens.mint(), { grant: 'nope' }));
    const forged = await refusal(exchange(deps, 'not-a-token-it-minted', { grant: 'build' }));

    // assess
    expect(unknown.reason).toBe('grant-unknown');
    expect(forged.reason).toBe('token-invalid');
    expect((await events()).map((e) => e.details.reason)).toEqual(['grant-unknown', 'token-invalid']);
  });

  it('issues a gated grant only with a digest whose approval the gate accepts for this actor', async () => {
    // prepare
    const seen: (string | undefined)[] = [];
    const { deps, tokens } = setup((digest, actor) => {
      seen.push(actor);
      return digest === DIGEST
        ? { ok: true, approvalId: 'ap-1' }
        : { ok: false, reason: 'no approval of that digest' };
    });

    // act
    const noDigest = await refusal(exchange(deps, tokens.mint({ environment: 'prod' }), { grant: 'deploy' }));
    const other = await refusal(
      exchange(deps, tokens.mint({ environment: 'prod' }), {
        grant: 'deploy',
        artifactDigest: `sha256:${'cd'.repeat(32)}`,
      }),
    );
    const issued = await exchange(deps, tokens.mint({ environment: 'prod' }), {
      grant: 'deploy',
      artifactDigest: DIGEST,
    });

    // assess
    expect(noDigest.reason).toBe('gate');
    expect(other.message).toContain('no approval of that digest');
    expect(issued.record.digest).toBe(DIGEST);
    expect(issued.aws?.expiresAt).toBeDefined();
    expect(seen).toEqual(['octocat', 'octocat']);
  });

  it('leaves nothing half-issued: a Vault token issued before the AWS session failed is revoked', async () => {
    // prepare
    const { deps, tokens, fakes, store } = setup();
    fakes.failAwsNext();

    // act
    await expect(
      exchange(deps, tokens.mint({ environment: 'prod' }), { grant: 'deploy', artifactDigest: DIGEST }),
    ).rejects.toThrow('STS is down');

    // assess
    expect(fakes.liveTokens.size).toBe(0);
    expect(await store.listUnused()).toEqual([]);
  });
});

describe('ci exchange: ending', () => {
  it('ends an exchange early with a fresh token of the same job, once; a token of another job is refused', async () => {
    // prepare
    const { deps, tokens, fakes, events } = setup();
    const issued = await exchange(deps, tokens.mint({ environment: 'prod' }), {
      grant: 'deploy',
      artifactDigest: DIGEST,
    });

    // act
    const stranger = await refusal(endExchange(deps, tokens.mint({ check_run_id: '778' }), issued.record.id));
    const ended = await endExchange(deps, tokens.mint(), issued.record.id);
    const again = await endExchange(deps, tokens.mint(), issued.record.id);

    // assess
    expect(stranger.reason).toBe('not-same-job');
    expect(ended).toMatchObject({ state: 'ended', ended: { by: 'job' }, aws: { denied: true } });
    expect(again.ended?.at).toBe(ended.ended?.at);
    expect(fakes.liveTokens.size).toBe(0);
    expect(fakes.denied.has(issued.record.correlationId)).toBe(true);
    expect((await events()).filter((e) => e.type === 'ci.credentials.ended')).toHaveLength(1);
  });

  it('lets a job end its credentials with a token as old as the job (GitLab mints them at the start), never exchange with one', async () => {
    // prepare: a verifier that reports the maximum token age it was asked to enforce
    const { deps, tokens } = setup();
    const ages: number[] = [];
    const verifier = deps.verifier;
    deps.verifier = {
      verify: (token, issuers) => {
        ages.push(...issuers.map((issuer) => issuer.maxTokenAgeSeconds));
        return verifier.verify(token, issuers);
      },
    };
    const issued = await exchange(deps, tokens.mint(), { grant: 'build' });

    // act
    await endExchange(deps, tokens.mint(), issued.record.id);

    // assess: 10 minutes for the exchange, a day for the end
    expect(ages).toEqual([600, 86_400]);
  });

  it("ends every credential of a job from the platform's webhook, and none of another job's", async () => {
    // prepare
    const { deps, tokens, fakes } = setup();
    await exchange(deps, tokens.mint(), { grant: 'build' });
    await exchange(deps, tokens.mint(), { grant: 'build' });
    const other = await exchange(deps, tokens.mint({ check_run_id: '778' }), { grant: 'build' });

    // act
    const { ended } = await endJob(deps, 'github', {
      repository_id: REPO_ID,
      run_id: '9001',
      run_attempt: '1',
      check_run_id: '777',
    });

    // assess
    expect(ended).toBe(2);
    expect([...fakes.liveTokens]).toEqual([other.vault?.accessor]);
  });

  it('records expired exchanges as ended by their TTL, and releases a deny once the sessions are dead', async () => {
    // prepare
    const { deps, tokens, clock, fakes } = setup();
    await exchange(deps, tokens.mint(), { grant: 'build' });
    const gated = await exchange(deps, tokens.mint({ environment: 'prod', check_run_id: '9' }), {
      grant: 'deploy',
      artifactDigest: DIGEST,
    });
    await endExchange(deps, tokens.mint({ check_run_id: '9' }), gated.record.id);

    // act
    const early = await sweepCi(deps);
    clock.advance(16 * 60_000);
    const late = await sweepCi(deps);

    // assess
    expect(early).toEqual({ expired: 0, released: 0, failed: 0 });
    expect(late).toEqual({ expired: 1, released: 1, failed: 0 });
    expect(fakes.denied.size).toBe(0);
  });
});

describe('ci exchange: use', () => {
  it('records one use event per exchange from the Vault trail, with the first use and where it came from', async () => {
    // prepare
    const { deps, tokens, events } = setup();
    const issued = await exchange(deps, tokens.mint(), { grant: 'build' });
    const accessor = issued.vault?.accessor as string;
    const trail = async () => [
      { accessor, at: '2026-12-05T10:00:02Z', what: 'read secret/data/x', from: '10.0.0.9' },
      { accessor, at: '2026-12-05T10:00:01Z', what: 'read secret/data/y', from: '10.0.0.9' },
    ];

    // act
    const first = await recordUse(deps, { vault: trail });
    const second = await recordUse(deps, { vault: trail });

    // assess
    expect(first.recorded).toBe(1);
    expect(second.recorded).toBe(0);
    expect((await events()).at(-1)).toMatchObject({
      type: 'ci.credentials.used',
      subject: issued.record.correlationId,
      details: { firstUseAt: '2026-12-05T10:00:01Z', from: '10.0.0.9', uses: 2 },
    });
  });
});
