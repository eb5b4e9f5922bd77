/**
 * The state table's hot requests (GetItem, PutItem, Query) sent on the wire without the SDK's
 * per-call machinery, with the client's own endpoint, credentials, retry strategy and clock
 * offset: every rotation makes ~6 of them, and the SDK spends ~0.4 ms of CPU on each beyond the
 * request itself on loopback (resolving the command's middleware stack, its schema serde, the
 * endpoint rules, the user agent, the HTTP handler), against ~0.1 ms here; the local DynamoDB
 * answers it for half its CPU too. What a request is and what it answers are DynamoDB's JSON
 * protocol (`x-amz-json-1.0`), the same attribute values the low-level client takes and returns.
 *
 * What stays the SDK's: the endpoint, resolved once per operation and table by the SDK's own
 * rules from the client's configuration; the credentials (the client's provider, refreshed as it
 * refreshes them); SigV4 (`@smithy/signature-v4`); the retry strategy of the client (adaptive:
 * its token bucket is shared with the client's other calls), fed the same error classes as the
 * SDK's retry middleware feeds it; the clock offset the SDK corrects on a skew refusal; the
 * error classes (`ConditionalCheckFailedException`…) and `$metadata`.
 *
 * Middleware that callers add to the client's stack at the `initialize` step (the specs' and the
 * benches' request counters) runs around every request here as around the SDK's. A client whose
 * stack holds anything else beyond the SDK's own middleware, or a client that is not the SDK's,
 * is sent its requests through `send` as before.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  DynamoDBServiceException,
  GetItemCommand,
  type GetItemCommandInput,
  type GetItemCommandOutput,
  PutItemCommand,
  type PutItemCommandInput,
  type PutItemCommandOutput,
  QueryCommand,
  type QueryCommandInput,
  type QueryCommandOutput,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { getEndpointFromInstructions } from '@smithy/core/endpoints';
import { isClockSkewError, isServerError, isThrottlingError, isTransientError } from '@smithy/core/retry';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from './sha256.ts';

/** The operations sent here, with their SDK command (its endpoint rules, its name for observers). */
const COMMANDS = {
  GetItem: GetItemCommand,
  PutItem: PutItemCommand,
  Query: QueryCommand,
} as const;
type Operation = keyof typeof COMMANDS;
interface Inputs {
  GetItem: GetItemCommandInput;
  PutItem: PutItemCommandInput;
  Query: QueryCommandInput;
}
interface Outputs {
  GetItem: GetItemCommandOutput;
  PutItem: PutItemCommandOutput;
  Query: QueryCommandOutput;
}

/**
 * The SDK's own middleware on a DynamoDB client's stack: the wire does their work itself. A stack
 * with other middleware (past the `initialize` step) sends through the SDK.
 */
const SDK_MIDDLEWARE = new Set([
  'loggerMiddleware',
  // Placed relative to the endpoint middleware each command adds; not listed by `identify`.
  'httpAuthSchemeMiddleware',
  'serializerMiddleware',
  'contentLengthMiddleware',
  'getUserAgentMiddleware',
  'hostHeaderMiddleware',
  'recursionDetectionMiddleware',
  'retryMiddleware',
  'httpSigningMiddleware',
  'deserializerMiddleware',
]);

/** How long one attempt may wait for its whole answer before it is abandoned and retried (a hung connection). */
const ATTEMPT_TIMEOUT_MS = 30_000;
/** Idle keep-alive connections are closed after this: shorter than DynamoDB's and proxies' idle timeouts. */
const IDLE_SOCKET_MS = 4_000;
/** Connections per origin at most, as the SDK's HTTP handler allows (50). */
const MAX_SOCKETS = 50;

/** The part of the SDK's middleware stack the wire reads and watches. */
interface Stack {
  add: (...args: unknown[]) => unknown;
  addRelativeTo: (...args: unknown[]) => unknown;
  remove: (...args: unknown[]) => unknown;
  removeByTag: (...args: unknown[]) => unknown;
  use: (...args: unknown[]) => unknown;
  clone: () => Stack;
  identify: () => string[];
  resolve: (
    handler: (args: { input: unknown }) => Promise<{ output: unknown; response: unknown }>,
    context: Record<string, unknown>,
  ) => (args: { input: unknown }) => Promise<{ output: unknown }>;
}

/** The part of a DynamoDB client's resolved configuration the wire uses. */
interface Config {
  region: () => Promise<string>;
  credentials: (options?: unknown) => Promise<{
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
  }>;
  retryStrategy: () => Promise<RetryStrategy>;
  systemClockOffset?: number;
}
interface RetryToken {
  getRetryCount(): number;
  getRetryDelay(): number;
}
interface RetryStrategy {
  acquireInitialRetryToken(scope: string): Promise<RetryToken>;
  refreshRetryTokenForRetry(
    token: RetryToken,
    info: { error: unknown; errorType: string; retryAfterHint?: Date },
  ): Promise<RetryToken>;
  recordSuccess(token: RetryToken): void;
}

/** The SDK's error class for a DynamoDB error name, else its base class with that name. */
function serviceError(
  name: string,
  message: string,
  status: number,
  requestId: string | undefined,
): DynamoDBServiceException {
  const $metadata = { httpStatusCode: status, ...(requestId ? { requestId } : {}) };
  const $fault = status >= 500 ? 'server' : 'client';
  if (name === 'ConditionalCheckFailedException')
    return new ConditionalCheckFailedException({ message, $metadata });
  if (name === 'ResourceNotFoundException') return new ResourceNotFoundException({ message, $metadata });
  return new DynamoDBServiceException({ name, message, $fault, $metadata });
}

/** Error names as DynamoDB sends them: `com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException`. */
const errorName = (type: unknown, status: number): string => {
  if (typeof type !== 'string' || type === '') return status >= 500 ? 'InternalServerError' : 'UnknownError';
  return type.slice(type.lastIndexOf('#') + 1);
};

/** A binary attribute value (`B`, `BS`) goes base64 in JSON, as the SDK sends it. */
function binaryAsBase64(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array
    ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')
    : value;
}

/** A binary attribute value read back as bytes, as the SDK answers it. */
function binaryFromBase64(key: string, value: unknown): unknown {
  if (key === 'B' && typeof value === 'string') return new Uint8Array(Buffer.from(value, 'base64'));
  if (key === 'BS' && Array.isArray(value))
    return value.map((item) =>
      typeof item === 'string' ? new Uint8Array(Buffer.from(item, 'base64')) : item,
    );
  return value;
}

const parseAnswer = (text: string): Record<string, unknown> => {
  if (text === '') return {};
  // Only an answer that may hold a binary value pays for the reviver.
  return (text.includes('"B') ? JSON.parse(text, binaryFromBase64) : JSON.parse(text)) as Record<
    string,
    unknown
  >;
};

const AGENTS = new Map<string, HttpAgent>();
function agentFor(protocol: string): HttpAgent {
  let agent = AGENTS.get(protocol);
  if (!agent) {
    const options = { keepAlive: true, timeout: IDLE_SOCKET_MS, maxSockets: MAX_SOCKETS };
    agent = protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
    AGENTS.set(protocol, agent);
  }
  return agent;
}

/** An answer read whole. */
interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  text: string;
}

/** A request that got no answer, in the shape the SDK's retry classes read (`code`, `TimeoutError`). */
function lostError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(String(error));
}

function post(url: URL, headers: Record<string, string>, body: string): Promise<Answer> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Answer>((resolve, reject) => {
    const request = send(
      {
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers,
        agent: agentFor(url.protocol),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', (error) => reject(lostError(error)));
      },
    );
    request.setTimeout(ATTEMPT_TIMEOUT_MS, () => {
      const error = new Error(`no answer from DynamoDB within ${ATTEMPT_TIMEOUT_MS} ms`);
      error.name = 'TimeoutError';
      request.destroy(error);
    });
    request.on('error', (error) => reject(lostError(error)));
    request.end(body);
  });
}

/** When the SDK's signer corrects its clock: the answer's `Date` is 5 minutes or more from ours. */
const CLOCK_SKEW_MS = 300_000;

/** The retry class of an error, as the SDK's retry middleware tells it. */
function errorType(error: Error): string {
  const shaped = error as Error & { $metadata?: { httpStatusCode?: number }; code?: string };
  if (isThrottlingError(shaped as never)) return 'THROTTLING';
  if (isTransientError(shaped as never)) return 'TRANSIENT';
  if (isServerError(shaped as never)) return 'SERVER_ERROR';
  return 'CLIENT_ERROR';
}

/**
 * The wire of one DynamoDB client ({@link wireOf}): sends GetItem, PutItem and Query as the
 * client would, with the client's observers around each.
 */
export class DynamoWire {
  readonly #client: DynamoDBClient;
  readonly #config: Config;
  readonly #stack: Stack;
  /** Endpoints by operation and table, resolved by the SDK's rules on first use. */
  readonly #endpoints = new Map<string, Promise<URL>>();
  #signer: SignatureV4 | undefined;
  #region: Promise<string> | undefined;
  /**
   * What runs around a request: `undefined` until read from the stack (and again after the stack
   * changed), `null` when the stack holds middleware the wire cannot stand in for (then the SDK
   * sends), else the callers' `initialize` middleware (`false`: none).
   */
  #observers: Stack | false | null | undefined;

  constructor(client: DynamoDBClient) {
    this.#client = client;
    this.#config = client.config as unknown as Config;
    this.#stack = client.middlewareStack as unknown as Stack;
    if (typeof this.#stack?.identify !== 'function' || typeof this.#config?.retryStrategy !== 'function') {
      // Not the SDK's client (a stand-in): everything goes through its `send`.
      this.#observers = null;
      return;
    }
    // A middleware added or removed later is seen at the next request.
    for (const method of ['add', 'addRelativeTo', 'remove', 'removeByTag', 'use'] as const) {
      const original = this.#stack[method];
      this.#stack[method] = (...args: unknown[]) => {
        this.#observers = undefined;
        return original.apply(this.#stack, args);
      };
    }
  }

  send<O extends Operation>(operation: O, input: Inputs[O]): Promise<Outputs[O]> {
    if (this.#observers === undefined) this.#observers = this.#readStack();
    const observers = this.#observers;
    if (observers === null) {
      const Command = COMMANDS[operation] as unknown as new (input: Inputs[O]) => GetItemCommand;
      return this.#client.send(new Command(input)) as unknown as Promise<Outputs[O]>;
    }
    if (observers === false) return this.#request(operation, input) as Promise<Outputs[O]>;
    const handler = observers.resolve(
      async (args) => ({ output: await this.#request(operation, args.input as Inputs[O]), response: {} }),
      {
        clientName: 'DynamoDBClient',
        commandName: `${operation}Command`,
      },
    );
    return handler({ input }).then((result) => result.output as Outputs[O]);
  }

  /** The callers' `initialize` middleware as a stack of its own (false: none), or null when the SDK must send. */
  #readStack(): Stack | false | null {
    const entries = this.#stack.identify().map((entry) => {
      const at = entry.lastIndexOf(' - ');
      return { name: entry.slice(0, at).split(' (a.k.a.')[0] ?? '', step: entry.slice(at + 3) };
    });
    const own = entries.filter((e) => !SDK_MIDDLEWARE.has(e.name));
    if (own.length === 0) return false;
    if (own.some((e) => e.step !== 'initialize')) return null;
    const observers = this.#stack.clone();
    for (const name of SDK_MIDDLEWARE) observers.remove(name);
    try {
      // A middleware placed relative to one of the SDK's own cannot run without it: the SDK sends.
      observers.resolve(() => Promise.resolve({ output: {}, response: {} }), {});
    } catch {
      return null;
    }
    return observers;
  }

  #endpoint(operation: Operation, tableName: string | undefined): Promise<URL> {
    const key = `${operation}\u0000${tableName ?? ''}`;
    let endpoint = this.#endpoints.get(key);
    if (!endpoint) {
      endpoint = getEndpointFromInstructions(
        { TableName: tableName },
        COMMANDS[operation] as never,
        this.#config as never,
      ).then((resolved) => resolved.url);
      // A failed resolution is tried again by the next request.
      endpoint.catch(() => this.#endpoints.delete(key));
      this.#endpoints.set(key, endpoint);
    }
    return endpoint;
  }

  async #sign(url: URL, operation: Operation, body: string) {
    this.#region ??= this.#config.region();
    const region = await this.#region;
    this.#signer ??= new SignatureV4({
      service: 'dynamodb',
      region,
      credentials: this.#config.credentials,
      sha256: Sha256,
    });
    const signed = await this.#signer.sign(
      {
        method: 'POST',
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query: {},
        headers: {
          host: url.host,
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': `DynamoDB_20120810.${operation}`,
          'content-length': String(Buffer.byteLength(body)),
        },
        body,
      },
      { signingDate: new Date(Date.now() + (this.#config.systemClockOffset ?? 0)) },
    );
    return signed.headers as Record<string, string>;
  }

  /** One request with the client's retry strategy: what the SDK's retry middleware does around its attempts. */
  async #request<O extends Operation>(operation: O, input: Inputs[O]): Promise<Outputs[O]> {
    const body = JSON.stringify(input, binaryAsBase64);
    const url = await this.#endpoint(operation, input.TableName);
    const strategy = await this.#config.retryStrategy();
    let token = await strategy.acquireInitialRetryToken('');
    let totalRetryDelay = 0;
    for (;;) {
      let failure: Error;
      let retryAfterHint: Date | undefined;
      try {
        const answer = await post(url, await this.#sign(url, operation, body), body);
        const requestId = answer.headers['x-amzn-requestid'] as string | undefined;
        const skewCorrected = this.#sampleClock(answer.headers.date);
        if (answer.status >= 200 && answer.status < 300) {
          strategy.recordSuccess(token);
          return {
            ...parseAnswer(answer.text),
            $metadata: {
              httpStatusCode: answer.status,
              ...(requestId ? { requestId } : {}),
              attempts: token.getRetryCount() + 1,
              totalRetryDelay,
            },
          } as unknown as Outputs[O];
        }
        const parsed = (() => {
          try {
            return JSON.parse(answer.text) as { __type?: unknown; message?: unknown; Message?: unknown };
          } catch {
            return {};
          }
        })();
        const message = parsed.message ?? parsed.Message;
        failure = serviceError(
          errorName(parsed.__type, answer.status),
          typeof message === 'string' ? message : `HTTP ${answer.status}`,
          answer.status,
          requestId,
        );
        if (skewCorrected && isClockSkewError(failure as never)) {
          (
            failure as unknown as { $metadata: { clockSkewCorrected?: boolean } }
          ).$metadata.clockSkewCorrected = true;
        }
        const after = Number(answer.headers['retry-after']);
        if (Number.isFinite(after) && after > 0) retryAfterHint = new Date(Date.now() + after * 1_000);
      } catch (error) {
        failure = lostError(error);
      }
      const shaped = failure as Error & { $metadata?: Record<string, unknown> };
      try {
        token = await strategy.refreshRetryTokenForRetry(token, {
          error: failure,
          errorType: errorType(failure),
          ...(retryAfterHint ? { retryAfterHint } : {}),
        });
      } catch {
        shaped.$metadata = { ...shaped.$metadata, attempts: token.getRetryCount() + 1, totalRetryDelay };
        throw failure;
      }
      const delay = token.getRetryDelay();
      totalRetryDelay += delay;
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** Keeps the offset between this clock and the service's, as the SDK's signer does; true when it changed. */
  #sampleClock(date: string | undefined): boolean {
    if (!date) return false;
    const serverTime = Date.parse(date);
    const offset = this.#config.systemClockOffset ?? 0;
    if (Number.isNaN(serverTime) || Math.abs(Date.now() + offset - serverTime) < CLOCK_SKEW_MS) return false;
    this.#config.systemClockOffset = serverTime - Date.now();
    return true;
  }
}

const WIRES = new WeakMap<DynamoDBClient, DynamoWire>();

/** The wire of `client`, one per client (its observers are watched once). */
export function wireOf(client: DynamoDBClient): DynamoWire {
  let wire = WIRES.get(client);
  if (!wire) {
    wire = new DynamoWire(client);
    WIRES.set(client, wire);
  }
  return wire;
}

export type { AttributeValue };
