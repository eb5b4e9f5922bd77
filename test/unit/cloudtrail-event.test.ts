/**
 * Reading a CI job's AWS calls from EventBridge's "AWS API Call via CloudTrail" events. The
 * events are shaped as CloudTrail documents them (userIdentity element, event envelope); no
 * access key id is written out (CloudTrail's own examples leave it empty too).
 */
import { describe, expect, it } from 'vitest';
import { CloudTrailApiCallEventSchema, ciUseOf } from '../../functions/adapters/aws/cloudtrail-event.ts';

const ACCOUNT = '123456789012';
const CI_ROLE = `arn:aws:iam::${ACCOUNT}:role/ci/deploy-app`;
const JOB = 'ci-github-123456789.9876543210.1.31415926';

/** A role session's userIdentity as CloudTrail writes it, with the SourceIdentity when set. */
function assumedRole(roleArn: string, sessionName: string, sourceIdentity?: string) {
  const roleName = roleArn.split('/').at(-1) ?? '';
  return {
    type: 'AssumedRole',
    principalId: `AROAEXAMPLEROLEID:${sessionName}`,
    arn: `arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/${sessionName}`,
    accountId: ACCOUNT,
    accessKeyId: '',
    sessionContext: {
      sessionIssuer: {
        type: 'Role',
        principalId: 'AROAEXAMPLEROLEID',
        arn: roleArn,
        accountId: ACCOUNT,
        userName: roleName,
      },
      webIdFederationData: {},
      attributes: { creationDate: '2026-12-05T07:30:00Z', mfaAuthenticated: 'false' },
      ...(sourceIdentity ? { sourceIdentity } : {}),
    },
  };
}

/** An EventBridge event for one CloudTrail-recorded call. */
function apiCall(detail: Record<string, unknown>, source = 'aws.s3') {
  return {
    version: '0',
    id: '6f1b5a57-3e8f-4a6c-9a58-1f0c2d9e7a10',
    'detail-type': 'AWS API Call via CloudTrail',
    source,
    account: ACCOUNT,
    time: '2026-12-05T07:31:12Z',
    region: 'eu-west-1',
    resources: [],
    detail: {
      eventVersion: '1.09',
      eventTime: '2026-12-05T07:31:12Z',
      eventSource: 's3.amazonaws.com',
      eventName: 'PutObject',
      awsRegion: 'eu-west-1',
      sourceIPAddress: '203.0.113.24',
      userAgent: '[aws-cli/2.22.0 md/awscrt#0.23.4 ua/2.1 os/linux#6.8.0]',
      requestParameters: { bucketName: 'artifacts', key: 'app/1.2.3.tgz' },
      responseElements: null,
      requestID: 'C3D1A2B3E4F5A6B7',
      eventID: '0b4f2e51-2c53-4e3a-8f1e-4f3c7c1d2e3f',
      readOnly: false,
      eventType: 'AwsApiCall',
      managementEvent: false,
      recipientAccountId: ACCOUNT,
      eventCategory: 'Data',
      ...detail,
    },
  };
}

describe('cloudtrail events: a CI job’s calls', () => {
  it('reads a CI session’s call: its SourceIdentity, role, action, time and address', () => {
    // prepare
    const event = apiCall({ userIdentity: assumedRole(CI_ROLE, 'x01@github-123456789.9876543210', JOB) });
    // act
    const use = ciUseOf(event);
    // assess
    expect(use).toEqual({
      sourceIdentity: JOB,
      roleArn: CI_ROLE,
      eventName: 'PutObject',
      eventSource: 's3.amazonaws.com',
      at: '2026-12-05T07:31:12Z',
      sourceIp: '203.0.113.24',
    });
  });

  it('reads a call refused by IAM (after the job’s end, say) with its error code', () => {
    const event = apiCall({
      userIdentity: assumedRole(CI_ROLE, 'x01@job', JOB),
      errorCode: 'AccessDenied',
      errorMessage: 'User is not authorized to perform: s3:PutObject with an explicit deny',
    });
    expect(ciUseOf(event)).toMatchObject({ sourceIdentity: JOB, errorCode: 'AccessDenied' });
  });

  it('names the chained role for a session chained from the job’s (SourceIdentity follows it)', () => {
    const chained = `arn:aws:iam::${ACCOUNT}:role/deploy/prod`;
    const event = apiCall(
      {
        userIdentity: assumedRole(chained, 'chained', JOB),
        eventSource: 'lambda.amazonaws.com',
        eventName: 'UpdateFunctionCode20150331v2',
      },
      'aws.lambda',
    );
    expect(ciUseOf(event)).toMatchObject({ sourceIdentity: JOB, roleArn: chained });
  });

  it('keeps a service’s call on the job’s behalf, with the service as its address', () => {
    const event = apiCall({
      userIdentity: assumedRole(CI_ROLE, 'x01@job', JOB),
      eventSource: 'cloudformation.amazonaws.com',
      eventName: 'CreateChangeSet',
      sourceIPAddress: 'cloudformation.amazonaws.com',
      invokedBy: 'cloudformation.amazonaws.com',
    });
    expect(ciUseOf(event)?.sourceIp).toBe('cloudformation.amazonaws.com');
  });

  it.each([
    ['a session without a SourceIdentity', apiCall({ userIdentity: assumedRole(CI_ROLE, 'someone') })],
    [
      'a break-glass session (its SourceIdentity is the grant id)',
      apiCall({ userIdentity: assumedRole(CI_ROLE, 'bg-1', 'bg-20261205t0730-0a1b2c3d') }),
    ],
    [
      'keywarden’s own AssumeRole naming the job (the SourceIdentity is a request parameter, not the caller’s)',
      apiCall(
        {
          userIdentity: assumedRole(`arn:aws:iam::${ACCOUNT}:role/keywarden-api`, 'keywarden-api'),
          eventSource: 'sts.amazonaws.com',
          eventName: 'AssumeRole',
          requestParameters: { roleArn: CI_ROLE, roleSessionName: 'x01@job', sourceIdentity: JOB },
        },
        'aws.sts',
      ),
    ],
    [
      'an IAM user’s call',
      apiCall({
        userIdentity: {
          type: 'IAMUser',
          principalId: 'AIDAEXAMPLEUSERID',
          arn: `arn:aws:iam::${ACCOUNT}:user/alice`,
          accountId: ACCOUNT,
          userName: 'alice',
        },
      }),
    ],
    [
      'an event of another detail-type',
      {
        version: '0',
        'detail-type': 'EC2 Instance State-change Notification',
        source: 'aws.ec2',
        detail: { 'instance-id': 'i-0abcd1234', state: 'running' },
      },
    ],
    ['an API-call event without userIdentity', apiCall({ userIdentity: undefined })],
    ['no event at all', undefined],
  ])('reads nothing from %s', (_what, event) => {
    expect(ciUseOf(event)).toBeUndefined();
  });

  it('lets fields it does not read through, so a newer event version still parses', () => {
    const event = apiCall({
      userIdentity: assumedRole(CI_ROLE, 'x01@job', JOB),
      eventVersion: '1.11',
      tlsDetails: { tlsVersion: 'TLSv1.3', clientProvidedHostHeader: 'artifacts.s3.eu-west-1.amazonaws.com' },
      sessionCredentialFromConsole: 'false',
    });
    const parsed = CloudTrailApiCallEventSchema.parse(event);
    expect(parsed.detail).toMatchObject({ tlsDetails: { tlsVersion: 'TLSv1.3' } });
    expect(ciUseOf(event)?.sourceIdentity).toBe(JOB);
  });
});
