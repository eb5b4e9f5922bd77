import type { Delivery, Identity } from './identity.ts';

/**
 * A resource key names one credential-bearing thing in a provider, in the same
 * form whether it comes from the inventory or from discovery, so the two can be
 * reconciled by equality.
 */
export function scopeKey(identity: Identity): string {
  switch (identity.kind) {
    case 'aws-iam-access-key':
      return `aws-iam-user:${identity.scope.userName}`;
    case 'aws-secret':
      return `aws-secret:${identity.scope.secretId}`;
    case 'aws-role-session':
      return `aws-role:${identity.scope.roleArn.split(':role/')[1]?.split('/').at(-1) ?? identity.scope.roleArn}`;
    case 'vault-token':
      return `vault-token:${identity.id}`;
    case 'vault-approle-secret-id':
      return `vault-approle:${trimSlashes(identity.scope.mount)}/${identity.scope.roleName}`;
    case 'vault-kv':
      return `vault-kv:${trimSlashes(identity.scope.mount)}/${trimSlashes(identity.scope.path)}`;
    case 'vault-lease':
      return `vault-lease:${trimSlashes(identity.scope.prefix)}`;
  }
}

/** The resource key of a delivery target (a Secrets Manager secret or a Vault KV path). */
export function deliveryKey(delivery: Delivery): string {
  return delivery.type === 'aws-secret'
    ? `aws-secret:${delivery.secretId}`
    : `vault-kv:${trimSlashes(delivery.mount)}/${trimSlashes(delivery.path)}`;
}

export const trimSlashes = (text: string): string => text.replace(/^\/+|\/+$/g, '');
