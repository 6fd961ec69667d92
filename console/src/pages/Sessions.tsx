/** Numbers (sessions): create, link by live QR or pairing code, watch the status live, stop/log out/delete. */
import { useCallback, useEffect, useRef, useState } from "react";
import { api, problemText, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { useLive, useLiveEvents } from "../live";

type Session = Schemas["SessionView"];

/** The badge a person reads: the API's status, with the disconnect reason; owner_lost is a failover. */
export function badge(s: Pick<Session, "status" | "disconnectedReason">): { label: string; tone: string } {
  switch (s.status) {
    case "created":
    case "starting":
    case "connecting":
      return { label: "connecting", tone: "wait" };
    case "qr_pending":
      return { label: "QR", tone: "wait" };
    case "connected":
      return { label: "connected", tone: "ok" };
    case "reconnecting": // the API's own word for a session a new owner is re-linking (owner_lost)
      return { label: "reconnecting", tone: "wait" };
    case "unknown": // its runner died and none took over yet
      return { label: "unknown", tone: "bad" };
    case "disconnected":
      // owner_lost: the node running it went away and another one is taking over (failover), not an outage.
      if (s.disconnectedReason === "owner_lost") return { label: "reconnecting", tone: "wait" };
      return { label: `disconnected${s.disconnectedReason ? `: ${s.disconnectedReason}` : ""}`, tone: "bad" };
    case "logged_out":
      return { label: "logged out", tone: "bad" };
    default:
      return { label: s.status, tone: "" };
  }
}

export function Sessions() {
  const { t } = useI18n();
  const { generation } = useLive();
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);

  /**
   * What the socket said last about each session, laid over any read that is older than it: the projector
   * may write the read model a moment after the gateway forwards the event, and a re-read must not take
   * the QR or the "connected" badge back.
   */
  const live = useRef(new Map<string, { at: number; patch: Partial<Session> }>());
  const overlay = useCallback((list: Session[]) => list
    .map((s) => {
      const p = live.current.get(s.id);
      return p && p.at > Date.parse(s.updatedAt) ? { ...s, ...p.patch } : s;
    })
    .filter((s) => s.status !== "deleted"), []);

  const load = useCallback(async () => {
    const { data, error } = await api.GET("/sessions");
    if (error) setError(problemText(error));
    else setSessions(overlay(data.sessions));
  }, [overlay]);
  // Coalesce bursts of events (QR, connected, history sync) into one read.
  const reload = useCallback(() => {
    if (pending.current) clearTimeout(pending.current);
    pending.current = setTimeout(() => void load(), 150);
  }, [load]);
  useEffect(() => {
    void load();
  }, [load, generation]);
  // While a session is on its way somewhere, re-read now and then too: converges even if a frame was missed.
  const moving = sessions?.some((s) => ["created", "qr_pending", "reconnecting", "starting"].includes(s.status));
  useEffect(() => {
    if (!moving) return;
    const h = setInterval(() => void load(), 4000);
    return () => clearInterval(h);
  }, [moving, load]);
  useLiveEvents((e) => {
    const p = e.payload;
    const patch: Partial<Session> | null =
      e.type === "session.qr.updated"
        // The QR rotates: show the new image at once (the gateway adds qrImage to this frame).
        ? { status: "qr_pending", qr: (p.qr as string) ?? null, qrImage: (p.qrImage as string | undefined) ?? null }
        : e.type === "session.status.connected"
          ? { status: "connected", phone: (p.phone as string) ?? null, qr: null, qrImage: null, disconnectedReason: null }
          : e.type === "session.status.disconnected"
            ? { status: "disconnected", disconnectedReason: (p.reason as string) ?? null, qr: null, qrImage: null }
            : e.type === "session.status.logged_out"
              ? { status: "logged_out", qr: null, qrImage: null }
              : e.type === "session.deleted" ? { status: "deleted" } : null;
    if (patch) {
      live.current.set(e.sessionId, { at: e.occurredOn ? Date.parse(e.occurredOn) : Date.now(), patch });
      setSessions((list) => (list ? overlay(list) : list));
    }
    if (e.type.startsWith("session.") && !e.type.startsWith("session.messages") && e.type !== "session.presence.update") {
      reload();
    }
  });

  const create = async () => {
    setError(null);
    const { error } = await api.POST("/sessions", { body: { name: name || null } });
    if (error) setError(problemText(error));
    setName("");
    reload();
  };

  return (
    <section>
      <h1>{t.sessions}</h1>
      <form className="row" onSubmit={(e) => { e.preventDefault(); void create(); }}>
        <label>
          <span className="sr">{t.sessionName}</span>
          <input placeholder={t.sessionName} aria-label={t.sessionName} value={name}
            onChange={(e) => setName(e.target.value)} />
        </label>
        <button type="submit" data-testid="create-session">{t.newSession}</button>
      </form>
      {error ? <p role="alert" className="error">{error}</p> : null}
      {sessions === null ? <p>…</p> : sessions.length === 0 ? <p className="empty">{t.noSessions}</p> : null}
      <ul className="cards">
        {sessions?.map((s) => <SessionCard key={s.id} s={s} onChange={reload} />)}
      </ul>
    </section>
  );
}

function SessionCard({ s, onChange }: { s: Session; onChange(): void }) {
  const { t } = useI18n();
  const b = badge(s);
  const [confirm, setConfirm] = useState<null | "stop" | "logout" | "delete">(null);
  const [phone, setPhone] = useState("");
  const [code, setCode] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const path = { params: { path: { session_id: s.id } } };

  const act = async (what: "start" | "stop" | "logout" | "delete") => {
    setError(null);
    setConfirm(null);
    const r = what === "start" ? await api.POST("/sessions/{session_id}/start", path)
      : what === "stop" ? await api.POST("/sessions/{session_id}/stop", { ...path, body: {} })
      : what === "logout" ? await api.POST("/sessions/{session_id}/stop", { ...path, body: { reason: "logout" } })
      : await api.DELETE("/sessions/{session_id}", path);
    if (r.error) setError(problemText(r.error));
    onChange();
  };
  const pair = async () => {
    setError(null);
    const { data, error } = await api.POST("/sessions/{session_id}/pair-code", { ...path, body: { phone } });
    if (error) setError(problemText(error));
    else setCode("code" in data ? data.code : null);
  };

  return (
    <li className="card" data-testid={`session-${s.id}`}>
      <div className="row">
        <strong>{s.name || s.phone || s.id.slice(0, 8)}</strong>
        <span className={`badge ${b.tone}`} data-testid="status-badge">{b.label}</span>
        {s.phone ? <span>+{s.phone}</span> : null}
      </div>
      {s.status === "qr_pending" && s.qrImage ? (
        <figure>
          <img src={s.qrImage} alt="QR" data-testid="qr-image" width={220} height={220} />
          <figcaption>{t.scanQr}</figcaption>
          <details>
            <summary>{t.noPhone}</summary>
            {/* `make dev` runs a WhatsApp simulator; its control API is another origin, so the console only
                shows the command (it talks to nothing but the public API). */}
            <code className="cmd">{`curl -X POST http://127.0.0.1:8090/control/scan -H 'content-type: application/json' -d '{"sessionId": "${s.id}", "phone": "51999999999"}'`}</code>
          </details>
        </figure>
      ) : null}
      {s.status === "qr_pending" || s.status === "created" ? (
        <form className="row" onSubmit={(e) => { e.preventDefault(); void pair(); }}>
          <label>{t.pairCode}
            <input placeholder={t.phone} value={phone} onChange={(e) => setPhone(e.target.value)} inputMode="tel" />
          </label>
          <button type="submit">{t.getCode}</button>
          {code ? <code data-testid="pair-code" className="paircode">{code}</code> : null}
        </form>
      ) : null}
      <div className="row actions">
        {s.status === "disconnected" || s.status === "logged_out" ? (
          <button onClick={() => void act("start")}>{t.start}</button>
        ) : null}
        {confirm ? (
          <span role="group" aria-label={t.sure}>
            {t.sure} ({confirm === "stop" ? t.stop : confirm === "logout" ? t.unlink : t.del}){" "}
            <button className="danger" onClick={() => void act(confirm)} data-testid="confirm">{t.confirm}</button>
            <button onClick={() => setConfirm(null)}>{t.cancel}</button>
          </span>
        ) : (
          <>
            <button onClick={() => setConfirm("stop")}>{t.stop}</button>
            <button onClick={() => setConfirm("logout")}>{t.unlink}</button>
            <button className="danger" onClick={() => setConfirm("delete")}>{t.del}</button>
          </>
        )}
      </div>
      {error ? <p role="alert" className="error">{error}</p> : null}
    </li>
  );
}
