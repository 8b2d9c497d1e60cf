/**
 * Steady, bounded client traffic for the cluster fault tests: every client sends one message at
 * a time (alternating a direct message to the next client and a group message), retrying each
 * with the same `cmid` until it is `ok`'d, until told to stop.
 *
 * @module
 */
import type { F } from "../support/client.ts";
import { type ResilientClient, sleep } from "./fixture.ts";

/** One acknowledged send. */
export interface Sent {
  from: string;
  /** Recipient user id, or the group id. */
  to: string;
  cmid: string;
  ok: F;
  attempts: number;
  errors: string[];
}

/** Running traffic. */
export interface Traffic {
  /** Acknowledged sends so far (appended as they complete). */
  readonly sent: Sent[];
  /** Stops sending new messages; resolves once every started send is acknowledged. */
  stop(): Promise<Sent[]>;
}

/** Starts one send loop per client. At most `maxPerClient` messages each. */
export function runTraffic(
  clients: ResilientClient[],
  group: string,
  { pauseMs = 20, maxPerClient = 1_000, tag = "t" } = {},
): Traffic {
  const sent: Sent[] = [];
  let stopped = false;
  const loops = clients.map(async (c, k) => {
    const peer = clients[(k + 1) % clients.length];
    for (let i = 0; i < maxPerClient && !stopped; i++) {
      const direct = i % 2 === 0;
      const to = direct ? peer.userId : group;
      const cmid = `${tag}${k}-${i}`;
      const out = await c.send(direct ? { user: to } : { group: to }, cmid, `${cmid} text`);
      sent.push({ from: c.userId, to, cmid, ...out });
      await sleep(pauseMs);
    }
  });
  return {
    sent,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return sent;
    },
  };
}
