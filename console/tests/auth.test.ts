import { describe, expect, it, vi } from "vitest";
import { Auth, REFRESH_MARGIN_MS, authedFetch, type TokenAnswer } from "../src/api/auth";
import { FakeTimers, flush } from "./fakes";

const user = { id: "u", tenantId: "t", email: "a@b.c", name: "A", role: "owner", emailVerified: true,
  disabled: false, createdAt: "2026-01-01T00:00:00Z" };

function answer(token: string, timers: FakeTimers, ttl = 900): TokenAnswer {
  return { accessToken: token, expiresIn: ttl, expiresAt: Math.floor(timers.now() / 1000) + ttl, tokenType: "Bearer",
    user };
}

describe("Auth", () => {
  it("refreshes on its own a minute before the token expires", async () => {
    const timers = new FakeTimers();
    let n = 0;
    const refresh = vi.fn(async () => answer(`tok${++n}`, timers));
    const auth = new Auth(refresh, timers);
    auth.set(answer("tok0", timers));
    await timers.advance(900_000 - REFRESH_MARGIN_MS - 1_000);
    expect(refresh).not.toHaveBeenCalled();
    await timers.advance(1_000);
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(auth.current).toBe("tok1");
    // ... and again for the new token.
    await timers.advance(900_000 - REFRESH_MARGIN_MS);
    expect(auth.current).toBe("tok2");
  });

  it("shares one refresh between concurrent callers (a rotated refresh token must not be presented twice)", async () => {
    const timers = new FakeTimers();
    let release: (a: TokenAnswer) => void = () => {};
    const refresh = vi.fn(() => new Promise<TokenAnswer>((r) => { release = r; }));
    const auth = new Auth(refresh, timers);
    const both = Promise.all([auth.getToken(), auth.getToken(), auth.refresh()]);
    await flush();
    release(answer("fresh", timers));
    expect(await both).toEqual(["fresh", "fresh", "fresh"]);
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it("a refused refresh ends the login and tells the listeners", async () => {
    const timers = new FakeTimers();
    const auth = new Auth(async () => null, timers);
    auth.set(answer("tok", timers));
    const seen: unknown[] = [];
    auth.onChange((u) => seen.push(u));
    expect(await auth.refresh()).toBeNull();
    expect(auth.loggedIn).toBe(false);
    expect(seen).toEqual([null]);
    expect(timers.delays).toEqual([]);
  });

  it("a network error keeps the current token", async () => {
    const timers = new FakeTimers();
    const auth = new Auth(async () => { throw new Error("offline"); }, timers);
    auth.set(answer("tok", timers));
    expect(await auth.refresh()).toBe("tok");
    expect(auth.loggedIn).toBe(true);
  });
});

describe("authedFetch", () => {
  it("adds the bearer token, and on a 401 refreshes once and retries with the same body", async () => {
    const timers = new FakeTimers();
    const auth = new Auth(async () => answer("new", timers), timers);
    auth.set(answer("old", timers));
    const seen: Array<[string | null, string]> = [];
    const base = async (req: Request) => {
      seen.push([req.headers.get("authorization"), await req.text()]);
      return new Response(null, { status: req.headers.get("authorization") === "Bearer new" ? 202 : 401 });
    };
    const f = authedFetch(auth, base);
    const r = await f(new Request("http://h/sessions", { method: "POST", body: '{"name":"x"}' }));
    expect(r.status).toBe(202);
    expect(seen).toEqual([["Bearer old", '{"name":"x"}'], ["Bearer new", '{"name":"x"}']]);
  });

  it("gives the 401 back when the refresh fails, and never refreshes for /auth/* routes", async () => {
    const timers = new FakeTimers();
    const refresh = vi.fn(async () => null);
    const auth = new Auth(refresh, timers);
    auth.set(answer("old", timers));
    const base = async () => new Response(null, { status: 401 });
    const f = authedFetch(auth, base);
    expect((await f(new Request("http://h/auth/login", { method: "POST" }))).status).toBe(401);
    expect(refresh).not.toHaveBeenCalled();
    expect((await f(new Request("http://h/chats"))).status).toBe(401);
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it("refreshes first when the token is about to expire", async () => {
    const timers = new FakeTimers();
    const auth = new Auth(async () => answer("new", timers), timers);
    auth.set(answer("old", timers, 20));
    let header: string | null = null;
    const f = authedFetch(auth, async (req) => { header = req.headers.get("authorization"); return new Response("{}"); });
    await f(new Request("http://h/chats"));
    expect(header).toBe("Bearer new");
  });
});
