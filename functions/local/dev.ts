/**
 * `keywarden dev`: the local runtime's lifecycle. Starts the real local stack,
 * writes the configuration the CLI and handlers read, creates the state table,
 * and (with the demo) seeds credentials and syncs the demo inventory.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { readStack, type StackEndpoints, startStack, stopStack } from '../../scripts/local-stack.ts';
import { ensureAlertTopic } from '../adapters/alerts/index.ts';
import { ensureStateTable } from '../adapters/aws/dynamodb-table.ts';
import { ensureApprovalKey, kmsClient } from '../adapters/aws/kms-approval-signer.ts';
import { type RuntimeConfig, RuntimeConfigSchema } from '../adapters/runtime-config.ts';
import { isBotToken } from '../adapters/slack/web-api-poster.ts';
import { wire } from '../adapters/wiring.ts';
import { localAwsEndpoint } from './aws-endpoint.ts';
import { seedDemo } from './demo-seed.ts';
import { ensureDevUsers, ensureSlackSecret, type RuntimeInfo, slackSecretFile } from './runtime.ts';
import { startRuntimeProcess, stopRuntimeProcess } from './runtime-process.ts';

export const LOCAL_TABLE = 'keywarden-state';

/** The variable that sets the local Slack signing secret when `dev up` is not given one. */
export const SLACK_SIGNING_SECRET_ENV = 'KEYWARDEN_SLACK_SIGNING_SECRET';

/** Printable, no spaces, 16 to 256 characters: Slack's own are 32 hex digits. */
const SIGNING_SECRET = /^[\x21-\x7e]{16,256}$/;

/**
 * Makes `secret` (else {@link SLACK_SIGNING_SECRET_ENV}, else the one already in the state
 * folder, else a random one) the local runtime's Slack signing secret, so a real Slack app (a
 * tunnel to the runtime) or a test can sign requests with a secret it already knows.
 *
 * @returns whether the stored secret changed (a running runtime must restart to use it).
 * @throws Error saying what is expected, never echoing the value.
 */
export function chooseLocalSlackSecret(
  stateDir: string,
  secret: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  const chosen = secret ?? (env[SLACK_SIGNING_SECRET_ENV] || undefined);
  const file = slackSecretFile(stateDir);
  const before = existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
  if (chosen === undefined) {
    ensureSlackSecret(stateDir);
    return false;
  }
  const value = chosen.trim();
  if (!SIGNING_SECRET.test(value)) {
    const from = secret === undefined ? SLACK_SIGNING_SECRET_ENV : '--slack-signing-secret';
    throw new Error(
      `${from}: expected a Slack signing secret of 16 to 256 printable characters without spaces (Slack app > Basic Information > Signing Secret), got ${value.length} character(s)`,
    );
  }
  if (value === before) return false;
  writeFileSync(file, value, { mode: 0o600 });
  return true;
}

/** The variables `dev up` reads Slack alerts from: the bot token, the channel, and (tests) Slack's API base. */
export const ALERT_SLACK_ENV = {
  botToken: 'KEYWARDEN_SLACK_BOT_TOKEN',
  channel: 'KEYWARDEN_ALERT_SLACK_CHANNEL',
  apiUrl: 'KEYWARDEN_SLACK_API_URL',
} as const;

type SlackAlerts = RuntimeConfig['alerts']['slack'];

/**
 * Slack alerts for the local stack: from {@link ALERT_SLACK_ENV} when both the bot token and the
 * channel are set, else as the previous `dev up` kept them, else none.
 *
 * @throws Error saying what is expected (one set without the other, a token not of a bot), never echoing the token.
 */
export function localSlackAlerts(env: NodeJS.ProcessEnv, previous: SlackAlerts): SlackAlerts {
  const botToken = env[ALERT_SLACK_ENV.botToken]?.trim() || undefined;
  const channel = env[ALERT_SLACK_ENV.channel]?.trim() || undefined;
  if (!botToken && !channel) return previous;
  if (!botToken || !channel) {
    throw new Error(
      `Slack alerts need both ${ALERT_SLACK_ENV.botToken} (the app's bot token, xoxb-…, with chat:write) and ${ALERT_SLACK_ENV.channel} (a channel id such as C0123456789); only ${botToken ? ALERT_SLACK_ENV.botToken : ALERT_SLACK_ENV.channel} is set`,
    );
  }
  if (!isBotToken(botToken)) {
    throw new Error(`${ALERT_SLACK_ENV.botToken}: expected a Slack bot token (xoxb-…), got something else`);
  }
  if (!/^[A-Z0-9]{2,32}$/.test(channel)) {
    throw new Error(
      `${ALERT_SLACK_ENV.channel}: expected a Slack channel id such as C0123456789, got ${JSON.stringify(channel.slice(0, 40))}`,
    );
  }
  const apiUrl = env[ALERT_SLACK_ENV.apiUrl]?.trim() || undefined;
  return { botToken, channel, ...(apiUrl ? { apiUrl } : {}) };
}

/** The local CI webhooks' secrets: what a test (or a tunnel from GitHub/GitLab) signs deliveries with. */
export interface LocalCiSecrets {
  githubWebhookSecret: string;
  gitlabWebhookSecret: string;
}

/** The runtime configuration for a running local stack. */
export function localConfig(
  stack: StackEndpoints,
  fingerprintKey: string,
  ci: LocalCiSecrets = { githubWebhookSecret: randomHex(), gitlabWebhookSecret: randomHex() },
): RuntimeConfig {
  return RuntimeConfigSchema.parse({
    ci,
    aws: localAwsEndpoint(stack),
    tableName: LOCAL_TABLE,
    fingerprintKey,
    discovery: { iamPathPrefix: '/', secretNamePrefix: 'ci/' },
    vault: {
      addr: stack.vault.addr,
      token: stack.vault.token,
      approleMounts: ['approle'],
      kvPrefixes: ['secret/ci/'],
      auditLog: stack.vault.auditLog,
    },
  });
}

/**
 * Brings the local stack up (or finds it running) and returns its configuration.
 * With `demo`, seeds the demo credentials once per stack.
 */
export async function devUp(
  stateDir: string,
  options: {
    demo: boolean;
    log: (line: string) => void;
    /** Development users to hand tokens to, besides whoever runs this. */
    users?: readonly string[];
    /** Start the local runtime (HTTP API, schedules, sweeper) in the background. Default true. */
    runtime?: boolean;
    /** The local Slack signing secret; default {@link SLACK_SIGNING_SECRET_ENV}, else kept or generated. */
    slackSigningSecret?: string | undefined;
  },
): Promise<{ config: RuntimeConfig; seeded: boolean; runtime?: RuntimeInfo }> {
  const stack = await startStack(stateDir, options.log);
  const configFile = join(stateDir, 'config.json');
  const previous = existsSync(configFile)
    ? RuntimeConfigSchema.safeParse(JSON.parse(readFileSync(configFile, 'utf8')))
    : undefined;
  // A new stack gets a new fingerprint key; a running one keeps its own.
  const fingerprintKey =
    previous?.success && previous.data.vault?.addr === stack.vault.addr
      ? previous.data.fingerprintKey
      : randomBytes(32).toString('hex');
  const kept =
    previous?.success && previous.data.vault?.addr === stack.vault.addr ? previous.data.ci : undefined;
  const config = localConfig(stack, fingerprintKey, {
    githubWebhookSecret: kept?.githubWebhookSecret ?? randomHex(),
    gitlabWebhookSecret: kept?.gitlabWebhookSecret ?? randomHex(),
  });
  // Containment alerts: the alert topic on moto (CreateTopic is idempotent: one per stack), and
  // Slack from the environment or as the last `dev up` kept it.
  config.alerts = {
    topicArn: await ensureAlertTopic(config.aws),
    slack: localSlackAlerts(process.env, previous?.success ? previous.data.alerts.slack : undefined),
  };
  options.log(
    `containment alerts: ${config.alerts.topicArn}${config.alerts.slack ? ` and Slack channel ${config.alerts.slack.channel}` : ` (Slack too with ${ALERT_SLACK_ENV.botToken} and ${ALERT_SLACK_ENV.channel})`}`,
  );
  // A running runtime read its configuration when it started: it restarts to alert where configured now.
  const alertsChanged =
    previous?.success === true && JSON.stringify(previous.data.alerts) !== JSON.stringify(config.alerts);
  writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });
  const services = wire(config);
  await ensureStateTable(services.aws.dynamodb, config.tableName);
  // The key artifact approvals are signed with (moto serves KMS): created once per stack.
  await ensureApprovalKey(kmsClient(config.aws), config.ci.approvalKeyId);

  let seeded = false;
  const marker = join(stateDir, `demo-seeded-${stack.startedAt.replace(/[^0-9]/g, '')}`);
  if (options.demo && !existsSync(marker)) {
    if (!services.vault) throw new Error('the demo needs Vault, and the local configuration has none');
    options.log('seeding the demo credentials into moto and OpenBao…');
    await seedDemo({
      iam: services.aws.iam,
      secrets: services.aws.secrets,
      vault: services.vault,
      aws: config.aws,
    });
    writeFileSync(marker, stack.startedAt);
    seeded = true;
  }
  ensureDevUsers(stateDir, [localUser(), ...(options.users ?? [])]);
  // Checked before the runtime starts: the runtime reads the secret once, when it starts.
  const secretChanged = chooseLocalSlackSecret(stateDir, options.slackSigningSecret);
  if (options.runtime === false) return { config, seeded };
  if (secretChanged || alertsChanged) {
    options.log(
      `${secretChanged ? 'Slack signing secret' : 'where alerts go'} changed: restarting the local runtime to use it`,
    );
    await stopRuntimeProcess(stateDir);
  }
  return { config, seeded, runtime: await startRuntimeProcess(stateDir) };
}

const randomHex = (): string => randomBytes(32).toString('hex');

/** Who runs the CLI locally: `KEYWARDEN_ACTOR`, else the OS user. */
export const localUser = (): string => process.env.KEYWARDEN_ACTOR ?? userInfo().username;

/** Stops the local stack; its data is gone with it (moto, dynalite and OpenBao keep state in memory). */
export async function devDown(stateDir: string): Promise<boolean> {
  await stopRuntimeProcess(stateDir);
  const stopped = await stopStack(stateDir);
  rmSync(join(stateDir, 'config.json'), { force: true });
  return stopped;
}

export { readStack };
