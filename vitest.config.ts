import { defineConfig } from 'vitest/config';
import { longestFirst } from './test/support/sequencer.ts';

const stack = 'test/support/global-stack.ts';
/** The `keywarden` command bundled once per run for the specs that run it (see the file). */
const cli = 'test/support/global-cli.ts';

/**
 * The long spec files, in seconds of one full run from a fresh clone (2026-12-05, the two
 * cores shared with other jobs at load ~7): started first there, where vitest has no duration
 * cache to order by (test/support/sequencer.ts). Only their order matters.
 */
const expectedSeconds = {
  'integration:test/integration/campaign-scale.test.ts': 99,
  'e2e:test/e2e/runbook-rotation.test.ts': 76,
  // Its two passes run at once (it.concurrent): ~56 s alone, at load ~6.
  'integration:test/integration/api-fuzz.test.ts': 60,
  'integration:test/integration/campaign.test.ts': 64,
  'e2e:test/e2e/runbook-breakglass.test.ts': 51,
  'e2e:test/e2e/approvals.test.ts': 48,
  'e2e:test/e2e/runbook-compromised-pipeline.test.ts': 42,
  'integration:test/integration/rotation-faults.test.ts': 42,
  'infra:test/infra/bundling.test.ts': 41,
  'e2e:test/e2e/breakglass-slack.test.ts': 41,
  'e2e:test/e2e/breakglass-schedules-off.test.ts': 39,
  'e2e:test/e2e/scan.test.ts': 37,
  'integration:test/integration/rotation.test.ts': 36,
  'e2e:test/e2e/ci-cli.test.ts': 34,
  'e2e:test/e2e/demo.test.ts': 34,
  'e2e:test/e2e/ci-credentials.test.ts': 28,
  'e2e:test/e2e/unexpected-use.test.ts': 21,
  'integration:test/integration/rotation-handlers.test.ts': 19,
  'integration:test/integration/campaign-kill.test.ts': 17,
  'integration:test/integration/campaign-live.test.ts': 17,
  'integration:test/integration/revocation-runner.test.ts': 17,
  'integration:test/integration/slack-fuzz.test.ts': 14,
  'e2e:test/e2e/validate-ci.test.ts': 13,
  'integration:test/integration/fault-proxy.test.ts': 11,
};

export default defineConfig({
  test: {
    // Most spec files wait on servers (moto, dynalite, OpenBao, a local runtime) far more than
    // they compute, so on a 2-core machine three files at a time finish sooner than the
    // default one (cores - 1); files keep apart on the shared stack by their unique names.
    maxWorkers: 3,
    sequence: { sequencer: longestFirst(expectedSeconds) },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Pure code against in-memory ports: a worker runs file after file without importing
          // the same modules again (the unit project alone: 25 → 10 s of CPU, 23 → 10 s wall).
          isolate: false,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: [stack, cli],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: [cli],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'infra',
          include: ['test/infra/**/*.test.ts'],
          // One worker runs file after file without re-importing aws-cdk-lib (~15 s of import
          // each on a loaded machine) and shares the default synthesis (keywarden-fixture.ts).
          isolate: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
