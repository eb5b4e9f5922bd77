/**
 * `keywarden ci`: what a pipeline on any runner runs to trade its job's OIDC token for the
 * short-lived credentials of a job grant, and to end them when the job is done.
 *
 *   eval "$(keywarden ci credentials --grant release-publish)"   # exports VAULT_*, AWS_*, KEYWARDEN_CI_ID
 *   keywarden ci end                                             # ends $KEYWARDEN_CI_ID
 *
 * These routes carry the job's OIDC token, not the operator's SigV4 signature or development
 * token, so cli/api-client.ts is not used: the requests go through action/src/exchange.ts, the
 * same code the GitHub Action runs. Credentials go to stdout only (for `eval`); messages and
 * errors go to stderr and never hold a token or a credential.
 */
import type { Command } from 'commander';
import {
  CiExchangeError,
  endCredentials,
  environmentOf,
  requestCredentials,
  requestGithubIdToken,
  shellExports,
} from '../../action/src/exchange.ts';
import { KeywardenError } from '../../functions/core/errors.ts';
import { readRuntime } from '../../functions/local/runtime-process.ts';
import { stateDir } from '../context.ts';
import { printJson, say } from '../output.ts';

/** Where GitLab's `id_tokens` (and other runners) put the job's token for the exchange. */
export const DEFAULT_TOKEN_ENV = 'KEYWARDEN_ID_TOKEN';
/**
 * The token `ci end` spends: a second `id_tokens` entry, since the exchange spent the first
 * (keywarden uses each `jti` once) and GitLab mints a job's tokens once, at its start.
 */
export const DEFAULT_END_TOKEN_ENV = 'KEYWARDEN_END_TOKEN';

interface TokenOptions {
  url?: string;
  tokenEnv?: string;
  audience: string;
}

/** keywarden's API base: `--url`, `KEYWARDEN_URL`, `KEYWARDEN_API_URL`, else the running local runtime. */
function apiBase(url: string | undefined): string {
  const base = url || process.env.KEYWARDEN_URL || process.env.KEYWARDEN_API_URL;
  if (base) return base;
  const runtime = readRuntime(stateDir());
  if (runtime) return runtime.url;
  throw new KeywardenError(
    "expected keywarden's API URL in --url or KEYWARDEN_URL (or a local runtime started by `keywarden dev up`), got none",
  );
}

/**
 * The job's OIDC token: from the variable `--token-env` names, or on GitHub Actions (no such
 * variable set) a fresh one from the runner's token service for `--audience`.
 */
async function jobToken(options: TokenOptions, fallbackEnv: string): Promise<string> {
  const name = options.tokenEnv ?? fallbackEnv;
  const fromEnv = process.env[name];
  if (fromEnv) return fromEnv;
  if (!options.tokenEnv && process.env.ACTIONS_ID_TOKEN_REQUEST_URL) {
    return requestGithubIdToken(process.env, options.audience);
  }
  throw new KeywardenError(
    `expected the job's OIDC token in $${name}, got none: on GitLab declare it under id_tokens (${name}: { aud: ${options.audience} }); on GitHub Actions give the job permissions: id-token: write and leave --token-env out`,
  );
}

/** keywarden's refusal as one line: its message names the claim, never the token. */
function failure(error: unknown): never {
  if (error instanceof CiExchangeError) {
    throw new KeywardenError(
      error.status === 0 ? error.message : `refused (HTTP ${error.status}, ${error.code}): ${error.message}`,
    );
  }
  throw error;
}

export function registerCi(program: Command): void {
  const ci = program
    .command('ci')
    .description(
      "a CI job's short-lived credentials from its OIDC token (any runner; GitHub: the action in action.yml)",
    );

  const common = (command: Command) =>
    command
      .option('--url <url>', "keywarden's API base URL (default: $KEYWARDEN_URL, or the local runtime)")
      .option('--audience <aud>', 'the audience of a token requested from GitHub Actions', 'keywarden');

  common(
    ci
      .command('credentials')
      .description(
        "exchange the job's OIDC token for a grant's credentials; prints `export NAME='…'` lines for eval (or JSON)",
      )
      .requiredOption('--grant <name>', 'the job grant (ci.grants in the inventory)')
      .option('--digest <sha256:…>', 'the artifact digest, for a grant behind an approval gate')
      .option('--format <format>', 'env (export lines for eval) or json', 'env')
      .option(
        '--token-env <var>',
        `the variable holding the job's OIDC token (default: ${DEFAULT_TOKEN_ENV})`,
      ),
  ).action(async (options: TokenOptions & { grant: string; digest?: string; format: string }) => {
    if (options.format !== 'env' && options.format !== 'json') {
      throw new KeywardenError(`expected --format env or json, got ${JSON.stringify(options.format)}`);
    }
    const url = apiBase(options.url);
    const token = await jobToken(options, DEFAULT_TOKEN_ENV);
    const credentials = await requestCredentials({
      url,
      token,
      grant: options.grant,
      artifactDigest: options.digest,
    }).catch(failure);
    if (options.format === 'json') {
      printJson(credentials);
    } else {
      process.stdout.write(`${shellExports(environmentOf(credentials))}\n`);
    }
    say(
      `keywarden: grant ${credentials.grant} issued until ${credentials.expiresAt} (exchange ${credentials.id}, correlation ${credentials.correlationId}); end it with: keywarden ci end ${credentials.id}`,
    );
  });

  common(
    ci
      .command('end')
      .description('end the credentials of an exchange early, with a fresh OIDC token of the same job')
      .argument('[id]', 'the exchange id (default: $KEYWARDEN_CI_ID)')
      .option(
        '--token-env <var>',
        `the variable holding a fresh OIDC token of the job (default: ${DEFAULT_END_TOKEN_ENV})`,
      ),
  ).action(async (id: string | undefined, options: TokenOptions) => {
    const exchangeId = id || process.env.KEYWARDEN_CI_ID;
    if (!exchangeId) {
      throw new KeywardenError(
        'expected the exchange id as an argument or in $KEYWARDEN_CI_ID (keywarden ci credentials exports it), got none',
      );
    }
    const url = apiBase(options.url);
    const token = await jobToken(options, DEFAULT_END_TOKEN_ENV);
    const ended = await endCredentials({ url, token, id: exchangeId }).catch(failure);
    say(`keywarden: exchange ${ended.id} ended`);
  });
}
