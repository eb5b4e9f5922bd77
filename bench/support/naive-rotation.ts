/**
 * The baseline: the rotation script an engineer writes without keywarden. One identity
 * after another: issue a new credential straight through the SDK or Vault's API, write it
 * where the pipeline reads it, then revoke the old one. No staging, no verification, no
 * lock, no audit record, no stored progress: a crash between two calls loses track of a
 * credential, and a credential that does not work is delivered anyway.
 *
 * Deliberately minimal, not deliberately slow: the fewest calls that do the job, on the
 * same clients and servers as keywarden.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  CreateAccessKeyCommand,
  DeleteAccessKeyCommand,
  type IAMClient,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import { PutSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { VaultClient } from '../../functions/adapters/vault/client.ts';
import { toSeconds } from '../../functions/core/duration.ts';
import type { Identity } from '../../functions/core/identity.ts';

/** What the naive loop needs: the same clients keywarden's adapters use. */
export interface NaiveClients {
  iam: IAMClient;
  secrets: SecretsManagerClient;
  vault: VaultClient;
}

export interface NaiveOutcome {
  identityId: string;
  kind: Identity['kind'];
  status: 'rotated' | 'failed';
  reason?: string;
  durationMs: number;
}

const newValue = () => randomBytes(30).toString('base64url');

/** Reads a KV v2 secret's current data, as the script would to learn the old credential. */
async function readKv(vault: VaultClient, path: string): Promise<Record<string, string>> {
  const read = await vault.read(`secret/data/${path}`);
  return (read?.data as { data?: Record<string, string> } | undefined)?.data ?? {};
}

/** Rotates one identity the naive way. */
export async function rotateNaively(clients: NaiveClients, identity: Identity): Promise<void> {
  const { iam, secrets, vault } = clients;
  switch (identity.kind) {
    case 'aws-iam-access-key': {
      const { userName } = identity.scope;
      if (identity.delivery?.type !== 'aws-secret')
        throw new Error(`${identity.id}: expected a secret delivery`);
      const old = await iam.send(new ListAccessKeysCommand({ UserName: userName }));
      const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
      await secrets.send(
        new PutSecretValueCommand({
          SecretId: identity.delivery.secretId,
          SecretString: JSON.stringify({
            accessKeyId: AccessKey?.AccessKeyId,
            secretAccessKey: AccessKey?.SecretAccessKey,
          }),
        }),
      );
      for (const key of old.AccessKeyMetadata ?? []) {
        await iam.send(new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: key.AccessKeyId }));
      }
      return;
    }
    case 'aws-secret':
      // PutSecretValue makes the new value AWSCURRENT and the old one AWSPREVIOUS.
      await secrets.send(
        new PutSecretValueCommand({ SecretId: identity.scope.secretId, SecretString: newValue() }),
      );
      return;
    case 'vault-token': {
      if (identity.delivery?.type !== 'vault-kv') throw new Error(`${identity.id}: expected a KV delivery`);
      const path = identity.delivery.path;
      const old = (await readKv(vault, path)).token;
      const created = await vault.createToken(
        {
          policies: identity.scope.policies ?? ['default'],
          ttl: `${toSeconds(identity.scope.ttl)}s`,
          renewable: true,
        },
        { orphan: true },
      );
      await vault.write(`secret/data/${path}`, { data: { token: created.client_token } });
      if (old) await vault.write('auth/token/revoke', { token: old });
      return;
    }
    case 'vault-approle-secret-id': {
      if (identity.delivery?.type !== 'vault-kv') throw new Error(`${identity.id}: expected a KV delivery`);
      const path = identity.delivery.path;
      const role = `auth/approle/role/${identity.scope.roleName}`;
      const old = await readKv(vault, path);
      const created = await vault.write(`${role}/secret-id`, {
        ttl: `${toSeconds(identity.scope.secretIdTtl)}s`,
      });
      await vault.write(`secret/data/${path}`, {
        data: { role_id: old.role_id, secret_id: created.data?.secret_id },
      });
      if (old.secret_id) await vault.write(`${role}/secret-id/destroy`, { secret_id: old.secret_id });
      return;
    }
    case 'vault-kv': {
      const { path } = identity.scope;
      const written = await vault.write(`secret/data/${path}`, { data: { value: newValue() } });
      const version = Number(written.data?.version);
      if (version > 1) await vault.write(`secret/destroy/${path}`, { versions: [version - 1] });
      return;
    }
    default:
      throw new Error(`${identity.id}: the naive loop does not rotate ${identity.kind}`);
  }
}

/** The naive loop itself: each identity in turn; a failure is noted and the loop goes on. */
export async function rotateSequentially(
  clients: NaiveClients,
  identities: readonly Identity[],
  onOutcome?: (outcome: NaiveOutcome) => void,
): Promise<NaiveOutcome[]> {
  const outcomes: NaiveOutcome[] = [];
  for (const identity of identities) {
    const started = performance.now();
    let outcome: NaiveOutcome;
    try {
      await rotateNaively(clients, identity);
      outcome = {
        identityId: identity.id,
        kind: identity.kind,
        status: 'rotated',
        durationMs: performance.now() - started,
      };
    } catch (error) {
      outcome = {
        identityId: identity.id,
        kind: identity.kind,
        status: 'failed',
        reason: error instanceof Error ? error.message : String(error),
        durationMs: performance.now() - started,
      };
    }
    outcomes.push(outcome);
    onOutcome?.(outcome);
  }
  return outcomes;
}
