/**
 * CI job credentials, as use cases: a job's OIDC token is exchanged for short-lived,
 * step-scoped credentials under a job grant of the inventory's `ci` section (ci-policy.ts),
 * and they end when the job ends — by the job's own post step ({@link endExchange}), by a
 * platform webhook ({@link endJob}), or by their TTL ({@link sweepCi}).
 *
 * Every outcome is its own audit event sharing the job's correlation id as subject:
 * `ci.credentials.issued`, `.used`, `.ended`, `.refused`. A refusal names the reason and the
 * claim that did not match; no event, error or record ever holds a token.
 */
import type { AuditEventInput } from './audit.ts';
import {
  type CiConfig,
  type CiGrant,
  CiRefusalError,
  type CiRefusalReason,
  DigestSchema,
  type GateRequirement,
  jobOf,
  resolveIssuer,
  unmatchedClaim,
} from './ci-policy.ts';
import type { CiCredentialRecord, CiEnding } from './ci-records.ts';
import { NotFoundError, ValidationError } from './errors.ts';
import type {
  AuditLog,
  CiAwsIssuer,
  CiCredentialStore,
  CiTokenVerifier,
  CiVaultIssuer,
  Clock,
  StoredCiCredential,
  VerifiedCiToken,
} from './ports.ts';
import type { SecretValue } from './secret-value.ts';

/** Whether a gate lets a digest through for a job: the approval's id, or why not. */
export type GateVerdict = { ok: true; approvalId: string } | { ok: false; reason: string };

export interface CiExchangeDeps {
  /** The `ci` section as last synced from the inventory (undefined: CI credentials are off). */
  config: () => Promise<CiConfig | undefined>;
  verifier: CiTokenVerifier;
  store: CiCredentialStore;
  /** Undefined where the deployment has no Vault / no AWS issuing: a grant needing it is refused clearly. */
  vault: CiVaultIssuer | undefined;
  aws: CiAwsIssuer | undefined;
  /** Checks a gate on a digest for a job's actor (ci-approval.ts through the ledger and the signer). */
  gate: (requirement: GateRequirement, digest: string, actor: string | undefined) => Promise<GateVerdict>;
  audit: AuditLog;
  clock: Clock;
  newId: () => string;
}

/** The credentials an exchange bought: the only place their values exist, until the answer is sent. */
export interface IssuedCiCredentials {
  record: CiCredentialRecord;
  vault?: { token: SecretValue; accessor: string; expiresAt: string };
  aws?: { credentials: SecretValue; expiresAt: string };
}

/** The longest a refusal's audit record quotes a caller's text. */
const clip = (text: string, max = 200): string => (text.length <= max ? text : `${text.slice(0, max)}…`);

/** The bearer token of an `Authorization` header, or a refusal saying what was expected. */
export function bearerOf(header: string | undefined): string {
  const match = header === undefined ? null : /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim());
  if (!match?.[1]) {
    throw new CiRefusalError(
      'token-invalid',
      "expected `Authorization: Bearer <the job's OIDC token>`, got " +
        (header === undefined ? 'no Authorization header' : 'a header of another form'),
    );
  }
  return match[1];
}

/**
 * The synced `ci` section; with `issuer` (a route of one issuer, `/ci/issuers/<name>/…`, each
 * behind its own JWT authorizer in AWS), only that issuer is trusted for the request.
 */
async function configOf(deps: Pick<CiExchangeDeps, 'config'>, issuer?: string): Promise<CiConfig> {
  const config = await deps.config();
  if (!config || config.issuers.length === 0) {
    throw new NotFoundError(
      'CI job credentials are not configured here: declare ci.issuers and ci.grants in the inventory and sync it',
    );
  }
  if (issuer === undefined) return config;
  const issuers = config.issuers.filter((i) => i.name === issuer);
  if (issuers.length === 0) {
    throw new NotFoundError(
      `no CI issuer ${JSON.stringify(clip(issuer, 64))}; the trusted issuers are: ${config.issuers.map((i) => i.name).join(', ')}`,
    );
  }
  return { ...config, issuers };
}

/** Verifies a token against the trusted issuers, auditing a refusal (never the token) before it reaches the caller. */
/**
 * The oldest token that may end its own job's credentials. Ending gives nothing away, and
 * GitLab mints a job's ID tokens once, when the job starts: its `after_script` presents a token
 * as old as the job, so the end takes any unexpired token of the job up to this age.
 */
export const END_TOKEN_MAX_AGE_SECONDS = 24 * 3_600;

async function verified(
  deps: Pick<CiExchangeDeps, 'verifier' | 'audit'>,
  config: CiConfig,
  token: string,
  doing: { action: string; grant?: string; id?: string },
): Promise<VerifiedCiToken> {
  const issuers = config.issuers
    .map(resolveIssuer)
    .map((issuer) =>
      doing.action === 'end'
        ? { ...issuer, maxTokenAgeSeconds: Math.max(issuer.maxTokenAgeSeconds, END_TOKEN_MAX_AGE_SECONDS) }
        : issuer,
    );
  try {
    return await deps.verifier.verify(token, issuers);
  } catch (error) {
    if (error instanceof CiRefusalError) await auditRefusal(deps, undefined, error, doing);
    throw error;
  }
}

async function auditRefusal(
  deps: Pick<CiExchangeDeps, 'audit'>,
  token: VerifiedCiToken | undefined,
  error: CiRefusalError,
  doing: { action: string; grant?: string; id?: string },
): Promise<void> {
  const job = token ? jobOf(token.issuer, token.claims) : undefined;
  await deps.audit.append({
    type: 'ci.credentials.refused',
    actor: job ? `ci:${job.key}` : 'ci:unverified',
    subject: job?.correlationId ?? 'ci:unverified',
    details: {
      action: doing.action,
      reason: error.reason,
      ...(error.claim ? { claim: error.claim } : {}),
      message: clip(error.message, 1_000),
      ...(doing.grant ? { grant: clip(doing.grant, 64) } : {}),
      ...(doing.id ? { exchangeId: clip(doing.id, 128) } : {}),
      ...(token
        ? { issuer: token.issuer.name, jobIds: job?.ids, ...(job?.actor ? { jobActor: job.actor } : {}) }
        : {}),
    },
  });
}

/** Throws an audited refusal. */
async function refuse(
  deps: Pick<CiExchangeDeps, 'audit'>,
  token: VerifiedCiToken,
  doing: { action: string; grant?: string; id?: string },
  reason: CiRefusalReason,
  message: string,
  claim?: string,
): Promise<never> {
  const error = new CiRefusalError(reason, message, claim === undefined ? {} : { claim });
  await auditRefusal(deps, token, error, doing);
  throw error;
}

/**
 * Spends the token's `jti` (a conditional write: of two racing requests with one token, exactly
 * one goes on), kept until the token has expired; a spent one is an audited `replayed` refusal.
 */
async function spendOnce(
  deps: Pick<CiExchangeDeps, 'store' | 'audit'>,
  token: VerifiedCiToken,
  doing: { action: string; grant?: string; id?: string },
  message: string,
): Promise<void> {
  const keepUntil = new Date(token.expiresAt.getTime() + token.issuer.clockSkewSeconds * 1_000);
  if (!(await deps.store.spendJti(token.issuer.issuer, token.jti, keepUntil))) {
    await refuse(deps, token, doing, 'replayed', message, 'jti');
  }
}

/** The grant a request names, for the token's issuer, whose claims the token satisfies — or an audited refusal. */
async function grantFor(
  deps: Pick<CiExchangeDeps, 'audit'>,
  config: CiConfig,
  token: VerifiedCiToken,
  name: string,
): Promise<CiGrant> {
  const doing = { action: 'exchange', grant: name };
  const grant = config.grants.find((g) => g.name === name);
  if (!grant) {
    return refuse(
      deps,
      token,
      doing,
      'grant-unknown',
      `expected the name of a declared CI grant, got ${JSON.stringify(clip(name, 64))}`,
    );
  }
  if (grant.issuer !== token.issuer.name) {
    return refuse(
      deps,
      token,
      doing,
      'claim-mismatch',
      `grant ${grant.name}: expected a token from issuer ${grant.issuer}, got one from ${token.issuer.name}`,
      'iss',
    );
  }
  const miss = unmatchedClaim(grant, token.claims);
  if (miss) {
    const got = token.claims[miss.claim];
    return refuse(
      deps,
      token,
      doing,
      'claim-mismatch',
      `grant ${grant.name}: expected claim ${miss.claim} to be ${miss.expected}, got ${got === undefined ? 'no such claim' : JSON.stringify(clip(String(got), 120))}`,
      miss.claim,
    );
  }
  return grant;
}

/** The exchange request's body, checked. */
export interface ExchangeRequest {
  grant: string;
  artifactDigest?: string | undefined;
  /** Trust only this issuer (its own route); default: every trusted issuer. */
  issuer?: string | undefined;
}

/**
 * Exchanges a job's OIDC token for the credentials of one grant. In order: the token verifies
 * (issuer allowlist, signature, audience, algorithm, times, age); its `jti` was never exchanged
 * (a conditional write: a replayed token is refused even when two race); the grant exists for
 * that issuer and every claim matcher holds; a gated grant names a digest whose approval holds
 * for this job; then Vault and/or AWS issue, and the exchange is recorded. A failure after
 * something was issued ends what was issued: nothing is left half-done.
 */
export async function exchange(
  deps: CiExchangeDeps,
  token: string,
  request: ExchangeRequest,
): Promise<IssuedCiCredentials> {
  const config = await configOf(deps, request.issuer);
  const verifiedToken = await verified(deps, config, token, { action: 'exchange', grant: request.grant });
  const doing = { action: 'exchange', grant: request.grant };
  await spendOnce(
    deps,
    verifiedToken,
    doing,
    'expected a token never exchanged before, got one whose jti was already used: request a fresh OIDC token',
  );
  const grant = await grantFor(deps, config, verifiedToken, request.grant);
  const job = jobOf(verifiedToken.issuer, verifiedToken.claims);
  let approvalId: string | undefined;
  if (grant.gate) {
    const digest = DigestSchema.safeParse(request.artifactDigest);
    if (!digest.success) {
      await refuse(
        deps,
        verifiedToken,
        doing,
        'gate',
        `grant ${grant.name} needs an approval of the artifact for gate ${grant.gate.gate} in ${grant.gate.environment}: expected artifactDigest as sha256:<64 hex digits>, got ${request.artifactDigest === undefined ? 'none' : 'another form'}`,
      );
    }
    const verdict = await deps.gate(grant.gate, request.artifactDigest as string, job.actor);
    if (!verdict.ok) {
      await refuse(
        deps,
        verifiedToken,
        doing,
        'gate',
        `grant ${grant.name}: expected a valid ${grant.gate.gate} approval of ${request.artifactDigest} in ${grant.gate.environment}; ${verdict.reason}`,
      );
    } else approvalId = verdict.approvalId;
  }
  if (grant.vault && !deps.vault) {
    throw new ValidationError(
      `grant ${grant.name} issues a Vault token, but this deployment has no Vault configured`,
    );
  }
  if (grant.aws && !deps.aws) {
    throw new ValidationError(`grant ${grant.name} issues an AWS session, but this deployment issues none`);
  }

  const now = deps.clock.now();
  const exchangeId = deps.newId();
  const issued: Omit<IssuedCiCredentials, 'record'> = {};
  const ask = { exchangeId, grant: grant.name, job, now };
  let aws: { expiresAt: string; sourceIdentity: string; sessionName: string } | undefined;
  try {
    if (grant.vault && deps.vault) issued.vault = await deps.vault.issue({ ...ask, vault: grant.vault });
    if (grant.aws && deps.aws) {
      const session = await deps.aws.issue({ ...ask, aws: grant.aws });
      issued.aws = { credentials: session.credentials, expiresAt: session.expiresAt };
      aws = session;
    }
  } catch (error) {
    // Nothing half-done: a Vault token issued before the AWS session failed ends now.
    if (issued.vault && deps.vault) await deps.vault.revoke(issued.vault.accessor).catch(() => undefined);
    throw error;
  }
  const ends = [issued.vault?.expiresAt, aws?.expiresAt].filter((at): at is string => at !== undefined);
  const record: CiCredentialRecord = {
    id: exchangeId,
    grant: grant.name,
    issuer: verifiedToken.issuer.name,
    jobKey: job.key,
    correlationId: job.correlationId,
    ...(job.actor ? { actor: job.actor } : {}),
    jobIds: job.ids,
    ...(grant.gate ? { digest: request.artifactDigest as string } : {}),
    issuedAt: now.toISOString(),
    expiresAt: ends.sort().at(-1) as string, // the later end (ISO times sort as text)
    ...(issued.vault
      ? { vault: { accessor: issued.vault.accessor, expiresAt: issued.vault.expiresAt } }
      : {}),
    ...(aws && grant.aws
      ? {
          aws: {
            roleArn: grant.aws.roleArn,
            sourceIdentity: aws.sourceIdentity,
            sessionName: aws.sessionName,
            expiresAt: aws.expiresAt,
            denied: false,
            released: false,
          },
        }
      : {}),
    state: 'active',
    usedRecorded: false,
  };
  try {
    await deps.store.putCredential(record, undefined);
  } catch (error) {
    // Unrecorded credentials could not be ended by the job or a webhook: end them now.
    await endIssued(deps, record);
    throw error;
  }
  await deps.audit.append({
    type: 'ci.credentials.issued',
    actor: `ci:${job.key}`,
    subject: job.correlationId,
    details: {
      exchangeId,
      grant: grant.name,
      stage: grant.stage,
      issuer: record.issuer,
      jobIds: job.ids,
      ...(job.actor ? { jobActor: job.actor } : {}),
      ...(record.digest ? { digest: record.digest, approvalId } : {}),
      ...(record.vault
        ? { vaultAccessor: record.vault.accessor, vaultExpiresAt: record.vault.expiresAt }
        : {}),
      ...(record.aws
        ? {
            roleArn: record.aws.roleArn,
            sourceIdentity: record.aws.sourceIdentity,
            awsExpiresAt: record.aws.expiresAt,
          }
        : {}),
    },
  });
  return { ...issued, record };
}

/** Ends what a record's credentials hold in the providers (Vault token revoked; AWS sessions denied). */
async function endIssued(
  deps: Pick<CiExchangeDeps, 'vault' | 'aws' | 'clock'>,
  record: CiCredentialRecord,
): Promise<CiCredentialRecord> {
  const now = deps.clock.now().toISOString();
  if (record.vault && record.vault.expiresAt > now) {
    if (!deps.vault) throw new ValidationError('ending a CI Vault token needs Vault configured here');
    await deps.vault.revoke(record.vault.accessor);
  }
  if (record.aws && record.aws.expiresAt > now && !record.aws.denied) {
    if (!deps.aws) throw new ValidationError('ending a CI AWS session needs AWS issuing configured here');
    await deps.aws.end({ roleArn: record.aws.roleArn, sourceIdentity: record.aws.sourceIdentity });
    return { ...record, aws: { ...record.aws, denied: true } };
  }
  return record;
}

/** Ends one exchange's credentials and records it; an exchange already ended is answered as it is. */
async function endRecord(
  deps: Pick<CiExchangeDeps, 'vault' | 'aws' | 'clock' | 'store' | 'audit'>,
  stored: StoredCiCredential,
  by: CiEnding,
  actor: string,
): Promise<CiCredentialRecord> {
  if (stored.state === 'ended') return stored;
  const { rev, ...record } = stored;
  const ended = await endIssued(deps, record);
  const at = deps.clock.now().toISOString();
  const next: CiCredentialRecord = { ...ended, state: 'ended', ended: { at, by } };
  await deps.store.putCredential(next, rev);
  await deps.audit.append(endedEvent(next, by, actor));
  return next;
}

const endedEvent = (record: CiCredentialRecord, by: CiEnding, actor: string): AuditEventInput => ({
  type: 'ci.credentials.ended',
  actor,
  subject: record.correlationId,
  details: {
    exchangeId: record.id,
    grant: record.grant,
    by,
    jobIds: record.jobIds,
    ...(record.vault ? { vaultAccessor: record.vault.accessor } : {}),
    ...(record.aws
      ? { roleArn: record.aws.roleArn, sourceIdentity: record.aws.sourceIdentity, denied: record.aws.denied }
      : {}),
  },
});

/**
 * Ends an exchange early, asked by the job itself with a fresh token of the same job (its own
 * `jti`, spent like any other): a token of another job, even one the grant would match, is refused.
 */
export async function endExchange(
  deps: CiExchangeDeps,
  token: string,
  id: string,
  issuer?: string,
): Promise<CiCredentialRecord> {
  const config = await configOf(deps, issuer);
  const doing = { action: 'end', id };
  const verifiedToken = await verified(deps, config, token, doing);
  await spendOnce(
    deps,
    verifiedToken,
    doing,
    'expected a fresh OIDC token of the job, got one whose jti was already used',
  );
  const stored = await deps.store.getCredential(id);
  const job = jobOf(verifiedToken.issuer, verifiedToken.claims);
  if (!stored) throw new NotFoundError(`no CI credentials ${JSON.stringify(clip(id, 128))}`);
  if (stored.jobKey !== job.key) {
    await refuse(
      deps,
      verifiedToken,
      doing,
      'not-same-job',
      `expected a token of the job that received ${id}, got a token of another job`,
    );
  }
  return endRecord(deps, stored, 'job', `ci:${job.key}`);
}

/**
 * Ends every credential of a job (a platform's job-completed webhook): the ids are the job
 * claims' values as the webhook names them, matched under each trusted issuer of that platform.
 */
export async function endJob(
  deps: Pick<CiExchangeDeps, 'vault' | 'aws' | 'clock' | 'store' | 'audit' | 'config'>,
  platform: 'github' | 'gitlab',
  ids: Record<string, string>,
): Promise<{ ended: number }> {
  const config = await deps.config();
  let ended = 0;
  for (const issuer of (config?.issuers ?? []).filter((i) => i.preset === platform).map(resolveIssuer)) {
    const { key } = jobOf(issuer, ids);
    for (const stored of await deps.store.listByJob(key)) {
      if (stored.state === 'ended') continue;
      await endRecord(deps, stored, 'webhook', `webhook:${platform}`);
      ended += 1;
    }
  }
  return { ended };
}

/**
 * The third guarantee: exchanges whose TTL has passed are recorded as ended (their credentials
 * ended by themselves), and a deny put on a role for an early end is removed once the sessions
 * it covers are dead (a role's inline policies share 10 KB).
 */
export async function sweepCi(
  deps: Pick<CiExchangeDeps, 'aws' | 'clock' | 'store' | 'audit'>,
): Promise<{ expired: number; released: number; failed: number }> {
  const now = deps.clock.now();
  let expired = 0;
  let released = 0;
  let failed = 0;
  for (const stored of await deps.store.listDue(now)) {
    const { rev, ...record } = stored;
    try {
      if (record.state === 'active') {
        const next: CiCredentialRecord = {
          ...record,
          state: 'ended',
          ended: { at: now.toISOString(), by: 'ttl' },
        };
        await deps.store.putCredential(next, rev);
        await deps.audit.append(endedEvent(next, 'ttl', 'keywarden:ci-sweeper'));
        expired += 1;
      } else if (record.aws?.denied && !record.aws.released && deps.aws) {
        await deps.aws.release({ roleArn: record.aws.roleArn, sourceIdentity: record.aws.sourceIdentity });
        await deps.store.putCredential({ ...record, aws: { ...record.aws, released: true } }, rev);
        released += 1;
      }
    } catch {
      // The next sweep tries again; one record never stops the others.
      failed += 1;
    }
  }
  return { expired, released, failed };
}

/** A use of a CI credential seen in a provider's trail. */
export interface CiUse {
  at: string;
  /** What was done: a Vault path and operation, or an AWS API call. */
  what: string;
  from?: string | undefined;
}

/**
 * Records `ci.credentials.used` once per exchange, with the first use and the count seen, from
 * a trail: OpenBao's audit device by accessor (`usage`), or CloudTrail by SourceIdentity.
 */
export async function recordUse(
  deps: Pick<CiExchangeDeps, 'store' | 'audit'>,
  trail: {
    vault?: (accessors: readonly string[]) => Promise<(CiUse & { accessor: string })[]>;
    aws?: { sourceIdentity: string; uses: CiUse[] };
  },
): Promise<{ recorded: number }> {
  const unused = await deps.store.listUnused();
  const usesOf = new Map<string, CiUse[]>();
  if (trail.vault) {
    const accessors = unused.flatMap((r) => (r.vault ? [r.vault.accessor] : []));
    if (accessors.length > 0) {
      for (const use of await trail.vault(accessors)) {
        const record = unused.find((r) => r.vault?.accessor === use.accessor);
        if (!record) continue;
        usesOf.set(record.id, [...(usesOf.get(record.id) ?? []), use]);
      }
    }
  }
  if (trail.aws) {
    for (const record of unused.filter((r) => r.aws?.sourceIdentity === trail.aws?.sourceIdentity)) {
      usesOf.set(record.id, [...(usesOf.get(record.id) ?? []), ...trail.aws.uses]);
    }
  }
  let recorded = 0;
  for (const stored of unused) {
    const uses = usesOf.get(stored.id);
    if (!uses?.length) continue;
    const { rev, ...record } = stored;
    const first = uses.reduce((a, b) => (a.at <= b.at ? a : b));
    await deps.store.putCredential({ ...record, usedRecorded: true }, rev);
    await deps.audit.append({
      type: 'ci.credentials.used',
      actor: `ci:${record.jobKey}`,
      subject: record.correlationId,
      details: {
        exchangeId: record.id,
        grant: record.grant,
        firstUseAt: first.at,
        firstUse: first.what,
        ...(first.from ? { from: first.from } : {}),
        uses: uses.length,
      },
    });
    recorded += 1;
  }
  return { recorded };
}
