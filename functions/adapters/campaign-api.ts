/**
 * Incident campaigns as the HTTP API serves them (`POST /campaigns`, Slack `/revoke`):
 * plan and store through the same path as the CLI, launch through the deployment's
 * launcher (the state machine in AWS, the local runner locally), read progress back.
 */
import { summarize } from '../core/campaign.ts';
import { slackResponders } from '../core/grant.ts';
import type { CampaignLauncher } from '../core/ports.ts';
import type { CampaignApi } from '../handlers/api.ts';
import { planAndStoreCampaign } from './campaign-launcher.ts';
import type { Services } from './wiring.ts';

export function campaignApi(services: Services, launcher: CampaignLauncher): CampaignApi {
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
