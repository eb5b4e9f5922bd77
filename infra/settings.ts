/**
 * Validation of the settings several constructs share (Vault address, IAM path, secret name
 * prefix, schedule). Each check returns the value to use or throws an {@link InfraConfigError}
 * whose message starts with the construct that received it and names the value received.
 * These values end up in policy ARNs, so each check also keeps wildcards out.
 */
import { InfraConfigError } from './errors.ts';

/** An `https://` Vault/OpenBao address without credentials, or `''` (Vault not used). */
export function validateVaultAddr(owner: string, value: string | undefined): string {
  const trimmed = (value ?? '').trim();
  if (trimmed === '') return '';
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch (cause) {
    throw new InfraConfigError(
      `${owner}: vaultAddr must be an https:// URL such as 'https://vault.example.com:8200', or empty to skip Vault; received '${trimmed}'.`,
      { cause },
    );
  }
  // The token travels in a header: never in clear, and never with credentials baked into the URL.
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '') {
    const shown = url.username !== '' || url.password !== '' ? `${url.protocol}//***@${url.host}` : trimmed;
    throw new InfraConfigError(
      `${owner}: vaultAddr must be an https:// URL without credentials, such as 'https://vault.example.com:8200', or empty to skip Vault; received '${shown}'.`,
    );
  }
  return trimmed;
}

/** An IAM path: `/` or `/segment/…/`. */
export function validateIamPathPrefix(owner: string, value: string): string {
  // `*` and `?` would widen the policy's user ARN.
  if (!/^\/(?:[A-Za-z0-9_+=,.@-]+\/)*$/.test(value)) {
    throw new InfraConfigError(
      `${owner}: iamPathPrefix must be an IAM path such as '/' or '/ci/' (starts and ends with '/', no wildcards); received '${value}'.`,
    );
  }
  return value;
}

/** A non-empty Secrets Manager name prefix without wildcards. */
export function validateSecretNamePrefix(owner: string, value: string): string {
  // Non-empty: an empty prefix would cover every secret in the account.
  if (!/^[A-Za-z0-9/_+=.@-]+$/.test(value)) {
    throw new InfraConfigError(
      `${owner}: secretNamePrefix must be a non-empty Secrets Manager name prefix (letters, digits, /_+=.@-) such as 'ci/'; received '${value}'.`,
    );
  }
  return value;
}

/**
 * A recurring EventBridge Scheduler expression, `rate(…)` or `cron(…)`; one-time `at(…)` is refused.
 *
 * @param examples two valid expressions for the message, e.g. `['rate(6 hours)', 'cron(0 *\/6 * * ? *)']`
 */
export function validateRecurringSchedule(
  owner: string,
  value: unknown,
  examples: readonly [string, string],
): string {
  const rate = /^rate\((?:1 (?:minute|hour|day)|(?:[2-9]|[1-9]\d+) (?:minutes|hours|days))\)$/;
  const cron = /^cron\(\S+(?: \S+){5}\)$/;
  if (typeof value !== 'string' || !(rate.test(value) || cron.test(value))) {
    throw new InfraConfigError(
      `${owner}: schedule must be a recurring EventBridge Scheduler expression such as '${examples[0]}' or '${examples[1]}'; received ${JSON.stringify(value)}.`,
    );
  }
  return value;
}

/**
 * The IAM path of the roles break-glass grants may assume: `/segment/…/`, never `/`.
 *
 * Keywarden assumes these roles (`sts:AssumeRole`) and puts deny policies on them, so the path is
 * the boundary of what break-glass can reach.
 */
export function validateBreakglassRolePath(owner: string, value: string): string {
  // `*` and `?` would widen the policy's role ARN.
  if (!/^\/(?:[A-Za-z0-9_+=,.@-]+\/)*$/.test(value)) {
    throw new InfraConfigError(
      `${owner}: breakglassRolePath must be an IAM path such as '/breakglass/' (starts and ends with '/', no wildcards); received '${value}'.`,
    );
  }
  if (value === '/') {
    throw new InfraConfigError(
      `${owner}: breakglassRolePath '/' would let keywarden assume every IAM role in the account (admins and its own roles included) and put deny policies on them; put break-glass roles under a dedicated path such as '/breakglass/' and set keywarden:breakglassRolePath to it.`,
    );
  }
  return value;
}

/** The issuers a CI issuer setting may name by preset instead of by URL (their tokens' `iss`). */
export const CI_ISSUER_PRESETS = {
  github: 'https://token.actions.githubusercontent.com',
  gitlab: 'https://gitlab.com',
} as const;

/** A preset issuer: GitHub Actions, or GitLab.com (set `issuer` for GitLab self-managed). */
export type CiIssuerPreset = keyof typeof CI_ISSUER_PRESETS;

/**
 * One OIDC issuer the API's JWT authorizer trusts in front of the CI exchange routes, as a
 * deployment gives it (cdk context `keywarden:ciIssuers`, or the stack's props): the issuer's
 * `iss` and the audience its jobs request, both exactly as the inventory's `ci.issuers` entry
 * of the same name declares them.
 */
export interface CiIssuerSetting {
  /**
   * The issuer's name in the inventory (`ci.issuers[].name`); names its authorizer, and its routes
   * when it is not the first issuer listed. Lowercase letters, digits, `.`, `_`, `-`.
   *
   * @default the preset's name
   */
  readonly name?: string | undefined;
  /** `github` or `gitlab`: the issuer URL when `issuer` is absent. */
  readonly preset?: CiIssuerPreset | undefined;
  /**
   * The tokens' `iss`, exactly (an `https://` URL; API Gateway fetches
   * `<issuer>/.well-known/openid-configuration` from it).
   *
   * @default the preset's issuer
   */
  readonly issuer?: string | undefined;
  /** The `aud` the jobs request (GitHub: `core.getIDToken(audience)`; GitLab: `id_tokens.<name>.aud`). */
  readonly audience: string;
}

/** A validated {@link CiIssuerSetting}: every field resolved. */
export interface CiGateIssuer {
  readonly name: string;
  readonly issuer: string;
  readonly audience: string;
}

/** At most this many issuers: an HTTP API holds at most 10 authorizers. */
export const MAX_CI_ISSUERS = 10;

/**
 * The issuers of the CI exchange's JWT gate, validated: at least one, at most
 * {@link MAX_CI_ISSUERS}, names and issuers unique.
 *
 * @param value an array of {@link CiIssuerSetting}, or its JSON (as `-c keywarden:ciIssuers='[…]'` gives it)
 */
export function validateCiIssuers(owner: string, value: unknown): CiGateIssuer[] {
  const example = `[{"preset":"github","audience":"https://keywarden.example.com"}]`;
  const parsed = parseJsonSetting(owner, 'issuers', value, example);
  if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > MAX_CI_ISSUERS) {
    throw new InfraConfigError(
      `${owner}: issuers must list 1 to ${MAX_CI_ISSUERS} trusted CI issuers (an HTTP API holds at most 10 authorizers), such as ${example}; received ${shown(value)}.`,
    );
  }
  const issuers = parsed.map((entry: unknown, index) => validateCiIssuer(owner, `issuers[${index}]`, entry));
  for (const field of ['name', 'issuer'] as const) {
    const values = issuers.map((issuer) => issuer[field]);
    const twice = values.find((item, index) => values.indexOf(item) !== index);
    if (twice !== undefined) {
      throw new InfraConfigError(
        `${owner}: each trusted CI issuer must have its own ${field}; received '${twice}' twice.`,
      );
    }
  }
  return issuers;
}

function validateCiIssuer(owner: string, at: string, entry: unknown): CiGateIssuer {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new InfraConfigError(
      `${owner}: ${at} must be an object such as {"preset":"github","audience":"https://keywarden.example.com"}; received ${shown(entry)}.`,
    );
  }
  const { name, preset, issuer, audience, ...unknown } = entry as Record<string, unknown>;
  const extra = Object.keys(unknown);
  if (extra.length > 0) {
    throw new InfraConfigError(
      `${owner}: ${at} may have name, preset, issuer and audience only; received ${extra.map((key) => `'${key}'`).join(', ')}.`,
    );
  }
  if (preset !== undefined && !(typeof preset === 'string' && Object.hasOwn(CI_ISSUER_PRESETS, preset))) {
    throw new InfraConfigError(
      `${owner}: ${at}.preset must be one of ${Object.keys(CI_ISSUER_PRESETS).join(', ')}; received ${shown(preset)}.`,
    );
  }
  const presetName = preset as CiIssuerPreset | undefined;
  const url = issuer ?? (presetName === undefined ? undefined : CI_ISSUER_PRESETS[presetName]);
  if (url === undefined) {
    throw new InfraConfigError(
      `${owner}: ${at} must name its issuer URL (issuer) or a preset (${Object.keys(CI_ISSUER_PRESETS).join(', ')}); received neither.`,
    );
  }
  const resolvedName = name ?? presetName;
  if (typeof resolvedName !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(resolvedName)) {
    throw new InfraConfigError(
      `${owner}: ${at}.name must be the inventory's name of the issuer (lowercase letters, digits, '.', '_' or '-', at most 64) such as 'github'; received ${shown(resolvedName)}.`,
    );
  }
  if (typeof audience !== 'string' || audience.trim() === '' || audience.length > 256) {
    throw new InfraConfigError(
      `${owner}: ${at}.audience must be the audience the jobs request (1 to 256 characters) such as 'https://keywarden.example.com'; received ${shown(audience)}.`,
    );
  }
  return { name: resolvedName, issuer: validateIssuerUrl(owner, `${at}.issuer`, url), audience };
}

/**
 * An OIDC issuer URL API Gateway can check tokens against: `https://`, no credentials, no query,
 * no fragment. The `iss` match is exact, so it is kept as written (a trailing `/` matters).
 */
function validateIssuerUrl(owner: string, at: string, value: unknown): string {
  const expected = `${at} must be the https:// URL the tokens carry as 'iss', such as '${CI_ISSUER_PRESETS.github}'`;
  if (typeof value !== 'string') {
    throw new InfraConfigError(`${owner}: ${expected}; received ${shown(value)}.`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new InfraConfigError(`${owner}: ${expected}; received '${value}'.`, { cause });
  }
  if (url.username !== '' || url.password !== '') {
    throw new InfraConfigError(
      `${owner}: ${expected}, without credentials; received '${url.protocol}//***@${url.host}'.`,
    );
  }
  // API Gateway fetches the discovery document and keys over TLS only; a query or fragment is
  // never part of an issuer (OpenID Connect Discovery 1.0, section 2).
  if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '' || /\s/.test(value)) {
    throw new InfraConfigError(`${owner}: ${expected} (no query or fragment); received '${value}'.`);
  }
  return value;
}

/**
 * The IAM path of the roles CI job grants may assume (`sts:AssumeRole` with the job's
 * SourceIdentity) and deny (through the role-deny function): `/segment/…/`, never `/`.
 */
export function validateCiRolePath(owner: string, value: string): string {
  if (!/^\/(?:[A-Za-z0-9_+=,.@-]+\/)*$/.test(value)) {
    throw new InfraConfigError(
      `${owner}: rolePath must be an IAM path such as '/ci/' (starts and ends with '/', no wildcards); received '${value}'.`,
    );
  }
  if (value === '/') {
    throw new InfraConfigError(
      `${owner}: rolePath '/' would let keywarden assume every IAM role in the account for a CI job (admins and its own roles included) and put deny policies on them; put CI roles under a dedicated path such as '/ci/' and set keywarden:ciRolePath to it.`,
    );
  }
  return value;
}

/** At most this many log groups: each is a subscription filter and a Lambda permission in the stack. */
export const MAX_EXPOSURE_LOG_GROUPS = 50;

/**
 * The CloudWatch Logs log groups the exposure scanner subscribes to (cdk context
 * `keywarden:exposureLogGroups`, or the stack's props): names as CloudWatch Logs writes them
 * (1 to 512 of letters, digits, `.`, `-`, `_`, `/`, `#`; no wildcard), each once. An empty list
 * (or `''`) is valid and means no scanner.
 *
 * @param value an array of names, or its JSON (as `-c keywarden:exposureLogGroups='[…]'` gives it)
 */
export function validateExposureLogGroups(owner: string, value: unknown): string[] {
  const example = `["/aws/codebuild/deploy-app","/aws/lambda/ci-runner"]`;
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) return [];
  const parsed = parseJsonSetting(owner, 'logGroups', value, example);
  if (!Array.isArray(parsed) || parsed.length > MAX_EXPOSURE_LOG_GROUPS) {
    throw new InfraConfigError(
      `${owner}: logGroups must list at most ${MAX_EXPOSURE_LOG_GROUPS} CloudWatch Logs log group names, such as ${example}; received ${shown(value)}.`,
    );
  }
  const names = parsed.map((name: unknown, index) => {
    // A name ends up in the subscription's permission ARN: no wildcard may widen it.
    if (typeof name !== 'string' || !/^[A-Za-z0-9._/#-]{1,512}$/.test(name)) {
      throw new InfraConfigError(
        `${owner}: logGroups[${index}] must be a log group name (1 to 512 letters, digits, '.', '-', '_', '/' or '#'; no wildcard) such as '/aws/codebuild/deploy-app'; received ${shown(name)}.`,
      );
    }
    return name;
  });
  const twice = names.find((name, index) => names.indexOf(name) !== index);
  if (twice !== undefined) {
    throw new InfraConfigError(`${owner}: each log group may be listed once; received '${twice}' twice.`);
  }
  return names;
}

/** A setting given as a value, or as its JSON in a string (cdk context from the command line). */
function parseJsonSetting(owner: string, name: string, value: unknown, example: string): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch (cause) {
    throw new InfraConfigError(
      `${owner}: ${name} must be JSON such as ${example}; received ${shown(value)}.`,
      {
        cause,
      },
    );
  }
}

/** A received value for a message: JSON, cut at 200 characters. */
function shown(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
