/**
 * `form-data` as keywarden's bundles carry it (an esbuild alias, infra/bundling.ts
 * BUNDLE_ALIASES): a class that cannot be built. `@slack/web-api` builds a multipart body only
 * for a call carrying a Buffer or a stream (a file upload), and axios only for such a body;
 * keywarden's Slack calls (chat.postMessage) carry strings, sent URL-encoded. Leaving the real
 * one out drops it with combined-stream, asynckit, mime-types and get-intrinsic (~25 kB). An
 * upload would fail here, loudly, rather than send something else.
 */
'use strict';

class FormData {
  constructor() {
    throw new Error(
      'keywarden bundles no multipart form builder (form-data): its Slack calls upload no file (infra/bundling.ts BUNDLE_ALIASES)',
    );
  }
}

module.exports = FormData;
