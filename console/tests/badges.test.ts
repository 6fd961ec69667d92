import { describe, expect, it } from "vitest";
import { badge } from "../src/pages/Sessions";
import { ticks } from "../src/pages/Chats";

describe("status badge", () => {
  it("names each status as a person reads it; owner_lost is a failover, shown as reconnecting", () => {
    const b = (status: string, disconnectedReason: string | null = null) => badge({ status, disconnectedReason }).label;
    expect(b("created")).toBe("connecting");
    expect(b("qr_pending")).toBe("QR");
    expect(b("connected")).toBe("connected");
    expect(b("disconnected", "owner_lost")).toBe("reconnecting");
    expect(b("disconnected", "stopped")).toBe("disconnected: stopped");
    expect(b("disconnected")).toBe("disconnected");
    expect(b("logged_out")).toBe("logged out");
    expect(b("reconnecting")).toBe("reconnecting");
  });

  it("receipt ticks move sent → delivered → read", () => {
    expect(["server_ack", "delivered", "read", "played", null].map((s) => ticks(s).label)).toEqual(
      ["sent", "delivered", "read", "read", "pending"]);
  });
});
