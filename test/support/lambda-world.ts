/**
 * What the Lambda entry-point specs of the exposure scanner and the use monitor set up on the
 * local stack, once: a function's world ({@link lambdaWorld}: its state table, the fingerprint
 * key and Vault token as its secrets, a stand-in revocation state machine — started, and that is
 * what containment does there), the environment a deployed function reads (its endpoints on
 * loopback), a managed OpenBao token recorded as rotation records it, and an owner's subscription
 * to an alert topic (an SQS queue: moto delivers to it as it publishes, attributes kept; an HTTP
 * subscriber gets none and blocks).
 */

import { randomBytes } from 'node:crypto';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CreateStateMachineCommand, ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { awsClientConfig, awsClients } from '../../functions/adapters/aws/clients.ts';
import { type DynamoStore, dynamoStore } from '../../functions/adapters/aws/dynamodb-store.ts';
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import type { AwsEndpoint } from '../../functions/adapters/aws/endpoint.ts';
import { Fingerprinter, sha256Hex } from '../../functions/adapters/crypto.ts';
import { systemClock } from '../../functions/adapters/wiring.ts';
import type { Identity } from '../../functions/core/identity.ts';
import { credentialVersion } from './fixtures.ts';
import { newVaultClient, testAws, testStack, uniqueName } from './stack.ts';

/**
 * A deployed function's world on the local stack: its own state table (dynalite, named
 * `<tablePrefix>-<random>`) and the store over it, the fingerprint key it reads from Secrets
 * Manager, and the revocation state machine's stand-in. Made at once, set up by `prepare`.
 */
export function lambdaWorld(tablePrefix: string) {
  const aws = awsClients(testAws());
  const table = uniqueName(tablePrefix);
  const fingerprintKey = randomBytes(32).toString('hex');
  const store = dynamoStore({
    client: aws.dynamodb,
    tableName: table,
    clock: systemClock,
    digest: sha256Hex,
  });
  let stateMachineArn = '';
  return {
    aws,
    table,
    fingerprintKey,
    store,
    /**
     * Creates the table, stores the fingerprint key as a secret, creates the state machine's
     * stand-in, and returns the environment that names them.
     */
    async prepare(): Promise<Record<string, string>> {
      await ensureStateTable(aws.dynamodb, table);
      const keyArn = await putSecret(testAws(), uniqueName('kw-fp-key'), fingerprintKey);
      stateMachineArn = await standInStateMachine(testAws());
      return {
        KEYWARDEN_FINGERPRINT_KEY_SECRET_ARN: keyArn,
        KEYWARDEN_REVOCATION_STATE_MACHINE_ARN: stateMachineArn,
      };
    },
    /** The names of the executions the function started (containment's campaigns, by id). */
    async executions(): Promise<(string | undefined)[]> {
      const sfn = new SFNClient(awsClientConfig(testAws()));
      const { executions = [] } = await sfn.send(new ListExecutionsCommand({ stateMachineArn }));
      return executions.map((execution) => execution.name);
    },
  };
}

/** The environment that points a function at the local OpenBao: its address, and its token as a new secret. */
export async function localVaultEnv(): Promise<Record<string, string>> {
  const { vault } = testStack();
  return {
    KEYWARDEN_VAULT_ADDR: vault.addr,
    KEYWARDEN_VAULT_TOKEN_SECRET_ARN: await putSecret(testAws(), uniqueName('kw-vault-token'), vault.token),
  };
}

/**
 * Sets the environment a deployed function reads, pointed at the local stack (DynamoDB is
 * dynalite, everything else moto) and the state table `table`, plus the function's own `extra`.
 */
export function useLocalLambdaEnv(table: string, extra: Record<string, string | undefined>): void {
  const stack = testStack();
  Object.assign(process.env, {
    AWS_REGION: stack.region,
    AWS_ENDPOINT_URL: stack.moto.endpoint,
    // The SDK's service-specific endpoint variable: DynamoDB is dynalite, not moto.
    AWS_ENDPOINT_URL_DYNAMODB: stack.dynamodb.endpoint,
    AWS_ACCESS_KEY_ID: 'keywarden-local',
    AWS_SECRET_ACCESS_KEY: 'keywarden-local',
    KEYWARDEN_TABLE: table,
    ...Object.fromEntries(Object.entries(extra).filter(([, value]) => value !== undefined)),
  });
}

/** A state machine that succeeds at once: the revocation state machine's stand-in; its ARN. */
export async function standInStateMachine(aws: AwsEndpoint): Promise<string> {
  const { stateMachineArn } = await new SFNClient(awsClientConfig(aws)).send(
    new CreateStateMachineCommand({
      name: uniqueName('kw-revocation'),
      definition: JSON.stringify({ StartAt: 'Done', States: { Done: { Type: 'Succeed' } } }),
      roleArn: 'arn:aws:iam::123456789012:role/keywarden-revocation',
    }),
  );
  return stateMachineArn ?? '';
}

/** One alert as an SQS subscriber receives it: SNS's envelope. */
export interface AlertEnvelope {
  Type?: string;
  TopicArn?: string;
  Subject?: string;
  Message: string;
  MessageAttributes?: Record<string, { Type: string; Value: string }>;
}

/** A new alert topic on moto, named `<prefix>-<random>`; its ARN. */
export async function newAlertTopic(aws: AwsEndpoint, prefix = 'kw-alerts'): Promise<string> {
  const { TopicArn } = await new SNSClient(awsClientConfig(aws)).send(
    new CreateTopicCommand({ Name: uniqueName(prefix) }),
  );
  return TopicArn ?? '';
}

/**
 * An owner's subscription to `topicArn` (with a filter policy when given): a queue, and a reader
 * of what it received since the last read.
 */
export async function alertSubscriber(
  aws: AwsEndpoint,
  topicArn: string,
  options: { filterPolicy?: Record<string, unknown>; queueName?: string } = {},
): Promise<(waitSeconds?: number) => Promise<AlertEnvelope[]>> {
  const sqs = new SQSClient(awsClientConfig(aws));
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: options.queueName ?? uniqueName('kw-alerts') }),
  );
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
  );
  await new SNSClient(awsClientConfig(aws)).send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: 'sqs',
      Endpoint: Attributes?.QueueArn,
      ...(options.filterPolicy ? { Attributes: { FilterPolicy: JSON.stringify(options.filterPolicy) } } : {}),
    }),
  );
  return async (waitSeconds = 1) => {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }),
    );
    return Messages.map((m) => JSON.parse(m.Body ?? '{}') as AlertEnvelope);
  };
}

/** Stores `value` as a new Secrets Manager secret named `name` on moto; its ARN. */
export async function putSecret(aws: AwsEndpoint, name: string, value: string): Promise<string> {
  const secrets = new SecretsManagerClient(awsClientConfig(aws));
  const { ARN } = await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));
  return ARN ?? '';
}

/**
 * A managed OpenBao token of `owner` (a 10-minute orphan token), recorded as rotation records it
 * — the identity active, a version with the token's accessor and its fingerprint under
 * `fingerprintKey` — so the scanner matches it; the token and its accessor.
 */
export async function recordManagedVaultToken(
  store: Pick<DynamoStore, 'putIdentity' | 'putVersion'>,
  owner: Identity,
  fingerprintKey: string,
): Promise<{ token: string; accessor: string }> {
  const created = await newVaultClient().createToken({ policies: ['default'], ttl: '10m' }, { orphan: true });
  await store.putIdentity(
    { identity: owner, status: 'active', declarationHash: 'h', syncedAt: new Date().toISOString() },
    undefined,
  );
  await store.putVersion(
    credentialVersion(owner, {
      handle: created.accessor,
      fingerprint: new Fingerprinter(fingerprintKey).of(created.client_token),
    }),
    undefined,
  );
  return { token: created.client_token, accessor: created.accessor };
}
