/**
 * Access tokens: kept in memory only (never localStorage), refreshed before they expire and after a 401.
 *
 * The refresh token is the API's HttpOnly cookie (path /auth), so a reload restores the login with one
 * POST /auth/refresh and a script can never read it. Concurrent callers share one refresh: the API rotates
 * the refresh token, and presenting a rotated one twice would revoke the whole login.
 */
import type { components } from "./schema";

export type TokenAnswer = components["schemas"]["TokenAnswer"];
export type User = components["schemas"]["UserView"];

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Refresh this long before the token's expiry, so a request never leaves with a token about to die. */
export const REFRESH_MARGIN_MS = 60_000;

export class Auth {
  private token: string | null = null;
  private expiresAtMs = 0;
  private inflight: Promise<string | null> | null = null;
  private timer: unknown = null;
  private listeners = new Set<(user: User | null) => void>();
  user: User | null = null;

  constructor(
    private readonly refreshCall: () => Promise<TokenAnswer | null>,
    private readonly timers: Timers = realTimers,
  ) {}

  /** Store a login or refresh answer and schedule the next refresh. */
  set(answer: TokenAnswer): void {
    this.token = answer.accessToken;
    // expiresAt is epoch seconds from the server; expiresIn guards against a skewed client clock.
    const byClock = answer.expiresAt * 1000;
    const byTtl = this.timers.now() + answer.expiresIn * 1000;
    this.expiresAtMs = Math.min(byClock, byTtl);
    this.user = answer.user;
    this.schedule();
    this.emit();
  }

  clear(): void {
    this.token = null;
    this.expiresAtMs = 0;
    this.user = null;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.emit();
  }

  /** The token held now, without refreshing. */
  get current(): string | null {
    return this.token;
  }

  get loggedIn(): boolean {
    return this.token !== null;
  }

  /** A token valid for at least the margin, refreshing first if needed; null when the login is gone. */
  async getToken(): Promise<string | null> {
    if (this.token !== null && this.expiresAtMs - this.timers.now() > REFRESH_MARGIN_MS / 2) return this.token;
    return this.refresh();
  }

  /** One refresh at a time; everyone waiting gets its result. */
  refresh(): Promise<string | null> {
    if (this.inflight) return this.inflight;
    this.inflight = (async () => {
      try {
        const answer = await this.refreshCall();
        if (answer === null) {
          this.clear();
          return null;
        }
        this.set(answer);
        return this.token;
      } catch {
        // Network trouble: keep the current token (it may still be valid) and retry on the next call.
        return this.token;
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }

  onChange(fn: (user: User | null) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private schedule(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    const wait = Math.max(1_000, this.expiresAtMs - this.timers.now() - REFRESH_MARGIN_MS);
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, wait);
  }

  private emit(): void {
    for (const fn of this.listeners) fn(this.user);
  }
}

/**
 * A fetch that adds the bearer token and, on a 401 from anything but /auth/*, refreshes once and retries.
 * The request is cloned before the first attempt because a body can be read only once.
 */
export function authedFetch(auth: Auth, base: (req: Request) => Promise<Response> = (r) => fetch(r)) {
  return async (input: Request): Promise<Response> => {
    // /auth/* (login, refresh, logout, resets) go with the token we hold, never through a refresh:
    // a 401 there is the answer itself (wrong password, login gone), not an expired token.
    if (new URL(input.url, "http://x").pathname.startsWith("/auth/")) return base(withToken(input, auth.current));
    const spare = input.clone();
    const token = await auth.getToken();
    const response = await base(withToken(input, token));
    if (response.status !== 401 || token === null) return response;
    const fresh = await auth.refresh();
    if (fresh === null || fresh === token) return response;
    return base(withToken(spare, fresh));
  };
}

function withToken(req: Request, token: string | null): Request {
  if (token === null) return req;
  const headers = new Headers(req.headers);
  headers.set("Authorization", `Bearer ${token}`);
  return new Request(req, { headers });
}
