/**
 * Per-provider concurrency and rate limits for mass revocation, so a campaign of
 * thousands of targets stays inside the quotas of the services it calls instead of
 * leaning on throttling and retries.
 *
 * One limiter per service (the kind registry, core/kinds.ts, names each kind's service),
 * shared by the kinds that call it: both IAM kinds draw from
 * the IAM budget, every Vault kind from the Vault one. Rates count turns: an IAM key revocation
 * (two mutating calls), a Secrets Manager write, a Vault call; a target takes the turns of what it
 * writes (core/kinds.ts `replaceTurns`):
 *
 * | service         | kinds                                   | default         | why |
 * |-----------------|-----------------------------------------|-----------------|-----|
 * | iam             | aws-iam-access-key, aws-role-session    | 5/s, 4 at once  | a key revocation is 2 mutating calls (deactivate, delete): ~10 mutating IAM calls/s, well inside IAM's unpublished per-API buckets |
 * | secrets-manager | aws-secret                              | 40 writes/s, 16 at once| a version's revocation is one write (UpdateSecretVersionStage), a current value's four (the rotation replacing it: PutSecretValue and two UpdateSecretVersionStage; then its label removed); Secrets Manager writes share one 50 TPS bucket per account and region, and other writers need room |
 * | vault           | vault-token, -approle-secret-id, -kv, -lease | 100/s, 32 at once | Vault has no quota unless configured; this keeps a campaign from crowding out pipelines' logins |
 *
 * Scheduled and CLI rotations keep the same rates ({@link rotationPace}): a rotation takes the
 * turns of the revocations its writes would be ({@link ROTATION_TURNS}: an IAM key's rotation is
 * one, as its CreateAccessKey and UpdateAccessKey are a key revocation's two calls), so a fleet
 * rotated at once stays inside IAM's account-wide budget that Terraform and other automation share.
 *
 * Settings come from the environment (read once, checked, named in errors):
 * `KEYWARDEN_RATE_IAM`, `KEYWARDEN_RATE_SECRETS_MANAGER`, `KEYWARDEN_RATE_VAULT`
 * (turns per second, ≥ 1, at most one decimal: `7.5`) and `KEYWARDEN_CONCURRENCY_IAM`,
 * `KEYWARDEN_CONCURRENCY_SECRETS_MANAGER`, `KEYWARDEN_CONCURRENCY_VAULT` (at once, ≥ 1).
 *
 * p-limit bounds how many are in flight; the starts per second are kept by a schedule of our own
 * ({@link serviceLimiter}): p-throttle's strict window timed each start from when it went, so a
 * busy event loop's late timers pushed every later start back (IAM's 24 s of revocations took
 * up to 29 s in a loaded bench). bottleneck does both but has had no release since 2019.
 */
import pLimit from 'p-limit';
import * as z from 'zod';
import { ValidationError } from '../core/errors.ts';
import type { Delivery, IdentityKind } from '../core/identity.ts';
import { PROVIDER_SERVICES, type ProviderService, serviceOf } from '../core/kinds.ts';
import type { Limit } from '../core/ports.ts';
import type { RotationPace } from '../core/rotation.ts';

const ServiceLimitSchema = z.strictObject({
  /** Targets (or rotations) in flight at once. */
  concurrency: z.int().min(1).max(256),
  /** Turns started per second: at most one decimal (7.5: IAM's 15 mutating calls a second, two per key revocation). */
  perSecond: z
    .number()
    .min(1)
    .max(10_000)
    .refine((n) => Math.abs(n * 10 - Math.round(n * 10)) < 1e-9, {
      error: 'expected at most one decimal',
    }),
});
export type ServiceLimit = z.infer<typeof ServiceLimitSchema>;

export const RateLimitsSchema = z.strictObject({
  iam: ServiceLimitSchema,
  'secrets-manager': ServiceLimitSchema,
  vault: ServiceLimitSchema,
});
export type RateLimits = z.infer<typeof RateLimitsSchema>;

/** Defaults that respect AWS quotas; see the module comment for the reasoning. */
export const DEFAULT_RATE_LIMITS: Readonly<RateLimits> = Object.freeze({
  iam: { concurrency: 4, perSecond: 5 },
  'secrets-manager': { concurrency: 16, perSecond: 40 },
  vault: { concurrency: 32, perSecond: 100 },
});

const ENV_SUFFIX: Record<ProviderService, string> = {
  iam: 'IAM',
  'secrets-manager': 'SECRETS_MANAGER',
  vault: 'VAULT',
};

/** The environment variables that override the defaults, by service. */
export const rateLimitEnvNames = (service: ProviderService) => ({
  perSecond: `KEYWARDEN_RATE_${ENV_SUFFIX[service]}`,
  concurrency: `KEYWARDEN_CONCURRENCY_${ENV_SUFFIX[service]}`,
});

/**
 * The limits in force: the defaults, overridden by the environment variables set.
 *
 * @throws ValidationError naming the variable and the value it holds, when not a whole number ≥ 1.
 */
export function rateLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): RateLimits {
  const read = (name: string, fallback: number, max: number, decimal = false): number => {
    const text = env[name];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    const valid = decimal ? /^\d+(\.\d)?$/.test(text.trim()) : Number.isInteger(value);
    if (!valid || value < 1 || value > max) {
      throw new ValidationError(
        `environment variable ${name}: expected ${decimal ? 'a number with at most one decimal' : 'a whole number'} from 1 to ${max}, got ${JSON.stringify(text)}`,
      );
    }
    return value;
  };
  const limits = {} as RateLimits;
  for (const service of PROVIDER_SERVICES) {
    const names = rateLimitEnvNames(service);
    const fallback = DEFAULT_RATE_LIMITS[service];
    limits[service] = {
      concurrency: read(names.concurrency, fallback.concurrency, 256),
      perSecond: read(names.perSecond, fallback.perSecond, 10_000, true),
    };
  }
  return limits;
}

/**
 * A limiter: at most `concurrency` in flight, and starts at `perSecond` on average, kept by a token
 * bucket holding a second's worth (⌈`perSecond`⌉, IAM's 8), as AWS's own quotas are kept. It starts
 * empty unless `startFull`: one start at once, then one every 1/`perSecond` s (7.5/s: one every
 * 133 ms, at most 8 in any second and 15 in any 2 s). Each start is given its time on that schedule
 * when it takes its slot, not when it goes, so a start the event loop runs late (a busy process)
 * does not push the later ones back; and when the starts fall behind the schedule (slow calls
 * holding every slot, or a stall), the bucket fills, up to a second's worth, and the next starts
 * go at once until they have caught up: the rate is kept over the run, not lost. A listing
 * limiter starts full: a second's worth of reads at once.
 */
export function serviceLimiter(
  limit: ServiceLimit,
  { startFull = false }: { startFull?: boolean } = {},
): Limit {
  const { concurrency, perSecond } = ServiceLimitSchema.parse(limit);
  const slots = pLimit(concurrency);
  const schedule = startSchedule(perSecond, { startFull });
  return <T>(work: () => Promise<T>, turns = 1) =>
    slots(async () => {
      await schedule.take(turns);
      return work();
    });
}

/** The schedule of {@link serviceLimiter} alone, without its slots (see {@link startSchedule}). */
export interface StartSchedule {
  /**
   * Takes the next `turns` turns (a start that counts as several, as a rotation that writes three
   * times): `undefined` when they are due now, else a promise settled when they are. Turns are
   * given when asked for, so one asked for and never waited on is spent all the same.
   */
  take(turns?: number): Promise<void> | undefined;
  /** How many ms from now the next `turns` turns are due (0: now), taking none. */
  waitFor(turns?: number): number;
}

/** The starts-per-second schedule {@link serviceLimiter} keeps (a token bucket, kept as its theoretical arrival time). */
export function startSchedule(
  perSecond: number,
  { startFull = false }: { startFull?: boolean } = {},
): StartSchedule {
  const spacing = 1_000 / perSecond;
  // How far ahead of the schedule a start may go: a second's worth of starts but the one due.
  const tolerance = (Math.ceil(perSecond) - 1) * spacing;
  /** When the turn after the last one given is due (the token bucket's theoretical arrival time). */
  let due: number | undefined;
  /** When `turns` turns taken now go, and when the turn after them is then due. */
  const plan = (turns: number) => {
    const now = Date.now();
    // Empty at first: the schedule begins now, with no start ahead of it.
    due ??= startFull ? now : now + tolerance;
    // The last of the turns taken is kept to the schedule; with one turn, the first is.
    const last = Math.max(due, now) + (turns - 1) * spacing;
    const at = Math.max(now, last - tolerance);
    // Rounded up: a start never goes before its time.
    return { wait: Math.ceil(at - now - 1e-9), next: last + spacing };
  };
  return {
    take: (turns = 1) => {
      const { wait, next } = plan(turns);
      due = next;
      return wait > 0 ? new Promise((resolve) => setTimeout(resolve, wait)) : undefined;
    },
    waitFor: (turns = 1) => Math.max(0, plan(turns).wait),
  };
}

/**
 * Limits for listing what is live when a campaign is planned (one listing = one identity's
 * read-only calls). Listings draw from the services' read quotas, not from the write quotas the
 * revocation limits above keep a campaign inside, so pacing them at the revocation rate (IAM at
 * 5–7/s) only made planning wait: a fleet of 100 IAM users took 14 s to list. Not read from the
 * environment: they stay inside quotas no campaign's writes touch. A campaign's revocations wait
 * for its whole plan, so a fleet's listings should fit in about a second.
 *
 * | service         | calls per listing                                   | limit            | why |
 * |-----------------|-----------------------------------------------------|------------------|-----|
 * | iam             | ListAccessKeys                                      | 100/s, 100 at once | IAM's read limits are unpublished and throttle far later than its mutating calls; the ~100/s commonly assumed (test/support/aws-model.ts); a second's worth at once, so a fleet's hundred users are listed in one round trip, not six (the first part waits on them) |
 * | secrets-manager | DescribeSecret, beside GetSecretValue (planning lists with `grantingOnly`) | 1,000/s, 32 at once | both draw from the read quota (10,000/s combined; DescribeSecret alone 40,000/s since 2025), a tenth of it, room left for pipelines' reads; ListSecretVersionIds (50/s) is not called |
 * | vault           | a LIST or a metadata read, lookups (shared by token listings) | 2,000/s, 256 at once | Vault has no quota unless configured; a token listing mostly waits on the LIST it shares, so a fleet's start together and share one |
 */
export const DEFAULT_LISTING_LIMITS: Readonly<RateLimits> = Object.freeze({
  iam: { concurrency: 100, perSecond: 100 },
  'secrets-manager': { concurrency: 32, perSecond: 1_000 },
  vault: { concurrency: 256, perSecond: 2_000 },
});

/**
 * One limiter per service, and the lookup the campaign engine takes (`limitFor(kind)`); `startFull`
 * for the listings' (see {@link serviceLimiter}).
 */
export function providerLimiters(
  limits: RateLimits = DEFAULT_RATE_LIMITS,
  { startFull = false }: { startFull?: boolean } = {},
) {
  const parsed = RateLimitsSchema.parse(limits);
  const limiterOf = (limit: ServiceLimit) => serviceLimiter(limit, { startFull });
  const limiters: Record<ProviderService, Limit> = {
    iam: limiterOf(parsed.iam),
    'secrets-manager': limiterOf(parsed['secrets-manager']),
    vault: limiterOf(parsed.vault),
  };
  return { limits: parsed, limitFor: (kind: IdentityKind): Limit => limiters[serviceOf(kind)] };
}

/** The provider service a delivery target writes to. */
const DELIVERY_SERVICE: Record<Delivery['type'], ProviderService> = {
  'aws-secret': 'secrets-manager',
  'vault-kv': 'vault',
};

/**
 * The turns one rotation takes, in the unit the rates count (one revocation: IAM's two mutating
 * calls, one Secrets Manager write, one Vault call): a rotation paces as the revocations of its
 * writes would. Its issue takes turns of its own kind's service, its delivery of the delivery's,
 * and the two add up where they are the same service.
 *
 * | issue of          | writes                                                                      | turns |
 * |-------------------|-----------------------------------------------------------------------------|-------|
 * | an IAM access key | CreateAccessKey, then UpdateAccessKey (Inactive) of the key it replaces: 2 mutating calls, a key revocation's 2 | 1 IAM |
 * | a secret's value  | none of its own: it is its delivery's writes                                | 0 |
 * | a Vault credential| a token's create, a secret-id's write, a KV value's destroy when superseded  | 1 Vault |
 *
 * | delivery to       | writes                                                                      | turns |
 * |-------------------|-----------------------------------------------------------------------------|-------|
 * | a secret          | PutSecretValue (AWSPENDING), UpdateSecretVersionStage (AWSCURRENT), UpdateSecretVersionStage (AWSPENDING removed) | 3 Secrets Manager |
 * | a KV path         | the pending copy, the data, the metadata, the pending copy deleted          | 4 Vault |
 *
 * A version past its grace that the run retires first is a revocation: one more turn of the
 * identity's service (an IAM key's UpdateAccessKey and DeleteAccessKey).
 */
export const ROTATION_TURNS = Object.freeze({
  issue: Object.freeze({ iam: 1, 'secrets-manager': 0, vault: 1 } satisfies Record<ProviderService, number>),
  delivery: Object.freeze({ 'aws-secret': 3, 'vault-kv': 4 } satisfies Record<Delivery['type'], number>),
});

/**
 * Rotation's pacing (core/rotation.ts `rotateMany`'s `pace`): each service's rotations started at
 * its rate, on the schedule {@link serviceLimiter} keeps for a campaign's revocations (the same
 * `KEYWARDEN_RATE_*` settings, {@link rateLimitsFromEnv}), a rotation taking the turns
 * {@link ROTATION_TURNS} gives it. Not the campaign's concurrency: a rotation's steps wait on
 * their test (an IAM key's on STS, seconds while the key propagates), and the run's own limit
 * bounds how many are in flight. A rotation that writes to two services (an IAM key delivered to a
 * secret) takes its turns of both at once, when both are due, and waits (taking none) until then:
 * turns taken before the rotation can start would be spent on the schedule but used later, so the
 * rotations held back would start in bunches above their service's rate (IAM keys queued behind
 * Secrets Manager's turns were released at Secrets Manager's pace, above IAM's).
 * One pace per run, as one limiter set per campaign: the schedules start empty, as AWS's buckets
 * may be drawn on by others when the run starts (`startFull`: a second's worth at once, for a
 * world with no quota, where the pace should never hold a rotation back).
 */
export function rotationPace(
  limits: RateLimits = rateLimitsFromEnv(),
  { startFull = false }: { startFull?: boolean } = {},
): RotationPace {
  const parsed = RateLimitsSchema.parse(limits);
  const scheduleOf = (service: ProviderService) => startSchedule(parsed[service].perSecond, { startFull });
  const schedules: Record<ProviderService, StartSchedule> = {
    iam: scheduleOf('iam'),
    'secrets-manager': scheduleOf('secrets-manager'),
    vault: scheduleOf('vault'),
  };
  return ({ identity, delivery, rotating, retiring }) => {
    const own = serviceOf(identity.kind);
    const turns = new Map<ProviderService, number>();
    const add = (service: ProviderService, n: number) => {
      if (n > 0) turns.set(service, (turns.get(service) ?? 0) + n);
    };
    if (rotating) {
      add(own, ROTATION_TURNS.issue[own]);
      add(DELIVERY_SERVICE[delivery.type], ROTATION_TURNS.delivery[delivery.type]);
    }
    add(own, retiring);
    /** How long until every service's turns are due (0: now). */
    const longest = () => Math.max(0, ...[...turns].map(([service, n]) => schedules[service].waitFor(n)));
    const takeAll = () => {
      for (const [service, n] of turns) void schedules[service].take(n);
    };
    if (longest() === 0) {
      takeAll();
      return undefined;
    }
    // All at once when all are due (see the comment above); others may take turns meanwhile.
    return (async () => {
      for (let wait = longest(); wait > 0; wait = longest()) {
        await new Promise((due) => setTimeout(due, wait));
      }
      takeAll();
    })();
  };
}
