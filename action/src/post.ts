/**
 * The Action's post step (runs whether the job passed or failed): ends the credentials the main
 * step received, with a fresh OIDC token of the same job (`DELETE /ci/credentials/{id}`). A
 * failure only warns: the job-completion webhook and the credentials' own TTL still end them.
 */
import * as core from '@actions/core';
import { endCredentials, missingGithubIdToken, ACTION_STATE as STATE } from './exchange.ts';

async function run(): Promise<void> {
  const id = core.getState(STATE.id);
  if (!id) {
    core.info('keywarden: no credentials were issued in this job; nothing to end');
    return;
  }
  const url = core.getState(STATE.url) || core.getInput('url');
  const audience = core.getState(STATE.audience) || core.getInput('audience') || 'keywarden';
  try {
    const missing = missingGithubIdToken(process.env);
    if (missing) throw new Error(missing);
    const token = await core.getIDToken(audience);
    await endCredentials({ url, token, id });
    core.info(`keywarden: exchange ${id} ended`);
  } catch (error) {
    core.warning(
      `keywarden: could not end exchange ${id} (${error instanceof Error ? error.message : String(error)}); the job-completion webhook or the credentials' TTL ends them`,
    );
  }
}

await run();
