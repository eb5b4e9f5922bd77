/**
 * The local runtime: what API Gateway, EventBridge Scheduler and Lambda's async invocation
 * do in AWS, done in one process on a laptop, calling the very same handlers.
 *
 * - An HTTP server on loopback in front of the API handler (functions/handlers/api.ts,
 *   functions/api/).
 *   Where API Gateway checks a SigV4 signature, it checks a per-user development token
 *   (`Authorization: Bearer …`, handed out by `keywarden dev up`) and passes the user on
 *   as the caller; the handler refuses a signed route without one (401), as it refuses an
 *   unsigned event in AWS. Slack routes never read the header: the handler checks Slack's
 *   signature with the local signing secret. A body over 1 MB is answered 413, unkept.
 * - Every second, the grant-expiry schedules that are due in moto (which stores schedules
 *   but never fires them) are fired through the grant-expiry handler, then deleted as
 *   `ActionAfterCompletion: DELETE` would. `schedules: false` turns this path off, to show
 *   that access still ends without it.
 * - Every `sweepEveryMs`, the sweeper handler.
 * - Deferred Slack jobs run after the answer has gone, as the async self-invocation does.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import * as z from 'zod';
import {
  deleteGrantSchedule,
  dueGrantSchedules,
  ensureScheduleGroup,
} from '../adapters/aws/grant-expiry-scheduler.ts';
import { LocalCampaignLauncher } from '../adapters/campaign-launcher.ts';
import { type FinishedJob, forgeSettingsFromEnv } from '../adapters/scan/finished-job-log.ts';
import { SlackResponder } from '../adapters/slack/responder.ts';
import { VaultAuditUsage } from '../adapters/vault/audit-usage.ts';
import type { Services } from '../adapters/wiring.ts';
import { type CampaignApi, campaignApi } from '../api/campaigns.ts';
import type { DeferredJob } from '../api/deferred-jobs.ts';
import type { ApiDeps } from '../api/deps.ts';
import {
  type ApiEvent,
  type ApiResult,
  errorResult,
  MAX_BODY_BYTES,
  PayloadTooLargeError,
} from '../api/responses.ts';
import { runDeferred } from '../api/slack.ts';
import { SecretValue } from '../core/secret-value.ts';
import { makeHandler, webhookSecretsOf } from '../handlers/api.ts';
import { makeHandler as ciSweeperHandler, vaultUsesOf } from '../handlers/ci-sweeper.ts';
import { makeHandler as grantExpiryHandler } from '../handlers/grant-expiry.ts';
import { makeHandler as grantSweeperHandler } from '../handlers/grant-sweeper.ts';
import { jobLogScanner } from './job-log-scan.ts';
import { LocalRevocationRunner } from './revocation-runner.ts';

/** The development users and their tokens; written by `keywarden dev up`, mode 0600. */
export const DevUsersSchema = z.object({ users: z.record(z.string(), z.string()) });
export type DevUsers = z.infer<typeof DevUsersSchema>;

/** Where the runtime says it listens. */
export const RuntimeInfoSchema = z.object({ url: z.url(), pid: z.number().int(), startedAt: z.string() });
export type RuntimeInfo = z.infer<typeof RuntimeInfoSchema>;

export const devUsersFile = (stateDir: string) => join(stateDir, 'dev-users.json');
export const slackSecretFile = (stateDir: string) => join(stateDir, 'slack-signing-secret');
export const runtimeFile = (stateDir: string) => join(stateDir, 'runtime.json');

/** Adds a development token for each user that has none; returns them all. */
export function ensureDevUsers(stateDir: string, users: readonly string[]): DevUsers {
  const file = devUsersFile(stateDir);
  const current: DevUsers = existsSync(file)
    ? DevUsersSchema.parse(JSON.parse(readFileSync(file, 'utf8')))
    : { users: {} };
  for (const user of users) current.users[user] ??= `kwdev_${randomBytes(24).toString('hex')}`;
  writeFileSync(file, JSON.stringify(current, null, 2), { mode: 0o600 });
  return current;
}

/** The local Slack signing secret, made on first use (mode 0600). */
export function ensureSlackSecret(stateDir: string): SecretValue {
  const file = slackSecretFile(stateDir);
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  return new SecretValue(readFileSync(file, 'utf8').trim());
}

export interface LocalRuntimeOptions {
  stateDir: string;
  services: Services;
  /** Fire due grant-expiry schedules (the second guarantee). Default true. */
  schedules?: boolean;
  sweepEveryMs?: number;
  port?: number;
  campaigns?: CampaignApi;
  /** How often `/revoke` posts progress to Slack. Default 5 s. */
  progressEveryMs?: number;
  log?: (line: string) => void;
}

export interface LocalRuntime {
  url: string;
  /** Resolves when every deferred job and timer round in flight has finished. */
  stop(): Promise<void>;
  /** One round of due schedules and, with `sweep`, the sweeper (tests call it instead of waiting). */
  tick(sweep?: boolean): Promise<void>;
}

/**
 * Who a request's `Authorization` header names: a user of a known development token, an
 * unknown token (refused 401 by the handler where a route needs a caller), or nobody (no
 * header, or an empty one). The runtime refuses nothing itself: the handler decides per
 * route, as behind API Gateway, so a Slack route never reads the header at all.
 */
function callerOf(
  users: DevUsers,
  header: string | undefined,
): { localUser?: string; unknownToken?: boolean } {
  if (!header?.trim()) return {};
  const token = /^Bearer (\S+)$/i.exec(header.trim())?.[1];
  if (!token) return { unknownToken: true };
  const given = Buffer.from(token);
  for (const [user, known] of Object.entries(users.users)) {
    const expected = Buffer.from(known);
    if (expected.length === given.length && timingSafeEqual(expected, given)) return { localUser: user };
  }
  return { unknownToken: true };
}

/**
 * The request body, or the size it reached when it is over {@link MAX_BODY_BYTES}: the rest is
 * read and dropped (so the client gets its 413 instead of a reset connection), never kept.
 */
async function readBody(request: IncomingMessage): Promise<{ body: string } | { tooLarge: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk as Buffer);
    else chunks.length = 0;
  }
  return size > MAX_BODY_BYTES ? { tooLarge: size } : { body: Buffer.concat(chunks).toString('utf8') };
}

/** The path and query of a request target, as API Gateway hands them over: the path still percent-encoded. */
function targetOf(url: string | undefined): { path: string; query: string } {
  const target = url ?? '/';
  const queryAt = target.indexOf('?');
  const path = queryAt < 0 ? target : target.slice(0, queryAt);
  const query = queryAt < 0 ? '' : target.slice(queryAt + 1);
  // An absolute-form target (`GET http://host/path`) names the path after its authority.
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/]*(\/.*)?$/i.exec(path);
  return { path: absolute ? (absolute[1] ?? '/') : path, query };
}

/** The API Gateway (payload 2.0) event for a request, as the handler expects it. */
function toEvent(
  request: IncomingMessage,
  body: string,
  caller: { localUser?: string; unknownToken?: boolean },
): ApiEvent {
  const { path, query } = targetOf(request.url);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  }
  const method = (request.method ?? 'GET').toUpperCase();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: query,
    headers,
    // URLSearchParams decodes leniently: a bad escape stays as written, it never throws.
    queryStringParameters: Object.fromEntries(new URLSearchParams(query)),
    body,
    isBase64Encoded: false,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: '127.0.0.1',
      domainPrefix: 'local',
      requestId: randomBytes(8).toString('hex'),
      routeKey: '$default',
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
      http: {
        method,
        path,
        protocol: 'HTTP/1.1',
        sourceIp: request.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      ...(caller.localUser || caller.unknownToken ? { authorizer: { lambda: caller } } : {}),
    },
  } as ApiEvent;
}

/** The most a request line and its headers may hold, in bytes. */
const MAX_HEADER_BYTES = 256 * 1024;

export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const { services, stateDir } = options;
  const log = options.log ?? (() => {});
  const logger = new Logger({ serviceName: 'keywarden-local', logLevel: 'SILENT' });
  await ensureScheduleGroup(services.aws.scheduler, services.config.breakglass.scheduleGroup);
  const responder = new SlackResponder({ allowedHosts: ['127.0.0.1', 'hooks.slack.com'] });
  const inFlight = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    const settled = work.catch((error: unknown) =>
      log(`background work failed: ${(error as Error).message}`),
    );
    inFlight.add(settled);
    void settled.finally(() => inFlight.delete(settled));
  };
  // Job logs are scanned on completion webhooks when the runtime may read them (GITHUB_TOKEN, GITLAB_TOKEN).
  const forge = forgeSettingsFromEnv(process.env);
  const scanJobLog =
    forge.github.token || forge.gitlab.token ? jobLogScanner(services, forge, log) : undefined;
  if (scanJobLog) {
    log(
      `finished jobs' logs are scanned on their completion webhooks (${[forge.github.token ? `GitHub at ${forge.github.api}` : '', forge.gitlab.token ? `GitLab at ${forge.gitlab.url}` : ''].filter(Boolean).join(', ')})`,
    );
  }
  const deps: ApiDeps = {
    breakglass: services.breakglassDeps,
    acceptLocalPrincipals: true,
    log,
    region: services.config.aws.region,
    vaultAddr: services.config.vault?.addr,
    report: services.grantReportOf,
    campaigns:
      options.campaigns ??
      campaignApi(
        services,
        new LocalCampaignLauncher({
          runner: new LocalRevocationRunner({ services, actor: 'api:revocation' }),
          campaigns: services.store,
          log,
        }),
      ),
    progress: { everyMs: options.progressEveryMs ?? 5_000, deadlineMs: 25 * 60_000 },
    ci: {
      exchange: services.ciExchangeDeps,
      webhookSecrets: webhookSecretsOf(services.config),
      ...(scanJobLog
        ? {
            scanJobLog: async (job: FinishedJob) =>
              // After the answer: GitHub and GitLab wait seconds for it; a scan may take longer.
              void setImmediate(() =>
                track(
                  scanJobLog(job).then((scan) =>
                    log(
                      `job log ${scan.location}: ${scan.hits} credential(s), ${scan.managed} keywarden's, ${scan.contained} contained`,
                    ),
                  ),
                ),
              ),
          }
        : {}),
    },
    approvals: services.approvalDeps,
    slack: {
      signingSecret: ensureSlackSecret(stateDir),
      ledger: services.breakglassStore,
      respond: (url, message) => responder.respond(url, message),
      defer: async (job: DeferredJob) => {
        // After the answer, like the async self-invocation in AWS.
        setImmediate(() => track(runDeferred(deps, job)));
      },
    },
  };
  const api = makeHandler(deps);
  const expiry = grantExpiryHandler({ breakglass: services.breakglassDeps, logger });
  const sweeper = grantSweeperHandler({ breakglass: services.breakglassDeps, logger });
  const auditLog = services.config.vault?.auditLog;
  const ciSweeper = ciSweeperHandler({
    exchange: services.ciExchangeDeps,
    vaultUses:
      services.vault && auditLog
        ? vaultUsesOf(new VaultAuditUsage({ client: services.vault, logFile: auditLog }))
        : undefined,
    logger,
  });

  const answer = (response: ServerResponse, result: ApiResult) => {
    if (response.headersSent || response.destroyed) return;
    response.writeHead(result.statusCode, result.headers as Record<string, string> | undefined);
    response.end(result.body);
  };
  // Request line and headers up to 256 KB (Node's default is 16 KB): every query the API
  // description allows (a 4,096-character nextToken, percent-encoded) reaches the handler.
  const server: Server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (request, response) => {
    const requestId = randomBytes(8).toString('hex');
    void (async () => {
      try {
        const read = await readBody(request);
        if ('tooLarge' in read) {
          answer(response, errorResult(new PayloadTooLargeError(`${read.tooLarge} bytes`), requestId, log));
          return;
        }
        // Re-read each time: `dev up --users` may add users while the runtime runs.
        const users = DevUsersSchema.parse(JSON.parse(readFileSync(devUsersFile(stateDir), 'utf8')));
        const caller = callerOf(users, request.headers.authorization);
        answer(response, await api(toEvent(request, read.body, caller)));
      } catch (error) {
        // A fault of the runtime itself (its users file unreadable…): 500 in the API's error shape.
        answer(
          response,
          errorResult(error, requestId, (line) => log(`local runtime: ${line}`)),
        );
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const fireDue = async () => {
    const group = services.config.breakglass.scheduleGroup;
    for (const due of await dueGrantSchedules(services.aws.scheduler, group, services.clock.now())) {
      const { outcome } = await expiry({ grantId: due.grantId });
      await deleteGrantSchedule(services.aws.scheduler, group, due.name);
      log(`schedule ${due.name} fired: ${outcome}`);
    }
  };
  const sweep = async () => {
    const { expired } = await sweeper();
    if (expired.length) log(`sweeper ended ${expired.join(', ')}`);
    const ci = await ciSweeper();
    if (ci.expired || ci.released || ci.usesRecorded) {
      log(
        `CI sweeper: ${ci.expired} exchange(s) past their TTL, ${ci.released} deny(ies) released, ${ci.usesRecorded} use(s) recorded`,
      );
    }
  };
  let running: Promise<unknown> = Promise.resolve();
  const round = (withSweep: boolean) => {
    running = running
      .catch(() => {})
      .then(async () => {
        if (options.schedules !== false) await fireDue();
        if (withSweep) await sweep();
      });
    track(running);
    return running;
  };
  const scheduleTimer = setInterval(() => void round(false), 1_000);
  const sweepTimer = setInterval(() => void round(true), options.sweepEveryMs ?? 30_000);
  return {
    url,
    tick: async (withSweep = true) => {
      await round(withSweep);
    },
    stop: async () => {
      clearInterval(scheduleTimer);
      clearInterval(sweepTimer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...inFlight]);
    },
  };
}
