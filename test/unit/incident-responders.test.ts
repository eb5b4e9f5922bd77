/**
 * Who may start an incident revocation campaign (core/grant.ts `assertIncidentResponder`,
 * core/breakglass.ts `authorizeCampaignStart`): the one check the API, the CLI and Slack
 * `/revoke` all make, and its audited refusal.
 */
import { describe, expect, it } from 'vitest';
import { authorizeCampaignStart } from '../../functions/core/breakglass.ts';
import {
  assertIncidentResponder,
  BreakglassConfigSchema,
  incidentResponders,
  type Principal,
  RefusalError,
} from '../../functions/core/grant.ts';
import { FixedClock } from '../support/fixtures.ts';
import { MemoryAuditLog } from '../support/memory-stores.ts';

const role = {
  id: 'prod-admin',
  description: 'prod',
  target: { type: 'aws-role', roleArn: 'arn:aws:iam::123456789012:role/breakglass/prod-admin' },
  maxDuration: '1h',
  approvers: {
    localUsers: ['bob'],
    slackUsers: ['U0BOB'],
    awsPrincipals: ['arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b/bob'],
  },
};
const people = [
  {
    name: 'carol',
    localUsers: ['carol'],
    slackUsers: ['U0CAROL'],
    awsPrincipals: ['arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Oncall_9f8e/carol'],
  },
];
const local = (id: string): Principal => ({ kind: 'local', id });
const slack = (id: string): Principal => ({ kind: 'slack', id });
const aws = (id: string): Principal => ({ kind: 'aws', id });
const allowed = (config: unknown, principal: Principal): boolean => {
  try {
    assertIncidentResponder(BreakglassConfigSchema.parse(config), principal);
    return true;
  } catch (error) {
    if (error instanceof RefusalError) return false;
    throw error;
  }
};

describe('incident responders: who may start a campaign', () => {
  it('are the declared principals of every channel, ARN patterns included', () => {
    const config = {
      incidentResponders: {
        localUsers: ['dave'],
        slackUsers: ['U0DAVE'],
        awsPrincipals: ['arn:aws:sts::123456789012:assumed-role/incident-responder/*'],
      },
    };
    expect(allowed(config, local('dave'))).toBe(true);
    expect(allowed(config, slack('U0DAVE'))).toBe(true);
    expect(allowed(config, aws('arn:aws:sts::123456789012:assumed-role/incident-responder/eve'))).toBe(true);
    expect(allowed(config, local('mallory'))).toBe(false);
    expect(allowed(config, slack('U0MALLORY'))).toBe(false);
    expect(allowed(config, aws('arn:aws:sts::123456789012:assumed-role/developer/dave'))).toBe(false);
  });

  it('are the approvers of the break-glass roles, on every channel, when none are declared', () => {
    const config = { roles: [role] };
    expect(incidentResponders(BreakglassConfigSchema.parse(config))).toMatchObject({
      localUsers: ['bob'],
      slackUsers: ['U0BOB'],
    });
    expect(allowed(config, local('bob'))).toBe(true);
    expect(allowed(config, slack('U0BOB'))).toBe(true);
    expect(allowed(config, aws(role.approvers.awsPrincipals[0] ?? ''))).toBe(true);
    expect(allowed(config, slack('U0ALICE'))).toBe(false);
    // Declared responders replace the default: bob is then no longer one.
    expect(allowed({ roles: [role], incidentResponders: { slackUsers: ['U0ALICE'] } }, local('bob'))).toBe(
      false,
    );
  });

  it('include a person of the directory named in `people`, through each of their principals', () => {
    const config = { people, incidentResponders: { people: ['carol'] } };
    expect(allowed(config, local('carol'))).toBe(true);
    expect(allowed(config, slack('U0CAROL'))).toBe(true);
    expect(allowed(config, aws(people[0]?.awsPrincipals[0] ?? ''))).toBe(true);
    expect(allowed(config, slack('U0BOB'))).toBe(false);
  });

  it('nobody, when there are neither responders nor roles', () => {
    expect(allowed({}, local('bob'))).toBe(false);
  });

  it('refuses with a message naming the principal and where responders are declared', () => {
    const config = BreakglassConfigSchema.parse({ incidentResponders: { localUsers: ['dave'] } });
    expect(() => assertIncidentResponder(config, slack('U0MALLORY'))).toThrow(
      /^slack:U0MALLORY may not start a revocation campaign: .* breakglass\.incidentResponders/,
    );
  });
});

describe('incident responders: authorizeCampaignStart', () => {
  it('audits a refusal as grant.refused (action start-campaign, subject the incident), then throws it', async () => {
    // prepare
    const audit = new MemoryAuditLog(new FixedClock(new Date('2026-06-01T09:00:00.000Z')));
    const config = BreakglassConfigSchema.parse({ incidentResponders: { slackUsers: ['U0BOB'] } });
    const deps = { config: async () => config, audit };

    // act
    await authorizeCampaignStart(deps, slack('U0BOB'), 'INC-42');
    const refused = authorizeCampaignStart(deps, slack('U0ALICE'), 'INC-42');

    // assess
    await expect(refused).rejects.toBeInstanceOf(RefusalError);
    const { records } = await audit.readAll();
    expect(records.map((r) => [r.type, r.actor, r.subject, r.details.action])).toEqual([
      ['grant.refused', 'slack:U0ALICE', 'INC-42', 'start-campaign'],
    ]);
    expect(String(records[0]?.details.reason)).toMatch(/may not start a revocation campaign/);
  });
});
