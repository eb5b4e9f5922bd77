/**
 * The one synth that bundles: every function of the stack is built by esbuild from its
 * handler, as `cdk deploy` would, and its asset holds the ESM bundle. The other infra
 * specs skip bundling (test/infra/keywarden-fixture.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { synthesizeKeywarden } from './keywarden-fixture.ts';

describe('bundling: every handler builds', () => {
  it('gives each Lambda function an asset holding its ESM bundle', () => {
    const { stack, template } = synthesizeKeywarden({ vaultAddr: 'https://vault.example.com' }, undefined, {
      bundle: true,
    });
    const assembly = (stack.node.root as App).synth();
    const keys = Object.values(template.findResources('AWS::Lambda::Function')).map(
      (fn) => (fn as { Properties: { Code: { S3Key?: string } } }).Properties.Code.S3Key ?? '',
    );
    const bundles = keys.filter((key) => key.endsWith('.zip')).map((key) => key.replace(/\.zip$/, ''));
    // discovery, scheduled + secret rotation, revocation plan/batch/report, api, grant expiry, sweeper
    expect(bundles.length).toBeGreaterThanOrEqual(9);
    for (const hash of bundles) {
      const bundle = join(assembly.directory, `asset.${hash}`, 'index.mjs');
      expect(existsSync(bundle), bundle).toBe(true);
    }
  });
});
