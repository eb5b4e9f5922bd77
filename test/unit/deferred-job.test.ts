import { describe, expect, it } from 'vitest';
import { type DeferredJob, deferredJobMac, verifyDeferredJob } from '../../functions/api/deferred-jobs.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';

const secret = new SecretValue('signing-secret-for-tests');
const job: DeferredJob = {
  kind: 'decide',
  action: 'approve',
  grantId: 'bg-20261122t0100-0a1b2c3d',
  userId: 'U0BOB',
  responseUrl: 'https://hooks.slack.com/actions/T1/1/x',
};

describe('API: deferred Slack jobs (async self-invocation)', () => {
  it('runs a job whose MAC was made with the signing secret', () => {
    expect(verifyDeferredJob(secret, { keywardenDeferred: job, mac: deferredJobMac(secret, job) })).toEqual(
      job,
    );
  });

  it('refuses a forged job: another user, no MAC, or a MAC from another key', () => {
    const mac = deferredJobMac(secret, job);
    expect(() =>
      verifyDeferredJob(secret, { keywardenDeferred: { ...job, userId: 'U0MALLORY' }, mac }),
    ).toThrow('does not match');
    expect(() => verifyDeferredJob(secret, { keywardenDeferred: job })).toThrow('with its MAC');
    const other = deferredJobMac(new SecretValue('another-secret'), job);
    expect(() => verifyDeferredJob(secret, { keywardenDeferred: job, mac: other })).toThrow('does not match');
  });
});
