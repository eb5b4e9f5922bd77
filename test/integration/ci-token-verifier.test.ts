/**
 * The CI token verifier (jose) against local OIDC issuers playing GitHub Actions' and GitLab's
 * endpoints: tokens that verify, each refusal with what it expected, keys rotated and fetched
 * again, a discovery document naming another issuer, and key sources that fail (retryable, not
 * a refusal). No message ever carries the token.
 */

import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CiKeySourceError, JoseCiTokenVerifier } from '../../functions/adapters/oidc/jose-verifier.ts';
import {
  type CiIssuer,
  CiIssuerSchema,
  CiRefusalError,
  type CiRefusalReason,
  resolveIssuer,
} from '../../functions/core/ci-policy.ts';
import { LocalOidcIssuer, type MintOptions, type TokenClaims } from '../support/oidc-issuer.ts';

const AUDIENCE = 'keywarden';

/** An issuer as the inventory would declare it, defaults resolved. */
const trustedIssuer = (declared: Record<string, unknown>): CiIssuer =>
  resolveIssuer(CiIssuerSchema.parse({ audience: AUDIENCE, ...declared }));

/** What `verify` threw (or a failure when it did not throw). */
async function thrown(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected verify to throw, it returned');
}

/** Every token a spec made, to check no message quotes one (or its signature). */
const tokens: string[] = [];
const messages: string[] = [];
const remember = (error: Error) => {
  messages.push(error.message, String(error.cause ?? ''));
  return error;
};

describe('ci token verifier: JoseCiTokenVerifier against a local issuer', () => {
  const github = new LocalOidcIssuer({ platform: 'github' });
  const gitlab = new LocalOidcIssuer({ platform: 'gitlab' });
  const stranger = new LocalOidcIssuer();
  let githubIssuer: CiIssuer;
  let gitlabIssuer: CiIssuer;
  let issuers: CiIssuer[];
  const verifier = new JoseCiTokenVerifier();

  const mint = async (issuer: LocalOidcIssuer, claims: TokenClaims, options?: MintOptions) => {
    const token = await issuer.mint(claims, options);
    tokens.push(token);
    return token;
  };
  const refusal = async (token: string, using = verifier, trusted = issuers) => {
    const error = remember(await thrown(using.verify(token, trusted)));
    expect(error).toBeInstanceOf(CiRefusalError);
    return error as CiRefusalError;
  };

  beforeAll(async () => {
    await Promise.all([github.start(), gitlab.start(), stranger.start()]);
    // GitHub's keys through its discovery document (the preset's default), GitLab's by JWKS URL.
    githubIssuer = trustedIssuer({ name: 'github', preset: 'github', issuer: github.url });
    gitlabIssuer = trustedIssuer({
      name: 'gitlab',
      preset: 'gitlab',
      issuer: gitlab.url,
      jwksUrl: gitlab.jwksUrl,
    });
    issuers = [githubIssuer, gitlabIssuer];
  });
  afterAll(async () => {
    await Promise.all([github.stop(), gitlab.stop(), stranger.stop()]);
  });

  it('verifies a token a GitHub runner requests, through the discovery document', async () => {
    // prepare: the environment a step gets, and the request a runner's toolkit makes with it
    const claims = github.githubClaims({ environment: 'production' });
    const env = github.runnerEnv(claims);
    const answer = await fetch(
      `${env.ACTIONS_ID_TOKEN_REQUEST_URL}&audience=${encodeURIComponent(AUDIENCE)}`,
      {
        headers: { Authorization: `Bearer ${env.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` },
      },
    );
    const { value: token } = (await answer.json()) as { value: string };
    tokens.push(token);

    // act
    const verified = await verifier.verify(token, issuers);

    // assess
    expect(verified.issuer.name).toBe('github');
    expect(verified.claims).toMatchObject({
      aud: AUDIENCE,
      repository_id: claims.repository_id,
      run_id: claims.run_id,
      environment: 'production',
      sub: `repo:octo-org/octo-repo:environment:production`,
    });
    expect(verified.jti).toBe(verified.claims.jti);
    expect(verified.jti).not.toBe(claims.jti);
    expect(verified.expiresAt.getTime() - verified.issuedAt.getTime()).toBe(300_000);
    expect(github.served.discovery).toBe(1);
  });

  it('answers 401 to a token request without the runner’s request token', async () => {
    const env = github.runnerEnv();
    const answer = await fetch(`${env.ACTIONS_ID_TOKEN_REQUEST_URL}&audience=${AUDIENCE}`, {
      headers: { Authorization: 'Bearer not-the-request-token' },
    });
    expect(answer.status).toBe(401);
  });

  it('verifies a GitLab id_token by the JWKS URL, and fetches the keys once for many tokens', async () => {
    const claims = gitlab.gitlabClaims({ aud: AUDIENCE });
    const before = gitlab.served.keys;

    const first = await verifier.verify(await mint(gitlab, claims), issuers);
    await verifier.verify(await mint(gitlab, gitlab.gitlabClaims({ aud: AUDIENCE })), issuers);

    expect(first.issuer.name).toBe('gitlab');
    expect(first.claims).toMatchObject({ project_id: claims.project_id, job_id: claims.job_id });
    expect(first.jti).toBe(claims.jti);
    expect(first.issuedAt).toEqual(new Date((claims.iat as number) * 1_000));
    expect(gitlab.served.keys - before).toBeLessThanOrEqual(1);
    expect(gitlab.served.discovery).toBe(0);
  });

  it('of two trusted issuers with the token’s iss, picks the one for its audience', async () => {
    const deployAudience = { ...githubIssuer, name: 'github-deploy', audience: 'keywarden-deploy' };
    const token = await mint(github, github.githubClaims({ aud: 'keywarden-deploy' }));

    const verified = await verifier.verify(token, [githubIssuer, deployAudience]);

    expect(verified.issuer.name).toBe('github-deploy');
  });

  it('tolerates the configured clock skew, and checks times at the clock it is given', async () => {
    // prepare: expired 30 s ago, within the default 60 s skew
    const t = Math.floor(Date.now() / 1_000);
    const token = await mint(
      gitlab,
      gitlab.gitlabClaims({ aud: AUDIENCE, iat: t - 300, nbf: t - 300, exp: t - 30 }),
    );
    await expect(verifier.verify(token, issuers)).resolves.toMatchObject({ issuer: { name: 'gitlab' } });

    // act: the same token at a clock two minutes on
    const later = new JoseCiTokenVerifier({ clock: { now: () => new Date(Date.now() + 120_000) } });
    const error = await refusal(token, later);

    // assess
    expect(error.reason).toBe('expired');
  });

  const refusals: {
    name: string;
    reason: CiRefusalReason;
    token: () => Promise<string>;
    message: RegExp;
  }[] = [
    {
      name: 'a token from an issuer not trusted',
      reason: 'issuer-untrusted',
      token: () => mint(stranger, stranger.githubClaims({ aud: AUDIENCE })),
      message:
        /^expected a token from a trusted issuer \("http:\/\/127\.0\.0\.1:\d+", "http:\/\/127\.0\.0\.1:\d+"\), got iss "http:\/\/127\.0\.0\.1:\d+"$/,
    },
    {
      name: 'a token for another audience',
      reason: 'audience',
      token: () => mint(github, github.githubClaims({ aud: 'other' })),
      message: /^expected aud "keywarden" \(issuer github\), got "other"/,
    },
    {
      name: 'a token with no audience',
      reason: 'audience',
      token: () => mint(github, github.githubClaims({ aud: undefined })),
      message: /^expected aud "keywarden" \(issuer github\), got none$/,
    },
    {
      name: 'a token signed with an algorithm not allowed (ES256)',
      reason: 'algorithm',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE }), { alg: 'ES256' }),
      message: /^expected alg RS256 \(issuer github\), got "ES256"$/,
    },
    {
      name: 'a token MACed with a shared secret (HS256)',
      reason: 'algorithm',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE }), { alg: 'HS256' }),
      message: /^expected alg RS256 \(issuer github\), got "HS256"$/,
    },
    {
      name: 'an expired token',
      reason: 'expired',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE }), { expired: true }),
      message: /^expected a token expiring after \S+ \(60s skew\), got exp \S+; request a fresh token$/,
    },
    {
      name: 'a token not valid yet (nbf ahead)',
      reason: 'not-yet-valid',
      token: () => mint(gitlab, gitlab.gitlabClaims({ aud: AUDIENCE }), { notYetValid: true }),
      message: /^expected a token valid by \S+ \(nbf, 60s skew\), got nbf \S+$/,
    },
    {
      name: 'a token issued in the future (iat ahead, no nbf)',
      reason: 'not-yet-valid',
      token: () => {
        const t = Math.floor(Date.now() / 1_000);
        return mint(
          gitlab,
          gitlab.gitlabClaims({ aud: AUDIENCE, nbf: undefined, iat: t + 600, exp: t + 900 }),
        );
      },
      message: /^expected a token issued by \S+ \(iat, 60s skew\), got iat \S+$/,
    },
    {
      name: 'a token older than maxTokenAge, though not expired',
      reason: 'too-old',
      token: () => mint(gitlab, gitlab.gitlabClaims({ aud: AUDIENCE }), { issuedSecondsAgo: 15 * 60 }),
      message:
        /^expected a token issued within the last 600s \(\+60s skew, after \S+\), got iat \S+; request a fresh token$/,
    },
    {
      name: 'a token signed by a key the issuer never published',
      reason: 'token-invalid',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE }), { signer: 'unknown' }),
      message:
        /^expected a token signed by a key issuer github publishes, got kid "[0-9a-f]{16}" \(alg "RS256"\), which none of its keys has$/,
    },
    {
      name: 'a token under the current kid, signed by another key',
      reason: 'token-invalid',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE }), { signer: 'forged' }),
      message: /^expected a signature by one of issuer github's keys, got one that does not verify$/,
    },
    {
      name: 'a token without a jti (it could be replayed)',
      reason: 'token-invalid',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE, jti: undefined })),
      message: /^expected a "jti" claim, got none$/,
    },
    {
      name: 'a token without exp',
      reason: 'token-invalid',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE, exp: undefined })),
      message: /^expected a "exp" claim, got none$/,
    },
    {
      name: 'a token whose jti is not a string',
      reason: 'token-invalid',
      token: () => mint(github, github.githubClaims({ aud: AUDIENCE, jti: 42 })),
      message: /^expected a "jti" claim of 1 to 256 characters, got 42$/,
    },
    {
      name: 'something that is not a JWT',
      reason: 'token-invalid',
      token: async () => {
        const token = `${(await mint(github, github.githubClaims({ aud: AUDIENCE }))).split('.').slice(1).join('.')}`;
        tokens.push(token);
        return token;
      },
      message:
        /^expected a JWT \(header\.payload\.signature, at most 16 KiB\), got something that does not decode as one$/,
    },
    {
      name: 'a token with its signature cut off',
      reason: 'token-invalid',
      token: async () => {
        const token = `${(await mint(github, github.githubClaims({ aud: AUDIENCE }))).split('.').slice(0, 2).join('.')}.`;
        tokens.push(token);
        return token;
      },
      message: /^expected a signature by one of issuer github's keys, got one that does not verify$/,
    },
  ];

  for (const { name, reason, token, message } of refusals) {
    it(`refuses ${name} (${reason}), saying what it expected`, async () => {
      const error = await refusal(await token());

      expect(error.reason).toBe(reason);
      expect(error.unauthenticated).toBe(true);
      expect(error.message).toMatch(message);
    });
  }

  it('picks a rotated key up by fetching the key set again', async () => {
    // prepare: a verifier whose key set may be fetched again at once on an unknown kid
    const rotating = await new LocalOidcIssuer({ platform: 'gitlab' }).start();
    const trusted = [trustedIssuer({ name: 'gitlab', preset: 'gitlab', issuer: rotating.url })];
    const eager = new JoseCiTokenVerifier({ cooldownMs: 0 });
    await eager.verify(await mint(rotating, rotating.gitlabClaims({ aud: AUDIENCE })), trusted);
    const oldKid = rotating.kid;

    // act: the issuer signs with a new key, and stops publishing the old one
    const newKid = await rotating.rotateKey({ retireOld: true });
    const verified = await eager.verify(
      await mint(rotating, rotating.gitlabClaims({ aud: AUDIENCE })),
      trusted,
    );
    await rotating.stop();

    // assess: the second token's kid was unknown, so the keys were fetched once more
    expect(newKid).not.toBe(oldKid);
    expect(verified.issuer.name).toBe('gitlab');
    expect(rotating.served).toMatchObject({ discovery: 1, keys: 2 });
  });

  it('keeps refusing an unknown kid within the cooldown, without fetching the keys again', async () => {
    const token = await mint(github, github.githubClaims({ aud: AUDIENCE }), { signer: 'unknown' });
    await refusal(token);
    const fetched = github.served.keys;

    const error = await refusal(token);

    expect(error.reason).toBe('token-invalid');
    expect(github.served.keys).toBe(fetched);
  });

  it('refuses a discovery document naming another issuer, as a configuration error (not retryable)', async () => {
    // prepare: an issuer whose discovery document claims to be GitHub's real issuer
    const impostor = await new LocalOidcIssuer().start();
    impostor.discoveryIssuer = 'https://token.actions.githubusercontent.com';
    const trusted = [trustedIssuer({ name: 'ghes', preset: 'github', issuer: impostor.url })];
    const token = await mint(impostor, impostor.githubClaims({ aud: AUDIENCE }));

    // act
    const error = remember(await thrown(verifier.verify(token, trusted)));
    await impostor.stop();

    // assess
    expect(error).toBeInstanceOf(CiKeySourceError);
    expect((error as CiKeySourceError).retryable).toBe(false);
    expect(error.message).toBe(
      `issuer ghes: expected the discovery document at ${impostor.discoveryUrl} to name issuer ${JSON.stringify(impostor.url)}, got "https://token.actions.githubusercontent.com"; check discoveryUrl`,
    );
    expect(impostor.served.keys).toBe(0);
  });

  describe('a key source that fails is retryable, not a refusal', () => {
    let silent: TcpServer;
    const held = new Set<Socket>();
    let silentUrl: string;
    let closedUrl: string;
    beforeAll(async () => {
      // A server that accepts and never answers, and a port nothing listens on.
      silent = createTcpServer((socket) => held.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/.well-known/jwks`;
      const probe = createTcpServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      closedUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/.well-known/jwks`;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    });
    afterAll(async () => {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });

    const withKeysAt = (jwksUrl: string): CiIssuer[] => [
      { ...githubIssuer, jwksUrl, discoveryUrl: undefined },
    ];
    const tokenOf = () => mint(github, github.githubClaims({ aud: AUDIENCE }));

    it('when nothing listens at the JWKS URL', async () => {
      const error = remember(await thrown(verifier.verify(await tokenOf(), withKeysAt(closedUrl))));

      expect(error).toBeInstanceOf(CiKeySourceError);
      expect(error).not.toBeInstanceOf(CiRefusalError);
      expect((error as CiKeySourceError).retryable).toBe(true);
      expect(error.message).toBe(
        `could not fetch the signing keys of issuer github from ${closedUrl}: ECONNREFUSED; try again`,
      );
    });

    it('when the JWKS URL does not answer in time', async () => {
      const quick = new JoseCiTokenVerifier({ timeoutMs: 300 });
      const error = remember(await thrown(quick.verify(await tokenOf(), withKeysAt(silentUrl))));

      expect((error as CiKeySourceError).retryable).toBe(true);
      expect(error.message).toBe(
        `could not fetch the signing keys of issuer github from ${silentUrl}: no answer within 300 ms; try again`,
      );
    });

    it('when the key set answers 503', async () => {
      const failing = await new LocalOidcIssuer().start();
      failing.keysStatus = 503;
      const trusted = [
        { ...githubIssuer, issuer: failing.url, jwksUrl: failing.jwksUrl, discoveryUrl: undefined },
      ];

      const error = remember(
        await thrown(verifier.verify(await mint(failing, failing.githubClaims({ aud: AUDIENCE })), trusted)),
      );
      await failing.stop();

      expect((error as CiKeySourceError).retryable).toBe(true);
      expect(error.message).toBe(
        `could not fetch the signing keys of issuer github from ${failing.jwksUrl}: it answered HTTP 503; try again`,
      );
    });

    it('when the discovery document cannot be read', async () => {
      const trusted = [
        {
          ...githubIssuer,
          discoveryUrl: closedUrl.replace('/.well-known/jwks', '/.well-known/openid-configuration'),
        },
      ];

      const error = remember(await thrown(verifier.verify(await tokenOf(), trusted)));

      expect((error as CiKeySourceError).retryable).toBe(true);
      expect(error.message).toMatch(
        /^could not read the discovery document of issuer github at http:\/\/127\.0\.0\.1:\d+\/\.well-known\/openid-configuration: ECONNREFUSED; try again$/,
      );
    });
  });

  it('refuses plain http key URLs off loopback, without fetching them', async () => {
    const trusted = [{ ...githubIssuer, jwksUrl: 'http://keys.example.com/jwks', discoveryUrl: undefined }];

    const error = remember(
      await thrown(verifier.verify(await mint(github, github.githubClaims({ aud: AUDIENCE })), trusted)),
    );

    expect(error).toBeInstanceOf(CiKeySourceError);
    expect((error as CiKeySourceError).retryable).toBe(false);
    expect(error.message).toBe(
      'issuer github: expected the key set (jwks_uri) as an https URL (plain http only on loopback), got "http://keys.example.com/jwks"',
    );
  });

  it('never quotes a token, or its signature, in any message', () => {
    expect(messages.length).toBeGreaterThan(20);
    for (const token of tokens) {
      const [, payload, signature] = token.split('.');
      for (const message of messages) {
        expect(message).not.toContain(token);
        if (payload) expect(message).not.toContain(payload);
        if (signature) expect(message).not.toContain(signature);
      }
    }
  });
});
