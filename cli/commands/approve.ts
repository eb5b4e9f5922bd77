/**
 * `keywarden approve` and `keywarden approvals`: approve an artifact digest for a gate in an
 * environment, list a digest's approvals, and verify their chain, through the HTTP API (SigV4
 * in AWS, a development token locally). keywarden signs each approval with its KMS key; a job
 * grant behind the gate issues only on a valid approval by someone other than the job's actor.
 */
import type { Command } from 'commander';
import * as z from 'zod';
import type { ChainReport, DsseEnvelope } from '../../functions/core/ci-approval.ts';
import { ApproveInputSchema } from '../../functions/core/ci-approval.ts';
import { DigestSchema } from '../../functions/core/ci-policy.ts';
import type { ApprovalRecord } from '../../functions/core/ci-records.ts';
import { type Principal, parseInput } from '../../functions/core/grant.ts';
import { apiClient } from '../api-client.ts';
import { ExitCode } from '../errors.ts';
import { printJson, printTable, say } from '../output.ts';

type Approval = ApprovalRecord & { envelope: DsseEnvelope };

const who = (p: Principal) => (p.name ? `${p.kind}:${p.id} (${p.name})` : `${p.kind}:${p.id}`);

const digestOption = (digest: string): string =>
  parseInput(z.strictObject({ digest: DigestSchema }), { digest }, '--digest').digest;

const query = (digest: string) => `digest=${encodeURIComponent(digest)}`;

export function registerApprove(program: Command): void {
  program
    .command('approve')
    .description(
      'approve an artifact digest for a gate (sign, publish, promote) in an environment; keywarden signs the approval',
    )
    .requiredOption('--digest <sha256:…>', 'the artifact digest, sha256:<64 hex digits>')
    .requiredOption(
      '--gate <gate>',
      'sign, publish or promote (in that order; never two in a row by one person)',
    )
    .requiredOption('--environment <name>', 'the environment the artifact goes to, such as prod')
    .option('--json', 'print JSON (the approval and its DSSE envelope)')
    .action(async (options: { digest: string; gate: string; environment: string; json?: boolean }) => {
      // The same checks as the API and Slack, before anything is sent.
      const body = parseInput(
        ApproveInputSchema,
        { digest: options.digest, gate: options.gate, environment: options.environment },
        'approval',
      );
      const { approval } = await apiClient().call<{ approval: Approval }>('POST', '/ci/approvals', body);
      if (options.json) return printJson(approval);
      process.stdout.write(`${approval.id}\n`);
      say(
        `approved ${approval.digest} for ${approval.gate} in ${approval.environment} as ${who(approval.approver)}, until ${approval.expiresAt} (signed by ${approval.keyId})`,
      );
      say(`check the chain: keywarden approvals verify --digest ${approval.digest}`);
    });

  const approvals = program
    .command('approvals')
    .description("an artifact digest's approvals, and the verification of their signed chain");

  approvals
    .command('list')
    .description("a digest's approvals, oldest first")
    .requiredOption('--digest <sha256:…>', 'the artifact digest')
    .option('--json', 'print JSON (the approvals with their DSSE envelopes)')
    .action(async (options: { digest: string; json?: boolean }) => {
      const digest = digestOption(options.digest);
      const answer = await apiClient().call<{ approvals: Approval[] }>(
        'GET',
        `/ci/approvals?${query(digest)}`,
      );
      if (options.json) return printJson(answer.approvals);
      if (answer.approvals.length === 0) return say(`no approvals of ${digest}`);
      printTable(
        ['APPROVAL', 'GATE', 'ENVIRONMENT', 'APPROVED', 'EXPIRES', 'APPROVER'],
        answer.approvals.map((a) => [
          a.id,
          a.gate,
          a.environment,
          a.approvedAt,
          a.expiresAt,
          who(a.approver),
        ]),
      );
    });

  approvals
    .command('verify')
    .description(
      "verify a digest's approvals: each signature (KMS), each record against its signed statement, the gates' order and two people per two consecutive gates; exits 1 when broken or empty",
    )
    .requiredOption('--digest <sha256:…>', 'the artifact digest')
    .option('--json', 'print JSON (the report)')
    .action(async (options: { digest: string; json?: boolean }) => {
      const digest = digestOption(options.digest);
      const report = await apiClient().call<ChainReport>('GET', `/ci/approvals/verify?${query(digest)}`);
      if (options.json) printJson(report);
      else {
        for (const a of report.approvals) {
          const state = a.problems.length > 0 ? 'BROKEN' : a.expired ? 'valid, expired' : 'valid';
          process.stdout.write(
            `${a.id} ${a.gate}/${a.environment} by ${who(a.approver)} at ${a.approvedAt}: ${state}\n`,
          );
          for (const problem of a.problems) process.stdout.write(`  - ${problem}\n`);
        }
        say(
          report.verdict === 'valid'
            ? `the chain of ${digest} verifies (${report.approvals.length} approval(s))`
            : report.verdict === 'empty'
              ? `no approvals of ${digest}: nothing verifies`
              : `the chain of ${digest} is BROKEN: ${report.approvals.filter((a) => a.problems.length > 0).length} approval(s) fail`,
        );
      }
      if (report.verdict !== 'valid') throw new ExitCode(1);
    });
}
