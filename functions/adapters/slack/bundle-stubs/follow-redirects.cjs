/**
 * `follow-redirects` as keywarden's bundles carry it (an esbuild alias, infra/bundling.ts
 * BUNDLE_ALIASES): transports that cannot send. axios sends through it only when a request may
 * follow redirects; `@slack/web-api` builds its axios with `maxRedirects: 0`, so axios sends
 * through Node's own `http` and `https`. A request that reached these would fail loudly.
 */
'use strict';

const unreached = () => {
  throw new Error(
    'keywarden bundles no redirect-following transport (follow-redirects): its Slack client follows no redirects (infra/bundling.ts BUNDLE_ALIASES)',
  );
};

module.exports = {
  http: { request: unreached, get: unreached },
  https: { request: unreached, get: unreached },
};
