import { describe, expect, it } from 'vitest';
import {
  DEFAULT_VAULT_RETRY_POLICY,
  fullJitterDelay,
  isIdempotentVaultRequest,
  isRetryableVaultFailure,
  type RetryEnvironment,
  retryVaultCall,
  type VaultFailureFacts,
} from '../../functions/adapters/vault/retry.ts';

/** A clock that moves only when the retry loop sleeps, and a fixed "random" draw. */
function fakeEnvironment(draw = 0.5): RetryEnvironment & { waits: number[] } {
  let now = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    random: () => draw,
    sleep: async (ms) => {
      waits.push(ms);
      now += ms;
    },
  };
}

/** A failing call whose failures are described by `facts`, then succeeding once `failures` are spent. */
function flaky(failures: VaultFailureFacts[]) {
  let calls = 0;
  const call = async () => {
    calls += 1;
    const failure = failures[calls - 1];
    if (failure) throw Object.assign(new Error(`failure ${calls}`), { facts: failure });
    return 'answer';
  };
  return { call, calls: () => calls };
}
const factsOf = (error: unknown) => (error as { facts?: VaultFailureFacts }).facts;

describe('vault retry: which requests may be carried out twice', () => {
  it.each([
    ['read', 'secret/data/ci/app'],
    ['list', 'auth/token/accessors'],
    ['write', 'auth/token/lookup-accessor'],
    ['write', 'auth/token/revoke-accessor'],
    ['write', 'auth/approle/role/ci/secret-id-accessor/destroy'],
    ['write', 'auth/approle/role/ci/secret-id/lookup'],
    ['write', 'secret/data/ci/app'],
    ['write', 'secret/metadata/ci/app'],
    ['write', 'auth/approle/role/ci'],
    ['delete', 'secret/metadata/keywarden-pending/ci/app/v1'],
  ] as const)('%s %s is idempotent', (method, path) => {
    expect(isIdempotentVaultRequest(method, path)).toBe(true);
  });

  it.each([
    ['write', 'auth/token/create'],
    ['write', 'auth/token/create-orphan'],
    ['write', 'auth/token/create/ci-role'],
    ['write', 'auth/approle/role/ci/secret-id'],
    ['write', 'auth/ci/approle/role/deploy/custom-secret-id'],
    ['write', 'auth/approle/login'],
    ['write', 'auth/userpass/login/alice'],
    ['write', 'sys/wrapping/wrap'],
    ['write', 'sys/wrapping/unwrap'],
    ['read', 'database/creds/readonly'],
    ['read', 'aws/sts/deploy'],
  ] as const)('%s %s creates something each time', (method, path) => {
    expect(isIdempotentVaultRequest(method, path)).toBe(false);
  });
});

describe('vault retry: which failures are worth another attempt', () => {
  it.each([
    [{ status: 429, errors: ['rate limit quota exceeded'] }, true, true],
    [{ status: 500 }, true, false],
    [{ status: 502 }, true, false],
    [{ status: 503, errors: ['Vault is sealed'] }, true, false],
    [{ code: 'ECONNRESET' }, true, false],
    [{ code: 'ECONNABORTED' }, true, false],
    [{ code: 'ETIMEDOUT' }, true, false],
    [{}, true, false],
    [{ code: 'ECONNREFUSED' }, true, true],
    [{ code: 'ENOTFOUND' }, true, true],
  ] as const)('%j: idempotent %s, create %s', (facts, idempotent, create) => {
    expect(isRetryableVaultFailure(facts, true)).toBe(idempotent);
    expect(isRetryableVaultFailure(facts, false)).toBe(create);
  });

  it.each([400, 401, 403, 404, 405, 412])('never HTTP %i: Vault gives the same verdict again', (status) => {
    expect(isRetryableVaultFailure({ status, errors: ['permission denied'] }, true)).toBe(false);
  });

  it("never OpenBao's 500 for an unknown secret-id accessor: a settled answer, read as already gone", () => {
    expect(
      isRetryableVaultFailure(
        { status: 500, errors: ['failed to find accessor entry for secret_id_accessor: "x"'] },
        true,
      ),
    ).toBe(false);
  });

  it('never an error whose code says nothing about the connection', () => {
    expect(isRetryableVaultFailure({ code: 'ERR_INVALID_URL' }, true)).toBe(false);
  });
});

describe('vault retry: full-jitter backoff', () => {
  const policy = { ...DEFAULT_VAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1_000 };

  it('draws each wait uniformly below a ceiling that doubles per retry up to the cap', () => {
    const ceilings = [1, 2, 3, 4, 5, 6].map((retry) => fullJitterDelay(retry, policy, () => 0.999_999) + 1);
    expect(ceilings).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('can wait no time at all: the window starts at zero', () => {
    expect(fullJitterDelay(4, policy, () => 0)).toBe(0);
  });
});

describe('vault retry: retryVaultCall', () => {
  it('retries a rate-limited call until it succeeds, waiting a full-jitter delay before each retry', async () => {
    // prepare
    const env = fakeEnvironment(0.5);
    const { call, calls } = flaky([{ status: 429 }, { status: 503 }, { code: 'ECONNRESET' }]);

    // act
    const answer = await retryVaultCall(call, { idempotent: true, facts: factsOf, environment: env });

    // assess
    expect(answer).toBe('answer');
    expect(calls()).toBe(4);
    expect(env.waits).toEqual([50, 100, 200]);
  });

  it('gives up after maxAttempts (6 by default) with the last failure, unchanged', async () => {
    const env = fakeEnvironment(0);
    const { call, calls } = flaky(Array.from({ length: 10 }, () => ({ status: 500 })));

    const failure = await retryVaultCall(call, { idempotent: true, facts: factsOf, environment: env }).catch(
      (error: unknown) => error,
    );

    expect(calls()).toBe(6);
    expect((failure as Error).message).toBe('failure 6');
  });

  it('starts no retry whose wait would end past maxElapsedMs', async () => {
    const env = fakeEnvironment(0.999);
    const { call, calls } = flaky(Array.from({ length: 10 }, () => ({ status: 503 })));

    await expect(
      retryVaultCall(call, {
        idempotent: true,
        facts: factsOf,
        environment: env,
        policy: { maxAttempts: 10, baseDelayMs: 1_000, maxDelayMs: 8_000, maxElapsedMs: 5_000 },
      }),
    ).rejects.toThrow('failure 3');

    // Waits of ~1 s and ~2 s fit in 5 s; the next (~4 s) would not.
    expect(calls()).toBe(3);
    expect(env.waits.reduce((sum, wait) => sum + wait, 0)).toBeLessThan(5_000);
  });

  it('does not retry a 4xx other than 429', async () => {
    const env = fakeEnvironment();
    const { call, calls } = flaky([{ status: 400, errors: ['invalid accessor'] }]);

    await expect(
      retryVaultCall(call, { idempotent: true, facts: factsOf, environment: env }),
    ).rejects.toThrow('failure 1');
    expect(calls()).toBe(1);
    expect(env.waits).toEqual([]);
  });

  it('does not retry a create whose answer was lost: it may have been carried out', async () => {
    const env = fakeEnvironment();
    const { call, calls } = flaky([{ code: 'ECONNRESET' }]);

    await expect(
      retryVaultCall(call, { idempotent: false, facts: factsOf, environment: env }),
    ).rejects.toThrow('failure 1');
    expect(calls()).toBe(1);
  });

  it('retries a create that was rate limited or never connected: Vault did not act on it', async () => {
    const env = fakeEnvironment();
    const { call, calls } = flaky([{ status: 429 }, { code: 'ECONNREFUSED' }]);

    await expect(retryVaultCall(call, { idempotent: false, facts: factsOf, environment: env })).resolves.toBe(
      'answer',
    );
    expect(calls()).toBe(3);
  });

  it('never retries an error that is not a Vault failure', async () => {
    const env = fakeEnvironment();
    let calls = 0;
    const call = async () => {
      calls += 1;
      throw new TypeError('a bug');
    };

    await expect(
      retryVaultCall(call, { idempotent: true, facts: () => undefined, environment: env }),
    ).rejects.toThrow(TypeError);
    expect(calls).toBe(1);
  });

  it('tells an observer about each retry', async () => {
    const env = fakeEnvironment(0.5);
    const { call } = flaky([{ status: 429 }, { status: 429 }]);
    const seen: number[] = [];

    await retryVaultCall(call, {
      idempotent: true,
      facts: factsOf,
      environment: env,
      onRetry: ({ attempt }) => seen.push(attempt),
    });

    expect(seen).toEqual([1, 2]);
  });
});
