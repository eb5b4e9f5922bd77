import { FindingSchema } from '../../core/findings.ts';
import type { FindingStore } from '../../core/ports.ts';
import { type DynamoTable, Keys } from './dynamodb-table.ts';

/** How long a run's findings stay (the table's TTL attribute `expiresAt` removes them). */
const FINDINGS_RETENTION_SECONDS = 30 * 86_400;

/**
 * Discovery findings: each run in its own partition (`FINDINGS#<runId>`), and a `LATEST`
 * pointer to the run readers see.
 */
export function dynamoFindingStore(table: DynamoTable): FindingStore {
  return {
    async saveFindings(run) {
      const expiresAt = Math.floor(Date.parse(run.at) / 1_000) + FINDINGS_RETENTION_SECONDS;
      await table.batchPut(
        run.findings.map((finding) => ({ ...Keys.finding(run.runId, finding.id), ...finding, expiresAt })),
        'findings',
      );
      // The pointer moves last, so readers never see a half-written run.
      await table.put({ ...Keys.latestFindings, runId: run.runId, at: run.at, count: run.findings.length });
    },

    async latestFindings() {
      const latest = await table.get(Keys.latestFindings);
      if (!latest) return undefined;
      const runId = String(latest.runId);
      const findings = (await table.query(`FINDINGS#${runId}`)).map(
        ({ pk: _pk, sk: _sk, expiresAt: _e, ...rest }) => FindingSchema.parse(rest),
      );
      return { runId, at: String(latest.at), findings };
    },
  };
}
