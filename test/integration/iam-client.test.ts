import { CreateAccessKeyCommand, CreateUserCommand, ListUsersCommand } from '@aws-sdk/client-iam';
import { describe, expect, it } from 'vitest';
import { iamClient } from '../../functions/adapters/aws/clients.ts';
import { testAws, uniqueName } from '../support/stack.ts';

describe('the IAM client', () => {
  it('gives up at once on a quota refusal (a third access key), which trying again cannot lift', async () => {
    // prepare: a user with the two keys IAM allows
    const iam = iamClient(testAws());
    const userName = uniqueName('kw-iam-quota');
    await iam.send(new CreateUserCommand({ UserName: userName }));
    await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
    await iam.send(new CreateAccessKeyCommand({ UserName: userName }));

    // act
    const refusal = await iam.send(new CreateAccessKeyCommand({ UserName: userName })).catch((e) => e);

    // assess: one try, not eight over ~40 s
    expect(refusal).toMatchObject({ name: 'LimitExceededException', $metadata: { attempts: 1 } });
  });

  it('still answers ordinary calls', async () => {
    const listed = await iamClient(testAws()).send(new ListUsersCommand({}));
    expect(listed.$metadata.httpStatusCode).toBe(200);
  });
});
