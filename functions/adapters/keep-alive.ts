/**
 * The keep-alive HTTP agents of this process, shared by every client that speaks HTTP itself
 * (the Vault client, the AWS JSON wire): a client made per call (a rotation verifying the token it
 * issued) reuses the connections already open.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';

/**
 * How long a connection may sit idle in an agent before it is closed: shorter than servers'
 * idle timeouts (Vault's listener: 5 min; AWS, proxies and load balancers often 60 s), so a
 * request never goes out on a connection the server is closing — and after a Lambda thaw none is
 * reused.
 */
const IDLE_SOCKET_MS = 4_000;

const AGENTS = new Map<string, HttpAgent>();

/** The keep-alive agent for `protocol` (`http:`, `https:`) holding at most `maxSockets` connections per origin. */
export function keepAliveAgent(protocol: string, maxSockets = Number.POSITIVE_INFINITY): HttpAgent {
  const key = `${protocol} ${maxSockets}`;
  let agent = AGENTS.get(key);
  if (!agent) {
    const options = { keepAlive: true, timeout: IDLE_SOCKET_MS, maxSockets };
    agent = protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
    AGENTS.set(key, agent);
  }
  return agent;
}
