import { CreateRoleCommand, type IAMClient } from '@aws-sdk/client-iam';

/** The account moto answers as. */
const TEST_ACCOUNT = '123456789012';

/** Creates an IAM role under `/breakglass/` that anyone in the test account may assume, as break-glass roles are set up. */
export async function createBreakglassRole(iam: IAMClient, roleName: string): Promise<void> {
  await iam.send(
    new CreateRoleCommand({
      RoleName: roleName,
      Path: '/breakglass/',
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${TEST_ACCOUNT}:root` },
            Action: 'sts:AssumeRole',
          },
        ],
      }),
    }),
  );
}
