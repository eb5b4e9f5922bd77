/** Helpers for tests against the real local stack started by global-stack.ts. */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { AwsEndpoint } from '../../functions/adapters/aws/endpoint.ts';
import { VaultClient } from '../../functions/adapters/vault/client.ts';
import { localAwsEndpoint } from '../../functions/local/aws-endpoint.ts';
import type { StackEndpoints } from '../../scripts/local-stack.ts';

/** The running stack's endpoints. */
export const testStack = (): StackEndpoints => inject('stack');

/** The AWS endpoint settings for the local stack: moto, and dynalite for DynamoDB. */
export const testAws = (): AwsEndpoint => localAwsEndpoint(testStack());

/** A name no other test file uses, so files can share one stack: `prefix-<random>`. */
export const uniqueName = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

/** A Vault client on the local OpenBao, as `token` (default: the dev root token). */
export const newVaultClient = (token = testStack().vault.token): VaultClient =>
  new VaultClient({ addr: testStack().vault.addr, token });
