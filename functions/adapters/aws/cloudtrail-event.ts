/**
 * What a CI job's AWS session, or a managed IAM user's access key, did: read from EventBridge's
 * "AWS API Call via CloudTrail" events.
 *
 * A job's session carries its correlation id as SourceIdentity (./ci-session-issuer.ts), which
 * CloudTrail writes into every event the session causes as
 * `detail.userIdentity.sessionContext.sourceIdentity`, also after role chaining; a call signed
 * with an IAM user's long-term key carries it as `detail.userIdentity.accessKeyId` (`AKIA…`).
 * The use monitor's rule on the default bus (infra/constructs/use-monitor.ts) matches
 * `detail-type: ["AWS API Call via CloudTrail"]` and either prefix; its state must be
 * `ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS` for read-only calls (Get*, List*, Describe*) to
 * arrive at all, and a trail must be logging.
 *
 * Only the fields read are in the schema; everything else in the event is let through unread,
 * since CloudTrail adds fields over event versions.
 */
import * as z from 'zod';
import type { HandleUse, WatchedHandle } from '../../core/unexpected-use.ts';

/** The `detail-type` CloudTrail's API-call events carry on EventBridge. */
export const CLOUDTRAIL_API_CALL = 'AWS API Call via CloudTrail';

/** The prefix of every CI job's correlation id (ci-policy.ts `jobOf`), hence of its SourceIdentity. */
export const CI_SOURCE_IDENTITY_PREFIX = 'ci-';

/**
 * The prefix of an IAM user's long-term access key id (a session's temporary keys start `ASIA`):
 * the keys keywarden manages as `aws-iam-access-key`, and the use monitor's rule matches.
 */
export const LONG_TERM_KEY_PREFIX = 'AKIA';

/** CloudTrail's `userIdentity` element, as far as keywarden reads it. */
export const CloudTrailUserIdentitySchema = z.looseObject({
  /** `AssumedRole` for a role session; `IAMUser`, `Root`, `AWSService`… otherwise. */
  type: z.string(),
  principalId: z.string().optional(),
  /** The access key that signed the call: an IAM user's `AKIA…`, or a session's temporary `ASIA…`. */
  accessKeyId: z.string().optional(),
  /** For a role session: `arn:aws:sts::<account>:assumed-role/<role>/<session name>`. */
  arn: z.string().optional(),
  /** For an `IAMUser` caller: the user's name (without its path). */
  userName: z.string().optional(),
  accountId: z.string().optional(),
  sessionContext: z
    .looseObject({
      /** The role the session belongs to, with its path. */
      sessionIssuer: z
        .looseObject({
          type: z.string().optional(),
          arn: z.string().optional(),
          userName: z.string().optional(),
        })
        .optional(),
      /** Set by AssumeRole's SourceIdentity; kept through role chaining. */
      sourceIdentity: z.string().optional(),
    })
    .optional(),
});

/** An EventBridge event "AWS API Call via CloudTrail" (its documented envelope and the fields read). */
export const CloudTrailApiCallEventSchema = z.looseObject({
  version: z.string().optional(),
  id: z.string().optional(),
  'detail-type': z.literal(CLOUDTRAIL_API_CALL),
  /** `aws.<service>`, e.g. `aws.s3`. */
  source: z.string(),
  account: z.string().optional(),
  time: z.string().optional(),
  region: z.string().optional(),
  detail: z.looseObject({
    eventVersion: z.string().optional(),
    userIdentity: CloudTrailUserIdentitySchema,
    /** When the call was made (RFC 3339, UTC, whole seconds). */
    eventTime: z.string(),
    /** The service's endpoint name, e.g. `s3.amazonaws.com`. */
    eventSource: z.string(),
    /** The API action, e.g. `PutObject`. */
    eventName: z.string(),
    awsRegion: z.string().optional(),
    /** The caller's address, or a service name (`cloudformation.amazonaws.com`) when a service called on its behalf. */
    sourceIPAddress: z.string().optional(),
    userAgent: z.string().optional(),
    errorCode: z.string().optional(),
    eventID: z.string().optional(),
    readOnly: z.boolean().optional(),
  }),
});
export type CloudTrailApiCallEvent = z.infer<typeof CloudTrailApiCallEventSchema>;

/** One call a CI job's session made: what, when, from where, with which role. */
export interface CiAwsUse {
  /** The job's correlation id. */
  sourceIdentity: string;
  /** The role the session belongs to (its issuer), when the event names it. */
  roleArn?: string | undefined;
  eventName: string;
  eventSource: string;
  /** The event time as CloudTrail wrote it. */
  at: string;
  sourceIp: string | undefined;
  /** CloudTrail's error code when the call was refused (a denied call is still a use attempt). */
  errorCode?: string | undefined;
}

/** A call as keywarden words it: `s3:PutObject`, `iam:CreateUser (AccessDenied)` for a refused one. */
export const actionOf = (call: {
  eventSource: string;
  eventName: string;
  errorCode?: string | undefined;
}): string =>
  `${call.eventSource.replace(/\.amazonaws\.com$/, '')}:${call.eventName}${call.errorCode ? ` (${call.errorCode})` : ''}`;

/**
 * The CI use an event records, or `undefined` for anything else: not an API-call event, not
 * shaped as documented, or a caller without a `ci-` SourceIdentity (people, keywarden itself,
 * break-glass sessions). Never throws: a rule may deliver events of other shapes.
 */
export function ciUseOf(event: unknown): CiAwsUse | undefined {
  const parsed = CloudTrailApiCallEventSchema.safeParse(event);
  if (!parsed.success) return undefined;
  const { userIdentity, eventName, eventSource, eventTime, sourceIPAddress, errorCode } = parsed.data.detail;
  const sourceIdentity = userIdentity.sessionContext?.sourceIdentity;
  if (!sourceIdentity?.startsWith(CI_SOURCE_IDENTITY_PREFIX)) return undefined;
  const issuer = userIdentity.sessionContext?.sessionIssuer;
  return {
    sourceIdentity,
    ...(issuer?.type === 'Role' && issuer.arn ? { roleArn: issuer.arn } : {}),
    eventName,
    eventSource,
    at: eventTime,
    sourceIp: sourceIPAddress,
    ...(errorCode ? { errorCode } : {}),
  };
}

/**
 * The use of a managed credential an event records, by the handle keywarden knows it by: an IAM
 * user's long-term access key id (`userIdentity.accessKeyId` `AKIA…` of an `IAMUser` caller,
 * with its `userName`), or a job session's SourceIdentity (`ci-…`). For `allowedRunners` and use
 * after a job's end (core/unexpected-use.ts, core/use-monitor.ts); `from` is CloudTrail's
 * `sourceIPAddress`, which is a service's name when a service called on the caller's behalf; a
 * refused call (a denied one is still an attempt) says its `errorCode` in `action`. `undefined`
 * for anything else; never throws.
 */
export function managedUseOf(
  event: unknown,
): (HandleUse & Pick<WatchedHandle, 'kind'> & { userName?: string | undefined }) | undefined {
  const parsed = CloudTrailApiCallEventSchema.safeParse(event);
  if (!parsed.success) return undefined;
  const { userIdentity, eventTime, sourceIPAddress } = parsed.data.detail;
  const base = {
    at: eventTime,
    from: sourceIPAddress,
    action: actionOf(parsed.data.detail),
    source: 'cloudtrail',
  };
  const sourceIdentity = userIdentity.sessionContext?.sourceIdentity;
  if (sourceIdentity?.startsWith(CI_SOURCE_IDENTITY_PREFIX)) {
    return { ...base, handle: sourceIdentity, kind: 'aws-source-identity' };
  }
  if (userIdentity.type === 'IAMUser' && userIdentity.accessKeyId?.startsWith(LONG_TERM_KEY_PREFIX)) {
    return {
      ...base,
      handle: userIdentity.accessKeyId,
      kind: 'aws-access-key-id',
      ...(userIdentity.userName ? { userName: userIdentity.userName } : {}),
    };
  }
  return undefined;
}
