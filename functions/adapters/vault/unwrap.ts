/**
 * Unwraps a break-glass wrapping token into the grant's Vault token. This runs in the
 * CLI on the requester's machine: the token is in clear only there.
 *
 * The call is authenticated by the wrapping token itself, on a client of its own
 * (never keywarden's token). Before unwrapping, the wrapping token is looked up to
 * check that it wraps what keywarden makes (a token from `auth/token/create…`), as
 * Vault's response-wrapping guide advises: a wrapping token swapped for another on the
 * way would otherwise hand the requester someone else's secret. A wrapping token works
 * once: when it was already used (by the requester, or by someone who intercepted it)
 * or has expired, the error says so and how to get new credentials.
 */
import * as z from 'zod';
import { KeywardenError, NotFoundError } from '../../core/errors.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { CreatedTokenSchema, parseVaultAnswer, VaultClient, VaultError } from './client.ts';

/** The wrapping token was already unwrapped, or its TTL ran out. */
export class SpentWrappingTokenError extends NotFoundError {
  override readonly name: string = 'SpentWrappingTokenError';
}

/** What {@link unwrapVaultToken} needs. */
export interface UnwrapVaultTokenRequest {
  /** Vault's address, such as `https://vault.example.com:8200`. */
  addr: string;
  wrappingToken: SecretValue;
  /** Vault Enterprise / OpenBao namespace the token was created in. */
  namespace?: string;
  /** Per-request timeout; default 10 s. */
  requestTimeoutMs?: number;
}

/** The grant's token, unwrapped. */
export interface UnwrappedVaultToken {
  token: SecretValue;
  accessor: string;
  /** When Vault ends the token (RFC 3339). */
  expiresAt: string;
  policies: string[];
}

/** What `sys/wrapping/lookup` tells about a wrapping token, without unwrapping it. */
const WrappingLookupSchema = z.object({
  creation_path: z.string(),
  /** RFC 3339; the wrapped token was created in the same request. */
  creation_time: z.string().refine((text) => !Number.isNaN(Date.parse(text))),
  creation_ttl: z.number(),
});

/** Vault's answer to a wrapping token that is not (or no longer) valid. */
const SPENT = /wrapping token is not valid or does not exist/i;

const spent = (cause: VaultError) =>
  new SpentWrappingTokenError(
    'this wrapped token was already used or has expired: ask for new credentials with `keywarden breakglass credentials ID`. ' +
      'If you did not unwrap it yourself, someone else may have: tell your security team.',
    { cause },
  );

/** Rethrows Vault's "not valid or does not exist" as {@link SpentWrappingTokenError}. */
function explain(error: unknown): unknown {
  if (error instanceof VaultError && error.status === 400 && error.errors.some((text) => SPENT.test(text))) {
    return spent(error);
  }
  return error;
}

/**
 * Unwraps `wrappingToken` once (see the module comment). Throws
 * {@link SpentWrappingTokenError} when it was used before or has expired, and a
 * {@link KeywardenError} when it wraps something other than a token.
 */
export async function unwrapVaultToken(request: UnwrapVaultTokenRequest): Promise<UnwrappedVaultToken> {
  const client = new VaultClient({
    addr: request.addr,
    token: request.wrappingToken.reveal(),
    ...(request.namespace === undefined ? {} : { namespace: request.namespace }),
    ...(request.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: request.requestTimeoutMs }),
  });

  /** One write with the wrapping token, its answer's `part` checked by `schema`; failures explained. */
  const writeWrapped = async <T>(path: string, schema: z.ZodType<T>, part: 'data' | 'auth'): Promise<T> => {
    try {
      const answer = await client.write(path, {});
      return parseVaultAnswer(schema, answer[part], 'write', path);
    } catch (error) {
      throw explain(error);
    }
  };
  const wrapping = await writeWrapped('sys/wrapping/lookup', WrappingLookupSchema, 'data');
  if (!/^auth\/token\/create(?:-orphan)?(?:\/|$)/.test(wrapping.creation_path)) {
    throw new KeywardenError(
      `expected a wrapping token around a Vault token (created at auth/token/create-orphan), got one created at ${wrapping.creation_path}; ` +
        'it was left unwrapped. Do not use it: ask for new credentials and tell your security team.',
    );
  }

  const created = await writeWrapped('sys/wrapping/unwrap', CreatedTokenSchema, 'auth');
  if (created.lease_duration <= 0) {
    throw new KeywardenError(
      `the unwrapped token (accessor ${created.accessor}) never expires; expected a break-glass token with a TTL. ` +
        'Do not use it: have it revoked by accessor and tell your security team.',
    );
  }
  const createdAt = Date.parse(wrapping.creation_time);
  return {
    token: new SecretValue(created.client_token),
    accessor: created.accessor,
    expiresAt: new Date(createdAt + created.lease_duration * 1_000).toISOString(),
    policies: created.policies,
  };
}
