/**
 * Incident campaigns as the HTTP API serves them (`POST /campaigns`, Slack `/revoke`):
 * plan and store through the same path as the CLI, launch through the deployment's
 * launcher (the state machine in AWS, the local runner locally), read progress back.
 */
import {
  type CampaignPlanningDeps,
  type PlannedCampaign,
  planAndStoreCampaign,
} from '../adapters/campaign-launcher.ts';
import { summarize } from '../core/campaign.ts';
import type { CampaignProgress } from '../core/campaign-progress.ts';
import { slackResponders } from '../core/grant.ts';
import type { BreakglassConfigStore, CampaignLauncher, CampaignStore } from '../core/ports.ts';

/** Starting and reading incident campaigns: what the API's campaign routes and Slack `/revoke` call. */
export interface CampaignApi {
  /** Plans (and unless `dryRun`, stores and launches) a campaign; see planAndStoreCampaign. */
  start(
    input: { incident: string; selectors: string[]; reissue: boolean; dryRun: boolean },
    actor: string,
  ): Promise<PlannedCampaign>;
  status(campaignId: string): Promise<CampaignProgress | undefined>;
  /** The Slack users who may start a campaign from Slack. */
  slackResponders: () => Promise<readonly string[]>;
}

/** What the campaign routes read and write: planning, progress, and who may start one from Slack. */
export type CampaignApiDeps = CampaignPlanningDeps & {
  store: Pick<CampaignStore, 'getCampaign' | 'listTargets'>;
  breakglassStore: Pick<BreakglassConfigStore, 'getBreakglassConfig'>;
};

/** The campaigns of a deployment: its store, and its launcher (the state machine, or the local runner). */
export function campaignApi(services: CampaignApiDeps, launcher: CampaignLauncher): CampaignApi {
  return {
    start: async (input, actor) => {
      const planned = await planAndStoreCampaign(services, { ...input, actor });
      if (planned.status === 'stored') await launcher.launch(planned.campaign.campaignId);
      return planned;
    },
    status: async (campaignId) => {
      const campaign = await services.store.getCampaign(campaignId);
      if (!campaign) return undefined;
      return { campaign, counts: summarize(await services.store.listTargets(campaignId)) };
    },
    slackResponders: async () => slackResponders(await services.breakglassStore.getBreakglassConfig()),
  };
}
