/**
 * A local OIDC issuer on loopback, playing the documented endpoints of GitHub Actions' OIDC
 * provider and GitLab's, for specs of whatever verifies or requests CI job tokens (the
 * verifier, the exchange, the GitHub Action, the CLI).
 *
 * Endpoints (base URL = the issuer, `http://127.0.0.1:<port>`):
 * - `GET /.well-known/openid-configuration`: `issuer` (its base URL, or {@link discoveryIssuer}),
 *   `jwks_uri` (GitHub's path, or GitLab's for `platform: 'gitlab'`), and the usual lists.
 * - `GET /.well-known/jwks` (GitHub's path) and `GET /oauth/discovery/keys` (GitLab's): the
 *   public keys, the current one first and the ones rotated out after it; or the status in
 *   {@link keysStatus} when a spec wants a failing key source.
 * - `GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=<aud>` with `Authorization: Bearer <request
 *   token>`: `{"value": "<jwt>"}` as a GitHub runner's token service answers, 401 for an unknown
 *   request token. The URL carries `?api-version=2.0` as a runner's does; `@actions/core`'s
 *   `getIDToken(aud)` appends the audience. See {@link runnerEnv}.
 *
 * Keys are RS256 pairs made at run time; nothing here is a real credential.
 */
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

/** Which platform's discovery document it serves (`jwks_uri`'s path). Both key paths answer. */
export type Platform = 'github' | 'gitlab';

/** Claims as a token carries them. */
export type TokenClaims = JWTPayload & Record<string, unknown>;

export interface MintOptions {
  /**
   * Who signs: `current` (the published key), `unknown` (a key never published, its own kid:
   * no matching key), `forged` (a key never published, under the current key's kid: the
   * signature does not verify). @default 'current'
   */
  signer?: 'current' | 'unknown' | 'forged';
  /** The header's alg; other than RS256, a one-off key of that alg signs (never published). @default 'RS256' */
  alg?: 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'HS256';
  /** Shorthand: exp 5 minutes ago (iat and nbf before it). */
  expired?: boolean;
  /** Shorthand: nbf (and iat) 10 minutes from now. */
  notYetValid?: boolean;
  /** Shorthand: iat this many seconds ago, exp still ahead. */
  issuedSecondsAgo?: number;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

const now = () => Math.floor(Date.now() / 1_000);
const digits = (length: number) => String(randomInt(10 ** (length - 1), 10 ** length - 1));
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

async function newKey(alg: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const kid = hex(8);
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** A local OIDC issuer; `await new LocalOidcIssuer().start()`, and `stop()` after. */
export class LocalOidcIssuer {
  readonly platform: Platform;
  /** The `issuer` the discovery document names; the base URL unless a spec changes it. */
  discoveryIssuer: string | undefined;
  /** Answer key requests with this status instead of the keys (a failing key source). */
  keysStatus: number | undefined;
  /** Requests served, by kind: how often keys and discovery were fetched, tokens requested. */
  readonly served = { discovery: 0, keys: 0, tokens: 0, refusedTokens: 0 };

  #server: Server | undefined;
  #url = '';
  #keys: SigningKey[] = [];
  readonly #runners = new Map<string, TokenClaims>();

  constructor(props: { platform?: Platform } = {}) {
    this.platform = props.platform ?? 'github';
  }

  /** The base URL, which is also the tokens' `iss`. */
  get url(): string {
    if (!this.#url) throw new Error('LocalOidcIssuer: start() it first');
    return this.#url;
  }
  get issuer(): string {
    return this.url;
  }
  get discoveryUrl(): string {
    return `${this.url}/.well-known/openid-configuration`;
  }
  /** The key set's URL on this platform's path. */
  get jwksUrl(): string {
    return `${this.url}${this.platform === 'github' ? '/.well-known/jwks' : '/oauth/discovery/keys'}`;
  }
  /** The current signing key's kid. */
  get kid(): string {
    const current = this.#keys[0];
    if (!current) throw new Error('LocalOidcIssuer: start() it first');
    return current.kid;
  }

  async start(): Promise<this> {
    if (this.#keys.length === 0) this.#keys = [await newKey('RS256')];
    const server = createServer((request, response) => {
      this.#answer(request, response).catch(() => {
        response.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.#server = server;
    this.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** A new current key; the old one stays published (as both platforms do) unless `retireOld`. */
  async rotateKey(options: { retireOld?: boolean } = {}): Promise<string> {
    const key = await newKey('RS256');
    this.#keys = options.retireOld ? [key] : [key, ...this.#keys];
    return key.kid;
  }

  /**
   * Claims as GitHub Actions documents them for a job of `octo-org/octo-repo` on `main`, ids
   * fresh each call; `overrides` replace or add (a value `undefined` removes the claim).
   */
  githubClaims(overrides: Record<string, unknown> = {}): TokenClaims {
    const { repository_owner, repository: named, ref: asked, environment: env } = overrides;
    const owner = String(repository_owner ?? 'octo-org');
    const repository = String(named ?? `${owner}/octo-repo`);
    const ref = String(asked ?? 'refs/heads/main');
    const environment = env as string | undefined;
    const sha = hex(20);
    const iat = now();
    return withOverrides(
      {
        jti: randomUUID(),
        sub: environment ? `repo:${repository}:environment:${environment}` : `repo:${repository}:ref:${ref}`,
        aud: `https://github.com/${owner}`,
        ref,
        sha,
        repository,
        repository_owner: owner,
        repository_owner_id: digits(8),
        repository_id: digits(9),
        repository_visibility: 'private',
        actor: 'octocat',
        actor_id: digits(7),
        run_id: digits(10),
        run_number: String(randomInt(1, 999)),
        run_attempt: '1',
        check_run_id: digits(11),
        runner_environment: 'github-hosted',
        workflow: 'release',
        workflow_ref: `${repository}/.github/workflows/release.yml@${ref}`,
        workflow_sha: sha,
        job_workflow_ref: `${repository}/.github/workflows/release.yml@${ref}`,
        job_workflow_sha: sha,
        head_ref: '',
        base_ref: '',
        event_name: 'push',
        ref_type: 'branch',
        ref_protected: 'true',
        ...(environment ? { environment } : {}),
        iss: this.url,
        // As GitHub's documented example: valid from 10 minutes before issue, for 5 minutes.
        nbf: iat - 600,
        iat,
        exp: iat + 300,
      },
      overrides,
    );
  }

  /**
   * Claims as GitLab documents its `id_tokens` for a job of `my-group/my-project` on `main`,
   * ids fresh each call; `overrides` replace or add (a value `undefined` removes the claim).
   */
  gitlabClaims(overrides: Record<string, unknown> = {}): TokenClaims {
    const { namespace_path, project_path, ref: asked, environment: env } = overrides;
    const namespace = String(namespace_path ?? 'my-group');
    const project = String(project_path ?? `${namespace}/my-project`);
    const ref = String(asked ?? 'main');
    const environment = env as string | undefined;
    const sha = hex(20);
    const iat = now();
    const host = new URL(this.url).host;
    return withOverrides(
      {
        jti: randomUUID(),
        sub: `project_path:${project}:ref_type:branch:ref:${ref}`,
        aud: 'https://vault.example.com',
        namespace_id: digits(6),
        namespace_path: namespace,
        project_id: digits(8),
        project_path: project,
        project_visibility: 'private',
        user_id: digits(7),
        user_login: 'sample-user',
        user_email: 'sample-user@example.com',
        user_access_level: 'developer',
        pipeline_id: digits(10),
        pipeline_source: 'push',
        job_id: digits(10),
        ref,
        ref_type: 'branch',
        ref_path: `refs/heads/${ref}`,
        ref_protected: 'true',
        ...(environment
          ? {
              environment,
              environment_protected: 'true',
              deployment_tier: 'production',
              environment_action: 'start',
            }
          : {}),
        runner_id: randomInt(1, 99_999),
        runner_environment: 'gitlab-hosted',
        sha,
        ci_config_ref_uri: `${host}/${project}//.gitlab-ci.yml@refs/heads/${ref}`,
        ci_config_sha: sha,
        iss: this.url,
        // As GitLab's documented example: valid from 5 seconds before issue, for an hour.
        nbf: iat - 5,
        iat,
        exp: iat + 3_600,
      },
      overrides,
    );
  }

  /** A signed token carrying `claims` (RS256 by the current key unless `options` say otherwise). */
  async mint(claims: TokenClaims, options: MintOptions = {}): Promise<string> {
    const timed = { ...claims };
    const t = now();
    if (options.expired) Object.assign(timed, { nbf: t - 1_200, iat: t - 1_200, exp: t - 300 });
    if (options.notYetValid) Object.assign(timed, { nbf: t + 600, iat: t + 600, exp: t + 900 });
    if (options.issuedSecondsAgo !== undefined) {
      const iat = t - options.issuedSecondsAgo;
      Object.assign(timed, { nbf: iat, iat, exp: t + 300 });
    }
    const alg = options.alg ?? 'RS256';
    const signer = options.signer ?? 'current';
    const current = this.#keys[0];
    if (!current) throw new Error('LocalOidcIssuer: start() it first');
    let key: CryptoKey | Uint8Array = current.privateKey;
    let kid = current.kid;
    if (alg === 'HS256') {
      key = randomBytes(32);
    } else if (alg !== 'RS256' || signer !== 'current') {
      const other = await newKey(alg);
      key = other.privateKey;
      kid = signer === 'forged' ? current.kid : other.kid;
    }
    return new SignJWT(timed).setProtectedHeader({ alg, typ: 'JWT', kid }).sign(key);
  }

  /** A token as the runner's token service would issue it: fresh jti and times, `aud` as asked. */
  async #runnerToken(claims: TokenClaims, audience: string | null): Promise<string> {
    const iat = now();
    return this.mint({
      ...claims,
      ...(audience === null ? {} : { aud: audience }),
      jti: randomUUID(),
      nbf: iat - 600,
      iat,
      exp: iat + 300,
    });
  }

  /**
   * The environment a GitHub runner gives a step of a job with `id-token: write`: a request URL
   * (carrying `?api-version=2.0`) and a request token. Each token requested with them carries
   * `claims` (default: {@link githubClaims}), with a fresh jti and times and the asked audience.
   */
  runnerEnv(claims: TokenClaims = this.githubClaims()): {
    ACTIONS_ID_TOKEN_REQUEST_URL: string;
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: string;
  } {
    const requestToken = hex(24);
    this.#runners.set(requestToken, claims);
    return {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${this.url}/_apis/distributedtask/hubs/Actions/plans/${randomUUID()}/jobs/${randomUUID()}/idtoken?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken,
    };
  }

  async #answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.url);
    const json = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (request.method !== 'GET') return json(405, { message: 'Method Not Allowed' });
    if (url.pathname === '/.well-known/openid-configuration') {
      this.served.discovery++;
      return json(200, {
        issuer: this.discoveryIssuer ?? this.url,
        jwks_uri: this.jwksUrl,
        subject_types_supported: ['public', 'pairwise'],
        response_types_supported: ['id_token'],
        id_token_signing_alg_values_supported: ['RS256'],
        scopes_supported: ['openid'],
        claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'jti', 'nbf', 'ref', 'sha', 'repository'],
      });
    }
    if (url.pathname === '/.well-known/jwks' || url.pathname === '/oauth/discovery/keys') {
      this.served.keys++;
      if (this.keysStatus !== undefined) return json(this.keysStatus, { message: 'unavailable' });
      return json(200, { keys: this.#keys.map((key) => key.jwk) });
    }
    if (url.pathname.endsWith('/idtoken') && url.searchParams.get('api-version') === '2.0') {
      const bearer = /^bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1];
      const claims = bearer === undefined ? undefined : this.#runners.get(bearer);
      if (!claims) {
        this.served.refusedTokens++;
        return json(401, { message: 'Unauthorized' });
      }
      this.served.tokens++;
      return json(200, { value: await this.#runnerToken(claims, url.searchParams.get('audience')) });
    }
    return json(404, { message: 'Not Found' });
  }
}

/** `base` with `overrides` applied; an override of `undefined` removes the claim. */
function withOverrides(base: TokenClaims, overrides: Record<string, unknown>): TokenClaims {
  const claims: TokenClaims = { ...base, ...overrides };
  for (const [name, value] of Object.entries(overrides)) if (value === undefined) delete claims[name];
  return claims;
}
