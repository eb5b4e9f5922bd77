/**
 * The per-grant report (core/grant-report-of.ts) reads the audit trail from the grant's request
 * on, never the whole trail: the API serves it within API Gateway's 29 seconds however long the
 * trail has grown.
 */
import { describe, expect, it } from 'vitest';
import { type Grant, GrantSchema, type Principal } from '../../functions/core/grant.ts';
import { grantReportOf } from '../../functions/core/grant-report-of.ts';
import { breakglassRole, breakglassSectionOf, FixedClock } from '../support/fixtures.ts';
import { MemoryAuditLog, MemoryGrantStore } from '../support/memory-stores.ts';

const alice: Principal = { kind: 'local', id: 'alice', name: 'alice' };

const grant = (requestedAt: string): Grant =>
  GrantSchema.parse({
    grantId: 'g-1',
    roleId: 'prod-read',
    requester: alice,
    reason: 'read the failed job logs',
    incident: 'INC-42',
    duration: '30m',
    state: 'requested',
    requestedAt,
    approvals: [],
  });

describe('grant report', () => {
  it("reads the audit trail from the grant's request on, not the records before it", async () => {
    // prepare: a day of older records (one about the same grant id, of an earlier deployment's
    // grant), then the grant's request.
    const clock = new FixedClock(new Date('2026-11-20T10:00:00.000Z'));
    const log = new MemoryAuditLog(clock);
    await log.append({ type: 'grant.requested', actor: 'local:bob', subject: 'g-1', details: {} });
    for (let n = 0; n < 5; n += 1) {
      await log.append({ type: 'grant.requested', actor: 'local:bob', subject: `g-old-${n}`, details: {} });
    }
    clock.set('2026-11-21T10:00:00.000Z');
    await log.append({ type: 'grant.requested', actor: 'local:alice', subject: 'g-1', details: {} });
    const grants = new MemoryGrantStore();
    await grants.putGrant(grant('2026-11-21T10:00:00.000Z'), undefined);
    const asked: string[] = [];

    // act
    const { report } = await grantReportOf(
      {
        grants,
        config: breakglassSectionOf(
          breakglassRole('prod-read', { type: 'vault-policies', policies: ['read'] }),
        ),
        audit: {
          recordsSince: (at) => {
            asked.push(at);
            return log.recordsSince(at);
          },
        },
        clock,
      },
      'g-1',
    );

    // assess: one tail read from the request; the timeline holds the grant's own record only.
    expect(asked).toEqual(['2026-11-21T10:00:00.000Z']);
    expect(report.timeline.map((event) => [event.at, event.actor])).toEqual([
      ['2026-11-21T10:00:00.000Z', 'local:alice'],
    ]);
  });
});
