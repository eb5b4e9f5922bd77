/**
 * A role policy document that denies everything to the sessions a condition picks: how
 * keywarden ends live STS sessions, which cannot be revoked one by one.
 */
export function denyAllPolicyDocument(
  sid: string,
  condition: Record<string, Record<string, string>>,
): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Sid: sid, Effect: 'Deny', Action: '*', Resource: '*', Condition: condition }],
  });
}
