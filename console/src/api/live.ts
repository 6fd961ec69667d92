/**
 * The tenant's WebSocket (/ws/sessions?accessToken=…), kept open: reconnects with capped exponential backoff
 * and jitter, and resumes from the `session.snapshot` the server sends first on every connection.
 *
 * Nothing is replayed across a reconnect, so on each snapshot the pages re-read what they show over HTTP
 * (the read models are the truth; the socket only says "something changed" and carries the live QR).
 * The backoff resets only once a snapshot arrived: a server that accepts and then drops at once still
 * gets backed off from. Close code 4401 means the token expired or was revoked: refresh before retrying.
 */
import { realTimers, type Timers } from "./auth";

export interface LiveEvent {
  type: string;
  sessionId: string;
  eventId?: string;
  occurredOn?: string;
  payload: Record<string, unknown>;
}

export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export type LiveState = "connecting" | "open" | "reconnecting" | "stopped";

export interface LiveOptions {
  /** A valid access token (refreshing if needed); `refresh` forces a refresh (after a 4401). */
  token(refresh: boolean): Promise<string | null>;
  onEvent(event: LiveEvent): void;
  onSnapshot(event: LiveEvent): void;
  onState?(state: LiveState, attempt: number): void;
  create?(url: string): SocketLike;
  url?(token: string): string;
  timers?: Timers;
  random?: () => number;
  baseMs?: number;
  maxMs?: number;
}

export function defaultUrl(token: string): string {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/sessions?accessToken=${encodeURIComponent(token)}`;
}

/** Delay before reconnect attempt n (1-based): base·2^(n-1), capped, with ±25 % jitter so tabs spread out. */
export function backoff(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.75 + random() * 0.5));
}

export class LiveSocket {
  private socket: SocketLike | null = null;
  private stopped = true;
  private attempt = 0;
  private timer: unknown = null;
  private needRefresh = false;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(private readonly opts: LiveOptions) {
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.baseMs = opts.baseMs ?? 500;
    this.maxMs = opts.maxMs ?? 15_000;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    const s = this.socket;
    this.socket = null;
    if (s) s.close(1000, "bye");
    this.opts.onState?.("stopped", 0);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.opts.onState?.(this.attempt === 0 ? "connecting" : "reconnecting", this.attempt);
    const token = await this.opts.token(this.needRefresh);
    this.needRefresh = false;
    if (this.stopped) return;
    if (token === null) {
      // Logged out: nothing to reconnect with. The app sends the user to the login page.
      this.stop();
      return;
    }
    const url = (this.opts.url ?? defaultUrl)(token);
    const socket = (this.opts.create ?? ((u) => new WebSocket(u) as unknown as SocketLike))(url);
    this.socket = socket;
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      let event: LiveEvent;
      try {
        event = JSON.parse(String(ev.data)) as LiveEvent;
      } catch {
        return; // not ours; the gateway only sends JSON
      }
      if (event.type === "session.snapshot") {
        this.attempt = 0;
        this.opts.onState?.("open", 0);
        this.opts.onSnapshot(event);
      } else {
        this.opts.onEvent(event);
      }
    };
    socket.onerror = () => {
      /* a close follows every error; reconnecting is handled there */
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (ev.code === 4401) this.needRefresh = true;
      this.attempt += 1;
      this.opts.onState?.("reconnecting", this.attempt);
      const delay = backoff(this.attempt, this.baseMs, this.maxMs, this.random);
      this.timer = this.timers.setTimeout(() => {
        this.timer = null;
        void this.connect();
      }, delay);
    };
  }
}
