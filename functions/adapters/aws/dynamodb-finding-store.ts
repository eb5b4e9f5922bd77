import { randomUUID } from 'node:crypto';
import { FindingSchema } from '../../core/findings.ts';
import type { FindingStore } from '../../core/ports.ts';
import { type DynamoTable, Keys } from './dynamodb-table.ts';

/** How long a run's findings stay (the table's TTL attribute `expiresAt` removes them). */
const FINDINGS_RETENTION_SECONDS = 30 * 86_400;

/**
 * Discovery findings: each run in its own partition (`FINDINGS#<runId>`), and a `LATEST`
 * pointer to the run readers see. A finding's claim is an item of its own
 * (`FINDING#CLAIM#<id>`), apart from the runs discovery replaces.
 */
export function dynamoFindingStore(table: DynamoTable): FindingStore {
  /** The writeId of each claim this process won, so a release ends only its own claim. */
  const won = new Map<string, string>();
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

    async claimFinding(id, until, now) {
      const key = Keys.findingClaim(id);
      const writeId = randomUUID();
      // `expiresAt` is the table's TTL attribute; its removal is lazy (dynalite never removes),
      // so a claim past it is taken over here rather than waited for.
      const nowSeconds = Math.floor(now.getTime() / 1000);
      const stored = await table.putIf(
        { ...key, finding: id, expiresAt: Math.ceil(until.getTime() / 1000), writeId },
        { expression: 'attribute_not_exists(pk) OR expiresAt < :now', values: { ':now': nowSeconds } },
      );
      // The SDK retries a put whose answer was lost; the retry then fails its condition on our
      // own item. The writeId tells that apart from another caller's claim.
      const mine = stored || (await table.get(key))?.writeId === writeId;
      if (mine) won.set(id, writeId);
      return mine;
    },

    async holdFinding(id, until) {
      const writeId = won.get(id);
      if (!writeId) return;
      await table.updateIf(
        Keys.findingClaim(id),
        {
          expression: 'SET expiresAt = :until',
          values: { ':until': Math.ceil(until.getTime() / 1000), ':w': writeId },
        },
        'writeId = :w',
      );
    },

    async releaseFinding(id) {
      const writeId = won.get(id);
      won.delete(id);
      // Only our own claim: one taken over since (past its expiry) is someone else's.
      await table.deleteIf(
        Keys.findingClaim(id),
        writeId
          ? { expression: 'writeId = :w', values: { ':w': writeId } }
          : { expression: 'attribute_exists(pk)' },
      );
    },
  };
}
