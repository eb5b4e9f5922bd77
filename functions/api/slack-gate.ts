/**
 * The gate every Slack delivery passes before it is read: `/slack/commands` and
 * `/slack/interactions` carry no IAM signature, so Slack's v0 HMAC is checked (constant
 * time, 5-minute window), and a delivery already handled (a Slack retry, or a replay of a
 * captured request) is answered 200 and dropped. Every refusal is audited.
 */
import { isSlackRetry, slackDeliveryKey, verifySlackRequest } from '../adapters/slack/verify.ts';
import type { ApiDeps, SlackDeps } from './deps.ts';
import { type ApiEvent, type ApiResult, emptyAnswer, errorAnswer, rawBody } from './responses.ts';

/** How long a Slack delivery is remembered: longer than Slack's retries and the 5-minute window. */
const DELIVERY_MEMORY_SECONDS = 15 * 60;

/** The verified body of a first delivery, or the answer that ends the request here. */
export async function slackGate(
  deps: ApiDeps,
  event: ApiEvent,
  route: string,
): Promise<{ slack: SlackDeps; body: string } | ApiResult> {
  const { slack, breakglass } = deps;
  // Slack's refusals are audited in break-glass's trail: a function without it serves no Slack.
  if (!slack || !breakglass) return errorAnswer(404, 'not-found', 'Slack is not configured here');
  const body = rawBody(event);
  const headers = event.headers ?? {};
  const audit = (reason: string) =>
    breakglass.audit.append({
      type: 'grant.refused',
      actor: 'slack:unverified',
      subject: route,
      details: { action: 'slack-delivery', reason },
    });
  const verdict = verifySlackRequest({
    signingSecret: slack.signingSecret,
    headers,
    rawBody: body,
    now: breakglass.clock.now(),
  });
  if (!verdict.ok) {
    await audit(verdict.message);
    return errorAnswer(401, 'bad-slack-signature', verdict.message);
  }
  const first = await slack.ledger.firstDelivery(slackDeliveryKey(headers, body), DELIVERY_MEMORY_SECONDS);
  // A retry whose first delivery never reached us has a new key and is handled like a first one.
  if (!first) {
    const reason = isSlackRetry(headers)
      ? `Slack retry ${headers['x-slack-retry-num']} (${headers['x-slack-retry-reason'] ?? 'no reason given'}) of a delivery already handled: ignored`
      : 'a delivery already handled (replayed): ignored';
    await audit(reason);
    // 200, so Slack stops retrying; the header says why for whoever reads the trace.
    return emptyAnswer({ 'x-keywarden-duplicate': 'true' });
  }
  return { slack, body };
}
