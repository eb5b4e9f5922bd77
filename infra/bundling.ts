import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { type NodejsFunctionProps, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { NagSuppressions } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/** The repository root: the esbuild project root and where the lock file lives. */
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/**
 * The links of the AWS SDK's default credential chain a Lambda function never reaches, left out
 * of every bundle (~100 kB: nested SSO, STS and sign-in clients, the container and instance
 * metadata providers). Lambda puts the execution role's credentials in the function's
 * environment, the chain's first link (`fromEnv`); the SDK loads each later link with a dynamic
 * `import()` only when the links before it found nothing. The last link, `remoteProvider` in
 * `@aws-sdk/credential-provider-node`, is the only importer of the metadata providers
 * (`@smithy/credential-provider-imds`, and `@aws-sdk/credential-provider-http` for a container
 * endpoint), and imports them dynamically too; the region resolver in `@smithy/core` asks the
 * instance metadata with its own request, not through them. A static import of any of these
 * would fail the module's import: `npm run bench:bundles` imports every bundle.
 */
export const UNREACHED_CREDENTIAL_PROVIDERS = [
  '@aws-sdk/credential-provider-sso',
  '@aws-sdk/credential-provider-ini',
  '@aws-sdk/credential-provider-process',
  '@aws-sdk/credential-provider-web-identity',
  '@smithy/credential-provider-imds',
  '@aws-sdk/credential-provider-http',
] as const;

/**
 * The AWS SDK's event-stream serde (`@smithy/core/event-streams`: the codec, its header
 * marshaller and the serde, ~15 kB), left out of every bundle. An operation whose input or output
 * streams events (S3 SelectObjectContent, CloudWatch Logs StartLiveTail, Bedrock's streaming
 * calls) loads it, and the SDK's HTTP protocol imports it with a dynamic `import()` only for such
 * an operation; keywarden calls none (DynamoDB, IAM, STS, Secrets Manager, KMS, Step Functions,
 * SNS, the scheduler: each call one request, one answer). Only the S3 client's runtime config
 * imports it statically, and no function carries the S3 client (s3-put-object.ts is a signed
 * `fetch`). Like {@link UNREACHED_CREDENTIAL_PROVIDERS}, a static import of it would fail the
 * module's import, which `npm run bench:bundles` and the bundling spec do for every bundle.
 */
export const UNREACHED_SDK_MODULES = ['@smithy/core/event-streams'] as const;

/**
 * Packages every bundle takes from elsewhere (esbuild `--alias`, resolved from the repository
 * root), by the package they replace.
 *
 * What `@slack/web-api`'s tree holds that its client never reaches as keywarden builds it
 * (web-api-poster.ts) is replaced by a stub that fails loudly if it ever were
 * (`functions/adapters/slack/bundle-stubs/`), ~40 kB of the Slack worker and the exposure scanner:
 * - `form-data` (with combined-stream, asynckit, mime-types and get-intrinsic's dozen packages):
 *   the client builds a multipart body only for a call carrying a Buffer or a stream, a file
 *   upload; keywarden's calls carry strings, sent URL-encoded (so neither is `mime-db`, 133 kB of
 *   JSON, which `mime-types` loads for an upload's content type);
 * - `follow-redirects`: the client's axios is built with `maxRedirects: 0`, so it sends through
 *   Node's own `http` and `https`;
 * - `https-proxy-agent` (with agent-base and debug): the client's axios is built with
 *   `proxy: false` (a proxy would go in the client's `agent` option), so it tunnels nothing.
 *
 * `eventemitter3` is one copy: `p-queue` 6 asks for 4.x and `@slack/web-api` for 5.x, which has
 * the same CommonJS API (5.0 only added an ES module entry).
 *
 * test/infra/slack-bundle-stubs.test.ts posts through the bundled client.
 */
export const BUNDLE_ALIASES = {
  'form-data': './functions/adapters/slack/bundle-stubs/form-data.cjs',
  'follow-redirects': './functions/adapters/slack/bundle-stubs/follow-redirects.cjs',
  'https-proxy-agent': './functions/adapters/slack/bundle-stubs/https-proxy-agent.cjs',
  eventemitter3: './node_modules/eventemitter3/index.js',
} as const;

/**
 * How every keywarden handler is built and run: the ESM bundle of one file under
 * `functions/handlers/`, on nodejs22.x and arm64. Infra depends on the entry path only, never
 * on the handler's code. A bundle holds only what its handler reaches: the package declares no
 * import side effects (`"sideEffects": false` in package.json), so esbuild drops every module
 * and composition part (functions/adapters/composition.ts) the handler does not use;
 * `npm run bench:bundles` prints each bundle's size and import time.
 *
 * @param handlerFile file name under `functions/handlers/`, e.g. `'discovery.ts'`; it must
 *   export `handler`.
 */
export function handlerBundle(
  handlerFile: string,
): Required<
  Pick<
    NodejsFunctionProps,
    'entry' | 'handler' | 'projectRoot' | 'depsLockFilePath' | 'runtime' | 'architecture' | 'bundling'
  >
> {
  return {
    entry: join(REPO_ROOT, 'functions', 'handlers', handlerFile),
    handler: 'handler',
    projectRoot: REPO_ROOT,
    depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    bundling: {
      format: OutputFormat.ESM,
      minify: true,
      sourceMap: true,
      // The maps point into the repository's sources; carrying the sources too would triple them
      // (2.3 → 0.75 MB for grant expiry), and Node parses the whole map at import when the
      // function runs with --enable-source-maps (~10 ms of every cold start).
      sourcesContent: false,
      target: 'node22',
      mainFields: ['module', 'main'],
      // ESM output has no `require`, but bundled CommonJS dependencies still use it for Node built-ins.
      banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
      // Ship the SDK version the code is tested with, not whatever the runtime carries that day.
      bundleAwsSDK: true,
      externalModules: [...UNREACHED_CREDENTIAL_PROVIDERS, ...UNREACHED_SDK_MODULES],
      esbuildArgs: {
        '--alias': Object.entries(BUNDLE_ALIASES).map(([name, path]) => `${name}=${path}`),
      },
    },
  };
}

/**
 * Records why a function built with {@link handlerBundle} is not on the newest Lambda runtime
 * (cdk-nag `AwsSolutions-L1`).
 */
export function suppressPinnedRuntime(fn: IConstruct): void {
  NagSuppressions.addResourceSuppressions(fn, [
    {
      id: 'AwsSolutions-L1',
      reason:
        'nodejs22.x is pinned on purpose: it is the Node.js LTS the handlers are bundled for (esbuild target node22) and tested against. Moving to a newer runtime is a deliberate upgrade of runtime, bundle target and tests together.',
    },
  ]);
}
