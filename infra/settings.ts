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
