import { defineConfig } from 'vitest/config';
import { longestFirst } from './test/support/sequencer.ts';

const stack = 'test/support/global-stack.ts';
/** The `keywarden` command bundled once per run for the specs that run it (see the file). */
const cli = 'test/support/global-cli.ts';

/**
 * The long spec files, in seconds of one full run (2026-12-05, on the two cores at load ~15,
 * so only their order matters): started first on a fresh clone, where vitest has no duration
 * cache to order by (test/support/sequencer.ts).
 */
const expectedSeconds = {
  'integration:test/integration/campaign-scale.test.ts': 565,
  'e2e:test/e2e/runbook-rotation.test.ts': 340,
  'integration:test/integration/campaign.test.ts': 335,
  'integration:test/integration/api-fuzz.test.ts': 300,
  'e2e:test/e2e/approvals.test.ts': 220,
  'integration:test/integration/rotation.test.ts': 170,
  'e2e:test/e2e/runbook-breakglass.test.ts': 160,
  'e2e:test/e2e/demo.test.ts': 160,
  'integration:test/integration/rotation-faults.test.ts': 155,
  'e2e:test/e2e/ci-credentials.test.ts': 130,
  'integration:test/integration/campaign-live.test.ts': 120,
  'e2e:test/e2e/ci-cli.test.ts': 110,
  'e2e:test/e2e/breakglass-slack.test.ts': 90,
  'e2e:test/e2e/scan.test.ts': 80,
  'e2e:test/e2e/runbook-compromised-pipeline.test.ts': 70,
  'integration:test/integration/revocation-runner.test.ts': 55,
  'e2e:test/e2e/breakglass-schedules-off.test.ts': 55,
  'e2e:test/e2e/validate.test.ts': 50,
  'integration:test/integration/rotation-handlers.test.ts': 45,
  'integration:test/integration/secret-templates.test.ts': 30,
  'integration:test/integration/breakglass-bounds.test.ts': 30,
  'integration:test/integration/campaign-kill.test.ts': 25,
  'e2e:test/e2e/unexpected-use.test.ts': 25,
  'integration:test/integration/slack-fuzz.test.ts': 20,
  'integration:test/integration/discovery-handler.test.ts': 20,
  // Bundles every handler; the other infra files share one import and synthesis per worker.
  'infra:test/infra/bundling.test.ts': 140,
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
