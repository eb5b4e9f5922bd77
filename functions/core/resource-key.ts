import type { Delivery } from './identity.ts';

/**
 * Resource keys name one credential-bearing thing in a provider, in the same form whether
 * they come from the inventory or from discovery (an identity's own key: `scopeKey` in kinds.ts).
 */

/** The resource key of a delivery target (a Secrets Manager secret or a Vault KV path). */
export function deliveryKey(delivery: Delivery): string {
  return delivery.type === 'aws-secret'
    ? `aws-secret:${delivery.secretId}`
    : `vault-kv:${trimSlashes(delivery.mount)}/${trimSlashes(delivery.path)}`;
}

export const trimSlashes = (text: string): string => text.replace(/^\/+|\/+$/g, '');
