/** Where and how the AWS SDK clients reach AWS; `endpoint` is set only for the local stack. */
export interface AwsEndpoint {
  region: string;
  endpoint?: string | undefined;
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
}
