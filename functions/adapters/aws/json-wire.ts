/**
 * AWS's JSON protocols (`x-amz-json-1.0`, `1.1`: DynamoDB, Secrets Manager) spoken on the wire for
 * the few requests every rotation makes, without the SDK's per-call machinery, with the client's
 * own endpoint, credentials, retry strategy and clock offset. The SDK spends ~0.4 ms of CPU on a
 * request beyond the request itself on loopback (resolving the command's middleware stack, its
 * schema serde, the endpoint rules, the user agent, its HTTP handler), ~0.1 ms here; a rotation
 * makes ~8 of them. What a request sends and what it answers are the protocol's JSON, the same
 * shapes the SDK's commands take and return (dates and binary values converted as it converts
 * them, by each service's {@link JsonProtocol}).
 *
 * What stays the SDK's: the endpoint, resolved once per operation and resource by the SDK's own
 * rules from the client's configuration; the credentials (the client's provider, refreshed as it
 * refreshes them); SigV4 (`@smithy/signature-v4`); the retry strategy of the client (adaptive:
 * its token bucket is shared with the client's other calls), fed the same error classes as the
 * SDK's retry middleware feeds it; the clock offset the SDK corrects on a skew refusal; the
 * service's error classes and `$metadata`.
 *
 * Middleware that callers add to the client's stack at the `initialize` step (the specs' and the
 * benches' request counters) runs around every request here as around the SDK's. A client whose
 * stack holds anything else beyond the SDK's own middleware, or a client that is not the SDK's,
 * is sent its requests through `send` as before.
 */
import { randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { getEndpointFromInstructions } from '@smithy/core/endpoints';
import { loadJsonRpcErrorCode } from '@smithy/core/protocols';
import {
  getRetryAfterHint,
  isClockSkewError,
  isServerError,
  isThrottlingError,
  isTransientError,
} from '@smithy/core/retry';
import { TypeRegistry } from '@smithy/core/schema';
import { SignatureV4 } from '@smithy/signature-v4';
import { keepAliveAgent } from '../keep-alive.ts';
import { Sha256 } from './sha256.ts';
import { correctedClockOffset } from './signed-fetch.ts';

/** An SDK command class: its endpoint rules, and its name for the observers. */
// biome-ignore lint/suspicious/noExplicitAny: any command class of any client
export type CommandClass = new (input: any) => any;

/** One service's JSON protocol, and how its answers become what the SDK's commands answer. */
export interface JsonProtocol<Ops extends string> {
  /** `DynamoDBClient`: the observers' `context.clientName`. */
  clientName: string;
  /** SigV4's service name: `dynamodb`, `secretsmanager`. */
  signingName: string;
  /** `X-Amz-Target` is `<target>.<operation>`: `DynamoDB_20120810`, `secretsmanager`. */
  target: string;
  /** `application/x-amz-json-1.0` or `-1.1`. */
  contentType: string;
  commands: Record<Ops, CommandClass>;
  /** The input member the endpoint rules may read (`TableName`), if any: endpoints are kept per its value. */
  resourceMember?: string;
  /** Fills what the SDK fills in an input (an idempotency token). */
  prepare?: (operation: Ops, input: Record<string, unknown>) => Record<string, unknown>;
  /** The SDK's error for a refusal ({@link serviceError}). */
  error: (name: string, message: string, $metadata: AnswerMetadata) => Error;
  /** Converts an answer as the SDK's deserializer would (dates, binary values). */
  output?: (operation: Ops, answer: Record<string, unknown>) => Record<string, unknown>;
  /** Whether JSON keys name base64 binary values (`B`, `SecretBinary`): read back as bytes. */
  binaryKeys: ReadonlySet<string>;
}

/** The `$metadata` of an answer, as the SDK's errors and outputs carry it. */
export interface AnswerMetadata {
  httpStatusCode: number;
  requestId?: string;
}

/**
 * The SDK's error for a refusal named `name` by a service whose shapes live in `namespace`
 * (`com.amazonaws.dynamodb`): the class the client's schemas registered for it
 * (`ConditionalCheckFailedException`, `ResourceExistsException`…, with `$retryable` where the
 * SDK's has it), else `Base` (the service's exception) with that name, as the SDK makes an error
 * its model does not know.
 */
export function serviceError(
  namespace: string,
  Base: new (options: {
    name: string;
    message: string;
    $fault: 'client' | 'server';
    $metadata: AnswerMetadata;
  }) => Error,
) {
  return (name: string, message: string, $metadata: AnswerMetadata): Error => {
    const registry = TypeRegistry.for(namespace);
    let Known: (new (options: { message: string; $metadata: AnswerMetadata }) => Error) | undefined;
    try {
      Known = registry.getErrorCtor(registry.getSchema(`${namespace}#${name}`) as never) as typeof Known;
    } catch {
      Known = undefined;
    }
    if (Known) return new Known({ message, $metadata });
    return new Base({
      name,
      message,
      $fault: $metadata.httpStatusCode >= 500 ? 'server' : 'client',
      $metadata,
    });
  };
}

/**
 * The SDK's own middleware on a client's stack: the wire does their work itself. A stack
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

/** The part of a client's resolved configuration the wire uses. */
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

/**
 * An error's name as the SDK reads it from a JSON protocol's answer (the body's `__type`, else its
 * `code`, else the `x-amzn-errortype` header; `com.amazonaws.dynamodb.v20120810#Name` and
 * `Name:http://…` cut to `Name`), else one from the status.
 */
const errorName = (headers: IncomingMessage['headers'], body: unknown, status: number): string =>
  loadJsonRpcErrorCode({ statusCode: status, headers: headers as Record<string, string> }, body) ??
  (status >= 500 ? 'InternalServerError' : 'UnknownError');

/**
 * Sent as the user agent, so CloudTrail tells these requests apart from the SDK's (which it
 * records with the SDK's user agent): what a responder reading the trail sees.
 */
const USER_AGENT = 'keywarden (json-wire; node.js)';

/** A binary value (`B`, `SecretBinary`) goes base64 in JSON, as the SDK sends it. */
function binaryAsBase64(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array
    ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')
    : value;
}

/** An answer's JSON, the values under `binaryKeys` (base64) read back as bytes, as the SDK answers them. */
/**
 * A 2xx answer's JSON. One that is not JSON is refused with its size alone: V8's message quotes the
 * text around the fault, and a Secrets Manager answer's text is a secret value.
 */
function parseAnswer(text: string, binaryKeys: ReadonlySet<string>): Record<string, unknown> {
  try {
    return parseJson(text, binaryKeys);
  } catch {
    const error = new Error(`the answer (${Buffer.byteLength(text)} bytes) is not JSON`);
    error.name = 'UnreadableAnswer';
    throw error;
  }
}

function parseJson(text: string, binaryKeys: ReadonlySet<string>): Record<string, unknown> {
  if (text === '') return {};
  // Only an answer that may hold a binary value pays for the reviver.
  if (![...binaryKeys].some((key) => text.includes(`"${key}"`)))
    return JSON.parse(text) as Record<string, unknown>;
  const bytes = (value: unknown) =>
    typeof value === 'string' ? new Uint8Array(Buffer.from(value, 'base64')) : value;
  return JSON.parse(text, (key, value: unknown) => {
    if (!binaryKeys.has(key)) return value;
    return Array.isArray(value) ? value.map(bytes) : bytes(value);
  }) as Record<string, unknown>;
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
        agent: keepAliveAgent(url.protocol, MAX_SOCKETS),
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
      const error = new Error(`no answer within ${ATTEMPT_TIMEOUT_MS} ms`);
      error.name = 'TimeoutError';
      request.destroy(error);
    });
    request.on('error', (error) => reject(lostError(error)));
    request.end(body);
  });
}

/** The retry class of an error, as the SDK's retry middleware tells it. */
function errorType(error: Error): string {
  const shaped = error as Error & { $metadata?: { httpStatusCode?: number }; code?: string };
  if (isThrottlingError(shaped as never)) return 'THROTTLING';
  if (isTransientError(shaped as never)) return 'TRANSIENT';
  if (isServerError(shaped as never)) return 'SERVER_ERROR';
  return 'CLIENT_ERROR';
}

/**
 * The wire of one client ({@link wireOf}): sends its protocol's operations as the client would,
 * with the client's observers around each.
 */
export class JsonWire<Ops extends string> {
  readonly #client: { send: (command: unknown) => Promise<unknown> };
  readonly #protocol: JsonProtocol<Ops>;
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
  /** The observers resolved around each operation's request. */
  readonly #observed = new Map<Ops, (args: { input: unknown }) => Promise<{ output: unknown }>>();

  constructor(client: SdkClient, protocol: JsonProtocol<Ops>) {
    this.#client = client as unknown as { send: (command: unknown) => Promise<unknown> };
    this.#protocol = protocol;
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

  /** Sends `operation` with `input` (what its SDK command takes); answers what the command answers. */
  send(operation: Ops, input: object): Promise<unknown> {
    if (this.#observers === undefined) {
      this.#observers = this.#readStack();
      this.#observed.clear();
    }
    const observers = this.#observers;
    if (observers === null) return this.#client.send(new this.#protocol.commands[operation](input));
    if (observers === false) return this.#request(operation, input);
    // Resolved once per operation (until the stack changes), as the SDK's `cacheMiddleware` does.
    let handler = this.#observed.get(operation);
    if (!handler) {
      handler = observers.resolve(
        async (args) => ({ output: await this.#request(operation, args.input as object), response: {} }),
        { clientName: this.#protocol.clientName, commandName: `${operation}Command` },
      );
      this.#observed.set(operation, handler);
    }
    return handler({ input }).then((result) => result.output);
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

  #endpoint(operation: Ops, input: Record<string, unknown>): Promise<URL> {
    const member = this.#protocol.resourceMember;
    const resource = member === undefined ? undefined : input[member];
    const key = `${operation}\u0000${typeof resource === 'string' ? resource : ''}`;
    let endpoint = this.#endpoints.get(key);
    if (!endpoint) {
      endpoint = getEndpointFromInstructions(
        member === undefined ? {} : { [member]: resource },
        this.#protocol.commands[operation] as never,
        this.#config as never,
      ).then((resolved) => resolved.url);
      // A failed resolution is tried again by the next request.
      endpoint.catch(() => this.#endpoints.delete(key));
      this.#endpoints.set(key, endpoint);
    }
    return endpoint;
  }

  async #sign(url: URL, operation: Ops, body: string) {
    this.#region ??= this.#config.region();
    const region = await this.#region;
    this.#signer ??= new SignatureV4({
      service: this.#protocol.signingName,
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
          // Not signed (SigV4 leaves it out), sent.
          'user-agent': USER_AGENT,
          'content-type': this.#protocol.contentType,
          'x-amz-target': `${this.#protocol.target}.${operation}`,
          'content-length': String(Buffer.byteLength(body)),
        },
        body,
      },
      { signingDate: new Date(Date.now() + (this.#config.systemClockOffset ?? 0)) },
    );
    return signed.headers as Record<string, string>;
  }

  /** One request with the client's retry strategy: what the SDK's retry middleware does around its attempts. */
  async #request(operation: Ops, given: object): Promise<Record<string, unknown>> {
    const protocol = this.#protocol;
    const input = protocol.prepare
      ? protocol.prepare(operation, { ...given })
      : (given as Record<string, unknown>);
    const body = JSON.stringify(input, binaryAsBase64);
    const url = await this.#endpoint(operation, input);
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
          const parsed = parseAnswer(answer.text, protocol.binaryKeys);
          return {
            ...(protocol.output ? protocol.output(operation, parsed) : parsed),
            $metadata: {
              httpStatusCode: answer.status,
              ...(requestId ? { requestId } : {}),
              attempts: token.getRetryCount() + 1,
              totalRetryDelay,
            },
          };
        }
        const parsed = (() => {
          try {
            return JSON.parse(answer.text) as { __type?: unknown; message?: unknown; Message?: unknown };
          } catch {
            return {};
          }
        })();
        const message = parsed.message ?? parsed.Message;
        failure = protocol.error(
          errorName(answer.headers, parsed, answer.status),
          typeof message === 'string' ? message : `HTTP ${answer.status}`,
          { httpStatusCode: answer.status, ...(requestId ? { requestId } : {}) },
        );
        if (skewCorrected && isClockSkewError(failure as never)) {
          (
            failure as unknown as { $metadata: { clockSkewCorrected?: boolean } }
          ).$metadata.clockSkewCorrected = true;
        }
        retryAfterHint = getRetryAfterHint({ statusCode: answer.status, headers: answer.headers });
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
    const corrected = correctedClockOffset(date, this.#config.systemClockOffset ?? 0);
    if (corrected === undefined) return false;
    this.#config.systemClockOffset = corrected;
    return true;
  }
}

/** What the wire needs of an SDK client (any client whose service speaks a JSON protocol). */
export interface SdkClient {
  config: unknown;
  middlewareStack: unknown;
  send: (command: never) => Promise<unknown>;
}

const WIRES = new WeakMap<object, JsonWire<string>>();

/** The wire of `client` for `protocol`, one per client (its observers are watched once). */
export function wireOf<Ops extends string>(client: SdkClient, protocol: JsonProtocol<Ops>): JsonWire<Ops> {
  let wire = WIRES.get(client) as JsonWire<Ops> | undefined;
  if (!wire) {
    wire = new JsonWire(client, protocol);
    WIRES.set(client, wire as unknown as JsonWire<string>);
  }
  return wire;
}

/** Fills an idempotency token the caller left out, as the SDK does (`ClientRequestToken`). */
export const withToken = (input: Record<string, unknown>, member: string): Record<string, unknown> =>
  input[member] === undefined ? { ...input, [member]: randomUUID() } : input;
