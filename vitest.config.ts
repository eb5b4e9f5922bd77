import { defineConfig } from 'vitest/config';

const stack = 'test/support/global-stack.ts';
/** The `keywarden` command bundled once per run for the specs that run it (see the file). */
const cli = 'test/support/global-cli.ts';

export default defineConfig({
  test: {
    // Most spec files wait on servers (moto, dynalite, OpenBao, a local runtime) far more than
    // they compute, so on a 2-core machine three files at a time finish sooner than the
    // default one (cores - 1); files keep apart on the shared stack by their unique names.
    maxWorkers: 3,
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
