import type { StackEndpoints } from '../../scripts/local-stack.ts';
import type { AwsEndpoint } from '../adapters/aws/endpoint.ts';

/** moto accepts any credentials; these name the local stack's default account. */
export const localAwsEndpoint = (stack: StackEndpoints): AwsEndpoint => ({
  region: stack.region,
  endpoint: stack.moto.endpoint,
  credentials: { accessKeyId: 'keywarden-local', secretAccessKey: 'keywarden-local' },
});
