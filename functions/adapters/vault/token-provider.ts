/**
 * `vault-token`: an orphan Vault / OpenBao token per rotation version, and the tokens
 * made outside keywarden that the identity declares (by accessor, token role or
 * display-name prefix; see core/declared-tokens.ts).
 *
 * Orphan, so revoking keywarden's own token (or whatever created it) never takes
 * a pipeline's token down with it, and revoking this one takes nothing else.
 * Each token carries its own end (principle 2): `ttl` from the scope, renewable
 * up to `explicit_max_ttl` = the identity's maxAge, after which Vault refuses to
 * renew it whether keywarden is running or not. Its meta names the identity and
 * the rotation version, which is how {@link VaultTokenProvider.list} and
 * discovery find it again: a token's value is never stored, only its accessor.
 *
 * There is no `supersede`: the previous token stays valid through the grace
 * period and is revoked by accessor when it retires.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import { needsEveryToken, tokenMatch } from '../../core/declared-tokens.ts';
import { toSeconds } from '../../core/duration.ts';
import { ValidationError, VerificationError } from '../../core/errors.ts';
import { declaredAccessors, type IdentityOfKind } from '../../core/identity.ts';
import type {
  CredentialProvider,
  IssuedCredential,
  ListedCredential,
  ListOptions,
} from '../../core/ports.ts';
import { SecretValue } from '../../core/secret-value.ts';
import { wholeNumberOption } from '../options.ts';
import { parseVaultAnswer, type TokenLookup, TokenLookupSchema, VaultClient, VaultError } from './client.ts';
import { IDENTITY_META_KEY, tokenSeen } from './vault-discovery.ts';

/** Token meta / secret-id metadata key naming the rotation version that issued it. */
export const VERSION_META_KEY = 'keywarden-version';

type TokenIdentity = IdentityOfKind<'vault-token'>;

/** What {@link VaultTokenProvider} needs. */
export interface VaultTokenProviderOptions {
  /** keywarden's own client: creates, looks up and revokes tokens. */
  client: VaultClient;
  /**
   * A client that authenticates as `token`, to verify a new token as its pipeline
   * would use it. Default: same address as `client`, no namespace — pass one
   * for a Vault Enterprise / OpenBao namespace or another timeout.
   */
  clientForToken?: (token: string) => VaultClient;
  /** Most token lookups in flight at once while listing; default 8. */
  concurrency?: number;
}

/** {@link CredentialProvider} for orphan tokens; see the module comment. */
export class VaultTokenProvider implements CredentialProvider<'vault-token'> {
  readonly kind = 'vault-token' as const;
  readonly #client: VaultClient;
  readonly #clientForToken: (token: string) => VaultClient;
  /** Bounds the token lookups in flight, across every listing of this provider. */
  readonly #limit: LimitFunction;
  /** Lookups of listed tokens by accessor (see `#lookup`). */
  readonly #lookups = new Map<string, Promise<TokenLookup | undefined>>();
  /** keywarden's own accessor, once known: never listed, so never revoked as a declared token. */
  #selfAccessor: Promise<string> | undefined;
  /** The accessor LIST that listings starting now wait for: sent once the one under way answers. */
  #nextList: Promise<TokenIndex> | undefined;
  /** The accessor LIST under way, with the lookups of the tokens it names. */
  #listing: Promise<unknown> | undefined;
  /** The accessors `#nextList` leaves out (see `#everyToken`). */
  #nextIssued: ReadonlySet<string> | undefined;

  constructor(options: VaultTokenProviderOptions) {
    this.#client = options.client;
    this.#clientForToken =
      options.clientForToken ?? ((token) => new VaultClient({ addr: options.client.addr, token }));
    this.#limit = pLimit(
      wholeNumberOption({ owner: 'VaultTokenProvider', option: 'concurrency' }, options.concurrency, 8),
    );
  }

  /** An orphan token through `auth/token/create-orphan` (never node-vault's `tokenCreate`, which swaps the client's token). */
  async issue(identity: TokenIdentity, context: { versionId: string }): Promise<IssuedCredential> {
    const policies = identity.scope.policies;
    if (!policies) {
      throw new ValidationError(
        `vault-token ${identity.id}: expected scope.policies to issue a new token, got only tokens made outside keywarden (accessor, tokenRole or displayNamePrefix); add the policies its pipeline needs to rotate it, or revoke its tokens`,
      );
    }
    const created = await this.#client.createToken(
      {
        policies,
        // Seconds: Vault's own duration parser has no `d` or `w` unit.
        ttl: `${toSeconds(identity.scope.ttl)}s`,
        explicit_max_ttl: `${toSeconds(identity.policy.maxAge)}s`,
        renewable: true,
        display_name: identity.id,
        meta: { [IDENTITY_META_KEY]: identity.id, [VERSION_META_KEY]: context.versionId },
      },
      { orphan: true },
    );
    return {
      handle: created.accessor,
      secret: new SecretValue(created.client_token),
      // lease_duration is the TTL Vault granted, which may be shorter than asked (mount or system max).
      ...(created.lease_duration > 0
        ? { expiresAt: new Date(Date.now() + created.lease_duration * 1_000).toISOString() }
        : {}),
    };
  }

  /** Looks the token up as itself: it must authenticate, be the token of `handle`, and hold the scope's policies. */
  async verify(identity: TokenIdentity, credential: { handle: string; secret: SecretValue }): Promise<void> {
    let self: Awaited<ReturnType<VaultClient['lookupSelf']>>;
    try {
      self = await this.#clientForToken(credential.secret.reveal()).lookupSelf();
    } catch (error) {
      // 403: the token does not authenticate (revoked, expired, or never valid).
      if (error instanceof VaultError && error.status === 403) {
        throw new VerificationError(
          `vault-token ${identity.id}: the new token (accessor ${credential.handle}) was refused by Vault (HTTP 403) on lookup-self; expected a live token — rotate again`,
          { cause: error },
        );
      }
      throw error;
    }
    if (self.accessor !== credential.handle) {
      throw new VerificationError(
        `vault-token ${identity.id}: expected the token of accessor ${credential.handle}, got the token of accessor ${self.accessor}; the delivered value belongs to another token`,
      );
    }
    const wanted = identity.scope.policies ?? [];
    const missing = wanted.filter((policy) => !self.policies.includes(policy));
    if (missing.length > 0) {
      throw new VerificationError(
        `vault-token ${identity.id}: expected the token to hold policies ${wanted.join(', ')}, it lacks ${missing.join(', ')}`,
      );
    }
  }

  /** Revokes by accessor: the value is never needed to end a token. */
  async revoke(_identity: TokenIdentity, handle: string): Promise<'revoked' | 'already-revoked'> {
    return this.#client.revokeAccessor(handle);
  }

  /**
   * Every live token of this identity: those keywarden issued for it (its id in their meta)
   * and those its scope names (accessor, token role, display-name prefix). Declared accessors
   * are looked up directly; a gone one is simply not live. Vault cannot filter by meta, role or
   * display name, so any other form lists every accessor (a LIST sent after the call began:
   * it says which tokens exist now) and looks up those it has not seen before. keywarden's own
   * token is never listed.
   *
   * `replaced` (a first rotation's adoption): the token the pipeline used until now, looked up
   * by its value. When it is this identity's and the scope names its tokens by nothing wider than
   * accessors (no token role, no display-name prefix), the answer is that token and the declared
   * accessors, without the LIST: one lookup instead of a pass over every token. Another token
   * keywarden issued for the identity and never recorded is left to its explicit_max_ttl.
   * Otherwise (gone, someone else's, recorded already, not a token, no permission to look it
   * up) it lists.
   */
  async list(identity: TokenIdentity, options: ListOptions = {}): Promise<ListedCredential[]> {
    const [self, replaced] = await Promise.all([
      this.#self(),
      options.replaced && !identity.scope.tokenRole && !identity.scope.displayNamePrefix
        ? this.#lookupValue(options.replaced.reveal())
        : undefined,
    ]);
    const adoptable =
      replaced !== undefined &&
      replaced.accessor !== self &&
      !options.skip?.has(replaced.accessor) &&
      tokenMatch(identity, tokenSeen(replaced)) !== undefined;
    const everyToken = !adoptable && needsEveryToken(identity.scope);
    const listed = adoptable
      ? [replaced]
      : everyToken
        ? candidatesOf(await this.#everyToken(options.issuedByKeywarden), identity)
        : [];
    const inList = new Set(listed.map((token) => token.accessor));
    // A declared accessor no LIST named is looked up afresh: that lookup is what says it still
    // exists. Beside an adopted replaced token, one the caller recorded already (`skip`) is not.
    const declared = await Promise.all(
      declaredAccessors(identity.scope)
        .filter((accessor) => !inList.has(accessor) && !(adoptable && options.skip?.has(accessor)))
        .map((accessor) => this.#lookup(accessor, true)),
    );
    const found = [...listed, ...declared].map((token): ListedCredential | undefined => {
      if (!token || token.accessor === self || !tokenMatch(identity, tokenSeen(token))) return undefined;
      const versionId =
        token.meta?.[IDENTITY_META_KEY] === identity.id ? token.meta[VERSION_META_KEY] : undefined;
      return {
        handle: token.accessor,
        status: 'active',
        createdAt: new Date(token.creation_time * 1_000).toISOString(),
        ...(versionId ? { versionId } : {}),
      };
    });
    return found
      .filter((credential) => credential !== undefined)
      .sort(
        (a, b) => (a.createdAt ?? '').localeCompare(b.createdAt ?? '') || a.handle.localeCompare(b.handle),
      );
  }

  /**
   * A token's lookup. What listing reads of a token (meta, creation path, display name, creation
   * time) never changes, so a token found by a LIST is looked up once per process, however many
   * identities list it: a fleet's listings cost one lookup per token, not one per token per
   * identity. Whether it still exists is the fresh LIST's answer; a declared accessor outside
   * any LIST (`fresh`) is looked up every time, as existence is what that lookup tells.
   */
  #lookup(accessor: string, fresh: boolean): Promise<TokenLookup | undefined> {
    const listed = !fresh && this.#lookups.get(accessor);
    if (listed) return listed;
    const lookup = this.#limit(() => this.#client.lookupAccessor(accessor));
    // Kept only once it found a token: a gone or failed lookup is asked again next time.
    this.#lookups.set(accessor, lookup);
    lookup.then(
      (token) => token === undefined && this.#lookups.delete(accessor),
      () => this.#lookups.delete(accessor),
    );
    return lookup;
  }

  /**
   * The token `value` is, looked up by keywarden's own client (`auth/token/lookup`, which spends
   * none of a use-limited token's uses, unlike a lookup-self as it). Undefined when Vault refuses
   * it: not a live token, or no permission to look tokens up by value, which the LIST then does.
   */
  async #lookupValue(value: string): Promise<TokenLookup | undefined> {
    const path = 'auth/token/lookup';
    try {
      const response = await this.#client.write(path, { token: value });
      return parseVaultAnswer(TokenLookupSchema, response.data, 'write', path);
    } catch (error) {
      if (error instanceof VaultError && (error.status === 400 || error.status === 403)) return undefined;
      throw error;
    }
  }

  /**
   * Every token that exists, from a LIST of accessors sent after this call began, looked up
   * (once per process each), indexed once per LIST (see {@link TokenIndex}). Listings that start while a LIST is under way share the next one,
   * sent when it answers: a fleet's listings at once cost two LISTs and one pass over the
   * tokens, not a LIST and a pass each, and each still sees what existed when it began.
   *
   * `issued`: accessors the caller records live as tokens keywarden issued, not looked up nor
   * indexed. Keywarden's meta names one identity, which records it (its listing skips it), and
   * only a declared accessor names it to another, looked up afresh when no index holds it; a
   * token role or display-name prefix never names a token keywarden issued. Listings share a
   * LIST only when they pass the same set (a campaign's planning passes one to all).
   */
  #everyToken(issued?: ReadonlySet<string>): Promise<TokenIndex> {
    if (this.#nextList && this.#nextIssued === issued) return this.#nextList;
    const next = (this.#listing ?? Promise.resolve()).then(async () => {
      // Sent now: a listing that starts from here on waits for the one after.
      if (this.#nextList === next) this.#nextList = undefined;
      const listed = await this.#client.list('auth/token/accessors');
      this.#forgetAllBut(new Set(listed));
      const tokens = await Promise.all(
        listed.filter((accessor) => !issued?.has(accessor)).map((accessor) => this.#lookup(accessor, false)),
      );
      return indexTokens(tokens.filter((token) => token !== undefined));
    });
    this.#nextList = next;
    this.#nextIssued = issued;
    const settled = next.catch(() => undefined);
    this.#listing = settled;
    void settled.then(() => {
      if (this.#listing === settled) this.#listing = undefined;
    });
    return next;
  }

  /** Drops the lookups of tokens a fresh LIST no longer names (revoked or expired): the memory follows the live tokens. */
  #forgetAllBut(live: ReadonlySet<string>): void {
    for (const accessor of this.#lookups.keys()) if (!live.has(accessor)) this.#lookups.delete(accessor);
  }

  /** Asked once however many listings start before it answers; a failed lookup is asked again. */
  #self(): Promise<string> {
    if (!this.#selfAccessor) {
      const self = this.#client.lookupSelf().then((token) => token.accessor);
      self.catch(() => {
        if (this.#selfAccessor === self) this.#selfAccessor = undefined;
      });
      this.#selfAccessor = self;
    }
    return this.#selfAccessor;
  }
}

/**
 * The tokens one LIST found, indexed by what can name a token to an identity (declared-tokens.ts
 * `tokenMatch`): its accessor, the identity keywarden issued it for, or (made outside keywarden)
 * a token role or display-name prefix. Built once per LIST, so each identity's listing reads its
 * own candidates, not every token: a fleet's listings cost O(tokens), not O(identities × tokens).
 */
interface TokenIndex {
  byAccessor: ReadonlyMap<string, TokenLookup>;
  /** By `tokenSeen(token).issuedFor`: keywarden's tokens, each of one identity (or a grant) only. */
  byIssuer: ReadonlyMap<string, readonly TokenLookup[]>;
  /** Tokens keywarden did not issue: a token role or a display-name prefix may name them. */
  unissued: readonly TokenLookup[];
}

function indexTokens(tokens: readonly TokenLookup[]): TokenIndex {
  const byAccessor = new Map<string, TokenLookup>();
  const byIssuer = new Map<string, TokenLookup[]>();
  const unissued: TokenLookup[] = [];
  for (const token of tokens) {
    byAccessor.set(token.accessor, token);
    const issuer = tokenSeen(token).issuedFor;
    if (issuer === undefined) unissued.push(token);
    else {
      const mine = byIssuer.get(issuer);
      if (mine) mine.push(token);
      else byIssuer.set(issuer, [token]);
    }
  }
  return { byAccessor, byIssuer, unissued };
}

/**
 * The listed tokens `identity` may name, a superset of those `tokenMatch` accepts (the caller
 * still asks it): its declared accessors, those issued for it, and with a token role or a
 * display-name prefix every token keywarden did not issue.
 */
function candidatesOf(index: TokenIndex, identity: TokenIdentity): TokenLookup[] {
  const found = new Map<string, TokenLookup>();
  for (const accessor of declaredAccessors(identity.scope)) {
    const token = index.byAccessor.get(accessor);
    if (token) found.set(accessor, token);
  }
  for (const token of index.byIssuer.get(identity.id) ?? []) found.set(token.accessor, token);
  if (identity.scope.tokenRole !== undefined || identity.scope.displayNamePrefix !== undefined)
    for (const token of index.unissued) found.set(token.accessor, token);
  return [...found.values()];
}
