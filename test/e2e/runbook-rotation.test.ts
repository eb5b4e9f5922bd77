import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAccessKeyCommand,
  DeleteAccessKeyCommand,
  type IAMClient,
  ListAccessKeysCommand,
} from '@aws-sdk/client-iam';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { Keys } from '../../functions/adapters/aws/dynamodb-store.ts';
import { RuntimeConfigSchema } from '../../functions/adapters/runtime-config.ts';
import { type Services, wire } from '../../functions/adapters/wiring.ts';
import type { AuditRecord } from '../../functions/core/audit.ts';
import type { CredentialVersion, RotationState } from '../../functions/core/credential-version.ts';
import type { Delivery } from '../../functions/core/identity.ts';
import { REPO_ROOT, StackEndpointsSchema } from '../../scripts/local-stack.ts';
import { keywardenEntry } from '../support/cli-entry.ts';
import { type CliResult, keywarden, processAlive } from './cli.ts';
import { extractCommands, fencedBlocks, type RunbookCommand, toArgv } from './runbook.ts';
import { expectRanAsWritten } from './runbook-checks.ts';

const RUNBOOK = join(REPO_ROOT, 'runbooks', 'rotation-failed-or-stuck.md');
const markdown = readFileSync(RUNBOOK, 'utf8');
const runbook = extractCommands(markdown);

/** What `keywarden status ID --json` prints. */
interface StatusJson {
  identity: { id: string; kind: string; status: string };
  rotation?: RotationState;
  nextDueAt?: string;
  versions: CredentialVersion[];
}

/** A CLI table as one line of words, so text wrapped inside a cell can be matched. */
const flat = (text: string) => text.replace(/[│┌┐└┘─┬┴]+/g, ' ').replace(/\s+/g, ' ');

/** An identity's versions and latest rotation. */
type Progress = Pick<StatusJson, 'rotation' | 'versions'>;

const current = (status: Progress) => status.versions.filter((v) => v.stage === 'current');

/**
 * The runbook, followed for real: a fresh local stack with the demo company, real
 * failures produced in it, and every ```sh command of the runbook run through the
 * real CLI, in the runbook's order, each exiting as the runbook says.
 *
 * What the on-call engineer does outside keywarden (the runbook's `# example` lines:
 * `aws iam delete-access-key`, `bao write …`) the test does with the AWS SDK and the
 * Vault client. Two things stand in for what the CLI cannot do: a crashed run is a
 * rotate process killed while OpenBao is paused (SIGSTOP), and the 5 minutes of its
 * lock pass by moving the lock's expiry into the past in DynamoDB.
 */
describe('runbook: a rotation failed or is stuck (runbooks/rotation-failed-or-stuck.md)', () => {
  const home = mkdtempSync(join(tmpdir(), 'kw-runbook-'));
  const inventory = join(home, 'identities.yaml');
  const env = { KEYWARDEN_HOME: home };
  const run = (...args: string[]) => keywarden(args, env);
  const ran = new Set<RunbookCommand>();
  let services: Services;
  let iam: IAMClient;
  let vaultPid: number;
  let motoPid: number;
  let dynamoPid: number;

  /** Runs one runbook command as written, with the placeholders filled in, and checks its exit code. */
  function runCommand(command: RunbookCommand, vars: Record<string, string>): CliResult {
    const argv = toArgv(command, vars);
    const result = run(...argv);
    ran.add(command);
    expectRanAsWritten(command, argv, result);
    return result;
  }

  /** The commands of the section whose heading starts with `heading`, run in the runbook's order. */
  function section(heading: string, vars: Record<string, string>) {
    const commands = runbook.commands.filter((c) => c.headings.some((h) => h.startsWith(heading)));
    expect(commands.length, `runbook section "${heading}…" has no commands`).toBeGreaterThan(0);
    const results = new Map<string, CliResult>();
    let next = 0;
    /** Runs the commands up to and including the one written `text`; the runbook's manual steps come after it. */
    const through = (text: string): CliResult => {
      const at = commands.findIndex((c, i) => i >= next && c.text === text);
      expect(at, `"${text}" is not among the remaining commands of "${heading}…"`).toBeGreaterThanOrEqual(0);
      for (; next <= at; next += 1) {
        const command = commands[next] as RunbookCommand;
        results.set(command.text, runCommand(command, vars));
      }
      return results.get(text) as CliResult;
    };
    const result = (text: string): CliResult => {
      const found = results.get(text);
      expect(found, `"${text}" was not run in "${heading}…"`).toBeDefined();
      return found as CliResult;
    };
    const steps = {
      through,
      result,
      /** Runs the rest of the section. */
      finish() {
        if (next < commands.length) through((commands.at(-1) as RunbookCommand).text);
        return steps;
      },
    };
    return steps;
  }

  /** One command of a section, by its text. */
  function runOne(heading: string, text: string, vars: Record<string, string>): CliResult {
    const command = runbook.commands.find(
      (c) => c.text === text && c.headings.some((h) => h.startsWith(heading)),
    );
    expect(command, `no command "${text}" under "${heading}…"`).toBeDefined();
    return runCommand(command as RunbookCommand, vars);
  }

  /**
   * The runbook's verification: exactly one current version and a finished rotation,
   * then (with `auditToo`, once the scenario's last audit records are in) an intact
   * audit trail. The audit check walks the whole chain, so the scenarios share one.
   */
  function verify(vars: Record<string, string>, auditToo = false): StatusJson {
    const steps = section('Verify', vars);
    const status = JSON.parse(steps.through('keywarden status $IDENTITY --json').stdout) as StatusJson;
    expect(current(status)).toHaveLength(1);
    expect(status.rotation?.step).toBe('finished');
    if (auditToo) expect(steps.through('keywarden audit verify').stderr).toContain('audit trail intact');
    return status;
  }

  /** The identity's versions and rotation as stored (read directly: quicker than another CLI run). */
  async function stored(id: string): Promise<Progress> {
    const [versions, rotation] = await Promise.all([
      services.store.listVersions(id),
      services.store.getRotation(id),
    ]);
    return {
      ...(rotation ? { rotation } : {}),
      versions: versions.map(({ rev: _rev, ...version }) => version),
    };
  }

  async function accessKeys(userName: string) {
    const listed = await iam.send(new ListAccessKeysCommand({ UserName: userName }));
    return (listed.AccessKeyMetadata ?? []).map((k) => ({ id: k.AccessKeyId ?? '', status: k.Status ?? '' }));
  }

  /** The runbook's `aws iam delete-access-key … # example`, done as the on-call engineer would. */
  const deleteKey = (userName: string, accessKeyId: string) =>
    iam.send(new DeleteAccessKeyCommand({ UserName: userName, AccessKeyId: accessKeyId }));

  /** What the pipeline reads from a delivery target now: its version and the value's fingerprint. */
  async function delivered(delivery: Delivery) {
    const read = await services.rotationDeps('test').deliveryFor(delivery).readCurrent();
    return (
      read && { versionId: read.versionId, fingerprint: services.fingerprinter.of(read.secret.reveal()) }
    );
  }

  /** Writes the demo inventory with `edit` applied to the named identities. */
  function writeInventory(edits: Record<string, (identity: Record<string, unknown>) => void>) {
    const document = parseDocument(readFileSync(join(REPO_ROOT, 'demo', 'identities.yaml'), 'utf8'));
    const identities = document.toJS().identities as Record<string, unknown>[];
    for (const [id, edit] of Object.entries(edits)) {
      const index = identities.findIndex((identity) => identity.id === id);
      expect(index, `demo/identities.yaml declares ${id}`).toBeGreaterThanOrEqual(0);
      const identity = identities[index] as Record<string, unknown>;
      edit(identity);
      document.setIn(['identities', index], document.createNode(identity));
    }
    writeFileSync(inventory, document.toString());
  }

  /** The fix the runbook's case (a) shows: the `delivery` of its ```yaml example. */
  const runbookDelivery = (): Delivery => {
    const block = fencedBlocks(markdown).find(
      (b) => b.lang === 'yaml' && b.headings.some((h) => h.startsWith('(a)')),
    );
    expect(block, 'case (a) shows the inventory fix as a ```yaml block').toBeDefined();
    const [declared] = parse(block?.lines.join('\n') ?? '') as { delivery: Delivery }[];
    return declared?.delivery as Delivery;
  };

  beforeAll(() => {
    const up = run('dev', 'up', '--demo');
    expect(up.code, up.stderr).toBe(0);
    const config = RuntimeConfigSchema.parse(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')));
    const stack = StackEndpointsSchema.parse(JSON.parse(readFileSync(join(home, 'stack.json'), 'utf8')));
    services = wire(config);
    iam = services.aws.iam;
    vaultPid = stack.vault.pid;
    motoPid = stack.moto.pid;
    dynamoPid = stack.dynamodb.pid;
  });

  afterAll(() => {
    // Never leave OpenBao paused, whatever (c) did.
    try {
      if (vaultPid) process.kill(vaultPid, 'SIGCONT');
    } catch {
      // Already gone: dev down and the check below say what happened.
    }
    expect(run('dev', 'down').code).toBe(0);
    expect([processAlive(motoPid), processAlive(dynamoPid), processAlive(vaultPid)]).toEqual([
      false,
      false,
      false,
    ]);
  });

  it('has only keywarden commands the test can run, or lines marked # example (few)', () => {
    const vars = { IDENTITY: 'app-publish-aws', INVENTORY: inventory };
    for (const command of runbook.commands) expect(() => toArgv(command, vars)).not.toThrow();
    expect(runbook.commands.length).toBeGreaterThanOrEqual(15);
    expect(runbook.examples).toBeGreaterThan(0);
    expect(runbook.examples).toBeLessThanOrEqual(8);
  });

  it('(a) no delivery target: triage names it, fixing the inventory lets the rotation finish', async () => {
    const vars = { IDENTITY: 'docs-build-aws', INVENTORY: inventory };
    // The failure the alarm counted: demo identity docs-build-aws declares no delivery target.
    const triage = section('Triage', vars).finish();
    expect(flat(triage.result('keywarden rotate --due --dry-run').stdout)).toMatch(
      /docs-build-aws aws-iam-access-key skip no delivery target/,
    );
    expect(triage.result('keywarden rotate --identity $IDENTITY').stderr).toContain(
      'docs-build-aws failed: docs-build-aws has no delivery target',
    );
    // Nothing was issued or changed.
    const before = JSON.parse(triage.result('keywarden status $IDENTITY --json').stdout) as StatusJson;
    expect(before.versions).toEqual([]);

    const delivery = runbookDelivery();
    writeInventory({ 'docs-build-aws': (identity) => Object.assign(identity, { delivery }) });
    const fix = section('(a)', vars).finish();
    expect(fix.result('keywarden validate $INVENTORY').stderr).toContain('22 identities, no problems');
    expect(fix.result('keywarden inventory sync $INVENTORY').stderr).toContain('1 changed');
    expect(flat(fix.result('keywarden rotate --identity $IDENTITY --dry-run').stdout)).toMatch(
      /docs-build-aws aws-iam-access-key rotate never rotated by keywarden/,
    );
    expect(flat(fix.result('keywarden rotate --identity $IDENTITY').stdout)).toMatch(
      /docs-build-aws aws-iam-access-key rotated /,
    );

    const after = verify(vars, true);
    // The new key is what the delivery target holds, and the old one was adopted and superseded.
    const [key] = current(after);
    const read = await services.rotationDeps('test').deliveryFor(delivery).readCurrent();
    expect(read?.secret.revealJson().accessKeyId).toBe(key?.handle);
    expect(after.versions.map((v) => `${v.origin}:${v.stage}`).sort()).toEqual([
      'adopted:previous',
      'issued:current',
    ]);
  });

  it('(b) testSecret failed: the current credential stays in force until the cause is fixed', async () => {
    const vars = { IDENTITY: 'app-deployer-approle', INVENTORY: inventory };
    const role = 'auth/approle/role/ci-app-deploy';
    const delivery: Delivery = { type: 'vault-kv', mount: 'secret', path: 'ci/app/deploy/approle-secret-id' };
    // A first rotation works, so the identity has a current secret-id that keywarden delivered.
    expect(run('rotate', '--identity', vars.IDENTITY).code).toBe(0);
    const [working] = current(await stored(vars.IDENTITY));
    const reads = await delivered(delivery);
    // The cause: the role now admits logins only from the CI runners' network, not from keywarden.
    await services.vault?.write(role, { secret_id_bound_cidrs: ['10.0.0.0/8'] });

    const failed = runOne('Triage', 'keywarden rotate --identity $IDENTITY', vars);
    expect(failed.stderr).toMatch(
      /app-deployer-approle failed: testSecret failed: .*login .* was refused .*; the current credential stays in force/,
    );
    // Safe: the same version is current, the pipeline reads the same value, the new one was revoked.
    const after = await stored(vars.IDENTITY);
    expect(current(after)).toEqual([working]);
    expect(await delivered(delivery)).toEqual(reads);
    expect(after.rotation?.step).toBe('failed');
    expect(after.versions.find((v) => v.versionId === after.rotation?.versionId)).toMatchObject({
      stage: 'revoked',
      note: expect.stringMatching(/^testSecret failed: /),
    });

    // The fix the runbook's example shows: admit keywarden's own address too.
    await services.vault?.write(role, { secret_id_bound_cidrs: ['10.0.0.0/8', '127.0.0.1/32'] });
    const retry = section('(b)', vars).finish();
    expect(flat(retry.result('keywarden rotate --identity $IDENTITY --dry-run').stdout)).toMatch(
      /app-deployer-approle vault-approle-secret-id rotate /,
    );
    expect(flat(retry.result('keywarden rotate --identity $IDENTITY').stdout)).toMatch(
      /app-deployer-approle vault-approle-secret-id rotated /,
    );
    const fixed = verify(vars);
    expect(current(fixed)[0]?.versionId).not.toBe(working?.versionId);
    expect((await delivered(delivery))?.versionId).toBe(current(fixed)[0]?.versionId);
  });

  it('(c) stuck: a run that died mid-rotation holds its lock, then the next run resumes from the stored step', async () => {
    const vars = { IDENTITY: 'app-signing-key', INVENTORY: inventory };
    // A crashed run, made deterministic: OpenBao is paused, so the rotation stops inside
    // createSecret after storing its progress, and the process is killed there.
    process.kill(vaultPid, 'SIGSTOP');
    try {
      const child = spawn(process.execPath, [keywardenEntry(), 'rotate', '--identity', vars.IDENTITY], {
        cwd: REPO_ROOT,
        env: { ...process.env, KEYWARDEN_TABLE: '', ...env },
        stdio: 'ignore',
      });
      // A bound, not a timing: a loaded machine may take seconds just to start the CLI.
      const deadline = Date.now() + 45_000;
      while ((await services.store.getRotation(vars.IDENTITY))?.step !== 'createSecret') {
        expect(Date.now(), 'the rotation stored its first step').toBeLessThan(deadline);
        await sleep(50);
      }
      await sleep(300);
      child.kill('SIGKILL');
      await once(child, 'exit');
    } finally {
      process.kill(vaultPid, 'SIGCONT');
    }
    const crashed = await services.store.getRotation(vars.IDENTITY);

    // Within the lock's 5 minutes: the runbook's commands show the step, and the rotation is skipped.
    const held = section('(c)', vars).finish();
    const heldStatus = held.result('keywarden status $IDENTITY').stderr;
    expect(heldStatus).toMatch(/last rotation \w+: createSecret \(/);
    expect(heldStatus).toContain('audit events of its completed steps: none yet (the trail may also hold');
    expect(flat(held.result('keywarden rotate --identity $IDENTITY --dry-run').stdout)).toMatch(
      /app-signing-key vault-kv resume unfinished rotation at createSecret/,
    );
    expect(flat(held.result('keywarden rotate --identity $IDENTITY').stdout)).toMatch(
      /app-signing-key vault-kv skipped .* another run is rotating this identity/,
    );

    // The lock's 5 minutes pass: the test moves its expiry into the past rather than wait.
    const doc = DynamoDBDocumentClient.from(services.aws.dynamodb);
    await doc.send(
      new UpdateCommand({
        TableName: services.config.tableName,
        Key: Keys.rotation(vars.IDENTITY),
        UpdateExpression: 'SET #lock.#until = :past',
        ExpressionAttributeNames: { '#lock': 'lock', '#until': 'until' },
        ExpressionAttributeValues: { ':past': 0 },
      }),
    );
    const resumed = runOne('(c)', 'keywarden rotate --identity $IDENTITY', vars);
    expect(flat(resumed.stdout)).toMatch(/app-signing-key vault-kv rotated \(resumed\)/);
    // The same rotation went on from its stored step, in a second create attempt.
    const after = verify(vars);
    expect(after.rotation).toMatchObject({ rotationId: crashed?.rotationId, attempts: 2 });
    // The trail has each step's event once for the new credential, as status says: the kill lost none.
    const fresh = after.rotation?.versionId ?? '';
    const events = [
      'credential.issued',
      'credential.verified',
      'credential.delivered',
      'credential.activated',
    ];
    expect(after.rotation?.recorded).toEqual(events.map((type) => `${type}:${fresh}`));
    const trail = (await services.store.readAll()).records.filter(
      (r) => r.subject === vars.IDENTITY && r.details.versionId === fresh,
    );
    expect(trail.map((r) => r.type)).toEqual(events);
    expect(flat(run('status', vars.IDENTITY).stderr)).toContain(
      `audit events of its completed steps: ${events.join(', ')}`,
    );
  });

  it('(d) IAM: a previous key used after its successor was delivered is kept disabled and blocks the next rotation', async () => {
    const vars = { IDENTITY: 'app-build-aws', INVENTORY: inventory };
    const userName = 'ci-app-build';
    // A grace period of 2 s, so it ends within the test.
    writeInventory({
      'docs-build-aws': (identity) => Object.assign(identity, { delivery: runbookDelivery() }),
      'app-build-aws': (identity) => Object.assign(identity.policy as object, { grace: '2s' }),
    });
    expect(run('inventory', 'sync', inventory).code).toBe(0);
    expect(run('rotate', '--identity', vars.IDENTITY).code).toBe(0);
    const first = await stored(vars.IDENTITY);
    const old = first.versions.find((v) => v.stage === 'previous');
    expect(old).toBeDefined();
    // A forgotten consumer still uses the old key after the new one was delivered
    // (moto's fixture route records the use; IAM reports last use to the second).
    await sleep(1_100);
    const used = await fetch(`${services.config.aws.endpoint}/_keywarden/iam/backdate-access-key`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ accessKeyId: old?.handle, lastUsedDate: new Date().toISOString() }),
    });
    expect(used.ok).toBe(true);
    await sleep(Math.max(0, Date.parse(old?.supersededAt ?? '') + 2_100 - Date.now()));

    const failed = runOne('Triage', 'keywarden rotate --identity $IDENTITY', vars);
    expect(failed.stderr).toMatch(
      /app-build-aws failed: expected IAM user ci-app-build to have a free access key slot/,
    );
    const steps = section('(d)', vars);
    expect(flat(steps.through('keywarden status $IDENTITY').stdout)).toMatch(
      new RegExp(`disabled ${old?.handle} adopted .* kept inactive, not deleted; find who still uses it`),
    );
    expect(await accessKeys(userName)).toContainEqual({ id: old?.handle, status: 'Inactive' });

    // The consumer moved to the delivery target; the engineer deletes the disabled key (the runbook's example).
    await deleteKey(userName, old?.handle ?? '');
    steps.finish();
    expect(flat(steps.result('keywarden rotate --identity $IDENTITY').stdout)).toMatch(
      /app-build-aws aws-iam-access-key rotated \(resumed\)/,
    );
    const after = verify(vars);
    expect((await accessKeys(userName)).filter((k) => k.status === 'Active').map((k) => k.id)).toEqual([
      current(after)[0]?.handle,
    ]);
  });

  it('(e) max age: a failed rotation disables the over-age key; finishing the rotation restores the pipeline', async () => {
    const vars = { IDENTITY: 'app-publish-aws', INVENTORY: inventory };
    const userName = 'ci-app-publish';
    const delivery: Delivery = { type: 'aws-secret', secretId: 'ci/app/publish/aws-access-key' };
    const [overAge] = await accessKeys(userName);
    // Someone created a second key by hand: the user has no free slot (d), and the
    // pipeline's key is 200 days old, past its 90-day maxAge.
    const manual = await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
    const manualKey = manual.AccessKey?.AccessKeyId ?? '';

    const failed = runOne('Triage', 'keywarden rotate --identity $IDENTITY', vars);
    expect(failed.stderr).toMatch(
      /app-publish-aws failed: expected IAM user ci-app-publish to have a free access key slot/,
    );
    expect(flat(failed.stdout)).toContain(`${overAge?.id} past maxAge 90d: disabled`);
    // The outage: the key the pipeline reads is inactive now.
    expect(await accessKeys(userName)).toContainEqual({ id: overAge?.id, status: 'Inactive' });

    const steps = section('(e)', vars);
    const audit = JSON.parse(steps.through('keywarden audit list --json --limit 20').stdout) as AuditRecord[];
    expect(audit).toContainEqual(
      expect.objectContaining({
        type: 'credential.disabled',
        subject: vars.IDENTITY,
        details: expect.objectContaining({
          handle: overAge?.id,
          reason: expect.stringMatching(/^past maxAge 90d .* and rotation failed$/),
        }),
      }),
    );
    // The cause, per (d): the hand-made key goes.
    await deleteKey(userName, manualKey);
    steps.finish();
    expect(flat(steps.result('keywarden rotate --identity $IDENTITY --dry-run').stdout)).toMatch(
      /app-publish-aws aws-iam-access-key resume unfinished rotation at createSecret/,
    );
    expect(flat(steps.result('keywarden rotate --identity $IDENTITY').stdout)).toMatch(
      /app-publish-aws aws-iam-access-key rotated \(resumed\)/,
    );
    // The runbook's last step of (e): delete the key enforcement disabled.
    await deleteKey(userName, overAge?.id ?? '');

    const after = verify(vars, true);
    const [key] = current(after);
    expect(await accessKeys(userName)).toEqual([{ id: key?.handle, status: 'Active' }]);
    const read = await services.rotationDeps('test').deliveryFor(delivery).readCurrent();
    expect(read?.secret.revealJson().accessKeyId).toBe(key?.handle);
  });

  it('aftercare: nothing is left unfinished, and discovery runs', () => {
    const steps = section('Aftercare', { INVENTORY: inventory }).finish();
    expect(flat(steps.result('keywarden rotate --due --dry-run').stdout)).not.toMatch(/ resume /);
    expect(steps.result('keywarden findings').stderr).toMatch(/\d+ finding\(s\)/);
  });

  it('ran every command of the runbook', () => {
    const missed = runbook.commands.filter((command) => !ran.has(command));
    expect(missed.map((c) => `line ${c.line}: ${c.text}`)).toEqual([]);
  });
});
