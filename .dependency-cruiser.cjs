/**
 * The layering rules, checked by `npm test` (`npm run deps`). Direction of dependencies:
 * handlers, cli, local → api → adapters → core; core imports only zod and itself;
 * infra reaches the functions through handler entry paths only.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'Import cycles (type imports included) make modules impossible to read or test alone.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-is-pure',
      severity: 'error',
      comment: 'functions/core imports only zod and itself: no SDK, no network, no node built-ins.',
      from: { path: '^functions/core/' },
      to: { pathNot: ['^functions/core/', '^node_modules/zod/'] },
    },
    {
      name: 'adapters-below-entry-points',
      severity: 'error',
      comment: 'Adapters never import handlers, the local runtime or the CLI.',
      from: { path: '^functions/adapters/' },
      to: { path: ['^functions/handlers/', '^functions/local/', '^cli/'] },
    },
    {
      name: 'api-above-adapters-and-core',
      severity: 'error',
      comment:
        'functions/api is the HTTP application layer: it may import core and adapters, and neither imports it back.',
      from: { path: ['^functions/adapters/', '^functions/core/'] },
      to: { path: '^functions/api/' },
    },
    {
      name: 'infra-through-entry-paths',
      severity: 'error',
      comment:
        'infra names handler entry paths only; it never imports core, adapters or handler code, except the contracts handlers publish for it (the environment, the revocation batch shape).',
      from: { path: '^infra/' },
      to: {
        path: ['^functions/', '^cli/'],
        pathNot: ['^functions/handlers/env\\.ts$', '^functions/handlers/revocation-batching\\.ts$'],
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['node_modules', 'cdk\\.out', '\\.venv'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
  },
};
