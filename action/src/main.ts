/**
 * The Action's main step: the job's OIDC token for its grant's credentials, masked before
 * anything else is written, exported to the job's later steps, and the exchange id saved for
 * the post step (which ends them). A refusal fails the step with keywarden's message, which
 * names the claim that did not match (never the token).
 */
import * as core from '@actions/core';
import {
  CiExchangeError,
  environmentOf,
  missingGithubIdToken,
  requestCredentials,
  ACTION_STATE as STATE,
  secretsOf,
} from './exchange.ts';

/** `export` defaults to true; GitHub passes the action.yml default, a bare `node` run passes nothing. */
function exportInput(): boolean {
  return core.getInput('export') === '' ? true : core.getBooleanInput('export');
}

async function run(): Promise<void> {
  const url = core.getInput('url', { required: true });
  const grant = core.getInput('grant', { required: true });
  const artifactDigest = core.getInput('artifact-digest') || undefined;
  const audience = core.getInput('audience') || 'keywarden';
  const exportEnv = exportInput();

  const missing = missingGithubIdToken(process.env);
  if (missing) throw new Error(missing);
  // getIDToken masks the token itself.
  const token = await core.getIDToken(audience);
  const credentials = await requestCredentials({ url, token, grant, artifactDigest });

  // Masks first: nothing below may reach the log before the runner knows what to hide.
  for (const secret of secretsOf(credentials)) core.setSecret(secret);
  // Then what the post step needs, so a failure below still ends the credentials.
  core.saveState(STATE.id, credentials.id);
  core.saveState(STATE.url, url);
  core.saveState(STATE.audience, audience);

  core.setOutput('id', credentials.id);
  core.setOutput('correlation-id', credentials.correlationId);
  core.setOutput('expires-at', credentials.expiresAt);
  if (credentials.vault) {
    if (credentials.vault.addr) core.setOutput('vault-addr', credentials.vault.addr);
    core.setOutput('vault-token', credentials.vault.token);
    core.setOutput('vault-accessor', credentials.vault.accessor);
  }
  if (credentials.aws) {
    core.setOutput('aws-access-key-id', credentials.aws.accessKeyId);
    core.setOutput('aws-secret-access-key', credentials.aws.secretAccessKey);
    core.setOutput('aws-session-token', credentials.aws.sessionToken);
    core.setOutput('aws-region', credentials.aws.region);
  }
  if (exportEnv) {
    for (const [name, value] of Object.entries(environmentOf(credentials))) core.exportVariable(name, value);
  }

  const issued = [
    ...(credentials.vault ? [`a Vault token (accessor ${credentials.vault.accessor})`] : []),
    ...(credentials.aws ? [`an AWS session in ${credentials.aws.region}`] : []),
  ].join(' and ');
  core.info(
    `keywarden: grant ${credentials.grant} issued ${issued || 'nothing'} until ${credentials.expiresAt} (exchange ${credentials.id}, correlation ${credentials.correlationId})${exportEnv ? '; exported to the job' : ''}; the post step ends them`,
  );
}

run().catch((error: unknown) => {
  const message =
    error instanceof CiExchangeError
      ? `keywarden refused the exchange: ${error.message}`
      : `keywarden: ${error instanceof Error ? error.message : String(error)}`;
  core.setFailed(message);
});
