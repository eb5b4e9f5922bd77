/**
 * What Slack's deliveries do once through the gate (slack-gate.ts). Slack waits 3 seconds:
 * `/breakglass` is answered at once (one conditional write), `/approve` too (one read: the
 * gate's approvers; it posts the request with its Approve button); button clicks and
 * `/revoke` are acknowledged at once and done after, through `defer`, by {@link runDeferred},
 * with the outcome posted to the `response_url`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../adapters/composition.ts';
import {
  parseApproveCommand,
  parseArtifactApproval,
  parseBreakglassCommand,
  parseInteraction,
  parseRevokeCommand,
  parseSlashCommand,
} from '../adapters/slack/commands.ts';
import {
  artifactApprovalRequestedMessage,
  artifactApprovedMessage,
  campaignProgressMessage,
  campaignStartedMessage,
  grantDecidedMessage,
  grantRequestedMessage,
  noticeMessage,
  refusalMessage,
  type SlackMessage,
} from '../adapters/slack/messages.ts';
import type { SlackThreadPoster } from '../adapters/slack/web-api-poster.ts';
import * as breakglass from '../core/breakglass.ts';
import { followCampaign } from '../core/campaign-progress.ts';
import { approve as approveArtifact, gateApprovers } from '../core/ci-approval.ts';
import { KeywardenError, NotFoundError, ValidationError } from '../core/errors.ts';
import { type Principal, RefusalError } from '../core/grant.ts';
import { approvalsOf } from './ci-approvals.ts';
import type { DeferredJob } from './deferred-jobs.ts';
import { type ApiDeps, breakglassOf, campaignsOf } from './deps.ts';
import { type ApiEvent, type ApiResult, emptyAnswer, json, view, viewCampaign } from './responses.ts';
import { slackGate } from './slack-gate.ts';

/**
 * Progress posts of a running campaign before its end: a `response_url` takes 5 posts in
 * 30 minutes, one goes to "started" and one is kept for the end.
 */
const INTERIM_PROGRESS_POSTS = 3;

/** Progress posts of a running campaign in its thread: a thread has no budget, a channel's patience has. */
const INTERIM_THREAD_POSTS = 12;

const slackMessage = (message: SlackMessage): ApiResult => json(200, message);

/** What a deferred job runs on: the API's dependencies, and the bot's poster when a bot token is set. */
export type DeferredDeps = ApiDeps & {
  /** Posts `/revoke` progress as a thread in the channel; without it, to the response_url. */
  thread?: SlackThreadPoster | undefined;
};

/** `POST /slack/commands`: `/breakglass` answered at once, `/revoke` deferred. */
export async function slackCommand(deps: ApiDeps, event: ApiEvent): Promise<ApiResult> {
  const gate = await slackGate(deps, event, 'slack:commands');
  if ('statusCode' in gate) return gate;
  const { slack, body } = gate;
  let command: ReturnType<typeof parseSlashCommand>;
  try {
    command = parseSlashCommand(body);
  } catch (error) {
    return slackMessage(refusalMessage((error as Error).message));
  }
  const requester: Principal = {
    kind: 'slack',
    id: command.userId,
    ...(command.userName ? { name: command.userName } : {}),
  };
  try {
    if (command.command === '/breakglass') {
      const input = parseBreakglassCommand(command.text);
      const grants = breakglassOf(deps);
      const grant = await breakglass.request(grants, requester, input);
      const role = breakglass.roleById(await grants.config(), grant.roleId);
      return slackMessage(grantRequestedMessage(view(grant), role));
    }
    if (command.command === '/revoke') {
      const input = parseRevokeCommand(command.text);
      // Answered at once, before anything is planned; a refusal is audited there.
      await campaignsOf(deps).authorize(requester, input.incident);
      await slack.defer({
        kind: 'revoke',
        ...input,
        userId: command.userId,
        responseUrl: command.responseUrl,
        channelId: command.channelId,
      });
      return slackMessage(
        noticeMessage(`Planning the revocation for ${input.incident}… progress follows in this channel.`),
      );
    }
    if (command.command === '/approve') {
      const input = parseApproveCommand(command.text);
      // Asking approves nothing; a gate nobody may approve is said at once.
      gateApprovers(await approvalsOf(deps).gates(), input.gate, input.environment);
      return slackMessage(artifactApprovalRequestedMessage(input, command.userId));
    }
    throw new ValidationError(`expected /breakglass, /revoke or /approve, got ${command.command}`);
  } catch (error) {
    // `/revoke`'s refusal was audited by the responder check itself; `/approve` only asks.
    if (error instanceof RefusalError && command.command !== '/revoke' && command.command !== '/approve') {
      await breakglassOf(deps).audit.append({
        type: 'grant.refused',
        actor: `slack:${command.userId}`,
        subject: command.command,
        details: { action: 'slack-command', reason: error.message },
      });
    }
    if (error instanceof RefusalError || error instanceof ValidationError || error instanceof NotFoundError) {
      return slackMessage(refusalMessage(error.message));
    }
    throw error;
  }
}

/** `POST /slack/interactions`: a button click, acknowledged at once and decided after. */
export async function slackInteraction(deps: ApiDeps, event: ApiEvent): Promise<ApiResult> {
  const gate = await slackGate(deps, event, 'slack:interactions');
  if ('statusCode' in gate) return gate;
  const { slack, body } = gate;
  let action: ReturnType<typeof parseInteraction>;
  try {
    const artifact = parseArtifactApproval(body);
    if (artifact) {
      const { userName: _name, ...job } = artifact;
      await slack.defer({ kind: 'approve-artifact', ...job });
      return emptyAnswer();
    }
    action = parseInteraction(body);
  } catch (error) {
    return slackMessage(refusalMessage((error as Error).message));
  }
  await slack.defer({
    kind: 'decide',
    action: action.action,
    grantId: action.grantId,
    userId: action.userId,
    responseUrl: action.responseUrl,
  });
  return emptyAnswer();
}

/**
 * Where a `/revoke` job's messages go: a thread under the first one (Web API, bot token), or
 * the response_url when there is no bot, no channel, or the first post fails (the bot is not
 * in the channel): the responder is told either way.
 */
function progressChannel(
  deps: DeferredDeps,
  slack: NonNullable<ApiDeps['slack']>,
  job: DeferredJob & { kind: 'revoke' },
): { post: (message: SlackMessage) => Promise<void>; threaded: () => boolean } {
  const thread = deps.thread;
  const channel = job.channelId;
  let threadTs: string | undefined;
  let fallback = thread === undefined || channel === undefined;
  const log = deps.log ?? console.error;
  return {
    threaded: () => !fallback,
    post: async (message) => {
      if (!fallback && thread && channel) {
        try {
          const ts = await thread.post(channel, message, threadTs);
          threadTs ??= ts;
          return;
        } catch (error) {
          if (threadTs !== undefined) throw error;
          // The first post failed: fall back for the whole job, so nothing is split over two places.
          log(`slack thread post failed, using response_url: ${(error as Error).message}`);
          fallback = true;
        }
      }
      await slack.respond(job.responseUrl, message);
    },
  };
}

/** A deferred job, run after Slack got its answer; its outcome goes to Slack (see {@link progressChannel}). */
export async function runDeferred(deps: DeferredDeps, job: DeferredJob): Promise<void> {
  const slack = deps.slack;
  if (!slack) throw new KeywardenError('a deferred Slack job arrived but Slack is not configured');
  const principal: Principal = { kind: 'slack', id: job.userId };
  try {
    if (job.kind === 'decide') {
      const grants = breakglassOf(deps);
      const grant =
        job.action === 'approve'
          ? await breakglass.approve(grants, principal, job.grantId)
          : await breakglass.deny(grants, principal, job.grantId);
      const role = breakglass.roleById(await grants.config(), grant.roleId);
      await slack.respond(job.responseUrl, {
        ...grantDecidedMessage(view(grant), role),
        replace_original: true,
      });
      return;
    }
    if (job.kind === 'approve-artifact') {
      const { digest, gate, environment } = job;
      const approval = await approveArtifact(approvalsOf(deps), principal, { digest, gate, environment });
      await slack.respond(job.responseUrl, { ...artifactApprovedMessage(approval), replace_original: true });
      return;
    }
    const campaigns = campaignsOf(deps);
    const out = progressChannel(deps, slack, job);
    const planned = await campaigns.start(
      { incident: job.incident, selectors: job.selectors, reissue: job.reissue, dryRun: false },
      principal,
    );
    if (planned.status !== 'stored') {
      await slack.respond(
        job.responseUrl,
        noticeMessage(`Nothing to revoke for ${job.incident}: the selectors match no live credential.`),
      );
      return;
    }
    const { campaignId } = planned.campaign;
    await out.post(campaignStartedMessage(viewCampaign(planned.campaign), planned.summary.counts));
    await followCampaign(
      {
        clock: systemClock,
        sleep: (ms) => sleep(ms),
        status: () => campaigns.status(campaignId),
        post: ({ campaign, counts }) => out.post(campaignProgressMessage(viewCampaign(campaign), counts)),
      },
      {
        everyMs: deps.progress?.everyMs ?? 30_000,
        deadlineMs: deps.progress?.deadlineMs ?? 25 * 60_000,
        interimPosts: out.threaded() ? INTERIM_THREAD_POSTS : INTERIM_PROGRESS_POSTS,
      },
    );
  } catch (error) {
    const message =
      error instanceof KeywardenError ? error.message : 'keywarden failed; the function log has the cause';
    await slack.respond(job.responseUrl, refusalMessage(message));
    if (!(error instanceof KeywardenError)) throw error;
  }
}
