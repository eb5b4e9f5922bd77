/**
 * The two worlds a benchmark runs in (`--model loopback|aws`), shared by bench/revocation.ts
 * and bench/rotation.ts:
 *
 * - `loopback`: the contenders talk to moto, the local DynamoDB and OpenBao directly —
 *   every call ~1 ms, nothing throttles;
 * - `aws`: each contender talks to them through fault proxies carrying the AWS model
 *   (test/support/aws-model.ts): per-service latency, per-API token buckets at AWS's
 *   quotas, throttled answers exactly as AWS gives them. One proxy per server (moto; the
 *   local DynamoDB when it has its own endpoint; OpenBao), one model for the three, fresh
 *   for each contender so none inherits another's emptied buckets.
 *
 * What a contender does not own (building its fleet, the baselines' target lists, the final
 * check on the servers) talks to the servers directly in both modes.
 */
import { ensureStateTable } from '../../functions/adapters/aws/dynamodb-table.ts';
import type { AwsEndpoint } from '../../functions/adapters/aws/endpoint.ts';
import { type RuntimeConfigInput, RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import { localAwsEndpoint } from '../../functions/local/aws-endpoint.ts';
import type { StackEndpoints } from '../../scripts/local-stack.ts';
import { AwsModel, type BucketCount, rateLimitEnvFromQuotas } from '../../test/support/aws-model.ts';
import { type FaultProxy, startFaultProxy } from '../../test/support/fault-proxy.ts';

export const MODELS = ['loopback', 'aws'] as const;
export type ModelName = (typeof MODELS)[number];

/**
 * A contender's services talking to the servers directly (what it does not own: building its
 * fleet, the baselines' lists, the final check), with its state table created.
 */
export async function directServices(
  stack: StackEndpoints,
  base: Omit<RuntimeConfigInput, 'aws' | 'vault'>,
): Promise<Services> {
  const direct = wire(
    RuntimeConfigSchema.parse({
      ...base,
      aws: localAwsEndpoint(stack),
      vault: { addr: stack.vault.addr, token: stack.vault.token },
    }),
  );
  await ensureStateTable(direct.aws.dynamodb, direct.config.tableName);
  return direct;
}

/** Reads `--model`; throws naming the value when it is neither. */
export function parseModel(text: string): ModelName {
  if ((MODELS as readonly string[]).includes(text)) return text as ModelName;
  throw new Error(`--model: expected ${MODELS.join(' or ')}, got ${JSON.stringify(text)}`);
}

/** Where one contender's run sends its requests, and what the model saw of them. */
export interface ContenderWorld {
  aws: AwsEndpoint;
  vaultAddr: string;
  /** Throttled answers the proxies gave (each SDK or Vault retry of one counted again). */
  throttled(): number;
  /** Requests admitted and refused per quota bucket; empty on loopback. */
  buckets(): Record<string, BucketCount>;
  close(): Promise<void>;
}

/**
 * The world of one contender: the servers themselves on loopback, fresh proxies with a
 * fresh model (seeded by `seed`, so each contender meets the same draws) in `aws`.
 */
export async function startWorld(stack: StackEndpoints, model: ModelName, seed = 1): Promise<ContenderWorld> {
  const direct = localAwsEndpoint(stack);
  if (model === 'loopback') {
    return {
      aws: direct,
      vaultAddr: stack.vault.addr,
      throttled: () => 0,
      buckets: () => ({}),
      close: async () => {},
    };
  }
  const awsModel = new AwsModel({ seed });
  const proxies: FaultProxy[] = [];
  const through = async (target: string) => {
    const proxy = await startFaultProxy({ target, model: awsModel });
    proxies.push(proxy);
    return proxy.url;
  };
  try {
    const endpoint = await through(direct.endpoint ?? stack.moto.endpoint);
    // DynamoDB gets its own proxy when the stack serves it apart from moto (dynalite).
    const separate = direct.dynamodbEndpoint !== undefined && direct.dynamodbEndpoint !== direct.endpoint;
    const dynamodbEndpoint = separate ? await through(direct.dynamodbEndpoint as string) : undefined;
    const vaultAddr = await through(stack.vault.addr);
    const aws: AwsEndpoint = { ...direct, endpoint };
    // Without a separate one, DynamoDB is moto's, behind the same proxy.
    if (dynamodbEndpoint) aws.dynamodbEndpoint = dynamodbEndpoint;
    else delete aws.dynamodbEndpoint;
    return {
      aws,
      vaultAddr,
      throttled: () => proxies.reduce((sum, proxy) => sum + proxy.counts.throttled, 0),
      buckets: () => awsModel.counts(),
      close: async () => {
        await Promise.all(proxies.map((proxy) => proxy.close()));
      },
    };
  } catch (error) {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    throw error;
  }
}

/**
 * In `aws`, keywarden's revocation rates (KEYWARDEN_RATE_IAM, _SECRETS_MANAGER) from the
 * model's quota table, unless the environment sets them: keywarden paces itself at the
 * quotas it is measured against. Returns what it set.
 */
export function applyModelRateLimits(model: ModelName): Record<string, string> {
  if (model !== 'aws') return {};
  const set: Record<string, string> = {};
  for (const [name, value] of Object.entries(rateLimitEnvFromQuotas())) {
    if (process.env[name] !== undefined) continue;
    process.env[name] = value;
    set[name] = value;
  }
  return set;
}

/** Throttling as the AWS SDK, the Vault client and keywarden's errors name it. */
export const THROTTLED_TEXT =
  /throttl|rate exceeded|rate limit quota|slowdown|provisionedthroughputexceeded|toomanyrequests/i;

/** Whether a failure (an error or its message) was throttling. */
export function isThrottling(failure: unknown): boolean {
  if (typeof failure === 'string') return THROTTLED_TEXT.test(failure);
  if (failure instanceof Error) return THROTTLED_TEXT.test(`${failure.name} ${failure.message}`);
  return false;
}
