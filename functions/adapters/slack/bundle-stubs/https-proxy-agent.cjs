/**
 * `https-proxy-agent` as keywarden's bundles carry it (an esbuild alias, infra/bundling.ts
 * BUNDLE_ALIASES): an agent that cannot be built. axios tunnels through it only to a proxy
 * (its `proxy` option, or HTTPS_PROXY); `@slack/web-api` builds its axios with `proxy: false`
 * (a proxy goes in its `agent` option), so axios never builds one, and `instanceof` against
 * this constructor is false for any agent. Leaving the real one out drops it with agent-base
 * and debug.
 */
'use strict';

function HttpsProxyAgent() {
  throw new Error(
    'keywarden bundles no proxy tunnel (https-proxy-agent): its Slack client is given no proxy (infra/bundling.ts BUNDLE_ALIASES)',
  );
}

module.exports = HttpsProxyAgent;
