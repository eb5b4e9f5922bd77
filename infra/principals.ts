import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/**
 * EventBridge Scheduler, acting for a schedule of one schedule group of this account only
 * (`default`, where the recurring schedules live, unless named): the trust principal of a role a
 * schedule assumes (confused-deputy guard, `aws:SourceAccount` and `aws:SourceArn`).
 */
export function schedulerPrincipal(scope: IConstruct, scheduleGroupName = 'default'): iam.ServicePrincipal {
  const stack = Stack.of(scope);
  return new iam.ServicePrincipal('scheduler.amazonaws.com', {
    conditions: {
      StringEquals: {
        'aws:SourceAccount': stack.account,
        'aws:SourceArn': stack.formatArn({
          service: 'scheduler',
          resource: 'schedule-group',
          resourceName: scheduleGroupName,
          arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        }),
      },
    },
  });
}
