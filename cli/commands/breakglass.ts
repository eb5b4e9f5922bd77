/**
 * `keywarden breakglass`: ask for, decide on, fetch, end and review temporary elevated
 * access, through the HTTP API (SigV4 in AWS, a development token locally).
 *
 * `credentials` is the one command that prints a credential: to stdout, for `eval`, or into
 * an AWS profile file; never to stderr, where logs are collected. A Vault grant arrives as a
 * single-use wrapped token, unwrapped here against Vault.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { unwrapVaultToken } from '../../functions/adapters/vault/unwrap.ts';
import { ValidationError } from '../../functions/core/errors.ts';
import {
  type BreakglassRole,
  type Grant,
  GrantDenyInputSchema,
  GrantRequestInputSchema,
  GrantReviewInputSchema,
  parseInput,
} from '../../functions/core/grant.ts';
import type { GrantReport } from '../../functions/core/grant-report.ts';
import { SecretValue } from '../../functions/core/secret-value.ts';
import { apiClient } from '../api-client.ts';
import { printJson, printTable, say } from '../output.ts';

type Credential =
  | {
      type: 'aws-session';
      accessKeyId: string;
      secretAccessKey: string;
      sessionToken: string;
      expiresAt: string;
      region: string;
    }
  | {
      type: 'vault-wrapped-token';
      wrappingToken: string;
      wrapExpiresAt: string;
      expiresAt: string;
      vaultAddr: string;
    };

/** A principal as shown to approvers: the id that was checked, with the (self-chosen) display name beside it. */
const who = (p: Grant['requester']) => (p.name ? `${p.kind}:${p.id} (${p.name})` : `${p.kind}:${p.id}`);

function describeGrant(grant: Grant): string {
  const approvals = grant.approvals.map((a) => who(a.approver)).join(', ') || 'none';
  const window = grant.expiresAt ? `, ends ${grant.expiresAt}` : '';
  return `${grant.grantId} ${grant.state}: ${grant.roleId} for ${grant.duration} by ${who(grant.requester)} (approvals: ${approvals}${window})`;
}

/** Writes `[profile]` into an AWS shared credentials file, replacing that section only. */
function writeProfile(
  file: string,
  profile: string,
  credential: Extract<Credential, { type: 'aws-session' }>,
) {
  const section = [
    `[${profile}]`,
    `aws_access_key_id = ${credential.accessKeyId}`,
    `aws_secret_access_key = ${credential.secretAccessKey}`,
    `aws_session_token = ${credential.sessionToken}`,
    `# keywarden break-glass session, ends ${credential.expiresAt}`,
    '',
  ].join('\n');
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const kept = current
    .split(/(?=^\[)/m)
    .filter((block) => !block.startsWith(`[${profile}]`))
    .join('');
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${kept.trimEnd()}${kept.trim() ? '\n\n' : ''}${section}`, { mode: 0o600 });
  // `mode` applies only to a new file: an existing one is tightened too, it now holds a session.
  chmodSync(file, 0o600);
}

export function registerBreakglass(program: Command): void {
  const bg = program
    .command('breakglass')
    .description(
      'temporary elevated access: requested, approved by someone else, ending by itself, reviewed',
    );

  bg.command('roles')
    .description('the break-glass roles one can ask for')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const { roles } = await apiClient().call<{ roles: BreakglassRole[] }>('GET', '/roles');
      if (options.json) return printJson(roles);
      printTable(
        ['ROLE', 'MAX', 'APPROVALS', 'INCIDENT', 'TARGET'],
        roles.map((r) => [
          r.id,
          r.maxDuration,
          r.approvalsRequired,
          r.requireIncident ? 'required' : 'optional',
          r.target.type === 'aws-role' ? r.target.roleArn : `vault: ${r.target.policies.join(',')}`,
        ]),
      );
    });

  bg.command('request')
    .description('ask for a break-glass role; an approver must approve it')
    .argument('<role>', 'the role id (`keywarden breakglass roles` lists them)')
    .requiredOption('--for <duration>', 'how long, such as 30m or 2h (at most the role maximum)')
    .requiredOption('--reason <text>', 'why, for the approver and the review')
    .option('--incident <id>', 'the incident reference, such as INC-42')
    .option('--json', 'print JSON')
    .action(
      async (roleId: string, options: { for: string; reason: string; incident?: string; json?: boolean }) => {
        // The same checks as the API and Slack, before anything is sent: bounded text, an incident
        // in the incident format (`--incident " "` is refused, not dropped).
        const body = parseInput(
          GrantRequestInputSchema,
          {
            roleId,
            duration: options.for,
            reason: options.reason,
            ...(options.incident === undefined ? {} : { incident: options.incident }),
          },
          'break-glass request',
        );
        const { grant } = await apiClient().call<{ grant: Grant }>('POST', '/grants', body);
        if (options.json) return printJson(grant);
        process.stdout.write(`${grant.grantId}\n`);
        say(`requested ${describeGrant(grant)}`);
        say(`an approver runs: keywarden breakglass approve ${grant.grantId}`);
      },
    );

  for (const decision of ['approve', 'deny'] as const) {
    const command = bg
      .command(decision)
      .description(
        decision === 'approve' ? 'approve a request (never your own)' : 'deny a request (never your own)',
      )
      .argument('<grant-id>')
      .option('--json', 'print JSON');
    if (decision === 'deny') command.option('--reason <text>', 'why, for the requester');
    command.action(async (grantId: string, options: { json?: boolean; reason?: string }) => {
      const body =
        decision === 'deny'
          ? parseInput(
              GrantDenyInputSchema,
              options.reason?.trim() ? { reason: options.reason } : {},
              'denial',
            )
          : undefined;
      const { grant } = await apiClient().call<{ grant: Grant }>(
        'POST',
        `/grants/${encodeURIComponent(grantId)}/${decision}`,
        body,
      );
      if (options.json) return printJson(grant);
      say(`${decision === 'approve' ? 'approved' : 'denied'}: ${describeGrant(grant)}`);
      if (grant.state === 'approved')
        say(`the requester runs: keywarden breakglass credentials ${grant.grantId}`);
    });
  }

  bg.command('list')
    .description(
      'the grants, newest first, a page at a time (a query on an index: fast with any number of grants)',
    )
    .option(
      '--state <state>',
      'only grants in this state (requested, approved, active, expired, revoked, denied)',
    )
    .option(
      '--requester <kind:id>',
      'only grants this principal requested (aws:<ARN>, slack:<user id>, local:<name>)',
    )
    .option('--limit <n>', 'the most grants a page holds, 1 to 100', '50')
    .option('--next <token>', 'the page after the one that printed this token')
    .option('--all', 'every page, one after the other')
    .option('--json', 'print JSON (the grants as an array; the next page token goes to stderr)')
    .action(
      async (options: {
        state?: string;
        requester?: string;
        limit: string;
        next?: string;
        all?: boolean;
        json?: boolean;
      }) => {
        if (!/^[0-9]{1,3}$/.test(options.limit) || Number(options.limit) < 1 || Number(options.limit) > 100)
          throw new ValidationError(
            `expected --limit to be a whole number from 1 to 100, got ${options.limit}`,
          );
        const grants: Grant[] = [];
        let nextToken = options.next;
        do {
          const query = new URLSearchParams({
            ...(options.state ? { state: options.state } : {}),
            ...(options.requester ? { requester: options.requester } : {}),
            limit: options.limit,
            ...(nextToken ? { nextToken } : {}),
          });
          const page = await apiClient().call<{ grants: Grant[]; nextToken?: string }>(
            'GET',
            `/grants?${query}`,
          );
          grants.push(...page.grants);
          nextToken = page.nextToken;
        } while (options.all && nextToken);
        const same = [
          ...(options.state ? [`--state ${options.state}`] : []),
          ...(options.requester ? [`--requester '${options.requester}'`] : []),
          ...(options.limit !== '50' ? [`--limit ${options.limit}`] : []),
        ];
        const more = nextToken
          ? `more: keywarden breakglass list ${[...same, `--next ${nextToken}`].join(' ')}`
          : undefined;
        if (options.json) {
          printJson(grants);
          if (more) process.stderr.write(`${more}\n`);
          return;
        }
        printTable(
          ['GRANT', 'ROLE', 'STATE', 'REQUESTER', 'FOR', 'ENDS', 'REVIEW'],
          grants.map((g) => [
            g.grantId,
            g.roleId,
            g.state,
            who(g.requester),
            g.duration,
            g.endedAt ?? g.expiresAt ?? '',
            g.review ? (g.review.reviewedAt ? 'done' : `due ${g.review.dueAt}`) : '',
          ]),
        );
        if (more) say(more);
      },
    );

  bg.command('show')
    .description('one grant')
    .argument('<grant-id>')
    .action(async (grantId: string) => {
      const { grant } = await apiClient().call<{ grant: Grant }>(
        'GET',
        `/grants/${encodeURIComponent(grantId)}`,
      );
      printJson(grant);
    });

  bg.command('credentials')
    .description(
      'fetch the credentials of your approved grant: prints shell exports (eval them), or writes an AWS profile',
    )
    .argument('<grant-id>')
    .option('--profile <name>', 'write an AWS profile instead of printing exports (AWS roles)')
    .option(
      '--credentials-file <file>',
      'the AWS credentials file for --profile',
      join(homedir(), '.aws', 'credentials'),
    )
    .action(async (grantId: string, options: { profile?: string; credentialsFile: string }) => {
      const { grant, credential } = await apiClient().call<{ grant: Grant; credential: Credential }>(
        'POST',
        `/grants/${encodeURIComponent(grantId)}/credentials`,
      );
      if (credential.type === 'aws-session') {
        if (options.profile) {
          writeProfile(options.credentialsFile, options.profile, credential);
          say(
            `wrote profile ${options.profile} to ${options.credentialsFile}; it ends ${credential.expiresAt}`,
          );
        } else {
          process.stdout.write(
            [
              `export AWS_ACCESS_KEY_ID=${credential.accessKeyId}`,
              `export AWS_SECRET_ACCESS_KEY=${credential.secretAccessKey}`,
              `export AWS_SESSION_TOKEN=${credential.sessionToken}`,
              `export AWS_REGION=${credential.region}`,
              '',
            ].join('\n'),
          );
        }
      } else {
        if (options.profile)
          throw new ValidationError('--profile is for AWS roles; this grant is a Vault token');
        const token = await unwrapVaultToken({
          addr: credential.vaultAddr,
          wrappingToken: new SecretValue(credential.wrappingToken),
        });
        process.stdout.write(
          `export VAULT_ADDR=${credential.vaultAddr}\nexport VAULT_TOKEN=${token.token.reveal()}\n`,
        );
      }
      say(`grant ${grant.grantId} is active until ${credential.expiresAt}; access ends by itself then`);
    });

  bg.command('revoke')
    .description('end a grant now (requester or approver); other grants of the role go on')
    .argument('<grant-id>')
    .action(async (grantId: string) => {
      const { grant } = await apiClient().call<{ grant: Grant }>(
        'POST',
        `/grants/${encodeURIComponent(grantId)}/revoke`,
      );
      say(`revoked: ${describeGrant(grant)}; review due ${grant.review?.dueAt}`);
      if (!grant.credentialsEndedAt) {
        // Recorded as revoked (no new credential is issued), but IAM or Vault failed to end what was issued.
        say(
          `warning: not every credential of ${grant.grantId} is ended yet (the audit trail has grant.revoke-failed with the reason); the sweeper retries every few minutes, or run this revoke again`,
        );
        process.exitCode = 1;
      }
    });

  bg.command('review')
    .description('review an ended grant (someone other than the requester)')
    .argument('<grant-id>')
    .requiredOption('--notes <text>', 'what was done with the access, and whether it was right')
    .action(async (grantId: string, options: { notes: string }) => {
      const { grant } = await apiClient().call<{ grant: Grant }>(
        'POST',
        `/grants/${encodeURIComponent(grantId)}/review`,
        parseInput(GrantReviewInputSchema, { notes: options.notes }, 'review'),
      );
      say(`reviewed: ${describeGrant(grant)}`);
    });

  bg.command('report')
    .description('the per-grant report: who, why, approvals, times, and what the credential was used for')
    .argument('<grant-id>')
    .option('--out <dir>', 'write <grant-id>.md and .json here', 'reports')
    .option('--json', 'print the JSON report instead')
    .action(async (grantId: string, options: { out: string; json?: boolean }) => {
      const { report, markdown } = await apiClient().call<{ report: GrantReport; markdown: string }>(
        'GET',
        `/grants/${encodeURIComponent(grantId)}/report`,
      );
      if (options.json) return printJson(report);
      mkdirSync(options.out, { recursive: true });
      writeFileSync(join(options.out, `breakglass-${grantId}.md`), markdown);
      writeFileSync(join(options.out, `breakglass-${grantId}.json`), `${JSON.stringify(report, null, 2)}\n`);
      say(`wrote ${join(options.out, `breakglass-${grantId}.md`)} and .json`);
    });
}
