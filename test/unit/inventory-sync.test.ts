import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { declarationHash, planSync } from '../../functions/core/inventory-sync.ts';
import type { StoredIdentity } from '../../functions/core/ports.ts';
import { identity } from '../support/fixtures.ts';

const digest = (text: string) => createHash('sha256').update(text).digest('hex');
const stored = (id: string, status: 'active' | 'retired' = 'active', over = {}): StoredIdentity => {
  const declared = identity({ id, ...over });
  return {
    identity: declared,
    status,
    declarationHash: declarationHash(declared, digest),
    rev: 1,
    syncedAt: 't',
  };
};

describe('inventory: planSync', () => {
  it('declares new ids, keeps unchanged ones, and retires the ones no longer in the file', () => {
    const plan = planSync(
      [stored('kept'), stored('dropped')],
      [identity({ id: 'kept' }), identity({ id: 'new' })],
      digest,
    );
    expect(plan.declared.map((i) => i.id)).toEqual(['new']);
    expect(plan.unchanged).toEqual(['kept']);
    expect(plan.retired.map((r) => r.identity.id)).toEqual(['dropped']);
    expect(plan.changed).toEqual([]);
  });

  it('sees a changed declaration and a revived retired identity as changes', () => {
    const plan = planSync(
      [stored('edited'), stored('back', 'retired')],
      [identity({ id: 'edited', owner: 'someone-else' }), identity({ id: 'back' })],
      digest,
    );
    expect(plan.changed.map((c) => c.after.id)).toEqual(['edited', 'back']);
  });

  it('does not retire an identity twice', () => {
    expect(planSync([stored('gone', 'retired')], [], digest).retired).toEqual([]);
  });
});
