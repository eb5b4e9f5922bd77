/**
 * A fault-injecting reverse proxy for tests, on 127.0.0.1, in front of a real server
 * of the local stack (moto or OpenBao). DESIGN: "Throttling and faults are tested with
 * a fault-injecting proxy in front of the real servers" — moto never throttles, and
 * neither server drops a connection on request.
 *
 * Each request either passes through untouched or gets one fault, drawn from a seeded
 * PRNG so a run's sequence of decisions is reproducible (which request meets which
 * decision still follows arrival order when requests run concurrently):
 * - `throttled` — answered by the proxy in the target's own dialect: AWS JSON protocol
 *   (DynamoDB, Secrets Manager) `{"__type":"…ThrottlingException"}` with HTTP 400, AWS
 *   query protocol (IAM, STS) an XML `ErrorResponse` with `Throttling` and HTTP 400,
 *   Vault HTTP 429 `{"errors":["rate limit quota exceeded"]}`;
 * - `serverError` — HTTP 500 or 503, also in the target's dialect;
 * - `droppedBeforeForward` — the connection is destroyed before the server saw anything;
 * - `droppedAfterForward` — the server did the work, then the client's connection is
 *   destroyed before it hears back: the nasty case for non-idempotent calls.
 *
 * Why node:net and a small HTTP/1.1 parser rather than `http.createServer`: Vault lists
 * with the `LIST` method, which Node's HTTP server parser refuses (HPE_INVALID_METHOD)
 * before any handler runs. The upstream side is node:http, whose client sends any method.
 *
 * No vitest import here: a benchmark or a script can use it as well as a spec.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Agent, request, STATUS_CODES } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { RuntimeConfig, RuntimeConfigInput } from '../../functions/adapters/runtime-config.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';

/** The wire dialect of a request, which decides how an injected error must look. */
export type Dialect = 'aws-json' | 'aws-query' | 'aws-rest-json' | 'aws-rest-xml' | 'vault' | 'unknown';

/** One request as the proxy parsed it, given to `match`. */
export interface FaultRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  /** Header names lower-cased. */
  headers: Readonly<Record<string, string>>;
  body: Buffer;
  dialect: Dialect;
  /** The AWS service from the SigV4 credential scope (`iam`, `dynamodb`…), or `vault`. */
  service: string;
  /** The AWS operation (`CreateAccessKey`, `PutItem`…), or Vault's `METHOD path`. */
  operation: string;
}

/** The faults the proxy can inject. */
export type FaultKind = 'throttled' | 'serverError' | 'droppedBeforeForward' | 'droppedAfterForward';
export const FAULT_KINDS: readonly FaultKind[] = [
  'throttled',
  'serverError',
  'droppedBeforeForward',
  'droppedAfterForward',
];

export interface FaultRates {
  /** Share of matching requests answered with a throttling error (0..1). */
  throttleRate?: number;
  /** Share answered with HTTP 500 or 503. */
  serverErrorRate?: number;
  /** Share whose connection is destroyed, before or after forwarding (see `dropAfterForwardShare`). */
  dropRate?: number;
  /** Of the drops, the share that happens after the server did the work (0..1, default 0.5). */
  dropAfterForwardShare?: number;
}

/**
 * A model of the service behind the proxy (test/support/aws-model.ts): for each request,
 * as it arrives, how long the service takes to answer and whether its quota refuses it.
 */
export interface TrafficModel {
  decide(request: FaultRequest): { latencyMs: number; throttled: boolean };
}

export interface FaultProxyOptions extends FaultRates {
  /** Base URL of the real server, such as `http://127.0.0.1:5000`. */
  target: string;
  /** Added latency before each request is handled. */
  delayMs?: number;
  /**
   * Latency and quotas on top of the faults: a request the model throttles is answered
   * with the service's throttling error (counted as a `throttled` fault) after its latency;
   * any other answer reaches the client no sooner than the drawn latency after the request
   * arrived (the real server's own time counts towards it, as a service's does in AWS).
   */
  model?: TrafficModel;
  /** PRNG seed; the same seed gives the same sequence of decisions. Default 1. */
  seed?: number;
  /** Which requests may meet a fault; the others always pass through. Default: all. */
  match?: (request: FaultRequest) => boolean;
}

/** One injected fault, for reports and assertions. */
export interface FaultRecord {
  kind: FaultKind;
  /** For `serverError`: 500 or 503. */
  status?: number;
  dialect: Dialect;
  service: string;
  operation: string;
}

/** What the proxy has done so far. */
export interface FaultCounts {
  /** Every request received. */
  requests: number;
  /** Requests whose server answer reached the client. */
  forwarded: number;
  throttled: number;
  serverError: number;
  droppedBeforeForward: number;
  droppedAfterForward: number;
  /**
   * Injected faults followed, within a minute, by the same request again (same method,
   * URL, operation and body): the client retried. AWS SDK retries re-sign, so the
   * signature is left out of the comparison.
   */
  retriedAfter: Record<FaultKind, number>;
}

/** A running proxy; see the module comment. */
export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: point a client here instead of at `target`. */
  readonly url: string;
  readonly counts: FaultCounts;
  /** Every fault injected, in order. */
  readonly faults: readonly FaultRecord[];
  /** Changes the rates from the next request on (a storm starts or ends). */
  setRates(rates: FaultRates): void;
  /** Zeroes the counters and the fault log. */
  resetCounts(): void;
  /** Stops listening and ends every open connection. */
  close(): Promise<void>;
}

/** mulberry32: a small, fast, seedable PRNG with a 2^32 period; plenty for fault draws. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** How long a faulted request is remembered, to recognise the client's retry of it. */
const RETRY_WINDOW_MS = 60_000;
/** Headers that belong to one connection, never forwarded as they are. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade']);

const checkRate = (name: string, value: number | undefined): number => {
  const rate = value ?? 0;
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`fault proxy: expected ${name} in 0..1, got ${rate}`);
  return rate;
};

/** Starts a proxy on a free loopback port in front of `options.target`. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  if (target.protocol !== 'http:') {
    throw new RangeError(`fault proxy: expected an http:// target on the local stack, got ${options.target}`);
  }
  const random = seededRandom(options.seed ?? 1);
  let rates = { throttle: 0, serverError: 0, drop: 0, dropAfter: 0.5 };
  const setRates = (next: FaultRates) => {
    const throttle = checkRate('throttleRate', next.throttleRate);
    const serverError = checkRate('serverErrorRate', next.serverErrorRate);
    const drop = checkRate('dropRate', next.dropRate);
    const dropAfter = checkRate('dropAfterForwardShare', next.dropAfterForwardShare ?? 0.5);
    if (throttle + serverError + drop > 1) {
      throw new RangeError(
        `fault proxy: expected the rates to add up to at most 1, got ${throttle + serverError + drop}`,
      );
    }
    rates = { throttle, serverError, drop, dropAfter };
  };
  setRates(options);
  const delayMs = options.delayMs ?? 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const sockets = new Set<Socket>();
  const counts: FaultCounts = emptyCounts();
  const faults: FaultRecord[] = [];
  /** Fingerprints of faulted requests → kind and when, to count the client's retries. */
  const awaitingRetry = new Map<string, { kind: FaultKind; at: number }[]>();

  const noteRetry = (fingerprint: string) => {
    const waiting = awaitingRetry.get(fingerprint);
    if (!waiting) return;
    const now = Date.now();
    const fresh = waiting.filter((entry) => now - entry.at < RETRY_WINDOW_MS);
    const first = fresh.shift();
    if (first) counts.retriedAfter[first.kind] += 1;
    if (fresh.length) awaitingRetry.set(fingerprint, fresh);
    else awaitingRetry.delete(fingerprint);
  };

  const recordFault = (record: FaultRecord, fingerprint: string) => {
    counts[record.kind] += 1;
    faults.push(record);
    const waiting = awaitingRetry.get(fingerprint) ?? [];
    waiting.push({ kind: record.kind, at: Date.now() });
    awaitingRetry.set(fingerprint, waiting);
  };

  /** Handles one complete request; resolves once it is answered (or its connection destroyed). */
  const handle = async (socket: Socket, parsed: ParsedRequest): Promise<'open' | 'closed'> => {
    counts.requests += 1;
    const arrived = performance.now();
    const described = describe(parsed);
    const fingerprint = fingerprintOf(described);
    noteRetry(fingerprint);
    const modelled = options.model?.decide(described);
    /** Holds an answer until the modelled latency has passed since the request arrived. */
    const modelledLatency = async () => {
      const left = arrived + (modelled?.latencyMs ?? 0) - performance.now();
      if (left > 0) await sleep(left);
    };
    if (delayMs > 0) await sleep(delayMs);
    // Always two draws per request, so the sequence stays aligned whatever is decided.
    const draw = random();
    const detail = random();
    const mayFault = options.match ? options.match(described) : true;
    const fault: FaultKind | undefined = !mayFault
      ? undefined
      : draw < rates.throttle
        ? 'throttled'
        : draw < rates.throttle + rates.serverError
          ? 'serverError'
          : draw < rates.throttle + rates.serverError + rates.drop
            ? detail < rates.dropAfter
              ? 'droppedAfterForward'
              : 'droppedBeforeForward'
            : undefined;
    const base = { dialect: described.dialect, service: described.service, operation: described.operation };
    if (modelled?.throttled) {
      // The quota refused it: the service answers without doing the work, as AWS does.
      recordFault({ kind: 'throttled', ...base }, fingerprint);
      await modelledLatency();
      writeResponse(socket, parsed, throttleAnswer(described));
      return parsed.keepAlive ? 'open' : 'closed';
    }
    if (fault === 'droppedBeforeForward') {
      recordFault({ kind: fault, ...base }, fingerprint);
      socket.destroy();
      return 'closed';
    }
    if (fault === 'throttled' || fault === 'serverError') {
      const status = fault === 'throttled' ? undefined : detail < 0.5 ? 500 : 503;
      recordFault({ kind: fault, ...(status ? { status } : {}), ...base }, fingerprint);
      const answer = fault === 'throttled' ? throttleAnswer(described) : serverErrorAnswer(described, status);
      writeResponse(socket, parsed, answer);
      return parsed.keepAlive ? 'open' : 'closed';
    }
    let answer: UpstreamAnswer;
    try {
      answer = await forward(target, agent, parsed);
    } catch {
      // The real server failed to answer: the client sees a dropped connection, as it would.
      socket.destroy();
      return 'closed';
    }
    if (fault === 'droppedAfterForward') {
      recordFault({ kind: fault, ...base }, fingerprint);
      socket.destroy();
      return 'closed';
    }
    await modelledLatency();
    counts.forwarded += 1;
    writeResponse(socket, parsed, answer);
    return parsed.keepAlive ? 'open' : 'closed';
  };

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const reader = new RequestReader();
    let busy = false;
    /** Handles the requests buffered so far, one at a time, in order (HTTP/1.1 has no interleaving). */
    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          let next: ParsedRequest | undefined;
          try {
            next = reader.next();
          } catch {
            socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
            return;
          }
          if (!next) return;
          if (!next.complete) {
            if (next.expectContinue && reader.continueOnce()) socket.write('HTTP/1.1 100 Continue\r\n\r\n');
            return;
          }
          reader.consume();
          const after = await handle(socket, next).catch(() => {
            // A throwing `match`, say: the client sees a dropped connection rather than a hang.
            socket.destroy();
            return 'closed' as const;
          });
          if (after === 'closed') {
            if (!socket.destroyed) socket.end();
            return;
          }
        }
      } finally {
        busy = false;
      }
    };
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      // A pump already running reads this chunk when it loops back for the next request.
      void pump();
    });
  });
  await new Promise<void>((listening, failed) => {
    server.once('error', failed);
    server.listen(0, '127.0.0.1', () => listening());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fault proxy: no TCP address');

  return {
    url: `http://127.0.0.1:${address.port}`,
    counts,
    faults,
    setRates,
    resetCounts() {
      Object.assign(counts, emptyCounts());
      faults.length = 0;
      awaitingRetry.clear();
    },
    async close() {
      const closed = new Promise<void>((done) => server.close(() => done()));
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}

function emptyCounts(): FaultCounts {
  return {
    requests: 0,
    forwarded: 0,
    throttled: 0,
    serverError: 0,
    droppedBeforeForward: 0,
    droppedAfterForward: 0,
    retriedAfter: { throttled: 0, serverError: 0, droppedBeforeForward: 0, droppedAfterForward: 0 },
  };
}

const sleep = (ms: number) => new Promise<void>((wake) => setTimeout(wake, ms));

// ---- requests ------------------------------------------------------------------------------

interface ParsedRequest {
  method: string;
  url: string;
  /** [name, value] pairs as sent, names in their original case. */
  rawHeaders: [string, string][];
  headers: Record<string, string>;
  body: Buffer;
  keepAlive: boolean;
  expectContinue: boolean;
  /** False while the body is still arriving (only seen for `Expect: 100-continue`). */
  complete: boolean;
}

/**
 * Incremental HTTP/1.1 request reader: a head, then a body framed by `content-length`
 * or `transfer-encoding: chunked` (de-chunked here; forwarded with a length).
 */
class RequestReader {
  #buffer = Buffer.alloc(0);
  #consumed = 0;
  #continued = false;

  push(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
  }

  /** True the first time it is asked about the current request: `100 Continue` goes out once. */
  continueOnce(): boolean {
    if (this.#continued) return false;
    this.#continued = true;
    return true;
  }

  /** Drops the bytes of the request `next` last returned complete. */
  consume(): void {
    this.#buffer = this.#buffer.subarray(this.#consumed);
    this.#consumed = 0;
    this.#continued = false;
  }

  /** The next request, incomplete while its body is still arriving, or undefined before its head. */
  next(): ParsedRequest | undefined {
    const headEnd = this.#buffer.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      if (this.#buffer.length > 64 * 1024) throw new Error('request head too large');
      return undefined;
    }
    const lines = this.#buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
    const [method, url, version] = (lines.shift() ?? '').split(' ');
    if (!method || !url || !version?.startsWith('HTTP/1.')) throw new Error('bad request line');
    const rawHeaders: [string, string][] = [];
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error('bad header line');
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      rawHeaders.push([name, value]);
      const lower = name.toLowerCase();
      headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
    }
    const connection = (headers.connection ?? '').toLowerCase();
    const keepAlive =
      version === 'HTTP/1.1' ? !connection.includes('close') : connection.includes('keep-alive');
    const expectContinue = (headers.expect ?? '').toLowerCase() === '100-continue';
    const bodyStart = headEnd + 4;
    const framed = (headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')
      ? this.#chunked(bodyStart)
      : this.#sized(bodyStart, Number(headers['content-length'] ?? 0));
    const base = { method, url, rawHeaders, headers, keepAlive, expectContinue };
    if (!framed) return { ...base, body: Buffer.alloc(0), complete: false };
    this.#consumed = framed.end;
    return { ...base, body: framed.body, complete: true };
  }

  #sized(start: number, length: number): { body: Buffer; end: number } | undefined {
    if (!Number.isInteger(length) || length < 0) throw new Error('bad content-length');
    if (this.#buffer.length < start + length) return undefined;
    return { body: Buffer.from(this.#buffer.subarray(start, start + length)), end: start + length };
  }

  #chunked(start: number): { body: Buffer; end: number } | undefined {
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = this.#buffer.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = Number.parseInt(
        this.#buffer.subarray(at, lineEnd).toString('latin1').split(';')[0] ?? '',
        16,
      );
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      if (size === 0) {
        // Trailers (none expected) end with an empty line.
        const end = this.#buffer.indexOf('\r\n\r\n', lineEnd);
        if (end < 0) return undefined;
        return { body: Buffer.concat(parts), end: end + 4 };
      }
      if (this.#buffer.length < lineEnd + 2 + size + 2) return undefined;
      parts.push(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
}

/** The SigV4 credential scope names the service: `Credential=AKID/20240101/us-east-1/iam/aws4_request`. */
const SIGV4_SERVICE = /Credential=[^/]+\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/;

function describe(parsed: ParsedRequest): FaultRequest {
  const { method, url, headers, body } = parsed;
  const base = { method, url, headers, body };
  const awsService = SIGV4_SERVICE.exec(headers.authorization ?? '')?.[1];
  const vaultLike = headers['x-vault-token'] !== undefined || url.startsWith('/v1/');
  if (awsService === undefined && vaultLike) {
    return { ...base, dialect: 'vault', service: 'vault', operation: `${method} ${url.split('?')[0]}` };
  }
  const service = awsService ?? 'unknown';
  const target = headers['x-amz-target'];
  if (target !== undefined) {
    return { ...base, dialect: 'aws-json', service, operation: target.split('.').pop() ?? target };
  }
  if ((headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    const action = new URLSearchParams(body.toString('utf8')).get('Action') ?? 'unknown';
    return { ...base, dialect: 'aws-query', service, operation: action };
  }
  if (awsService === 's3')
    return { ...base, dialect: 'aws-rest-xml', service, operation: `${method} ${url}` };
  if (awsService !== undefined) {
    return { ...base, dialect: 'aws-rest-json', service, operation: `${method} ${url.split('?')[0]}` };
  }
  return { ...base, dialect: 'unknown', service, operation: `${method} ${url}` };
}

/** The same request again, as a client's retry sends it (signatures and dates left out). */
function fingerprintOf(request: FaultRequest): string {
  return createHash('sha256')
    .update(`${request.method} ${request.url} ${request.headers['x-amz-target'] ?? ''}\n`)
    .update(request.body)
    .digest('hex');
}

// ---- answers -------------------------------------------------------------------------------

interface UpstreamAnswer {
  status: number;
  rawHeaders: [string, string][];
  body: Buffer;
}

function forward(target: URL, agent: Agent, parsed: ParsedRequest): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    const headers: [string, string][] = parsed.rawHeaders.filter(
      ([name]) =>
        !HOP_BY_HOP.has(name.toLowerCase()) &&
        !['host', 'content-length', 'expect'].includes(name.toLowerCase()),
    );
    headers.push(['host', target.host], ['content-length', String(parsed.body.length)]);
    const upstream = request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        method: parsed.method,
        path: parsed.url,
        headers: headers.flat(),
      },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('error', reject);
        answer.on('end', () => {
          const rawHeaders: [string, string][] = [];
          for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) {
            rawHeaders.push([answer.rawHeaders[i] ?? '', answer.rawHeaders[i + 1] ?? '']);
          }
          resolve({ status: answer.statusCode ?? 502, rawHeaders, body: Buffer.concat(chunks) });
        });
      },
    );
    upstream.on('error', reject);
    upstream.end(parsed.body);
  });
}

function writeResponse(socket: Socket, parsed: ParsedRequest, answer: UpstreamAnswer): void {
  if (socket.destroyed) return;
  const noBody = parsed.method === 'HEAD' || answer.status === 204 || answer.status === 304;
  const headers = answer.rawHeaders.filter(([name]) => {
    const lower = name.toLowerCase();
    return !HOP_BY_HOP.has(lower) && (noBody || lower !== 'content-length');
  });
  if (!noBody) headers.push(['content-length', String(answer.body.length)]);
  headers.push(['connection', parsed.keepAlive ? 'keep-alive' : 'close']);
  const head =
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Unknown'}\r\n` +
    headers.map(([name, value]) => `${name}: ${value}\r\n`).join('') +
    '\r\n';
  socket.write(
    noBody ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), answer.body]),
  );
}

const json = (status: number, body: unknown, extra: [string, string][] = []): UpstreamAnswer => ({
  status,
  rawHeaders: [['content-type', 'application/json'], ...extra],
  body: Buffer.from(JSON.stringify(body)),
});

/**
 * The AWS query protocol's error (IAM, STS): `<ErrorResponse><Error><Type>Sender</Type>
 * <Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>…</RequestId>
 * </ErrorResponse>`, HTTP 400 for a throttled call — what AWS's knowledge center quotes
 * ("Throttling: Rate exceeded, status code: 400", re:Post iam-sts-throttling-error) and the
 * shape of the Smithy awsQuery protocol's errors.
 */
const queryError = (status: number, service: string, code: string, message: string): UpstreamAnswer => ({
  status,
  rawHeaders: [
    ['content-type', 'text/xml'],
    ['x-amzn-requestid', randomUUID()],
  ],
  body: Buffer.from(
    `<ErrorResponse xmlns="https://${service}.amazonaws.com/doc/"><Error><Type>${status >= 500 ? 'Receiver' : 'Sender'}</Type>` +
      `<Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
  ),
});

/**
 * The AWS JSON protocols' error (Smithy awsJson1_0 / awsJson1_1): the type in the body's
 * `__type` and in the `x-amzn-ErrorType` header (SDKs read the header first, then
 * `__type`), a `message`, and the HTTP status (400 for throttling).
 */
const jsonProtocolError = (request: FaultRequest, status: number, type: string, message: string) => {
  // DynamoDB's JSON is 1.0 and its types carry a namespace; Secrets Manager's is 1.1.
  const dynamo = request.service === 'dynamodb';
  return {
    status,
    rawHeaders: [
      ['content-type', dynamo ? 'application/x-amz-json-1.0' : 'application/x-amz-json-1.1'],
      ['x-amzn-requestid', randomUUID()],
      ['x-amzn-errortype', type],
    ] as [string, string][],
    body: Buffer.from(
      JSON.stringify({ __type: dynamo ? `com.amazonaws.dynamodb.v20120810#${type}` : type, message }),
    ),
  };
};

/** DynamoDB data-plane calls throttle on provisioned throughput; the rest (and other services) on request rate. */
const DYNAMO_DATA_PLANE =
  /^(?:(?:Get|Put|Update|Delete|BatchGet|BatchWrite|TransactGet|TransactWrite)Items?|Query|Scan)$/;

function throttleAnswer(request: FaultRequest): UpstreamAnswer {
  switch (request.dialect) {
    case 'vault':
      return json(429, { errors: ['rate limit quota exceeded'] }, [['retry-after', '1']]);
    case 'aws-json':
      return request.service === 'dynamodb' && DYNAMO_DATA_PLANE.test(request.operation)
        ? jsonProtocolError(
            request,
            400,
            'ProvisionedThroughputExceededException',
            'The level of configured provisioned throughput for the table was exceeded.',
          )
        : jsonProtocolError(request, 400, 'ThrottlingException', 'Rate exceeded');
    case 'aws-query':
      return queryError(400, request.service, 'Throttling', 'Rate exceeded');
    case 'aws-rest-json':
      return json(429, { message: 'Rate exceeded' }, [['x-amzn-errortype', 'ThrottlingException']]);
    case 'aws-rest-xml':
      return {
        status: 503,
        rawHeaders: [['content-type', 'application/xml']],
        body: Buffer.from(
          '<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
        ),
      };
    default:
      return { status: 429, rawHeaders: [['content-type', 'text/plain']], body: Buffer.from('slow down') };
  }
}

function serverErrorAnswer(request: FaultRequest, status: number | undefined): UpstreamAnswer {
  const code = status ?? 500;
  const unavailable = code === 503;
  switch (request.dialect) {
    case 'vault':
      // Vault answers 503 while sealed or a standby without an active node.
      return json(code, {
        errors: [unavailable ? 'Vault is sealed' : '1 error occurred:\n\t* internal error\n\n'],
      });
    case 'aws-json':
      return jsonProtocolError(
        request,
        code,
        unavailable
          ? 'ServiceUnavailable'
          : request.service === 'dynamodb'
            ? 'InternalServerError'
            : 'InternalServiceError',
        unavailable ? 'Service unavailable' : 'Internal failure',
      );
    case 'aws-query':
      return queryError(
        code,
        request.service,
        unavailable ? 'ServiceUnavailable' : 'InternalFailure',
        unavailable ? 'Service unavailable' : 'Internal failure',
      );
    case 'aws-rest-xml':
      return {
        status: code,
        rawHeaders: [['content-type', 'application/xml']],
        body: Buffer.from(
          `<Error><Code>${unavailable ? 'ServiceUnavailable' : 'InternalError'}</Code><Message>fault proxy</Message></Error>`,
        ),
      };
    default:
      return json(code, { message: 'Internal failure' }, [
        ['x-amzn-errortype', unavailable ? 'ServiceUnavailable' : 'InternalFailure'],
      ]);
  }
}

// ---- configuration -------------------------------------------------------------------------

/**
 * A runtime configuration whose endpoints are the given proxies' instead of the real
 * servers': `aws` fronts moto (every AWS service but DynamoDB), `dynamodb` fronts the
 * local DynamoDB (dynalite), `vault` fronts OpenBao. A server without a proxy is reached
 * directly. Everything else (table, key, token) is `base`'s.
 */
export function runtimeConfigThrough(
  proxies: {
    aws?: FaultProxy | undefined;
    dynamodb?: FaultProxy | undefined;
    vault?: FaultProxy | undefined;
  },
  base: RuntimeConfigInput,
): RuntimeConfig {
  if (proxies.vault && !base.vault) {
    throw new RangeError('runtimeConfigThrough: a Vault proxy needs base.vault (its token) to point it at');
  }
  return RuntimeConfigSchema.parse({
    ...base,
    aws: {
      ...base.aws,
      ...(proxies.aws ? { endpoint: proxies.aws.url } : {}),
      ...(proxies.dynamodb ? { dynamodbEndpoint: proxies.dynamodb.url } : {}),
    },
    ...(base.vault ? { vault: proxies.vault ? { ...base.vault, addr: proxies.vault.url } : base.vault } : {}),
  });
}

/**
 * Three proxies in front of the local stack: one for moto (IAM, STS, Secrets Manager, S3,
 * Scheduler), one for its DynamoDB (dynalite: the state store), one for OpenBao. Each gets
 * its own options (seed, rates); a spec that wants faults in the store sets the `dynamodb`
 * proxy's rates as well as the `aws` one's.
 */
export async function startStackProxies(
  stack: { moto: { endpoint: string }; dynamodb: { endpoint: string }; vault: { addr: string } },
  options: {
    aws?: Omit<FaultProxyOptions, 'target'>;
    dynamodb?: Omit<FaultProxyOptions, 'target'>;
    vault?: Omit<FaultProxyOptions, 'target'>;
  } = {},
): Promise<{ aws: FaultProxy; dynamodb: FaultProxy; vault: FaultProxy; close(): Promise<void> }> {
  const started = await Promise.allSettled([
    startFaultProxy({ ...options.aws, target: stack.moto.endpoint }),
    startFaultProxy({ ...options.dynamodb, target: stack.dynamodb.endpoint }),
    startFaultProxy({ ...options.vault, target: stack.vault.addr }),
  ]);
  const running = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = started.find((result) => result.status === 'rejected');
  if (failed) {
    await Promise.all(running.map((proxy) => proxy.close()));
    throw failed.reason;
  }
  const [aws, dynamodb, vault] = running as [FaultProxy, FaultProxy, FaultProxy];
  return {
    aws,
    dynamodb,
    vault,
    async close() {
      await Promise.all([aws.close(), dynamodb.close(), vault.close()]);
    },
  };
}

/** One line per proxy for a test's log: requests, faults by kind, and how many were retried. */
export function summarizeFaults(name: string, proxy: FaultProxy): string {
  const { counts } = proxy;
  const kinds = FAULT_KINDS.map((kind) => `${kind} ${counts[kind]} (retried ${counts.retriedAfter[kind]})`);
  return `${name}: ${counts.requests} requests, ${counts.forwarded} answered by the server; ${kinds.join(', ')}`;
}

/**
 * Faults grouped by service and operation. `normalize` folds operations that differ only
 * by a name or id (Vault paths) into one key, such as `GET /v1/secret/data/<name>`.
 */
export function faultsByOperation(
  proxy: FaultProxy,
  normalize: (operation: string) => string = (operation) => operation,
): Record<string, Record<FaultKind, number>> {
  const grouped: Record<string, Record<FaultKind, number>> = {};
  for (const fault of proxy.faults) {
    const key = `${fault.service} ${normalize(fault.operation)}`;
    grouped[key] ??= { throttled: 0, serverError: 0, droppedBeforeForward: 0, droppedAfterForward: 0 };
    grouped[key][fault.kind] += 1;
  }
  return grouped;
}
