/** Helpers for tests against the real local stack started by global-stack.ts. */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { AwsEndpoint } from '../../functions/adapters/aws/endpoint.ts';
import { localAwsEndpoint } from '../../functions/local/aws-endpoint.ts';
import type { StackEndpoints } from '../../scripts/local-stack.ts';

/** The running stack's endpoints. */
export const testStack = (): StackEndpoints => inject('stack');

/** The AWS endpoint settings for moto. */
export const testAws = (): AwsEndpoint => localAwsEndpoint(testStack());

/** A name no other test file uses, so files can share one stack: `prefix-<random>`. */
export const uniqueName = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;
