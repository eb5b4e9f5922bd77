/**
 * Incident campaigns as the HTTP API serves them (`POST /campaigns`, Slack `/revoke`):
 * check that the caller is an incident responder, plan and store through the same path as
 * the CLI, launch through the deployment's launcher (the state machine in AWS, the local
 * runner locally), read progress back.
 */
import {
  type CampaignPlanningDeps,
  type PlannedCampaign,
  planAndStoreCampaign,
} from '../adapters/campaign-launcher.ts';
import { authorizeCampaignStart, type BreakglassDeps } from '../core/breakglass.ts';
import { summarize } from '../core/campaign.ts';
import type { CampaignProgress } from '../core/campaign-progress.ts';
import type { Principal } from '../core/grant.ts';
import type { CampaignLauncher, CampaignStore } from '../core/ports.ts';

/** Starting and reading incident campaigns: what the API's campaign routes and Slack `/revoke` call. */
export interface CampaignApi {
  /**
   * Plans (and unless `dryRun`, stores and launches) a campaign; see planAndStoreCampaign.
   * Anything but a dry run is for incident responders only.
   *
   * @throws RefusalError (audited) when `principal` is not an incident responder.
   */
  start(
    input: { incident: string; selectors: string[]; reissue: boolean; dryRun: boolean },
    principal: Principal,
  ): Promise<PlannedCampaign>;
  /**
   * Whether `principal` may start a campaign for `incident` (Slack asks before it answers).
   *
   * @throws RefusalError (audited) when it may not.
   */
  authorize(principal: Principal, incident: string): Promise<void>;
  status(campaignId: string): Promise<CampaignProgress | undefined>;
}

/** What the campaign routes read and write: planning, progress, and who may start one. */
export type CampaignApiDeps = CampaignPlanningDeps & {
  store: Pick<CampaignStore, 'getCampaign' | 'listTargets'>;
  /** The inventory's `breakglass` section (the incident responders) and the audit log for refusals. */
  breakglassDeps: Pick<BreakglassDeps, 'config' | 'audit'>;
};

/** The campaigns of a deployment: its store, and its launcher (the state machine, or the local runner). */
export function campaignApi(services: CampaignApiDeps, launcher: CampaignLauncher): CampaignApi {
  const authorize = (principal: Principal, incident: string) =>
    authorizeCampaignStart(services.breakglassDeps, principal, incident);
  return {
    start: async (input, principal) => {
      if (!input.dryRun) await authorize(principal, input.incident);
      const planned = await planAndStoreCampaign(services, {
        ...input,
        actor: `${principal.kind}:${principal.id}`,
      });
      if (planned.status === 'stored') await launcher.launch(planned.campaign.campaignId);
      return planned;
    },
    authorize,
    status: async (campaignId) => {
      const campaign = await services.store.getCampaign(campaignId);
      if (!campaign) return undefined;
      return { campaign, counts: summarize(await services.store.listTargets(campaignId)) };
    },
  };
}
