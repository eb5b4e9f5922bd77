import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  GENESIS_HASH,
  nextRecord,
  nextRecords,
  verifyChain,
} from '../../functions/core/audit.ts';

const digest = (text: string) => createHash('sha256').update(text).digest('hex');

const headOf = (records: AuditRecord[]) => {
  const last = records.at(-1);
  return last ? { seq: last.seq, hash: last.hash } : undefined;
};

describe('audit chain', () => {
  const chain = (length: number) => {
    const records: AuditRecord[] = [];
    for (let i = 0; i < length; i += 1) {
      records.push(
        nextRecord(
          headOf(records),
          { type: 'credential.issued', actor: 'a', subject: `s${i}`, details: { i } },
          { id: `id-${i + 1}`, at: '2026-11-01T00:00:00.000Z' },
          digest,
        ),
      );
    }
    return records;
  };

  it('links each record to the hash of the one before, from the genesis hash', () => {
    const records = chain(3);
    expect(records[0]?.prevHash).toBe(GENESIS_HASH);
    expect(records[1]?.prevHash).toBe(records[0]?.hash);
    expect(verifyChain(records, headOf(records), digest)).toEqual({ ok: true, checked: 3 });
  });

  it('accepts an empty log with no head', () => {
    expect(verifyChain([], undefined, digest)).toEqual({ ok: true, checked: 0 });
  });

  it('names an altered record', () => {
    const records = chain(4);
    const altered = records.map((r) => (r.seq === 2 ? { ...r, details: { i: 99 } } : r));
    expect(verifyChain(altered, headOf(records), digest)).toMatchObject({
      ok: false,
      problem: 'altered',
      seq: 2,
      id: 'id-2',
    });
  });

  it('names a rewritten record even when its own hash was recomputed', () => {
    const records = chain(4);
    const second = records[1] as AuditRecord;
    const rewritten = nextRecord(
      headOf(records.slice(0, 1)),
      { type: 'grant.approved', actor: 'mallory', subject: 'x' },
      { id: 'x', at: second.at },
      digest,
    );
    const forged = records.map((r) => (r.seq === 2 ? rewritten : r));
    expect(verifyChain(forged, headOf(records), digest)).toMatchObject({
      ok: false,
      problem: 'inserted',
      seq: 3,
    });
  });

  it('names a record removed from the middle', () => {
    const records = chain(4);
    expect(
      verifyChain(
        records.filter((r) => r.seq !== 3),
        headOf(records),
        digest,
      ),
    ).toMatchObject({
      ok: false,
      problem: 'removed',
      seq: 3,
    });
  });

  it('names records cut from the end using the head', () => {
    const records = chain(4);
    expect(verifyChain(records.slice(0, 2), headOf(records), digest)).toMatchObject({
      ok: false,
      problem: 'removed',
      seq: 3,
    });
  });

  it('accepts linked records after a lagging head: an append interrupted before it moved the head', () => {
    const records = chain(4);
    expect(verifyChain(records, headOf(records.slice(0, 3)), digest)).toEqual({ ok: true, checked: 4 });
  });

  it('names the record the head points to when its hash was recomputed', () => {
    const records = chain(3);
    const rewritten = records.map((r) =>
      r.seq === 3
        ? nextRecord(
            headOf(records.slice(0, 2)),
            { type: 'grant.approved', actor: 'm', subject: 'x' },
            { id: 'x', at: r.at },
            digest,
          )
        : r,
    );
    expect(verifyChain(rewritten, headOf(records), digest)).toMatchObject({
      ok: false,
      problem: 'altered',
      seq: 3,
    });
  });
});

describe('audit chain: a run of records written at once (one block item)', () => {
  const event = (i: number) => ({
    type: 'campaign.target' as const,
    actor: 'a',
    subject: `t${i}`,
    details: { i },
  });
  const meta = (i: number) => ({ id: `id-${i + 1}`, at: '2026-11-01T00:00:00.000Z' });

  it('gives exactly the records appended one by one: each event its own sequence number and hash', () => {
    const oneByOne: AuditRecord[] = [];
    for (let i = 0; i < 5; i += 1) oneByOne.push(nextRecord(headOf(oneByOne), event(i), meta(i), digest));

    const atOnce = nextRecords(undefined, [0, 1, 2, 3, 4].map(event), meta, digest);

    expect(atOnce).toEqual(oneByOne);
    expect(verifyChain(atOnce, headOf(atOnce), digest)).toEqual({ ok: true, checked: 5 });
  });

  it('continues after the head it is given, and a run after a run verifies as one chain', () => {
    const first = nextRecords(undefined, [0, 1].map(event), meta, digest);
    const second = nextRecords(headOf(first), [2, 3, 4].map(event), (i) => meta(i + 2), digest);

    expect(second.map((r) => r.seq)).toEqual([3, 4, 5]);
    expect(second[0]?.prevHash).toBe(first[1]?.hash);
    expect(verifyChain([...first, ...second], headOf(second), digest)).toEqual({ ok: true, checked: 5 });
  });

  it('still names one event altered or removed inside a run', () => {
    const records = nextRecords(undefined, [0, 1, 2, 3].map(event), meta, digest);
    const altered = records.map((r) => (r.seq === 2 ? { ...r, details: { i: 99 } } : r));
    const removed = records.filter((r) => r.seq !== 3);

    expect(verifyChain(altered, headOf(records), digest)).toMatchObject({
      ok: false,
      problem: 'altered',
      seq: 2,
    });
    expect(verifyChain(removed, headOf(records), digest)).toMatchObject({
      ok: false,
      problem: 'removed',
      seq: 3,
    });
  });
});
