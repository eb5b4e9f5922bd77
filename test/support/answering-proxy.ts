/**
 * A small reverse proxy on 127.0.0.1 in front of moto that answers chosen requests itself
 * (an AWS error moto never gives: throttling, a key not yet propagated) and forwards the
 * rest untouched. For a seeded storm of faults over many requests, use fault-proxy.ts.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An answer the proxy gives instead of forwarding. */
export interface ProxyAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** A running proxy. */
export interface AnsweringProxy {
  /** `http://127.0.0.1:<port>`: point a client here instead of at the target. */
  readonly url: string;
  close(): Promise<void>;
}

/** An AWS query-protocol (IAM, STS) error answer, as those services send it. */
export function awsQueryError(status: number, xmlns: string, code: string, message: string): ProxyAnswer {
  return {
    status,
    contentType: 'text/xml',
    body:
      `<ErrorResponse xmlns="${xmlns}"><Error><Type>Sender</Type><Code>${code}</Code>` +
      `<Message>${message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>`,
  };
}

/**
 * Starts a proxy in front of `target` (a base URL). `answer` sees each request's body
 * and returns what to answer instead, or undefined to forward it.
 */
export async function startAnsweringProxy(
  target: string,
  answer: (body: string) => ProxyAnswer | undefined,
): Promise<AnsweringProxy> {
  const upstream = new URL(target);
  const proxy = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const body = Buffer.concat(chunks);
      const own = answer(body.toString('utf8'));
      if (own) {
        outgoing.writeHead(own.status, { 'content-type': own.contentType });
        outgoing.end(own.body);
        return;
      }
      const forwarded = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: incoming.method,
          path: incoming.url,
          headers: { ...incoming.headers, host: upstream.host },
        },
        (response) => {
          outgoing.writeHead(response.statusCode ?? 502, response.headers);
          response.pipe(outgoing);
        },
      );
      forwarded.on('error', () => outgoing.destroy());
      forwarded.end(body);
    });
  });
  await new Promise<void>((listening) => proxy.listen(0, '127.0.0.1', listening));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    close: () => new Promise((closed) => proxy.close(() => closed())),
  };
}
