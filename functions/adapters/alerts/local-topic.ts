/**
 * The local stack's alert topic: `keywarden dev up` creates it on moto (in AWS the stack declares
 * it). A module of its own, with the SNS client, so the functions that publish alerts
 * (sns-alerts.ts) never read it.
 */
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { awsClientConfig, awsFailure } from '../aws/clients.ts';
import type { AwsEndpoint } from '../aws/endpoint.ts';

/** The local stack's alert topic (`keywarden dev up` creates it on moto). */
export const LOCAL_ALERT_TOPIC = 'keywarden-alerts';

/**
 * Creates the alert topic if it does not exist (CreateTopic is idempotent by name) and returns
 * its ARN: the local stack's, made by `keywarden dev up` on moto. In AWS the stack declares it.
 */
export async function ensureAlertTopic(aws: AwsEndpoint, name: string = LOCAL_ALERT_TOPIC): Promise<string> {
  const client = new SNSClient(awsClientConfig(aws));
  try {
    const created = await client.send(new CreateTopicCommand({ Name: name }));
    if (!created.TopicArn) throw new Error('CreateTopic answered without a TopicArn');
    return created.TopicArn;
  } catch (error) {
    throw awsFailure(`creating the alert topic ${name}`, error);
  } finally {
    client.destroy();
  }
}
