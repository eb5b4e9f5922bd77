import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { InfraConfigError } from '../errors.ts';

/** Name of the first global secondary index (grants and campaigns, newest first); handlers query it by this name. */
export const STATE_INDEX_NAME = 'gsi1';

/**
 * Every global secondary index, each keyed `<name>pk` / `<name>sk`, the same as
 * functions/adapters/aws/dynamodb-table.ts `STATE_INDEXES` (ensureStateTable creates them
 * locally): gsi1 grants and campaigns newest first, gsi2 grants by state, gsi3 grants by
 * requester, gsi4 (sparse) grants the sweeper or a review is due for.
 *
 * CloudFormation creates one global secondary index per table update: a table deployed with
 * gsi1 alone reaches gsi4 over three deploys (`-c keywarden:stateIndexes=2`, then 3, then
 * the default).
 */
export const STATE_INDEX_NAMES = ['gsi1', 'gsi2', 'gsi3', 'gsi4'] as const;

/** Context key for {@link StateStoreProps.indexes}. */
export const STATE_INDEXES_CONTEXT = 'keywarden:stateIndexes';

/** Attribute DynamoDB's TTL reads (epoch seconds) to drop expired items. */
export const STATE_TTL_ATTRIBUTE = 'expiresAt';

/**
 * Item operations a reader needs. Stream actions are left out on purpose: the table has no stream.
 * Listed one by one, never `dynamodb:*`, so the policy shows exactly what a function can do.
 */
const READ_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
];
const WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
];

/**
 * What DynamoDB asks KMS for on the caller's behalf when it reads or writes items encrypted
 * with a customer-managed key. Spelled out instead of CDK's `kms:ReEncrypt*` / `kms:GenerateDataKey*`
 * so no wildcard action reaches a role.
 */
const KEY_READ_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey'];
const KEY_WRITE_ACTIONS = [
  'kms:Encrypt',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:GenerateDataKey',
  'kms:GenerateDataKeyWithoutPlaintext',
];

/** Properties of {@link StateStore}. */
export interface StateStoreProps {
  /**
   * How many days back point-in-time recovery can restore the table to (1 to 35).
   *
   * @default 35 — the longest DynamoDB offers; the table holds the audit chain.
   */
  readonly recoveryPeriodDays?: number | undefined;
  /**
   * How many of {@link STATE_INDEX_NAMES} the table has, in order (1 to 4). Only for upgrading
   * a table deployed with fewer: CloudFormation adds one index per update.
   *
   * @default the `keywarden:stateIndexes` context value, else 4 (all of them).
   */
  readonly indexes?: number | undefined;
}

/**
 * keywarden's single DynamoDB table: inventory, credential versions, grants, campaigns and
 * the audit chain, keyed by `pk`/`sk`, with the overloaded indexes {@link STATE_INDEX_NAMES}.
 *
 * The table is encrypted with its own customer-managed key (rotated yearly), keeps
 * point-in-time recovery, refuses deletion and is retained if the stack goes away: losing it
 * would lose the record of which credentials exist and who was granted what.
 */
export class StateStore extends Construct {
  /** The table. Grant through {@link grantReadData} / {@link grantReadWriteData}, not `table.grant*`. */
  readonly table: dynamodb.Table;
  /** The customer-managed key that encrypts the table. */
  readonly key: kms.Key;
  /** The global secondary indexes the table has. */
  readonly indexNames: readonly string[];

  constructor(scope: Construct, id: string, props: StateStoreProps = {}) {
    super(scope, id);

    const recoveryPeriodDays = props.recoveryPeriodDays ?? 35;
    if (!Number.isInteger(recoveryPeriodDays) || recoveryPeriodDays < 1 || recoveryPeriodDays > 35) {
      throw new InfraConfigError(
        `StateStore: recoveryPeriodDays must be a whole number of days from 1 to 35, received ${String(props.recoveryPeriodDays)}.`,
      );
    }

    const indexes = Number(
      props.indexes ?? this.node.tryGetContext(STATE_INDEXES_CONTEXT) ?? STATE_INDEX_NAMES.length,
    );
    if (!Number.isInteger(indexes) || indexes < 1 || indexes > STATE_INDEX_NAMES.length) {
      throw new InfraConfigError(
        `StateStore: indexes must be a whole number from 1 to ${STATE_INDEX_NAMES.length}, received ${String(props.indexes ?? this.node.tryGetContext(STATE_INDEXES_CONTEXT))}.`,
      );
    }
    this.indexNames = STATE_INDEX_NAMES.slice(0, indexes);

    this.key = new kms.Key(this, 'Key', {
      description: 'keywarden state table encryption',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      pointInTimeRecoverySpecification: {
        pointInTimeRecoveryEnabled: true,
        recoveryPeriodInDays: recoveryPeriodDays,
      },
      timeToLiveAttribute: STATE_TTL_ATTRIBUTE,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    for (const indexName of this.indexNames) {
      this.table.addGlobalSecondaryIndex({
        indexName,
        partitionKey: { name: `${indexName}pk`, type: dynamodb.AttributeType.STRING },
        sortKey: { name: `${indexName}sk`, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
  }

  /** Lets `grantee` read items from the table and from its indexes. */
  grantReadData(grantee: iam.IGrantable): iam.Grant {
    return this.grant(grantee, READ_ACTIONS, KEY_READ_ACTIONS);
  }

  /** Lets `grantee` read and write items in the table and read its indexes. */
  grantReadWriteData(grantee: iam.IGrantable): iam.Grant {
    return this.grant(
      grantee,
      [...READ_ACTIONS, ...WRITE_ACTIONS],
      [...KEY_READ_ACTIONS, ...KEY_WRITE_ACTIONS],
    );
  }

  /**
   * Table and index ARNs are named exactly (no `index/*`), and the key can be used only
   * through DynamoDB, so the grant cannot be turned into a general decrypt permission.
   */
  private grant(grantee: iam.IGrantable, tableActions: string[], keyActions: string[]): iam.Grant {
    const stack = Stack.of(this);
    const data = iam.Grant.addToPrincipal({
      grantee,
      actions: tableActions,
      resourceArns: [
        this.table.tableArn,
        ...this.indexNames.map((name) => `${this.table.tableArn}/index/${name}`),
      ],
    });
    const key = iam.Grant.addToPrincipal({
      grantee,
      actions: keyActions,
      resourceArns: [this.key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${stack.region}.${stack.urlSuffix}` } },
    });
    return data.combine(key);
  }
}
