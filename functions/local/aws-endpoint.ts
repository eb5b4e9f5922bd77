import type { StackEndpoints } from '../../scripts/local-stack.ts';

/** Where and how the AWS SDK clients reach AWS; `endpoint` is set only for the local stack. */
export interface AwsEndpoint {
  region: string;
  endpoint?: string | undefined;
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
}

/** moto accepts any credentials; these name the local stack's default account. */
export const localAwsEndpoint = (stack: StackEndpoints): AwsEndpoint => ({
  region: stack.region,
  endpoint: stack.moto.endpoint,
  credentials: { accessKeyId: 'keywarden-local', secretAccessKey: 'keywarden-local' },
});
