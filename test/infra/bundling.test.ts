/**
 * The one synth that bundles: every function of the stack is built by esbuild from its
 * handler, as `cdk deploy` would, and its asset holds the ESM bundle. The other infra
 * specs skip bundling (test/infra/keywarden-fixture.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { App } from 'aws-cdk-lib';
import { beforeAll, describe, expect, it } from 'vitest';
import { handlerAssets } from '../../bench/bundles.ts';
import { synthesizeKeywarden } from './keywarden-fixture.ts';

/** Issue #12's target for every handler bundle, minified. */
const TARGET_KB = 400;

/**
 * The functions still above the target, pinned a few percent above their size when the
 * composition per handler landed, so that none grows back. What keeps each above: the bundled
 * AWS SDK's core (~200 kB) and zod (~100 kB) are in every bundle; S3 (~110 kB) in discovery and
 * revocation; Lambda (~70 kB, the role-deny calls) in break-glass, the API and revocation;
 * `@slack/web-api` with axios (~300 kB) in the Slack worker.
 */
const CEILING_KB: Readonly<Record<string, number>> = {
  'Rotation/Scheduled': 560,
  'Rotation/SecretRotation': 560,
  'BreakGlass/Expiry': 600,
  'BreakGlass/Sweeper': 600,
  Discovery: 665,
  'Api/SlackIngress': 675,
  'Api/Handler': 700,
  'Revocation/Plan': 805,
  'Api/SlackWorker': 1040,
};

describe('bundling: every handler builds, and stays lean', () => {
  let directory = '';
  let keys: string[] = [];

  beforeAll(() => {
    const { stack, template } = synthesizeKeywarden({ vaultAddr: 'https://vault.example.com' }, undefined, {
      bundle: true,
    });
    directory = (stack.node.root as App).synth().directory;
    keys = Object.values(template.findResources('AWS::Lambda::Function')).map(
      (fn) => (fn as { Properties: { Code: { S3Key?: string } } }).Properties.Code.S3Key ?? '',
    );
  });

  it('gives each Lambda function an asset holding its ESM bundle', () => {
    const bundles = keys.filter((key) => key.endsWith('.zip')).map((key) => key.replace(/\.zip$/, ''));
    // discovery, scheduled + secret rotation, revocation plan/batch/report, api, grant expiry, sweeper
    expect(bundles.length).toBeGreaterThanOrEqual(9);
    for (const hash of bundles) {
      const bundle = join(directory, `asset.${hash}`, 'index.mjs');
      expect(existsSync(bundle), bundle).toBe(true);
    }
  });

  it(`keeps each bundle within ${TARGET_KB} kB minified, or under its pinned ceiling while above it`, () => {
    const sizes = [...handlerAssets(directory)].map(([file, functions]) => ({
      functions,
      kb: statSync(file).size / 1024,
      // Functions sharing an asset (the revocation steps) share the ceiling pinned under any of them.
      ceiling: functions.map((name) => CEILING_KB[name]).find((kb) => kb !== undefined) ?? TARGET_KB,
    }));
    expect(sizes.length).toBeGreaterThanOrEqual(9);
    for (const { functions, kb, ceiling } of sizes) {
      expect(kb, `${functions.join(', ')}: ${kb.toFixed(1)} kB`).toBeLessThanOrEqual(ceiling);
    }
  });
});
