import { describe, expect, it } from "vitest";
import { LiveSocket, backoff, type LiveEvent, type LiveState } from "../src/api/live";
import { FakeSocket, FakeTimers, flush } from "./fakes";

const snapshot = { type: "session.snapshot", sessionId: "s1", payload: { tenantId: "t", session: null } };

function harness(tokens: Array<string | null> = []) {
  const timers = new FakeTimers();
  const sockets: FakeSocket[] = [];
  const events: LiveEvent[] = [];
  const snapshots: LiveEvent[] = [];
  const states: Array<[LiveState, number]> = [];
  const refreshes: boolean[] = [];
  let n = 0;
  const live = new LiveSocket({
    token: async (refresh) => {
      refreshes.push(refresh);
      return tokens.length ? tokens.shift()! : `tok${++n}`;
    },
    onEvent: (e) => events.push(e),
    onSnapshot: (e) => snapshots.push(e),
    onState: (s, a) => states.push([s, a]),
    create: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    url: (t) => `ws://h/ws/sessions?accessToken=${t}`,
    timers,
    random: () => 0.5, // no jitter: the delays are exactly base·2^(n-1)
    baseMs: 500,
    maxMs: 8_000,
  });
  return { live, timers, sockets, events, snapshots, states, refreshes };
}

describe("backoff", () => {
  it("doubles from the base up to the cap, with ±25 % jitter", () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((a) => backoff(a, 500, 8_000, () => 0.5))).toEqual(
      [500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(backoff(1, 1_000, 8_000, () => 0)).toBe(750);
    expect(backoff(1, 1_000, 8_000, () => 1)).toBe(1_250);
  });
});

describe("LiveSocket", () => {
  it("connects with the access token and passes the snapshot, then events", async () => {
    const h = harness();
    h.live.start();
    await flush();
    expect(h.sockets.map((s) => s.url)).toEqual(["ws://h/ws/sessions?accessToken=tok1"]);
    h.sockets[0].send(snapshot);
    h.sockets[0].send({ type: "session.qr.updated", sessionId: "s1", payload: { qr: "x" } });
    expect(h.snapshots).toHaveLength(1);
    expect(h.events.map((e) => e.type)).toEqual(["session.qr.updated"]);
    expect(h.states.at(-1)).toEqual(["open", 0]);
  });

  it("reconnects with growing delays while the server keeps failing, and resets after a snapshot", async () => {
    const h = harness();
    h.live.start();
    await flush();
    for (const expected of [500, 1_000, 2_000, 4_000, 8_000, 8_000]) {
      h.sockets.at(-1)!.drop();
      expect(h.timers.delays).toEqual([expected]);
      const before = h.sockets.length;
      await h.timers.advance(expected - 1);
      expect(h.sockets.length).toBe(before); // not a moment early
      await h.timers.advance(1);
      expect(h.sockets.length).toBe(before + 1);
    }
    // A connection that got its snapshot resumes from it: the next drop starts from the base again.
    h.sockets.at(-1)!.send(snapshot);
    expect(h.snapshots).toHaveLength(1);
    h.sockets.at(-1)!.drop();
    expect(h.timers.delays).toEqual([500]);
    await h.timers.advance(500);
    h.sockets.at(-1)!.send(snapshot);
    expect(h.snapshots).toHaveLength(2);
    expect(h.states.filter(([s]) => s === "reconnecting").length).toBeGreaterThan(0);
  });

  it("after a 4401 (token expired or revoked) it reconnects with a refreshed token", async () => {
    const h = harness();
    h.live.start();
    await flush();
    h.sockets[0].send(snapshot);
    h.sockets[0].drop(4401);
    await h.timers.advance(500);
    expect(h.refreshes).toEqual([false, true]);
    expect(h.sockets[1].url).toContain("accessToken=tok2");
  });

  it("stops for good when the login is gone, and stop() cancels a pending reconnect", async () => {
    const h = harness(["tok", null]);
    h.live.start();
    await flush();
    h.sockets[0].drop();
    await h.timers.advance(500);
    expect(h.sockets).toHaveLength(1);
    expect(h.states.at(-1)).toEqual(["stopped", 0]);

    const g = harness();
    g.live.start();
    await flush();
    g.sockets[0].drop();
    g.live.stop();
    await g.timers.advance(60_000);
    expect(g.sockets).toHaveLength(1);
  });

  it("ignores frames and closes from a socket it already replaced", async () => {
    const h = harness();
    h.live.start();
    await flush();
    const old = h.sockets[0];
    old.drop();
    await h.timers.advance(500);
    old.send({ type: "session.qr.updated", sessionId: "s1", payload: {} });
    old.drop();
    expect(h.events).toEqual([]);
    expect(h.timers.delays).toEqual([]);
  });
});
