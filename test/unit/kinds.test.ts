import { describe, expect, it } from 'vitest';
import { canReissue } from '../../functions/core/campaign.ts';
import { rotationBlocker } from '../../functions/core/kinds.ts';
import { dueReason } from '../../functions/core/rotation.ts';
import { identity } from '../support/fixtures.ts';

const delivery = { type: 'vault-kv', path: 'ci/app/token' };

describe('kinds: which identities keywarden rotates and re-issues', () => {
  it('rotates a vault-token whose tokens it issues itself (policies)', () => {
    const token = identity({ id: 'issued', kind: 'vault-token', delivery });
    expect(rotationBlocker(token)).toBeUndefined();
    expect(canReissue(token)).toBe(true);
    expect(dueReason(token, [], new Date())).toBe('never rotated by keywarden');
  });

  it('never rotates or re-issues a vault-token declared only by what exists (accessor, role, prefix)', () => {
    for (const scope of [
      { accessor: 'acc-1' },
      { tokenRole: 'ci-deploy' },
      { displayNamePrefix: 'jenkins-' },
    ]) {
      const token = identity({ id: 'existing', kind: 'vault-token', scope, delivery });
      expect(rotationBlocker(token)).toMatch(
        /cannot issue their successor \(add scope\.policies to rotate it\)/,
      );
      expect(canReissue(token)).toBe(false);
      expect(dueReason(token, [], new Date())).toBeUndefined();
    }
  });

  it('never rotates the kinds issued per grant or lease', () => {
    for (const kind of ['aws-role-session', 'vault-lease'] as const) {
      expect(rotationBlocker(identity({ id: kind, kind }))).toBe(
        `${kind} credentials are issued per grant or lease and end by their TTL`,
      );
    }
  });
});
