import { createHash } from 'node:crypto';
import * as z from 'zod';
import { ValidationError } from '../../core/errors.ts';
import { type Grant, GrantSchema, isReviewOverdue, type Principal } from '../../core/grant.ts';
import { reviewDueAt, sweepDueAt } from '../../core/grant-sweep.ts';
import {
  DEFAULT_GRANT_PAGE,
  type GrantPage,
  type GrantPageRequest,
  type GrantStore,
  MAX_GRANT_PAGE,
  type StoredGrant,
} from '../../core/ports.ts';
import { type DynamoTable, type Expression, type Item, Keys, type StateIndex } from './dynamodb-table.ts';

/**
 * Where a grant is listed. Every listing is a query on one partition of an index:
 *
 * | listing                  | index | partition                  | sort key               |
 * |--------------------------|-------|----------------------------|------------------------|
 * | all, newest first        | gsi1  | `GRANTS`                   | `<requestedAt>#<id>`   |
 * | by state                 | gsi2  | `GRANTS#STATE#<state>`     | `<requestedAt>#<id>`   |
 * | by requester             | gsi3  | `GRANTS#BY#<kind>:<id>` ¹  | `<requestedAt>#<id>`   |
 * | sweeper work due         | gsi4  | `GRANTS#SWEEP`             | `<sweepDueAt>#<id>`    |
 * | review pending           | gsi4  | `GRANTS#REVIEW`            | `<reviewDueAt>#<id>`   |
 *
 * ¹ or `GRANTS#BY#sha256:<hex>` of `<kind>:<id>` when longer than 1,024 bytes.
 *
 * gsi4 is sparse: its attributes are written only while the grant has a due time, and every
 * write is a whole-item put, so the step that finishes the sweeper's work (or the review)
 * takes the grant out of it. The sweeper's steps come before the review is due (grant-sweep.ts),
 * so one gsi4 entry per grant is enough: a grant whose sweeper work is stuck past its review's
 * due time is found by the review listing in the sweep partition.
 */
/**
 * A requester's partition: `GRANTS#BY#<kind>:<id>`, or its SHA-256 when that is longer than
 * 1,024 bytes (an index's partition key holds at most 2,048).
 */
function requesterPartition(p: Principal): string {
  const plain = `GRANTS#BY#${p.kind}:${p.id}`;
  if (Buffer.byteLength(plain) <= 1_024) return plain;
  return `GRANTS#BY#sha256:${createHash('sha256').update(`${p.kind}:${p.id}`).digest('hex')}`;
}

const Index = {
  all: { index: 'gsi1', partition: () => 'GRANTS' },
  state: { index: 'gsi2', partition: (state: string) => `GRANTS#STATE#${state}` },
  requester: { index: 'gsi3', partition: (p: Principal) => requesterPartition(p) },
  sweep: { index: 'gsi4', partition: () => 'GRANTS#SWEEP' },
  review: { index: 'gsi4', partition: () => 'GRANTS#REVIEW' },
} as const;

const iso = (time: string | Date) => new Date(time).toISOString();

/** The index attributes of a grant's item; gsi4's only while something is due. */
export function grantIndexAttributes(grant: Grant): Item {
  const listed = `${iso(grant.requestedAt)}#${grant.grantId}`;
  const sweepAt = sweepDueAt(grant);
  const reviewAt = sweepAt ? undefined : reviewDueAt(grant);
  return {
    gsi1pk: Index.all.partition(),
    gsi1sk: listed,
    gsi2pk: Index.state.partition(grant.state),
    gsi2sk: listed,
    gsi3pk: Index.requester.partition(grant.requester),
    gsi3sk: listed,
    ...(sweepAt ? { gsi4pk: Index.sweep.partition(), gsi4sk: `${iso(sweepAt)}#${grant.grantId}` } : {}),
    ...(reviewAt ? { gsi4pk: Index.review.partition(), gsi4sk: `${iso(reviewAt)}#${grant.grantId}` } : {}),
  };
}

/** A grant's whole item, as {@link dynamoGrantStore} writes it (the bench seeds tables with it). */
export const grantItem = (grant: Grant, rev = 1): Item & { pk: string; sk: string } => ({
  ...Keys.grant(grant.grantId),
  ...GrantSchema.parse(grant),
  ...grantIndexAttributes(grant),
  rev,
});

const TokenSchema = z.strictObject({ p: z.string(), k: z.record(z.string(), z.string()) });

const BAD_TOKEN =
  'expected nextToken to be the nextToken of the previous page of the same listing, unchanged; start again without it';

/** The opaque token of the page after `lastKey` in `partition`. */
const encodeToken = (partition: string, lastKey: Item) =>
  Buffer.from(JSON.stringify({ p: partition, k: lastKey })).toString('base64url');

/**
 * The key to start after, from a token this store handed out for a listing of one of
 * `partitions` in `index`; anything else (edited, forged, from another listing) is refused.
 */
function decodeToken(
  token: string,
  index: StateIndex,
  partitions: readonly string[],
): { partition: string; key: Item | undefined } {
  let parsed: z.infer<typeof TokenSchema>;
  try {
    if (token.length > 4_096 || !/^[A-Za-z0-9_-]+$/.test(token)) throw new Error('not base64url');
    parsed = TokenSchema.parse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
  } catch {
    throw new ValidationError(BAD_TOKEN);
  }
  const { p, k } = parsed;
  // An empty key starts a partition from its beginning (the review listing moving to its next).
  if (partitions.includes(p) && Object.keys(k).length === 0) return { partition: p, key: undefined };
  const keyNames = Object.keys(k).sort();
  const expected = ['pk', 'sk', `${index}pk`, `${index}sk`].sort();
  const sound =
    partitions.includes(p) &&
    keyNames.join() === expected.join() &&
    k[`${index}pk`] === p &&
    k.sk === 'GRANT' &&
    k.pk === `GRANT#${(k[`${index}sk`] ?? '').split('#').at(-1)}`;
  if (!sound) throw new ValidationError(BAD_TOKEN);
  return { partition: p, key: k };
}

/** The page size asked for, checked. */
function pageLimit(request: GrantPageRequest): number {
  const limit = request.limit ?? DEFAULT_GRANT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_GRANT_PAGE)
    throw new ValidationError(
      `expected limit to be a whole number from 1 to ${MAX_GRANT_PAGE}, got ${limit}`,
    );
  return limit;
}

const toGrant = (item: Item): StoredGrant => ({ ...GrantSchema.parse(item), rev: Number(item.rev) });

/** Break-glass grants, one revisioned item each, listed through the indexes above. */
export function dynamoGrantStore(table: DynamoTable): GrantStore {
  /** One page of one partition of `index`, newest (greatest sort key) first. */
  async function page(
    index: StateIndex,
    partition: string,
    request: GrantPageRequest,
    options: { skBelow?: string; filter?: Expression } = {},
  ): Promise<GrantPage> {
    const limit = pageLimit(request);
    const start = request.nextToken ? decodeToken(request.nextToken, index, [partition]).key : undefined;
    const { items, lastKey } = await table.queryIndexPage(index, partition, {
      limit,
      startKey: start,
      ...options,
    });
    return { grants: items.map(toGrant), ...(lastKey ? { nextToken: encodeToken(partition, lastKey) } : {}) };
  }

  return {
    async getGrant(grantId) {
      const item = await table.get(Keys.grant(grantId));
      return item ? toGrant(item) : undefined;
    },

    async putGrant(grant, expectedRev) {
      const parsed = GrantSchema.parse(grant);
      const { rev } = await table.putRevisioned(
        Keys.grant(grant.grantId),
        { ...parsed, ...grantIndexAttributes(parsed) },
        expectedRev,
        `grant ${grant.grantId}`,
      );
      return { ...parsed, rev };
    },

    queryGrants(query = {}) {
      if (query.requester) {
        return page(
          Index.requester.index,
          Index.requester.partition(query.requester),
          query,
          query.state
            ? {
                filter: {
                  expression: '#state = :state',
                  names: { '#state': 'state' },
                  values: { ':state': query.state },
                },
              }
            : {},
        );
      }
      if (query.state) return page(Index.state.index, Index.state.partition(query.state), query);
      return page(Index.all.index, Index.all.partition(), query);
    },

    sweepDueGrants(now, request = {}) {
      return page(Index.sweep.index, Index.sweep.partition(), request, { skBelow: `${iso(now)}$` });
    },

    async reviewDueGrants(now, request = {}) {
      // The review partition first, then the grants whose sweeper work is stuck past their review.
      const partitions = [Index.review.partition(), Index.sweep.partition()];
      const limit = pageLimit(request);
      let at = request.nextToken
        ? decodeToken(request.nextToken, 'gsi4', partitions)
        : { partition: partitions[0] as string, key: undefined as Item | undefined };
      for (;;) {
        const { items, lastKey } = await table.queryIndexPage('gsi4', at.partition, {
          limit,
          startKey: at.key,
          skBelow: `${iso(now)}$`,
        });
        const grants = items.map(toGrant).filter((grant) => isReviewOverdue(grant, now));
        if (lastKey) return { grants, nextToken: encodeToken(at.partition, lastKey) };
        const next = partitions[partitions.indexOf(at.partition) + 1];
        if (!next) return { grants };
        if (grants.length) return { grants, nextToken: encodeToken(next, {}) };
        at = { partition: next, key: undefined };
      }
    },
  };
}
