import { describe, expect, it } from 'vitest';
import { summarize } from '../../functions/core/campaign.ts';
import {
  type CampaignProgress,
  type CampaignProgressOptions,
  followCampaign,
} from '../../functions/core/campaign-progress.ts';
import type { StoredCampaign } from '../../functions/core/ports.ts';

const start = new Date('2026-11-21T10:00:00Z');

/** A clock that moves only when the poller sleeps: no timers, no server. */
function fakeTime() {
  let now = start.getTime();
  const slept: number[] = [];
  return {
    clock: { now: () => new Date(now) },
    sleep: async (ms: number) => {
      slept.push(ms);
      now += ms;
    },
    slept,
  };
}

const progress = (status: StoredCampaign['status']): CampaignProgress => ({
  campaign: {
    campaignId: 'INC-42-20261121T100000Z-3fa2',
    incident: 'INC-42',
    selectors: ['stage=deploy'],
    requestedBy: 'slack:U0BOB',
    createdAt: start.toISOString(),
    status,
    reissue: false,
    dryRun: false,
    counts: summarize([]),
    rev: 1,
  },
  counts: summarize([]),
});

/** Runs the poller over a scripted sequence of readings; the last one repeats. */
async function follow(readings: (CampaignProgress | undefined)[], options: CampaignProgressOptions) {
  const time = fakeTime();
  const posted: string[] = [];
  let read = 0;
  const end = await followCampaign(
    {
      clock: time.clock,
      sleep: time.sleep,
      status: async () => readings[Math.min(read++, readings.length - 1)],
      post: async ({ campaign }) => {
        posted.push(campaign.status);
      },
    },
    options,
  );
  return { end, posted, reads: read, slept: time.slept };
}

const options: CampaignProgressOptions = { everyMs: 30_000, deadlineMs: 25 * 60_000, interimPosts: 3 };

describe('campaign progress: followCampaign', () => {
  it('posts each reading of a running campaign, then its end, and stops there', async () => {
    const { end, posted, slept } = await follow(
      [progress('running'), progress('running'), progress('completed')],
      options,
    );

    expect(end).toBe('finished');
    expect(posted).toEqual(['running', 'running', 'completed']);
    expect(slept).toEqual([30_000, 30_000, 30_000]);
  });

  it('keeps reading past its budget of interim posts, and still posts the end', async () => {
    const running = Array.from({ length: 6 }, () => progress('running'));

    const { end, posted, reads } = await follow([...running, progress('failed')], options);

    expect(end).toBe('finished');
    expect(reads).toBe(7);
    expect(posted).toEqual(['running', 'running', 'running', 'failed']);
  });

  it('stops at the deadline when the campaign does not end, posting no more than the budget', async () => {
    const { end, posted, reads, slept } = await follow([progress('running')], {
      ...options,
      deadlineMs: 5 * 60_000,
    });

    expect(end).toBe('deadline');
    expect(reads).toBe(10);
    expect(slept.reduce((a, b) => a + b, 0)).toBe(5 * 60_000);
    expect(posted).toEqual(['running', 'running', 'running']);
  });

  it('stops without a post when the campaign is gone', async () => {
    const { end, posted } = await follow([progress('running'), undefined], options);

    expect(end).toBe('gone');
    expect(posted).toEqual(['running']);
  });

  it('reads nothing when the deadline has already passed', async () => {
    const { end, reads } = await follow([progress('completed')], { ...options, deadlineMs: 0 });

    expect(end).toBe('deadline');
    expect(reads).toBe(0);
  });
});
