/**
 * Following a running campaign for a responder: read its status every so often and post
 * it, within a budget of interim posts, until it ends or a deadline passes. Pure: the
 * clock, the wait, the reading and the posting are injected (Slack's `/revoke` posts to a
 * `response_url`; a test passes a fake clock and no server).
 */
import type { CampaignCounts } from './campaign.ts';
import type { Clock, StoredCampaign } from './ports.ts';

/** A campaign as it stands, with the counts of its targets by outcome. */
export interface CampaignProgress {
  campaign: StoredCampaign;
  counts: CampaignCounts;
}

export interface CampaignProgressDeps {
  clock: Clock;
  /** Waits `ms` milliseconds (a timer in production, a clock advance in a test). */
  sleep: (ms: number) => Promise<void>;
  /** The campaign now; `undefined` when it is gone. */
  status: () => Promise<CampaignProgress | undefined>;
  /** Tells the responder. */
  post: (progress: CampaignProgress) => Promise<void>;
}

export interface CampaignProgressOptions {
  /** The wait before each reading. */
  everyMs: number;
  /** No reading starts once this long has passed since the start. */
  deadlineMs: number;
  /**
   * How many readings of a campaign still running are posted; later ones are not, so the
   * post of its end always fits in the channel's budget.
   */
  interimPosts: number;
}

/** Why following stopped. */
export type CampaignProgressEnd = 'finished' | 'gone' | 'deadline';

const isFinished = ({ campaign }: CampaignProgress): boolean =>
  campaign.status === 'completed' || campaign.status === 'failed';

/**
 * Reads the campaign every `everyMs` until it ends (its end is always posted), it is gone,
 * or `deadlineMs` has passed; posts at most `interimPosts` readings before the end.
 */
export async function followCampaign(
  deps: CampaignProgressDeps,
  options: CampaignProgressOptions,
): Promise<CampaignProgressEnd> {
  const deadline = deps.clock.now().getTime() + options.deadlineMs;
  let interim = 0;
  while (deps.clock.now().getTime() < deadline) {
    await deps.sleep(options.everyMs);
    const progress = await deps.status();
    if (!progress) return 'gone';
    if (isFinished(progress)) {
      await deps.post(progress);
      return 'finished';
    }
    if (interim < options.interimPosts) {
      await deps.post(progress);
      interim++;
    }
  }
  return 'deadline';
}
