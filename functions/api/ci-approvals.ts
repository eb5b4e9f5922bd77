/**
 * Artifact approvals over the HTTP API (ci-approval.ts): record one, list a digest's, and
 * verify a digest's chain. Every route is signed (SigV4 in AWS, a development token locally):
 * the caller of `POST /ci/approvals` is the approver, checked against `ci.gates`.
 *
 * The routes are added to the API's table by routes.ts (`CI_APPROVAL_ROUTES`); api/openapi.yaml
 * describes them.
 */
import * as z from 'zod';
import {
  type ApprovalDeps,
  approve,
  type DsseEnvelope,
  envelopeOf,
  verifyChain,
} from '../core/ci-approval.ts';
import { DigestSchema } from '../core/ci-policy.ts';
import type { ApprovalRecord } from '../core/ci-records.ts';
import { ValidationError } from '../core/errors.ts';
import { type ApiDeps, served } from './deps.ts';
import { type ApiEvent, json, jsonBody } from './responses.ts';
import type { Route } from './route.ts';

/**
 * The body's shape: three strings. Core checks their forms (ApproveInputSchema: the digest,
 * a known gate, an environment name) and audits a refusal, as it does for every channel.
 */
const ApproveBodySchema = z.strictObject({
  digest: z.string().min(1).max(256),
  gate: z.string().min(1).max(32),
  environment: z.string().min(1).max(128),
});

/** The deployment's approvals, or a 404 where it serves none. */
export const approvalsOf = (deps: ApiDeps): ApprovalDeps => served(deps, 'approvals');

/** The one query parameter these listings take, `digest`; any other is a 400 naming it. */
function digestQuery(event: ApiEvent): string {
  const query = event.queryStringParameters ?? {};
  const others = Object.keys(query).filter((name) => name !== 'digest');
  if (others.length > 0) {
    throw new ValidationError(
      `expected only the query parameter digest, got ${others.map((name) => JSON.stringify(name.slice(0, 40))).join(', ')}`,
    );
  }
  const parsed = DigestSchema.safeParse(query.digest);
  if (query.digest === undefined)
    throw new ValidationError(
      'expected the query parameter digest=sha256:<64 lowercase hex digits>, got none',
    );
  if (!parsed.success) throw new ValidationError(`digest: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** An approval as the API shows it: the record, and the DSSE envelope an outside verifier reads. */
export const viewApproval = (record: ApprovalRecord): ApprovalRecord & { envelope: DsseEnvelope } => ({
  ...record,
  envelope: envelopeOf(record),
});

/** `/ci/approvals…`; api/openapi.yaml describes them. */
export const CI_APPROVAL_ROUTES: readonly Route[] = [
  {
    method: 'POST',
    path: '/ci/approvals',
    auth: 'signed',
    run: (deps) => async (event, _params, caller) => {
      const approvals = approvalsOf(deps);
      const record = await approve(approvals, caller, jsonBody(event, ApproveBodySchema));
      return json(201, { approval: viewApproval(record) });
    },
  },
  {
    method: 'GET',
    path: '/ci/approvals',
    auth: 'signed',
    run: (deps) => async (event) => {
      const approvals = approvalsOf(deps);
      const digest = digestQuery(event);
      return json(200, { digest, approvals: (await approvals.ledger.listFor(digest)).map(viewApproval) });
    },
  },
  {
    method: 'GET',
    path: '/ci/approvals/verify',
    auth: 'signed',
    run: (deps) => async (event) => {
      const approvals = approvalsOf(deps);
      return json(200, await verifyChain(approvals, digestQuery(event)));
    },
  },
];
