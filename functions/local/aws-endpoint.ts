import type { StackEndpoints } from '../../scripts/local-stack.ts';
import type { AwsEndpoint } from '../adapters/aws/endpoint.ts';

/**
 * The local stack as an AWS endpoint: moto for every service but DynamoDB, which dynalite
 * serves. Both accept any credentials; these name the local stack's default account.
 */
export const localAwsEndpoint = (stack: StackEndpoints): AwsEndpoint => ({
  region: stack.region,
  endpoint: stack.moto.endpoint,
  dynamodbEndpoint: stack.dynamodb.endpoint,
  credentials: { accessKeyId: 'keywarden-local', secretAccessKey: 'keywarden-local' },
});
