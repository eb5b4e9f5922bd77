/**
 * Where and how the AWS SDK clients reach AWS. `endpoint` is set only for the local stack
 * (moto); `dynamodbEndpoint`, when set, serves DynamoDB alone (the local stack's dynalite).
 */
export interface AwsEndpoint {
  region: string;
  endpoint?: string | undefined;
  dynamodbEndpoint?: string | undefined;
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
}
