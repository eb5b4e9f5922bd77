/**
 * The CLI's door to keywarden's HTTP API. In AWS (`KEYWARDEN_API_URL` set) every request is
 * signed with SigV4 from the default credential chain, and API Gateway's IAM authorizer
 * makes the signer the caller. Locally, the request carries the development token that
 * `keywarden dev up` handed to the user running the CLI.
 */
import { existsSync, readFileSync } from 'node:fs';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '../functions/adapters/aws/sha256.ts';
import { KeywardenError } from '../functions/core/errors.ts';
import { localUser } from '../functions/local/dev.ts';
import { DevUsersSchema, devUsersFile } from '../functions/local/runtime.ts';
import { readRuntime } from '../functions/local/runtime-process.ts';
import { stateDir } from './context.ts';

/** An answer of the API that is not a success; the message is the API's own. */
export class ApiError extends KeywardenError {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiClient {
  /** Who the API will see as the caller, for messages. */
  readonly caller: string;
  call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
}

function localClient(): ApiClient {
  const dir = stateDir();
  const runtime = readRuntime(dir);
  if (!runtime) {
    throw new KeywardenError(
      'the local runtime is not running: start it with `keywarden dev up` (or set KEYWARDEN_API_URL to use AWS)',
    );
  }
  const user = localUser();
  const users = existsSync(devUsersFile(dir))
    ? DevUsersSchema.parse(JSON.parse(readFileSync(devUsersFile(dir), 'utf8')))
    : { users: {} };
  const token = users.users[user];
  if (!token) {
    throw new KeywardenError(
      `no development token for ${user}: run \`keywarden dev up --users ${user}\` to hand one out`,
    );
  }
  return {
    caller: `local:${user}`,
    call: (method, path, body) =>
      send(`${runtime.url}${path}`, method, body, { authorization: `Bearer ${token}` }),
  };
}

function awsClient(apiUrl: string): ApiClient {
  const region = process.env.AWS_REGION;
  if (!region)
    throw new KeywardenError("KEYWARDEN_API_URL is set, so AWS_REGION must be too (the API's region)");
  const signer = new SignatureV4({
    service: 'execute-api',
    region,
    credentials: defaultProvider(),
    sha256: Sha256,
  });
  return {
    caller: 'your AWS principal',
    call: async (method, path, body) => {
      const url = new URL(path, apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`);
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const signed = await signer.sign({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: { host: url.host, ...(payload ? { 'content-type': 'application/json' } : {}) },
        ...(payload ? { body: payload } : {}),
      });
      return send(url.toString(), method, body, signed.headers as Record<string, string>);
    },
  };
}

async function send<T>(
  url: string,
  method: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<T> {
  const response = await fetch(url, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = {};
  }
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } }).error;
    throw new ApiError(response.status, error?.code ?? 'http', error?.message ?? `HTTP ${response.status}`);
  }
  return parsed as T;
}

/** The API of the deployment the CLI talks to: AWS with `KEYWARDEN_API_URL`, else the local runtime. */
export const apiClient = (): ApiClient => {
  const url = process.env.KEYWARDEN_API_URL;
  return url ? awsClient(url) : localClient();
};
